//! `attemptPrize` of INSTANT events (FLOWS.md §5): one attempt per
//! participant, an atomic per-slot budget in Redis, and the database as the
//! second guard.
//!
//! The budget is the number of awards so far, in one Redis key per event.
//! One Lua script checks it against the current slot's cumulative cap and
//! the prize count, and takes one award from it only for an attempt that
//! won its roll; so no number of concurrent attempts can award more than
//! the budget. A unit is then taken from the pool with `FOR UPDATE SKIP
//! LOCKED`, so even a wrong budget (lost, rebuilt while awards were in
//! flight) cannot award a unit twice. A budget key Redis lost is rebuilt
//! from the awards in Postgres. While Redis cannot answer, attempts fail
//! with INTERNAL and award nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use redis::Script;
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::award::{self, Unit};
use super::events::{self, EventStatus, EventView, WinnerSelection};
use super::participants::{self, ParticipantStatus, WinnerView};
use crate::Services;
use crate::context::{RequestMeta, Viewer};
use crate::error::{DomainError, DomainResult};
use crate::sql::{db_name, statement};

/// The rate limit (`RATE_LIMITS`) attempts count against.
pub const RATE_LIMIT: &str = "attempt";
/// Rebuilds of a lost budget one attempt may make.
const REBUILDS: usize = 5;
/// How long an attempt waits for Redis.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

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

/// Checks the budget (`KEYS[1]`: awards so far) against the slot cap
/// (`ARGV[1]`) and the prize count (`ARGV[2]`); takes one award when the
/// roll won (`ARGV[3]` = 1), keeping the key until `ARGV[4]` seconds.
/// Returns -1 if the key is missing (rebuild it), 0 no prizes left, 1 slot
/// budget spent, 2 within budget but not this time, 3 awarded.
const BUDGET: &str = r"
local awarded = tonumber(redis.call('GET', KEYS[1]))
if awarded == nil then return -1 end
if awarded >= tonumber(ARGV[2]) then return 0 end
if awarded >= tonumber(ARGV[1]) then return 1 end
if ARGV[3] ~= '1' then return 2 end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 3
";

/// The Redis budget of INSTANT events.
#[derive(Clone, Debug)]
pub struct Budget {
    script: std::sync::Arc<Script>,
    give_back: std::sync::Arc<Script>,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            script: std::sync::Arc::new(Script::new(BUDGET)),
            give_back: std::sync::Arc::new(Script::new(GIVE_BACK)),
        }
    }
}

/// One award back to the budget `KEYS[1]`, only if the key exists.
const GIVE_BACK: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end
return false
";

impl Budget {
    fn key(s: &Services, event_id: Uuid) -> String {
        s.ns.key(&format!("budget:{event_id}"))
    }

    /// Runs the budget script for one attempt.
    async fn take(
        &self,
        s: &Services,
        event: &EventView,
        cap: i64,
        won_roll: bool,
    ) -> DomainResult<i64> {
        let ttl = (event.ends_at - Utc::now()).num_seconds().max(0) + 86_400;
        let mut invocation = self.script.key(Self::key(s, event.id));
        invocation
            .arg(cap)
            .arg(i64::from(event.prize_count))
            .arg(u8::from(won_roll))
            .arg(ttl);
        let mut redis = s.redis.clone();
        let answer =
            tokio::time::timeout(REDIS_TIMEOUT, invocation.invoke_async::<i64>(&mut redis))
                .await
                .map_err(|_| {
                    DomainError::Internal(anyhow::anyhow!("the prize budget timed out in Redis"))
                })?;
        Ok(answer?)
    }

