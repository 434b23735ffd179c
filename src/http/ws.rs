//! GraphQL subscriptions over WebSocket, speaking graphql-transport-ws
//! (preferred) and the legacy graphql-ws, through our own upgrade handler.
//!
//! async-graphql's socket has no init timeout, no duplicate-id or
//! subscribe-before-ack close codes and no subscription cap, and axum's
//! default upgrade reserves a 128 KiB read buffer per socket. Here every
//! rule of FLOWS.md §6 is explicit: 4400 unparseable message, 4401 subscribe
//! before ack, 4403 bad token, 4408 no init in time, 4409 duplicate id, 4429
//! second init; at most 50 subscriptions per connection; server pings; small
//! buffers. One task per connection drives all its subscriptions. The
//! connection follows its account ([`account`]): 4403 once the token
//! expires or an admin's ADMIN role is revoked, and every subscribe runs
//! with the roles the account holds then.
//!
//! Subscription messages skip tungstenite's framing: a server's frames are
//! not masked, so the frame of one winner under one subscription id is the
//! same bytes for every socket, built once
//! ([`Payload::into_wire`](super::shared::Payload::into_wire)); each
//! socket hands the kernel those shared bytes, a batch of them in one
//! vectored write. tungstenite reads the client's frames and writes the
//! rest (acknowledgements, pings, closes), and its buffer is always flushed
//! before shared bytes go out, so frames never interleave.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use axum::Extension;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::task::AtomicWaker;
use futures_util::{SinkExt, StreamExt, stream};
use giftdrop_domain::RequestMeta;
use giftdrop_graphql::auth::{Auth, RequestData};
use giftdrop_graphql::live::{is_log_subscription, is_snapshot_subscription};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use tokio_stream::StreamMap;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::shared::{Frame, Wire, framed_message as framed, text_frame};
use super::{AppState, ClientIp, CorrelationId};

mod account;

/// Most active subscriptions on one connection.
pub const MAX_SUBSCRIPTIONS: usize = 50;
/// Read buffer: clients send a few small messages (init, subscribe,
/// pongs), and every idle socket holds this much; a larger message is
/// read in several chunks into a buffer that grows to fit it.
const READ_BUFFER: usize = 1024;
/// Writes are gathered up to this much before they reach the socket.
const WRITE_BUFFER: usize = 4 * 1024;
/// Most pieces (a frame, or a shared run of them) gathered for one write:
/// what a socket behind by a burst (a draw's hundred winners) has waiting
/// goes in one write.
const BATCH: usize = 512;
/// Most slices one vectored write takes (Linux's `UIO_MAXIOV`).
const IOVECS: usize = 1024;
/// Largest message a client may send.
const MAX_MESSAGE: usize = 64 * 1024;

/// Protocol timings.
#[derive(Debug)]
pub struct WsSettings {
    /// Close a socket that sends no connection_init within this.
    pub init_timeout: Duration,
    /// Ping period; a socket silent for two periods is closed.
    pub ping_every: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    TransportWs,
    LegacyWs,
}

impl Protocol {
    fn next(self) -> &'static str {
        match self {
            Protocol::TransportWs => "next",
            Protocol::LegacyWs => "data",
        }
    }
}

/// The subprotocols served, most preferred first.
const PROTOCOLS: [(&str, Protocol); 2] = [
    ("graphql-transport-ws", Protocol::TransportWs),
    ("graphql-ws", Protocol::LegacyWs),
];

