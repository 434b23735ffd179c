//! The prize pool of a published event: its units, each backed by a
//! RESERVED escrow, taken by winners, and released to the host when the
//! event ends or is cancelled.

use giftdrop_entities::giveaway::prize_units;
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType};
use sea_orm::{
    ColumnTrait, DatabaseTransaction, DerivePartialModel, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Select,
};
use uuid::Uuid;

use super::events::EventView;
use crate::context::RequestMeta;
use crate::error::DomainResult;
use crate::giftcard::escrow;
use crate::ledger::Posted;

/// A prize unit in the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, DerivePartialModel)]
#[sea_orm(entity = "prize_units::Entity")]
pub struct Unit {
    /// Unit id.
    pub id: Uuid,
    /// Its prize.
    pub prize_id: Uuid,
    /// Its number within the prize, from 1.
    pub unit: i32,
    /// The RESERVED escrow behind it.
    pub escrow_id: Uuid,
}

/// The units of `event_id`'s pool in the DRAW order (prizes by id as
/// text, then unit number).
fn in_pool(event_id: Uuid) -> Select<prize_units::Entity> {
    prize_units::Entity::find()
        .filter(prize_units::Column::EventId.eq(event_id))
        .filter(prize_units::Column::WinnerId.is_null())
        .order_by_asc(
            Expr::col((prize_units::Entity, prize_units::Column::PrizeId)).cast_as("text"),
        )
        .order_by_asc(prize_units::Column::Unit)
}

/// One unit of `event_id`'s pool, locked; units another transaction is
/// awarding are skipped, so concurrent winners never wait for each other.
/// `None` when the pool is empty.
pub(super) async fn take_unit(
    txn: &DatabaseTransaction,
    event_id: Uuid,
) -> DomainResult<Option<Unit>> {
    Ok(in_pool(event_id)
        .limit(1)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .into_partial_model()
        .one(txn)
        .await?)
}

/// Every unit of `event_id`'s pool in the DRAW order, locked.
pub(super) async fn pool(txn: &DatabaseTransaction, event_id: Uuid) -> DomainResult<Vec<Unit>> {
    Ok(in_pool(event_id)
        .lock_exclusive()
        .into_partial_model()
        .all(txn)
        .await?)
}

/// Releases the escrows of `event`'s units without a standing winner and
/// refunds the host (EVENT_REFUND) in one transfer; what it posted, if
/// anything was left.
pub(super) async fn release_unawarded(
    txn: &DatabaseTransaction,
    meta: &RequestMeta,
    event: &EventView,
    reason: &str,
) -> DomainResult<Option<Posted>> {
    let ids: Vec<Uuid> = prize_units::Entity::find()
        .select_only()
        .column(prize_units::Column::EscrowId)
        .filter(prize_units::Column::EventId.eq(event.id))
        .filter(prize_units::Column::WinnerId.is_null())
        .lock_exclusive()
        .into_tuple()
        .all(txn)
        .await?;
    if ids.is_empty() {
        return Ok(None);
    }
    let reference = event.id.to_string();
    Ok(escrow::release_all(txn, meta, &ids, &reference, reason)
        .await?
        .map(|(_, posted)| posted))
}
