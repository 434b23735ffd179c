//! The outbox relay: moves committed `ops.outbox` rows to Redis PUBLISH or
//! the job queues, then deletes them.
//!
//! Every process runs one. It drains at start, whenever a local commit wakes
//! it, and on a periodic sweep, so rows left by a crashed process (or
//! committed while Redis was down) are delivered later. Rows are claimed
//! with `FOR UPDATE SKIP LOCKED`, so relays in several processes never
//! deliver the same row at the same time; a failed row is retried with
//! backoff, and when Redis answers again after an outage every row it held
//! back goes at once. Delivery is at least once: consumers are idempotent.

use std::time::Duration;

use chrono::Utc;
use futures_util::future::join_all;
use giftdrop_domain::Services;
use giftdrop_domain::backoff::{Backoff, Outage};
use giftdrop_domain::outbox::OutboxSignal;
use giftdrop_domain::pubsub::{self, Hub};
use giftdrop_entities::ops::outbox;
use redis::aio::ConnectionManager;
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};
use tokio_util::sync::CancellationToken;

use crate::queues::JobQueues;

/// Rows claimed per batch: enough that a draw's winners (three rows each:
/// the winner, the event's change, the email job) go out in one batch, so
/// their messages reach subscribers in one burst, not in two with a
/// batch's jobs between them.
const BATCH: u64 = 1000;

/// The longest pause between passes while deliveries fail.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How long the relay waits for Redis to answer a PING.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// What one pass of the relay did.
struct Pass {
    delivered: usize,
    /// The first delivery error of the pass, if a row failed.
    failed: Option<String>,
}

/// Everything the relay needs.
#[derive(Clone)]
pub struct Relay {
    /// Postgres pool.
    pub db: DatabaseConnection,
    /// Redis commands (PUBLISH).
    pub redis: ConnectionManager,
    /// Channel naming and publishing.
    pub hub: Hub,
    /// Job storage.
    pub queues: JobQueues,
    /// Wake-ups from local commits.
    pub signal: OutboxSignal,
}

impl Relay {
    /// The relay of the process whose services are `services`.
    pub fn new(services: &Services, queues: JobQueues) -> Self {
        Self {
            db: services.db.clone(),
            redis: services.redis.clone(),
            hub: services.hub.clone(),
            queues,
            signal: services.outbox.clone(),
        }
    }

