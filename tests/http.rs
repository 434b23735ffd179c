//! The HTTP transport: methods, media types, batches, limits, correlation
//! ids, GraphiQL, production hardening, internal errors.

use serde_json::{Value, json};

use crate::support::{AppOptions, TestApp, code, spawn_app};

#[tokio::test(crate = "crate::support::harness")]
async fn every_response_carries_a_correlation_id() {
    let app = spawn_app().await;
    let own = app
        .client
        .get(app.url("/health/live"))
        .header("x-correlation-id", "req-42.a_b")
        .send()
        .await
        .expect("sent");
    assert_eq!(own.headers()["x-correlation-id"], "req-42.a_b");
    let bad = app
        .client
        .get(app.url("/health/live"))
        .header("x-correlation-id", "has spaces!")
        .send()
        .await
        .expect("sent");
    let generated = bad.headers()["x-correlation-id"].to_str().expect("ascii");
    assert!(!generated.is_empty() && generated != "has spaces!");
    let missing = app
        .client
        .get(app.url("/nowhere"))
        .send()
        .await
        .expect("sent");
    assert_eq!(missing.status(), 404);
    assert!(missing.headers().contains_key("x-correlation-id"));
}

fn with_query(app: &crate::support::TestApp, query: &str) -> reqwest::Url {
    reqwest::Url::parse_with_params(&app.url("/graphql"), &[("query", query)]).expect("valid url")
}

#[tokio::test(crate = "crate::support::harness")]
async fn mutations_never_run_over_get() {
    let app = spawn_app().await;
    let query = app
        .client
        .get(with_query(&app, "{ platform { currency } }"))
        .send()
        .await
        .expect("sent");
    assert_eq!(query.status(), 200);
    assert_eq!(
        query.json::<Value>().await.expect("json")["data"]["platform"]["currency"],
        "NGN"
    );
    let mutation = app
        .client
        .get(with_query(&app, "mutation { becomeHost { id } }"))
        .send()
        .await
        .expect("sent");
    assert_eq!(mutation.status(), 405);
    assert_eq!(mutation.headers()["allow"], "POST");
}

#[tokio::test(crate = "crate::support::harness")]
async fn posts_must_be_single_json_operations() {
    let app = spawn_app().await;
    let form = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("query=mutation%20%7BbecomeHost%7Bid%7D%7D")
        .send()
        .await
        .expect("sent");
    assert_eq!(form.status(), 415);
    let batch = app
        .client
        .post(app.url("/graphql"))
        .json(&json!([{ "query": "{ platform { currency } }" }, { "query": "{ platform { currency } }" }]))
        .send()
        .await
        .expect("sent");
    assert_eq!(batch.status(), 400);
    assert!(
        batch.json::<Value>().await.expect("json")["errors"][0]["message"]
            .as_str()
            .expect("message")
            .contains("Batch")
    );
}

#[tokio::test(crate = "crate::support::harness")]
async fn query_shape_limits_refuse_before_execution() {
    let app = spawn_app().await;
    let aliases: String = (0..31)
        .map(|i| format!("a{i}: platform {{ currency }} "))
        .collect();
    // Short enough to be cached, and too long for the document cache.
    for padding in [0, 9 * 1024] {
        let query = format!("# {}\n{{ {aliases} }}", "x".repeat(padding));
        let body = app.gql(None, &query, json!({})).await;
        assert_eq!(body["data"], Value::Null, "padding {padding}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .expect("message")
                .contains("aliases"),
            "padding {padding}: {body}"
        );
    }
    let deep = format!(
        "{{ __schema {{ queryType {{ fields {{ type {{ {}name{} }} }} }} }} }}",
        "ofType { ".repeat(16),
        " }".repeat(16)
    );
    let body = app.gql(None, &deep, json!({})).await;
    assert_eq!(body["data"], Value::Null);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .expect("message")
            .contains("nested too deep"),
        "{body}"
    );
}

#[tokio::test(crate = "crate::support::harness")]
async fn graphiql_is_served_to_browsers_in_development() {
    let app = spawn_app().await;
    let page = app
        .client
        .get(app.url("/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .expect("sent");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("text");
    assert!(html.contains("graphiql") && html.contains("/graphql/ws"));
}

#[tokio::test(crate = "crate::support::harness")]
async fn production_turns_off_graphiql_introspection_and_suggestions() {
    let app = AppOptions::new()
        .await
        .config(|c| {
            // Production refuses the test defaults: sandbox, published secrets.
            crate::production::safe_production(c);
        })
        .mode(true, false)
        .spawn()
        .await;
    let page = app
        .client
        .get(app.url("/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .expect("sent");
    assert!(!page.text().await.expect("text").contains("graphiql"));
    let body = app
        .gql(None, "{ __schema { queryType { name } } }", json!({}))
        .await;
    assert_eq!(
        body["data"]["__schema"],
        Value::Null,
        "introspection refused: {body}"
    );
    let body = app.gql(None, "{ platfor { currency } }", json!({})).await;
    let message = body["errors"][0]["message"].as_str().expect("message");
    assert!(
        !message.contains("Did you mean"),
        "no suggestions: {message}"
    );
}

/// The body of `query` posted with correlation id `correlation`.
async fn traced(app: &TestApp, token: Option<&str>, correlation: &str, query: &str) -> Value {
    let mut request = app
        .client
        .post(app.url("/graphql"))
        .header("x-correlation-id", correlation)
        .json(&json!({ "query": query }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json")
}

#[tokio::test(crate = "crate::support::harness")]
async fn internal_errors_are_generic_and_carry_the_correlation_id() {
    let app = spawn_app().await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    sea_orm::ConnectionTrait::execute_unprepared(
        &app.db,
        "ALTER TABLE identity.user_roles RENAME TO user_roles_gone",
    )
    .await
    .expect("break the schema of this test's own database");
    let body = traced(&app, Some(&token), "boom-1", "{ me { id } }").await;
    assert_eq!(code(&body), "INTERNAL");
    assert_eq!(body["errors"][0]["extensions"]["correlationId"], "boom-1");
    let text = body.to_string();
    for leak in [
        "user_roles",
        "does not exist",
        "SELECT",
        "sqlx",
        "identity.",
    ] {
        assert!(!text.contains(leak), "{leak} leaked: {text}");
    }
    // The same inside execution: a resolver's failure, for an anonymous caller.
    sea_orm::ConnectionTrait::execute_unprepared(
        &app.db,
        "ALTER TABLE giveaway.events RENAME TO events_gone",
    )
    .await
    .expect("break another table of this test's own database");
    let body = traced(
        &app,
        None,
        "boom-2",
        "{ events(first: 1) { nodes { id } } }",
    )
    .await;
    assert_eq!(code(&body), "INTERNAL", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["correlationId"], "boom-2");
    assert!(!body.to_string().contains("events_gone"), "{body}");
    // Identical queries at once share executions: each failure still
    // carries the id its own request was sent with.
    let ids: Vec<String> = (0..16).map(|i| format!("boom-at-once-{i}")).collect();
    let bodies = futures_util::future::join_all(
        ids.iter()
            .map(|id| traced(&app, None, id, "{ events(first: 1) { nodes { id } } }")),
    )
    .await;
    for (id, body) in ids.iter().zip(&bodies) {
        assert_eq!(code(body), "INTERNAL", "{body}");
        assert_eq!(
            body["errors"][0]["extensions"]["correlationId"],
            id.as_str()
        );
    }
}
