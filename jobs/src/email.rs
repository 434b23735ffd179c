//! The `send_email` job.

use std::sync::Arc;

use apalis::prelude::{AbortError, Attempt, BoxDynError, Data};
use giftdrop_domain::jobs::SendEmail;
use tracing::Instrument;

use crate::mail::Mailer;
use crate::queues::Envelope;

/// What the handler needs.
#[derive(Clone)]
pub struct EmailDeps {
    /// The transport.
    pub mailer: Arc<dyn Mailer>,
    /// Runs before the job is given up and moved to the dead set.
    pub max_attempts: usize,
}

/// Delivers one email. A failure is retried (apalis-redis re-schedules it
/// `attempt` seconds later); the last allowed failure is reported to Sentry
/// with the correlation id and the job is aborted to the dead set.
pub async fn send_email(
    envelope: Envelope<SendEmail>,
    deps: Data<EmailDeps>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let correlation_id = envelope.correlation_id.clone().unwrap_or_default();
    let span = tracing::info_span!("job", kind = "send_email", %correlation_id, attempt = attempt.current());
    async move {
        match deps.mailer.send(&envelope.job).await {
            Ok(()) => {
                metrics::counter!("giftdrop_jobs_total", "kind" => "send_email", "outcome" => "ok").increment(1);
                Ok(())
            }
            Err(err) if attempt.current() >= deps.max_attempts => {
                metrics::counter!("giftdrop_jobs_total", "kind" => "send_email", "outcome" => "dead").increment(1);
                tracing::error!(
                    error = format!("{err:#}"),
                    %correlation_id,
                    dedupe_key = %envelope.job.dedupe_key,
                    "send_email failed on its last attempt; moved to the dead set"
                );
                Err(AbortError::new(err.into_boxed_dyn_error()).into())
            }
            Err(err) => {
                metrics::counter!("giftdrop_jobs_total", "kind" => "send_email", "outcome" => "retry").increment(1);
                tracing::warn!(error = format!("{err:#}"), "send_email failed; it will be retried");
                Err(err.into_boxed_dyn_error())
            }
        }
    }
    .instrument(span)
    .await
}
