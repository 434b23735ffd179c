//! A fleet of graphql-transport-ws sockets, each with one `meUpdated`
//! subscription, kept alive by one task per socket that answers pings and
//! reports every `next` it receives.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures_util::{SinkExt, StreamExt, stream};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Handshakes in flight at once while opening a fleet.
const PARALLEL_HANDSHAKES: usize = 200;
/// Longest wait for any one handshake step.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Client socket buffers: messages here are tiny, and 10,000 sockets with
/// tungstenite's default 128 KiB buffers would cost the client ~1.3 GB.
const BUFFER: usize = 4 * 1024;
const SUBSCRIPTION_ID: &str = "1";

/// What a subscriber task reports.
#[derive(Debug)]
pub enum Event {
    /// A `next` arrived on subscriber `subscriber` at `at`.
    Next {
        /// Index of the socket in its fleet.
        subscriber: usize,
        /// When its frame was read off the socket, before parsing.
        at: Instant,
        /// `payload.data.meUpdated.roles`.
        roles: Vec<String>,
    },
    /// The socket closed or broke the protocol; it is gone.
    Failed {
        /// Index of the socket in its fleet.
        subscriber: usize,
        /// Why.
        reason: String,
    },
}

/// Open sockets, all subscribed to `meUpdated` as the same user.
pub struct Fleet {
    tasks: JoinSet<()>,
    /// Reports of every socket.
    pub events: mpsc::UnboundedReceiver<Event>,
}

impl Fleet {
    /// Opens `count` sockets to `ws_url` signed in with `token`, waiting for
    /// the initial `next` of each; fails with the number that were open.
    /// With `distinct`, every socket sends a differently named operation,
    /// so the server cannot share one execution between them.
    pub async fn open(ws_url: &str, token: &str, count: usize, distinct: bool) -> Result<Self> {
        let (sender, events) = mpsc::unbounded_channel();
        let mut tasks = JoinSet::new();
        let mut handshakes = stream::iter(0..count)
            .map(|n| subscribe_me(ws_url, token, distinct.then_some(n)))
            .buffer_unordered(PARALLEL_HANDSHAKES);
        while let Some(socket) = handshakes.next().await {
            let socket = socket
                .with_context(|| format!("opening subscription {} of {count}", tasks.len() + 1))?;
            tasks.spawn(keep_alive(tasks.len(), socket, sender.clone()));
        }
        Ok(Self { tasks, events })
    }

    /// Fails if any socket reported anything since the last call.
    pub fn ensure_quiet(&mut self) -> Result<()> {
        match self.events.try_recv() {
            Ok(event) => bail!("unexpected event on an idle fleet: {event:?}"),
            Err(mpsc::error::TryRecvError::Empty) => Ok(()),
            Err(mpsc::error::TryRecvError::Disconnected) => bail!("every socket is gone"),
        }
    }

    /// Drops every socket.
    pub async fn close(mut self) {
        self.tasks.shutdown().await;
    }
}

/// The `ws://` address of the GraphQL socket of the server at `base_url`.
pub fn endpoint(base_url: &str) -> String {
    format!(
        "{}/graphql/ws",
        base_url.trim_end_matches('/').replacen("http", "ws", 1)
    )
}

/// Connects and completes the graphql-transport-ws handshake, signed in
/// with `token` (anonymous without), with small buffers.
pub(crate) async fn connect(ws_url: &str, token: Option<&str>) -> Result<Socket> {
    let mut request = ws_url.into_client_request()?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let config = WebSocketConfig::default()
        .read_buffer_size(BUFFER)
        .write_buffer_size(0);
    let (mut socket, _) = step(tokio_tungstenite::connect_async_with_config(
        request,
        Some(config),
        true,
    ))
    .await?
    .context("WebSocket upgrade")?;
    let payload = token.map_or_else(
        || json!({}),
        |t| json!({ "authorization": format!("Bearer {t}") }),
    );
    send(
        &mut socket,
        &json!({ "type": "connection_init", "payload": payload }),
    )
    .await?;
    let ack = step(next_message(&mut socket)).await??;
    ensure!(
        ack["type"] == "connection_ack",
        "expected connection_ack, got {ack}"
    );
    Ok(socket)
}

/// Connects, signs in and subscribes to `meUpdated`, returning once the
/// initial `next` (the current state) arrived.
async fn subscribe_me(ws_url: &str, token: &str, name: Option<usize>) -> Result<Socket> {
    let mut socket = connect(ws_url, Some(token)).await?;
    let query = match name {
        Some(n) => format!("subscription S{n} {{ meUpdated {{ id roles }} }}"),
        None => "subscription { meUpdated { id roles } }".to_owned(),
    };
    let subscribe =
        json!({ "id": SUBSCRIPTION_ID, "type": "subscribe", "payload": { "query": query } });
    send(&mut socket, &subscribe).await?;
    let first = step(next_message(&mut socket)).await??;
    user_of(&first)?;
    Ok(socket)
}

