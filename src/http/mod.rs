//! The HTTP surface: GraphQL over HTTP and WebSocket, health, metrics, and
//! the correlation id on every response.

pub mod client_ip;
mod graphql;
mod health;
pub mod log;
mod payments;
pub mod shared;
mod ws;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use giftdrop_domain::identity;
use giftdrop_domain::{DomainError, Services};
use giftdrop_graphql::AppSchema;
use giftdrop_graphql::auth::Auth;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;
use tracing::Instrument;

use crate::config::Config;

pub use client_ip::{ClientIp, TrustedProxies};
pub use health::{MetricsToken, metrics_router};

/// The `x-correlation-id` header.
pub const CORRELATION_HEADER: HeaderName = HeaderName::from_static("x-correlation-id");

/// Shared state of every handler; cloned per request, so it is one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

impl std::ops::Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct AppStateInner {
    /// The GraphQL schema, built once.
    pub schema: AppSchema,
    /// Domain services.
    pub services: Services,
    /// Serve GraphiQL on `GET /graphql` for browsers.
    pub graphiql: bool,
    /// WebSocket protocol timings.
    pub ws: Arc<ws::WsSettings>,
    /// Cancelled when the process shuts down; long-lived sockets close on it.
    pub shutdown: CancellationToken,
    /// Snapshot subscriptions executed once for all their subscribers.
    pub shared: shared::SharedSubscriptions,
    /// Parsed GraphQL documents by query text.
    pub documents: graphql::DocumentCache,
    /// Where WebSocket connections run (see [`LiveRuntime`]).
    pub live: tokio::runtime::Handle,
    /// Whose `X-Forwarded-For` names the client (see [`ClientIp`]).
    pub trusted_proxies: TrustedProxies,
    /// Serve `/metrics` on this router (no `METRICS_ADDR`).
    pub metrics_here: bool,
    /// What `/metrics` requires.
    pub metrics_token: MetricsToken,
}

impl axum::extract::FromRef<AppState> for TrustedProxies {
    fn from_ref(state: &AppState) -> Self {
        state.trusted_proxies.clone()
    }
}

/// The runtime WebSocket connections and their shared executions run on,
/// apart from requests, jobs and the outbox relay: a bulkhead. Announcing
/// one winner to 5,000 sockets queues 5,000 tasks; on one runtime, every
/// step of the next attempt and of the relay that announces it would wait
/// behind all of them. On their own threads, the kernel shares the cores
/// between the two, and a request is never queued behind a fan-out.
pub struct LiveRuntime {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
}

impl LiveRuntime {
    /// A runtime with one worker per core.
    pub fn new() -> std::io::Result<Self> {
        let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("giftdrop-live")
            .enable_all()
            .build()?;
        Ok(Self {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }

    /// Spawns onto it.
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.handle.clone()
    }
}

impl Drop for LiveRuntime {
    fn drop(&mut self) {
        // Dropped from async code (the process's end, a test's app): never
        // block there. Sockets were closed by the shutdown token already.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl AppState {
    /// State from the configuration.
    pub fn new(
        config: &Config,
        schema: AppSchema,
        services: Services,
        shared: shared::SharedSubscriptions,
        shutdown: CancellationToken,
        live: tokio::runtime::Handle,
    ) -> Self {
        Self(Arc::new(AppStateInner {
            schema,
            services,
            graphiql: config.introspection(),
            ws: Arc::new(ws::WsSettings {
                init_timeout: Duration::from_millis(config.ws_init_timeout_ms),
                ping_every: Duration::from_millis(config.ws_ping_ms),
            }),
            shutdown,
            shared,
            documents: graphql::DocumentCache::default(),
            live,
            trusted_proxies: config.trusted_proxies.clone(),
            metrics_here: config.metrics_addr.is_none(),
            metrics_token: MetricsToken::new(config.metrics_token.as_ref()),
        }))
    }
}

/// The correlation id of a request.
#[derive(Clone, Debug)]
pub struct CorrelationId(pub String);

/// The router of the whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/graphql", get(graphql::get).post(graphql::post))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/webhooks/payments", post(payments::webhook));
    let api = if state.metrics_here {
        api.route("/metrics", get(health::metrics))
    } else {
        api
    };
    let api = if state.services.payments.sandbox.is_some() {
        api.route(
            "/sandbox/checkout/{reference}",
            get(payments::checkout_page),
        )
        .route("/sandbox/checkout/{reference}/pay", post(payments::pay))
        .route("/sandbox/checkout/{reference}/fail", post(payments::fail))
        .route(
            "/sandbox/settings",
            get(payments::settings).post(payments::change_settings),
        )
    } else {
        api
    };
    let api = api.layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        Duration::from_secs(30),
    ));
    Router::new()
        .route("/graphql/ws", get(ws::upgrade))
        .merge(api)
        .layer(DefaultBodyLimit::max(256 * 1024))
        .layer(middleware::from_fn(correlate))
        .with_state(state)
}

fn valid_correlation(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?;
    let ok = (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    ok.then(|| s.to_owned())
}

/// Gives every request a correlation id (its own if valid, else a new one),
/// a tracing span carrying it, request metrics, and the response header.
async fn correlate(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&CORRELATION_HEADER)
        .and_then(valid_correlation)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    request.extensions_mut().insert(CorrelationId(id.clone()));
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let span = tracing::info_span!("http", correlation_id = %id, %method, route = %route);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("giftdrop_http_request_duration_seconds", "route" => route.clone(), "method" => method.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("giftdrop_http_requests_total", "route" => route, "method" => method, "status" => status)
        .increment(1);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(CORRELATION_HEADER, value);
    }
    response
}

/// Resolves an `Authorization` value into who is asking. Only an
/// infrastructure failure is an error; bad credentials are [`Auth::Invalid`].
pub async fn resolve_auth(
    services: &Services,
    authorization: Option<&str>,
) -> Result<Auth, DomainError> {
    let Some(header) = authorization.map(str::trim).filter(|h| !h.is_empty()) else {
        return Ok(Auth::Anonymous);
    };
    let Ok(user_id) = services.tokens.verify_bearer(header) else {
        return Ok(Auth::Invalid);
    };
    match identity::load_viewer(&services.db, user_id).await {
        Ok(viewer) => Ok(Auth::User(viewer)),
        Err(DomainError::Unauthenticated) => Ok(Auth::Invalid),
        Err(err) => Err(err),
    }
}

/// A GraphQL-shaped error body for failures before execution.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code } }]
    });
    (status, axum::Json(body)).into_response()
}