/// A valid WebSocket upgrade request (RFC 6455 §4.2.1, HTTP/1.1).
struct Handshake {
    accept: String,
    /// The subprotocol chosen among the client's, if it offered one we serve.
    protocol: Option<(&'static str, Protocol)>,
    upgrade: OnUpgrade,
}

/// True if the comma-separated `name` header lists `token` (any case).
fn lists(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

impl Handshake {
    /// Checks the upgrade request as axum's extractor does, with its
    /// answers: 400 for a request that is not a WebSocket upgrade, 426 for
    /// a connection that cannot be upgraded.
    fn of(request: &mut Request) -> Result<Self, (StatusCode, &'static str)> {
        let headers = request.headers();
        if !lists(headers, header::CONNECTION, "upgrade") {
            return Err((
                StatusCode::BAD_REQUEST,
                "Connection header did not include 'upgrade'",
            ));
        }
        if !lists(headers, header::UPGRADE, "websocket") {
            return Err((
                StatusCode::BAD_REQUEST,
                "`Upgrade` header did not include 'websocket'",
            ));
        }
        if headers.get(header::SEC_WEBSOCKET_VERSION) != Some(&HeaderValue::from_static("13")) {
            return Err((
                StatusCode::BAD_REQUEST,
                "`Sec-WebSocket-Version` header did not include '13'",
            ));
        }
        let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
            return Err((
                StatusCode::BAD_REQUEST,
                "`Sec-WebSocket-Key` header missing",
            ));
        };
        let accept = derive_accept_key(key.as_bytes());
        let protocol = PROTOCOLS
            .into_iter()
            .find(|(name, _)| lists(headers, header::SEC_WEBSOCKET_PROTOCOL, name));
        let Some(upgrade) = request.extensions_mut().remove::<OnUpgrade>() else {
            return Err((
                StatusCode::UPGRADE_REQUIRED,
                "WebSocket request couldn't be upgraded since no upgrade state was present",
            ));
        };
        Ok(Self {
            accept,
            protocol,
            upgrade,
        })
    }

    /// The `101 Switching Protocols` answer.
    fn response(&self) -> Response {
        let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(accept) = HeaderValue::from_str(&self.accept) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        if let Some((name, _)) = self.protocol {
            headers.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(name),
            );
        }
        response
    }
}

/// `GET /graphql/ws`.
pub async fn upgrade(
    State(state): State<AppState>,
    Extension(correlation): Extension<CorrelationId>,
    client: ClientIp,
    mut request: Request,
) -> Response {
    let handshake = match Handshake::of(&mut request) {
        Ok(handshake) => handshake,
        Err(refusal) => return refusal.into_response(),
    };
    let response = handshake.response();
    let connection = Connection {
        protocol: handshake.protocol.map_or(Protocol::TransportWs, |(_, p)| p),
        state,
        meta: RequestMeta {
            correlation_id: correlation.0,
        },
        client_ip: client.to_string(),
        auth: None,
        account: None,
        // Most sockets run one subscription.
        subscriptions: StreamMap::with_capacity(1),
    };
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
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(WRITE_BUFFER)
            .max_write_buffer_size(4 * MAX_MESSAGE)
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        let socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        let live = connection.state.live.clone();
        live.spawn(connection.run(socket));
    });
    response
}

type Sink = WebSocketStream<TokioIo<Upgraded>>;
type Close = (u16, &'static str);

/// A bad token: at init, once expired, or a user no longer there.
const FORBIDDEN: Close = (4403, "Forbidden");
/// An infrastructure failure while reading credentials.
const INTERNAL: Close = (1011, "Internal error");

struct Connection {
    state: AppState,
    protocol: Protocol,
    meta: RequestMeta,
    client_ip: String,
    /// `None` until connection_init was accepted.
    auth: Option<Auth>,
    /// The signed-in account, kept current; `None` when anonymous.
    account: Option<account::Account>,
    /// The serialized results of each operation, by operation id.
    subscriptions: StreamMap<Arc<str>, BoxStream<'static, Frame>>,
}

/// A broken socket: stop serving it.
struct Gone;

/// What the connection's task was woken for.
enum Event {
    Shutdown,
    /// No connection_init in time, or, once acknowledged, the token expired.
    Deadline,
    /// The account may have changed.
    Account,
    Ping,
    Frame(Arc<str>, Frame),
    Incoming(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
}

/// The waker the socket's read side is polled with: it wakes the task and
/// notes that the socket has something to read. A socket is mostly woken
/// to write a frame, and reading it then would cost a buffer fill and a
/// readiness check for nothing, so the task polls it only when this says.
struct ReadWake {
    ready: AtomicBool,
    task: AtomicWaker,
}

impl Wake for ReadWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.store(true, Ordering::Release);
        self.task.wake();
    }
}

