//! The event clock: every period, start the SCHEDULED events whose
//! `startsAt` has come and end the LIVE ones whose `endsAt` has.
//!
//! Nothing is scheduled per event, so nothing can be lost: a worker that
//! restarts finds every due event on its first pass, and several workers,
//! or a pass repeated, are harmless because each transition is guarded by
//! the event's status.

use std::time::Duration;

use giftdrop_domain::Services;
use giftdrop_domain::giveaway::lifecycle;
use tokio_util::sync::CancellationToken;

/// Runs [`lifecycle::advance`] every `period` until `shutdown`.
pub async fn run(services: Services, period: Duration, shutdown: CancellationToken) {
    crate::schedule::every("the event clock", period, shutdown, || async {
        let moved = lifecycle::advance(&services).await?;
        for event in moved {
            tracing::info!(event = %event.id, status = ?event.status, "event moved on");
        }
        Ok(())
    })
    .await;
}
