//! Settlement prices an escrow at the rates in force when it was reserved
//! (FLOWS.md §3): the merchant's service rate and the deposit fee rate are
//! both kept on the escrow, so a later change of either never re-prices
//! money already promised.

use crate::support::market::assert_ledger_sound;
use crate::support::{AppOptions, spawn_app};

#[tokio::test(crate = "crate::support::harness")]
async fn a_change_of_the_deposit_fee_rate_never_reprices_an_open_escrow() {
    let app = spawn_app().await;
    assert_eq!(app.running().services.settings.deposit_fee_bps, 150);
    let shop = app.open_shop("shop@example.com", "Kept", &[100_000]).await;
    let (buyer, _) = app.register("buyer@example.com", "Ada B").await;
    app.fund(&buyer, 200_000).await;
    let before = app.buy(&buyer, &shop.product_id, 100_000, "before").await;

    // The operator raises DEPOSIT_FEE_BPS; an instance with the new rate
    // redeems the card bought under the old one.
    let repriced = AppOptions::beside(&app)
        .config(|c| c.deposit_fee_bps = 300)
        .spawn()
        .await;
    repriced
        .redeem_card(&shop, &before["data"]["purchaseCard"], "old")
        .await;
    // 150 bps: deposit fee 1,500; service fee 5% of 98,500 = 4,925.
    assert_eq!(
        repriced
            .merchant_balance(&shop.staff_token, &shop.merchant_id)
            .await,
        93_575
    );

    // A card bought at the new rate settles at it, whoever redeems it:
    // deposit fee 3,000; service fee 5% of 97,000 = 4,850.
    let after = repriced
        .buy(&buyer, &shop.product_id, 100_000, "after")
        .await;
    app.redeem_card(&shop, &after["data"]["purchaseCard"], "new")
        .await;
    assert_eq!(
        app.merchant_balance(&shop.staff_token, &shop.merchant_id)
            .await,
        93_575 + 92_150
    );
    assert_ledger_sound(&app).await;
}
