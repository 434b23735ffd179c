//! Typed configuration from the environment (FLOWS.md §7), with the same
//! names as flags for local overrides. An empty variable counts as unset.

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::SocketAddr;

use clap::{Args, ValueEnum};
use secrecy::SecretString;

mod production;
mod proxies;

pub use production::{PUBLISHED_SECRETS, is_published_secret};
pub use proxies::TrustedProxies;

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
    /// Postgres URL used to create the database and run migrations (`migrate`,
    /// `all`); set it to a direct connection when `DATABASE_URL` goes through
    /// PgBouncer. Default: `DATABASE_URL`.
    #[arg(long, env = "DATABASE_MIGRATION_URL")]
    pub database_migration_url: Option<String>,
    /// `DATABASE_URL` goes through PgBouncer in transaction pooling mode (or
    /// another pooler that shares server connections between transactions):
    /// no statement is then left prepared on the server.
    #[arg(long, env = "DATABASE_PGBOUNCER", default_value_t = false, action = clap::ArgAction::Set)]
    pub database_pgbouncer: bool,
    /// Redis URL.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Prefix of every Redis key, channel and queue name.
    #[arg(long, env = "REDIS_NAMESPACE", default_value = "giftdrop:")]
    pub redis_namespace: String,
    /// Where the HTTP server listens.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8000")]
    pub http_addr: SocketAddr,
    /// Most HTTP connections open at once, WebSockets included; at the cap,
    /// new ones wait until one closes. Keep it below the open-file limit.
    #[arg(long, env = "HTTP_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub http_max_connections: usize,
    /// Time a client has to send a whole request header, ms; also how long
    /// an idle keep-alive connection stays open.
    #[arg(long, env = "HTTP_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    pub http_header_timeout_ms: u64,
    /// Serve `/metrics` only here, not on `HTTP_ADDR` (API processes).
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Bearer token `/metrics` requires; unset: none.
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<SecretString>,
    /// Reverse proxies whose `X-Forwarded-For` names the client: IPs and
    /// CIDR networks, comma-separated; empty trusts none.
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "", value_parser = TrustedProxies::parse)]
    pub trusted_proxies: TrustedProxies,
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

/// The settings alone, without a run mode.
#[derive(clap::Parser)]
struct Settings {
    #[command(flatten)]
    config: Config,
}

/// Said at the end of `--help`: clap's own `[env: ...]` notes are gone
/// because [`parse`] reads the environment itself.
const ENV_HELP: &str = "Every flag can also be set by the environment variable named like its value \
     (--smtp-url <SMTP_URL> by SMTP_URL); a flag wins over its variable, and an empty variable \
     counts as unset.";

