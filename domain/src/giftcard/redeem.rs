//! `redeemCard` at the till (FLOWS.md §4): staff of the card's merchant, at
//! one of its branches, with the code and pin. Settles the escrow, marks the
//! card REDEEMED and records the redemption, in one transaction, once per
//! idempotency key.
//!
//! A wrong pin is `BAD_USER_INPUT` and counts, in its own committed
//! transaction (the redemption itself changes nothing): after
//! [`MAX_WRONG_PINS`] wrong pins within [`WINDOW`] the card is locked for
//! [`LOCKOUT`], during which every attempt is `FORBIDDEN`.

use chrono::{DateTime, Utc};
use giftdrop_entities::giftcard as rows;
use sea_orm::sea_query::{Asterisk, Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DerivePartialModel,
    EntityTrait, QueryFilter, QuerySelect, QueryTrait, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::cards::{self, CardStatus, CardView};
use super::escrow;
use super::merchants::{self, MerchantStatus};
use super::pin;
use crate::Services;
use crate::audit::{self, AuditRecord};
use crate::context::{RequestMeta, Viewer};
use crate::error::{DomainError, DomainResult};
use crate::idempotency::{self, Scope, Work};
use crate::identity::staff::Reach;
use crate::sql::{Batch, bug};

/// Wrong pins within [`WINDOW`] that lock a card.
pub const MAX_WRONG_PINS: i64 = 5;
/// The window wrong pins are counted in, seconds.
pub const WINDOW: f64 = 900.0;
/// How long a card stays locked, seconds.
pub const LOCKOUT: f64 = 900.0;
const OPERATION: &str = "redeemCard";

/// A redemption.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, DerivePartialModel)]
#[sea_orm(entity = "rows::redemptions::Entity")]
pub struct RedemptionView {
    /// Redemption id.
    pub id: Uuid,
    /// The card.
    pub card_id: Uuid,
    /// Its escrow, now SETTLED.
    pub escrow_id: Uuid,
    /// Where.
    pub branch_id: Uuid,
    /// When.
    pub redeemed_at: DateTime<Utc>,
}

/// What the till sends.
#[derive(Clone, Debug)]
pub struct Redeem {
    /// The card code, as typed.
    pub code: String,
    /// The pin, as typed.
    pub pin: String,
    /// The branch redeeming.
    pub branch_id: Uuid,
}

/// Checks the shape of the till's input before anything is looked up.
fn validate(input: &Redeem) -> DomainResult<String> {
    let code = pin::normalize_code(&input.code)
        .ok_or_else(|| DomainError::bad_input("input.code", "is not a card code"))?;
    if !pin::is_pin(&input.pin) {
        return Err(DomainError::bad_input("input.pin", "must be 6 digits"));
    }
    Ok(code)
}

/// Counts a wrong pin and locks the card at the limit; committed on its own.
async fn count_wrong_pin(
    txn: DatabaseTransaction,
    card: &CardView,
    branch_id: Uuid,
    staff_id: Uuid,
) -> DomainResult<DomainError> {
    rows::pin_failures::Entity::insert(rows::pin_failures::ActiveModel {
        card_id: Set(card.id),
        branch_id: Set(branch_id),
        staff_id: Set(staff_id),
        ..Default::default()
    })
    .exec_without_returning(&txn)
    .await?;
    // Attempts are refused while locked, so the failures in the window all
    // came after any earlier lock ended.
    let failures = rows::pin_failures::Entity::find()
        .select_only()
        .expr(Expr::col(Asterisk).count())
        .filter(rows::pin_failures::Column::CardId.eq(card.id))
        .filter(
            rows::pin_failures::Column::FailedAt
                .into_expr()
                .gt(Expr::cust_with_values(
                    "now() - make_interval(secs => $1)",
                    [WINDOW],
                )),
        )
        .into_query();
    let locked = rows::cards::Entity::update_many()
        .col_expr(
            rows::cards::Column::LockedUntil,
            Expr::cust_with_values("now() + make_interval(secs => $1)", [LOCKOUT]),
        )
        .filter(rows::cards::Column::Id.eq(card.id))
        .filter(Expr::expr(failures).gte(MAX_WRONG_PINS))
        .exec(&txn)
        .await?
        .rows_affected
        == 1;
    txn.commit().await?;
    metrics::counter!("giftdrop_card_wrong_pins_total").increment(1);
    if locked {
        tracing::warn!(card = %card.id, branch = %branch_id, "card locked after repeated wrong pins");
    }
    Ok(DomainError::bad_input("input.pin", "wrong pin"))
}

/// `redeemCard`.
pub async fn redeem(
    s: &Services,
    meta: &RequestMeta,
    viewer: &Viewer,
    input: Redeem,
    key: &str,
) -> DomainResult<RedemptionView> {
    let code = validate(&input)?;
    let scope = Scope {
        caller: viewer.user_id,
        operation: OPERATION,
        key,
    };
    let input = &input;
    // The key's input is what the till meant: the code in its stored form.
    let code = &code;
    let hashed = (code, &input.pin, input.branch_id);
    let id = idempotency::run_posting(
        s,
        idempotency::Hold::Transaction,
        scope,
        &hashed,
        || async move {
            let branch = merchants::find_branch(&s.db, input.branch_id)
                .await?
                .ok_or(DomainError::NotFound)?;
            let reach = Reach::of(&s.db, Some(viewer)).await?;
            let merchant = merchants::find_visible(&s.db, &reach, branch.merchant_id)
                .await?
                .ok_or(DomainError::NotFound)?;
            if !reach.staff_of(merchant.id) || merchant.status != MerchantStatus::Active {
                return Err(DomainError::Forbidden);
            }
            let txn = s.db.begin().await?;
            let card = cards::lock_by_code(&txn, code)
                .await?
                .filter(|c| c.merchant_id == merchant.id)
                .ok_or(DomainError::NotFound)?;
            if card.locked_until.is_some_and(|until| until > Utc::now()) {
                return Err(DomainError::Forbidden);
            }
            if !card.pin_matches(&s.card_secrets, &input.pin) {
                return Err(count_wrong_pin(txn, &card, branch.id, viewer.user_id).await?);
            }
            match card.status {
                CardStatus::Active if card.expires_at > Utc::now() => {}
                CardStatus::Active | CardStatus::Expired => {
                    return Err(DomainError::Conflict("this card has expired".into()));
                }
                CardStatus::Redeemed => {
                    return Err(DomainError::Conflict(
                        "this card was already redeemed".into(),
                    ));
                }
                CardStatus::Void => return Err(DomainError::Conflict("this card is void".into())),
            }
            // The card's rows first (one statement) and the settlement last:
            // the settlement locks the merchant's wallet, which every till of
            // the merchant needs, so it is held only until the commit right
            // after.
            let id = Uuid::now_v7();
            let mut batch = Batch::new();
            batch.push(
                rows::cards::Entity::update_many()
                    .col_expr(
                        rows::cards::Column::Status,
                        rows::cards::Status::Redeemed.into(),
                    )
                    .col_expr(rows::cards::Column::RedeemedAt, Expr::current_timestamp())
                    .filter(rows::cards::Column::Id.eq(card.id))
                    .filter(rows::cards::Column::Status.eq(rows::cards::Status::Active))
                    .into_query(),
            );
            batch.push(audit::statement(
                meta,
                AuditRecord {
                    actor: Some(viewer.user_id),
                    action: "card.redeem",
                    subject: format!("card:{}", card.id),
                    detail: Some(format!(
                        "escrow {} settled at branch {}",
                        card.escrow_id, branch.id
                    )),
                },
            ));
            batch.push(
                rows::redemptions::Entity::insert(rows::redemptions::ActiveModel {
                    id: Set(id),
                    card_id: Set(card.id),
                    escrow_id: Set(card.escrow_id),
                    branch_id: Set(branch.id),
                    staff_id: Set(viewer.user_id),
                    ..Default::default()
                })
                .into_query(),
            );
            batch.execute(&txn).await?;
            let settled =
                escrow::settle(&txn, meta, card.escrow_id, s.settings.deposit_fee_bps).await?;
            Ok(Work::new(txn, id, Some(settled.posted)))
        },
    )
    .await?;
    find(&s.db, id)
        .await?
        .ok_or_else(|| bug("a redemption vanished"))
}

/// The redemption `id`.
pub async fn find<C: ConnectionTrait>(conn: &C, id: Uuid) -> DomainResult<Option<RedemptionView>> {
    Ok(rows::redemptions::Entity::find_by_id(id)
        .into_partial_model::<RedemptionView>()
        .one(conn)
        .await?)
}
