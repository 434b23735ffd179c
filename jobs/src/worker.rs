//! The worker process: every queue's apalis worker under one monitor.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use apalis::prelude::{BackendExt, Event, Monitor, MonitorContext, WorkerBuilder, WorkerError};
use giftdrop_domain::backoff::{Backoff, Outage};
use giftdrop_domain::giveaway::attempt::ReleaseGrant;
use giftdrop_domain::giveaway::verify::VerifyParticipant;
use giftdrop_domain::jobs::{JobPayload, SendEmail};
use tokio_util::sync::CancellationToken;

use crate::email::{EmailDeps, send_email};
use crate::grants::release_grant;
use crate::handler::ServiceDeps;
use crate::queues::JobQueues;
use crate::verify::verify_participant;

/// Worker tuning.
#[derive(Clone, Copy, Debug)]
pub struct WorkerOptions {
    /// How often an idle worker polls its queue.
    pub poll: Duration,
    /// How long shutdown waits for running jobs.
    pub grace: Duration,
}

/// Pauses before a job worker that lost its queue (Redis) starts again.
const RESTART: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));

/// The queue (job kind) of every worker, in the order they are registered,
/// with the task name its outage is logged under.
const QUEUES: [(&str, &str); 3] = [
    (SendEmail::KIND, "the send_email job worker"),
    (VerifyParticipant::KIND, "the verify_participant job worker"),
    (ReleaseGrant::KIND, "the release_grant job worker"),
];

/// The queue of the worker named `name` (`{queue}-{instance}-{restarts}`).
fn queue_of(name: &str) -> &str {
    name.split('-').next().unwrap_or(name)
}

/// Whether this process's job workers are polling their queues, for
/// readiness. Cheap to clone; empty until [`run`] has started them.
#[derive(Clone, Debug, Default)]
pub struct JobWorkers(Arc<OnceLock<MonitorContext>>);

impl JobWorkers {
    /// The queues whose worker is not polling now: not started yet, waiting
    /// to restart after losing Redis, or stopped. Empty when all are.
    pub fn down(&self) -> Vec<String> {
        let Some(monitor) = self.0.get() else {
            return QUEUES
                .iter()
                .map(|(queue, _)| (*queue).to_owned())
                .collect();
        };
        monitor
            .workers()
            .iter()
            .filter(|worker| !worker.is_ready())
            .map(|worker| queue_of(worker.name()).to_owned())
            .collect()
    }
}

/// Every worker's outage: apalis ends a worker's run when its backend
/// fails (Redis down), and the monitor restarts it; here is when, and what
/// is logged.
#[derive(Clone, Default)]
struct Restarts(Arc<Mutex<HashMap<&'static str, (Outage, Duration)>>>);

impl Restarts {
    fn with<T>(&self, name: &str, f: impl FnOnce(&mut Outage, &mut Duration) -> T) -> Option<T> {
        let (queue, task) = QUEUES.iter().find(|(queue, _)| *queue == queue_of(name))?;
        let mut outages = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (outage, pause) = outages
            .entry(queue)
            .or_insert_with(|| (Outage::new(task, RESTART), Duration::ZERO));
        Some(f(outage, pause))
    }

    /// The worker `name` stopped with `error`: logged, and its next start
    /// is put off by the backoff.
    fn failed(&self, name: &str, error: &WorkerError) {
        self.with(name, |outage, pause| *pause = outage.failed(error));
    }

    /// The worker `name` reached its queue (registered or beat its heart).
    fn reached(&self, name: &str) {
        self.with(name, |outage, _| outage.succeeded());
    }

    /// How long the next start of the worker of `queue` waits.
    fn pause(&self, queue: &str) -> Duration {
        self.with(queue, |_, pause| *pause).unwrap_or_default()
    }
}

/// Runs the workers until `shutdown`, then lets running jobs finish (up to
/// the grace period); unstarted prefetched jobs go back to their queue. A
/// worker whose queue fails (Redis down) is restarted with backoff, for as
/// long as the process runs; `health` tells which are polling.
pub async fn run(
    queues: JobQueues,
    email: EmailDeps,
    services: ServiceDeps,
    options: WorkerOptions,
    health: JobWorkers,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Worker names must be unique per run: apalis-redis refuses a name whose
    // last heartbeat is recent.
    let instance = uuid::Uuid::new_v4().simple().to_string();
    let restarts = Restarts::default();
    // The factory of one queue's worker: its `n`-th start (0: the first)
    // waits out the backoff of the failures before it.
    macro_rules! worker {
        ($job:ty, $storage:expr, $data:expr, $handler:expr) => {{
            let (storage, data, restarts) = ($storage.clone(), $data.clone(), restarts.clone());
            let instance = instance.clone();
            move |n: usize| {
                let pause = if n == 0 {
                    Duration::ZERO
                } else {
                    restarts.pause(<$job>::KIND)
                };
                WorkerBuilder::new(format!("{}-{instance}-{n}", <$job>::KIND))
                    .backend(
                        storage
                            .clone()
                            .poll_with_interval(options.poll)
                            .before_start(move |_| async move {
                                tokio::time::sleep(pause).await;
                                Ok(())
                            }),
                    )
                    .data(data.clone())
                    .build($handler)
            }
        }};
    }
    let reached = restarts.clone();
    let monitor = Monitor::new()
        .register(worker!(SendEmail, queues.send_email, email, send_email))
        .register(worker!(
            VerifyParticipant,
            queues.verify_participant,
            services,
            verify_participant
        ))
        .register(worker!(
            ReleaseGrant,
            queues.release_grant,
            services,
            release_grant
        ))
        .should_restart(move |worker, error| {
            if worker.is_shutting_down() {
                return false;
            }
            restarts.failed(worker.name(), error);
            true
        })
        .on_event(move |worker, event| {
            if matches!(event, Event::HeartBeat) {
                reached.reached(worker.name());
            }
        })
        .shutdown_timeout(options.grace);
    // Set once per process: a second `run` with the same handle keeps the first.
    let _ = health.0.set(monitor.context());
    monitor
        .run_with_signal(async move {
            shutdown.cancelled().await;
            Ok(())
        })
        .await
        .map_err(|e| anyhow::anyhow!("job workers stopped with an error: {e}"))
}
