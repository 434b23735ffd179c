//! Building the process: pools, services, schema, router, relay, workers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use giftdrop_domain::cache::Cache;
use giftdrop_domain::giftcard::pin::CardSecrets;
use giftdrop_domain::giveaway::verify::SocialVerifier;
use giftdrop_domain::identity::{self, TokenIssuer};
use giftdrop_domain::keys::Namespace;
use giftdrop_domain::outbox::OutboxSignal;
use giftdrop_domain::payments::Payments;
use giftdrop_domain::payments::http::{HttpProvider, HttpProviderConfig};
use giftdrop_domain::payments::sandbox::{KnobSettings, SandboxKnobs, SandboxProvider};
use giftdrop_domain::pubsub::Hub;
use giftdrop_domain::ratelimit::{RateLimiter, RateLimits};
use giftdrop_domain::{Services, Settings};
use giftdrop_graphql::SchemaOptions;
use giftdrop_jobs::JobQueues;
use giftdrop_jobs::email::{EmailDeps, SentLog};
use giftdrop_jobs::mail::{FileMailer, Mailer, SmtpMailer};
use giftdrop_jobs::relay::Relay;
use giftdrop_jobs::worker::WorkerOptions;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::{ExposeSecret, SecretString};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cli::Command;
use crate::config::{Config, PaymentProvider};
use crate::http::fanout::Executions;
use crate::http::{self, AppState};

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
    _live: Option<http::LiveRuntime>,
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

async fn redis_connection(client: &redis::Client) -> anyhow::Result<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(1));
    ConnectionManager::new_with_config(client.clone(), config)
        .await
        .context("failed to connect to Redis")
}

fn secret_or_random(value: Option<&SecretString>, name: &str) -> SecretString {
    match value {
        Some(secret) if !secret.expose_secret().is_empty() => secret.clone(),
        _ => {
            tracing::warn!("{name} is not set: using a random secret for this process only");
            SecretString::from(format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            ))
        }
    }
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

/// The public base URL: `PUBLIC_URL`, else the listener's port on localhost.
fn public_url(config: &Config, listening: Option<SocketAddr>) -> String {
    if let Some(url) = config.public_url.as_deref().filter(|u| !u.is_empty()) {
        return url.trim_end_matches('/').to_owned();
    }
    let addr = listening.unwrap_or(config.http_addr);
    if addr.ip().is_unspecified() {
        format!("http://localhost:{}", addr.port())
    } else {
        format!("http://{addr}")
    }
}

/// The social verifier `SOCIAL_VERIFIER_URL` names; without one, everyone
/// is verified at once, which production refuses.
fn social_verifier(config: &Config) -> anyhow::Result<SocialVerifier> {
    match config
        .social_verifier_url
        .as_deref()
        .filter(|u| !u.is_empty())
    {
        Some(url) => SocialVerifier::http(url.to_owned(), Duration::from_secs(10)),
        None if config.is_production() => {
            anyhow::bail!("SOCIAL_VERIFIER_URL must be set in production")
        }
        None => {
            tracing::warn!("SOCIAL_VERIFIER_URL is not set: every participant is verified at once");
            Ok(SocialVerifier::Instant)
        }
    }
}

/// The pin keys: `CARD_SECRET`, required in production. Elsewhere a fixed
/// development key keeps cards redeemable across restarts.
fn card_secrets(config: &Config) -> anyhow::Result<CardSecrets> {
    match &config.card_secret {
        Some(secret) if secret.expose_secret().len() >= 16 => Ok(CardSecrets::new(secret)),
        Some(_) => anyhow::bail!("CARD_SECRET must be at least 16 characters"),
        None if config.is_production() => anyhow::bail!("CARD_SECRET must be set in production"),
        None => {
            tracing::warn!(
                "CARD_SECRET is not set: using the development key (never in production)"
            );
            Ok(CardSecrets::new(&SecretString::from(
                "giftdrop-development-card-secret".to_owned(),
            )))
        }
    }
}

