//! `disqualifyWinner` (FLOWS.md §5): the host or an admin takes a win
//! back. The card becomes VOID; in DRAW mode the prize goes to the next
//! participant of the committed shuffle, in INSTANT mode the unit goes back
//! to the pool (or, once the event is over, its escrow back to the host).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionTrait};
use uuid::Uuid;

use super::attempt::ReleaseGrant;
use super::award;
use super::events::{self, EventStatus, EventView, WinnerSelection};
use super::live;
use super::participants::{self, ParticipantStatus, WinnerView};
use super::pool::Unit;
use crate::Services;
use crate::audit::{self, AuditRecord};
use crate::context::{RequestMeta, Viewer};
use crate::error::{DomainError, DomainResult};
use crate::giftcard::escrow;
use crate::ledger::Posted;
use crate::outbox;
use crate::sql::{Batch, bug, fetch_one, text_input};

/// `disqualifyWinner`.
pub async fn disqualify(
    s: &Services,
    meta: &RequestMeta,
    viewer: &Viewer,
    winner_id: Uuid,
    reason: &str,
) -> DomainResult<WinnerView> {
    let reason = text_input(reason, "reason", 1, 500)?;
    let found = participants::find_winner(&s.db, winner_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let txn = s.db.begin().await?;
    let event = events::lock(&txn, found.event_id)
        .await?
        .filter(|e| e.visible_to(Some(viewer)))
        .ok_or(DomainError::NotFound)?;
    if !event.managed_by(Some(viewer)) {
        return Err(DomainError::Forbidden);
    }
    let unit = fetch_one(
        &txn,
        "SELECT w.unit_id, w.disqualified_at, u.prize_id, u.unit, u.escrow_id, c.status AS card_status \
         FROM giveaway.winners w JOIN giveaway.prize_units u ON u.id = w.unit_id \
         JOIN giftcard.cards c ON c.id = w.card_id WHERE w.id = $1 FOR UPDATE OF w, u, c",
        vec![winner_id.into()],
        |row| {
            Ok((
                Unit {
                    id: row.try_get("", "unit_id")?,
                    prize_id: row.try_get("", "prize_id")?,
                    unit: row.try_get("", "unit")?,
                    escrow_id: row.try_get("", "escrow_id")?,
                },
                row.try_get::<Option<DateTime<Utc>>>("", "disqualified_at")?,
                row.try_get::<String>("", "card_status")?,
            ))
        },
    )
    .await?
    .ok_or_else(|| bug("a winner without its unit or card"))?;
    let (unit, disqualified_at, card_status) = unit;
    if disqualified_at.is_some() {
        return Err(DomainError::Conflict(
            "this winner is already disqualified".into(),
        ));
    }
    if card_status != "ACTIVE" {
        return Err(DomainError::Conflict(format!(
            "the prize card is {card_status}: it can no longer be taken back"
        )));
    }
    let mut undo = Batch::new();
    let [card, winner, reason_param, participant, prize, unit_id] = undo.binds([
        found.card_id.into(),
        winner_id.into(),
        reason.as_str().into(),
        found.participant_id.into(),
        unit.prize_id.into(),
        unit.id.into(),
    ]);
    undo.sql(format!(
        "UPDATE giftcard.cards SET status = 'VOID' WHERE id = {card} AND status = 'ACTIVE'"
    ));
    undo.sql(format!(
        "UPDATE giveaway.winners SET disqualified_at = now(), disqualify_reason = {reason_param} \
         WHERE id = {winner}"
    ));
    undo.sql(format!(
        "UPDATE giveaway.participants SET status = 'DISQUALIFIED', won = false WHERE id = {participant}"
    ));
    undo.sql(format!(
        "UPDATE giveaway.prizes SET awarded = awarded - 1 WHERE id = {prize}"
    ));
    undo.sql(format!(
        "UPDATE giveaway.prize_units SET winner_id = NULL WHERE id = {unit_id}"
    ));
    undo.push(audit::statement(
        meta,
        AuditRecord {
            actor: Some(viewer.user_id),
            action: "winner.disqualify",
            subject: format!("winner:{winner_id}"),
            detail: Some(reason.clone()),
        },
    ));
    undo.execute(&txn).await?;
    let after = events::fetch_one_returning(
        &txn,
        "UPDATE giveaway.events SET prizes_awarded = prizes_awarded - 1, version = version + 1 WHERE id = $1",
        vec![event.id.into()],
    )
    .await?;
    txn.execute(&live::changed(meta, &after)?).await?;
    // The prize goes back to the INSTANT pool (and its award to the
    // budget, through a job), to the draw's next in line, or to the host.
    let refunded = match (event.selection, event.status) {
        (WinnerSelection::Instant, EventStatus::Live) => {
            let release = ReleaseGrant {
                event_id: event.id,
                participant_id: found.participant_id,
            };
            txn.execute(&outbox::job_statement(meta, &release)?).await?;
            None
        }
        (WinnerSelection::Draw, EventStatus::Ended) => {
            if redraw(s, &txn, meta, &event, unit).await? {
                None
            } else {
                refund(&txn, meta, &event, unit).await?
            }
        }
        _ => refund(&txn, meta, &event, unit).await?,
    };
    txn.commit().await?;
    s.outbox.wake();
    if let Some(posted) = refunded {
        posted.committed(s);
    }
    participants::find_winner(&s.db, winner_id)
        .await?
        .ok_or_else(|| bug("a disqualified winner vanished"))
}

/// Releases `unit`'s escrow to the host.
async fn refund(
    txn: &DatabaseTransaction,
    meta: &RequestMeta,
    event: &EventView,
    unit: Unit,
) -> DomainResult<Option<Posted>> {
    let reference = format!("{}:{}", event.id, unit.id);
    Ok(escrow::release_all(
        txn,
        meta,
        &[unit.escrow_id],
        &reference,
        "winner disqualified",
    )
    .await?
    .map(|(_, posted)| posted))
}

/// Awards `unit` to the first participant of the committed shuffle (over
/// everyone the draw shuffled: those VERIFIED then) who never held a
/// prize of the event and is still VERIFIED; false if there is none.
async fn redraw(
    s: &Services,
    txn: &DatabaseTransaction,
    meta: &RequestMeta,
    event: &EventView,
    unit: Unit,
) -> DomainResult<bool> {
    let seed = super::draw::Seed::from_hex(&events::seed_hex(txn, event.id).await?)
        .ok_or_else(|| bug("a drawn event without a seed"))?;
    let drawn = participants::drawn(txn, event.id).await?;
    let ids: Vec<Uuid> = drawn.iter().map(|p| p.id).collect();
    let ever_won = participants::ever_won(txn, event.id).await?;
    let next = super::draw::shuffle(&seed, &ids).into_iter().find(|id| {
        !ever_won.contains(id)
            && drawn
                .iter()
                .any(|p| p.id == *id && p.status == ParticipantStatus::Verified)
    });
    let Some(next) = next else {
        return Ok(false);
    };
    let participant = drawn
        .iter()
        .find(|p| p.id == next)
        .ok_or_else(|| bug("a shuffled participant vanished"))?;
    award::award(s, txn, meta, participant, unit).await?;
    Ok(true)
}
