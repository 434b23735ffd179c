//! The Redis budget of INSTANT events ([`Budget`]) and the job that gives
//! a disqualified win's grant back to it ([`ReleaseGrant`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use redis::Script;
use sea_orm::ConnectionTrait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Services;
use crate::error::{DomainError, DomainResult};
use crate::giveaway::events::EventView;
use crate::giveaway::winners;
use crate::jobs::JobPayload;

/// How long an attempt waits for Redis.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// The member every budget holds, so that a budget with no grants yet
/// still exists (Redis deletes an empty sorted set) and a missing key
/// always means "lost, rebuild it".
const OPEN: &str = "open";

/// A budget script on `KEYS[1]`: `$body` after the Redis clock in ms
/// (`now`) and `must_rebuild()`, true when the key is lost or a grant
/// outlived its hold. One definition of both for every script that asks.
macro_rules! budget_script {
    ($body:literal) => {
        concat!(
            r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function must_rebuild()
  return redis.call('EXISTS', KEYS[1]) == 0
    or #redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1) > 0
end
",
            $body
        )
    };
}

/// Grants one award to participant `ARGV[5]` when the budget (`KEYS[1]`)
/// is under the slot cap (`ARGV[1]`) and the prize count (`ARGV[2]`) and
/// the roll won (`ARGV[3]` = 1), holding it for `ARGV[6]` ms, the key kept
/// for `ARGV[4]` s. A participant who still holds a grant (an attempt
/// that failed after it, retried) gets that one back, never a second.
/// Returns -1 when the budget must be rebuilt (the key is lost, or a grant
/// outlived its hold), 0 no prizes left, 1 slot budget spent, 2 within
/// budget but not this time, 3 granted.
const TAKE: &str = budget_script!(
    r"
if must_rebuild() then return -1 end
if redis.call('ZSCORE', KEYS[1], ARGV[5]) then return 3 end
local granted = redis.call('ZCARD', KEYS[1]) - 1
if granted >= tonumber(ARGV[2]) then return 0 end
if granted >= tonumber(ARGV[1]) then return 1 end
if ARGV[3] ~= '1' then return 2 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[6]), ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 3
"
);

/// Rebuilds the budget `KEYS[1]`: drops grants whose hold ran out, and
/// settles the standing winners `ARGV[2..]` read from Postgres, the key
/// kept for `ARGV[1]` s. Grants still held and winners already settled
/// stay: a rebuild never lowers the count below what Postgres shows.
const REBUILD: &str = budget_script!(
    r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], '+inf', ARGV[2])
for i = 3, #ARGV do redis.call('ZADD', KEYS[1], '+inf', ARGV[i]) end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return redis.call('ZCARD', KEYS[1]) - 1
"
);

/// 1 when the budget `KEYS[1]` must be rebuilt, as [`TAKE`] answers -1;
/// else 0.
const NEEDS_REBUILD: &str = budget_script!(
    r"
if must_rebuild() then return 1 end
return 0
"
);

/// Settles participant `ARGV[1]`'s grant in `KEYS[1]` once its award has
/// committed; a lost key stays lost (the next attempt rebuilds it).
const SETTLE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('ZADD', KEYS[1], '+inf', ARGV[1]) end
return false
";

/// The Redis budget of INSTANT events: one sorted set per event of the
/// participants granted an award, scored by the time their hold ends, or
/// `+inf` once the award committed. Its size less one ([`OPEN`]) is the
/// number of awards, made or in flight.
///
/// A grant is held, not spent, until its award commits: an attempt that
/// fails after the grant gives it back; one that cannot (its Redis reply
/// timed out, its request was dropped) leaves it held, for that
/// participant's retry or, after `hold`, for the next rebuild to release.
/// So neither a lost reply nor a lost request can hold back a prize for
/// good, and no retry counts twice.
///
/// A process rebuilds an event's budget once at a time: when the key is
/// lost in the middle of a storm, every attempt in flight finds it
/// missing; one reads the standing winners and rebuilds (for the largest
/// event, a script of 50,000 arguments), and the others wait for it, see
/// the budget whole again and take from it.
#[derive(Clone, Debug)]
pub struct Budget {
    take: Arc<Script>,
    rebuild: Arc<Script>,
    needs_rebuild: Arc<Script>,
    settle: Arc<Script>,
    hold: Duration,
    /// One rebuild at a time per event, by the event id's stripe.
    rebuilding: Arc<[tokio::sync::Mutex<()>; REBUILD_STRIPES]>,
    /// Rebuilds this process made.
    rebuilt: Arc<AtomicU64>,
}

/// Stripes of [`Budget::rebuilding`]: two events' rebuilds wait for each
/// other only when their ids share one.
const REBUILD_STRIPES: usize = 64;

impl Default for Budget {
    /// Grants held for a minute: longer than any attempt can run (the
    /// HTTP layer drops a request after 30 s).
    fn default() -> Self {
        Self::holding_grants_for(Duration::from_secs(60))
    }
}

