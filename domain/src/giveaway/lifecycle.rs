//! The lifecycle on time (FLOWS.md §5): SCHEDULED -> LIVE at `startsAt`,
//! LIVE -> ENDED at `endsAt`, with the DRAW of a DRAW event and the units
//! nobody won released to the host.

use chrono::Utc;
use giftdrop_entities::giveaway as db;
use sea_orm::sea_query::{CaseStatement, Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};
use uuid::Uuid;

use super::award::award;
use super::draw::assign;
use super::events::{self, EventStatus, EventView, WinnerSelection};
use super::live;
use super::participants::{self, ParticipantView};
use super::pool::{self, Unit, release_unawarded};
use super::prizes;
use super::winners::WinnerView;
use crate::Services;
use crate::context::RequestMeta;
use crate::error::DomainResult;
use crate::sql::bug;

/// Moves every event whose time has come: SCHEDULED -> LIVE at `startsAt`,
/// LIVE -> ENDED at `endsAt` (releasing the units nobody won). Each event
/// in its own transaction, guarded by its status, so a run repeated or
/// interrupted changes nothing twice. The events it moved.
pub async fn advance(s: &Services) -> DomainResult<Vec<EventView>> {
    let meta = RequestMeta::system();
    let txn = s.db.begin().await?;
    let mut moved = events::update_all_returning(
        &txn,
        events::changed()
            .col_expr(db::events::Column::Status, db::events::Status::Live.into())
            .filter(db::events::Column::Status.eq(db::events::Status::Scheduled))
            .filter(
                Expr::col((db::events::Entity, db::events::Column::StartsAt))
                    .lte(Expr::current_timestamp()),
            ),
    )
    .await?;
    for event in &moved {
        txn.execute(&live::changed(&meta, event)?).await?;
    }
    txn.commit().await?;
    if !moved.is_empty() {
        s.outbox.wake();
    }
    let due: Vec<Uuid> = db::events::Entity::find()
        .select_only()
        .column(db::events::Column::Id)
        .filter(db::events::Column::Status.eq(db::events::Status::Live))
        .filter(
            Expr::col((db::events::Entity, db::events::Column::EndsAt))
                .lte(Expr::current_timestamp()),
        )
        .order_by_asc(db::events::Column::EndsAt)
        .limit(100)
        .into_tuple()
        .all(&s.db)
        .await?;
    for id in due {
        if let Some(event) = end(s, &meta, id).await? {
            moved.push(event);
        }
    }
    Ok(moved)
}

/// LIVE -> ENDED for `id`, if it is still LIVE and due.
async fn end(s: &Services, meta: &RequestMeta, id: Uuid) -> DomainResult<Option<EventView>> {
    let txn = s.db.begin().await?;
    let Some(event) = events::lock(&txn, id).await? else {
        return Ok(None);
    };
    if event.status != EventStatus::Live || event.ends_at > Utc::now() {
        return Ok(None);
    }
    let drawn = if event.selection == WinnerSelection::Draw {
        draw_winners(s, &txn, meta, &event).await?
    } else {
        Vec::new()
    };
    let posted = release_unawarded(&txn, meta, &event, "event ended").await?;
    let drawn_at = CaseStatement::new().case(
        db::events::Column::Selection.eq(db::events::Selection::Draw),
        Expr::current_timestamp(),
    );
    let ended = events::update_one(
        &txn,
        id,
        events::changed()
            .col_expr(db::events::Column::Status, db::events::Status::Ended.into())
            .col_expr(db::events::Column::DrawnAt, drawn_at.into()),
    )
    .await?;
    txn.execute(&live::changed(meta, &ended)?).await?;
    txn.commit().await?;
    s.outbox.wake();
    live::announce_here(&s.hub, id, &drawn);
    if let Some(posted) = posted {
        posted.committed(s);
    }
    Ok(Some(ended))
}

/// The DRAW of FLOWS.md §5 for `event`, in `txn`: its committed seed
/// shuffles the VERIFIED participants, and the k-th unit (prizes by id as
/// text, then unit number) goes to the k-th of them. Setting `drawn_at`
/// afterwards reveals the seed. The winners, by sequence.
async fn draw_winners(
    s: &Services,
    txn: &DatabaseTransaction,
    meta: &RequestMeta,
    event: &EventView,
) -> DomainResult<Vec<WinnerView>> {
    let seed = events::seed(txn, event.id).await?;
    let verified = participants::verified(txn, event.id).await?;
    let ids: Vec<Uuid> = verified.iter().map(|p| p.id).collect();
    let prizes: Vec<(Uuid, u32)> = prizes::prizes_of(txn, &[event.id])
        .await?
        .iter()
        .map(|p| (p.id, u32::try_from(p.quantity).unwrap_or(0)))
        .collect();
    // By key, not by search: a draw may hand out thousands of units.
    let pool: std::collections::HashMap<(Uuid, i32), Unit> = pool::pool(txn, event.id)
        .await?
        .into_iter()
        .map(|u| ((u.prize_id, u.unit), u))
        .collect();
    let by_id: std::collections::HashMap<Uuid, &ParticipantView> =
        verified.iter().map(|p| (p.id, p)).collect();
    let assignments = assign(&seed, &ids, &prizes);
    let mut winners = Vec::with_capacity(assignments.len());
    for assignment in assignments {
        let number =
            i32::try_from(assignment.unit).map_err(|_| bug("a unit number out of range"))?;
        let unit = *pool
            .get(&(assignment.prize_id, number))
            .ok_or_else(|| bug("a drawn unit is not in the pool"))?;
        let participant = *by_id
            .get(&assignment.participant_id)
            .ok_or_else(|| bug("a drawn participant vanished"))?;
        winners.push(award(s, txn, meta, participant, unit).await?.0);
    }
    Ok(winners)
}
