//! The HTTP surface: GraphQL over HTTP ([`graphql`]) and WebSocket
//! ([`ws`], its subscriptions' executions in [`fanout`]), health, metrics,
//! the payment provider's webhook, and the correlation id on every
//! response. The state handlers share is [`AppState`].

mod auth;
pub mod client_ip;
mod correlation;
mod documents;
mod errors;
pub mod fanout;
mod graphql;
mod health;
mod pages;
mod payments;
mod queries;
mod state;
#[cfg(feature = "stock-ws")]
mod stock;
pub mod ws;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};
use tower_http::timeout::TimeoutLayer;

pub use client_ip::ClientIp;
pub use correlation::{CORRELATION_HEADER, CorrelationId};
pub use health::{MetricsToken, metrics_router};
pub use state::AppState;
pub use ws::LiveRuntime;

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
    let sockets = Router::new().route("/graphql/ws", get(ws::upgrade));
    #[cfg(feature = "stock-ws")]
    let sockets = sockets.route("/graphql/stock-ws", get(stock::upgrade));
    sockets
        .merge(api)
        .layer(DefaultBodyLimit::max(256 * 1024))
        .layer(middleware::from_fn(correlation::correlate))
        .with_state(state)
}
