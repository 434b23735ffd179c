//! The worker process: every queue's apalis worker under one monitor.

use std::time::Duration;

use apalis::prelude::{BackendExt, Monitor, WorkerBuilder};
use tokio_util::sync::CancellationToken;

use crate::email::{EmailDeps, send_email};
use crate::queues::JobQueues;
use crate::verify::{VerifyDeps, verify_participant};

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
    verify: VerifyDeps,
    options: WorkerOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Worker names must be unique per run: apalis-redis refuses a name whose
    // last heartbeat is recent.
    let instance = uuid::Uuid::new_v4().simple().to_string();
    let emails = queues.send_email.clone();
    let checks = queues.verify_participant.clone();
    let checker = instance.clone();
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
        .shutdown_timeout(options.grace)
        .run_with_signal(async move {
            shutdown.cancelled().await;
            Ok(())
        })
        .await
        .map_err(|e| anyhow::anyhow!("job workers stopped with an error: {e}"))
}
