//! The `send_email` job.

use std::sync::Arc;

use apalis::prelude::{Attempt, BoxDynError, Data};
use giftdrop_domain::jobs::SendEmail;
use giftdrop_domain::keys::Namespace;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use tracing::Instrument;

use crate::handler::report;
use crate::mail::Mailer;
use crate::queues::Envelope;

/// What the handler needs.
#[derive(Clone)]
pub struct EmailDeps {
    /// The transport.
    pub mailer: Arc<dyn Mailer>,
    /// Runs before the job is given up and moved to the dead set.
    pub max_attempts: usize,
    /// Which emails were already sent.
    pub sent: SentLog,
}

/// Remembers sent emails by dedupe key for a week, so a re-delivered job
/// (the outbox and the queue deliver at least once) sends nothing twice.
/// If Redis cannot answer, the email is sent: a rare duplicate beats a lost
/// email.
#[derive(Clone)]
pub struct SentLog {
    /// Redis commands.
    pub redis: ConnectionManager,
    /// Prefix of the keys.
    pub ns: Namespace,
}

impl SentLog {
    const KEEP_SECS: u64 = 7 * 24 * 3600;

    fn key(&self, dedupe_key: &str) -> String {
        self.ns.key(&format!("mail:sent:{dedupe_key}"))
    }

    async fn contains(&self, dedupe_key: &str) -> bool {
        let exists: redis::RedisResult<bool> =
            self.redis.clone().exists(self.key(dedupe_key)).await;
        exists.unwrap_or_else(|err| {
            tracing::warn!(error = %err, "could not check the sent-mail log; sending");
            false
        })
    }

    async fn insert(&self, dedupe_key: &str) {
        let set: redis::RedisResult<()> = self
            .redis
            .clone()
            .set_ex(self.key(dedupe_key), 1, Self::KEEP_SECS)
            .await;
        if let Err(err) = set {
            tracing::warn!(error = %err, dedupe_key, "could not record a sent email");
        }
    }
}

/// Delivers one email, once per dedupe key. A failure is retried (apalis-redis re-schedules it
/// `attempt` seconds later); the last allowed failure is reported to Sentry
/// with the correlation id and the job is aborted to the dead set.
pub async fn send_email(
    envelope: Envelope<SendEmail>,
    deps: Data<EmailDeps>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let correlation_id = envelope.correlation_id.clone().unwrap_or_default();
    let job = &envelope.job;
    let dedupe_key = &job.dedupe_key;
    let span = tracing::info_span!("job", kind = "send_email", %correlation_id, %dedupe_key, attempt = attempt.current());
    async move {
        if deps.sent.contains(dedupe_key).await {
            metrics::counter!("giftdrop_jobs_total", "kind" => "send_email", "outcome" => "duplicate").increment(1);
            tracing::info!("email already sent; skipped");
            return Ok(());
        }
        let sent = deps.mailer.send(job).await;
        if sent.is_ok() {
            deps.sent.insert(dedupe_key).await;
        }
        report(
            "send_email",
            "moved to the dead set",
            &correlation_id,
            &attempt,
            deps.max_attempts,
            sent,
        )
    }
    .instrument(span)
    .await
}
