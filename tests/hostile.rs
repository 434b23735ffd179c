//! Hostile requests: fragment bombs, NUL and control characters in
//! strings, top-ups past the maximum and past the largest balance, and
//! the contract's code on every error, over POST, GET and the WebSocket.

use giftdrop_domain::payments::webhook::{SIGNATURE_HEADER, sign};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support::ws::WsClient;
use crate::support::{AppOptions, TestApp, code, spawn_app};

/// `levels` fragments, each spreading the one before twice: 2^levels
/// `platform` fields once expanded, in under 40 bytes a level.
fn bomb(levels: usize) -> String {
    let mut query =
        format!("query {{ ...F{levels} }} fragment F0 on Query {{ platform {{ currency }} }}");
    for i in 1..=levels {
        query.push_str(&format!(
            " fragment F{i} on Query {{ ...F{} ...F{} }}",
            i - 1,
            i - 1
        ));
    }
    query
}

/// The request's only error, asserting nothing ran (`data` null).
fn only_error(body: &Value) -> &Value {
    assert_eq!(body["data"], Value::Null, "{body}");
    assert_eq!(body["errors"].as_array().map(Vec::len), Some(1), "{body}");
    &body["errors"][0]
}

#[tokio::test(crate = "crate::support::harness")]
async fn fragment_bombs_are_refused_with_a_code_before_they_expand() {
    let app = spawn_app().await;
    // 24 levels is a 913-byte document; 30 would take async-graphql's own
    // walks minutes; 200 nests deeper than any walk may go.
    for levels in [10, 24, 30, 200] {
        let body = app.gql(None, &bomb(levels), json!({})).await;
        let error = only_error(&body);
        assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{body}");
        let message = error["message"].as_str().expect("message");
        assert!(
            ["too complex", "too large", "recursion depth"]
                .iter()
                .any(|why| message.contains(why)),
            "{levels} levels: {message}"
        );
    }
    // `__typename` has no complexity: only the expanded size refuses it.
    let typenames = bomb(20).replace("platform { currency }", "__typename");
    let body = app.gql(None, &typenames, json!({})).await;
    let error = only_error(&body);
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{body}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("too large")),
        "{body}"
    );
}

const REGISTER: &str = "mutation($i: RegisterInput!) { register(input: $i) { token } }";
const LOGIN: &str =
    "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }";

/// Asserts `body` is a `BAD_USER_INPUT` refusal on `field`.
fn bad_input_on(body: &Value, field: &str) {
    let error = only_error(body);
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{body}");
    assert_eq!(error["extensions"]["field"], field, "{body}");
}

#[tokio::test(crate = "crate::support::harness")]
async fn nul_and_control_characters_in_strings_are_bad_user_input() {
    let app = spawn_app().await;
    let (token, _) = app.register("keeper@example.com", "Keeper").await;
    let users = app.count("identity.users").await;
    for email in ["nul\u{0}@example.com", "bell\u{7}@example.com"] {
        let register = app
            .gql(
                None,
                REGISTER,
                json!({ "i": { "email": email, "password": "long-enough-password", "displayName": "Eve" } }),
            )
            .await;
        bad_input_on(&register, "input.email");
        let login = app
            .gql(
                None,
                LOGIN,
                json!({ "e": email, "p": "long-enough-password" }),
            )
            .await;
        bad_input_on(&login, "email");
    }
    assert_eq!(app.count("identity.users").await, users, "nothing written");

    let merchant = app
        .ok(
            Some(&token),
            "mutation { registerMerchant(input: { name: \"Corner\", payoutAccount: \"0123\" }) { id } }",
            json!({}),
            "registerMerchant",
        )
        .await;
    let add = app
        .gql(
            Some(&token),
            "mutation($m: ID!, $e: String!) { addMerchantStaff(merchantId: $m, email: $e) { id } }",
            json!({ "m": merchant["id"], "e": "staff\u{0}@example.com" }),
        )
        .await;
    bad_input_on(&add, "email");

    // Any other text: a NUL in a literal of the document, and in a
    // variable deep in an input object.
    let literal = app
        .gql(
            Some(&token),
            "mutation { registerMerchant(input: { name: \"Nul\\u0000Shop\", payoutAccount: \"1\" }) { id } }",
            json!({}),
        )
        .await;
    bad_input_on(&literal, "input.name");
    let branch = app
        .gql(
            Some(&token),
            "mutation($m: ID!, $i: BranchInput!) { addBranch(merchantId: $m, input: $i) { id } }",
            json!({ "m": merchant["id"], "i": { "name": "Main", "address": "1 Marina\u{0}" } }),
        )
        .await;
    bad_input_on(&branch, "input.address");
    assert_eq!(app.count("giftcard.merchants").await, 1, "nothing written");
    assert_eq!(app.count("giftcard.branches").await, 0, "nothing written");
}

