//! What a request costs in SQL: nested rows of a list are loaded in
//! batches, so a longer list does not run more statements.

use serde_json::json;

use crate::support::{AppOptions, TestApp};

const MY_CARDS: &str =
    "{ myCards { id product { name merchant { name } } escrow { status merchant { name } } } }";

/// The statements one `myCards` request runs, and the cards it returned.
async fn my_cards_cost(app: &TestApp, token: &str) -> (u64, usize) {
    let before = app.running().db_statements.get();
    let cards = app.ok(Some(token), MY_CARDS, json!({}), "myCards").await;
    let cost = app.running().db_statements.get() - before;
    (cost, cards.as_array().map_or(0, Vec::len))
}

#[tokio::test]
async fn a_list_of_cards_costs_the_same_statements_however_long_it_is() {
    // Serving only, no relay: nothing else runs statements meanwhile.
    let app = AppOptions::new()
        .await
        .config(|c| c.outbox_relay = false)
        .mode(true, false)
        .spawn()
        .await;
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
    let (two, listed) = my_cards_cost(&app, &buyer).await;
    assert_eq!(listed, 2);
    for i in 0..6 {
        assert!(
            app.buy(&buyer, &shop.product_id, 1_000, &format!("b{i}"))
                .await["errors"]
                .is_null()
        );
    }
    let (eight, listed) = my_cards_cost(&app, &buyer).await;
    assert_eq!(listed, 8);
    assert_eq!(two, eight, "8 cards cost what 2 cost");
    assert!(
        two <= 6,
        "roles, cards, then one batch per kind of nested row: {two}"
    );
}
