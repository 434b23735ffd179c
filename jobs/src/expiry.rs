//! The card-expiry schedule: every period, expire ACTIVE cards past
//! `expiresAt` and release their escrows to the funders.
//!
//! Runs in every worker process. Several workers, or a run repeated after
//! a crash, are harmless: each card is expired in its own transaction under
//! `FOR UPDATE SKIP LOCKED`, guarded by its status.

use std::time::Duration;

use anyhow::Context as _;
use giftdrop_domain::{Services, giftcard};
use tokio_util::sync::CancellationToken;

/// Cards expired per pass before the next batch is read.
const BATCH: u32 = 200;

/// Expires every due card now, batch by batch; returns how many.
pub async fn expire_due_cards(services: &Services) -> anyhow::Result<u64> {
    let mut total = 0;
    loop {
        let expired = giftcard::expire_due(services, BATCH)
            .await
            .context("card expiry failed")?;
        total += expired;
        if expired < u64::from(BATCH) {
            return Ok(total);
        }
    }
}

/// Runs [`expire_due_cards`] every `period` until `shutdown`.
pub async fn run(services: Services, period: Duration, shutdown: CancellationToken) {
    crate::schedule::every("card expiry", period, shutdown, || async {
        let expired = expire_due_cards(&services).await?;
        if expired > 0 {
            tracing::info!(expired, "expired cards released to their funders");
        }
        Ok(())
    })
    .await;
}
