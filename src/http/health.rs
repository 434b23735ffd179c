//! Liveness, readiness and metrics.

use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use giftdrop_jobs::worker::JobWorkers;

use super::AppState;

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
    State(state): State<AppState>,
    workers: Option<Extension<JobWorkers>>,
) -> Response {
    let postgres = tokio::time::timeout(CHECK_TIMEOUT, state.services.db.ping()).await;
    let postgres_ok = matches!(postgres, Ok(Ok(())));
    let mut redis = state.services.redis.clone();
    let pong = tokio::time::timeout(
        CHECK_TIMEOUT,
        redis::cmd("PING").query_async::<String>(&mut redis),
    )
    .await;
    let redis_ok = matches!(pong, Ok(Ok(_)));
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

/// Prometheus text format.
pub async fn metrics() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::metrics().render(),
    )
        .into_response()
}
