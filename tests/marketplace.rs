//! The gift-card marketplace end to end (FLOWS.md §3, §4): buying a card
//! into escrow, redeeming it at a branch with the exact settlement math,
//! paying the merchant out, expiry refunds, the pin lock-out, and what a
//! failed purchase leaves behind (nothing).

use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::support::market::{assert_ledger_sound, platform_balance};
use crate::support::ws::WsClient;
// Imported under another name: the tests' cards have a `code` too.
use crate::support::code as error_code;
use crate::support::{AppOptions, TestApp, eventually, scalar, spawn_app};

const PAYOUT: &str = "mutation($i: PayoutInput!) { requestPayout(input: $i) { id status amount reference failureReason completedAt merchant { id } } }";

async fn payout(app: &TestApp, token: &str, merchant_id: &str, minor: i64, key: &str) -> Value {
    app.gql(
        Some(token),
        PAYOUT,
        json!({ "i": { "merchantId": merchant_id, "amount": minor.to_string(), "idempotencyKey": key } }),
    )
    .await
}

fn card_of(body: &Value) -> Value {
    let card = body["data"]["purchaseCard"].clone();
    assert!(card.is_object(), "purchaseCard failed: {body}");
    card
}

/// Rows a purchase writes, for checking that a failed one wrote none.
async fn purchase_rows(app: &TestApp) -> [i64; 4] {
    [
        app.count("giftcard.escrows").await,
        app.count("giftcard.cards").await,
        scalar(
            &app.db,
            "SELECT count(*) FROM ledger.transfers WHERE kind = 'CARD_PURCHASE'",
        )
        .await,
        scalar(
            &app.db,
            "SELECT count(*) FROM ops.audit_log WHERE action = 'card.purchase'",
        )
        .await,
    ]
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_card_bought_redeemed_and_paid_out_moves_exactly_the_contract_amounts() {
    let app = spawn_app().await;
    let shop = app
        .open_shop("shop@example.com", "Shoprite", &[500_000, 10_000])
        .await;
    let (buyer, buyer_id) = app.register("buyer@example.com", "Bola Ade").await;
    app.fund(&buyer, 600_000).await;

    let card = card_of(&app.buy(&buyer, &shop.product_id, 500_000, "buy-1").await);
    assert_eq!(card["status"], "ACTIVE");
    assert_eq!(card["faceValue"], "500000");
    assert_eq!(card["owner"]["id"], buyer_id.as_str());
    let code = card["code"].as_str().expect("the owner sees the code");
    let pin = card["pin"].as_str().expect("the owner sees the pin");
    assert_eq!(code.len(), 14, "XXXX-XXXX-XXXX: {code}");
    assert!(
        pin.len() == 6 && pin.bytes().all(|b| b.is_ascii_digit()),
        "{pin}"
    );
    let escrow = &card["escrow"];
    assert_eq!(
        (
            &escrow["status"],
            &escrow["source"],
            &escrow["amount"],
            &escrow["serviceRateBps"]
        ),
        (
            &json!("RESERVED"),
            &json!("CARD_PURCHASE"),
            &json!("500000"),
            &json!(500)
        )
    );
    assert_eq!(escrow["depositFee"], Value::Null);
    assert_eq!(app.my_balance(&buyer).await, 100_000);
    assert_eq!(platform_balance(&app, "ESCROW_HOLDING").await, 500_000);
    let stored_pin = scalar(
        &app.db,
        &format!("SELECT count(*) FROM giftcard.cards WHERE position('{pin}'::bytea in pin_sealed) > 0 OR position('{pin}'::bytea in pin_hash) > 0"),
    )
    .await;
    assert_eq!(stored_pin, 0, "the pin is never stored in clear");

    // A replay returns the same card and debits nothing more.
    let again = card_of(&app.buy(&buyer, &shop.product_id, 500_000, "buy-1").await);
    assert_eq!(again["id"], card["id"]);
    assert_eq!(app.my_balance(&buyer).await, 100_000);
    let reused = app.buy(&buyer, &shop.product_id, 10_000, "buy-1").await;
    assert_eq!(error_code(&reused), "IDEMPOTENCY_KEY_REUSED");

    let fees_before = platform_balance(&app, "PROVIDER_FEES").await;
    let redeemed = app
        .redeem(
            &shop.staff_token,
            &code.to_lowercase(),
            pin,
            &shop.branch_id,
            "till-1",
        )
        .await;
    let redemption = &redeemed["data"]["redeemCard"];
    assert!(redemption.is_object(), "redeemCard failed: {redeemed}");
    assert_eq!(redemption["branch"]["id"], shop.branch_id.as_str());
    assert_eq!(redemption["card"]["status"], "REDEEMED");
    assert_eq!(
        redemption["card"]["code"],
        Value::Null,
        "staff do not see the code"
    );
    assert_eq!(
        redemption["card"]["pin"],
        Value::Null,
        "staff do not see the pin"
    );
    assert_eq!(
        redemption["escrow"],
        json!({ "id": escrow["id"], "status": "SETTLED", "depositFee": "7500", "serviceFee": "24625", "merchantPayout": "467875" })
    );
    assert_eq!(
        app.merchant_balance(&shop.staff_token, &shop.merchant_id)
            .await,
        467_875
    );
    assert_eq!(platform_balance(&app, "PLATFORM_FEES").await, 24_625);
    assert_eq!(
        platform_balance(&app, "PROVIDER_FEES").await - fees_before,
        7_500
    );
    assert_eq!(platform_balance(&app, "ESCROW_HOLDING").await, 0);
    assert_ledger_sound(&app).await;

    let replay = app
        .redeem(&shop.staff_token, code, pin, &shop.branch_id, "till-1")
        .await;
    assert_eq!(
        replay["data"]["redeemCard"]["id"], redemption["id"],
        "{replay}"
    );
    let twice = app
        .redeem(&shop.staff_token, code, pin, &shop.branch_id, "till-2")
        .await;
    assert_eq!(error_code(&twice), "CONFLICT");
    assert_eq!(app.count("giftcard.redemptions").await, 1);
    assert_eq!(
        app.merchant_balance(&shop.staff_token, &shop.merchant_id)
            .await,
        467_875
    );

    // Payout: provider first, then the debit; a replay pays nothing twice.
    let knobs = app
        .running()
        .services
        .payments
        .sandbox
        .clone()
        .expect("sandbox");
    let paid = payout(&app, &shop.staff_token, &shop.merchant_id, 400_000, "po-1").await;
    let paid = &paid["data"]["requestPayout"];
    assert_eq!(paid["status"], "SUCCEEDED", "{paid}");
    let reference = paid["reference"].as_str().expect("reference");
    let payout_id = paid["id"].as_str().expect("id");
    assert_eq!(reference, format!("po_{}", payout_id.replace('-', "")));
    assert_eq!(
        app.merchant_balance(&shop.staff_token, &shop.merchant_id)
            .await,
        67_875
    );
    let replayed = payout(&app, &shop.staff_token, &shop.merchant_id, 400_000, "po-1").await;
    assert_eq!(replayed["data"]["requestPayout"]["id"], payout_id);
    assert_eq!(
        knobs.transfer_calls(),
        1,
        "a replay never calls the provider"
    );
    assert_eq!(
        knobs
            .transferred(reference)
            .map(|(amount, asked)| (amount.minor(), asked)),
        Some((400_000, 1))
    );
    let too_much = payout(&app, &shop.staff_token, &shop.merchant_id, 67_876, "po-2").await;
    assert_eq!(error_code(&too_much), "INSUFFICIENT_FUNDS");
    assert_eq!(too_much["errors"][0]["extensions"]["available"], "67875");
    assert_eq!(
        app.merchant_balance(&shop.staff_token, &shop.merchant_id)
            .await,
        67_875
    );
    assert_ledger_sound(&app).await;

    let entries = app
        .ok(Some(&shop.staff_token), "query($id: ID!) { merchant(id: $id) { wallet { entries { nodes { kind direction amount balanceAfter } } } } }", json!({ "id": shop.merchant_id }), "merchant")
        .await;
    assert_eq!(
        entries["wallet"]["entries"]["nodes"],
        json!([
            { "kind": "PAYOUT", "direction": "DEBIT", "amount": "400000", "balanceAfter": "67875" },
            { "kind": "SETTLEMENT", "direction": "CREDIT", "amount": "467875", "balanceAfter": "467875" },
        ])
    );
}

#[tokio::test(crate = "crate::support::harness")]
async fn an_expired_card_is_refunded_to_its_buyer_by_the_schedule_once() {
    let app = AppOptions::new()
        .await
        .config(|c| c.card_expiry_sweep_secs = 1)
        .spawn()
        .await;
    let shop = app.open_shop("shop@example.com", "Spar", &[20_000]).await;
    let (buyer, _) = app.register("buyer@example.com", "Chi Obi").await;
    app.fund(&buyer, 20_000).await;
    let card = card_of(&app.buy(&buyer, &shop.product_id, 20_000, "k").await);
    assert_eq!(app.my_balance(&buyer).await, 0);
    let id = card["id"].as_str().expect("id");
    app.db
        .execute_unprepared(&format!(
            "UPDATE giftcard.cards SET issued_at = now() - interval '2 days', expires_at = now() - interval '1 second' WHERE id = '{id}'"
        ))
        .await
        .expect("backdate");

    let query =
        "query($id: ID!) { card(id: $id) { status escrow { status releaseReason releasedAt } } }";
    eventually("the card to expire", || async {
        let body = app.gql(Some(&buyer), query, json!({ "id": id })).await;
        body["data"]["card"]["status"] == "EXPIRED"
    })
    .await;
    let seen = app
        .ok(Some(&buyer), query, json!({ "id": id }), "card")
        .await;
    assert_eq!(seen["escrow"]["status"], "RELEASED");
    assert_eq!(seen["escrow"]["releaseReason"], "card expired");
    assert_eq!(app.my_balance(&buyer).await, 20_000);
    let refunds = scalar(
        &app.db,
        "SELECT count(*) FROM ledger.transfers WHERE kind = 'CARD_REFUND'",
    )
    .await;
    assert_eq!(refunds, 1);

    // Running the job again (a re-delivery, a second worker) changes nothing.
    let again = giftdrop_jobs::expiry::expire_due_cards(&app.running().services)
        .await
        .expect("expiry runs");
    assert_eq!(again, 0);
    assert_eq!(app.my_balance(&buyer).await, 20_000);
    let redeem = app.redeem_at(&shop, &card, "t").await;
    assert_eq!(error_code(&redeem), "CONFLICT");
    assert_ledger_sound(&app).await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn five_wrong_pins_lock_the_card_and_another_merchants_till_cannot_find_it() {
    let app = spawn_app().await;
    let shop = app.open_shop("shop@example.com", "Game", &[5_000]).await;
    let rival = app.open_shop("rival@example.com", "Rival", &[5_000]).await;
    let (buyer, _) = app.register("buyer@example.com", "Dayo K").await;
    app.fund(&buyer, 5_000).await;
    let card = card_of(&app.buy(&buyer, &shop.product_id, 5_000, "k").await);
    let (code, pin) = (
        card["code"].as_str().expect("code"),
        card["pin"].as_str().expect("pin"),
    );
    let wrong = if pin == "000000" { "111111" } else { "000000" };

    let foreign = app
        .redeem(&rival.staff_token, code, pin, &rival.branch_id, "r")
        .await;
    assert_eq!(error_code(&foreign), "NOT_FOUND", "{foreign}");
    let not_my_branch = app
        .redeem(&rival.staff_token, code, pin, &shop.branch_id, "r2")
        .await;
    assert_eq!(error_code(&not_my_branch), "FORBIDDEN", "{not_my_branch}");
    let malformed = app
        .redeem(&shop.staff_token, code, "12", &shop.branch_id, "m")
        .await;
    assert_eq!(malformed["errors"][0]["extensions"]["field"], "input.pin");

    for attempt in 1..=5 {
        let body = app
            .redeem(
                &shop.staff_token,
                code,
                wrong,
                &shop.branch_id,
                &format!("w{attempt}"),
            )
            .await;
        assert_eq!(
            error_code(&body),
            "BAD_USER_INPUT",
            "attempt {attempt}: {body}"
        );
        assert_eq!(body["errors"][0]["extensions"]["field"], "input.pin");
    }
    let locked = app
        .redeem(&shop.staff_token, code, pin, &shop.branch_id, "right")
        .await;
    assert_eq!(
        error_code(&locked),
        "FORBIDDEN",
        "locked even with the right pin: {locked}"
    );
    assert_eq!(app.count("giftcard.pin_failures").await, 5);
    assert_eq!(app.count("giftcard.redemptions").await, 0);
    assert_eq!(platform_balance(&app, "ESCROW_HOLDING").await, 5_000);

    // When the lock has run out, the right pin redeems (the wrong-pin
    // answers were not stored under their keys).
    app.db
        .execute_unprepared("UPDATE giftcard.cards SET locked_until = now() - interval '1 second'; UPDATE giftcard.pin_failures SET failed_at = now() - interval '16 minutes'")
        .await
        .expect("let the lock run out");
    let redeemed = app
        .redeem(&shop.staff_token, code, pin, &shop.branch_id, "w1")
        .await;
    assert_eq!(
        redeemed["data"]["redeemCard"]["card"]["status"], "REDEEMED",
        "{redeemed}"
    );
    assert_ledger_sound(&app).await;
}

/// A purchase's debit reaches the buyer like any other posting: the cached
/// balance is refreshed and `walletUpdated` sends the new state with its
/// CARD_PURCHASE entry.
#[tokio::test(crate = "crate::support::harness")]
async fn a_purchase_refreshes_the_cached_balance_and_is_announced_on_wallet_updated() {
    let app = spawn_app().await;
    let shop = app.open_shop("shop@example.com", "Slot", &[1_500]).await;
    let (buyer, _) = app.register("buyer@example.com", "Tayo B").await;
    app.fund(&buyer, 10_000).await;
    // Cached now.
    assert_eq!(app.my_balance(&buyer).await, 10_000);
    let mut socket = WsClient::ready(&app.ws_url(), Some(&buyer)).await;
    socket
        .subscribe(
            "w",
            "subscription { walletUpdated { balance entries(first: 1) { nodes { kind direction amount } } } }",
        )
        .await;
    let current = socket.next_of("next", "w").await;
    assert_eq!(
        current["payload"]["data"]["walletUpdated"]["balance"],
        "10000"
    );

    card_of(&app.buy(&buyer, &shop.product_id, 1_500, "k").await);
    assert_eq!(app.my_balance(&buyer).await, 8_500);
    let update = socket.next_of("next", "w").await;
    let wallet = &update["payload"]["data"]["walletUpdated"];
    assert_eq!(wallet["balance"], "8500", "{update}");
    assert_eq!(
        wallet["entries"]["nodes"],
        json!([{ "kind": "CARD_PURCHASE", "direction": "DEBIT", "amount": "1500" }])
    );
}

/// Purchases sell from the process's copy of a product; a copy the rows no
/// longer bear out sells nothing and the rows decide.
#[tokio::test(crate = "crate::support::harness")]
async fn a_purchase_from_a_stale_copy_of_its_product_follows_the_rows() {
    let app = spawn_app().await;
    let shop = app.open_shop("shop@example.com", "Jiji", &[1_000]).await;
    let (buyer, _) = app.register("buyer@example.com", "Bisi A").await;
    app.fund(&buyer, 10_000).await;
    let bought = |key: &'static str| {
        let app = &app;
        let buyer = &buyer;
        let product = &shop.product_id;
        async move {
            let body = app.buy(buyer, product, 1_000, key).await;
            body["data"]["purchaseCard"]["id"]
                .as_str()
                .map(str::to_owned)
                .ok_or(body)
        }
    };
    // Changed behind the API's back, so nothing could tell the process.
    let db = &app.db;
    let change = |sql: &'static str| async move {
        db.execute_unprepared(sql).await.expect("changed");
    };

    bought("a").await.expect("a first purchase keeps a copy");
    let rows = purchase_rows(&app).await;
    change("UPDATE giftcard.card_products SET active = false").await;
    // Off sale, a product is hidden from everyone but its staff.
    let off_sale = bought("b").await.expect_err("off sale");
    assert_eq!(error_code(&off_sale), "NOT_FOUND", "{off_sale}");
    assert_eq!(purchase_rows(&app).await, rows);

    change("UPDATE giftcard.card_products SET active = true").await;
    bought("c").await.expect("on sale again");
    change("UPDATE giftcard.merchants SET service_rate_bps = 1234").await;
    let card = bought("d").await.expect("a purchase at the new rate");
    let rate = scalar(
        &app.db,
        &format!(
            "SELECT e.service_rate_bps::bigint FROM giftcard.escrows e JOIN giftcard.cards c ON c.escrow_id = e.id WHERE c.id = '{card}'"
        ),
    )
    .await;
    assert_eq!(
        rate, 1234,
        "the escrow snapshots the merchant's current rate"
    );

    bought("e").await.expect("a purchase keeps a fresh copy");
    let rows = purchase_rows(&app).await;
    change("UPDATE giftcard.merchants SET status = 'SUSPENDED'").await;
    let suspended = bought("f").await.expect_err("suspended");
    assert_eq!(error_code(&suspended), "FORBIDDEN", "{suspended}");
    assert_eq!(purchase_rows(&app).await, rows);
    assert_eq!(app.my_balance(&buyer).await, 6_000);
    assert_ledger_sound(&app).await;
}

