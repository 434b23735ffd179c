//! `attemptPrize` of INSTANT events (FLOWS.md §5): one attempt per
//! participant, an atomic per-slot budget in Redis, and the database as the
//! second guard.
//!
//! The budget is the set of participants granted an award, in one Redis
//! key per event ([`Budget`]). One Lua script checks it against the current
//! slot's cumulative cap and the prize count, and grants an award only to
//! an attempt that won its roll; so no number of concurrent attempts can
//! award more than the budget. A grant is held until its award commits, so
//! an attempt that fails after it (a lost reply, a dropped request) neither
//! spends it for good nor, retried, counts it twice. A unit is then taken
//! from the pool with `FOR UPDATE SKIP LOCKED`, so even a wrong budget
//! (lost, rebuilt while awards were in flight) cannot award a unit twice.
//! A budget key Redis lost is rebuilt from the awards in Postgres. While
//! Redis cannot answer, attempts fail with INTERNAL and award nothing.

use chrono::{DateTime, Utc};
use giftdrop_entities::giveaway as db;
use rand::Rng;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::award;
use super::events::{self, EventStatus, EventView, WinnerSelection};
use super::live;
use super::participants::ParticipantStatus;
use super::pool;
use super::winners::WinnerView;
use crate::Services;
use crate::context::{RequestMeta, Viewer};
use crate::error::{DomainError, DomainResult};
use crate::sql::db_name;

mod budget;

pub use budget::{Budget, ReleaseGrant, release_grant};

/// The rate limit (`RATE_LIMITS`) attempts count against.
pub const RATE_LIMIT: &str = "attempt";
/// Rebuilds of a lost budget one attempt may make.
const REBUILDS: usize = 5;

/// `AttemptOutcome` of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AttemptOutcome {
    /// Won a prize.
    Won,
    /// Within budget, but the roll did not win.
    NotThisTime,
    /// The budget of the current slot is spent.
    SlotBudgetSpent,
    /// Every prize is awarded.
    NoPrizesLeft,
    /// This participant already tried.
    AlreadyAttempted,
}

/// What an attempt came to.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// The outcome.
    pub outcome: AttemptOutcome,
    /// The win, when WON.
    pub winner: Option<WinnerView>,
}

impl Attempt {
    fn lost(outcome: AttemptOutcome) -> Self {
        Self {
            outcome,
            winner: None,
        }
    }
}

/// The cap on awards so far at `now`: by the end of slot `k` at most
/// `ceil(prize_count * (k + 1) / slot_count)` (FLOWS.md §5).
pub fn slot_cap(event: &EventView, now: DateTime<Utc>) -> i64 {
    let slots = i64::from(event.slot_count.max(1));
    let prizes = i64::from(event.prize_count);
    let window = (event.ends_at - event.starts_at).num_milliseconds().max(1);
    let elapsed = (now - event.starts_at)
        .num_milliseconds()
        .clamp(0, window - 1);
    let slot = i64::try_from(i128::from(elapsed) * i128::from(slots) / i128::from(window))
        .unwrap_or(0)
        .clamp(0, slots - 1);
    (prizes * (slot + 1) + slots - 1) / slots
}

/// `attemptPrize`: a VERIFIED participant of a LIVE INSTANT event tries
/// once.
pub async fn attempt(
    s: &Services,
    meta: &RequestMeta,
    viewer: &Viewer,
    event_id: Uuid,
) -> DomainResult<Attempt> {
    s.limiter
        .check(RATE_LIMIT, &viewer.user_id.to_string())
        .await?;
    let (event, participant) = events::find_visible_with_participant(&s.db, viewer, event_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    if event.selection != WinnerSelection::Instant {
        return Err(DomainError::Conflict(
            "winners of a DRAW event are drawn when it ends".into(),
        ));
    }
    if event.status != EventStatus::Live {
        return Err(DomainError::Conflict(format!(
            "the event is {}, not LIVE",
            db_name(&event.status)
        )));
    }
    let participant = participant.ok_or(DomainError::Forbidden)?;
    if participant.status != ParticipantStatus::Verified {
        return Err(DomainError::Forbidden);
    }
    let txn = s.db.begin().await?;
    // The attempt is spent only if this transaction commits: a failure
    // below (Redis down) leaves the participant free to try again.
    let fresh = db::participants::Entity::update_many()
        .col_expr(
            db::participants::Column::AttemptedAt,
            Expr::current_timestamp(),
        )
        .filter(db::participants::Column::Id.eq(participant.id))
        .filter(db::participants::Column::AttemptedAt.is_null())
        .filter(db::participants::Column::Status.eq(db::participants::Status::Verified))
        .exec(&txn)
        .await?;
    if fresh.rows_affected == 0 {
        return Ok(Attempt::lost(AttemptOutcome::AlreadyAttempted));
    }
    let chance = u32::try_from(event.win_chance_percent.unwrap_or(0)).unwrap_or(0);
    let won_roll = rand::rng().random_range(0..100u32) < chance;
    let cap = slot_cap(&event, Utc::now());
    let mut answer = s
        .budget
        .take(s, &event, participant.id, cap, won_roll)
        .await?;
    // A key lost again between its rebuild and the next take is rebuilt
    // again; a few rounds, then the attempt fails rather than guess.
    for _ in 0..REBUILDS {
        if answer >= 0 {
            break;
        }
        s.budget.rebuild(s, &txn, &event).await?;
        answer = s
            .budget
            .take(s, &event, participant.id, cap, won_roll)
            .await?;
    }
    let outcome = match answer {
        0 => AttemptOutcome::NoPrizesLeft,
        1 => AttemptOutcome::SlotBudgetSpent,
        2 => AttemptOutcome::NotThisTime,
        3 => AttemptOutcome::Won,
        _ => {
            return Err(DomainError::Internal(anyhow::anyhow!(
                "the prize budget answered {answer}"
            )));
        }
    };
    if outcome != AttemptOutcome::Won {
        txn.commit().await?;
        return Ok(Attempt::lost(outcome));
    }
    let granted = async {
        match pool::take_unit(&txn, event_id).await? {
            Some(unit) => Ok(Some(
                award::award(s, &txn, meta, &participant, unit).await?.0,
            )),
            // The budget granted more than the pool holds (it was rebuilt
            // while awards were in flight): the database says no.
            None => Ok(None),
        }
    }
    .await;
    match granted {
        Ok(Some(winner)) => {
            // A commit whose outcome is unknown leaves the grant held: the
            // retry gets it back if nothing committed, and the rebuild at
            // the end of its hold settles it if the award did.
            txn.commit().await?;
            s.outbox.wake();
            live::announce_here(&s.hub, event_id, std::slice::from_ref(&winner));
            s.budget.settle(s, event_id, participant.id).await;
            Ok(Attempt {
                outcome: AttemptOutcome::Won,
                winner: Some(winner),
            })
        }
        Ok(None) => {
            s.budget.give_back(s, event_id, participant.id).await;
            txn.commit().await?;
            Ok(Attempt::lost(AttemptOutcome::NoPrizesLeft))
        }
        Err(err) => {
            // Given back only once the transaction is over: a unit it
            // still locked would be skipped by the attempt the grant goes
            // to next.
            if let Err(rollback) = txn.rollback().await {
                tracing::warn!(error = %rollback, "an attempt's rollback failed");
            }
            s.budget.give_back(s, event_id, participant.id).await;
            Err(err)
        }
    }
}
