//! Identity flows, their error codes, and authorization by role.

use serde_json::json;

use crate::support::{AppOptions, PASSWORD, code, spawn_app};

const ME: &str = "{ me { id email displayName roles } }";

#[tokio::test(crate = "crate::support::harness")]
async fn registering_returns_a_token_for_a_new_participant() {
    let app = spawn_app().await;
    let (token, id) = app.register("Ada@Example.com", "Ada Lovelace").await;
    let body = app.gql(Some(&token), ME, json!({})).await;
    assert_eq!(body["data"]["me"]["id"], id);
    assert_eq!(
        body["data"]["me"]["email"], "ada@example.com",
        "stored normalized"
    );
    assert_eq!(body["data"]["me"]["roles"], json!(["PARTICIPANT"]));
    let anonymous = app.gql(None, ME, json!({})).await;
    assert_eq!(anonymous["data"]["me"], json!(null));
}

#[tokio::test(crate = "crate::support::harness")]
async fn an_email_is_taken_case_insensitively_and_the_failure_writes_nothing() {
    let app = AppOptions::new().await.without_relay().spawn().await;
    app.register("ada@example.com", "Ada").await;
    let (users, outbox) = (
        app.count("identity.users").await,
        app.count("ops.outbox").await,
    );
    let body = app
        .gql(
            None,
            "mutation($i: RegisterInput!) { register(input: $i) { token } }",
            json!({ "i": { "email": "ADA@example.com", "password": PASSWORD, "displayName": "Other" } }),
        )
        .await;
    assert_eq!(code(&body), "CONFLICT");
    assert_eq!(app.count("identity.users").await, users);
    assert_eq!(
        app.count("ops.outbox").await,
        outbox,
        "no welcome email for a failed registration"
    );
}

#[tokio::test(crate = "crate::support::harness")]
async fn invalid_registrations_name_the_bad_field() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({ "email": "not-an-email", "password": PASSWORD, "displayName": "A" }),
            "input.email",
        ),
        (
            json!({ "email": "a@b.io", "password": "short", "displayName": "A" }),
            "input.password",
        ),
        (
            json!({ "email": "a@b.io", "password": PASSWORD, "displayName": "  " }),
            "input.displayName",
        ),
    ];
    for (input, field) in cases {
        let body = app
            .gql(
                None,
                "mutation($i: RegisterInput!) { register(input: $i) { token } }",
                json!({ "i": input }),
            )
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field);
    }
    assert_eq!(
        app.count("identity.users").await,
        1,
        "only the bootstrap admin exists"
    );
}

#[tokio::test(crate = "crate::support::harness")]
async fn login_checks_the_password_and_bad_tokens_are_unauthenticated() {
    let app = spawn_app().await;
    app.register("ada@example.com", "Ada").await;
    let token = app.login("ADA@example.com").await;
    assert_eq!(
        app.gql(Some(&token), ME, json!({})).await["data"]["me"]["email"],
        "ada@example.com"
    );
    for (email, password) in [
        ("ada@example.com", "wrong-password-1"),
        ("nobody@example.com", PASSWORD),
    ] {
        let body = app
            .gql(
                None,
                "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
                json!({ "e": email, "p": password }),
            )
            .await;
        assert_eq!(code(&body), "UNAUTHENTICATED");
    }
    let forged = app.gql(Some("not-a-jwt"), ME, json!({})).await;
    assert_eq!(code(&forged), "UNAUTHENTICATED");
    let public = app
        .gql(Some("not-a-jwt"), "{ platform { currency } }", json!({}))
        .await;
    assert_eq!(
        public["data"]["platform"]["currency"], "NGN",
        "public fields ignore a bad token"
    );
}

#[tokio::test(crate = "crate::support::harness")]
async fn login_is_rate_limited_per_email() {
    let app = AppOptions::new()
        .await
        .config(|c| c.rate_limits = "login=3/300".into())
        .spawn()
        .await;
    app.register("ada@example.com", "Ada").await;
    let attempt = || {
        app.gql(
            None,
            "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
            json!({ "e": "ada@example.com", "p": "wrong-password-1" }),
        )
    };
    for _ in 0..3 {
        assert_eq!(code(&attempt().await), "UNAUTHENTICATED");
    }
    let limited = attempt().await;
    assert_eq!(code(&limited), "RATE_LIMITED");
    let retry = limited["errors"][0]["extensions"]["retryAfterSeconds"]
        .as_u64()
        .expect("retryAfterSeconds");
    assert!((1..=300).contains(&retry), "retry after {retry}");
}

#[tokio::test(crate = "crate::support::harness")]
async fn login_is_rate_limited_per_client_ip_across_emails() {
    let app = AppOptions::new()
        .await
        .config(|c| c.rate_limits = "login=3/300".into())
        .spawn()
        .await;
    let app = &app;
    let attempt = |email: String| async move {
        app.gql(
            None,
            "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
            json!({ "e": email, "p": "wrong-password-1" }),
        )
        .await
    };
    // Each email is tried once, so only the per-IP window can refuse.
    for n in 0..3 {
        assert_eq!(
            code(&attempt(format!("user{n}@example.com")).await),
            "UNAUTHENTICATED"
        );
    }
    assert_eq!(
        code(&attempt("fresh@example.com".into()).await),
        "RATE_LIMITED"
    );
}

