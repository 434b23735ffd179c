//! A circuit breaker: after `threshold` consecutive failures of a
//! dependency, stop calling it for `cooldown`, then let ONE trial call
//! through; its success closes the breaker, its failure re-opens it.
//!
//! Used where a dependency being down must not cost every request a
//! timeout: the Redis cache and rate limiter (which then read through or
//! allow), and the payment provider (which then fails fast).

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
struct State {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    trial_started: Option<Instant>,
}

/// Why a call through a [`Breaker`] failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure<E> {
    /// The call's own error.
    #[error("{0}")]
    Failed(E),
    /// No answer within the timeout.
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
}

/// A shared breaker; clones share state.
#[derive(Clone, Debug)]
pub struct Breaker {
    name: &'static str,
    threshold: u32,
    cooldown: Duration,
    state: Arc<Mutex<State>>,
}

impl Breaker {
    /// Opens after `threshold` consecutive failures, for `cooldown`.
    pub fn new(name: &'static str, threshold: u32, cooldown: Duration) -> Self {
        Self {
            name,
            threshold: threshold.max(1),
            cooldown,
            state: Arc::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Every critical section leaves the state consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// True when a call may be made now.
    pub fn allow(&self) -> bool {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> bool {
        let mut state = self.state();
        let Some(open_until) = state.open_until else {
            return true;
        };
        if now < open_until {
            return false;
        }
        // Half open: one trial at a time (a trial that never reported, e.g.
        // a cancelled request, stops blocking others after a cooldown).
        match state.trial_started {
            Some(started) if now.duration_since(started) < self.cooldown => false,
            _ => {
                state.trial_started = Some(now);
                true
            }
        }
    }

    /// Runs `call`, bounded by `timeout`, and reports its outcome. (Whether
    /// to call at all is [`Self::allow`]'s answer.)
    pub async fn call<T, E>(
        &self,
        timeout: Duration,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, Failure<E>> {
        let result = match tokio::time::timeout(timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(Failure::Failed(err)),
            Err(_) => Err(Failure::TimedOut(timeout)),
        };
        match &result {
            Ok(_) => self.success(),
            Err(_) => self.failure(),
        }
        result
    }

    /// Reports a successful call.
    pub fn success(&self) {
        let mut state = self.state();
        if state.open_until.is_some() {
            tracing::info!(
                breaker = self.name,
                "circuit closed: the dependency answers again"
            );
        }
        *state = State::default();
    }

    /// Reports a failed call.
    pub fn failure(&self) {
        self.failure_at(Instant::now());
    }

    fn failure_at(&self, now: Instant) {
        let mut state = self.state();
        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
        state.trial_started = None;
        if state.consecutive_failures >= self.threshold {
            if state.open_until.is_none_or(|until| until <= now) {
                metrics::counter!("giftdrop_circuit_opened_total", "breaker" => self.name)
                    .increment(1);
                tracing::warn!(
                    breaker = self.name,
                    cooldown_ms = u64::try_from(self.cooldown.as_millis()).unwrap_or(u64::MAX),
                    "circuit open: calls are skipped until the cooldown ends"
                );
            }
            state.open_until = Some(now + self.cooldown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_lets_one_trial_through_after_the_cooldown() {
        let breaker = Breaker::new("test", 3, Duration::from_secs(30));
        let t0 = Instant::now();
        for _ in 0..2 {
            assert!(breaker.allow_at(t0));
            breaker.failure_at(t0);
        }
        assert!(breaker.allow_at(t0), "two failures do not open it");
        breaker.failure_at(t0);
        assert!(!breaker.allow_at(t0), "the third does");
        assert!(!breaker.allow_at(t0 + Duration::from_secs(29)));

        let later = t0 + Duration::from_secs(30);
        assert!(breaker.allow_at(later), "one trial after the cooldown");
        assert!(!breaker.allow_at(later), "only one");
        breaker.failure_at(later);
        assert!(
            !breaker.allow_at(later + Duration::from_secs(1)),
            "a failed trial re-opens it"
        );

        let again = later + Duration::from_secs(30);
        assert!(breaker.allow_at(again));
        breaker.success();
        assert!(breaker.allow_at(again) && breaker.allow_at(again), "closed");
    }

    #[test]
    fn a_success_resets_the_count_and_a_lost_trial_does_not_block_forever() {
        let breaker = Breaker::new("test", 2, Duration::from_secs(1));
        let t0 = Instant::now();
        breaker.failure_at(t0);
        breaker.success();
        breaker.failure_at(t0);
        assert!(breaker.allow_at(t0), "not consecutive");
        breaker.failure_at(t0);
        assert!(!breaker.allow_at(t0));
        let trial = t0 + Duration::from_secs(1);
        assert!(breaker.allow_at(trial));
        // The trial never reports; a cooldown later another may try.
        assert!(!breaker.allow_at(trial + Duration::from_millis(500)));
        assert!(breaker.allow_at(trial + Duration::from_secs(1)));
    }
}
