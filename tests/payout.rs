//! Payouts against a misbehaving provider (FLOWS.md §3): no debit without
//! the provider's acceptance, no second transfer on retry, and the breaker
//! that opens after five consecutive failures and recovers after a trial.

use giftdrop_domain::payments::sandbox::{KnobSettings, SandboxKnobs};
use serde_json::{Value, json};
use std::sync::Arc;

use crate::support::market::{Shop, assert_ledger_sound};
use crate::support::{AppOptions, TestApp, code, eventually, scalar, spawn_app};

const PAYOUT: &str = "mutation($i: PayoutInput!) { requestPayout(input: $i) { id status amount reference failureReason completedAt } }";

/// A sandbox that behaves.
const CALM: KnobSettings = KnobSettings {
    latency_ms: 0,
    failure_percent: 0,
    lost_answer_percent: 0,
};

async fn payout(app: &TestApp, shop: &Shop, minor: i64, key: &str) -> Value {
    app.gql(
        Some(&shop.staff_token),
        PAYOUT,
        json!({ "i": { "merchantId": shop.merchant_id, "amount": minor.to_string(), "idempotencyKey": key } }),
    )
    .await
}

/// A shop whose wallet holds the payout of one redeemed 100,000 card:
/// 100,000 - 1,500 deposit fee - 4,925 service fee = 93,575.
async fn shop_with_earnings(app: &TestApp) -> Shop {
    let shop = app
        .open_shop("shop@example.com", "Earner", &[100_000])
        .await;
    let (buyer, _) = app.register("buyer@example.com", "Ike N").await;
    app.fund(&buyer, 100_000).await;
    let body = app.buy(&buyer, &shop.product_id, 100_000, "k").await;
    app.redeem_card(&shop, &body["data"]["purchaseCard"], "t")
        .await;
    assert_eq!(
        app.merchant_balance(&shop.staff_token, &shop.merchant_id)
            .await,
        93_575
    );
    shop
}

/// A payout of `minor` reserved and committed PENDING under `id`, as its
/// first step leaves it when the process dies right after.
async fn reserved_payout(app: &TestApp, shop: &Shop, minor: i64, id: uuid::Uuid) {
    use giftdrop_domain::context::{RequestMeta, Viewer};
    use giftdrop_domain::giftcard::merchants;
    use giftdrop_domain::money::Amount;
    use giftdrop_domain::payments::payout;

    let services = &app.running().services;
    let merchant_id = uuid::Uuid::parse_str(&shop.merchant_id).expect("merchant id");
    let merchant = merchants::find(&services.db, merchant_id)
        .await
        .expect("merchant read")
        .expect("the shop's merchant");
    let viewer = Viewer {
        user_id: uuid::Uuid::parse_str(&shop.staff_id).expect("staff id"),
        roles: Vec::new(),
    };
    let amount = Amount::positive(minor).expect("amount");
    let pending = payout::reserve(
        services,
        &RequestMeta::system(),
        &viewer,
        &merchant,
        amount,
        id,
    )
    .await
    .expect("reserved")
    .expect("a new payout");
    assert_eq!(pending.id(), id);
}