pub(crate) async fn step<F: Future>(future: F) -> Result<F::Output> {
    tokio::time::timeout(STEP_TIMEOUT, future)
        .await
        .with_context(|| format!("no answer within {STEP_TIMEOUT:?}"))
}

pub(crate) async fn send(socket: &mut Socket, message: &Value) -> Result<()> {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .context("WebSocket send")
}

/// The next protocol message other than a ping, which it answers.
async fn next_message(socket: &mut Socket) -> Result<Value> {
    loop {
        let frame = socket.next().await.context("socket closed")??;
        let text = match frame {
            Message::Text(text) => text,
            Message::Close(frame) => bail!("closed by the server: {frame:?}"),
            _ => continue,
        };
        let message: Value = serde_json::from_str(text.as_str())
            .with_context(|| format!("message is not JSON: {text}"))?;
        if message["type"] != "ping" {
            return Ok(message);
        }
        send(socket, &json!({ "type": "pong" })).await?;
    }
}

/// `payload.data.meUpdated` of a `next` message.
fn user_of(message: &Value) -> Result<Value> {
    ensure!(
        message["type"] == "next" && message["id"] == SUBSCRIPTION_ID,
        "expected a next for subscription {SUBSCRIPTION_ID}, got {message}"
    );
    if let Some(errors) = message.pointer("/payload/errors") {
        bail!("subscription errors: {errors}");
    }
    match message.pointer("/payload/data/meUpdated") {
        Some(user) if user.is_object() => Ok(user.clone()),
        _ => bail!("next without meUpdated data: {message}"),
    }
}

/// A `next` of the subscription, as the hot loop reads it: borrowed and
/// typed, so checking a message costs no tree of JSON values. Unknown
/// fields are ignored; an `errors` member fails the message.
#[derive(serde::Deserialize)]
struct Next<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(borrow)]
    id: Option<&'a str>,
    payload: Option<NextPayload>,
}

#[derive(serde::Deserialize)]
struct NextPayload {
    data: Option<NextData>,
    errors: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct NextData {
    #[serde(rename = "meUpdated")]
    me_updated: Option<NextUser>,
}

#[derive(serde::Deserialize)]
struct NextUser {
    roles: Vec<String>,
}

/// What one frame of an established subscription is.
enum Read {
    /// A `next` with the user's roles.
    Roles(Vec<String>),
    /// A protocol ping (answered by the caller).
    Ping,
}

/// Checks one text frame of an established subscription.
fn read(text: &str) -> Result<Read> {
    let message: Next<'_> =
        serde_json::from_str(text).with_context(|| format!("message is not a next: {text}"))?;
    if message.kind == "ping" {
        return Ok(Read::Ping);
    }
    ensure!(
        message.kind == "next" && message.id == Some(SUBSCRIPTION_ID),
        "expected a next for subscription {SUBSCRIPTION_ID}, got {text}"
    );
    let payload = message.payload.context("next without a payload")?;
    ensure!(payload.errors.is_none(), "subscription errors: {text}");
    let user = payload
        .data
        .and_then(|d| d.me_updated)
        .with_context(|| format!("next without meUpdated data: {text}"))?;
    Ok(Read::Roles(user.roles))
}

/// Serves one socket until it fails, reporting each `next`.
async fn keep_alive(subscriber: usize, mut socket: Socket, events: mpsc::UnboundedSender<Event>) {
    let failure: anyhow::Error = loop {
        let frame = match socket.next().await {
            Some(Ok(frame)) => frame,
            Some(Err(err)) => break err.into(),
            None => break anyhow::anyhow!("socket closed"),
        };
        let at = Instant::now();
        let text = match frame {
            Message::Text(text) => text,
            Message::Close(frame) => break anyhow::anyhow!("closed by the server: {frame:?}"),
            _ => continue,
        };
        match read(text.as_str()) {
            Ok(Read::Roles(roles)) => {
                if events
                    .send(Event::Next {
                        subscriber,
                        at,
                        roles,
                    })
                    .is_err()
                {
                    return;
                }
            }
            Ok(Read::Ping) => {
                if let Err(err) = send(&mut socket, &json!({ "type": "pong" })).await {
                    break err;
                }
            }
            Err(err) => break err,
        }
    };
    let reason = format!("{failure:#}");
    // Nobody is listening any more only when the run is over.
    let _ = events.send(Event::Failed { subscriber, reason });
}