async fn send(sink: &mut Sink, value: &Value) -> Result<(), Gone> {
    sink.send(Message::Text(Utf8Bytes::from(value.to_string())))
        .await
        .map_err(|_| Gone)
}

/// Writes whole frames, already encoded, straight to the socket, in as few
/// vectored writes as it takes. Whatever tungstenite still holds goes first,
/// so its frames and these never interleave.
async fn write_frames(sink: &mut Sink, frames: Vec<Wire>) -> Result<(), Gone> {
    sink.flush().await.map_err(|_| Gone)?;
    let socket = sink.get_mut();
    // The first frame not wholly written, and how much of it was.
    let (mut first, mut offset) = (0, 0);
    let mut slices = Vec::with_capacity(frames.len().min(IOVECS));
    while let Some(rest) = frames.get(first..).filter(|rest| !rest.is_empty()) {
        slices.clear();
        slices.extend(rest.iter().take(IOVECS).enumerate().map(|(n, frame)| {
            let bytes = frame.bytes();
            std::io::IoSlice::new(if n == 0 {
                bytes.get(offset..).unwrap_or_default()
            } else {
                bytes
            })
        }));
        let mut written = socket.write_vectored(&slices).await.map_err(|_| Gone)?;
        if written == 0 {
            return Err(Gone);
        }
        for frame in rest {
            let left = frame.bytes().len() - offset;
            if written < left {
                offset += written;
                break;
            }
            written -= left;
            offset = 0;
            first += 1;
        }
    }
    Ok(())
}

