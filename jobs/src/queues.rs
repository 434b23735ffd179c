//! The apalis queues, one per job kind, named `{REDIS_NAMESPACE}jobs:{kind}`.

use std::time::Duration;

use anyhow::Context;
use apalis::prelude::TaskSink;
use apalis_redis::{Config, RedisStorage};
use giftdrop_domain::giveaway::attempt::ReleaseGrant;
use giftdrop_domain::giveaway::verify::VerifyParticipant;
use giftdrop_domain::jobs::{JobPayload, SendEmail};
use giftdrop_domain::keys::Namespace;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

/// A job with the correlation id of the request that caused it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<J> {
    /// Correlation id of the causing request, for logs and Sentry.
    pub correlation_id: Option<String>,
    /// The job itself.
    pub job: J,
}

/// Storage of every job kind.
#[derive(Clone)]
pub struct JobQueues {
    /// Outgoing email.
    pub send_email: RedisStorage<Envelope<SendEmail>>,
    /// Social-handle checks of new participants.
    pub verify_participant: RedisStorage<Envelope<VerifyParticipant>>,
    /// Awards of disqualified INSTANT wins given back to their budgets.
    pub release_grant: RedisStorage<Envelope<ReleaseGrant>>,
    redis: ConnectionManager,
}

/// Heartbeat of workers; with [`MISSED_HEARTBEATS`] it sets how long a
/// silent worker's jobs stay reserved before another worker takes them.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// See [`HEARTBEAT`]: a worker silent for 60 s is presumed dead.
pub const MISSED_HEARTBEATS: usize = 6;

fn config(ns: &Namespace, kind: &str) -> Config {
    Config::default()
        .queue(ns.queue(kind))
        .emit_events(false)
        .heartbeat_interval(HEARTBEAT)
        .missed_heartbeats(MISSED_HEARTBEATS)
}

impl JobQueues {
    /// Queues on `redis` under `ns`.
    pub fn new(redis: ConnectionManager, ns: &Namespace) -> Self {
        Self {
            send_email: RedisStorage::new(redis.clone()).with_config(config(ns, SendEmail::KIND)),
            verify_participant: RedisStorage::new(redis.clone())
                .with_config(config(ns, VerifyParticipant::KIND)),
            release_grant: RedisStorage::new(redis.clone())
                .with_config(config(ns, ReleaseGrant::KIND)),
            redis,
        }
    }

    /// Pushes a job given as its outbox row: kind and JSON payload.
    pub async fn push(
        &self,
        kind: &str,
        payload: serde_json::Value,
        correlation_id: Option<String>,
    ) -> anyhow::Result<()> {
        // One arm per kind: the storages differ in type.
        macro_rules! push {
            ($storage:expr, $job:ty) => {{
                let job: $job = serde_json::from_value(payload)
                    .with_context(|| format!("malformed {} payload", <$job>::KIND))?;
                $storage
                    .clone()
                    .push(Envelope {
                        correlation_id,
                        job,
                    })
                    .await
                    .map_err(|e| anyhow::anyhow!("failed to push a {} job: {e}", <$job>::KIND))
            }};
        }
        match kind {
            SendEmail::KIND => push!(self.send_email, SendEmail),
            VerifyParticipant::KIND => push!(self.verify_participant, VerifyParticipant),
            ReleaseGrant::KIND => push!(self.release_grant, ReleaseGrant),
            other => anyhow::bail!("unknown job kind {other:?}"),
        }
    }

    fn config_of(&self, kind: &str) -> anyhow::Result<&Config> {
        match kind {
            SendEmail::KIND => Ok(self.send_email.get_config()),
            VerifyParticipant::KIND => Ok(self.verify_participant.get_config()),
            ReleaseGrant::KIND => Ok(self.release_grant.get_config()),
            other => anyhow::bail!("unknown job kind {other:?}"),
        }
    }

    /// Jobs of `kind` waiting or scheduled (retries included), for health
    /// views and test teardown.
    pub async fn pending(&self, kind: &str) -> anyhow::Result<u64> {
        let config = self.config_of(kind)?;
        let mut redis = self.redis.clone();
        let active: u64 = redis.llen(config.active_jobs_list()).await?;
        let scheduled: u64 = redis.zcard(config.scheduled_jobs_set()).await?;
        Ok(active + scheduled)
    }

    /// Jobs of `kind` that ran to success.
    pub async fn done(&self, kind: &str) -> anyhow::Result<u64> {
        let config = self.config_of(kind)?;
        Ok(self.redis.clone().scard(config.done_jobs_set()).await?)
    }

    /// Jobs of `kind` that exhausted their attempts or were aborted.
    pub async fn dead(&self, kind: &str) -> anyhow::Result<u64> {
        let config = self.config_of(kind)?;
        Ok(self.redis.clone().scard(config.dead_jobs_set()).await?)
    }
}
