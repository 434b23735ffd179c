//! Liveness, readiness and metrics.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// 200 while the process runs.
pub async fn live() -> &'static str {
    "ok"
}

/// 200 when Postgres and Redis both answer; 503 naming the one that did not.
pub async fn ready(State(state): State<AppState>) -> Response {
    let postgres = tokio::time::timeout(CHECK_TIMEOUT, state.services.db.ping()).await;
    let postgres_ok = matches!(postgres, Ok(Ok(())));
    let mut redis = state.services.redis.clone();
    let pong = tokio::time::timeout(
        CHECK_TIMEOUT,
        redis::cmd("PING").query_async::<String>(&mut redis),
    )
    .await;
    let redis_ok = matches!(pong, Ok(Ok(_)));
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let body = Json(serde_json::json!({
        "status": word(postgres_ok && redis_ok),
        "postgres": word(postgres_ok),
        "redis": word(redis_ok),
    }));
    if postgres_ok && redis_ok {
        (StatusCode::OK, body).into_response()
    } else {
        tracing::warn!(
            postgres = word(postgres_ok),
            redis = word(redis_ok),
            "readiness check failed"
        );
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
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
