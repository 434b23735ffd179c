//! Retrying a dependency that is down: exponential backoff with jitter, and
//! logging an outage once rather than on every failed try.
//!
//! Every loop that reaches Postgres or Redis on its own (the worker
//! schedules, the outbox relay, the pub/sub connection, the job workers)
//! keeps an [`Outage`]. The first failure is one `ERROR` (one Sentry event);
//! each later try that fails too is one `WARN` saying how long it has been
//! down and when the next try is; the first success after failures is one
//! `INFO`. Tries are spaced by [`Backoff`], so a dependency that stays down
//! costs a few log lines and connection attempts a minute, not four a second.

use std::fmt::Display;
use std::time::{Duration, Instant};

use rand::Rng;

/// Pauses between tries: `first`, doubling with every consecutive failure,
/// never more than `cap`, each shortened by a random part of up to half
/// (so processes that lost a dependency together do not retry in step).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
}

impl Backoff {
    /// Starts at `first` (at least 1 ms) and stops growing at `cap`.
    pub const fn new(first: Duration, cap: Duration) -> Self {
        let first = if first.as_nanos() < 1_000_000 {
            Duration::from_millis(1)
        } else {
            first
        };
        let cap = if cap.as_nanos() < first.as_nanos() {
            first
        } else {
            cap
        };
        Self { first, cap }
    }

    /// The pause after the `failures`-th consecutive failure (1 for the
    /// first), with `jitter` in `0.0..=1.0` (0: the full step, 1: half of
    /// it). Pure, for tests; [`Self::pause`] draws the jitter.
    pub fn delay(&self, failures: u32, jitter: f64) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        let step = self
            .first
            .checked_mul(1 << doublings)
            .unwrap_or(self.cap)
            .min(self.cap);
        step.mul_f64(1.0 - jitter.clamp(0.0, 1.0) / 2.0)
    }

    /// [`Self::delay`] with a random jitter.
    pub fn pause(&self, failures: u32) -> Duration {
        self.delay(failures, rand::rng().random_range(0.0..=1.0))
    }
}

/// The failure state of one loop that depends on something that can go
/// down, named `task` in logs and metrics
/// (`giftdrop_dependency_failures_total{task}`, `giftdrop_task_down{task}`).
#[derive(Debug)]
pub struct Outage {
    task: &'static str,
    backoff: Backoff,
    failures: u32,
    since: Option<Instant>,
}

impl Outage {
    /// Nothing failed yet.
    pub fn new(task: &'static str, backoff: Backoff) -> Self {
        Self {
            task,
            backoff,
            failures: 0,
            since: None,
        }
    }

    /// Consecutive failures so far (0 while it works).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// True between a failure and the next success.
    pub fn is_down(&self) -> bool {
        self.failures > 0
    }

    /// Records a failed try and logs it (the first as `ERROR`, the others
    /// as `WARN`); returns how long to wait before the next one. Give
    /// `error` as text without a backtrace (`{err:#}` of an `anyhow`
    /// error), never its `Debug`: resolving a backtrace on every try is
    /// what made a worker's memory grow while its database was gone.
    pub fn failed(&mut self, error: &dyn Display) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let since = *self.since.get_or_insert_with(Instant::now);
        let pause = self.backoff.pause(self.failures);
        let retry_in_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX);
        metrics::counter!("giftdrop_dependency_failures_total", "task" => self.task).increment(1);
        if self.failures == 1 {
            metrics::gauge!("giftdrop_task_down", "task" => self.task).set(1.0);
            tracing::error!(task = self.task, %error, retry_in_ms, "{} failed; retrying with backoff", self.task);
        } else {
            tracing::warn!(
                task = self.task,
                %error,
                failures = self.failures,
                down_for_secs = since.elapsed().as_secs(),
                retry_in_ms,
                "{} still failing",
                self.task
            );
        }
        pause
    }

    /// Records a successful try; logs the recovery once, after failures.
    pub fn succeeded(&mut self) {
        if let Some(since) = self.since.take() {
            metrics::gauge!("giftdrop_task_down", "task" => self.task).set(0.0);
            tracing::info!(
                task = self.task,
                failures = self.failures,
                down_for_secs = since.elapsed().as_secs(),
                "{} works again",
                self.task
            );
        }
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_pause_doubles_per_failure_up_to_the_cap() {
        let backoff = Backoff::new(250 * MS, 30_000 * MS);
        let full: Vec<Duration> = (1..=10).map(|n| backoff.delay(n, 0.0)).collect();
        assert_eq!(
            full,
            [
                250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000
            ]
            .map(|ms| ms * MS)
        );
        assert_eq!(backoff.delay(u32::MAX, 0.0), 30_000 * MS, "no overflow");
        assert_eq!(backoff.delay(0, 0.0), 250 * MS, "0 counts as the first");
    }

    #[test]
    fn jitter_takes_off_at_most_half() {
        let backoff = Backoff::new(MS * 1_000, MS * 8_000);
        assert_eq!(backoff.delay(2, 1.0), 1_000 * MS);
        assert_eq!(backoff.delay(2, 0.5), 1_500 * MS);
        assert_eq!(backoff.delay(2, 7.0), 1_000 * MS, "clamped");
        for failures in 1..20 {
            let pause = backoff.pause(failures);
            let full = backoff.delay(failures, 0.0);
            assert!(pause <= full && pause >= full / 2, "{pause:?} vs {full:?}");
        }
    }

    #[test]
    fn an_outage_counts_failures_until_a_success() {
        let mut outage = Outage::new("test", Backoff::new(MS * 100, MS * 1_000));
        assert!(!outage.is_down());
        let first = outage.failed(&"down");
        let second = outage.failed(&"down");
        assert!(first <= 100 * MS && second <= 200 * MS && second >= 100 * MS);
        assert_eq!(outage.failures(), 2);
        outage.succeeded();
        assert!(!outage.is_down());
        assert!(outage.failed(&"down again") <= 100 * MS, "starts over");
    }
}
