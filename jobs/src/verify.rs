//! The `verify_participant` job: asks the social verifier about a new
//! participant's handle and records VERIFIED or REJECTED.
//!
//! Re-delivery is harmless: only a pending participant is updated. A
//! verifier failure is retried; the last allowed one leaves the participant
//! pending (they cannot win) and is reported with the correlation id.

use apalis::prelude::{AbortError, Attempt, BoxDynError, Data};
use giftdrop_domain::Services;
use giftdrop_domain::giveaway::verify::{self, VerifyParticipant};
use tracing::Instrument;

use crate::queues::Envelope;

/// What the handler needs.
#[derive(Clone)]
pub struct VerifyDeps {
    /// The services (database, verifier).
    pub services: Services,
    /// Runs before the job is given up and moved to the dead set.
    pub max_attempts: usize,
}

/// Checks one participant.
pub async fn verify_participant(
    envelope: Envelope<VerifyParticipant>,
    deps: Data<VerifyDeps>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let correlation_id = envelope.correlation_id.clone().unwrap_or_default();
    let participant = envelope.job.participant_id;
    let span = tracing::info_span!("job", kind = "verify_participant", %correlation_id, %participant, attempt = attempt.current());
    async move {
        match verify::verify_participant(&deps.services, participant).await {
            Ok(status) => {
                metrics::counter!("giftdrop_jobs_total", "kind" => "verify_participant", "outcome" => "ok").increment(1);
                tracing::info!(?status, "participant checked");
                Ok(())
            }
            Err(err) if attempt.current() >= deps.max_attempts => {
                metrics::counter!("giftdrop_jobs_total", "kind" => "verify_participant", "outcome" => "dead").increment(1);
                tracing::error!(error = ?err, %correlation_id, "verify_participant failed on its last attempt; the participant stays pending");
                Err(AbortError::new(err).into())
            }
            Err(err) => {
                metrics::counter!("giftdrop_jobs_total", "kind" => "verify_participant", "outcome" => "retry").increment(1);
                tracing::warn!(error = ?err, "verify_participant failed; it will be retried");
                Err(err.into())
            }
        }
    }
    .instrument(span)
    .await
}
