//! What every job handler shares: the dependencies of a job that only
//! calls a use case, and how a job's outcome is counted, logged and turned
//! into a retry or the dead set.

use apalis::prelude::{AbortError, Attempt, BoxDynError};
use giftdrop_domain::Services;

/// What a job that only calls a use case needs.
#[derive(Clone)]
pub struct ServiceDeps {
    /// The services (database, Redis, verifier).
    pub services: Services,
    /// Runs before the job is given up and moved to the dead set.
    pub max_attempts: usize,
}

/// A job's `outcome` as its result, counted and logged: a failure is
/// retried, and the last allowed one (whose consequence is `then`) is
/// reported with the correlation id and aborted to the dead set.
pub(crate) fn report<E: std::fmt::Debug + Into<BoxDynError>>(
    kind: &'static str,
    then: &str,
    correlation_id: &str,
    attempt: &Attempt,
    max_attempts: usize,
    outcome: Result<(), E>,
) -> Result<(), BoxDynError> {
    match outcome {
        Ok(()) => {
            metrics::counter!("giftdrop_jobs_total", "kind" => kind, "outcome" => "ok")
                .increment(1);
            Ok(())
        }
        Err(err) if attempt.current() >= max_attempts => {
            metrics::counter!("giftdrop_jobs_total", "kind" => kind, "outcome" => "dead")
                .increment(1);
            tracing::error!(error = ?err, %correlation_id, "{kind} failed on its last attempt; {then}");
            Err(AbortError::new(err).into())
        }
        Err(err) => {
            metrics::counter!("giftdrop_jobs_total", "kind" => kind, "outcome" => "retry")
                .increment(1);
            tracing::warn!(error = ?err, "{kind} failed; it will be retried");
            Err(err.into())
        }
    }
}