    /// Drains on every wake-up and every `sweep`, until `shutdown`. While
    /// passes fail (Postgres down) or rows cannot be delivered (Redis
    /// down), the next pass waits out a backoff instead, and the outage is
    /// logged once, not per pass and row.
    pub async fn run(self, sweep: Duration, shutdown: CancellationToken) {
        let mut outage = Outage::new(
            "the outbox relay",
            Backoff::new(sweep, sweep.max(MAX_BACKOFF)),
        );
        // Redis was seen down since the last success: once it answers, the
        // rows held back meanwhile are released (`release_held`).
        let mut redis_lost = false;
        loop {
            let failure = match self.pass().await {
                Ok(Pass { failed: None, .. }) => None,
                Ok(Pass {
                    failed: Some(err), ..
                }) => Some(format!("rows could not be delivered: {err}")),
                Err(err) => Some(format!("{err:#}")),
            };
            // Redis itself is asked whenever the relay fails (a row can fail
            // on its own, say a job for a queue this build does not know)
            // and before an outage is called over (a pass with nothing due
            // says nothing of Redis).
            let failure = if failure.is_some() || outage.is_down() {
                match pubsub::ping(&self.redis, PING_TIMEOUT).await {
                    Ok(()) => failure,
                    Err(error) => {
                        redis_lost = true;
                        Some(failure.unwrap_or(error))
                    }
                }
            } else {
                failure
            };
            let wait = match failure {
                None if outage.is_down() => {
                    outage.succeeded();
                    if std::mem::take(&mut redis_lost) {
                        self.release_held().await;
                        continue;
                    }
                    sweep
                }
                None => sweep,
                Some(error) => outage.failed(&error),
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.signal.woken(), if !outage.is_down() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Makes the rows held back by their own retry backoff due now. Called
    /// when Redis answers again after an outage: a row's backoff grows to
    /// 256 s while it fails, and the winners and jobs that waited out the
    /// outage go at once, not minutes after Redis is back. (A row that
    /// fails on its own keeps its backoff: Redis never went down for it.)
    async fn release_held(&self) {
        let now = Utc::now();
        let released = outbox::Entity::update_many()
            .col_expr(outbox::Column::AvailableAt, Expr::value(now))
            .filter(outbox::Column::AvailableAt.gt(now))
            .exec(&self.db)
            .await;
        match released {
            Ok(released) if released.rows_affected > 0 => tracing::info!(
                rows = released.rows_affected,
                "outbox rows held back during the outage released"
            ),
            Ok(_) => {}
            // The next pass reports Postgres; the rows go when due.
            Err(err) => tracing::warn!(error = %err, "could not release held outbox rows"),
        }
    }

    /// Delivers every row that is due; returns how many were delivered.
    pub async fn drain(&self) -> anyhow::Result<usize> {
        Ok(self.pass().await?.delivered)
    }

    /// [`Self::drain`], with the first delivery error, if any row failed.
    async fn pass(&self) -> anyhow::Result<Pass> {
        let mut delivered = 0;
        let mut first_failure = None;
        loop {
            let txn = self.db.begin().await?;
            let rows = outbox::Entity::find()
                .filter(outbox::Column::AvailableAt.lte(Utc::now()))
                .order_by_asc(outbox::Column::Id)
                .limit(BATCH)
                .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
                .all(&txn)
                .await?;
            let claimed = rows.len();
            let mut done = Vec::with_capacity(claimed);
            let mut failed = Vec::new();
            // Every pub/sub message of the batch in one round trip, in
            // order, ahead of the jobs: a draw's hundred winners reach their
            // subscribers together, not each behind the last one's email.
            let (messages, jobs): (Vec<_>, Vec<_>) = rows
                .into_iter()
                .partition(|row| row.kind == outbox::Kind::Publish);
            if !messages.is_empty() {
                match self.publish_all(&messages).await {
                    Ok(()) => done.extend(messages.iter().map(|row| row.id)),
                    Err(err) => failed.extend(messages.into_iter().map(|row| (row, err.clone()))),
                }
            }
            // At once: on the one multiplexed connection their commands go
            // out back to back, not a round trip each (a draw's hundred
            // emails would keep the relay busy while its winners fan out).
            let pushed = join_all(jobs.iter().map(|row| self.push_job(row))).await;
            for (row, pushed) in jobs.into_iter().zip(pushed) {
                match pushed {
                    Ok(()) => done.push(row.id),
                    Err(err) => failed.push((row, err)),
                }
            }
            for (row, err) in failed {
                let attempts = row.attempts.saturating_add(1);
                let backoff = 2_i64
                    .saturating_pow(attempts.clamp(0, 8).unsigned_abs())
                    .min(300);
                // One line per row, below ERROR: the relay's outage is the
                // one error (see `run`).
                tracing::warn!(
                    error = %err,
                    outbox_id = row.id,
                    target = %row.target,
                    correlation_id = row.correlation_id.as_deref().unwrap_or_default(),
                    attempts,
                    "outbox delivery failed; will retry"
                );
                first_failure.get_or_insert_with(|| err.clone());
                outbox::Entity::update(outbox::ActiveModel {
                    id: Set(row.id),
                    attempts: Set(attempts),
                    last_error: Set(Some(err)),
                    available_at: Set(Utc::now() + chrono::Duration::seconds(backoff)),
                    ..Default::default()
                })
                .exec(&txn)
                .await?;
            }
            delivered += done.len();
            if !done.is_empty() {
                // One statement text whatever the batch's size (`= ANY` of
                // one array): a list of `$n` per row made a new prepared
                // statement per size.
                outbox::Entity::delete_many()
                    .filter(outbox::Column::Id.eq_any(done))
                    .exec(&txn)
                    .await?;
            }
            txn.commit().await?;
            if claimed < usize::try_from(BATCH).unwrap_or(usize::MAX) {
                return Ok(Pass {
                    delivered,
                    failed: first_failure,
                });
            }
        }
    }

    /// Publishes the pub/sub rows `messages`, in order, in one round trip.
    async fn publish_all(&self, messages: &[outbox::Model]) -> Result<(), String> {
        let payloads = messages
            .iter()
            .map(|row| serde_json::to_string(&row.payload))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| format!("{err:#}"))?;
        let topics = messages.iter().map(|row| row.target.as_str());
        self.hub
            .publish_all(
                &mut self.redis.clone(),
                topics.zip(payloads.iter().map(String::as_str)),
            )
            .await
            .map_err(|err| format!("{err:#}"))
    }

    /// Pushes one job row to its queue; the error as it is logged and stored.
    async fn push_job(&self, row: &outbox::Model) -> Result<(), String> {
        self.queues
            .push(&row.target, row.payload.clone(), row.correlation_id.clone())
            .await
            .map_err(|err| format!("{err:#}"))
    }
}
