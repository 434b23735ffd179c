//! Wallets and top-ups through the API (FLOWS.md §3): the sandbox
//! provider, the signed webhook, idempotency keys, rate limits, the balance
//! cache and `walletUpdated`.

use futures_util::future::join_all;
use giftdrop_domain::payments::webhook;
use serde_json::{Value, json};

use crate::support::market::platform_balance;
use crate::support::proxy::RedisProxy;
use crate::support::ws::WsClient;
use crate::support::{AppOptions, TestApp, code, scalar, spawn_app};

const INITIATE: &str = "mutation($i: TopupInput!) { initiateTopup(input: $i) { id reference amount fee status checkoutUrl completedAt } }";
const WALLET: &str = "{ me { wallet { id kind currency balance entries { nodes { kind direction amount balanceAfter reference } pageInfo { hasNextPage endCursor } } } } }";
const TOPUP: &str = "query($id: ID!) { topup(id: $id) { id status amount fee completedAt } }";

/// `initiateTopup` with a raw JSON amount; the whole response body.
async fn initiate(app: &TestApp, token: &str, amount: Value, key: &str) -> Value {
    app.gql(
        Some(token),
        INITIATE,
        json!({ "i": { "amount": amount, "idempotencyKey": key } }),
    )
    .await
}

/// A started topup of `minor`; its `initiateTopup` object.
async fn started(app: &TestApp, token: &str, minor: i64, key: &str) -> Value {
    let body = initiate(app, token, json!(minor.to_string()), key).await;
    let topup = body["data"]["initiateTopup"].clone();
    assert!(topup.is_object(), "initiateTopup failed: {body}");
    topup
}