fn knobs(app: &TestApp) -> Arc<SandboxKnobs> {
    app.running()
        .services
        .payments
        .sandbox
        .clone()
        .expect("sandbox provider")
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_failing_provider_fails_payouts_untouched_and_five_in_a_row_open_the_breaker_until_a_trial_succeeds()
 {
    let app = AppOptions::new()
        .await
        .config(|c| c.payment_breaker_cooldown_ms = 300)
        .spawn()
        .await;
    let shop = shop_with_earnings(&app).await;
    let knobs = knobs(&app);
    // The knobs as a front end or load test turns them, over HTTP.
    let turned = app
        .client
        .post(app.url("/sandbox/settings"))
        .json(&json!({ "latencyMs": 0, "failurePercent": 100 }))
        .send()
        .await
        .expect("sent");
    assert_eq!(turned.status(), 200);
    assert_eq!(
        knobs.get(),
        KnobSettings {
            failure_percent: 100,
            ..CALM
        }
    );

    let mut failed = Vec::new();
    for i in 0..5 {
        let body = payout(&app, &shop, 50_000, &format!("fail-{i}")).await;
        let payout = &body["data"]["requestPayout"];
        assert_eq!(payout["status"], "FAILED", "{body}");
        assert_eq!(
            payout["failureReason"],
            "the payment provider is unreachable or failing: sandbox: simulated provider outage"
        );
        assert!(payout["completedAt"].is_string());
        failed.push(payout["id"].clone());
    }
    assert_eq!(knobs.transfer_calls(), 5);
    assert_eq!(
        app.merchant_balance(&shop.staff_token, &shop.merchant_id)
            .await,
        93_575,
        "no debit"
    );

    // The stored outcome is replayed; the provider is not asked again.
    let replay = payout(&app, &shop, 50_000, "fail-0").await;
    assert_eq!(replay["data"]["requestPayout"]["id"], failed[0]);
    assert_eq!(replay["data"]["requestPayout"]["status"], "FAILED");
    assert_eq!(knobs.transfer_calls(), 5);

    // Open: fail fast, write nothing, call nothing (top-ups share the breaker).
    let open = payout(&app, &shop, 50_000, "while-open").await;
    assert_eq!(code(&open), "PAYMENT_PROVIDER_UNAVAILABLE", "{open}");
    let topup = app
        .gql(
            Some(&shop.staff_token),
            "mutation($i: TopupInput!) { initiateTopup(input: $i) { id } }",
            json!({ "i": { "amount": "100", "idempotencyKey": "t" } }),
        )
        .await;
    assert_eq!(code(&topup), "PAYMENT_PROVIDER_UNAVAILABLE");
    assert_eq!(app.count("ledger.payouts").await, 5);
    assert_eq!(knobs.transfer_calls(), 5);

    // The provider recovers; after the cooldown one trial goes through.
    knobs.set(CALM);
    let attempt = std::cell::Cell::new(0);
    let succeeded = std::cell::RefCell::new(Value::Null);
    eventually("the breaker to let a trial through", || {
        attempt.set(attempt.get() + 1);
        let key = format!("recover-{}", attempt.get());
        let (app, shop, succeeded) = (&app, &shop, &succeeded);
        async move {
            let body = payout(app, shop, 50_000, &key).await;
            if code(&body) == "PAYMENT_PROVIDER_UNAVAILABLE" {
                return false;
            }
            *succeeded.borrow_mut() = body["data"]["requestPayout"].clone();
            true
        }
    })
    .await;
    let succeeded = succeeded.into_inner();
    assert_eq!(succeeded["status"], "SUCCEEDED", "{succeeded}");
    assert_eq!(knobs.transfer_calls(), 6);
    assert_eq!(
        app.count("ledger.payouts").await,
        6,
        "fast failures wrote no payout"
    );
    assert_eq!(
        app.merchant_balance(&shop.staff_token, &shop.merchant_id)
            .await,
        43_575
    );
    assert_ledger_sound(&app).await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_provider_slower_than_the_timeout_fails_the_payout_and_its_retry_never_transfers() {
    let app = AppOptions::new()
        .await
        .config(|c| c.payment_provider_timeout_ms = 300)
        .spawn()
        .await;
    let shop = shop_with_earnings(&app).await;
    let knobs = knobs(&app);
    knobs.set(KnobSettings {
        latency_ms: 5_000,
        ..CALM
    });

    let slow = payout(&app, &shop, 90_000, "slow").await;
    let slow = &slow["data"]["requestPayout"];
    assert_eq!(slow["status"], "FAILED", "{slow}");
    assert_eq!(
        slow["failureReason"],
        "the payment provider did not answer in time"
    );
    let reference = slow["reference"].as_str().expect("reference");
    assert_eq!(
        knobs.transferred(reference),
        None,
        "the provider never completed it"
    );
    assert_eq!(
        app.merchant_balance(&shop.staff_token, &shop.merchant_id)
            .await,
        93_575
    );

    knobs.set(CALM);
    let retry = payout(&app, &shop, 90_000, "slow").await;
    assert_eq!(retry["data"]["requestPayout"]["id"], slow["id"]);
    assert_eq!(retry["data"]["requestPayout"]["status"], "FAILED");
    assert_eq!(
        knobs.transfer_calls(),
        1,
        "the retry returned the stored outcome"
    );

    let fresh = payout(&app, &shop, 90_000, "fresh").await;
    assert_eq!(
        fresh["data"]["requestPayout"]["status"], "SUCCEEDED",
        "{fresh}"
    );
    assert_eq!(
        app.merchant_balance(&shop.staff_token, &shop.merchant_id)
            .await,
        3_575
    );
    // The wallet cannot promise the same money twice.
    let over = payout(&app, &shop, 3_576, "over").await;
    assert_eq!(code(&over), "INSUFFICIENT_FUNDS");
    assert_ledger_sound(&app).await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_payout_the_provider_made_whose_answer_was_lost_succeeds_and_is_paid_once() {
    use giftdrop_domain::money::Amount;

    let app = spawn_app().await;
    let shop = shop_with_earnings(&app).await;
    let knobs = knobs(&app);
    let turned = app
        .client
        .post(app.url("/sandbox/settings"))
        .json(&json!({ "latencyMs": 0, "failurePercent": 0, "lostAnswerPercent": 100 }))
        .send()
        .await
        .expect("sent");
    assert_eq!(turned.status(), 200);
    assert_eq!(knobs.get().lost_answer_percent, 100);

    // The transfer call fails after the provider has paid: asked what
    // became of the reference, the provider says it was made.
    let lost = payout(&app, &shop, 90_000, "lost").await;
    let lost = &lost["data"]["requestPayout"];
    assert_eq!(lost["status"], "SUCCEEDED", "{lost}");
    let reference = lost["reference"].as_str().expect("reference");
    assert_eq!(
        knobs.transferred(reference),
        Some((Amount::positive(90_000).expect("amount"), 1))
    );
    assert_eq!(
        app.merchant_balance(&shop.staff_token, &shop.merchant_id)
            .await,
        3_575,
        "the wallet is debited what the provider paid out"
    );

    knobs.set(CALM);
    let retry = payout(&app, &shop, 90_000, "lost").await;
    assert_eq!(retry["data"]["requestPayout"]["id"], lost["id"]);
    assert_eq!(retry["data"]["requestPayout"]["status"], "SUCCEEDED");
    assert_eq!(knobs.transfer_calls(), 1, "the retry transferred nothing");
    // The money paid out is never paid out again.
    let again = payout(&app, &shop, 90_000, "again").await;
    assert_eq!(code(&again), "INSUFFICIENT_FUNDS", "{again}");
    assert_eq!(knobs.transfers().len(), 1);
    assert_ledger_sound(&app).await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn payouts_left_pending_by_a_crash_are_settled_from_what_the_provider_says() {
    use giftdrop_domain::money::Amount;
    use giftdrop_domain::payments::payout::reconcile_stale;
    use giftdrop_domain::payments::{TransferOutcome, TransferRequest};
    use sea_orm::ConnectionTrait;

    let app = spawn_app().await;
    let shop = shop_with_earnings(&app).await;
    let services = &app.running().services;
    // Two payouts committed PENDING by a process that then died: the first
    // reached the provider, the second never did.
    let mut references = Vec::new();
    for amount in [30_000, 40_000] {
        let id = uuid::Uuid::now_v7();
        reserved_payout(&app, &shop, amount, id).await;
        app.db
            .execute_unprepared(&format!(
                "UPDATE ledger.payouts SET created_at = now() - interval '10 minutes' WHERE id = '{id}'"
            ))
            .await
            .expect("a stale payout");
        references.push(format!("po_{}", id.simple()));
    }
    assert_eq!(
        app.merchant_balance(&shop.staff_token, &shop.merchant_id)
            .await,
        93_575 - 70_000,
        "both amounts are held in flight"
    );
    assert_ledger_sound(&app).await;
    let reached = services
        .payments
        .provider
        .transfer(&TransferRequest {
            reference: &references[0],
            amount: Amount::positive(30_000).expect("amount"),
            currency: "NGN",
            destination: "0123456789",
        })
        .await
        .expect("the first attempt reached the provider");
    assert_eq!(reached, TransferOutcome::Accepted);

    let settled = reconcile_stale(services, std::time::Duration::from_secs(60), 10)
        .await
        .expect("reconciles");
    assert_eq!(settled, 2);
    let status = |reference: &str| {
        format!(
            "SELECT CASE status WHEN 'SUCCEEDED' THEN 1 WHEN 'FAILED' THEN 2 ELSE 0 END::bigint FROM ledger.payouts WHERE reference = '{reference}'"
        )
    };
    assert_eq!(
        scalar(&app.db, &status(&references[0])).await,
        1,
        "accepted at the provider: SUCCEEDED"
    );
    assert_eq!(
        scalar(&app.db, &status(&references[1])).await,
        2,
        "never received: FAILED"
    );
    assert_eq!(
        app.merchant_balance(&shop.staff_token, &shop.merchant_id)
            .await,
        93_575 - 30_000
    );
    assert_eq!(
        knobs(&app).transferred(&references[1]),
        None,
        "reconciling never transfers"
    );
    let again = reconcile_stale(services, std::time::Duration::from_secs(60), 10)
        .await
        .expect("reconciles");
    assert_eq!(again, 0);
    assert_ledger_sound(&app).await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_retry_of_a_payout_whose_outcome_was_lost_resumes_it_and_never_pays_twice() {
    use giftdrop_domain::money::Amount;
    use giftdrop_domain::payments::TransferRequest;
    use giftdrop_domain::payments::payout::payout_id;

    let app = spawn_app().await;
    let shop = shop_with_earnings(&app).await;
    let staff = uuid::Uuid::parse_str(&shop.staff_id).expect("staff id");
    // The first attempt with key "lost" committed its PENDING payout and
    // reached the provider, then failed before storing its outcome (the
    // database blinked), which released the key.
    let id = payout_id(staff, "lost");
    let reference = format!("po_{}", id.simple());
    reserved_payout(&app, &shop, 30_000, id).await;
    app.running()
        .services
        .payments
        .provider
        .transfer(&TransferRequest {
            reference: &reference,
            amount: Amount::positive(30_000).expect("amount"),
            currency: "NGN",
            destination: "0123456789",
        })
        .await
        .expect("the first attempt reached the provider");

    let retried = payout(&app, &shop, 30_000, "lost").await;
    let retried = &retried["data"]["requestPayout"];
    assert_eq!(retried["id"], id.to_string(), "{retried}");
    assert_eq!(retried["status"], "SUCCEEDED");
    assert_eq!(retried["reference"], reference.as_str());
    assert_eq!(
        knobs(&app)
            .transferred(&reference)
            .map(|(amount, asked)| (amount.minor(), asked)),
        Some((30_000, 2)),
        "asked again under the same reference: one transfer"
    );
    assert_eq!(app.count("ledger.payouts").await, 1, "no second payout");
    assert_eq!(
        app.merchant_balance(&shop.staff_token, &shop.merchant_id)
            .await,
        93_575 - 30_000
    );
    // And the request, now stored, replays without asking again.
    let replay = payout(&app, &shop, 30_000, "lost").await;
    assert_eq!(replay["data"]["requestPayout"]["id"], id.to_string());
    assert_eq!(
        knobs(&app).transfer_calls(),
        2,
        "the first attempt's and the retry's; the replay asked nothing"
    );
    assert_ledger_sound(&app).await;
}

/// Ten payout keys, each sent three times at once, against a wallet that
/// covers six of them: the provider paid exactly the payouts the ledger
/// booked to it, the rest never reached the provider, nothing is left in
/// flight, and every answer of a key agrees with its stored outcome.
#[tokio::test(crate = "crate::support::harness")]
async fn concurrent_payouts_beyond_the_balance_pay_exactly_what_the_ledger_books() {
    use sea_orm::ConnectionTrait;

    const KEYS: usize = 10;
    const SENDS: usize = 3;
    const EACH: i64 = 15_000;
    // A little provider latency keeps the payouts in flight together.
    let app = AppOptions::new()
        .await
        .config(|c| c.sandbox_latency_ms = 30)
        .spawn()
        .await;
    let shop = shop_with_earnings(&app).await;
    let covered = 93_575 / EACH;
    assert_eq!(covered, 6);

    let (app_ref, shop_ref) = (&app, &shop);
    let sends = (0..KEYS).flat_map(|k| std::iter::repeat_n(k, SENDS));
    let answers = futures_util::future::join_all(sends.map(|k| async move {
        let answer = payout(app_ref, shop_ref, EACH, &format!("key-{k}")).await;
        (k, answer)
    }))
    .await;
    // The stored outcome of each key, asked once more after the storm.
    let mut outcomes = Vec::with_capacity(KEYS);
    for k in 0..KEYS {
        outcomes.push(payout(&app, &shop, EACH, &format!("key-{k}")).await);
    }
    let summary = |body: &Value| match body["data"]["requestPayout"].as_object() {
        Some(payout) => format!("{} {}", payout["id"], payout["status"]),
        None => code(body).to_owned(),
    };
    for (k, answer) in &answers {
        if code(answer) == "IDEMPOTENCY_KEY_IN_USE" {
            continue;
        }
        assert_eq!(
            summary(answer),
            summary(&outcomes[*k]),
            "key {k}: every answer is the key's one outcome"
        );
    }
    let succeeded: Vec<&Value> = outcomes
        .iter()
        .filter_map(|body| body["data"]["requestPayout"].as_object().map(|_| body))
        .collect();
    assert!(
        succeeded
            .iter()
            .all(|body| body["data"]["requestPayout"]["status"] == "SUCCEEDED"),
        "{succeeded:?}"
    );
    assert_eq!(succeeded.len(), 6, "the wallet covers six: {outcomes:?}");
    assert!(
        outcomes
            .iter()
            .filter(|body| body["data"]["requestPayout"].is_null())
            .all(|body| code(body) == "INSUFFICIENT_FUNDS"),
        "{outcomes:?}"
    );

    // The provider's transfers, the ledger's payouts to the provider and
    // the SUCCEEDED answers are the same set, amount for amount.
    let mut at_provider: Vec<(String, i64)> = knobs(&app)
        .transfers()
        .into_iter()
        .map(|(reference, amount)| (reference, amount.minor()))
        .collect();
    at_provider.sort();
    let mut answered: Vec<(String, i64)> = succeeded
        .iter()
        .map(|body| {
            let payout = &body["data"]["requestPayout"];
            (
                payout["reference"].as_str().expect("reference").to_owned(),
                payout["amount"]
                    .as_str()
                    .expect("amount")
                    .parse()
                    .expect("integer amount"),
            )
        })
        .collect();
    answered.sort();
    let booked = app
        .db
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT 'po_' || replace(e.reference, '-', '') AS reference, e.amount \
             FROM ledger.entries e JOIN ledger.accounts a ON a.id = e.account_id \
             WHERE a.kind = 'PROVIDER_CLEARING' AND e.kind = 'PAYOUT' AND e.direction = 'CREDIT' \
             ORDER BY 1",
        ))
        .await
        .expect("payouts booked to the provider");
    let booked: Vec<(String, i64)> = booked
        .iter()
        .map(|row| {
            (
                row.try_get("", "reference").expect("reference"),
                row.try_get("", "amount").expect("amount"),
            )
        })
        .collect();
    assert_eq!(
        at_provider, booked,
        "the provider paid what the ledger booked"
    );
    assert_eq!(answered, booked, "and what the answers say");
    assert_eq!(
        scalar(
            &app.db,
            "SELECT count(*) FROM ledger.payouts WHERE status <> 'SUCCEEDED'"
        )
        .await,
        0,
        "a refused payout leaves no row, and none is left PENDING"
    );
    assert_eq!(
        app.merchant_balance(&shop.staff_token, &shop.merchant_id)
            .await,
        93_575 - 6 * EACH
    );
    assert_ledger_sound(&app).await;

    // And the wallet still pays out what it holds.
    let rest = payout(&app, &shop, 93_575 - 6 * EACH, "the-rest").await;
    assert_eq!(
        rest["data"]["requestPayout"]["status"], "SUCCEEDED",
        "{rest}"
    );
}