    /// Writes the budget from Postgres's awards (read on `conn`, the
    /// attempt's own connection: a pool exhausted by attempts must not
    /// wait on itself), unless another attempt wrote it first.
    async fn rebuild<C: ConnectionTrait>(
        &self,
        s: &Services,
        conn: &C,
        event: &EventView,
    ) -> DomainResult<()> {
        let awarded = events::find(conn, event.id)
            .await?
            .map_or(0, |e| e.prizes_awarded);
        let ttl = (event.ends_at - Utc::now()).num_seconds().max(0) + 86_400;
        let mut redis = s.redis.clone();
        let mut set = redis::cmd("SET");
        set.arg(Self::key(s, event.id))
            .arg(awarded)
            .arg("NX")
            .arg("EX")
            .arg(ttl);
        tokio::time::timeout(REDIS_TIMEOUT, set.query_async::<Option<String>>(&mut redis))
            .await
            .map_err(|_| {
                DomainError::Internal(anyhow::anyhow!("the prize budget timed out in Redis"))
            })??;
        tracing::warn!(event = %event.id, awarded, "prize budget rebuilt from Postgres");
        Ok(())
    }

    /// Gives one award back (a grant that found no unit, a disqualified
    /// win returned to the pool). Best effort: a budget that stays one too
    /// high only holds back one award, never allows an extra one.
    pub async fn give_back(&self, s: &Services, event_id: Uuid) {
        let mut redis = s.redis.clone();
        // A missing key stays missing (the next attempt rebuilds it from
        // Postgres): a DECR would create it at -1, a budget off by every
        // award so far.
        let decr = self.give_back.key(Self::key(s, event_id));
        let done =
            tokio::time::timeout(REDIS_TIMEOUT, decr.invoke_async::<Option<i64>>(&mut redis)).await;
        if let Err(err) = done
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
        {
            tracing::warn!(error = %err, event = %event_id, "could not give an award back to the budget");
        }
    }
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
    let event = events::find_visible(&s.db, Some(viewer), event_id)
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
    let participant = participants::of_user(&s.db, event_id, viewer.user_id)
        .await?
        .ok_or(DomainError::Forbidden)?;
    if participant.status != ParticipantStatus::Verified {
        return Err(DomainError::Forbidden);
    }
    let txn = s.db.begin().await?;
    // The attempt is spent only if this transaction commits: a failure
    // below (Redis down) leaves the participant free to try again.
    let fresh = txn
        .execute_raw(statement(
            "UPDATE giveaway.participants SET attempted_at = now() \
             WHERE id = $1 AND attempted_at IS NULL AND status = 'VERIFIED'",
            vec![participant.id.into()],
        ))
        .await?;
    if fresh.rows_affected() == 0 {
        return Ok(Attempt::lost(AttemptOutcome::AlreadyAttempted));
    }
    let chance = u32::try_from(event.win_chance_percent.unwrap_or(0)).unwrap_or(0);
    let won_roll = rand::rng().random_range(0..100u32) < chance;
    let cap = slot_cap(&event, Utc::now());
    let mut answer = s.budget.take(s, &event, cap, won_roll).await?;
    // A key lost again between its rebuild and the next take is rebuilt
    // again; a few rounds, then the attempt fails rather than guess.
    for _ in 0..REBUILDS {
        if answer >= 0 {
            break;
        }
        s.budget.rebuild(s, &txn, &event).await?;
        answer = s.budget.take(s, &event, cap, won_roll).await?;
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
    let unit: Option<Unit> = match award::take_unit(&txn, event_id).await {
        Ok(unit) => unit,
        Err(err) => {
            s.budget.give_back(s, event_id).await;
            return Err(err);
        }
    };
    let Some(unit) = unit else {
        // The budget granted more than the pool holds (it was rebuilt
        // while awards were in flight): the database says no.
        s.budget.give_back(s, event_id).await;
        txn.commit().await?;
        return Ok(Attempt::lost(AttemptOutcome::NoPrizesLeft));
    };
    let awarded = async {
        let (winner, _) = award::award(s, &txn, meta, &participant, unit).await?;
        txn.commit().await?;
        Ok::<_, DomainError>(winner)
    }
    .await;
    match awarded {
        Ok(winner) => {
            s.outbox.wake();
            Ok(Attempt {
                outcome: AttemptOutcome::Won,
                winner: Some(winner),
            })
        }
        Err(err) => {
            s.budget.give_back(s, event_id).await;
            Err(err)
        }
    }
}
