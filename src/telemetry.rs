//! Logs, Sentry and metrics, installed once per process.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::Config;

/// Keeps Sentry flushing until the process ends.
pub type SentryGuard = Option<sentry::ClientInitGuard>;

/// Installs the log subscriber (JSON in production) and, with a valid
/// `SENTRY_DSN`, Sentry; `ERROR` events (infrastructure failures only, by
/// convention) become Sentry events.
pub fn init(config: &Config) -> anyhow::Result<SentryGuard> {
    let guard = match config.sentry_dsn.as_deref().filter(|d| !d.is_empty()) {
        Some(dsn) => {
            dsn.parse::<sentry::types::Dsn>()
                .map_err(|e| anyhow::anyhow!("SENTRY_DSN is not a valid DSN: {e}"))?;
            Some(sentry::init(
                sentry::ClientOptions::new()
                    .dsn(dsn)
                    .environment(config.sentry_environment.clone())
                    .release(env!("CARGO_PKG_VERSION")),
            ))
        }
        None => None,
    };
    let filter = log_filter(std::env::var("RUST_LOG").ok().as_deref());
    let sentry_layer = guard
        .as_ref()
        .map(|_| sentry::integrations::tracing::ErrorLayer::new().with_filter(LevelFilter::ERROR));
    let (json, text) = if config.is_production() {
        (
            Some(tracing_subscriber::fmt::layer().json().flatten_event(true)),
            None,
        )
    } else {
        (None, Some(tracing_subscriber::fmt::layer().compact()))
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(json)
        .with(text)
        .with(sentry_layer)
        .try_init()
        .map_err(|e| anyhow::anyhow!("failed to install the log subscriber: {e}"))?;
    Ok(guard)
}

/// The log filter: `RUST_LOG`, unless it is unset, empty (which counts as
/// unset, as for every setting) or invalid; then the default.
fn log_filter(rust_log: Option<&str>) -> EnvFilter {
    rust_log
        .filter(|directives| !directives.is_empty())
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| {
            // apalis_core logs every failed poll of a job worker (an ERROR
            // and three WARNs per restart while Redis is down); the workers'
            // own outage log reports those once (giftdrop_jobs::worker).
            EnvFilter::new(
                "info,sqlx=warn,sea_orm=warn,apalis=warn,apalis_core=off,tower_http=warn",
            )
        })
}

/// The process-wide Prometheus recorder (installed on first use, so several
/// app instances in one test process share it).
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder was installed first, in which case
        // this handle simply renders nothing.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_rust_log_keeps_the_default_filter() {
        let level = |rust_log| log_filter(rust_log).max_level_hint();
        assert_eq!(level(None), Some(LevelFilter::INFO));
        assert_eq!(level(Some("")), Some(LevelFilter::INFO));
        assert_eq!(level(Some("debug")), Some(LevelFilter::DEBUG));
    }
}