impl Connection {
    /// Serves the connection until it closes. Not an `async fn`: that keeps
    /// a second copy of its arguments for as long as it runs, in every idle
    /// socket's task.
    fn run(mut self, mut socket: Sink) -> impl Future<Output = ()> + Send {
        metrics::gauge!("giftdrop_ws_connections").increment(1.0);
        async move {
            // Boxed: connection_init's deadline, then the token's expiry
            // (none for an anonymous connection).
            let mut deadline = Some(Box::pin(tokio::time::sleep(self.state.ws.init_timeout)));
            let mut acked = false;
            let ping_every = self.state.ws.ping_every;
            let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
            let mut last_seen = Instant::now();
            // Registered once for the whole connection, not on every turn.
            let shutdown = self.state.shutdown.clone();
            let mut shutdown = std::pin::pin!(shutdown.cancelled());
            let read_wake = Arc::new(ReadWake {
                ready: AtomicBool::new(true),
                task: AtomicWaker::new(),
            });
            let read_waker = Waker::from(Arc::clone(&read_wake));
            // Whether frames are looked at first: not right after a batch,
            // so a busy feed cannot starve the client's messages and pings.
            let mut frames_first = true;
            let close: Result<Option<Close>, Gone> = loop {
                if !acked && self.auth.is_some() {
                    acked = true;
                    deadline = self
                        .account
                        .as_ref()
                        .map(|account| Box::pin(tokio::time::sleep(account.remaining())));
                }
                let event = poll_fn(|cx| {
                    let subscriptions = &mut self.subscriptions;
                    // An empty map answers `Ready(None)`: nothing to wait on.
                    let mut frame = |cx: &mut Context<'_>| match subscriptions.poll_next_unpin(cx) {
                        Poll::Ready(Some((id, frame))) => Some(Event::Frame(id, frame)),
                        Poll::Ready(None) | Poll::Pending => None,
                    };
                    if frames_first && let Some(event) = frame(cx) {
                        return Poll::Ready(event);
                    }
                    read_wake.task.register(cx.waker());
                    if read_wake.ready.swap(false, Ordering::AcqRel)
                        && let Poll::Ready(message) =
                            socket.poll_next_unpin(&mut Context::from_waker(&read_waker))
                    {
                        // More may be buffered: read again next turn.
                        read_wake.ready.store(true, Ordering::Release);
                        return Poll::Ready(Event::Incoming(message));
                    }
                    if ping.poll_tick(cx).is_ready() {
                        return Poll::Ready(Event::Ping);
                    }
                    if shutdown.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Event::Shutdown);
                    }
                    if let Some(deadline) = deadline.as_mut()
                        && deadline.as_mut().poll(cx).is_ready()
                    {
                        return Poll::Ready(Event::Deadline);
                    }
                    if let Some(account) = self.account.as_mut()
                        && account.poll_changed(cx).is_ready()
                    {
                        return Poll::Ready(Event::Account);
                    }
                    if !frames_first && let Some(event) = frame(cx) {
                        return Poll::Ready(event);
                    }
                    frames_first = true;
                    Poll::Pending
                })
                .await;
                match event {
                    Event::Shutdown => break Ok(Some((1001, "Server is shutting down"))),
                    Event::Deadline if acked => break Ok(Some(FORBIDDEN)),
                    Event::Deadline => {
                        break Ok(Some((4408, "Connection initialisation timeout")));
                    }
                    Event::Account => match Box::pin(self.on_account_change()).await {
                        None => {}
                        close => break Ok(close),
                    },
                    Event::Ping => {
                        if last_seen.elapsed() > ping_every * 2 {
                            break Ok(Some((1001, "No response to pings")));
                        }
                        if let Err(gone) =
                            Self::ping(self.protocol, self.auth.is_some(), &mut socket).await
                        {
                            break Err(gone);
                        }
                    }
                    Event::Frame(id, frame) => {
                        frames_first = false;
                        // Boxed, like message handling: inline, the batch's
                        // writes would size every idle socket's task.
                        if let Err(gone) =
                            Box::pin(self.forward_ready(&mut socket, id, frame)).await
                        {
                            break Err(gone);
                        }
                    }
                    Event::Incoming(frame) => {
                        last_seen = Instant::now();
                        match frame {
                            None | Some(Err(_) | Ok(Message::Close(_))) => break Ok(None),
                            // Boxed: handling a message (credentials lookups,
                            // starting an execution) takes large futures, and
                            // inline they would size every idle socket's task.
                            Some(Ok(Message::Text(text))) => {
                                match Box::pin(self.on_message(&mut socket, text.as_str())).await {
                                    Ok(None) => {}
                                    other => break other,
                                }
                            }
                            Some(Ok(Message::Binary(_))) => {
                                break Ok(Some((4400, "Binary messages are not supported")));
                            }
                            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                        }
                    }
                }
            };
            if let Ok(Some((code, reason))) = close {
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.into(),
                };
                let _ = socket.send(Message::Close(Some(frame))).await;
            }
            metrics::gauge!("giftdrop_ws_subscriptions").decrement(self.subscriptions.len() as f64);
            metrics::gauge!("giftdrop_ws_connections").decrement(1.0);
        }
    }

    async fn ping(protocol: Protocol, acked: bool, sink: &mut Sink) -> Result<(), Gone> {
        // A WebSocket ping frame is answered by every client (browsers
        // included), which keeps `last_seen` fresh; the protocol-level
        // message is what graphql-transport-ws clients expect.
        sink.send(Message::Ping(Bytes::new()))
            .await
            .map_err(|_| Gone)?;
        let text = match protocol {
            Protocol::TransportWs => r#"{"type":"ping"}"#,
            Protocol::LegacyWs if acked => r#"{"type":"ka"}"#,
            Protocol::LegacyWs => return Ok(()),
        };
        sink.send(Message::Text(text.into()))
            .await
            .map_err(|_| Gone)
    }

    /// Writes `frame`, then every other frame already waiting on this
    /// connection's subscriptions (up to [`BATCH`]), in one vectored
    /// write: a burst of winners reaches a socket in one write, not one
    /// each.
    async fn forward_ready(
        &mut self,
        sink: &mut Sink,
        id: Arc<str>,
        frame: Frame,
    ) -> Result<(), Gone> {
        let mut wire = Vec::with_capacity(4);
        self.forward(&mut wire, &id, frame);
        while wire.len() < BATCH {
            let ready = poll_fn(|cx| match self.subscriptions.poll_next_unpin(cx) {
                Poll::Ready(ready) => Poll::Ready(ready),
                Poll::Pending => Poll::Ready(None),
            })
            .await;
            let Some((id, frame)) = ready else { break };
            self.forward(&mut wire, &id, frame);
        }
        write_frames(sink, wire).await
    }

    /// Adds the WebSocket frames of one subscription frame to `wire`.
    fn forward(&mut self, wire: &mut Vec<Wire>, id: &str, frame: Frame) {
        let text = |message: String| Wire::Own(text_frame(&message));
        let last = frame.is_final();
        let failed = matches!(frame, Frame::Error(_));
        match (frame, self.protocol) {
            (Frame::Next(payload), protocol) => wire.push(payload.into_wire(protocol.next(), id)),
            (Frame::Run(run), protocol) => wire.push(run.into_wire(protocol.next(), id)),
            // graphql-transport-ws: an `error` message ends the operation.
            (Frame::Error(errors), Protocol::TransportWs) => {
                wire.push(text(framed("error", id, &errors)));
            }
            // graphql-ws: the failed result as `data`, then `complete`.
            (Frame::Error(errors), Protocol::LegacyWs) => wire.push(text(framed(
                "data",
                id,
                &format!(r#"{{"data":null,"errors":{errors}}}"#),
            ))),
            (Frame::Complete, _) => {}
        }
        if last {
            self.subscriptions.remove(id);
            metrics::gauge!("giftdrop_ws_subscriptions").decrement(1.0);
            if !(failed && self.protocol == Protocol::TransportWs) {
                wire.push(text(json!({ "type": "complete", "id": id }).to_string()));
            }
        }
    }

    /// Handles one client message; `Ok(Some(close))` ends the connection.
    async fn on_message(&mut self, sink: &mut Sink, text: &str) -> Result<Option<Close>, Gone> {
        const INVALID: Close = (4400, "Invalid message received");
        let Ok(Value::Object(message)) = serde_json::from_str::<Value>(text) else {
            return Ok(Some(INVALID));
        };
        let Some(kind) = message.get("type").and_then(Value::as_str) else {
            return Ok(Some(INVALID));
        };
        let id = message
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty());
        match (self.protocol, kind) {
            (_, "connection_init") => self.on_init(sink, message.get("payload")).await,
            (Protocol::TransportWs, "ping") => {
                send(sink, &json!({ "type": "pong" })).await.map(|()| None)
            }
            (Protocol::TransportWs, "pong") => Ok(None),
            (Protocol::TransportWs, "subscribe") | (Protocol::LegacyWs, "start") => {
                let Some(id) = id else {
                    return Ok(Some(INVALID));
                };
                self.on_subscribe(sink, id.to_owned(), message.get("payload").cloned())
                    .await
            }
            (Protocol::TransportWs, "complete") | (Protocol::LegacyWs, "stop") => {
                let Some(id) = id else {
                    return Ok(Some(INVALID));
                };
                if self.subscriptions.remove(id).is_some() {
                    metrics::gauge!("giftdrop_ws_subscriptions").decrement(1.0);
                    if self.protocol == Protocol::LegacyWs {
                        send(sink, &json!({ "type": "complete", "id": id })).await?;
                    }
                }
                Ok(None)
            }
            (Protocol::LegacyWs, "connection_terminate") => Ok(Some((1000, "Normal closure"))),
            _ => Ok(Some(INVALID)),
        }
    }

    async fn on_init(
        &mut self,
        sink: &mut Sink,
        payload: Option<&Value>,
    ) -> Result<Option<Close>, Gone> {
        if self.auth.is_some() {
            return Ok(Some((4429, "Too many initialisation requests")));
        }
        let token = payload
            .and_then(|p| p.get("authorization").or_else(|| p.get("Authorization")))
            .and_then(Value::as_str);
        match account::sign_in(&self.state.services, token).await {
            Ok((Auth::Invalid, _)) => {
                if self.protocol == Protocol::LegacyWs {
                    send(sink, &json!({ "type": "connection_error", "payload": { "message": "Forbidden" } })).await?;
                }
                Ok(Some(FORBIDDEN))
            }
            Ok((auth, account)) => {
                self.auth = Some(auth);
                self.account = account;
                send(sink, &json!({ "type": "connection_ack" })).await?;
                if self.protocol == Protocol::LegacyWs {
                    send(sink, &json!({ "type": "ka" })).await?;
                }
                Ok(None)
            }
            Err(err) => {
                tracing::error!(error = %err, "could not resolve WebSocket credentials");
                Ok(Some(INTERNAL))
            }
        }
    }

    /// The account as it is now, for a subscribe or after a change; `Err`
    /// closes the connection: the token expired, the user is gone, or the
    /// account could not be read.
    async fn current_auth(&mut self) -> Result<Auth, Close> {
        let Some(account) = self.account.as_mut() else {
            // Anonymous: nothing to follow.
            return self.auth.clone().ok_or((4401, "Unauthorized"));
        };
        match account.current(&self.state.services).await {
            Ok(Auth::Invalid) => Err(FORBIDDEN),
            Ok(auth) => {
                self.auth = Some(auth.clone());
                Ok(auth)
            }
            Err(err) => {
                tracing::error!(error = %err, "could not read a WebSocket connection's account");
                Err(INTERNAL)
            }
        }
    }

    /// An admin's account changed: closes the connection once it is no
    /// longer an admin, since its running subscriptions may show what only
    /// admins see.
    async fn on_account_change(&mut self) -> Option<Close> {
        match self.current_auth().await {
            Ok(Auth::User(viewer)) if viewer.is_admin() => None,
            Ok(_) => Some(FORBIDDEN),
            Err(close) => Some(close),
        }
    }

    async fn on_subscribe(
        &mut self,
        sink: &mut Sink,
        id: String,
        payload: Option<Value>,
    ) -> Result<Option<Close>, Gone> {
        if self.auth.is_none() {
            return Ok(Some((4401, "Unauthorized")));
        }
        if self.subscriptions.contains_key(id.as_str()) {
            // The close reason must fit a control frame (123 bytes).
            return Ok(Some((4409, "Subscriber for this id already exists")));
        }
        let Some(Ok(mut request)) = payload.map(serde_json::from_value::<async_graphql::Request>)
        else {
            return Ok(Some((4400, "Invalid message received")));
        };
        if self.subscriptions.len() >= MAX_SUBSCRIPTIONS {
            let error = json!({
                "message": format!("At most {MAX_SUBSCRIPTIONS} active subscriptions per connection: complete one first"),
                "extensions": { "code": "RATE_LIMITED", "retryAfterSeconds": 1 }
            });
            send(
                sink,
                &json!({ "type": "error", "id": id, "payload": [error] }),
            )
            .await?;
            return Ok(None);
        }
        // As the account is now: an expired token or a revoked role no
        // longer authorizes anything.
        let auth = match self.current_auth().await {
            Ok(auth) => auth,
            Err(close) => return Ok(Some(close)),
        };
        let data = RequestData::new(auth, self.meta.clone(), self.client_ip.clone());
        let operation_name = request.operation_name.clone();
        // Parsed once (or taken from the cache) here; execution reuses it.
        if let Err(error) = self.state.documents.prepare_long_lived(&mut request) {
            let refused = async_graphql::Response::from_errors(vec![error]);
            let frames = Frame::stream(stream::once(async { refused }), data.meta.correlation_id);
            self.subscriptions.insert(id.into(), frames);
            metrics::gauge!("giftdrop_ws_subscriptions").increment(1.0);
            return Ok(None);
        }
        let (snapshot, log) = request.parsed_query().map_or((false, false), |document| {
            (
                is_snapshot_subscription(document, operation_name.as_deref()),
                is_log_subscription(document, operation_name.as_deref()),
            )
        });
        let responses = if snapshot {
            self.state
                .shared
                .subscribe(&self.state.schema, request, data)
        } else if log {
            self.state
                .shared
                .logs()
                .subscribe(&self.state.schema, request, data)
        } else {
            Frame::execute(&self.state.schema, request, data)
        };
        self.subscriptions.insert(id.into(), responses);
        metrics::gauge!("giftdrop_ws_subscriptions").increment(1.0);
        Ok(None)
    }
}
