//! GraphQL-shaped error bodies for what is refused before execution.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A GraphQL-shaped error body for failures before execution.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code } }]
    });
    (status, axum::Json(body)).into_response()
}
