//! Building the process: pools, services, schema, router, relay, workers.

mod services;
mod serving;
mod workers;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use giftdrop_domain::Services;
use giftdrop_domain::identity;
use giftdrop_domain::ratelimit::RateLimits;
use giftdrop_jobs::JobQueues;
use giftdrop_jobs::relay::Relay;
use secrecy::ExposeSecret;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cli::Command;
use crate::config::Config;
use crate::http::LiveRuntime;
use crate::http::fanout::Executions;

/// What this process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    /// HTTP API and subscriptions.
    pub serve: bool,
    /// Job workers.
    pub worker: bool,
    /// Create the database if missing and migrate before starting.
    pub migrate: bool,
}

impl From<Command> for Mode {
    fn from(command: Command) -> Self {
        match command {
            Command::Serve => Mode {
                serve: true,
                worker: false,
                migrate: false,
            },
            Command::Worker => Mode {
                serve: false,
                worker: true,
                migrate: false,
            },
            Command::All | Command::Migrate => Mode {
                serve: true,
                worker: true,
                migrate: true,
            },
        }
    }
}

/// A started process.
pub struct Running {
    /// Where HTTP listens, when serving.
    pub http_addr: Option<SocketAddr>,
    /// Where `/metrics` listens, when serving with `METRICS_ADDR`.
    pub metrics_addr: Option<SocketAddr>,
    /// The services, for tests and tools.
    pub services: Services,
    /// The job queues.
    pub queues: JobQueues,
    /// Snapshot subscriptions running for all their sockets (when serving).
    pub shared: Executions,
    /// Statements run on this process's pool.
    pub db_statements: crate::db::StatementCount,
    tasks: JoinSet<anyhow::Result<()>>,
    /// Where WebSocket connections run (when serving); stopped last.
    _live: Option<LiveRuntime>,
}

impl Running {
    /// Waits for every part to stop (after the shutdown token is cancelled).
    pub async fn stopped(mut self) -> anyhow::Result<()> {
        let mut result = Ok(());
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(err)) => result = Err(err),
                Err(err) => result = Err(anyhow::Error::new(err).context("a task panicked")),
            }
        }
        result
    }
}

/// Starts `mode` with `config`; everything stops when `shutdown` is cancelled.
pub async fn start(
    config: Config,
    mode: Mode,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    crate::install_crypto_provider();
    crate::telemetry::metrics();
    let rate_limits =
        RateLimits::parse(&config.rate_limits).map_err(|e| anyhow::anyhow!("RATE_LIMITS: {e}"))?;
    // Settings that can be wrong are checked before any connection is made.
    config.refuse_unsafe(mode.serve)?;
    let listener = if mode.serve {
        Some(
            tokio::net::TcpListener::bind(config.http_addr)
                .await
                .with_context(|| format!("failed to listen on {}", config.http_addr))?,
        )
    } else {
        None
    };
    let metrics_listener = match config.metrics_addr.filter(|_| mode.serve) {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("failed to listen on METRICS_ADDR {addr}"))?,
        ),
        None => None,
    };
    let listening = listener.as_ref().and_then(|l| l.local_addr().ok());
    let checked = services::check(&config, listening)?;
    if mode.migrate {
        crate::db::prepare(config.migration_url()).await?;
    }
    let (services, db_statements) =
        services::connect(&config, checked, rate_limits, &shutdown).await?;
    if let (Some(email), Some(password)) = (&config.admin_email, &config.admin_password) {
        identity::bootstrap_admin(&services, email, password.expose_secret())
            .await
            .map_err(|e| {
                anyhow::anyhow!("failed to bootstrap the admin from ADMIN_EMAIL: {e:?}")
            })?;
        tracing::info!(email = %email, "bootstrap admin ready");
    }
    let queues = JobQueues::new(services.redis.clone(), &services.ns);
    let mut tasks = JoinSet::new();

    if config.outbox_relay {
        let relay = Relay::new(&services, queues.clone());
        let token = shutdown.child_token();
        let sweep = Duration::from_millis(config.outbox_sweep_ms);
        tasks.spawn(async move {
            relay.run(sweep, token).await;
            Ok(())
        });
    }

    // The job workers of this process, for readiness (when it serves too).
    let job_workers = if mode.worker {
        Some(workers::spawn(
            &config, &services, &queues, &mut tasks, &shutdown,
        )?)
    } else {
        None
    };

    // Shared executions run on this runtime, the sockets on the live one.
    let shared = Executions::new(config.ws_log_window, tokio::runtime::Handle::current());
    let (http_addr, live) = match listener {
        Some(listener) => {
            let http = serving::Http {
                listener,
                services: services.clone(),
                executions: shared.clone(),
                job_workers,
            };
            let (addr, live) = serving::http(&config, http, &mut tasks, &shutdown)?;
            (Some(addr), Some(live))
        }
        None => (None, None),
    };

    let metrics_addr = match metrics_listener {
        Some(listener) => Some(serving::metrics(listener, &config, &mut tasks, &shutdown)?),
        None => None,
    };

    Ok(Running {
        http_addr,
        metrics_addr,
        services,
        queues,
        shared,
        db_statements,
        tasks,
        _live: live,
    })
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
