//! The REST payment provider (`PAYMENT_PROVIDER=http`) against a fake
//! provider on a local port: the checkout call, the signed webhook that
//! completes it, provider failures, sandbox routes outside sandbox mode, and
//! the secrets http mode cannot start without.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use giftdrop::app::{self, Mode};
use giftdrop::config::{Config, PaymentProvider};
use giftdrop_domain::payments::webhook::{SIGNATURE_HEADER, sign};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::{AppOptions, TestApp, code};

const PROVIDER_SECRET: &str = "sk_test_4f1d2c3b5a6978";
const WEBHOOK_SECRET: &str = "whsec_9a8b7c6d5e4f3210";
const EMAIL: &str = "payer@example.com";

const INITIATE: &str = "mutation($i: TopupInput!) { initiateTopup(input: $i) { id reference amount fee status checkoutUrl } }";
const TOPUP: &str = "query($id: ID!) { topup(id: $id) { status fee } }";
const WALLET: &str = "{ me { wallet { balance entries { nodes { kind direction amount balanceAfter reference } } } } }";

/// How the fake provider answers `POST /checkouts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    /// 200 with a checkout URL.
    Ok,
    /// 500.
    ServerError,
    /// 200 with a body that is not JSON.
    Garbage,
    /// Never answers.
    Hang,
}

/// One `POST /checkouts` the fake received.
#[derive(Clone, Debug)]
struct Seen {
    authorization: Option<String>,
    idempotency_key: Option<String>,
    body: Value,
}

