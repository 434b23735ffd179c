//! Serving HTTP and WebSocket (and `/metrics` on its own listener).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use giftdrop_domain::Services;
use giftdrop_graphql::SchemaOptions;
use giftdrop_jobs::worker::JobWorkers;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::http::fanout::Executions;
use crate::http::{self, AppState, LiveRuntime};

/// What serving HTTP takes.
pub(super) struct Http {
    /// Where it listens.
    pub(super) listener: tokio::net::TcpListener,
    /// The process's services.
    pub(super) services: Services,
    /// Where subscriptions run.
    pub(super) executions: Executions,
    /// This process's job workers, for readiness (when it runs them).
    pub(super) job_workers: Option<JobWorkers>,
}

/// Serves the API on `http.listener` until `shutdown`; its address, and
/// the runtime its WebSockets run on (stopped when dropped, last).
pub(super) fn http(
    config: &Config,
    http: Http,
    tasks: &mut JoinSet<anyhow::Result<()>>,
    shutdown: &CancellationToken,
) -> anyhow::Result<(SocketAddr, LiveRuntime)> {
    let runtime = LiveRuntime::new().context("could not start the WebSocket runtime")?;
    let schema = giftdrop_graphql::build_schema(
        http.services.clone(),
        SchemaOptions {
            introspection: config.introspection(),
            suggestions: !config.is_production(),
            ..SchemaOptions::default()
        },
    );
    let state = AppState::new(
        config,
        schema,
        http.services,
        http.executions,
        shutdown.child_token(),
        runtime.handle(),
    );
    let addr = http
        .listener
        .local_addr()
        .context("listener has no address")?;
    let mut router = http::router(state);
    if let Some(workers) = http.job_workers {
        router = router.layer(axum::Extension(workers));
    }
    let token = shutdown.child_token();
    let options = crate::serve::ServeOptions {
        max_connections: config.http_max_connections,
        header_timeout: Duration::from_millis(config.http_header_timeout_ms.max(1)),
    };
    let listener = http.listener;
    tasks.spawn(async move {
        crate::serve::serve(listener, router, options, token).await;
        Ok(())
    });
    Ok((addr, runtime))
}

/// Serves `/metrics` alone on `listener` (`METRICS_ADDR`); its address.
pub(super) fn metrics(
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
