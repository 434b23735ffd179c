//! The end of every test (see `harness.rs`).
//!
//! When the body passed:
//! 1. the apps it still held keep running while they have work they can
//!    move now (an `ops.outbox` row due, a job waiting or running);
//! 2. then they stop;
//! 3. what they could not finish is drained: jobs that stopped (or killed)
//!    workers had taken go back to their queue, as apalis does after its
//!    orphan window, outbox rows waiting out a backoff are made due, as the
//!    relay's sweep would later, and a drain worker (job workers and relay,
//!    started with the test's configuration, its email written to the mail
//!    directory) runs until nothing is left;
//! 4. nothing may be left: no outbox row, no job waiting, scheduled or
//!    running, or the test fails naming each one, unless the test said it
//!    leaves work there (`TestApp::leaves_work`, `Scope::allow_leftovers`).
//!
//! Whatever the outcome, the apps stop, then every database the test
//! created is dropped, directly on the server and `WITH (FORCE)` (PgBouncer
//! may still pool connections to it), every key of its Redis namespaces is
//! deleted (that prefix only), and its temporary files (mail directories too) are removed.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::future::join_all;
use giftdrop::app::{self, Mode};
use giftdrop::config::{AppEnv, Config};
use redis::aio::MultiplexedConnection;
use sea_orm::sqlx::postgres::PgConnection;
use sea_orm::sqlx::{self, Connection, Row};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::databases::{connect, count, drop_database, execute, is_missing_database};
use super::harness::{Parked, Scope};
use super::namespaces::{delete_namespace, describe, jobs, redis_connection, requeue_taken};
use super::{database_name, direct_url, redis_url};

/// How long the test's own apps get to finish their work.
const LIVE_DRAIN: Duration = Duration::from_secs(15);
/// How long a drain worker gets.
const DRAIN: Duration = Duration::from_secs(15);
/// How long an app gets to stop before it is aborted.
const STOP: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(20);

