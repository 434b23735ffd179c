//! The `release_grant` job: a disqualified INSTANT win's award given back
//! to the event's Redis budget ([`ReleaseGrant`]). Running twice is
//! harmless; a failure (Redis unreachable) is retried.

use apalis::prelude::{Attempt, BoxDynError, Data};
use giftdrop_domain::giveaway::attempt::{self, ReleaseGrant};
use tracing::Instrument;

use crate::handler::{ServiceDeps, report};
use crate::queues::Envelope;

/// Gives one award back.
pub async fn release_grant(
    envelope: Envelope<ReleaseGrant>,
    deps: Data<ServiceDeps>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let correlation_id = envelope.correlation_id.clone().unwrap_or_default();
    let job = &envelope.job;
    let span = tracing::info_span!("job", kind = "release_grant", %correlation_id, event = %job.event_id, participant = %job.participant_id, attempt = attempt.current());
    async move {
        let released = attempt::release_grant(&deps.services, job).await;
        report(
            "release_grant",
            "one prize stays held back until the budget is rebuilt or expires",
            &correlation_id,
            &attempt,
            deps.max_attempts,
            released,
        )
    }
    .instrument(span)
    .await
}
