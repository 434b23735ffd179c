//! GraphQL subscriptions over WebSocket, speaking graphql-transport-ws
//! (preferred) and the legacy graphql-ws, through our own upgrade handler.
//!
//! async-graphql's socket has no init timeout, no duplicate-id or
//! subscribe-before-ack close codes and no subscription cap, runs one
//! execution per socket and writes each socket's messages through its own
//! framing; axum's default upgrade reserves a 128 KiB read buffer per
//! socket (BENCHMARKS.md compares the two). Here, one concern a file:
//! - [`handshake`]: the upgrade request and the subprotocol;
//! - [`protocol`]: what each subprotocol's messages are, and every close
//!   code (4400, 4401, 4403, 4408, 4409, 4429) in one place;
//! - [`session`]: what each client message does: connection_init once, no
//!   subscribe before its acknowledgement, each id active once, at most 50
//!   subscriptions, the account followed;
//! - [`connection`]: the task of one socket: timers (connection_init's
//!   deadline, pings every `WS_PING_MS`, the token's expiry), shutdown,
//!   and batched writes;
//! - [`socket`]: small buffers, and shared frames written straight to the
//!   kernel.
//!
//! What a subscription's frames come from (its own execution, or one
//! shared with other sockets) is [`fanout`](crate::http::fanout)'s concern.

mod account;
mod connection;
mod handshake;
mod protocol;
mod runtime;
mod server;
mod session;
mod socket;

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use giftdrop_domain::RequestMeta;

use crate::http::client_ip::ClientIp;
use crate::http::correlation::CorrelationId;

pub use runtime::LiveRuntime;
pub use server::{WsServer, WsSettings};

/// `GET /graphql/ws`.
pub async fn upgrade(
    State(server): State<Arc<WsServer>>,
    Extension(correlation): Extension<CorrelationId>,
    client: ClientIp,
    mut request: Request,
) -> Response {
    let handshake = match handshake::Handshake::of(&mut request) {
        Ok(handshake) => handshake,
        Err(refusal) => return refusal.into_response(),
    };
    let response = handshake.response();
    let live = server.live.clone();
    let session = session::Session::new(
        server,
        handshake.protocol(),
        RequestMeta {
            correlation_id: correlation.0,
        },
        client.to_string(),
    );
    // Awaited here, on the request's runtime, so the connection's own task
    // (on the live runtime, for as long as the socket lives) is only as
    // large as serving it takes.
    let upgrade = handshake.upgrade;
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(upgraded) => upgraded,
            Err(err) => {
                tracing::debug!(error = %err, "a WebSocket upgrade failed");
                return;
            }
        };
        let socket = socket::open(upgraded).await;
        live.spawn(connection::run(session, socket));
    });
    response
}
