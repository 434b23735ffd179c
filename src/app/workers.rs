//! The job workers of a process, and the periodic sweeps that run with
//! them.

use std::sync::Arc;
use std::time::Duration;

use giftdrop_domain::Services;
use giftdrop_jobs::JobQueues;
use giftdrop_jobs::email::{EmailDeps, SentLog};
use giftdrop_jobs::mail::{FileMailer, Mailer, SmtpMailer};
use giftdrop_jobs::worker::{JobWorkers, WorkerOptions};
use secrecy::ExposeSecret;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// Starts the job workers and the sweeps on `tasks`, until `shutdown`;
/// the workers, for readiness.
pub(super) fn spawn(
    config: &Config,
    services: &Services,
    queues: &JobQueues,
    tasks: &mut JoinSet<anyhow::Result<()>>,
    shutdown: &CancellationToken,
) -> anyhow::Result<JobWorkers> {
    let email = EmailDeps {
        mailer: mailer(config)?,
        max_attempts: usize::try_from(config.job_max_attempts.max(1)).unwrap_or(1),
        sent: SentLog {
            redis: services.redis.clone(),
            ns: services.ns.clone(),
        },
    };
    let options = WorkerOptions {
        poll: Duration::from_millis(config.job_poll_ms.max(10)),
        grace: Duration::from_secs(config.shutdown_grace_secs),
    };
    tasks.spawn({
        let db = services.db.clone();
        let period = Duration::from_secs(config.idempotency_sweep_secs.max(1));
        let token = shutdown.child_token();
        async move {
            giftdrop_jobs::sweep::run(db, period, token).await;
            Ok(())
        }
    });
    tasks.spawn({
        let services = services.clone();
        let period = Duration::from_secs(config.card_expiry_sweep_secs.max(1));
        let token = shutdown.child_token();
        async move {
            giftdrop_jobs::expiry::run(services, period, token).await;
            Ok(())
        }
    });
    tasks.spawn({
        let services = services.clone();
        let period = Duration::from_millis(config.event_clock_ms.max(10));
        let token = shutdown.child_token();
        async move {
            giftdrop_jobs::lifecycle::run(services, period, token).await;
            Ok(())
        }
    });
    tasks.spawn({
        let services = services.clone();
        let period = Duration::from_secs(config.payout_reconcile_secs.max(1));
        let token = shutdown.child_token();
        async move {
            giftdrop_jobs::payouts::run(services, period, token).await;
            Ok(())
        }
    });
    let jobs = giftdrop_jobs::handler::ServiceDeps {
        services: services.clone(),
        max_attempts: usize::try_from(config.job_max_attempts.max(1)).unwrap_or(1),
    };
    let workers = giftdrop_jobs::worker::JobWorkers::default();
    tasks.spawn(giftdrop_jobs::worker::run(
        queues.clone(),
        email,
        jobs,
        options,
        workers.clone(),
        shutdown.child_token(),
    ));
    Ok(workers)
}

fn mailer(config: &Config) -> anyhow::Result<Arc<dyn Mailer>> {
    match &config.smtp_url {
        Some(url) => Ok(Arc::new(SmtpMailer::new(
            url.expose_secret(),
            &config.mail_from,
        )?)),
        None if config.is_production() => anyhow::bail!("SMTP_URL must be set in production"),
        None => Ok(Arc::new(FileMailer::new(
            &config.mail_dir,
            &config.mail_from,
        )?)),
    }
}
