//! async-graphql-axum's stock WebSocket route (`/graphql/stock-ws`), mounted
//! beside ours only with the bench-only `stock-ws` feature, so the
//! comparison in BENCHMARKS.md can be run again: the same schema, the same
//! request data, the same small buffers, and the same runtime for sockets.
//! Never in a production build: it lacks what FLOWS.md §6 asks (init
//! timeout, 4401/4409 close codes, the subscription cap).

use std::sync::Arc;

use async_graphql::Data;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::Extension;
use axum::extract::{State, WebSocketUpgrade};
use axum::response::Response;
use giftdrop_domain::RequestMeta;
use giftdrop_graphql::auth::{Auth, RequestData};

use crate::http::auth::resolve_auth;
use crate::http::client_ip::ClientIp;
use crate::http::correlation::CorrelationId;
use crate::http::ws::WsServer;

/// `GET /graphql/stock-ws`.
pub async fn upgrade(
    State(server): State<Arc<WsServer>>,
    Extension(correlation): Extension<CorrelationId>,
    client: ClientIp,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let meta = RequestMeta {
        correlation_id: correlation.0,
    };
    let client_ip = client.to_string();
    upgrade
        .read_buffer_size(1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(64 * 1024)
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| async move {
            let services = server.services.clone();
            let serve = GraphQLWebSocket::new(socket, server.schema.clone(), protocol)
                .on_connection_init(move |payload| async move {
                    let token = payload
                        .get("authorization")
                        .and_then(serde_json::Value::as_str);
                    let auth = resolve_auth(&services, token)
                        .await
                        .map_err(|_| async_graphql::Error::new("Internal error"))?;
                    if matches!(auth, Auth::Invalid) {
                        return Err(async_graphql::Error::new("Forbidden"));
                    }
                    let mut data = Data::default();
                    data.insert(RequestData::new(auth, meta, client_ip));
                    Ok(data)
                })
                .serve();
            // On the sockets' runtime, as ours.
            let _ = server.live.spawn(serve).await;
        })
}
