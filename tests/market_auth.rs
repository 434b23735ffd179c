//! Who sees what in the marketplace: every card, escrow, merchant-wallet
//! and payout field for an anonymous caller, another user, another
//! merchant's staff, the card's owner, the merchant's staff and an admin,
//! through root fields and nested edges. No cross-tenant data.

use serde_json::{Value, json};

use crate::support::market::Shop;
use crate::support::{TestApp, code, spawn_app};

/// The six viewers, by name, with their tokens (`None`: anonymous).
struct Viewers {
    all: Vec<(&'static str, Option<String>)>,
}

impl Viewers {
    fn token(&self, who: &str) -> Option<&str> {
        self.all
            .iter()
            .find(|(name, _)| *name == who)
            .and_then(|(_, token)| token.as_deref())
    }
}

struct World {
    shop: Shop,
    rival: Shop,
    card_id: String,
    escrow_id: String,
    payout_id: String,
    viewers: Viewers,
}

async fn world(app: &TestApp) -> World {
    let shop = app
        .open_shop("staff@example.com", "Tenant A", &[10_000])
        .await;
    let rival = app
        .open_shop("rival@example.com", "Tenant B", &[10_000])
        .await;
    let (owner, _) = app.register("owner@example.com", "Owner One").await;
    let (other, _) = app.register("other@example.com", "Other Two").await;
    app.fund(&owner, 20_000).await;
    let bought = app.buy(&owner, &shop.product_id, 10_000, "a").await;
    let card = bought["data"]["purchaseCard"].clone();
    // A second card, redeemed, so the merchant has earnings to pay out.
    let spent = app.buy(&owner, &shop.product_id, 10_000, "b").await;
    app.redeem_card(&shop, &spent["data"]["purchaseCard"], "t")
        .await;
    let payout = app
        .ok(
            Some(&shop.staff_token),
            "mutation($i: PayoutInput!) { requestPayout(input: $i) { id } }",
            json!({ "i": { "merchantId": shop.merchant_id, "amount": "1000", "idempotencyKey": "p" } }),
            "requestPayout",
        )
        .await;
    let admin = app.admin_token().await;
    World {
        card_id: card["id"].as_str().expect("card id").to_owned(),
        escrow_id: card["escrow"]["id"].as_str().expect("escrow id").to_owned(),
        payout_id: payout["id"].as_str().expect("payout id").to_owned(),
        viewers: Viewers {
            all: vec![
                ("anonymous", None),
                ("other user", Some(other)),
                ("other merchant's staff", Some(rival.staff_token.clone())),
                ("owner", Some(owner)),
                ("staff", Some(shop.staff_token.clone())),
                ("admin", Some(admin)),
            ],
        },
        shop,
        rival,
    }
}

/// What one viewer gets for one field: an error code, null, or the data.
fn outcome(body: &Value, field: &str) -> Value {
    if body["errors"].is_array() {
        json!({ "error": code(body) })
    } else {
        body["data"][field].clone()
    }
}

async fn each_viewer(
    app: &TestApp,
    w: &World,
    query: &str,
    vars: &Value,
    field: &str,
) -> Vec<(&'static str, Value)> {
    let mut seen = Vec::new();
    for (who, token) in &w.viewers.all {
        let body = app.gql(token.as_deref(), query, vars.clone()).await;
        seen.push((*who, outcome(&body, field)));
    }
    seen
}

fn expect(seen: &[(&'static str, Value)], expected: &[(&str, Value)]) {
    for ((who, got), (expected_who, want)) in seen.iter().zip(expected) {
        assert_eq!(who, expected_who);
        assert_eq!(got, want, "{who}");
    }
}

const DENIED: fn() -> Value = || json!({ "error": "UNAUTHENTICATED" });

#[tokio::test(crate = "crate::support::harness")]
async fn cards_escrows_merchant_wallets_and_payouts_are_shown_only_to_who_may_see_them() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let card = json!({ "id": w.card_id });

    // Root card: code, pin and owner only for the owner and admins.
    let seen = each_viewer(
        &app,
        &w,
        "query($id: ID!) { card(id: $id) { id code pin owner { email } } }",
        &card,
        "card",
    )
    .await;
    let secrets = |v: &Value| {
        v.is_object()
            && v["code"].is_string()
            && v["pin"].is_string()
            && v["owner"]["email"] == "owner@example.com"
    };
    assert_eq!(seen[0].1, DENIED());
    assert_eq!(seen[1].1, Value::Null, "other user");
    assert_eq!(seen[2].1, Value::Null, "other merchant's staff");
    assert!(secrets(&seen[3].1), "owner: {}", seen[3].1);
    assert_eq!(
        seen[4].1,
        json!({ "id": w.card_id, "code": null, "pin": null, "owner": null }),
        "staff"
    );
    assert!(secrets(&seen[5].1), "admin: {}", seen[5].1);

    // Root escrow, and the card behind it (nested edge).
    let escrow = json!({ "id": w.escrow_id });
    let seen = each_viewer(
        &app,
        &w,
        "query($id: ID!) { escrow(id: $id) { id card { code } merchant { wallet { balance } } } }",
        &escrow,
        "escrow",
    )
    .await;
    assert_eq!(seen[0].1, DENIED());
    assert_eq!(seen[1].1, Value::Null);
    assert_eq!(seen[2].1, Value::Null);
    assert!(
        seen[3].1["card"]["code"].is_string(),
        "the funder sees the escrow and its card: {}",
        seen[3].1
    );
    assert_eq!(
        seen[3].1["merchant"]["wallet"],
        Value::Null,
        "but not the merchant's wallet"
    );
    assert_eq!(
        seen[4].1["card"],
        json!({ "code": null }),
        "staff see the card without its code"
    );
    assert!(seen[4].1["merchant"]["wallet"]["balance"].is_string());
    assert!(
        seen[5].1["card"]["code"].is_string()
            && seen[5].1["merchant"]["wallet"]["balance"].is_string()
    );

    // Merchant wallet through the root merchant field.
    let merchant = json!({ "id": w.shop.merchant_id });
    let seen = each_viewer(
        &app,
        &w,
        "query($id: ID!) { merchant(id: $id) { name wallet { kind balance } } }",
        &merchant,
        "merchant",
    )
    .await;
    // 10,000 - 150 deposit fee - 493 service fee (9,850 x 5% = 492.5, half up) - 1,000 paid out.
    let wallet = json!({ "name": "Tenant A", "wallet": { "kind": "MERCHANT", "balance": "8357" } });
    let public = json!({ "name": "Tenant A", "wallet": null });
    expect(
        &seen,
        &[
            ("anonymous", public.clone()),
            ("other user", public.clone()),
            ("other merchant's staff", public.clone()),
            ("owner", public.clone()),
            ("staff", wallet.clone()),
            ("admin", wallet),
        ],
    );

    // Payouts.
    let payout = json!({ "id": w.payout_id });
    let seen = each_viewer(
        &app,
        &w,
        "query($id: ID!) { payout(id: $id) { id merchant { id } } }",
        &payout,
        "payout",
    )
    .await;
    let visible = json!({ "id": w.payout_id, "merchant": { "id": w.shop.merchant_id } });
    expect(
        &seen,
        &[
            ("anonymous", DENIED()),
            ("other user", Value::Null),
            ("other merchant's staff", Value::Null),
            ("owner", Value::Null),
            ("staff", visible.clone()),
            ("admin", visible),
        ],
    );

    // Lists: escrows and myCards never show another tenant's rows.
    let seen = each_viewer(
        &app,
        &w,
        "{ escrows { nodes { id merchant { id } } } }",
        &json!({}),
        "escrows",
    )
    .await;
    let count = |v: &Value| v["nodes"].as_array().map_or(usize::MAX, Vec::len);
    assert_eq!(seen[0].1, DENIED());
    assert_eq!(count(&seen[1].1), 0, "other user");
    assert_eq!(count(&seen[2].1), 0, "other merchant's staff");
    assert_eq!(count(&seen[3].1), 2, "the funder: both of their escrows");
    assert_eq!(count(&seen[4].1), 2, "staff: their merchant's");
    assert_eq!(count(&seen[5].1), 2, "admin: all");
    // Filters narrow what the viewer may see; they never widen it.
    let filtered = |filter: Value| {
        let app = &app;
        let token = w.viewers.token("staff").map(str::to_owned);
        async move {
            let body = app
                .gql(
                    token.as_deref(),
                    "query($f: EscrowFilter) { escrows(filter: $f) { nodes { status } } }",
                    json!({ "f": filter }),
                )
                .await;
            body["data"]["escrows"]["nodes"].clone()
        }
    };
    assert_eq!(
        filtered(json!({ "status": "SETTLED" })).await,
        json!([{ "status": "SETTLED" }])
    );
    assert_eq!(
        filtered(json!({ "status": "RESERVED", "merchantId": w.shop.merchant_id })).await,
        json!([{ "status": "RESERVED" }])
    );
    assert_eq!(
        filtered(json!({ "merchantId": w.rival.merchant_id })).await,
        json!([]),
        "another tenant's filter shows nothing"
    );
    assert_eq!(filtered(json!({ "status": "RELEASED" })).await, json!([]));
    let seen = each_viewer(&app, &w, "{ myCards { id code } }", &json!({}), "myCards").await;
    assert_eq!(seen[0].1, DENIED());
    for (who, cards) in &seen[1..] {
        let expected = if *who == "owner" { 2 } else { 0 };
        assert_eq!(cards.as_array().map(Vec::len), Some(expected), "{who}");
    }
}

#[tokio::test(crate = "crate::support::harness")]
async fn only_staff_act_for_their_merchant_and_only_admins_run_the_platform() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let v = &w.viewers;
    let calls: Vec<(&str, &str, Value)> = vec![
        (
            "addBranch",
            "mutation($m: ID!) { addBranch(merchantId: $m, input: { name: \"X\", address: \"Y\" }) { id } }",
            json!({ "m": w.shop.merchant_id }),
        ),
        (
            "createCardProduct",
            "mutation($m: ID!) { createCardProduct(input: { merchantId: $m, name: \"X\", description: \"\", denominations: [\"100\"], validityDays: 30 }) { id } }",
            json!({ "m": w.shop.merchant_id }),
        ),
        (
            "requestPayout",
            "mutation($m: ID!) { requestPayout(input: { merchantId: $m, amount: \"1\", idempotencyKey: \"x\" }) { id } }",
            json!({ "m": w.shop.merchant_id }),
        ),
        (
            "addMerchantStaff",
            "mutation($m: ID!) { addMerchantStaff(merchantId: $m, email: \"other@example.com\") { id } }",
            json!({ "m": w.shop.merchant_id }),
        ),
    ];
    for (field, query, vars) in &calls {
        for who in ["other user", "other merchant's staff", "owner"] {
            let body = app.gql(v.token(who), query, vars.clone()).await;
            assert_eq!(code(&body), "FORBIDDEN", "{field} by {who}: {body}");
        }
        let body = app.gql(None, query, vars.clone()).await;
        assert_eq!(code(&body), "UNAUTHENTICATED", "{field} anonymously");
    }
    let redeem = app
        .redeem(
            v.token("owner").expect("owner"),
            "0000-0000-0000",
            "123456",
            &w.shop.branch_id,
            "x",
        )
        .await;
    assert_eq!(
        code(&redeem),
        "FORBIDDEN",
        "a buyer cannot redeem at the till"
    );

    let admin_calls: Vec<(&str, String)> = vec![
        (
            "approveMerchant",
            format!(
                "mutation {{ approveMerchant(id: \"{}\") {{ id }} }}",
                w.rival.merchant_id
            ),
        ),
        (
            "suspendMerchant",
            format!(
                "mutation {{ suspendMerchant(id: \"{}\", reason: \"r\") {{ id }} }}",
                w.rival.merchant_id
            ),
        ),
        (
            "setMerchantServiceRate",
            format!(
                "mutation {{ setMerchantServiceRate(id: \"{}\", bps: 1) {{ id }} }}",
                w.rival.merchant_id
            ),
        ),
        (
            "releaseEscrow",
            format!(
                "mutation {{ releaseEscrow(id: \"{}\", reason: \"r\") {{ id }} }}",
                w.escrow_id
            ),
        ),
        ("platformStats", "{ platformStats { users } }".to_owned()),
    ];
    for (field, query) in &admin_calls {
        for who in ["other user", "other merchant's staff", "owner", "staff"] {
            let body = app.gql(v.token(who), query, json!({})).await;
            assert_eq!(code(&body), "FORBIDDEN", "{field} by {who}: {body}");
        }
    }
    assert_eq!(app.count("giftcard.branches").await, 2, "nothing was added");
    assert_eq!(app.count("giftcard.card_products").await, 2);
    assert_eq!(app.count("ledger.payouts").await, 1);

    // A PENDING merchant is invisible to everyone but its staff and admins.
    let (pending_staff, _) = app.register("new@example.com", "New Shop").await;
    let pending = app
        .ok(Some(&pending_staff), "mutation { registerMerchant(input: { name: \"Soon\", payoutAccount: \"1\" }) { id status } }", json!({}), "registerMerchant")
        .await;
    assert_eq!(pending["status"], "PENDING");
    // Staff add an existing account: it becomes MERCHANT and staff at once.
    let added = "mutation($m: ID!) { addMerchantStaff(merchantId: $m, email: \"other@example.com\") { id } }";
    app.ok(
        v.token("staff"),
        added,
        json!({ "m": w.shop.merchant_id }),
        "addMerchantStaff",
    )
    .await;
    let other = app
        .ok(
            v.token("other user"),
            "query($id: ID!) { me { roles } merchant(id: $id) { wallet { kind } } }",
            json!({ "id": w.shop.merchant_id }),
            "merchant",
        )
        .await;
    assert_eq!(
        other["wallet"]["kind"], "MERCHANT",
        "the new staff member sees the wallet"
    );
    let again = app
        .gql(v.token("staff"), added, json!({ "m": w.shop.merchant_id }))
        .await;
    assert_eq!(code(&again), "CONFLICT", "already staff");
    // Registering made the caller MERCHANT, in effect on the next request.
    let roles = app
        .ok(Some(&pending_staff), "{ me { roles } }", json!({}), "me")
        .await;
    assert_eq!(roles["roles"], json!(["PARTICIPANT", "MERCHANT"]));
    let id = json!({ "id": pending["id"] });
    let query = "query($id: ID!) { merchant(id: $id) { status } }";
    for who in ["anonymous", "other user", "staff"] {
        let body = app.gql(v.token(who), query, id.clone()).await;
        assert_eq!(body["data"]["merchant"], Value::Null, "{who}");
    }
    for token in [Some(pending_staff.as_str()), v.token("admin")] {
        let body = app.gql(token, query, id.clone()).await;
        assert_eq!(body["data"]["merchant"]["status"], "PENDING");
    }
    let listed = app
        .ok(
            None,
            "{ merchants { nodes { name } } }",
            json!({}),
            "merchants",
        )
        .await;
    assert_eq!(
        listed["nodes"],
        json!([{ "name": "Tenant B" }, { "name": "Tenant A" }]),
        "newest first, no PENDING"
    );
    let product = app
        .gql(Some(&pending_staff), &format!("mutation {{ createCardProduct(input: {{ merchantId: {}, name: \"X\", description: \"\", denominations: [\"100\"], validityDays: 30 }}) {{ id }} }}", pending["id"]), json!({}))
        .await;
    assert_eq!(
        code(&product),
        "FORBIDDEN",
        "a PENDING merchant cannot create products"
    );

    // Admin views.
    let stats = app
        .ok(v.token("admin"), "{ platformStats { users liveEvents escrowReserved escrowSettled feesEarned generatedAt } }", json!({}), "platformStats")
        .await;
    assert_eq!(stats["users"], 6, "{stats}");
    assert_eq!(
        (
            &stats["escrowReserved"],
            &stats["escrowSettled"],
            &stats["feesEarned"]
        ),
        (&json!("10000"), &json!("10000"), &json!("493"))
    );
    let audit = app
        .ok(
            v.token("admin"),
            "{ auditLog(first: 100) { nodes { action subject correlationId actor { email } } } }",
            json!({}),
            "auditLog",
        )
        .await;
    let actions: Vec<&str> = audit["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "merchant.register",
        "merchant.approve",
        "card.purchase",
        "card.redeem",
        "payout.request",
        "merchant.branch.add",
        "product.create",
    ] {
        assert!(
            actions.contains(&action),
            "{action} is audited: {actions:?}"
        );
    }
    assert!(
        audit["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .all(|e| e["correlationId"].is_string())
    );
}
