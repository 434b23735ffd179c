//! Periodic work in worker processes: one pass every period until shutdown,
//! backing off while the passes fail.

use std::future::Future;
use std::time::Duration;

use giftdrop_domain::backoff::{Backoff, Outage};
use tokio_util::sync::CancellationToken;

/// The longest pause between two tries of a failing pass (unless the
/// period itself is longer).
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The backoff of a loop that runs every `period`: from the period,
/// doubling per consecutive failure, up to [`MAX_BACKOFF`] (or the period).
pub fn backoff(period: Duration) -> Backoff {
    Backoff::new(period, period.max(MAX_BACKOFF))
}

/// Runs `pass` every `period` (the first right away) until `shutdown`. A
/// pass that overruns delays the next one rather than stacking them. A
/// failing pass (its dependency down) is retried with exponential backoff
/// and jitter instead, and logged once as an `ERROR`, then as one `WARN`
/// per try, and once as an `INFO` when it works again (see [`Outage`]);
/// `task` names it in those lines and in metrics.
pub async fn every<F, Fut>(
    task: &'static str,
    period: Duration,
    shutdown: CancellationToken,
    mut pass: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut outage = Outage::new(task, backoff(period));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        metrics::counter!("giftdrop_schedule_passes_total", "task" => task).increment(1);
        match pass().await {
            Ok(()) => outage.succeeded(),
            Err(err) => {
                let pause = outage.failed(&format_args!("{err:#}"));
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
                // The next pass comes right after the pause, not a period later.
                ticks.reset_immediately();
            }
        }
    }
}
