//! `cancelEvent` (FLOWS.md §5): the prize units nobody won go back to the
//! host; cards already won stay valid.

use giftdrop_entities::giveaway as db;
use sea_orm::sea_query::Expr;
use sea_orm::{ConnectionTrait, TransactionTrait};
use uuid::Uuid;

use super::events::{self, EventStatus, EventView};
use super::live;
use super::pool::release_unawarded;
use crate::Services;
use crate::audit::{self, AuditRecord};
use crate::context::{RequestMeta, Viewer};
use crate::error::{DomainError, DomainResult};
use crate::sql::{db_name, text_input};

/// `cancelEvent`: the host while DRAFT, SCHEDULED or LIVE, an admin any
/// time before ENDED. Every unawarded prize unit's escrow is released and
/// the host refunded, in one transaction; cards already won stay valid.
pub async fn cancel(
    s: &Services,
    meta: &RequestMeta,
    viewer: &Viewer,
    id: Uuid,
    reason: &str,
) -> DomainResult<EventView> {
    let reason = text_input(reason, "reason", 1, 500)?;
    let txn = s.db.begin().await?;
    let event = events::lock(&txn, id)
        .await?
        .filter(|e| e.visible_to(Some(viewer)))
        .ok_or(DomainError::NotFound)?;
    if !event.managed_by(Some(viewer)) {
        return Err(DomainError::Forbidden);
    }
    if matches!(event.status, EventStatus::Ended | EventStatus::Cancelled) {
        return Err(DomainError::Conflict(format!(
            "the event is {}",
            db_name(&event.status)
        )));
    }
    let posted = release_unawarded(&txn, meta, &event, "event cancelled").await?;
    let cancelled = events::update_one(
        &txn,
        id,
        events::changed()
            .col_expr(
                db::events::Column::Status,
                db::events::Status::Cancelled.into(),
            )
            .col_expr(db::events::Column::CancelledAt, Expr::current_timestamp())
            .col_expr(db::events::Column::CancelReason, reason.as_str().into()),
    )
    .await?;
    txn.execute(&live::changed(meta, &cancelled)?).await?;
    audit::record(
        &txn,
        meta,
        AuditRecord {
            actor: Some(viewer.user_id),
            action: "event.cancel",
            subject: format!("event:{id}"),
            detail: Some(reason),
        },
    )
    .await?;
    txn.commit().await?;
    s.outbox.wake();
    if let Some(posted) = posted {
        posted.committed(s);
    }
    Ok(cancelled)
}