/// POSTs to the sandbox checkout's `action` (`pay` or `fail`); the status
/// and JSON body.
async fn sandbox(app: &TestApp, topup: &Value, action: &str) -> (u16, Value) {
    let url = format!(
        "{}/{action}",
        topup["checkoutUrl"].as_str().expect("checkoutUrl")
    );
    let response = app.client.post(url).send().await.expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

/// A webhook body for `reference`.
fn notification(event: &str, reference: &str, amount: &str, fee: &str) -> String {
    json!({ "event": event, "data": { "reference": reference, "amount": amount, "fee": fee } })
        .to_string()
}

/// Delivers `body` to the webhook with `signature`; the status.
async fn deliver(app: &TestApp, body: &str, signature: Option<&str>) -> u16 {
    let mut request = app
        .client
        .post(app.url("/webhooks/payments"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(signature) = signature {
        request = request.header(webhook::SIGNATURE_HEADER, signature);
    }
    request.send().await.expect("sent").status().as_u16()
}

/// `body` signed with the app's webhook secret.
fn signed(app: &TestApp, body: &str) -> String {
    webhook::sign(
        &app.running().services.payments.webhook_secret,
        body.as_bytes(),
    )
}

async fn wallet(app: &TestApp, token: &str) -> Value {
    let body = app.gql(Some(token), WALLET, json!({})).await;
    let wallet = body["data"]["me"]["wallet"].clone();
    assert!(wallet.is_object(), "no wallet: {body}");
    wallet
}

async fn ledger_total(app: &TestApp) -> i128 {
    giftdrop_domain::ledger::total(&app.db)
        .await
        .expect("total")
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_sandbox_topup_credits_the_wallet_and_books_the_fee_exactly_once() {
    let app = spawn_app().await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    // Read first, so a cached zero balance exists and must be invalidated.
    let before = wallet(&app, &token).await;
    assert_eq!(before["balance"], "0");
    assert_eq!(before["kind"], "USER");
    assert_eq!(before["currency"], "NGN");

    let topup = started(&app, &token, 250_000, "first").await;
    let reference = topup["reference"].as_str().expect("reference");
    assert_eq!(topup["status"], "PENDING");
    assert_eq!(topup["amount"], "250000");
    assert_eq!(topup["fee"], Value::Null);
    assert_eq!(topup["completedAt"], Value::Null);
    assert_eq!(
        topup["checkoutUrl"],
        app.url(&format!("/sandbox/checkout/{reference}"))
    );

    let (status, body) = sandbox(&app, &topup, "pay").await;
    assert_eq!((status, &body["outcome"]), (200, &json!("credited")));

    let after = wallet(&app, &token).await;
    assert_eq!(
        after["balance"], "250000",
        "the cached balance was invalidated"
    );
    assert_eq!(
        after["entries"]["nodes"],
        json!([{ "kind": "TOPUP", "direction": "CREDIT", "amount": "250000", "balanceAfter": "250000", "reference": reference }])
    );
    let confirmed = app
        .gql(Some(&token), TOPUP, json!({ "id": topup["id"] }))
        .await;
    assert_eq!(confirmed["data"]["topup"]["status"], "SUCCEEDED");
    // 250000 x 150 bps = 3750.
    assert_eq!(confirmed["data"]["topup"]["fee"], "3750");
    assert!(confirmed["data"]["topup"]["completedAt"].is_string());
    assert_eq!(platform_balance(&app, "PROVIDER_FEES").await, -3_750);
    assert_eq!(platform_balance(&app, "PROVIDER_CLEARING").await, -246_250);
    assert_eq!(ledger_total(&app).await, 0);

    // Paying again is a duplicate delivery: 200, nothing changes.
    let (status, body) = sandbox(&app, &topup, "pay").await;
    assert_eq!((status, &body["outcome"]), (200, &json!("duplicate")));
    assert_eq!(wallet(&app, &token).await["balance"], "250000");
    assert_eq!(app.count("ledger.transfers").await, 1);
}

#[tokio::test(crate = "crate::support::harness")]
async fn webhook_refusals_change_nothing_and_a_wrong_amount_flags_the_topup() {
    let app = spawn_app().await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let topup = started(&app, &token, 10_000, "k").await;
    let reference = topup["reference"].as_str().expect("reference");
    let good = notification("charge.success", reference, "10000", "150");

    assert_eq!(deliver(&app, &good, None).await, 401, "no signature");
    assert_eq!(
        deliver(&app, &good, Some("00ff")).await,
        401,
        "wrong signature"
    );
    let tampered = notification("charge.success", reference, "10000", "0");
    assert_eq!(
        deliver(&app, &tampered, Some(&signed(&app, &good))).await,
        401,
        "signature of another body"
    );
    let unknown = notification("charge.success", "tp_nobody", "10000", "150");
    assert_eq!(
        deliver(&app, &unknown, Some(&signed(&app, &unknown))).await,
        404
    );
    let garbled = r#"{"event":"charge.success","data":{"reference":"x","amount":"ten"}}"#;
    assert_eq!(
        deliver(&app, garbled, Some(&signed(&app, garbled))).await,
        400
    );
    assert_eq!(app.count("ledger.transfers").await, 0);
    let pending = app
        .gql(Some(&token), TOPUP, json!({ "id": topup["id"] }))
        .await;
    assert_eq!(pending["data"]["topup"]["status"], "PENDING");

    // A different amount: 422, and the topup is FAILED for review.
    let wrong = notification("charge.success", reference, "10001", "150");
    assert_eq!(
        deliver(&app, &wrong, Some(&signed(&app, &wrong))).await,
        422
    );
    let flagged = app
        .gql(Some(&token), TOPUP, json!({ "id": topup["id"] }))
        .await;
    assert_eq!(flagged["data"]["topup"]["status"], "FAILED");
    // ... so the right amount, arriving later, credits nothing.
    assert_eq!(deliver(&app, &good, Some(&signed(&app, &good))).await, 200);
    assert_eq!(app.count("ledger.transfers").await, 0);
    assert_eq!(wallet(&app, &token).await["balance"], "0");
}

#[tokio::test(crate = "crate::support::harness")]
async fn concurrent_duplicate_deliveries_credit_exactly_once() {
    let app = spawn_app().await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let topup = started(&app, &token, 500_000, "k").await;
    let reference = topup["reference"].as_str().expect("reference");
    let body = notification("charge.success", reference, "500000", "7500");
    let signature = signed(&app, &body);

    let statuses = join_all((0..16).map(|_| deliver(&app, &body, Some(&signature)))).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        scalar(
            &app.db,
            &format!("SELECT count(*) FROM ledger.transfers WHERE reference = '{reference}'")
        )
        .await,
        1
    );
    assert_eq!(wallet(&app, &token).await["balance"], "500000");
    assert_eq!(ledger_total(&app).await, 0);
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_failed_charge_marks_the_topup_failed_and_credits_nothing() {
    let app = spawn_app().await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let topup = started(&app, &token, 10_000, "k").await;
    let (status, body) = sandbox(&app, &topup, "fail").await;
    assert_eq!((status, &body["outcome"]), (200, &json!("failed")));
    let failed = app
        .gql(Some(&token), TOPUP, json!({ "id": topup["id"] }))
        .await;
    assert_eq!(failed["data"]["topup"]["status"], "FAILED");
    assert!(failed["data"]["topup"]["completedAt"].is_string());
    assert_eq!(failed["data"]["topup"]["fee"], Value::Null);

    let (status, body) = sandbox(&app, &topup, "pay").await;
    assert_eq!((status, &body["outcome"]), (200, &json!("duplicate")));
    assert_eq!(app.count("ledger.transfers").await, 0);
    assert_eq!(wallet(&app, &token).await["balance"], "0");
}

#[tokio::test(crate = "crate::support::harness")]
async fn fifty_concurrent_initiations_with_one_key_make_one_topup() {
    let app = spawn_app().await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let bodies = join_all((0..50).map(|_| initiate(&app, &token, json!("250000"), "same"))).await;
    let ids: Vec<&Value> = bodies
        .iter()
        .map(|b| &b["data"]["initiateTopup"]["id"])
        .filter(|id| id.is_string())
        .collect();
    assert!(!ids.is_empty(), "{bodies:?}");
    assert!(ids.iter().all(|id| *id == ids[0]), "one topup id: {ids:?}");
    for body in &bodies {
        if body["data"]["initiateTopup"].is_null() {
            assert_eq!(code(body), "IDEMPOTENCY_KEY_IN_USE", "{body}");
        }
    }
    assert_eq!(app.count("ledger.topups").await, 1);

    let replay = started(&app, &token, 250_000, "same").await;
    assert_eq!(&replay["id"], ids[0], "a replay returns the same topup");

    let changed = initiate(&app, &token, json!(250_001), "same").await;
    assert_eq!(code(&changed), "IDEMPOTENCY_KEY_REUSED", "{changed}");
    assert_eq!(app.count("ledger.topups").await, 1);

    // Keys are scoped per caller: another user's "same" is their own.
    let (other, _) = app.register("bob@example.com", "Bob").await;
    let theirs = started(&app, &other, 250_000, "same").await;
    assert_ne!(&theirs["id"], ids[0]);
    assert_eq!(app.count("ledger.topups").await, 2);
}

#[tokio::test(crate = "crate::support::harness")]
async fn bad_amounts_and_keys_are_bad_user_input_and_store_nothing() {
    let app = spawn_app().await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    for amount in [
        json!(0),
        json!("0"),
        json!(-5),
        json!("-5"),
        json!(1.5),
        json!("1.5"),
        json!("12abc"),
        json!(""),
        json!("9223372036854775808"),
        json!(true),
    ] {
        let body = initiate(&app, &token, amount.clone(), "k").await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{amount}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["field"], "input.amount",
            "{amount}"
        );
    }
    for key in [String::new(), "k".repeat(256), "tab\there".to_owned()] {
        let body = initiate(&app, &token, json!("100"), &key).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{key:?}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["field"],
            "input.idempotencyKey"
        );
    }
    // An amount in a query literal gets the same treatment.
    let literal = app
        .gql(
            Some(&token),
            r#"mutation { initiateTopup(input: { amount: -1, idempotencyKey: "k" }) { id } }"#,
            json!({}),
        )
        .await;
    assert_eq!(code(&literal), "BAD_USER_INPUT", "{literal}");
    assert_eq!(app.count("ledger.topups").await, 0);
    assert_eq!(app.count("ledger.idempotency_keys").await, 0);

    // Validation failures are not stored: the key still works.
    started(&app, &token, 100, "k").await;
    assert_eq!(app.count("ledger.topups").await, 1);
}

#[tokio::test(crate = "crate::support::harness")]
async fn initiate_topup_is_rate_limited_per_user() {
    let app = AppOptions::new()
        .await
        .config(|c| c.rate_limits = "topup=2/3600".into())
        .spawn()
        .await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    started(&app, &token, 100, "a").await;
    started(&app, &token, 100, "b").await;
    let limited = initiate(&app, &token, json!("100"), "c").await;
    assert_eq!(code(&limited), "RATE_LIMITED", "{limited}");
    let retry = limited["errors"][0]["extensions"]["retryAfterSeconds"]
        .as_u64()
        .expect("retryAfterSeconds");
    assert!((1..=3600).contains(&retry), "{retry}");
    assert_eq!(app.count("ledger.topups").await, 2);
    // A replay of a finished key is not a new attempt.
    started(&app, &token, 100, "a").await;
    // Another user has their own window.
    let (other, _) = app.register("bob@example.com", "Bob").await;
    started(&app, &other, 100, "c").await;
    assert_eq!(app.count("ledger.topups").await, 3);
}

#[tokio::test(crate = "crate::support::harness")]
async fn wallet_fields_are_for_the_owner_and_admins_only() {
    let app = spawn_app().await;
    let (owner, owner_id) = app.register("ada@example.com", "Ada").await;
    let (other, _) = app.register("bob@example.com", "Bob").await;
    let admin = app.admin_token().await;
    let topup = started(&app, &owner, 1_000, "k").await;
    sandbox(&app, &topup, "pay").await;

    let user_wallet =
        "query($u: ID!) { user(id: $u) { wallet { balance entries { nodes { amount } } } } }";
    let seen = |token: Option<String>| {
        let app = &app;
        let owner_id = owner_id.clone();
        async move {
            app.gql(token.as_deref(), user_wallet, json!({ "u": owner_id }))
                .await
        }
    };
    let anonymous = seen(None).await;
    assert_eq!(
        anonymous["data"]["user"]["wallet"],
        Value::Null,
        "{anonymous}"
    );
    let stranger = seen(Some(other.clone())).await;
    assert_eq!(
        stranger["data"]["user"]["wallet"],
        Value::Null,
        "{stranger}"
    );
    for token in [owner.clone(), admin.clone()] {
        let body = seen(Some(token)).await;
        assert_eq!(body["data"]["user"]["wallet"]["balance"], "1000", "{body}");
        assert_eq!(
            body["data"]["user"]["wallet"]["entries"]["nodes"],
            json!([{ "amount": "1000" }])
        );
    }
    let me = app.gql(None, WALLET, json!({})).await;
    assert_eq!(me["data"]["me"], Value::Null);

    // topup(id): the owner and admins; strangers cannot tell it exists.
    let id = &topup["id"];
    let anonymous = app.gql(None, TOPUP, json!({ "id": id })).await;
    assert_eq!(code(&anonymous), "UNAUTHENTICATED");
    let stranger = app.gql(Some(&other), TOPUP, json!({ "id": id })).await;
    assert_eq!(stranger["data"]["topup"], Value::Null, "{stranger}");
    assert!(stranger["errors"].is_null());
    for token in [&owner, &admin] {
        let body = app.gql(Some(token), TOPUP, json!({ "id": id })).await;
        assert_eq!(&body["data"]["topup"]["id"], id, "{body}");
    }
    let malformed = app.gql(Some(&owner), TOPUP, json!({ "id": "nope" })).await;
    assert_eq!(code(&malformed), "BAD_USER_INPUT");

    let anonymous = app
        .gql(
            None,
            INITIATE,
            json!({ "i": { "amount": "100", "idempotencyKey": "k" } }),
        )
        .await;
    assert_eq!(code(&anonymous), "UNAUTHENTICATED", "{anonymous}");
    let mut socket = WsClient::ready(&app.ws_url(), None).await;
    socket
        .subscribe("w", "subscription { walletUpdated { balance } }")
        .await;
    let refused = socket.next().await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(
        refused["payload"][0]["extensions"]["code"],
        "UNAUTHENTICATED"
    );
}

#[tokio::test(crate = "crate::support::harness")]
async fn entries_are_newest_first_with_cursor_pagination() {
    let app = spawn_app().await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    for (i, minor) in [100, 200, 300].into_iter().enumerate() {
        let topup = started(&app, &token, minor, &format!("k{i}")).await;
        sandbox(&app, &topup, "pay").await;
    }
    // Sandbox fees are amount x 150 bps rounded half up: 1.5 -> 2, 3,
    // 4.5 -> 5 (truncating would give 8, rounding half to even 9).
    assert_eq!(platform_balance(&app, "PROVIDER_FEES").await, -10);
    let page = "query($after: String) { me { wallet { entries(first: 2, after: $after) { edges { cursor node { amount balanceAfter } } pageInfo { hasNextPage endCursor } } } } }";
    let first = app.gql(Some(&token), page, json!({})).await;
    let entries = &first["data"]["me"]["wallet"]["entries"];
    let nodes: Vec<&Value> = entries["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| &e["node"])
        .collect();
    assert_eq!(
        nodes,
        [
            &json!({ "amount": "300", "balanceAfter": "600" }),
            &json!({ "amount": "200", "balanceAfter": "300" })
        ]
    );
    assert_eq!(entries["pageInfo"]["hasNextPage"], true);
    assert_eq!(
        entries["pageInfo"]["endCursor"],
        entries["edges"][1]["cursor"]
    );

    let second = app
        .gql(
            Some(&token),
            page,
            json!({ "after": entries["pageInfo"]["endCursor"] }),
        )
        .await;
    let rest = &second["data"]["me"]["wallet"]["entries"];
    assert_eq!(
        rest["edges"][0]["node"],
        json!({ "amount": "100", "balanceAfter": "100" })
    );
    assert_eq!(rest["edges"].as_array().map(Vec::len), Some(1));
    assert_eq!(rest["pageInfo"]["hasNextPage"], false);

    let bad = app
        .gql(Some(&token), page, json!({ "after": "not-a-cursor" }))
        .await;
    assert_eq!(code(&bad), "BAD_USER_INPUT");
    let too_many = app
        .gql(
            Some(&token),
            "{ me { wallet { entries(first: 101) { nodes { id } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&too_many), "BAD_USER_INPUT");
}

#[tokio::test(crate = "crate::support::harness")]
async fn wallet_updated_sends_the_wallet_then_every_change_across_instances() {
    let a = spawn_app().await;
    let b = AppOptions::beside(&a).spawn().await;
    let (token, _) = a.register("ada@example.com", "Ada").await;
    let mut socket = WsClient::ready(&b.ws_url(), Some(&token)).await;
    socket
        .subscribe("w", "subscription { walletUpdated { id balance entries(first: 1) { nodes { kind amount } } } }")
        .await;
    let current = socket.next().await;
    assert_eq!(current["type"], "next", "{current}");
    assert_eq!(current["payload"]["data"]["walletUpdated"]["balance"], "0");

    let topup = started(&a, &token, 42_000, "k").await;
    sandbox(&a, &topup, "pay").await;
    let update = socket.next().await;
    assert_eq!(update["id"], "w");
    let wallet = &update["payload"]["data"]["walletUpdated"];
    assert_eq!(wallet["balance"], "42000", "{update}");
    assert_eq!(
        wallet["id"],
        current["payload"]["data"]["walletUpdated"]["id"]
    );
    assert_eq!(
        wallet["entries"]["nodes"],
        json!([{ "kind": "TOPUP", "amount": "42000" }])
    );
}

#[tokio::test(crate = "crate::support::harness")]
async fn wallet_reads_fall_back_to_postgres_while_redis_is_down() {
    let mut proxy = RedisProxy::start(None).await;
    let addr = proxy.addr;
    let app = AppOptions::new()
        .await
        .config(|c| c.redis_url = format!("redis://{addr}"))
        .spawn()
        .await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let topup = started(&app, &token, 7_000, "k").await;
    assert_eq!(wallet(&app, &token).await["balance"], "0");
    proxy.cut();
    // The webhook posts while Redis is unreachable: its invalidation fails,
    // which must not fail the credit.
    let (status, body) = sandbox(&app, &topup, "pay").await;
    assert_eq!((status, &body["outcome"]), (200, &json!("credited")));
    let body = app
        .gql(Some(&token), "{ me { wallet { balance } } }", json!({}))
        .await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(body["data"]["me"]["wallet"]["balance"], "7000");
}

#[tokio::test(crate = "crate::support::harness")]
async fn wallet_updated_drops_a_relayed_state_older_than_the_one_shown() {
    let app = spawn_app().await;
    let (token, user_id) = app.register("ada@example.com", "Ada").await;
    let mut socket = WsClient::ready(&app.ws_url(), Some(&token)).await;
    socket
        .subscribe("w", "subscription { walletUpdated { balance } }")
        .await;
    let current = socket.next().await;
    assert_eq!(current["payload"]["data"]["walletUpdated"]["balance"], "0");

    // A message as late as the subscription's first read: its version is
    // not newer than the wallet already shown, so it must not reach the
    // client (it would show a balance the wallet no longer has).
    let services = &app.running().services;
    let owner = giftdrop_domain::ledger::WalletOwner::User(user_id.parse().expect("uuid"));
    let mut stale = serde_json::to_value(
        giftdrop_domain::ledger::wallet_of(&app.db, owner)
            .await
            .expect("wallet"),
    )
    .expect("json");
    stale["balance"] = json!(999);
    services
        .hub
        .publish(
            &mut services.redis.clone(),
            &giftdrop_domain::ledger::wallet_topic(owner),
            &stale.to_string(),
        )
        .await
        .expect("published");

    let topup = started(&app, &token, 42_000, "k").await;
    sandbox(&app, &topup, "pay").await;
    let update = socket.next().await;
    assert_eq!(
        update["payload"]["data"]["walletUpdated"]["balance"], "42000",
        "the stale state was skipped: {update}"
    );
}