#[derive(Clone)]
struct Fake {
    answer: Arc<Mutex<Answer>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    fn set(&self, answer: Answer) {
        *self.answer.lock().expect("fake mode") = answer;
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("fake requests").clone()
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn checkouts(State(fake): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let reference = body["reference"].as_str().unwrap_or_default().to_owned();
    fake.seen.lock().expect("fake requests").push(Seen {
        authorization: header(&headers, "authorization"),
        idempotency_key: header(&headers, "idempotency-key"),
        body,
    });
    let answer = *fake.answer.lock().expect("fake mode");
    match answer {
        Answer::Ok => (
            StatusCode::OK,
            axum::Json(json!({ "checkoutUrl": checkout_url(&reference) })),
        )
            .into_response(),
        Answer::ServerError => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Answer::Garbage => (
            StatusCode::OK,
            [("content-type", "application/json")],
            "not json",
        )
            .into_response(),
        Answer::Hang => std::future::pending::<Response>().await,
    }
}

/// `POST /transfers`: accepted, or declined for the account `closed`.
async fn transfers(State(fake): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let declined = body["destination"] == "closed";
    fake.seen.lock().expect("fake requests").push(Seen {
        authorization: header(&headers, "authorization"),
        idempotency_key: header(&headers, "idempotency-key"),
        body,
    });
    let answer = *fake.answer.lock().expect("fake mode");
    match answer {
        Answer::Ok if declined => {
            axum::Json(json!({ "status": "declined", "reason": "account closed" })).into_response()
        }
        Answer::Ok => axum::Json(json!({ "status": "accepted" })).into_response(),
        Answer::ServerError => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Answer::Garbage => {
            (StatusCode::OK, [("content-type", "application/json")], "{}").into_response()
        }
        Answer::Hang => std::future::pending::<Response>().await,
    }
}

/// `GET /transfers/{reference}`: accepted if a transfer with it was sent.
async fn transfer_status(
    State(fake): State<Fake>,
    axum::extract::Path(reference): axum::extract::Path<String>,
) -> Response {
    let sent = fake.seen().iter().any(|seen| {
        seen.body["reference"] == reference.as_str() && seen.body["destination"].is_string()
    });
    if sent {
        axum::Json(json!({ "status": "accepted" })).into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

fn checkout_url(reference: &str) -> String {
    format!("https://pay.fake/c/{reference}")
}

/// Starts a fake provider; returns it and its base URL.
async fn fake_provider(answer: Answer) -> (Fake, String) {
    let fake = Fake {
        answer: Arc::new(Mutex::new(answer)),
        seen: Arc::new(Mutex::new(Vec::new())),
    };
    let router = Router::new()
        .route("/v1/checkouts", post(checkouts))
        .route("/v1/transfers", post(transfers))
        .route(
            "/v1/transfers/{reference}",
            axum::routing::get(transfer_status),
        )
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("fake provider binds");
    let addr: SocketAddr = listener.local_addr().expect("fake provider address");
    tokio::spawn(async move {
        axum::serve(listener, router)
            .await
            .expect("fake provider serves");
    });
    (fake, format!("http://{addr}/v1/"))
}

/// Points `config` at the fake provider at `url`.
fn http_provider(config: &mut Config, url: &str) {
    config.payment_provider = PaymentProvider::Http;
    config.payment_provider_url = Some(url.to_owned());
    config.payment_provider_secret = Some(SecretString::from(PROVIDER_SECRET));
    config.payment_webhook_secret = Some(SecretString::from(WEBHOOK_SECRET));
    config.platform_currency = "NGN".to_owned();
}

async fn initiate(app: &TestApp, token: &str, amount: &str, key: &str) -> Value {
    app.gql(
        Some(token),
        INITIATE,
        json!({ "i": { "amount": amount, "idempotencyKey": key } }),
    )
    .await
}

async fn wallet(app: &TestApp, token: &str) -> Value {
    let body = app.gql(Some(token), WALLET, json!({})).await;
    assert_eq!(body["errors"], Value::Null, "wallet query: {body}");
    body["data"]["me"]["wallet"].clone()
}

async fn topup(app: &TestApp, token: &str, id: &str) -> Value {
    let body = app.gql(Some(token), TOPUP, json!({ "id": id })).await;
    assert_eq!(body["errors"], Value::Null, "topup query: {body}");
    body["data"]["topup"].clone()
}

async fn deliver(app: &TestApp, body: &[u8], secret: &str) -> (u16, Value) {
    let response = app
        .client
        .post(app.url("/webhooks/payments"))
        .header("content-type", "application/json")
        .header(SIGNATURE_HEADER, sign(&SecretString::from(secret), body))
        .body(body.to_vec())
        .send()
        .await
        .expect("webhook sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON webhook answer"))
}

#[tokio::test(crate = "crate::support::harness")]
async fn the_http_provider_creates_the_checkout_and_its_webhook_credits_the_wallet() {
    let (fake, url) = fake_provider(Answer::Ok).await;
    let app = AppOptions::new()
        .await
        .config(|c| http_provider(c, &url))
        .spawn()
        .await;
    let (token, _) = app.register(EMAIL, "Payer").await;

    let body = initiate(&app, &token, "250000", "k1").await;
    assert_eq!(body["errors"], Value::Null, "initiateTopup: {body}");
    let created = &body["data"]["initiateTopup"];
    let reference = created["reference"]
        .as_str()
        .expect("a reference")
        .to_owned();
    let id = created["id"].as_str().expect("an id").to_owned();
    assert!(reference.starts_with("tp_"), "reference {reference}");
    assert_eq!(created["checkoutUrl"], checkout_url(&reference));
    assert_eq!(created["status"], "PENDING");
    assert_eq!(created["amount"], "250000");
    assert_eq!(created["fee"], Value::Null);

    let seen = fake.seen();
    assert_eq!(seen.len(), 1, "one provider call: {seen:?}");
    let call = &seen[0];
    assert_eq!(
        call.authorization.as_deref(),
        Some(format!("Bearer {PROVIDER_SECRET}").as_str())
    );
    assert_eq!(call.idempotency_key.as_deref(), Some(reference.as_str()));
    assert_eq!(
        call.body,
        json!({ "reference": reference, "amount": "250000", "currency": "NGN", "email": EMAIL })
    );

    let notification = serde_json::to_vec(&json!({
        "event": "charge.success",
        "data": { "reference": reference, "amount": "250000", "fee": "3750" }
    }))
    .expect("encodable");

    // Signed with the wrong secret: refused, nothing changes.
    let (status, answer) = deliver(&app, &notification, "whsec_not_the_right_one").await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer, json!({ "outcome": "bad_signature" }));
    assert_eq!(
        topup(&app, &token, &id).await,
        json!({ "status": "PENDING", "fee": null })
    );
    assert_eq!(wallet(&app, &token).await["balance"], "0");
    assert_eq!(app.count("ledger.entries").await, 0);

    // Signed with PAYMENT_WEBHOOK_SECRET: credited.
    let (status, answer) = deliver(&app, &notification, WEBHOOK_SECRET).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({ "outcome": "credited" }));
    let credited = wallet(&app, &token).await;
    assert_eq!(credited["balance"], "250000");
    assert_eq!(
        credited["entries"]["nodes"],
        json!([{
            "kind": "TOPUP",
            "direction": "CREDIT",
            "amount": "250000",
            "balanceAfter": "250000",
            "reference": reference,
        }])
    );
    assert_eq!(
        topup(&app, &token, &id).await,
        json!({ "status": "SUCCEEDED", "fee": "3750" })
    );

    // A redelivery is a duplicate: 200, nothing more is credited.
    let (status, answer) = deliver(&app, &notification, WEBHOOK_SECRET).await;
    assert_eq!((status, answer), (200, json!({ "outcome": "duplicate" })));
    let after = wallet(&app, &token).await;
    assert_eq!(after["balance"], "250000");
    assert_eq!(after["entries"]["nodes"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        fake.seen().len(),
        1,
        "the webhook does not call the provider"
    );
}

#[tokio::test(crate = "crate::support::harness")]
async fn provider_failures_are_payment_provider_unavailable_and_leave_nothing() {
    let (fake, url) = fake_provider(Answer::ServerError).await;
    let app = AppOptions::new()
        .await
        .config(|c| {
            http_provider(c, &url);
            c.payment_provider_timeout_ms = 300;
            // The outbox count must not move under the relay's feet.
            c.outbox_relay = false;
        })
        .spawn()
        .await;
    let (token, _) = app.register(EMAIL, "Payer").await;
    let outbox = app.count("ops.outbox").await;

    for (n, answer) in [Answer::ServerError, Answer::Garbage, Answer::Hang]
        .into_iter()
        .enumerate()
    {
        fake.set(answer);
        // A bound, not a synchronization: a client that ignored its timeout
        // would otherwise hang this test instead of failing it.
        let body = tokio::time::timeout(
            Duration::from_secs(10),
            initiate(&app, &token, "250000", "k1"),
        )
        .await
        .unwrap_or_else(|_| panic!("initiateTopup still waiting on a {answer:?} provider"));
        assert_eq!(
            code(&body),
            "PAYMENT_PROVIDER_UNAVAILABLE",
            "{answer:?}: {body}"
        );
        assert_eq!(body["data"], Value::Null, "{answer:?}: {body}");
        assert_eq!(
            fake.seen().len(),
            n + 1,
            "{answer:?}: the provider was called"
        );
        assert_eq!(app.count("ledger.topups").await, 0, "{answer:?}");
        assert_eq!(
            app.count("ledger.idempotency_keys").await,
            0,
            "{answer:?}: the claim is released"
        );
        assert_eq!(app.count("ops.outbox").await, outbox, "{answer:?}");
        assert_eq!(app.count("ledger.entries").await, 0, "{answer:?}");
    }

    fake.set(Answer::Ok);
    let body = initiate(&app, &token, "250000", "k1").await;
    assert_eq!(body["errors"], Value::Null, "retry: {body}");
    let created = &body["data"]["initiateTopup"];
    let reference = created["reference"].as_str().expect("a reference");
    assert_eq!(created["status"], "PENDING");
    assert_eq!(created["checkoutUrl"], checkout_url(reference));
    let seen = fake.seen();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[3].idempotency_key.as_deref(), Some(reference));
    assert_eq!(app.count("ledger.topups").await, 1);
    assert_eq!(app.count("ledger.idempotency_keys").await, 1);

    // And the key now replays that topup without calling the provider again.
    let again = initiate(&app, &token, "250000", "k1").await;
    assert_eq!(again["data"]["initiateTopup"], *created);
    assert_eq!(fake.seen().len(), 4);
    assert_eq!(app.count("ledger.topups").await, 1);
}

#[tokio::test(crate = "crate::support::harness")]
async fn sandbox_routes_do_not_exist_outside_sandbox_mode() {
    let (_fake, url) = fake_provider(Answer::Ok).await;
    let http = AppOptions::new()
        .await
        .config(|c| http_provider(c, &url))
        .spawn()
        .await;
    let (token, _) = http.register(EMAIL, "Payer").await;
    let body = initiate(&http, &token, "250000", "k1").await;
    let created = &body["data"]["initiateTopup"];
    let reference = created["reference"].as_str().expect("a topup").to_owned();
    let id = created["id"].as_str().expect("an id").to_owned();
    for target in ["x", reference.as_str()] {
        let page = http
            .client
            .get(http.url(&format!("/sandbox/checkout/{target}")))
            .send()
            .await
            .expect("sent");
        assert_eq!(page.status(), 404, "GET {target}");
        for action in ["pay", "fail"] {
            let response = http
                .client
                .post(http.url(&format!("/sandbox/checkout/{target}/{action}")))
                .send()
                .await
                .expect("sent");
            assert_eq!(response.status(), 404, "POST {target}/{action}");
        }
    }
    let knobs = http
        .client
        .post(http.url("/sandbox/settings"))
        .json(&json!({ "latencyMs": 0, "failurePercent": 100 }))
        .send()
        .await
        .expect("sent");
    assert_eq!(knobs.status(), 404, "no sandbox knobs on a real provider");
    assert_eq!(
        topup(&http, &token, &id).await,
        json!({ "status": "PENDING", "fee": null }),
        "the sandbox could not complete a real provider's payment"
    );
    assert_eq!(wallet(&http, &token).await["balance"], "0");

    let sandbox = AppOptions::new().await.spawn().await;
    let (token, _) = sandbox.register(EMAIL, "Payer").await;
    let unknown = sandbox
        .client
        .post(sandbox.url("/sandbox/checkout/unknown/pay"))
        .send()
        .await
        .expect("sent");
    assert_eq!(unknown.status(), 404);
    let body = initiate(&sandbox, &token, "250000", "k1").await;
    let created = &body["data"]["initiateTopup"];
    let reference = created["reference"].as_str().expect("a topup").to_owned();
    assert_eq!(
        created["checkoutUrl"],
        sandbox.url(&format!("/sandbox/checkout/{reference}"))
    );
    let page = sandbox
        .client
        .get(sandbox.url(&format!("/sandbox/checkout/{reference}")))
        .send()
        .await
        .expect("sent");
    assert_eq!(page.status(), 200);
    let content_type = page.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = page.text().await.expect("a page");
    assert!(
        html.contains(&format!("<dd>{reference}</dd>")),
        "the page shows the reference: {html}"
    );
}

/// Starts an app with `change` applied to a test configuration; returns the
/// start error, if any, formatted with its causes.
async fn start_error(change: impl FnOnce(&mut Config)) -> Option<String> {
    let mut config = None;
    let _options = AppOptions::new().await.config(|c| {
        change(c);
        config = Some(c.clone());
    });
    let config = config.expect("the configuration was captured");
    giftdrop::install_crypto_provider();
    let shutdown = CancellationToken::new();
    let mode = Mode {
        serve: true,
        worker: false,
        migrate: false,
    };
    let result = app::start(config, mode, shutdown.clone()).await;
    shutdown.cancel();
    match result {
        Ok(running) => {
            running.stopped().await.expect("stops cleanly");
            None
        }
        Err(err) => Some(format!("{err:#}")),
    }
}

#[tokio::test(crate = "crate::support::harness")]
async fn http_mode_refuses_to_start_without_its_secrets() {
    let url = "http://127.0.0.1:9/v1";
    let no_webhook_secret = start_error(|c| {
        http_provider(c, url);
        c.payment_webhook_secret = None;
    })
    .await
    .expect("refused without PAYMENT_WEBHOOK_SECRET");
    assert!(
        no_webhook_secret.contains("PAYMENT_WEBHOOK_SECRET"),
        "{no_webhook_secret}"
    );
    let empty_webhook_secret = start_error(|c| {
        http_provider(c, url);
        c.payment_webhook_secret = Some(SecretString::from(""));
    })
    .await
    .expect("refused with an empty PAYMENT_WEBHOOK_SECRET");
    assert!(
        empty_webhook_secret.contains("PAYMENT_WEBHOOK_SECRET"),
        "{empty_webhook_secret}"
    );
    let no_url = start_error(|c| {
        http_provider(c, url);
        c.payment_provider_url = None;
    })
    .await
    .expect("refused without PAYMENT_PROVIDER_URL");
    assert!(no_url.contains("PAYMENT_PROVIDER_URL"), "{no_url}");
    let no_secret = start_error(|c| {
        http_provider(c, url);
        c.payment_provider_secret = None;
    })
    .await
    .expect("refused without PAYMENT_PROVIDER_SECRET");
    assert!(no_secret.contains("PAYMENT_PROVIDER_SECRET"), "{no_secret}");

    // The control: with all three, the same configuration starts.
    assert_eq!(start_error(|c| http_provider(c, url)).await, None);
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_repeat_while_the_first_is_in_flight_is_in_use_and_never_a_second_effect() {
    let (fake, url) = fake_provider(Answer::Hang).await;
    let app = AppOptions::new()
        .await
        .config(|c| {
            http_provider(c, &url);
            // Longer than a duplicate waits for the first one's outcome.
            c.payment_provider_timeout_ms = 3_000;
        })
        .spawn()
        .await;
    let (token, _) = app.register(EMAIL, "Payer").await;
    let first = initiate(&app, &token, "250000", "k1");
    let repeats = async {
        crate::support::eventually("the first call at the provider", || async {
            fake.seen().len() == 1
        })
        .await;
        let repeat = initiate(&app, &token, "250000", "k1").await;
        let changed = initiate(&app, &token, "1000", "k1").await;
        (repeat, changed)
    };
    let (first, (repeat, changed)) = tokio::join!(first, repeats);
    assert_eq!(code(&repeat), "IDEMPOTENCY_KEY_IN_USE", "{repeat}");
    assert_eq!(code(&changed), "IDEMPOTENCY_KEY_REUSED", "{changed}");
    assert_eq!(code(&first), "PAYMENT_PROVIDER_UNAVAILABLE", "{first}");
    assert_eq!(
        fake.seen().len(),
        1,
        "the repeats never reached the provider"
    );
    assert_eq!(app.count("ledger.topups").await, 0);
}

#[tokio::test(crate = "crate::support::harness")]
async fn the_http_provider_sends_payout_transfers_under_their_reference_and_reads_the_answer() {
    use giftdrop_domain::money::Amount;
    use giftdrop_domain::payments::http::{HttpProvider, HttpProviderConfig};
    use giftdrop_domain::payments::{
        PaymentProvider, ProviderError, TransferOutcome, TransferRequest,
    };

    giftdrop::install_crypto_provider();
    let (fake, url) = fake_provider(Answer::Ok).await;
    let provider = HttpProvider::new(HttpProviderConfig {
        base_url: url,
        secret: SecretString::from(PROVIDER_SECRET),
        connect_timeout: Duration::from_secs(1),
        timeout: Duration::from_millis(500),
    })
    .expect("client");
    let request = |destination| TransferRequest {
        reference: "po_0123",
        amount: Amount::positive(100_000).expect("amount"),
        currency: "NGN",
        destination,
    };
    assert_eq!(
        provider
            .transfer(&request("0123456789"))
            .await
            .expect("answered"),
        TransferOutcome::Accepted
    );
    let seen = fake.seen();
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(&*format!("Bearer {PROVIDER_SECRET}"))
    );
    assert_eq!(seen[0].idempotency_key.as_deref(), Some("po_0123"));
    assert_eq!(
        seen[0].body,
        json!({ "reference": "po_0123", "amount": "100000", "currency": "NGN", "destination": "0123456789" })
    );
    assert_eq!(
        provider
            .transfer(&request("closed"))
            .await
            .expect("answered"),
        TransferOutcome::Declined("account closed".into())
    );
    for (answer, expected) in [
        (Answer::ServerError, "unreachable"),
        (Answer::Garbage, "refused"),
        (Answer::Hang, "in time"),
    ] {
        fake.set(answer);
        let failed: ProviderError = provider
            .transfer(&request("0123456789"))
            .await
            .expect_err("fails");
        assert!(
            failed.to_string().contains(expected),
            "{answer:?}: {failed}"
        );
    }
}
