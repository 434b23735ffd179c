//! The worker process: every queue's apalis worker under one monitor.

use std::time::Duration;

use apalis::prelude::{AbortError, Attempt, BackendExt, BoxDynError, Monitor, WorkerBuilder};
use giftdrop_domain::Services;
use tokio_util::sync::CancellationToken;

use crate::email::{EmailDeps, send_email};
use crate::grants::release_grant;
use crate::queues::JobQueues;
use crate::verify::verify_participant;

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

/// Worker tuning.
#[derive(Clone, Copy, Debug)]
pub struct WorkerOptions {
    /// How often an idle worker polls its queue.
    pub poll: Duration,
    /// How long shutdown waits for running jobs.
    pub grace: Duration,
}

/// Runs the workers until `shutdown`, then lets running jobs finish (up to
/// the grace period); unstarted prefetched jobs go back to their queue.
pub async fn run(
    queues: JobQueues,
    email: EmailDeps,
    services: ServiceDeps,
    options: WorkerOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Worker names must be unique per run: apalis-redis refuses a name whose
    // last heartbeat is recent.
    let instance = uuid::Uuid::new_v4().simple().to_string();
    let emails = queues.send_email.clone();
    let checks = queues.verify_participant.clone();
    let checker = instance.clone();
    let releases = queues.release_grant.clone();
    let releaser = instance.clone();
    let verify = services.clone();
    Monitor::new()
        .register(move |restarts| {
            WorkerBuilder::new(format!("send_email-{instance}-{restarts}"))
                .backend(emails.clone().poll_with_interval(options.poll))
                .data(email.clone())
                .build(send_email)
        })
        .register(move |restarts| {
            WorkerBuilder::new(format!("verify_participant-{checker}-{restarts}"))
                .backend(checks.clone().poll_with_interval(options.poll))
                .data(verify.clone())
                .build(verify_participant)
        })
        .register(move |restarts| {
            WorkerBuilder::new(format!("release_grant-{releaser}-{restarts}"))
                .backend(releases.clone().poll_with_interval(options.poll))
                .data(services.clone())
                .build(release_grant)
        })
        .shutdown_timeout(options.grace)
        .run_with_signal(async move {
            shutdown.cancelled().await;
            Ok(())
        })
        .await
        .map_err(|e| anyhow::anyhow!("job workers stopped with an error: {e}"))
}
