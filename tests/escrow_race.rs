//! The escrow state machine under contention (FLOWS.md §3): every escrow
//! is hit by a settle (a redemption at the till) and a release (an admin)
//! at the same moment; exactly one wins, the other is `CONFLICT`, and the
//! ledger invariants hold afterwards.

use futures_util::StreamExt;
use futures_util::stream;
use giftdrop_domain::giftcard::{self, cards, purchase, redeem};
use giftdrop_domain::{DomainError, RequestMeta, identity};
use uuid::Uuid;

use crate::support::market::assert_ledger_sound;
use crate::support::{AppOptions, scalar};

const ESCROWS: usize = 1_000;
const FACE_VALUE: i64 = 1_000;

#[tokio::test(crate = "crate::support::harness")]
async fn a_thousand_escrows_hit_by_a_concurrent_settle_and_release_each_end_exactly_once() {
    let app = AppOptions::new()
        .await
        .config(|c| c.rate_limits = "purchase=100000/3600".into())
        .spawn()
        .await;
    let shop = app
        .open_shop("shop@example.com", "Race", &[FACE_VALUE])
        .await;
    let (buyer, buyer_id) = app.register("buyer@example.com", "Gbenga O").await;
    app.fund(&buyer, FACE_VALUE * i64::try_from(ESCROWS).expect("fits"))
        .await;
    let services = &app.running().services;
    let id = |text: &str| Uuid::parse_str(text).expect("uuid");
    let buyer = identity::load_viewer(&services.db, id(&buyer_id))
        .await
        .expect("buyer");
    let staff = identity::load_viewer(&services.db, id(&shop.staff_id))
        .await
        .expect("staff");
    let admin_id: Uuid = {
        let me = app
            .ok(
                Some(&app.admin_token().await),
                "{ me { id } }",
                serde_json::json!({}),
                "me",
            )
            .await;
        id(me["id"].as_str().expect("admin id"))
    };
    let admin = identity::load_viewer(&services.db, admin_id)
        .await
        .expect("admin");
    let meta = RequestMeta::system();
    let product = id(&shop.product_id);
    let branch = id(&shop.branch_id);
    let face_value = giftdrop_domain::money::Amount::positive(FACE_VALUE).expect("amount");

    let bought: Vec<cards::CardView> = stream::iter(0..ESCROWS)
        .map(|i| {
            let (meta, buyer) = (&meta, &buyer);
            async move {
                purchase::purchase(
                    services,
                    meta,
                    buyer,
                    product,
                    face_value,
                    &format!("buy-{i}"),
                )
                .await
                .expect("purchase")
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert_eq!(bought.len(), ESCROWS);
    assert_eq!(
        app.my_balance(&app.login("buyer@example.com").await).await,
        0
    );

    let outcomes: Vec<(bool, bool)> = stream::iter(bought.iter().enumerate())
        .map(|(i, card)| {
            let (meta, staff, admin) = (&meta, &staff, &admin);
            async move {
                let pin = card.pin(&services.card_secrets).expect("pin unseals");
                let key = format!("till-{i}");
                let settle = redeem::redeem(
                    services,
                    meta,
                    staff,
                    redeem::Redeem {
                        code: card.display_code(),
                        pin,
                        branch_id: branch,
                    },
                    &key,
                );
                let release =
                    giftcard::release_as_admin(services, meta, admin, card.escrow_id, "race");
                let (settled, released) = tokio::join!(settle, release);
                for refused in [settled.as_ref().err(), released.as_ref().err()]
                    .into_iter()
                    .flatten()
                {
                    assert!(
                        matches!(refused, DomainError::Conflict(_)),
                        "the loser gets CONFLICT, not {refused:?}"
                    );
                }
                (settled.is_ok(), released.is_ok())
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;

    let settled = outcomes.iter().filter(|(s, r)| *s && !*r).count();
    let released = outcomes.iter().filter(|(s, r)| !*s && *r).count();
    assert_eq!(
        settled + released,
        ESCROWS,
        "exactly one transition wins per escrow"
    );
    let count = |sql: &'static str| scalar(&app.db, sql);
    let as_i64 = |n: usize| i64::try_from(n).expect("fits");
    assert_eq!(
        count("SELECT count(*) FROM giftcard.escrows WHERE status = 'SETTLED'").await,
        as_i64(settled)
    );
    assert_eq!(
        count("SELECT count(*) FROM giftcard.escrows WHERE status = 'RELEASED'").await,
        as_i64(released)
    );
    assert_eq!(
        count("SELECT count(*) FROM giftcard.cards WHERE status = 'REDEEMED'").await,
        as_i64(settled)
    );
    assert_eq!(
        count("SELECT count(*) FROM giftcard.cards WHERE status = 'VOID'").await,
        as_i64(released)
    );
    assert_eq!(
        count("SELECT count(*) FROM giftcard.redemptions").await,
        as_i64(settled)
    );
    assert_eq!(
        count("SELECT count(DISTINCT reference) FROM ledger.transfers WHERE kind IN ('SETTLEMENT', 'CARD_REFUND')").await,
        as_i64(ESCROWS),
        "one final transfer per escrow"
    );
    assert_eq!(
        count("SELECT count(*) FROM ledger.transfers WHERE kind IN ('SETTLEMENT', 'CARD_REFUND')")
            .await,
        as_i64(ESCROWS),
        "and never a second"
    );
    assert_eq!(
        app.my_balance(&app.login("buyer@example.com").await).await,
        FACE_VALUE * as_i64(released),
        "every release refunded the buyer once"
    );
    assert_ledger_sound(&app).await;
}