impl Budget {
    /// A budget whose grants are held for `hold` before a rebuild may
    /// release them.
    pub fn holding_grants_for(hold: Duration) -> Self {
        Self {
            take: Arc::new(Script::new(TAKE)),
            rebuild: Arc::new(Script::new(REBUILD)),
            needs_rebuild: Arc::new(Script::new(NEEDS_REBUILD)),
            settle: Arc::new(Script::new(SETTLE)),
            hold,
            rebuilding: Arc::new(std::array::from_fn(|_| tokio::sync::Mutex::new(()))),
            rebuilt: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Budgets this process rebuilt from Postgres so far.
    pub fn rebuilds(&self) -> u64 {
        self.rebuilt.load(Ordering::Relaxed)
    }

    /// The budget's key of `event_id`.
    pub fn key(s: &Services, event_id: Uuid) -> String {
        s.ns.key(&format!("grants:{event_id}"))
    }

    /// Seconds to keep the key: a day past the end of the event.
    fn ttl(event: &EventView) -> i64 {
        (event.ends_at - Utc::now()).num_seconds().max(0) + 86_400
    }

    /// Runs `invocation` within the attempt's Redis timeout.
    async fn run<T: redis::FromRedisValue>(
        s: &Services,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> DomainResult<T> {
        let mut redis = s.redis.clone();
        in_time(invocation.invoke_async::<T>(&mut redis)).await
    }

    /// Runs the budget script for `participant`'s attempt.
    pub(super) async fn take(
        &self,
        s: &Services,
        event: &EventView,
        participant: Uuid,
        cap: i64,
        won_roll: bool,
    ) -> DomainResult<i64> {
        let hold = i64::try_from(self.hold.as_millis()).unwrap_or(i64::MAX);
        let mut invocation = self.take.key(Self::key(s, event.id));
        invocation
            .arg(cap)
            .arg(i64::from(event.prize_count))
            .arg(u8::from(won_roll))
            .arg(Self::ttl(event))
            .arg(participant.to_string())
            .arg(hold);
        Self::run(s, &invocation).await
    }

    /// Rebuilds the budget from Postgres's standing winners (read on
    /// `conn`, the attempt's own connection: a pool exhausted by attempts
    /// must not wait on itself), unless another attempt of this process
    /// rebuilt it while this one waited for its turn.
    pub(super) async fn rebuild<C: ConnectionTrait>(
        &self,
        s: &Services,
        conn: &C,
        event: &EventView,
    ) -> DomainResult<()> {
        let stripe = usize::try_from(event.id.as_u128() % REBUILD_STRIPES as u128).unwrap_or(0);
        let _turn = self.rebuilding[stripe].lock().await;
        let needed: i64 = Self::run(s, &self.needs_rebuild.key(Self::key(s, event.id))).await?;
        if needed == 0 {
            return Ok(());
        }
        let winners = winners::standing_winners(conn, event.id).await?;
        let mut invocation = self.rebuild.key(Self::key(s, event.id));
        invocation.arg(Self::ttl(event)).arg(OPEN);
        for winner in &winners {
            invocation.arg(winner.to_string());
        }
        let granted: i64 = Self::run(s, &invocation).await?;
        self.rebuilt.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("giftdrop_prize_budget_rebuilds_total").increment(1);
        tracing::warn!(event = %event.id, awarded = winners.len(), granted, "prize budget rebuilt from Postgres");
        Ok(())
    }

    /// Settles `participant`'s grant once its award committed. Best
    /// effort: an unsettled grant is settled by the rebuild its hold's end
    /// brings about.
    pub(super) async fn settle(&self, s: &Services, event_id: Uuid, participant: Uuid) {
        let mut invocation = self.settle.key(Self::key(s, event_id));
        invocation.arg(participant.to_string());
        let done = Self::run::<Option<i64>>(s, &invocation).await;
        best_effort(done, event_id, "settle an award in");
    }

    /// Gives `participant`'s grant back (one that found no unit, or whose
    /// award failed). Best effort: a grant left behind is released when
    /// its hold ends.
    pub(super) async fn give_back(&self, s: &Services, event_id: Uuid, participant: Uuid) {
        let done = Self::remove(s, event_id, participant).await;
        best_effort(done, event_id, "give an award back to");
    }

    /// Removes `participant` from `event_id`'s budget.
    async fn remove(s: &Services, event_id: Uuid, participant: Uuid) -> DomainResult<()> {
        let mut redis = s.redis.clone();
        let mut zrem = redis::cmd("ZREM");
        zrem.arg(Self::key(s, event_id))
            .arg(participant.to_string());
        in_time(zrem.query_async::<i64>(&mut redis)).await?;
        Ok(())
    }
}

/// The `release_grant` job: a disqualified INSTANT win's award given back
/// to the budget once the disqualification committed (its unit is back in
/// the pool). Queued through the outbox in the disqualification's
/// transaction, so a Redis that cannot answer then delays it and never
/// loses it: given back inline and failing, it held back one prize until
/// the key expired, a day after the event. Running twice is harmless: a
/// disqualified participant never attempts again, so never holds a grant
/// again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseGrant {
    /// The INSTANT event.
    pub event_id: Uuid,
    /// The disqualified participant.
    pub participant_id: Uuid,
}

impl JobPayload for ReleaseGrant {
    const KIND: &'static str = "release_grant";
}

/// Runs a [`ReleaseGrant`] job.
pub async fn release_grant(s: &Services, job: &ReleaseGrant) -> DomainResult<()> {
    Budget::remove(s, job.event_id, job.participant_id).await
}

/// `call` to Redis within the attempt's timeout.
async fn in_time<T>(call: impl Future<Output = redis::RedisResult<T>>) -> DomainResult<T> {
    tokio::time::timeout(REDIS_TIMEOUT, call)
        .await
        .map_err(|_| DomainError::Internal(anyhow::anyhow!("the prize budget timed out in Redis")))?
        .map_err(DomainError::from)
}

/// Logs a budget update that failed (`could not {what} the budget`).
fn best_effort<T>(done: DomainResult<T>, event_id: Uuid, what: &str) {
    if let Err(err) = done {
        tracing::warn!(error = %err, event = %event_id, "could not {what} the budget");
    }
}
