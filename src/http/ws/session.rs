//! One connection's protocol state, and what each client message does to
//! it (FLOWS.md §6): connection_init once, subscribes only after its
//! acknowledgement, each id active once, at most [`MAX_SUBSCRIPTIONS`]. The
//! connection follows its account ([`account`](super::account)): 4403 once
//! the token expires or an admin's ADMIN role is revoked, and every
//! subscribe runs with the roles the account holds then.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use giftdrop_domain::RequestMeta;
use giftdrop_graphql::auth::{Auth, RequestData};
use tokio_stream::StreamMap;
use tokio_tungstenite::tungstenite::Message;

use super::account::{self, Account};
use super::protocol::{ClientMessage, Close, Protocol};
use super::server::WsServer;
use super::socket::{self, Gone, Socket};
use crate::http::fanout::{Frame, Wire};

/// Most active subscriptions on one connection.
pub(super) const MAX_SUBSCRIPTIONS: usize = 50;

/// A connection's state.
pub(super) struct Session {
    server: Arc<WsServer>,
    protocol: Protocol,
    meta: RequestMeta,
    client_ip: String,
    /// `None` until connection_init was accepted.
    auth: Option<Auth>,
    /// The signed-in account, kept current; `None` when anonymous.
    account: Option<Account>,
    /// The serialized results of each operation, by operation id.
    subscriptions: StreamMap<Arc<str>, BoxStream<'static, Frame>>,
}

impl Session {
    /// A connection of `client_ip` speaking `protocol`, not initialised.
    pub(super) fn new(
        server: Arc<WsServer>,
        protocol: Protocol,
        meta: RequestMeta,
        client_ip: String,
    ) -> Self {
        Self {
            server,
            protocol,
            meta,
            client_ip,
            auth: None,
            account: None,
            // Most sockets run one subscription.
            subscriptions: StreamMap::with_capacity(1),
        }
    }

    /// What it is served with.
    pub(super) fn server(&self) -> &WsServer {
        &self.server
    }

    /// Whether connection_init was acknowledged.
    pub(super) fn acked(&self) -> bool {
        self.auth.is_some()
    }

    /// How long its token is accepted for; `None` when anonymous.
    pub(super) fn expires_in(&self) -> Option<Duration> {
        self.account.as_ref().map(Account::remaining)
    }

