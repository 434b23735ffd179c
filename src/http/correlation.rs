//! The correlation id of every request: the client's own if valid, else a
//! new one; on the request's tracing span, its metrics, and the response.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The `x-correlation-id` header.
pub const CORRELATION_HEADER: HeaderName = HeaderName::from_static("x-correlation-id");

/// The correlation id of a request.
#[derive(Clone, Debug)]
pub struct CorrelationId(pub String);

fn valid_correlation(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?;
    let ok = (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    ok.then(|| s.to_owned())
}

/// Gives every request a correlation id (its own if valid, else a new one),
/// a tracing span carrying it, request metrics, and the response header.
pub async fn correlate(mut request: Request, next: Next) -> Response {
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
