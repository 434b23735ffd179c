//! The prize pool of a published event: its units, each backed by a
//! RESERVED escrow, taken by winners, and released to the host when the
//! event ends or is cancelled.

use sea_orm::{ConnectionTrait, DatabaseTransaction, QueryResult};
use uuid::Uuid;

use super::events::EventView;
use crate::context::RequestMeta;
use crate::error::DomainResult;
use crate::giftcard::escrow;
use crate::ledger::Posted;
use crate::sql::{fetch_all, fetch_one, statement};

/// A prize unit in the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

fn unit_view(row: &QueryResult) -> DomainResult<Unit> {
    Ok(Unit {
        id: row.try_get("", "id")?,
        prize_id: row.try_get("", "prize_id")?,
        unit: row.try_get("", "unit")?,
        escrow_id: row.try_get("", "escrow_id")?,
    })
}

const UNIT_COLUMNS: &str = "u.id, u.prize_id, u.unit, u.escrow_id";

/// One unit of `event_id`'s pool, locked; units another transaction is
/// awarding are skipped, so concurrent winners never wait for each other.
/// `None` when the pool is empty.
pub(super) async fn take_unit(
    txn: &DatabaseTransaction,
    event_id: Uuid,
) -> DomainResult<Option<Unit>> {
    fetch_one(
        txn,
        &format!(
            "SELECT {UNIT_COLUMNS} FROM giveaway.prize_units u \
             WHERE u.event_id = $1 AND u.winner_id IS NULL \
             ORDER BY u.prize_id::text, u.unit LIMIT 1 FOR UPDATE SKIP LOCKED"
        ),
        vec![event_id.into()],
        unit_view,
    )
    .await
}

/// Every unit of `event_id`'s pool in the DRAW order (prizes by id as
/// text, then unit number), locked.
pub(super) async fn pool(txn: &DatabaseTransaction, event_id: Uuid) -> DomainResult<Vec<Unit>> {
    fetch_all(
        txn,
        &format!(
            "SELECT {UNIT_COLUMNS} FROM giveaway.prize_units u \
             WHERE u.event_id = $1 AND u.winner_id IS NULL ORDER BY u.prize_id::text, u.unit FOR UPDATE"
        ),
        vec![event_id.into()],
        unit_view,
    )
    .await
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
    let rows = txn
        .query_all_raw(statement(
            "SELECT escrow_id FROM giveaway.prize_units WHERE event_id = $1 AND winner_id IS NULL FOR UPDATE",
            vec![event.id.into()],
        ))
        .await?;
    let ids = rows
        .iter()
        .map(|r| Ok(r.try_get("", "escrow_id")?))
        .collect::<DomainResult<Vec<Uuid>>>()?;
    if ids.is_empty() {
        return Ok(None);
    }
    let reference = event.id.to_string();
    Ok(escrow::release_all(txn, meta, &ids, &reference, reason)
        .await?
        .map(|(_, posted)| posted))
}
