//! `disqualifyWinner` (FLOWS.md §5): the host or an admin takes a win
//! back. The card becomes VOID; in DRAW mode the prize goes to the next
//! participant of the committed shuffle, in INSTANT mode the unit goes back
//! to the pool (or, once the event is over, its escrow back to the host).

use chrono::{DateTime, Utc};
use giftdrop_entities::giftcard::cards;
use giftdrop_entities::giveaway as db;
use sea_orm::sea_query::{Expr, ExprTrait, IntoIden, LockType};
use sea_orm::{
    ActiveEnum, ColumnTrait, ConnectionTrait, DatabaseTransaction, DerivePartialModel, EntityTrait,
    QueryFilter, QueryTrait, TransactionTrait,
};
use uuid::Uuid;

use super::attempt::ReleaseGrant;
use super::award;
use super::events::{self, EventStatus, EventView, WinnerSelection};
use super::live;
use super::participants::{self, ParticipantStatus};
use super::pool::Unit;
use super::winners::{self, WinnerView};
use crate::Services;
use crate::audit::{self, AuditRecord};
use crate::context::{RequestMeta, Viewer};
use crate::error::{DomainError, DomainResult};
use crate::giftcard::escrow;
use crate::ledger::Posted;
use crate::outbox;
use crate::sql::{Batch, bug, text_input};

/// `disqualifyWinner`.
pub async fn disqualify(
    s: &Services,
    meta: &RequestMeta,
    viewer: &Viewer,
    winner_id: Uuid,
    reason: &str,
) -> DomainResult<WinnerView> {
    let reason = text_input(reason, "reason", 1, 500)?;
    let found = winners::find_winner(&s.db, winner_id)
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
    let held = held(&txn, winner_id).await?;
    if held.disqualified_at.is_some() {
        return Err(DomainError::Conflict(
            "this winner is already disqualified".into(),
        ));
    }
    if held.card_status != cards::Status::Active {
        return Err(DomainError::Conflict(format!(
            "the prize card is {}: it can no longer be taken back",
            held.card_status.to_value()
        )));
    }
    let unit = Unit {
        id: held.unit_id,
        prize_id: held.prize_id,
        unit: held.unit,
        escrow_id: held.escrow_id,
    };
    let mut undo = Batch::new();
    undo.push(
        cards::Entity::update_many()
            .col_expr(cards::Column::Status, cards::Status::Void.into())
            .filter(cards::Column::Id.eq(found.card_id))
            .filter(cards::Column::Status.eq(cards::Status::Active))
            .into_query(),
    );
    undo.push(
        db::winners::Entity::update_many()
            .col_expr(
                db::winners::Column::DisqualifiedAt,
                Expr::current_timestamp(),
            )
            .col_expr(
                db::winners::Column::DisqualifyReason,
                reason.as_str().into(),
            )
            .filter(db::winners::Column::Id.eq(winner_id))
            .into_query(),
    );
    undo.push(
        db::participants::Entity::update_many()
            .col_expr(
                db::participants::Column::Status,
                db::participants::Status::Disqualified.into(),
            )
            .col_expr(db::participants::Column::Won, false.into())
            .filter(db::participants::Column::Id.eq(found.participant_id))
            .into_query(),
    );
    undo.push(
        db::prizes::Entity::update_many()
            .col_expr(
                db::prizes::Column::Awarded,
                Expr::col(db::prizes::Column::Awarded).sub(1),
            )
            .filter(db::prizes::Column::Id.eq(unit.prize_id))
            .into_query(),
    );
    undo.push(
        db::prize_units::Entity::update_many()
            .col_expr(db::prize_units::Column::WinnerId, Expr::value(None::<Uuid>))
            .filter(db::prize_units::Column::Id.eq(unit.id))
            .into_query(),
    );
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
    let after = events::update_one(
        &txn,
        event.id,
        events::changed().col_expr(
            db::events::Column::PrizesAwarded,
            Expr::col(db::events::Column::PrizesAwarded).sub(1),
        ),
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
    winners::find_winner(&s.db, winner_id)
        .await?
        .ok_or_else(|| bug("a disqualified winner vanished"))
}

/// What disqualifying a win changes besides it, as it stands.
#[derive(DerivePartialModel)]
#[sea_orm(entity = "db::winners::Entity")]
struct Held {
    unit_id: Uuid,
    #[sea_orm(
        from_expr = "Expr::col((db::prize_units::Entity, db::prize_units::Column::PrizeId))"
    )]
    prize_id: Uuid,
    #[sea_orm(from_expr = "Expr::col((db::prize_units::Entity, db::prize_units::Column::Unit))")]
    unit: i32,
    #[sea_orm(
        from_expr = "Expr::col((db::prize_units::Entity, db::prize_units::Column::EscrowId))"
    )]
    escrow_id: Uuid,
    disqualified_at: Option<DateTime<Utc>>,
    #[sea_orm(from_expr = "Expr::col((cards::Entity, cards::Column::Status))")]
    card_status: cards::Status,
}

/// The win `winner_id` with its unit and card, all three locked.
async fn held(txn: &DatabaseTransaction, winner_id: Uuid) -> DomainResult<Held> {
    let mut query = db::winners::Entity::find_by_id(winner_id)
        .inner_join(db::prize_units::Entity)
        .inner_join(cards::Entity);
    QueryTrait::query(&mut query).lock_with_tables(
        LockType::Update,
        [
            db::winners::Entity.into_iden(),
            db::prize_units::Entity.into_iden(),
            cards::Entity.into_iden(),
        ],
    );
    query
        .into_partial_model()
        .one(txn)
        .await?
        .ok_or_else(|| bug("a winner without its unit or card"))
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
    let seed = events::seed(txn, event.id).await?;
    let drawn = participants::drawn(txn, event.id).await?;
    let ids: Vec<Uuid> = drawn.iter().map(|p| p.id).collect();
    let ever_won = winners::ever_won(txn, event.id).await?;
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