    /// What the server's ping carries for this protocol.
    pub(super) fn keep_alive(&self) -> Option<&'static str> {
        self.protocol.keep_alive(self.acked())
    }

    /// The deadline armed at the start (no connection_init yet), then at
    /// the token's expiry, has come.
    pub(super) fn on_deadline(&self) -> Close {
        if self.acked() {
            Close::FORBIDDEN
        } else {
            Close::INIT_TIMEOUT
        }
    }

    /// Ready when the account changed, or may have.
    pub(super) fn poll_account(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.account
            .as_mut()
            .map_or(Poll::Pending, |account| account.poll_changed(cx))
    }

    /// The next frame of any subscription; `None` when none has one.
    pub(super) fn poll_frame(&mut self, cx: &mut Context<'_>) -> Option<(Arc<str>, Frame)> {
        // An empty map answers `Ready(None)`: nothing to wait on.
        match self.subscriptions.poll_next_unpin(cx) {
            Poll::Ready(Some(ready)) => Some(ready),
            Poll::Ready(None) | Poll::Pending => None,
        }
    }

    /// Subscriptions running now.
    pub(super) fn running(&self) -> usize {
        self.subscriptions.len()
    }

    /// Adds the WebSocket frames of `frame`, a result of the operation
    /// under `id`, to `wire`; a final one ends the operation.
    pub(super) fn frames(&mut self, wire: &mut Vec<Wire>, id: &str, frame: Frame) {
        if frame.is_final() {
            self.subscriptions.remove(id);
            metrics::gauge!("giftdrop_ws_subscriptions").decrement(1.0);
        }
        self.protocol.frames(wire, id, frame);
    }

    /// Handles one client message; `Ok(Some(close))` ends the connection.
    pub(super) async fn on_message(
        &mut self,
        socket: &mut Socket,
        message: &Message,
    ) -> Result<Option<Close>, Gone> {
        let message = match self.protocol.parse(message) {
            Ok(Some(message)) => message,
            Ok(None) => return Ok(None),
            Err(close) => return Ok(Some(close)),
        };
        match message {
            ClientMessage::Init(token) => self.on_init(socket, token.as_deref()).await,
            ClientMessage::Ping => socket::send(socket, Protocol::pong()).await.map(|()| None),
            ClientMessage::Pong => Ok(None),
            ClientMessage::Subscribe { id, request } => {
                self.on_subscribe(socket, id, *request).await
            }
            ClientMessage::Complete { id } => {
                if self.subscriptions.remove(id.as_str()).is_some() {
                    metrics::gauge!("giftdrop_ws_subscriptions").decrement(1.0);
                    if let Some(stopped) = self.protocol.stopped(&id) {
                        socket::send(socket, stopped).await?;
                    }
                }
                Ok(None)
            }
            ClientMessage::Terminate => Ok(Some(Close::NORMAL)),
        }
    }

    async fn on_init(
        &mut self,
        socket: &mut Socket,
        token: Option<&str>,
    ) -> Result<Option<Close>, Gone> {
        if self.acked() {
            return Ok(Some(Close::SECOND_INIT));
        }
        match account::sign_in(&self.server.services, token).await {
            Ok((Auth::Invalid, _)) => {
                if let Some(refusal) = self.protocol.refusal() {
                    socket::send(socket, refusal).await?;
                }
                Ok(Some(Close::FORBIDDEN))
            }
            Ok((auth, account)) => {
                self.auth = Some(auth);
                self.account = account;
                for message in self.protocol.acknowledgement() {
                    socket::send(socket, *message).await?;
                }
                Ok(None)
            }
            Err(err) => {
                tracing::error!(error = %err, "could not resolve WebSocket credentials");
                Ok(Some(Close::INTERNAL))
            }
        }
    }

    /// The account as it is now, for a subscribe or after a change; `Err`
    /// closes the connection: the token expired, the user is gone, or the
    /// account could not be read.
    async fn current_auth(&mut self, acked: Auth) -> Result<Auth, Close> {
        let Some(account) = self.account.as_mut() else {
            // Anonymous: nothing to follow.
            return Ok(acked);
        };
        match account.current(&self.server.services).await {
            Ok(Auth::Invalid) => Err(Close::FORBIDDEN),
            Ok(auth) => {
                self.auth = Some(auth.clone());
                Ok(auth)
            }
            Err(err) => {
                tracing::error!(error = %err, "could not read a WebSocket connection's account");
                Err(Close::INTERNAL)
            }
        }
    }

    /// An admin's account changed: closes the connection once it is no
    /// longer an admin, since its running subscriptions may show what only
    /// admins see.
    pub(super) async fn on_account_change(&mut self) -> Option<Close> {
        let acked = self.auth.clone()?;
        match self.current_auth(acked).await {
            Ok(Auth::User(viewer)) if viewer.is_admin() => None,
            Ok(_) => Some(Close::FORBIDDEN),
            Err(close) => Some(close),
        }
    }

    async fn on_subscribe(
        &mut self,
        socket: &mut Socket,
        id: String,
        mut request: async_graphql::Request,
    ) -> Result<Option<Close>, Gone> {
        let Some(acked) = self.auth.clone() else {
            return Ok(Some(Close::UNAUTHORIZED));
        };
        if self.subscriptions.contains_key(id.as_str()) {
            return Ok(Some(Close::DUPLICATE_ID));
        }
        if self.subscriptions.len() >= MAX_SUBSCRIPTIONS {
            let message = format!(
                "At most {MAX_SUBSCRIPTIONS} active subscriptions per connection: complete one first"
            );
            socket::send(socket, Protocol::refused(&id, &message, "RATE_LIMITED", 1)).await?;
            return Ok(None);
        }
        // As the account is now: an expired token or a revoked role no
        // longer authorizes anything.
        let auth = match self.current_auth(acked).await {
            Ok(auth) => auth,
            Err(close) => return Ok(Some(close)),
        };
        let data = RequestData::new(auth, self.meta.clone(), self.client_ip.clone());
        let server = &self.server;
        // Parsed once (or taken from the cache) here; execution reuses it.
        let frames = match server.documents.prepare_long_lived(&mut request) {
            Ok(()) => server.executions.start(&server.schema, request, data),
            Err(error) => {
                let refused = async_graphql::Response::from_errors(vec![error]);
                Frame::stream(stream::once(async { refused }), data.meta.correlation_id)
            }
        };
        self.subscriptions.insert(id.into(), frames);
        metrics::gauge!("giftdrop_ws_subscriptions").increment(1.0);
        Ok(None)
    }
}
