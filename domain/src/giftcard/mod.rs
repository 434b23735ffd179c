//! The gift-card marketplace (FLOWS.md §3, §4): merchants and branches,
//! card products, cards, the escrows behind them, redemption at the till,
//! and releasing escrows (by an admin, or when cards expire).

pub mod cards;
pub mod escrow;
pub mod merchants;
pub mod pin;
pub mod products;
pub mod purchase;
pub mod redeem;

use giftdrop_entities::giftcard as rows;
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType};
use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select,
    TransactionTrait,
};
use uuid::Uuid;

use crate::Services;
use crate::audit::{self, AuditRecord};
use crate::context::{RequestMeta, Viewer};
use crate::error::{DomainError, DomainResult};
use crate::identity::Role;
use crate::sql::text_input;
use cards::CardStatus;
use escrow::{EscrowView, Transition};

/// Releases escrow `id` to its funder and moves its ACTIVE card (if one was
/// issued) to `card_status`, inside the caller's transaction.
///
/// Lock order, shared by every path that touches both: the card row
/// first, then the escrow row (a redemption locks the card it looked up by
/// code, then settles its escrow). The opposite order deadlocks against a
/// concurrent redemption.
async fn release_with_card(
    txn: &DatabaseTransaction,
    meta: &RequestMeta,
    id: Uuid,
    reason: &str,
    card_status: CardStatus,
) -> DomainResult<Transition> {
    rows::cards::Entity::find()
        .select_only()
        .column(rows::cards::Column::Id)
        .filter(rows::cards::Column::EscrowId.eq(id))
        .lock_exclusive()
        .into_tuple::<Uuid>()
        .all(txn)
        .await?;
    let released = escrow::release(txn, meta, id, reason).await?;
    rows::cards::Entity::update_many()
        .col_expr(
            rows::cards::Column::Status,
            rows::cards::Status::from(card_status).into(),
        )
        .filter(rows::cards::Column::EscrowId.eq(id))
        .filter(rows::cards::Column::Status.eq(rows::cards::Status::Active))
        .exec(txn)
        .await?;
    Ok(released)
}

/// `releaseEscrow` (admin): the full amount back to the funder, the card
/// (if any) VOID, audited. A final escrow is `Conflict`.
pub async fn release_as_admin(
    s: &Services,
    meta: &RequestMeta,
    admin: &Viewer,
    id: Uuid,
    reason: &str,
) -> DomainResult<EscrowView> {
    admin.require(Role::Admin)?;
    let reason = text_input(reason, "reason", 1, 500)?;
    let txn = s.db.begin().await?;
    let released = release_with_card(&txn, meta, id, &reason, CardStatus::Void).await?;
    audit::record(
        &txn,
        meta,
        AuditRecord {
            actor: Some(admin.user_id),
            action: "escrow.release",
            subject: format!("escrow:{id}"),
            detail: Some(reason),
        },
    )
    .await?;
    txn.commit().await?;
    released.posted.committed(s);
    Ok(released.escrow)
}

/// Expires ACTIVE cards past `expiresAt`, at most `batch` of them, and
/// releases their escrows to the funders; returns how many. One card per
/// transaction, locked with `SKIP LOCKED`: concurrent sweeps in several
/// workers, or a sweep re-run after a crash, never release twice.
pub async fn expire_due(s: &Services, batch: u32) -> DomainResult<u64> {
    let due: Vec<Uuid> = due_to_expire()
        .select_only()
        .column(rows::cards::Column::Id)
        .order_by_asc(rows::cards::Column::ExpiresAt)
        .limit(u64::from(batch))
        .into_tuple()
        .all(&s.db)
        .await?;
    let mut expired = 0;
    for card_id in due {
        let meta = RequestMeta::system();
        let txn = s.db.begin().await?;
        let locked: Option<Uuid> = due_to_expire()
            .select_only()
            .column(rows::cards::Column::EscrowId)
            .filter(rows::cards::Column::Id.eq(card_id))
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .into_tuple()
            .one(&txn)
            .await?;
        let Some(escrow_id) = locked else { continue };
        let released = match release_with_card(
            &txn,
            &meta,
            escrow_id,
            "card expired",
            CardStatus::Expired,
        )
        .await
        {
            Ok(released) => released,
            Err(DomainError::Conflict(_)) => {
                // The escrow is already final (released by an admin
                // between the two reads): only the card is left.
                tracing::warn!(card = %card_id, escrow = %escrow_id, "expiring a card whose escrow is already final");
                rows::cards::Entity::update_many()
                    .col_expr(
                        rows::cards::Column::Status,
                        rows::cards::Status::Expired.into(),
                    )
                    .filter(rows::cards::Column::Id.eq(card_id))
                    .filter(rows::cards::Column::Status.eq(rows::cards::Status::Active))
                    .exec(&txn)
                    .await?;
                txn.commit().await?;
                continue;
            }
            Err(err) => return Err(err),
        };
        audit::record(
            &txn,
            &meta,
            AuditRecord {
                actor: None,
                action: "card.expire",
                subject: format!("card:{card_id}"),
                detail: Some(format!("escrow {escrow_id} released to the funder")),
            },
        )
        .await?;
        txn.commit().await?;
        released.posted.committed(s);
        expired += 1;
    }
    if expired > 0 {
        metrics::counter!("giftdrop_cards_expired_total").increment(expired);
    }
    Ok(expired)
}

/// The ACTIVE cards past `expiresAt`.
fn due_to_expire() -> Select<rows::cards::Entity> {
    rows::cards::Entity::find()
        .filter(rows::cards::Column::Status.eq(rows::cards::Status::Active))
        .filter(
            rows::cards::Column::ExpiresAt
                .into_expr()
                .lte(Expr::current_timestamp()),
        )
}