#[tokio::test(crate = "crate::support::harness")]
async fn become_host_needs_a_signed_in_user() {
    let app = spawn_app().await;
    let body = app
        .gql(None, "mutation { becomeHost { roles } }", json!({}))
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
    let (token, _) = app.register("host@example.com", "Hoster").await;
    let body = app
        .gql(Some(&token), "mutation { becomeHost { roles } }", json!({}))
        .await;
    assert_eq!(
        body["data"]["becomeHost"]["roles"],
        json!(["PARTICIPANT", "HOST"])
    );
}

#[tokio::test(crate = "crate::support::harness")]
async fn only_admins_change_roles_and_every_change_is_audited() {
    let app = spawn_app().await;
    let (user_token, user_id) = app.register("ada@example.com", "Ada").await;
    let grant = "mutation($u: ID!, $r: Role!) { grantRole(userId: $u, role: $r) { roles } }";
    let vars = json!({ "u": user_id, "r": "MERCHANT" });
    assert_eq!(
        code(&app.gql(None, grant, vars.clone()).await),
        "UNAUTHENTICATED"
    );
    assert_eq!(
        code(&app.gql(Some(&user_token), grant, vars.clone()).await),
        "FORBIDDEN"
    );

    let admin = app.admin_token().await;
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&admin)
        .header("x-correlation-id", "audit-check-1")
        .json(&json!({ "query": grant, "variables": vars }))
        .send()
        .await
        .expect("sent");
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(
        body["data"]["grantRole"]["roles"],
        json!(["PARTICIPANT", "MERCHANT"])
    );
    let me = app.gql(Some(&user_token), ME, json!({})).await;
    assert_eq!(
        me["data"]["me"]["roles"],
        json!(["PARTICIPANT", "MERCHANT"]),
        "takes effect with the old token"
    );

    let log = app
        .gql(Some(&admin), "{ auditLog(first: 5) { nodes { action subject detail correlationId actor { email } } } }", json!({}))
        .await;
    let newest = &log["data"]["auditLog"]["nodes"][0];
    assert_eq!(newest["action"], "role.grant");
    assert_eq!(newest["subject"], format!("user:{user_id}"));
    assert_eq!(newest["detail"], "MERCHANT");
    assert_eq!(newest["correlationId"], "audit-check-1");
    assert_eq!(newest["actor"]["email"], crate::support::ADMIN_EMAIL);
    assert_eq!(
        code(
            &app.gql(
                Some(&user_token),
                "{ auditLog { nodes { id } } }",
                json!({})
            )
            .await
        ),
        "FORBIDDEN"
    );

    let revoke = "mutation($u: ID!, $r: Role!) { revokeRole(userId: $u, role: $r) { roles } }";
    let body = app
        .gql(
            Some(&admin),
            revoke,
            json!({ "u": user_id, "r": "MERCHANT" }),
        )
        .await;
    assert_eq!(body["data"]["revokeRole"]["roles"], json!(["PARTICIPANT"]));
    let body = app
        .gql(
            Some(&admin),
            revoke,
            json!({ "u": user_id, "r": "PARTICIPANT" }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    assert_eq!(
        app.count("ops.audit_log").await,
        3,
        "bootstrap, grant, revoke"
    );
}

#[tokio::test(crate = "crate::support::harness")]
async fn role_changes_reject_unknown_and_malformed_users_and_keep_the_last_admin() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let admin_id = app.gql(Some(&admin), ME, json!({})).await["data"]["me"]["id"].clone();
    let grant = "mutation($u: ID!) { grantRole(userId: $u, role: HOST) { id } }";
    let body = app
        .gql(Some(&admin), grant, json!({ "u": uuid::Uuid::new_v4() }))
        .await;
    assert_eq!(code(&body), "NOT_FOUND");
    let body = app.gql(Some(&admin), grant, json!({ "u": "nope" })).await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    assert_eq!(body["errors"][0]["extensions"]["field"], "userId");
    let body = app
        .gql(
            Some(&admin),
            "mutation($u: ID!) { revokeRole(userId: $u, role: ADMIN) { id } }",
            json!({ "u": admin_id }),
        )
        .await;
    assert_eq!(code(&body), "CONFLICT");
    assert_eq!(
        app.count("ops.audit_log").await,
        1,
        "only the bootstrap entry"
    );
}

#[tokio::test(crate = "crate::support::harness")]
async fn emails_are_private_to_the_user_and_admins() {
    let app = spawn_app().await;
    let (_, ada) = app.register("ada@example.com", "Ada").await;
    let (bob_token, _) = app.register("bob@example.com", "Bob").await;
    let query = "query($id: ID!) { user(id: $id) { displayName email } }";
    let as_bob = app.gql(Some(&bob_token), query, json!({ "id": ada })).await;
    assert_eq!(
        as_bob["data"]["user"],
        json!({ "displayName": "Ada", "email": null })
    );
    let as_anonymous = app.gql(None, query, json!({ "id": ada })).await;
    assert_eq!(as_anonymous["data"]["user"]["email"], json!(null));
    let admin = app.admin_token().await;
    let as_admin = app.gql(Some(&admin), query, json!({ "id": ada })).await;
    assert_eq!(as_admin["data"]["user"]["email"], "ada@example.com");
    let missing = app
        .gql(None, query, json!({ "id": uuid::Uuid::new_v4() }))
        .await;
    assert_eq!(missing["data"]["user"], json!(null));
}