/// Parses `args` (a command line, program name first), taking each
/// setting that no flag gives from `vars` (an environment).
///
/// An empty variable counts as unset: compose passes `SMTP_URL:
/// ${SMTP_URL:-}` as "", which clap would take as a value (an empty URL,
/// number or enum) and refuse or misuse. Clap reads the process environment
/// by itself when an `env` argument is built, with no way to skip empty
/// values, so its bindings are dropped; instead every variable that holds a
/// value is passed as its flag in front of the command line, where a flag
/// given explicitly comes later and overrides it. Being a function of
/// `vars`, this is testable without touching the process environment.
pub fn parse<P: clap::Parser>(
    args: impl IntoIterator<Item = OsString>,
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<P, clap::Error> {
    let vars: HashMap<OsString, OsString> = vars
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .collect();
    let mut from_vars = Vec::new();
    let command = P::command()
        .args_override_self(true)
        .after_help(ENV_HELP)
        .mut_args(|arg| {
            let (Some(name), Some(long)) = (arg.get_env(), arg.get_long()) else {
                return arg;
            };
            if let Some(value) = vars.get(name) {
                let mut flag = OsString::from(format!("--{long}="));
                flag.push(value);
                from_vars.push(flag);
            }
            arg.env(None)
        });
    let mut args = args.into_iter();
    let program = args.next().unwrap_or_else(|| "giftdrop".into());
    let mut matches =
        command.try_get_matches_from(std::iter::once(program).chain(from_vars).chain(args))?;
    P::from_arg_matches_mut(&mut matches)
}

impl Config {
    /// The configuration from the process environment alone; exits with
    /// clap's message when a variable holds an invalid value.
    pub fn from_env() -> Self {
        Self::from_vars(std::env::vars_os()).unwrap_or_else(|error| error.exit())
    }

    /// The configuration from `vars` alone (see [`parse`]).
    pub fn from_vars(
        vars: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<Self, clap::Error> {
        parse::<Settings>(["giftdrop".into()], vars).map(|settings| settings.config)
    }

    /// The URL that creates the database and migrates it.
    pub fn migration_url(&self) -> &str {
        self.database_migration_url
            .as_deref()
            .filter(|url| !url.is_empty())
            .unwrap_or(&self.database_url)
    }

    /// True in production.
    pub fn is_production(&self) -> bool {
        self.app_env == AppEnv::Production
    }

    /// In production, refuses every unsafe setting at once (see
    /// `production.rs`); `serving`: this process answers HTTP.
    pub fn refuse_unsafe(&self, serving: bool) -> anyhow::Result<()> {
        if !self.is_production() {
            return Ok(());
        }
        let refused = production::refusals(self, serving);
        if refused.is_empty() {
            return Ok(());
        }
        anyhow::bail!(
            "APP_ENV=production refuses to start:\n- {}",
            refused.join("\n- ")
        )
    }

    /// Introspection and GraphiQL are on outside production unless overridden.
    pub fn introspection(&self) -> bool {
        self.graphql_introspection.unwrap_or(!self.is_production())
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// `vars` as an environment.
    fn env(vars: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        vars.iter()
            .map(|(name, value)| (name.into(), value.into()))
            .collect()
    }

    /// The variable of every setting.
    fn names() -> Vec<String> {
        Settings::command()
            .get_arguments()
            .filter_map(|arg| arg.get_env())
            .map(|name| name.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn an_empty_variable_counts_as_unset() {
        let config = Config::from_vars(env(&[
            ("SMTP_URL", ""),
            ("MAIL_FROM", ""),
            ("APP_ENV", ""),
            ("JOB_POLL_MS", ""),
            ("GRAPHQL_INTROSPECTION", ""),
        ]))
        .expect("empty variables are unset");
        assert!(config.smtp_url.is_none());
        assert_eq!(config.mail_from, "giftdrop <no-reply@giftdrop.local>");
        assert_eq!(config.app_env, AppEnv::Development);
        assert_eq!(config.job_poll_ms, 250);
        assert_eq!(config.graphql_introspection, None);
    }

    #[test]
    fn every_variable_empty_gives_the_defaults() {
        let names = names();
        assert!(names.len() > 40, "every setting has a variable");
        let empty: Vec<(&str, &str)> = names.iter().map(|name| (name.as_str(), "")).collect();
        let config = Config::from_vars(env(&empty)).expect("empty variables are unset");
        let defaults = Config::from_vars(env(&[])).expect("the defaults parse");
        assert_eq!(format!("{config:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn a_variable_gives_its_value_and_a_flag_wins_over_it() {
        let vars = env(&[("JOB_POLL_MS", "40"), ("OUTBOX_RELAY", "false")]);
        let config = Config::from_vars(vars.clone()).expect("valid variables");
        assert_eq!(config.job_poll_ms, 40);
        assert!(!config.outbox_relay);
        let args = ["giftdrop", "--job-poll-ms", "7"].map(OsString::from);
        let flagged: Settings = parse(args, vars).expect("a flag and a variable");
        assert_eq!(flagged.config.job_poll_ms, 7);
        assert!(!flagged.config.outbox_relay);
    }

    #[test]
    fn an_invalid_variable_is_refused_naming_its_flag() {
        let error = Config::from_vars(env(&[("JOB_POLL_MS", "soon")])).expect_err("not a number");
        assert!(error.to_string().contains("--job-poll-ms"), "{error}");
    }

    /// What `--help` says (`ENV_HELP`): each variable is its flag's name.
    #[test]
    fn every_variable_is_named_like_its_flag() {
        for arg in Settings::command().get_arguments() {
            let Some(name) = arg.get_env() else { continue };
            let long = arg
                .get_long()
                .map(|long| long.to_uppercase().replace('-', "_"));
            assert_eq!(long.as_deref(), name.to_str(), "the flag of {name:?}");
        }
    }
}