fn payments(config: &Config, public_url: String) -> anyhow::Result<Payments> {
    let timeout = Duration::from_millis(config.payment_provider_timeout_ms.max(1));
    let cooldown = Duration::from_millis(config.payment_breaker_cooldown_ms.max(1));
    match config.payment_provider {
        PaymentProvider::Sandbox => {
            let knobs = Arc::new(SandboxKnobs::new(KnobSettings {
                latency_ms: config.sandbox_latency_ms,
                failure_percent: config.sandbox_failure_percent,
            }));
            Ok(Payments::new(
                Arc::new(SandboxProvider {
                    base_url: public_url,
                    knobs: knobs.clone(),
                }),
                secret_or_random(
                    config.payment_webhook_secret.as_ref(),
                    "PAYMENT_WEBHOOK_SECRET",
                ),
                Some(knobs),
                timeout,
                cooldown,
            ))
        }
        PaymentProvider::Http => {
            let required = |value: Option<&SecretString>, name: &str| {
                value
                    .filter(|s| !s.expose_secret().is_empty())
                    .cloned()
                    .with_context(|| format!("{name} must be set when PAYMENT_PROVIDER=http"))
            };
            let base_url = config
                .payment_provider_url
                .clone()
                .filter(|u| !u.is_empty())
                .context("PAYMENT_PROVIDER_URL must be set when PAYMENT_PROVIDER=http")?;
            let provider = HttpProvider::new(HttpProviderConfig {
                base_url,
                secret: required(
                    config.payment_provider_secret.as_ref(),
                    "PAYMENT_PROVIDER_SECRET",
                )?,
                connect_timeout: timeout.min(Duration::from_secs(3)),
                timeout,
            })
            .context("failed to build the payment provider client")?;
            Ok(Payments::new(
                Arc::new(provider),
                required(
                    config.payment_webhook_secret.as_ref(),
                    "PAYMENT_WEBHOOK_SECRET",
                )?,
                None,
                timeout,
                cooldown,
            ))
        }
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
    let payments = payments(&config, public_url(&config, listening))?;
    let card_secrets = card_secrets(&config)?;
    if mode.migrate {
        crate::db::prepare(config.migration_url()).await?;
    }
    let pooling = crate::db::Pooling::from_pgbouncer(config.database_pgbouncer);
    let (db, db_statements) = crate::db::connect_counted(&config.database_url, pooling).await?;
    let redis_client =
        redis::Client::open(config.redis_url.as_str()).context("REDIS_URL is invalid")?;
    let redis = redis_connection(&redis_client).await?;
    let ns = Namespace::new(config.redis_namespace.clone());
    let hub = Hub::start(redis_client, ns.clone(), shutdown.child_token());
    let jwt_secret = secret_or_random(config.jwt_secret.as_ref(), "JWT_SECRET");
    let services = Services {
        db: db.clone(),
        redis: redis.clone(),
        hub: hub.clone(),
        outbox: OutboxSignal::default(),
        tokens: TokenIssuer::new(
            &jwt_secret,
            chrono::Duration::hours(i64::from(config.jwt_ttl_hours)),
        ),
        limiter: RateLimiter::new(redis.clone(), ns.clone(), rate_limits),
        cache: Cache::new(redis.clone(), ns.clone()),
        payments,
        card_secrets,
        wallet_ids: giftdrop_domain::ledger::WalletIds::default(),
        on_sale: giftdrop_domain::giftcard::products::OnSale::default(),
        verifier: social_verifier(&config)?,
        budget: giftdrop_domain::giveaway::attempt::Budget::default(),
        settings: Settings {
            currency: config.platform_currency.clone(),
            service_rate_bps: config.service_rate_bps,
            deposit_fee_bps: config.deposit_fee_bps,
            topup_max: giftdrop_domain::money::Amount::new(config.topup_max_amount)
                .context("TOPUP_MAX_AMOUNT")?,
        },
        ns: ns.clone(),
    };
    if let (Some(email), Some(password)) = (&config.admin_email, &config.admin_password) {
        identity::bootstrap_admin(&services, email, password.expose_secret())
            .await
            .map_err(|e| {
                anyhow::anyhow!("failed to bootstrap the admin from ADMIN_EMAIL: {e:?}")
            })?;
        tracing::info!(email = %email, "bootstrap admin ready");
    }
    let queues = JobQueues::new(redis.clone(), &ns);
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
    let mut job_workers = None;
    if mode.worker {
        let email = EmailDeps {
            mailer: mailer(&config)?,
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
            let db = db.clone();
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
        let jobs = giftdrop_jobs::worker::ServiceDeps {
            services: services.clone(),
            max_attempts: usize::try_from(config.job_max_attempts.max(1)).unwrap_or(1),
        };
        let workers = giftdrop_jobs::worker::JobWorkers::default();
        job_workers = Some(workers.clone());
        tasks.spawn(giftdrop_jobs::worker::run(
            queues.clone(),
            email,
            jobs,
            options,
            workers,
            shutdown.child_token(),
        ));
    }

    let mut http_addr = None;
    let mut live = None;
    // Shared executions run on this runtime, the sockets on the live one.
    let shared = Executions::new(config.ws_log_window, tokio::runtime::Handle::current());
    if let Some(listener) = listener {
        let runtime = http::LiveRuntime::new().context("could not start the WebSocket runtime")?;
        let schema = giftdrop_graphql::build_schema(
            services.clone(),
            SchemaOptions {
                introspection: config.introspection(),
                suggestions: !config.is_production(),
                ..SchemaOptions::default()
            },
        );
        let state = AppState::new(
            &config,
            schema,
            services.clone(),
            shared.clone(),
            shutdown.child_token(),
            runtime.handle(),
        );
        live = Some(runtime);
        http_addr = Some(listener.local_addr().context("listener has no address")?);
        let mut router = http::router(state);
        if let Some(workers) = job_workers {
            router = router.layer(axum::Extension(workers));
        }
        let token = shutdown.child_token();
        let options = crate::serve::ServeOptions {
            max_connections: config.http_max_connections,
            header_timeout: Duration::from_millis(config.http_header_timeout_ms.max(1)),
        };
        tasks.spawn(async move {
            crate::serve::serve(listener, router, options, token).await;
            Ok(())
        });
    }

    let metrics_addr = match metrics_listener {
        Some(listener) => Some(serve_metrics(listener, &config, &mut tasks, &shutdown)?),
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

/// Serves `/metrics` alone on `listener` (`METRICS_ADDR`); its address.
fn serve_metrics(
    listener: tokio::net::TcpListener,
    config: &Config,
    tasks: &mut JoinSet<anyhow::Result<()>>,
    shutdown: &CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let addr = listener
        .local_addr()
        .context("the metrics listener has no address")?;
    let router = http::metrics_router(http::MetricsToken::new(config.metrics_token.as_ref()));
    let token = shutdown.child_token();
    tasks.spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(token.cancelled_owned())
            .await
            .context("metrics server failed")
    });
    Ok(addr)
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