/// Tears `scope` down; `Err` lists what the test left behind or what could
/// not be removed (printed instead when the body `panicked`).
pub async fn run(scope: &Scope, panicked: bool) -> Result<(), String> {
    let (parked, databases, namespaces, paths, configs, allowed) = {
        let mut state = scope.state();
        (
            std::mem::take(&mut state.dropped),
            std::mem::take(&mut state.databases),
            std::mem::take(&mut state.namespaces),
            std::mem::take(&mut state.paths),
            std::mem::take(&mut state.configs),
            std::mem::take(&mut state.leftovers_allowed),
        )
    };
    let mut problems = Vec::new();
    if panicked {
        stop(parked).await;
    } else {
        let checked = |places: &[String]| -> Vec<String> {
            places
                .iter()
                .filter(|place| !allowed.iter().any(|(allowed, _)| allowed == *place))
                .cloned()
                .collect()
        };
        match Probe::new(&checked(&databases), checked(&namespaces)).await {
            Ok(mut probe) => {
                problems.extend(drain(&mut probe, parked, &configs).await);
                probe.close().await;
            }
            Err(err) => {
                problems.push(err);
                stop(parked).await;
            }
        }
    }
    problems.extend(remove(&databases, &namespaces, &paths).await);
    if problems.is_empty() {
        return Ok(());
    }
    let report = format!(
        "the test's teardown found:\n{}\n(a test that leaves work on purpose says so: \
         `app.leaves_work(\"why\")`)",
        problems
            .iter()
            .map(|problem| format!("  - {problem}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    if panicked {
        eprintln!("{report}");
        return Ok(());
    }
    Err(report)
}

/// Steps 1 to 3 of the module's description; what is left.
async fn drain(probe: &mut Probe, parked: Vec<Parked>, configs: &[Config]) -> Vec<String> {
    let mut problems = Vec::new();
    let live = wait_quiet(probe, LIVE_DRAIN, true, |place| movable(place, &parked)).await;
    problems.extend(live.err());
    stop(parked).await;
    if let Err(err) = probe.recover().await {
        problems.push(err);
    }
    match probe.pending(false).await {
        Err(err) => problems.push(err),
        Ok(pending) if pending.is_empty() => {}
        Ok(pending) => {
            let mut drainers = Vec::new();
            for config in drain_configs(&pending, configs) {
                let shutdown = CancellationToken::new();
                let mode = Mode {
                    serve: false,
                    worker: true,
                    migrate: false,
                };
                match app::start(config.clone(), mode, shutdown.clone()).await {
                    Ok(running) => drainers.push(Parked {
                        shutdown,
                        running: Some(running),
                        config,
                        worker: true,
                    }),
                    Err(err) => problems.push(format!(
                        "no drain worker on {}: {err:#}",
                        database_name(&config)
                    )),
                }
            }
            let drained = wait_quiet(probe, DRAIN, false, |place| movable(place, &drainers)).await;
            problems.extend(drained.err());
            stop(drainers).await;
        }
    }
    match probe.leftovers().await {
        Ok(left) => problems.extend(left),
        Err(err) => problems.push(err),
    }
    problems
}

/// Cancels `apps` and waits until each stopped (aborted after [`STOP`]).
async fn stop(apps: Vec<Parked>) {
    for app in &apps {
        app.shutdown.cancel();
    }
    let stopping = apps.into_iter().filter_map(|app| {
        let running = app.running?;
        let database = database_name(&app.config).to_owned();
        Some(async move {
            if tokio::time::timeout(STOP, running.stopped()).await.is_err() {
                eprintln!("teardown: an app on {database} did not stop within {STOP:?}: aborted");
            }
        })
    });
    join_all(stopping).await;
}

/// A place holding work: a database's outbox or a namespace's queues.
enum Place {
    Outbox(String),
    Jobs(String),
}

/// Whether one of `apps`, still running, moves the work in `place`.
fn movable(place: &Place, apps: &[Parked]) -> bool {
    apps.iter()
        .filter(|app| app.running.is_some())
        .any(|app| match place {
            Place::Outbox(database) => {
                app.config.outbox_relay && database_name(&app.config) == database
            }
            Place::Jobs(namespace) => {
                app.worker
                    && app.config.redis_namespace == *namespace
                    && app.config.redis_url == redis_url()
            }
        })
}

/// A configuration for a drain worker of each pending place that has one
/// (those `AppOptions::new` made first).
fn drain_configs(pending: &[Place], configs: &[Config]) -> Vec<Config> {
    let mut chosen: Vec<Config> = Vec::new();
    for place in pending {
        let serves = |config: &Config| match place {
            Place::Outbox(database) => database_name(config) == database,
            Place::Jobs(namespace) => config.redis_namespace == *namespace,
        };
        if chosen.iter().any(serves) {
            continue;
        }
        if let Some(config) = configs.iter().find(|config| serves(config)) {
            let mut drain = config.clone();
            drain.database_url = direct_url(config);
            drain.database_migration_url = None;
            drain.database_pgbouncer = false;
            drain.redis_url = redis_url();
            drain.metrics_addr = None;
            drain.admin_email = None;
            drain.admin_password = None;
            drain.app_env = AppEnv::Development;
            drain.smtp_url = None;
            drain.outbox_relay = true;
            chosen.push(drain);
        }
    }
    chosen
}

/// Waits until no place holds work (`due_only`: work that is due now) that
/// `moves` says can move, or `within` passed.
async fn wait_quiet(
    probe: &mut Probe,
    within: Duration,
    due_only: bool,
    moves: impl Fn(&Place) -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        let pending = probe.pending(due_only).await?;
        if !pending.iter().any(&moves) || Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Connections to the test's outboxes and queues.
struct Probe {
    redis: MultiplexedConnection,
    /// Each database that exists and has an outbox, with a connection.
    outboxes: Vec<(String, PgConnection)>,
    namespaces: Vec<String>,
}

impl Probe {
    async fn new(databases: &[String], namespaces: Vec<String>) -> Result<Self, String> {
        let redis = redis_connection().await?;
        let mut outboxes = Vec::new();
        for database in databases {
            let mut conn = match connect(database).await {
                Ok(conn) => conn,
                Err(err) if is_missing_database(&err) => continue,
                Err(err) => return Err(format!("cannot connect to {database}: {err}")),
            };
            let has_outbox = "SELECT count(*) FROM pg_class WHERE oid = to_regclass('ops.outbox')";
            match count(&mut conn, has_outbox).await {
                Ok(1) => outboxes.push((database.clone(), conn)),
                Ok(_) => {}
                Err(err) => return Err(format!("cannot look at {database}: {err}")),
            }
        }
        Ok(Self {
            redis,
            outboxes,
            namespaces,
        })
    }

    /// The places holding work (`due_only`: work due now).
    async fn pending(&mut self, due_only: bool) -> Result<Vec<Place>, String> {
        let mut pending = Vec::new();
        let sql = if due_only {
            "SELECT count(*) FROM ops.outbox WHERE available_at <= now()"
        } else {
            "SELECT count(*) FROM ops.outbox"
        };
        for (database, conn) in &mut self.outboxes {
            let rows = count(conn, sql)
                .await
                .map_err(|err| format!("cannot count {database}'s outbox: {err}"))?;
            if rows > 0 {
                pending.push(Place::Outbox(database.clone()));
            }
        }
        for namespace in &self.namespaces {
            let jobs = jobs(&mut self.redis, namespace).await?;
            if jobs.iter().any(|job| job.due || !due_only) {
                pending.push(Place::Jobs(namespace.clone()));
            }
        }
        Ok(pending)
    }

    /// Once every app stopped: their taken jobs back in the queues, every
    /// outbox row due now.
    async fn recover(&mut self) -> Result<(), String> {
        for namespace in &self.namespaces {
            requeue_taken(&mut self.redis, namespace).await?;
        }
        for (database, conn) in &mut self.outboxes {
            let due = "UPDATE ops.outbox SET available_at = now() WHERE available_at > now()";
            execute(conn, due)
                .await
                .map_err(|err| format!("cannot update {database}'s outbox: {err}"))?;
        }
        Ok(())
    }

    /// Every outbox row and job left, described.
    async fn leftovers(&mut self) -> Result<Vec<String>, String> {
        let mut left = Vec::new();
        for (database, conn) in &mut self.outboxes {
            let rows = sqlx::raw_sql(
                "SELECT id, kind, target, attempts, coalesce(last_error, '') AS last_error, \
                 available_at::text AS due, left(payload::text, 300) AS payload \
                 FROM ops.outbox ORDER BY id",
            )
            .fetch_all(&mut *conn)
            .await
            .map_err(|err| format!("cannot read {database}'s outbox: {err}"))?;
            for row in rows {
                let text = |name: &str| row.try_get::<String, _>(name).unwrap_or_default();
                let id = row.try_get::<i64, _>("id").unwrap_or_default();
                let attempts = row.try_get::<i32, _>("attempts").unwrap_or_default();
                left.push(format!(
                    "{database}: ops.outbox row {id} undelivered ({} {}, {attempts} attempts, \
                     due {}, last error: {:?}): {}",
                    text("kind"),
                    text("target"),
                    text("due"),
                    text("last_error"),
                    text("payload"),
                ));
            }
        }
        for namespace in &self.namespaces {
            for job in jobs(&mut self.redis, namespace).await? {
                left.push(describe(&mut self.redis, &job).await?);
            }
        }
        Ok(left)
    }

    async fn close(self) {
        for (_, conn) in self.outboxes {
            let _ = conn.close().await;
        }
    }
}

/// Drops `databases`, deletes the keys of `namespaces`, removes
/// `paths`; what could not be removed.
async fn remove(databases: &[String], namespaces: &[String], paths: &[PathBuf]) -> Vec<String> {
    let mut problems = Vec::new();
    if !databases.is_empty() {
        match connect("postgres").await {
            Ok(mut admin) => {
                for database in databases {
                    if let Err(err) = drop_database(&mut admin, database).await {
                        problems.push(format!("{database} not dropped: {err}"));
                    }
                }
                let _ = admin.close().await;
            }
            Err(err) => problems.push(format!("databases not dropped: {err}")),
        }
    }
    if !namespaces.is_empty() {
        match redis_connection().await {
            Ok(mut redis) => {
                for namespace in namespaces {
                    if let Err(err) = delete_namespace(&mut redis, namespace).await {
                        problems.push(err);
                    }
                }
            }
            Err(err) => problems.push(format!("namespaces not deleted: {err}")),
        }
    }
    for path in paths {
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_file(path)
        };
        match removed {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                problems.push(format!("{} not removed: {err}", path.display()));
            }
            _ => {}
        }
    }
    problems
}
