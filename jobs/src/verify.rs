//! The `verify_participant` job: asks the social verifier about a new
//! participant's handle and records VERIFIED or REJECTED.
//!
//! Re-delivery is harmless: only a pending participant is updated. A
//! verifier failure is retried; the last allowed one leaves the participant
//! pending (they cannot win) and is reported with the correlation id.

use apalis::prelude::{Attempt, BoxDynError, Data};
use giftdrop_domain::giveaway::verify::{self, VerifyParticipant};
use tracing::Instrument;

use crate::handler::{ServiceDeps, report};
use crate::queues::Envelope;

/// Checks one participant.
pub async fn verify_participant(
    envelope: Envelope<VerifyParticipant>,
    deps: Data<ServiceDeps>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let correlation_id = envelope.correlation_id.clone().unwrap_or_default();
    let participant = envelope.job.participant_id;
    let span = tracing::info_span!("job", kind = "verify_participant", %correlation_id, %participant, attempt = attempt.current());
    async move {
        let checked = verify::verify_participant(&deps.services, participant).await;
        if let Ok(status) = &checked {
            tracing::info!(?status, "participant checked");
        }
        report(
            "verify_participant",
            "the participant stays pending",
            &correlation_id,
            &attempt,
            deps.max_attempts,
            checked.map(drop),
        )
    }
    .instrument(span)
    .await
}