/// A first purchase commits as one statement; every other use of its key
/// fails that statement whole and takes the general path.
#[tokio::test(crate = "crate::support::harness")]
async fn a_used_key_replays_refuses_other_input_and_is_reusable_once_expired() {
    let app = spawn_app().await;
    let shop = app
        .open_shop("shop@example.com", "Konga", &[1_000, 2_000])
        .await;
    let (buyer, _) = app.register("buyer@example.com", "Ada O").await;
    app.fund(&buyer, 10_000).await;
    let first = app.buy(&buyer, &shop.product_id, 1_000, "k").await;
    let first_id = card_of(&first)["id"].clone();
    let bought = purchase_rows(&app).await;
    let replay = app.buy(&buyer, &shop.product_id, 1_000, "k").await;
    assert_eq!(card_of(&replay)["id"], first_id);
    let other = app.buy(&buyer, &shop.product_id, 2_000, "k").await;
    assert_eq!(error_code(&other), "IDEMPOTENCY_KEY_REUSED", "{other}");
    assert_eq!(purchase_rows(&app).await, bought);
    assert_eq!(app.my_balance(&buyer).await, 9_000);

    // Past its retention, before the sweep: the key is free again.
    app.db
        .execute_unprepared(
            "UPDATE ledger.idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = 'k'",
        )
        .await
        .expect("expired");
    let again = app.buy(&buyer, &shop.product_id, 2_000, "k").await;
    assert_ne!(
        card_of(&again)["id"],
        first_id,
        "a new card under the expired key"
    );
    assert_eq!(app.my_balance(&buyer).await, 7_000);
    assert_eq!(purchase_rows(&app).await, bought.map(|n| n + 1));
    assert_ledger_sound(&app).await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_purchase_that_fails_leaves_no_escrow_card_entry_or_audit_behind() {
    let app = spawn_app().await;
    let shop = app.open_shop("shop@example.com", "Jumia", &[50_000]).await;
    let (buyer, _) = app.register("buyer@example.com", "Efe U").await;
    app.fund(&buyer, 10_000).await;
    let before = purchase_rows(&app).await;
    let outbox_before = app.count("ops.outbox").await;

    let poor = app.buy(&buyer, &shop.product_id, 50_000, "a").await;
    assert_eq!(error_code(&poor), "INSUFFICIENT_FUNDS");
    assert_eq!(poor["errors"][0]["extensions"]["required"], "50000");
    assert_eq!(poor["errors"][0]["extensions"]["available"], "10000");
    let odd = app.buy(&buyer, &shop.product_id, 7_000, "b").await;
    assert_eq!(error_code(&odd), "BAD_USER_INPUT");
    assert_eq!(odd["errors"][0]["extensions"]["field"], "input.faceValue");
    let zero = app.buy(&buyer, &shop.product_id, 0, "c").await;
    assert_eq!(
        odd["errors"][0]["extensions"]["field"],
        zero["errors"][0]["extensions"]["field"]
    );
    let unknown = app
        .buy(&buyer, &uuid::Uuid::new_v4().to_string(), 50_000, "d")
        .await;
    assert_eq!(error_code(&unknown), "NOT_FOUND");
    // Keys are 1-255 printable characters, for every money mutation.
    for key in ["", "line\nbreak"] {
        let bought = app.buy(&buyer, &shop.product_id, 50_000, key).await;
        let redeemed = app
            .redeem(
                &shop.staff_token,
                "0000-0000-0000",
                "123456",
                &shop.branch_id,
                key,
            )
            .await;
        let paid = app
            .gql(
                Some(&shop.staff_token),
                "mutation($i: PayoutInput!) { requestPayout(input: $i) { id } }",
                json!({ "i": { "merchantId": shop.merchant_id, "amount": "1", "idempotencyKey": key } }),
            )
            .await;
        for body in [bought, redeemed, paid] {
            assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
            assert_eq!(
                body["errors"][0]["extensions"]["field"],
                "input.idempotencyKey"
            );
        }
    }

    let admin = app.admin_token().await;
    app.ok(
        Some(&admin),
        "mutation($id: ID!) { suspendMerchant(id: $id, reason: \"fraud review\") { status } }",
        json!({ "id": shop.merchant_id }),
        "suspendMerchant",
    )
    .await;
    app.fund(&buyer, 40_000).await;
    let suspended = app.buy(&buyer, &shop.product_id, 50_000, "e").await;
    assert_eq!(error_code(&suspended), "FORBIDDEN", "{suspended}");

    assert_eq!(purchase_rows(&app).await, before);
    // Only the second top-up's wallet announcement reached the outbox (and
    // was relayed); nothing of the failed purchases.
    let purchase_messages = scalar(
        &app.db,
        "SELECT count(*) FROM ops.outbox WHERE payload::text LIKE '%CARD_PURCHASE%'",
    )
    .await;
    assert_eq!(purchase_messages, 0);
    assert!(app.count("ops.outbox").await <= outbox_before + 1);
    assert_eq!(app.my_balance(&buyer).await, 50_000);
    // The replay of a stored INSUFFICIENT_FUNDS answer stays the same,
    // although the purchase would succeed now: its work runs (a purchase
    // does not look for a stored answer first), finds the key taken, and is
    // rolled back.
    let replay = app.buy(&buyer, &shop.product_id, 50_000, "a").await;
    assert_eq!(error_code(&replay), "INSUFFICIENT_FUNDS");
    assert_eq!(app.my_balance(&buyer).await, 50_000);
    assert_eq!(purchase_rows(&app).await, before);
    assert_ledger_sound(&app).await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn the_database_refuses_to_change_a_final_escrow() {
    let app = spawn_app().await;
    let shop = app.open_shop("shop@example.com", "Konga", &[5_000]).await;
    let (buyer, _) = app.register("buyer@example.com", "Femi A").await;
    app.fund(&buyer, 5_000).await;
    let card = card_of(&app.buy(&buyer, &shop.product_id, 5_000, "k").await);
    let escrow = card["escrow"]["id"].as_str().expect("escrow id");
    let admin = app.admin_token().await;
    let released = app
        .ok(Some(&admin), "mutation($id: ID!) { releaseEscrow(id: $id, reason: \"customer complaint\") { status releaseReason card { status } } }", json!({ "id": escrow }), "releaseEscrow")
        .await;
    assert_eq!(released["status"], "RELEASED");
    assert_eq!(released["card"]["status"], "VOID");
    assert_eq!(app.my_balance(&buyer).await, 5_000);
    let again = app
        .gql(
            Some(&admin),
            "mutation($id: ID!) { releaseEscrow(id: $id, reason: \"again\") { status } }",
            json!({ "id": escrow }),
        )
        .await;
    assert_eq!(error_code(&again), "CONFLICT");

    for sql in [
        format!(
            "UPDATE giftcard.escrows SET status = 'SETTLED', settled_at = now(), deposit_fee = 0, service_fee = 0, merchant_payout = 5000, released_at = NULL, release_reason = NULL WHERE id = '{escrow}'"
        ),
        format!("UPDATE giftcard.escrows SET release_reason = 'edited' WHERE id = '{escrow}'"),
        format!("DELETE FROM giftcard.escrows WHERE id = '{escrow}'"),
    ] {
        let refused = app.db.execute_unprepared(&sql).await;
        assert!(refused.is_err(), "the database accepted: {sql}");
    }
    let fresh = card_of(&app.buy(&buyer, &shop.product_id, 5_000, "k2").await);
    let fresh_escrow = fresh["escrow"]["id"].as_str().expect("escrow id");
    let unbalanced = app
        .db
        .execute_unprepared(&format!(
            "UPDATE giftcard.escrows SET amount = 1 WHERE id = '{fresh_escrow}'"
        ))
        .await;
    assert!(unbalanced.is_err(), "the amount is fixed at reservation");
    let audit = scalar(
        &app.db,
        "SELECT count(*) FROM ops.audit_log WHERE action = 'escrow.release'",
    )
    .await;
    assert_eq!(audit, 1);
    assert_ledger_sound(&app).await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn concurrent_duplicates_of_a_purchase_and_a_redemption_have_one_effect() {
    let app = spawn_app().await;
    let shop = app.open_shop("shop@example.com", "Twice", &[10_000]).await;
    let (buyer, _) = app.register("buyer@example.com", "Gozie A").await;
    app.fund(&buyer, 50_000).await;

    let bodies = futures_util::future::join_all(
        (0..20).map(|_| app.buy(&buyer, &shop.product_id, 10_000, "same-key")),
    )
    .await;
    let mut ids: Vec<&Value> = bodies
        .iter()
        .filter_map(|b| {
            b["data"]["purchaseCard"]["id"]
                .as_str()
                .map(|_| &b["data"]["purchaseCard"]["id"])
        })
        .collect();
    for body in &bodies {
        assert!(
            body["data"]["purchaseCard"].is_object()
                || error_code(body) == "IDEMPOTENCY_KEY_IN_USE",
            "{body}"
        );
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one card for every answer");
    assert_eq!(app.count("giftcard.cards").await, 1);
    assert_eq!(app.my_balance(&buyer).await, 40_000, "debited once");

    let card = &bodies
        .iter()
        .find(|b| b["data"]["purchaseCard"].is_object())
        .expect("a card")["data"]["purchaseCard"];
    let (code, pin) = (
        card["code"].as_str().expect("code"),
        card["pin"].as_str().expect("pin"),
    );
    let redemptions = futures_util::future::join_all(
        (0..20).map(|_| app.redeem(&shop.staff_token, code, pin, &shop.branch_id, "till-key")),
    )
    .await;
    let mut redeemed: Vec<&Value> = Vec::new();
    for body in &redemptions {
        match body["data"]["redeemCard"]["id"].as_str() {
            Some(_) => redeemed.push(&body["data"]["redeemCard"]["id"]),
            None => assert_eq!(error_code(body), "IDEMPOTENCY_KEY_IN_USE", "{body}"),
        }
    }
    redeemed.dedup();
    assert_eq!(redeemed.len(), 1, "the same redemption for every answer");
    assert_eq!(app.count("giftcard.redemptions").await, 1);
    assert_eq!(
        scalar(
            &app.db,
            "SELECT count(*) FROM ledger.transfers WHERE kind = 'SETTLEMENT'"
        )
        .await,
        1
    );
    assert_ledger_sound(&app).await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn an_escrow_keeps_the_service_rate_of_its_reservation_and_admin_transitions_are_checked() {
    let app = spawn_app().await;
    let shop = app.open_shop("shop@example.com", "Rates", &[500_000]).await;
    let (buyer, _) = app.register("buyer@example.com", "Hauwa B").await;
    app.fund(&buyer, 1_500_000).await;
    let admin = app.admin_token().await;
    let set_rate = "mutation($id: ID!, $bps: Int!) { setMerchantServiceRate(id: $id, bps: $bps) { serviceRateBps } }";

    let before = card_of(&app.buy(&buyer, &shop.product_id, 500_000, "before").await);
    let changed = app
        .ok(
            Some(&admin),
            set_rate,
            json!({ "id": shop.merchant_id, "bps": 1000 }),
            "setMerchantServiceRate",
        )
        .await;
    assert_eq!(changed["serviceRateBps"], 1000);
    let after = card_of(&app.buy(&buyer, &shop.product_id, 500_000, "after").await);
    assert_eq!(
        before["escrow"]["serviceRateBps"], 500,
        "snapshotted at reservation"
    );
    assert_eq!(after["escrow"]["serviceRateBps"], 1000);

    let first = app.redeem_card(&shop, &before, "r1").await;
    let second = app.redeem_card(&shop, &after, "r2").await;
    // 500,000 - 7,500 = 492,500; x 5% = 24,625 and x 10% = 49,250.
    assert_eq!(first["escrow"]["serviceFee"], "24625");
    assert_eq!(second["escrow"]["serviceFee"], "49250");
    assert_eq!(second["escrow"]["merchantPayout"], "443250");

    for bad in [-1, 10_001] {
        let body = app
            .gql(
                Some(&admin),
                set_rate,
                json!({ "id": shop.merchant_id, "bps": bad }),
            )
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT");
        assert_eq!(body["errors"][0]["extensions"]["field"], "bps");
    }
    let approve = "mutation($id: ID!) { approveMerchant(id: $id) { status } }";
    let again = app
        .gql(Some(&admin), approve, json!({ "id": shop.merchant_id }))
        .await;
    assert_eq!(error_code(&again), "CONFLICT", "already ACTIVE");

    // A suspended merchant's tills cannot redeem; its escrows stay as they are.
    let third = card_of(&app.buy(&buyer, &shop.product_id, 500_000, "third").await);
    let suspend =
        "mutation($id: ID!) { suspendMerchant(id: $id, reason: \"chargebacks\") { status } }";
    app.ok(
        Some(&admin),
        suspend,
        json!({ "id": shop.merchant_id }),
        "suspendMerchant",
    )
    .await;
    let twice = app
        .gql(Some(&admin), suspend, json!({ "id": shop.merchant_id }))
        .await;
    assert_eq!(error_code(&twice), "CONFLICT");
    let refused = app.redeem_at(&shop, &third, "r3").await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
    let escrow = app
        .ok(
            Some(&buyer),
            "query($id: ID!) { escrow(id: $id) { status } }",
            json!({ "id": third["escrow"]["id"] }),
            "escrow",
        )
        .await;
    assert_eq!(escrow["status"], "RESERVED");
    // Re-approved, it redeems again: under a new key, since the refusal is
    // the stored outcome of the old one.
    app.ok(
        Some(&admin),
        approve,
        json!({ "id": shop.merchant_id }),
        "approveMerchant",
    )
    .await;
    let replayed = app.redeem_at(&shop, &third, "r3").await;
    assert_eq!(error_code(&replayed), "FORBIDDEN");
    let redeemed = app.redeem_card(&shop, &third, "r4").await;
    assert_eq!(redeemed["escrow"]["status"], "SETTLED");
    let audited = scalar(
        &app.db,
        "SELECT count(*) FROM ops.audit_log WHERE action IN ('merchant.service_rate', 'merchant.suspend', 'merchant.approve')",
    )
    .await;
    assert_eq!(audited, 4, "rate change, suspension and two approvals");
    assert_ledger_sound(&app).await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn wrong_pins_older_than_fifteen_minutes_do_not_count_toward_the_lock() {
    let app = spawn_app().await;
    let shop = app.open_shop("shop@example.com", "Window", &[5_000]).await;
    let (buyer, _) = app.register("buyer@example.com", "Jide W").await;
    app.fund(&buyer, 5_000).await;
    let card = card_of(&app.buy(&buyer, &shop.product_id, 5_000, "k").await);
    let right = card["pin"].as_str().expect("pin");
    let mut wrong_card = card.clone();
    wrong_card["pin"] = json!(if right == "000000" {
        "111111"
    } else {
        "000000"
    });

    for attempt in 1..=4 {
        let body = app
            .redeem_at(&shop, &wrong_card, &format!("old{attempt}"))
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    }
    app.db
        .execute_unprepared(
            "UPDATE giftcard.pin_failures SET failed_at = now() - interval '16 minutes'",
        )
        .await
        .expect("age the first four");
    // Four more: eight in all, but never five within 15 minutes.
    for attempt in 1..=4 {
        let body = app
            .redeem_at(&shop, &wrong_card, &format!("new{attempt}"))
            .await;
        assert_eq!(
            error_code(&body),
            "BAD_USER_INPUT",
            "attempt {attempt}: {body}"
        );
    }
    let redeemed = app.redeem_card(&shop, &card, "right").await;
    assert_eq!(redeemed["card"]["status"], "REDEEMED");
}
