//! What serving GraphQL over WebSocket takes, built once per process.

use std::sync::Arc;
use std::time::Duration;

use giftdrop_domain::Services;
use giftdrop_graphql::AppSchema;
use tokio_util::sync::CancellationToken;

use crate::http::documents::DocumentCache;
use crate::http::fanout::Executions;

/// Everything a WebSocket connection is served with.
pub struct WsServer {
    /// The GraphQL schema.
    pub schema: AppSchema,
    /// Domain services: credentials and accounts are read through them.
    pub services: Services,
    /// Protocol timings.
    pub settings: WsSettings,
    /// Cancelled when the process shuts down: every socket closes (1001).
    pub shutdown: CancellationToken,
    /// The subscriptions' executions, shared where their messages allow.
    pub executions: Executions,
    /// Parsed documents, shared with GraphQL over HTTP.
    pub documents: Arc<DocumentCache>,
    /// Where connections run (see [`LiveRuntime`](super::runtime::LiveRuntime)).
    pub live: tokio::runtime::Handle,
}

/// Protocol timings.
#[derive(Clone, Copy, Debug)]
pub struct WsSettings {
    /// Close a socket that sends no connection_init within this (4408).
    pub init_timeout: Duration,
    /// Ping period; a socket silent for two periods is closed.
    pub ping_every: Duration,
}
