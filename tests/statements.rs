//! What a request costs in SQL: nested rows of a list are loaded in
//! batches, so a longer list does not run more statements.

use serde_json::json;

use crate::support::{AppOptions, TestApp};

const MY_CARDS: &str = "{ myCards { id owner { id } product { name merchant { name branches { id } } } escrow { status merchant { name } card { id } } } }";
const ESCROWS: &str =
    "{ escrows { nodes { id card { id owner { id } } merchant { branches { id } } } } }";

/// The statements one request for the list `field` runs, and the length
/// of the list.
async fn cost(app: &TestApp, token: &str, query: &str, field: &str) -> (u64, usize) {
    let before = app.running().db_statements.get();
    let list = app.ok(Some(token), query, json!({}), field).await;
    let cost = app.running().db_statements.get() - before;
    let items = list.as_array().or_else(|| list["nodes"].as_array());
    (cost, items.map_or(0, Vec::len))
}

#[tokio::test(crate = "crate::support::harness")]
async fn lists_of_cards_and_escrows_cost_the_same_statements_however_long_they_are() {
    // Serving only, no relay: nothing else runs statements meanwhile.
    let app = AppOptions::new().await.quiet().spawn().await;
    let shop = app.open_shop("shop@example.com", "Batch", &[1_000]).await;
    let (buyer, _) = app.register("buyer@example.com", "Ike O").await;
    app.fund(&buyer, 10_000).await;
    for i in 0..2 {
        assert!(
            app.buy(&buyer, &shop.product_id, 1_000, &format!("a{i}"))
                .await["errors"]
                .is_null()
        );
    }
    let (two, listed) = cost(&app, &buyer, MY_CARDS, "myCards").await;
    assert_eq!(listed, 2);
    let (two_escrows, listed) = cost(&app, &buyer, ESCROWS, "escrows").await;
    assert_eq!(listed, 2);
    for i in 0..6 {
        assert!(
            app.buy(&buyer, &shop.product_id, 1_000, &format!("b{i}"))
                .await["errors"]
                .is_null()
        );
    }
    let (eight, listed) = cost(&app, &buyer, MY_CARDS, "myCards").await;
    assert_eq!(listed, 8);
    // Six more cards: a query per item would add at least 6 per nested
    // field; a batch that happens to be split in two under load adds 1.
    assert!(
        eight.abs_diff(two) <= 2,
        "8 cards cost {eight}, 2 cost {two}"
    );
    assert!(
        two <= 12,
        "the viewer, the cards, then one batch per kind of nested row: {two}"
    );
    let (eight_escrows, listed) = cost(&app, &buyer, ESCROWS, "escrows").await;
    assert_eq!(listed, 8);
    assert!(
        eight_escrows.abs_diff(two_escrows) <= 2,
        "8 escrows cost {eight_escrows}, 2 cost {two_escrows}"
    );
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_purchase_is_two_statements_and_its_repeat_changes_nothing() {
    let app = AppOptions::new().await.quiet().spawn().await;
    let shop = app.open_shop("shop@example.com", "Lean", &[1_000]).await;
    let (buyer, _) = app.register("buyer@example.com", "Ike O").await;
    app.fund(&buyer, 10_000).await;
    let buy = |key: &'static str| {
        app.ok(
            Some(&buyer),
            "mutation($i: PurchaseCardInput!) { purchaseCard(input: $i) { id } }",
            json!({ "i": { "productId": shop.product_id, "faceValue": "1000", "idempotencyKey": key } }),
            "purchaseCard",
        )
    };
    // The first purchase also learns the buyer's wallet id and keeps a copy
    // of the product.
    buy("first").await;
    let before = app.running().db_statements.get();
    let card = buy("second").await;
    let cost = app.running().db_statements.get() - before;
    // The viewer's roles, and ONE statement with the product's check, the
    // posting, escrow, card, audit entry and key, outside any transaction
    // (nothing took the general path).
    assert_eq!(cost, 2, "a purchase ran {cost} statements");
    let balance = app.my_balance(&buyer).await;
    let again = buy("second").await;
    assert_eq!(again["id"], card["id"]);
    assert_eq!(app.my_balance(&buyer).await, balance);
}

#[tokio::test(crate = "crate::support::harness")]
async fn an_event_costs_the_same_statements_however_many_winners_it_has() {
    // Serving only, no relay or clock: nothing else runs statements
    // meanwhile (the test starts the event itself).
    let app = AppOptions::new().await.quiet().spawn().await;
    let (host, id) = app.live_giveaway().await;
    let crowd = app.verified_crowd(&id, 8).await;
    let query = format!(
        "{{ event(id: \"{id}\") {{ host {{ id }} prizes {{ cardProduct {{ name }} }} \
         winners {{ displayName participant {{ id }} prize {{ id faceValue }} }} }} }}"
    );
    let cost = || async {
        let before = app.running().db_statements.get();
        let event = app.ok(Some(&host), &query, json!({}), "event").await;
        let after = app.running().db_statements.get();
        (
            after - before,
            event["winners"].as_array().map_or(0, Vec::len),
        )
    };
    for token in &crowd[..2] {
        assert_eq!(app.attempt(token, &id).await, "WON");
    }
    let (two, listed) = cost().await;
    assert_eq!(listed, 2);
    for token in &crowd[2..] {
        let before = app.running().db_statements.get();
        assert_eq!(app.attempt(token, &id).await, "WON");
        let attempt = app.running().db_statements.get() - before;
        // The viewer; the event with the participant; in one transaction
        // the attempt, a unit, its prize's product and face value with the
        // winner's email, the card, the event's sequence, the rest in one
        // batch.
        assert_eq!(attempt, 8, "a winning attempt's statements");
    }
    let (eight, listed) = cost().await;
    assert_eq!(listed, 8);
    assert!(
        two.abs_diff(eight) <= 2,
        "8 winners cost {eight}, 2 cost {two}"
    );
    // The event's version, the viewer, the event, then one batch per kind
    // of nested row (host and roles, prizes, products, winners,
    // participants, prizes by id).
    assert!(two <= 11, "{two}");
    // Nothing changed since: the kept answer, for the viewer and the
    // event's version.
    let (kept, listed) = cost().await;
    assert_eq!((kept, listed), (2, 8), "a kept page's statements");
}
