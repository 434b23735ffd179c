//! The state every handler is served with, built once.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use giftdrop_domain::Services;
use giftdrop_graphql::AppSchema;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::config::TrustedProxies;
use crate::http::documents::DocumentCache;
use crate::http::fanout::Executions;
use crate::http::health::MetricsToken;
use crate::http::pages::Pages;
use crate::http::queries::Queries;
use crate::http::ws::{WsServer, WsSettings};

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
    /// Parsed GraphQL documents by query text.
    pub documents: Arc<DocumentCache>,
    /// Identical queries in flight, sharing one execution.
    pub queries: Arc<Queries>,
    /// Answers of event pages, kept while their events' versions stand.
    pub pages: Arc<Pages>,
    /// GraphQL over WebSocket.
    pub ws: Arc<WsServer>,
    /// Whose `X-Forwarded-For` names the client (see
    /// [`ClientIp`](crate::http::client_ip::ClientIp)).
    pub trusted_proxies: TrustedProxies,
    /// Serve `/metrics` on this router (no `METRICS_ADDR`).
    pub metrics_here: bool,
    /// What `/metrics` requires.
    pub metrics_token: MetricsToken,
}

impl AppState {
    /// State from the configuration. Subscriptions run in `executions`;
    /// WebSocket connections on `live`, and close when `shutdown` is
    /// cancelled.
    pub fn new(
        config: &Config,
        schema: AppSchema,
        services: Services,
        executions: Executions,
        shutdown: CancellationToken,
        live: tokio::runtime::Handle,
    ) -> Self {
        let documents = Arc::new(DocumentCache::default());
        let ws = Arc::new(WsServer {
            schema: schema.clone(),
            services: services.clone(),
            settings: WsSettings {
                init_timeout: Duration::from_millis(config.ws_init_timeout_ms),
                ping_every: Duration::from_millis(config.ws_ping_ms),
            },
            shutdown,
            executions,
            documents: Arc::clone(&documents),
            live,
        });
        Self(Arc::new(AppStateInner {
            schema,
            services,
            graphiql: config.introspection(),
            documents,
            queries: Arc::new(Queries::new("query")),
            pages: Arc::default(),
            ws,
            trusted_proxies: config.trusted_proxies.clone(),
            metrics_here: config.metrics_addr.is_none(),
            metrics_token: MetricsToken::new(config.metrics_token.as_ref()),
        }))
    }
}

impl FromRef<AppState> for TrustedProxies {
    fn from_ref(state: &AppState) -> Self {
        state.trusted_proxies.clone()
    }
}

impl FromRef<AppState> for MetricsToken {
    fn from_ref(state: &AppState) -> Self {
        state.metrics_token.clone()
    }
}

impl FromRef<AppState> for Services {
    fn from_ref(state: &AppState) -> Self {
        state.services.clone()
    }
}

impl FromRef<AppState> for Arc<WsServer> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.ws)
    }
}
