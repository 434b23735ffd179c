//! Periodic housekeeping: deleting expired idempotency keys.
//!
//! Runs in every worker process. Concurrent sweeps from several workers are
//! harmless: each deletes a bounded batch of already-expired rows.

use std::time::Duration;

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
            .map_err(|e| anyhow::anyhow!("idempotency sweep failed: {e:?}"))?;
        total += deleted;
        if deleted < u64::from(BATCH) {
            return Ok(total);
        }
    }
}

/// Sweeps every `period` until `shutdown`.
pub async fn run(db: DatabaseConnection, period: Duration, shutdown: CancellationToken) {
    crate::schedule::every(period, shutdown, || async {
        match sweep_idempotency_keys(&db).await {
            Ok(0) => {}
            Ok(deleted) => {
                metrics::counter!("giftdrop_idempotency_keys_swept_total").increment(deleted);
                tracing::info!(deleted, "expired idempotency keys swept");
            }
            Err(err) => tracing::error!(error = format!("{err:#}"), "idempotency sweep failed"),
        }
    })
    .await;
}
