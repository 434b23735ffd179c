//! The lifecycle on time (FLOWS.md §5): SCHEDULED -> LIVE at `startsAt`,
//! LIVE -> ENDED at `endsAt`, with the DRAW of a DRAW event and the units
//! nobody won released to the host.

use chrono::Utc;
use sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionTrait};
use uuid::Uuid;

use super::award::award;
use super::draw::{Seed, assign};
use super::events::{self, EventStatus, EventView, WinnerSelection};
use super::live;
use super::participants::{self, ParticipantView, WinnerView};
use super::pool::{self, Unit, release_unawarded};
use crate::Services;
use crate::context::RequestMeta;
use crate::error::DomainResult;
use crate::sql::{bug, fetch_all, statement};

/// Moves every event whose time has come: SCHEDULED -> LIVE at `startsAt`,
/// LIVE -> ENDED at `endsAt` (releasing the units nobody won). Each event
/// in its own transaction, guarded by its status, so a run repeated or
/// interrupted changes nothing twice. The events it moved.
pub async fn advance(s: &Services) -> DomainResult<Vec<EventView>> {
    let meta = RequestMeta::system();
    let txn = s.db.begin().await?;
    let mut moved = fetch_all(
        &txn,
        &format!(
            "UPDATE giveaway.events SET status = 'LIVE', version = version + 1 WHERE status = 'SCHEDULED' AND starts_at <= now() \
             RETURNING {}",
            events::COLUMNS
        ),
        vec![],
        events::view,
    )
    .await?;
    for event in &moved {
        txn.execute(&live::changed(&meta, event)?).await?;
    }
    txn.commit().await?;
    if !moved.is_empty() {
        s.outbox.wake();
    }
    let due = s
        .db
        .query_all_raw(statement(
            "SELECT id FROM giveaway.events WHERE status = 'LIVE' AND ends_at <= now() ORDER BY ends_at LIMIT 100",
            vec![],
        ))
        .await?;
    for row in due {
        let id: Uuid = row.try_get("", "id")?;
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
    let ended = events::fetch_one_returning(
        &txn,
        "UPDATE giveaway.events SET status = 'ENDED', version = version + 1, \
         drawn_at = CASE WHEN selection = 'DRAW' THEN now() END WHERE id = $1",
        vec![id.into()],
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
    let seed = Seed::from_hex(&events::seed_hex(txn, event.id).await?)
        .ok_or_else(|| bug("a DRAW event without a seed"))?;
    let verified = participants::verified(txn, event.id).await?;
    let ids: Vec<Uuid> = verified.iter().map(|p| p.id).collect();
    let prizes: Vec<(Uuid, u32)> = events::prizes_of(txn, &[event.id])
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
