//! Periodic housekeeping: deleting expired idempotency keys.
//!
//! Runs in every worker process. Concurrent sweeps from several workers are
//! harmless: each deletes a bounded batch of already-expired rows.

use std::time::Duration;

use anyhow::Context as _;
use giftdrop_domain::idempotency;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

/// Rows deleted per statement, so one sweep never holds long locks.
const BATCH: u32 = 1_000;

/// Deletes every expired key now, batch by batch; returns how many.
pub async fn sweep_idempotency_keys(db: &DatabaseConnection) -> anyhow::Result<u64> {
    let mut total = 0;
    loop {
        let deleted = idempotency::sweep(db, BATCH)
            .await
            .context("idempotency sweep failed")?;
        total += deleted;
        if deleted < u64::from(BATCH) {
            return Ok(total);
        }
    }
}

/// Sweeps every `period` until `shutdown`.
pub async fn run(db: DatabaseConnection, period: Duration, shutdown: CancellationToken) {
    crate::schedule::every("the idempotency sweep", period, shutdown, || async {
        let deleted = sweep_idempotency_keys(&db).await?;
        if deleted > 0 {
            metrics::counter!("giftdrop_idempotency_keys_swept_total").increment(deleted);
            tracing::info!(deleted, "expired idempotency keys swept");
        }
        Ok(())
    })
    .await;
}
