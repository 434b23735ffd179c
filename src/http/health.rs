//! Liveness, readiness and metrics.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router, routing::get};
use giftdrop_domain::{Services, pubsub};
use giftdrop_jobs::worker::JobWorkers;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::http::errors::error_response;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// 200 while the process runs.
pub async fn live() -> &'static str {
    "ok"
}

/// 200 when Postgres and Redis both answer and, in a process that runs
/// job workers, every worker polls its queue; 503 naming what is not, e.g.
/// `{"status": "unavailable", "postgres": "ok", "redis": "ok",
/// "jobs": "unavailable", "jobs_down": ["send_email"]}` while the workers
/// wait to restart after Redis came back.
pub async fn ready(
    State(services): State<Services>,
    workers: Option<Extension<JobWorkers>>,
) -> Response {
    let postgres = tokio::time::timeout(CHECK_TIMEOUT, services.db.ping()).await;
    let postgres_ok = matches!(postgres, Ok(Ok(())));
    let redis_ok = pubsub::ping(&services.redis, CHECK_TIMEOUT).await.is_ok();
    let jobs_down = workers.map(|Extension(workers)| workers.down());
    let jobs_ok = jobs_down.as_ref().is_none_or(Vec::is_empty);
    let ok = postgres_ok && redis_ok && jobs_ok;
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let mut body = serde_json::json!({
        "status": word(ok),
        "postgres": word(postgres_ok),
        "redis": word(redis_ok),
    });
    if let Some(down) = &jobs_down {
        body["jobs"] = word(jobs_ok).into();
        if !down.is_empty() {
            body["jobs_down"] = down.clone().into();
        }
    }
    if ok {
        (StatusCode::OK, Json(body)).into_response()
    } else {
        tracing::warn!(
            postgres = word(postgres_ok),
            redis = word(redis_ok),
            jobs = word(jobs_ok),
            "readiness check failed"
        );
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

/// The bearer token `/metrics` requires (`METRICS_TOKEN`); none when unset
/// or empty.
#[derive(Clone, Default)]
pub struct MetricsToken(Option<Arc<SecretString>>);

impl MetricsToken {
    /// The token of `METRICS_TOKEN`.
    pub fn new(token: Option<&SecretString>) -> Self {
        Self(
            token
                .filter(|t| !t.expose_secret().is_empty())
                .map(|t| Arc::new(t.clone())),
        )
    }

    /// True when no token is required or `authorization` carries it,
    /// compared in constant time.
    fn admits(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some(token) = &self.0 else { return true };
        let presented = authorization
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        presented
            .trim()
            .as_bytes()
            .ct_eq(token.expose_secret().as_bytes())
            .into()
    }
}

/// `/metrics` alone, for its own listener (`METRICS_ADDR`).
pub fn metrics_router(token: MetricsToken) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(token)
}

/// Prometheus text format; 401 without the configured bearer token.
pub async fn metrics(State(token): State<MetricsToken>, headers: HeaderMap) -> Response {
    if !token.admits(headers.get(header::AUTHORIZATION)) {
        let mut response = error_response(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "GET /metrics needs Authorization: Bearer <METRICS_TOKEN>",
        );
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::metrics().render(),
    )
        .into_response()
}
