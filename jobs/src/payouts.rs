//! The payout reconciliation schedule: payouts left PENDING by a process
//! that died between committing them and recording the provider's answer
//! are settled from what the provider says became of them.
//!
//! Runs in every worker process; two workers reconciling one payout record
//! it once (the payout row is locked and re-checked before recording).

use std::time::Duration;

use giftdrop_domain::Services;
use giftdrop_domain::payments::payout;
use tokio_util::sync::CancellationToken;

/// A payout PENDING longer than this is stale: far beyond a provider call's
/// timeout and an idempotency claim's lease.
pub const STALE_AFTER: Duration = Duration::from_secs(300);
const BATCH: u32 = 50;

/// Runs one reconciliation pass every `period` until `shutdown`.
pub async fn run(services: Services, period: Duration, shutdown: CancellationToken) {
    crate::schedule::every("payout reconciliation", period, shutdown, || async {
        let settled = payout::reconcile_stale(&services, STALE_AFTER, BATCH).await?;
        if settled > 0 {
            tracing::warn!(
                settled,
                "stale PENDING payouts reconciled with the provider"
            );
        }
        Ok(())
    })
    .await;
}