const INITIATE: &str =
    "mutation($i: TopupInput!) { initiateTopup(input: $i) { id reference status } }";
const WEBHOOK_SECRET: &str = "whsec-hostile-tests";

async fn initiate(app: &TestApp, token: &str, amount: i64) -> Value {
    app.gql(
        Some(token),
        INITIATE,
        json!({ "i": { "amount": amount.to_string(), "idempotencyKey": uuid::Uuid::new_v4().to_string() } }),
    )
    .await
}

/// Delivers a signed `charge.success` for `reference`; (status, body).
async fn deliver_success(app: &TestApp, reference: &str, amount: i64) -> (u16, Value) {
    let body = json!({ "event": "charge.success", "data": {
        "reference": reference, "amount": amount.to_string(), "fee": "0" } })
    .to_string();
    let response = app
        .client
        .post(app.url("/webhooks/payments"))
        .header("content-type", "application/json")
        .header(
            SIGNATURE_HEADER,
            sign(&SecretString::from(WEBHOOK_SECRET), body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .expect("webhook sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON answer"))
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_top_up_over_the_maximum_is_bad_user_input_and_writes_nothing() {
    let app = AppOptions::new()
        .await
        .config(|c| c.topup_max_amount = 500_000)
        .spawn()
        .await;
    let (token, _) = app.register("big@example.com", "Big Spender").await;
    for amount in [500_001, i64::MAX] {
        let body = initiate(&app, &token, amount).await;
        bad_input_on(&body, "input.amount");
    }
    assert_eq!(app.count("ledger.topups").await, 0, "nothing written");
    let at_max = initiate(&app, &token, 500_000).await;
    assert_eq!(at_max["errors"], Value::Null, "{at_max}");
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_credit_the_wallet_cannot_hold_fails_the_topup_and_stops_the_retries() {
    // The maximum as high as it goes: the ledger itself must hold the line.
    let app = AppOptions::new()
        .await
        .config(|c| {
            c.topup_max_amount = i64::MAX;
            c.payment_webhook_secret = Some(SecretString::from(WEBHOOK_SECRET));
        })
        .spawn()
        .await;
    let (token, _) = app.register("whale@example.com", "Whale").await;
    let first = initiate(&app, &token, i64::MAX - 50).await;
    let reference = first["data"]["initiateTopup"]["reference"]
        .as_str()
        .unwrap_or_else(|| panic!("{first}"));
    assert_eq!(
        deliver_success(&app, reference, i64::MAX - 50).await,
        (200, json!({ "outcome": "credited" }))
    );
    let entries = app.count("ledger.entries").await;

    let next = initiate(&app, &token, 100).await;
    let next = &next["data"]["initiateTopup"];
    let reference = next["reference"].as_str().expect("reference");
    // Answered 200, so the provider stops; the topup is FAILED for review.
    assert_eq!(
        deliver_success(&app, reference, 100).await,
        (200, json!({ "outcome": "failed" }))
    );
    assert_eq!(
        deliver_success(&app, reference, 100).await,
        (200, json!({ "outcome": "duplicate" }))
    );
    let topup = app
        .ok(
            Some(&token),
            "query($id: ID!) { topup(id: $id) { status } }",
            json!({ "id": next["id"] }),
            "topup",
        )
        .await;
    assert_eq!(topup["status"], "FAILED", "{topup}");
    assert_eq!(
        app.my_balance(&token).await,
        i64::MAX - 50,
        "nothing credited"
    );
    assert_eq!(
        app.count("ledger.entries").await,
        entries,
        "no partial posting"
    );
    // A reference Postgres could not even compare is unknown, not a 500.
    assert_eq!(
        deliver_success(&app, "tp_\u{0}", 100).await,
        (404, json!({ "outcome": "unknown_reference" }))
    );
}

/// Documents the contract refuses before running anything, with the
/// variables and operation name they come with.
fn bad_documents() -> Vec<(&'static str, String, Value, Option<&'static str>)> {
    let deep = format!(
        "{{ __schema {{ queryType {{ fields {{ type {{ {}name{} }} }} }} }} }}",
        "ofType { ".repeat(16),
        " }".repeat(16)
    );
    let complex: String = (0..501).map(|_| "platform { currency } ").collect();
    let aliases: String = (0..31)
        .map(|i| format!("a{i}: platform {{ currency }} "))
        .collect();
    let page = "{ pageInfo { hasNextPage } }";
    let two = "query A { platform { currency } } query B { me { id } }";
    vec![
        (
            "parse error",
            "{ platform { currency }".into(),
            json!({}),
            None,
        ),
        ("unknown field", "{ nope }".into(), json!({}), None),
        (
            "unknown argument",
            "{ platform(x: 1) { currency } }".into(),
            json!({}),
            None,
        ),
        (
            "wrong literal type",
            format!("{{ merchants(first: \"ten\") {page} }}"),
            json!({}),
            None,
        ),
        (
            "bad enum value",
            format!("{{ merchants(status: NOPE) {page} }}"),
            json!({}),
            None,
        ),
        (
            "bad variable value",
            format!("query($n: Int) {{ merchants(first: $n) {page} }}"),
            json!({ "n": "ten" }),
            None,
        ),
        (
            "missing required variable",
            "query($id: ID!) { event(id: $id) { id } }".into(),
            json!({}),
            None,
        ),
        (
            "undefined variable",
            "{ event(id: $id) { id } }".into(),
            json!({}),
            None,
        ),
        ("over depth", deep, json!({}), None),
        (
            "over complexity",
            format!("{{ {complex} }}"),
            json!({}),
            None,
        ),
        (
            "too many aliases",
            format!("{{ {aliases} }}"),
            json!({}),
            None,
        ),
        ("fragment bomb", bomb(30), json!({}), None),
        ("unknown operationName", two.into(), json!({}), Some("C")),
        ("no operationName among two", two.into(), json!({}), None),
    ]
}

/// `GET /graphql` with the request in the query string.
async fn get(
    app: &TestApp,
    query: &str,
    variables: &Value,
    operation: Option<&str>,
) -> (u16, Value) {
    let variables = variables.to_string();
    let mut params = vec![("query", query), ("variables", variables.as_str())];
    if let Some(operation) = operation {
        params.push(("operationName", operation));
    }
    let url = reqwest::Url::parse_with_params(&app.url("/graphql"), &params).expect("url");
    let response = app.client.get(url).send().await.expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

#[tokio::test(crate = "crate::support::harness")]
async fn every_refused_document_carries_the_contract_code() {
    let app = spawn_app().await;
    for (what, query, variables, operation) in bad_documents() {
        let mut request = json!({ "query": query, "variables": variables });
        if let Some(operation) = operation {
            request["operationName"] = json!(operation);
        }
        let response = app
            .client
            .post(app.url("/graphql"))
            .json(&request)
            .send()
            .await
            .expect("sent");
        let body: Value = response.json().await.expect("JSON body");
        assert_eq!(code(&body), "BAD_USER_INPUT", "POST, {what}: {body}");
        let (status, body) = get(&app, &query, &variables, operation).await;
        assert_eq!(
            (status, code(&body)),
            (200, "BAD_USER_INPUT"),
            "GET, {what}: {body}"
        );
        for error in body["errors"].as_array().expect("errors") {
            assert!(
                error["extensions"]["code"].is_string(),
                "GET, {what}: {body}"
            );
        }
    }
    let (status, body) = get(&app, "mutation { becomeHost { id } }", &json!({}), None).await;
    assert_eq!((status, code(&body)), (405, "METHOD_NOT_ALLOWED"), "{body}");
}

#[tokio::test(crate = "crate::support::harness")]
async fn get_reads_operation_name_as_the_spec_names_it() {
    let app = spawn_app().await;
    let two = "query A { platform { currency } } query B { me { id } }";
    let (status, body) = get(&app, two, &json!({}), Some("A")).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({ "data": { "platform": { "currency": "NGN" } } })
    );
    let (_, body) = get(&app, "{ platform { currency } }", &json!({}), Some("")).await;
    assert_eq!(
        body["data"]["platform"]["currency"], "NGN",
        "an empty name is none: {body}"
    );
}

#[tokio::test(crate = "crate::support::harness")]
async fn refused_subscriptions_carry_the_contract_code() {
    let app = spawn_app().await;
    let (token, _) = app.register("listener@example.com", "Listener").await;
    let mut client = WsClient::ready(&app.ws_url(), Some(&token)).await;
    let cases = [
        ("unknown", "subscription { nope }".to_owned()),
        ("bomb", bomb(30).replace("query", "subscription")),
        ("parse", "subscription {".to_owned()),
    ];
    for (id, query) in cases {
        client.subscribe(id, &query).await;
        let refused = client.next_of("error", id).await;
        assert_eq!(
            refused["payload"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{id}: {refused}"
        );
    }
}
