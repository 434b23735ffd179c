//! Typed configuration from the environment (FLOWS.md §7), with the same
//! names as flags for local overrides.

use std::net::SocketAddr;

use clap::{Args, ValueEnum};
use secrecy::SecretString;

/// Deployment environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AppEnv {
    /// Local development and tests: GraphiQL, introspection, file mail.
    Development,
    /// Production: JSON logs, no GraphiQL/introspection/suggestions.
    Production,
}

/// Which payment provider backs top-ups and payouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PaymentProvider {
    /// The app plays the provider itself under `/sandbox`.
    Sandbox,
    /// A real provider's REST API.
    Http,
}

/// Every setting of the process.
#[derive(Args, Clone, Debug)]
pub struct Config {
    /// Postgres URL; the database is created and migrated at start if missing.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@localhost:5432/giftdrop"
    )]
    pub database_url: String,
    /// Redis URL.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Prefix of every Redis key, channel and queue name.
    #[arg(long, env = "REDIS_NAMESPACE", default_value = "giftdrop:")]
    pub redis_namespace: String,
    /// Where the HTTP server listens.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8000")]
    pub http_addr: SocketAddr,
    /// HS256 secret for access tokens; random per process when unset.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<SecretString>,
    /// Access token lifetime in hours.
    #[arg(long, env = "JWT_TTL_HOURS", default_value_t = 24)]
    pub jwt_ttl_hours: u32,
    /// `sandbox` or `http`.
    #[arg(long, env = "PAYMENT_PROVIDER", value_enum, default_value = "sandbox")]
    pub payment_provider: PaymentProvider,
    /// HMAC-SHA512 secret of provider webhooks; random per process in sandbox.
    #[arg(long, env = "PAYMENT_WEBHOOK_SECRET", hide_env_values = true)]
    pub payment_webhook_secret: Option<SecretString>,
    /// Base URL of the provider's REST API (`PAYMENT_PROVIDER=http`).
    #[arg(long, env = "PAYMENT_PROVIDER_URL")]
    pub payment_provider_url: Option<String>,
    /// API secret key of the provider (`PAYMENT_PROVIDER=http`).
    #[arg(long, env = "PAYMENT_PROVIDER_SECRET", hide_env_values = true)]
    pub payment_provider_secret: Option<SecretString>,
    /// Time allowed for one provider call, ms.
    #[arg(long, env = "PAYMENT_PROVIDER_TIMEOUT_MS", default_value_t = 10_000)]
    pub payment_provider_timeout_ms: u64,
    /// Added to every sandbox provider call, ms (`PAYMENT_PROVIDER=sandbox`).
    #[arg(long, env = "SANDBOX_LATENCY_MS", default_value_t = 0)]
    pub sandbox_latency_ms: u64,
    /// Share of sandbox provider calls that fail like an outage, 0-100.
    #[arg(long, env = "SANDBOX_FAILURE_PERCENT", default_value_t = 0)]
    pub sandbox_failure_percent: u32,
    /// How long the payment provider's open breaker fails calls fast, ms
    /// (FLOWS.md: 30 s; shorter only for tests).
    #[arg(long, env = "PAYMENT_BREAKER_COOLDOWN_MS", default_value_t = 30_000)]
    pub payment_breaker_cooldown_ms: u64,
    /// Key material that protects card pins (hashed and sealed); required in
    /// production, a fixed development key otherwise.
    #[arg(long, env = "CARD_SECRET", hide_env_values = true)]
    pub card_secret: Option<SecretString>,
    /// Period of the job that expires cards and releases their escrows, s.
    #[arg(long, env = "CARD_EXPIRY_SWEEP_SECS", default_value_t = 30)]
    pub card_expiry_sweep_secs: u64,
    /// Endpoint of the social verification service (`POST {"handle",
    /// "postUrl"}` -> `{"verified": bool}`); unset: everyone is verified at
    /// once (development only).
    #[arg(long, env = "SOCIAL_VERIFIER_URL")]
    pub social_verifier_url: Option<String>,
    /// Period of the event clock: how often workers start and end events
    /// whose time has come, ms.
    #[arg(long, env = "EVENT_CLOCK_MS", default_value_t = 250)]
    pub event_clock_ms: u64,
    /// Period of the job that settles payouts left PENDING by a crash, s.
    #[arg(long, env = "PAYOUT_RECONCILE_SECS", default_value_t = 60)]
    pub payout_reconcile_secs: u64,
    /// Public base URL of this API (sandbox checkout links); defaults to
    /// `http://localhost:{port}` of the listener.
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<String>,
    /// ISO 4217 code of the platform currency.
    #[arg(long, env = "PLATFORM_CURRENCY", default_value = "NGN")]
    pub platform_currency: String,
    /// Default merchant service rate, basis points.
    #[arg(long, env = "SERVICE_RATE_BPS", default_value_t = 500)]
    pub service_rate_bps: u32,
    /// Provider deposit fee, basis points.
    #[arg(long, env = "DEPOSIT_FEE_BPS", default_value_t = 150)]
    pub deposit_fee_bps: u32,
    /// Largest top-up, minor units (10,000,000.00 of a two-decimal
    /// currency by default): one top-up can never bring a wallet near the
    /// largest balance the ledger holds.
    #[arg(long, env = "TOPUP_MAX_AMOUNT", default_value_t = 1_000_000_000, value_parser = clap::value_parser!(i64).range(1..))]
    pub topup_max_amount: i64,
    /// Sliding-window limits, `op=max/seconds,...`.
    #[arg(long, env = "RATE_LIMITS", default_value = giftdrop_domain::ratelimit::DEFAULT_RATE_LIMITS)]
    pub rate_limits: String,
    /// Bootstrap admin email (created or updated at start).
    #[arg(long, env = "ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    /// Bootstrap admin password.
    #[arg(long, env = "ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<SecretString>,
    /// `development` or `production`.
    #[arg(long, env = "APP_ENV", value_enum, default_value = "development")]
    pub app_env: AppEnv,
    /// Serve introspection even in production.
    #[arg(long, env = "GRAPHQL_INTROSPECTION")]
    pub graphql_introspection: Option<bool>,
    /// Sentry DSN; Sentry is off when unset.
    #[arg(long, env = "SENTRY_DSN", hide_env_values = true)]
    pub sentry_dsn: Option<String>,
    /// Sentry environment tag.
    #[arg(long, env = "SENTRY_ENVIRONMENT", default_value = "development")]
    pub sentry_environment: String,
    /// SMTP URL (`smtps://user:pass@host:465`); required in production.
    #[arg(long, env = "SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<SecretString>,
    /// Sender address of emails.
    #[arg(
        long,
        env = "MAIL_FROM",
        default_value = "giftdrop <no-reply@giftdrop.local>"
    )]
    pub mail_from: String,
    /// Directory where development mail is written, one file per email.
    #[arg(long, env = "MAIL_DIR", default_value = "mail")]
    pub mail_dir: String,
    /// Runs of a job before it goes to the dead set.
    #[arg(long, env = "JOB_MAX_ATTEMPTS", default_value_t = 5)]
    pub job_max_attempts: u32,
    /// How often an idle worker polls its queue, ms.
    #[arg(long, env = "JOB_POLL_MS", default_value_t = 250)]
    pub job_poll_ms: u64,
    /// Run the outbox relay in this process (turn off only where dedicated
    /// processes drain the outbox).
    #[arg(long, env = "OUTBOX_RELAY", default_value_t = true, action = clap::ArgAction::Set)]
    pub outbox_relay: bool,
    /// Period of the outbox sweep, ms.
    #[arg(long, env = "OUTBOX_SWEEP_MS", default_value_t = 1000)]
    pub outbox_sweep_ms: u64,
    /// Period of the sweep that deletes expired idempotency keys, seconds.
    #[arg(long, env = "IDEMPOTENCY_SWEEP_SECS", default_value_t = 600)]
    pub idempotency_sweep_secs: u64,
    /// Close a WebSocket that sends no connection_init within this, ms.
    #[arg(long, env = "WS_INIT_TIMEOUT_MS", default_value_t = 10_000)]
    pub ws_init_timeout_ms: u64,
    /// Server ping period on WebSockets, ms.
    #[arg(long, env = "WS_PING_MS", default_value_t = 15_000)]
    pub ws_ping_ms: u64,
    /// Frames of a shared `winnerAnnounced` kept in memory for subscribers
    /// catching up; one further behind replays from the database.
    #[arg(long, env = "WS_LOG_WINDOW", default_value_t = 256)]
    pub ws_log_window: usize,
    /// How long shutdown waits for in-flight requests and jobs, seconds.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,
}

impl Config {
    /// The configuration from the environment alone.
    pub fn from_env() -> Self {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            config: Config,
        }
        <Only as clap::Parser>::parse_from(["giftdrop"]).config
    }

    /// True in production.
    pub fn is_production(&self) -> bool {
        self.app_env == AppEnv::Production
    }

    /// Introspection and GraphiQL are on outside production unless overridden.
    pub fn introspection(&self) -> bool {
        self.graphql_introspection.unwrap_or(!self.is_production())
    }
}
