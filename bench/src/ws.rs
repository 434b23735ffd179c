//! A fleet of graphql-transport-ws sockets, each with one `meUpdated`
//! subscription, kept alive by one task per socket that answers pings and
//! records every `next` it receives.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures_util::{SinkExt, StreamExt, stream};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::Notify;
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
const BUFFER: usize = 1024;
pub(crate) const SUBSCRIPTION_ID: &str = "1";

/// What every socket of a fleet records, and the scenario reads: each
/// socket writes its own slot, and only the last delivery of a round wakes
/// the scenario, so measuring costs the load generator no message per
/// delivery.
struct Board {
    /// What the slots' times count from.
    base: Instant,
    /// Per socket, since the last [`Fleet::expect`]: 0 when nothing came,
    /// else the nanoseconds after `base` its `next` was read, shifted left
    /// once, with the low bit set when that `next` showed the watched role.
    slots: Vec<AtomicU64>,
    /// Deliveries still awaited in this round.
    remaining: AtomicUsize,
    /// Notified when `remaining` reaches 0 or a socket fails.
    done: Notify,
    /// The first failure of any socket.
    failure: Mutex<Option<String>>,
}

impl Board {
    fn fail(&self, reason: String) {
        let mut failure = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        failure.get_or_insert(reason);
        self.done.notify_one();
    }

    fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records socket `subscriber`'s `next`, read at `at`.
    fn record(&self, subscriber: usize, at: Instant, has_role: bool) {
        let nanos = u64::try_from(at.saturating_duration_since(self.base).as_nanos())
            .unwrap_or(u64::MAX >> 1)
            .max(1);
        let value = (nanos << 1) | u64::from(has_role);
        let Some(slot) = self.slots.get(subscriber) else {
            return self.fail(format!("no slot for subscriber {subscriber}"));
        };
        if slot.swap(value, Ordering::AcqRel) != 0 {
            return self.fail(format!(
                "subscriber {subscriber} got a second next in one round"
            ));
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_one();
        }
    }
}

/// One socket's `next` in a round.
pub struct Received {
    /// When it was read off the socket, before parsing.
    pub at: Instant,
    /// Whether `payload.data.meUpdated.roles` held the watched role.
    pub has_role: bool,
}

/// Open sockets, all subscribed to `meUpdated` as the same user.
pub struct Fleet {
    tasks: JoinSet<()>,
    board: Arc<Board>,
}

impl Fleet {
    /// Opens `count` sockets to `ws_url` signed in with `token`, waiting for
    /// the initial `next` of each; fails with the number that were open.
    /// With `distinct`, every socket sends a differently named operation,
    /// so the server cannot share one execution between them. Each socket
    /// notes whether the user's roles hold `role`.
    pub async fn open(
        ws_url: &str,
        token: &str,
        count: usize,
        distinct: bool,
        role: &'static str,
    ) -> Result<Self> {
        let board = Arc::new(Board {
            base: Instant::now(),
            slots: (0..count).map(|_| AtomicU64::new(0)).collect(),
            remaining: AtomicUsize::new(0),
            done: Notify::new(),
            failure: Mutex::new(None),
        });
        let mut tasks = JoinSet::new();
        let mut handshakes = stream::iter(0..count)
            .map(|n| subscribe_me(ws_url, token, distinct.then_some(n)))
            .buffer_unordered(PARALLEL_HANDSHAKES);
        while let Some(socket) = handshakes.next().await {
            let socket = socket
                .with_context(|| format!("opening subscription {} of {count}", tasks.len() + 1))?;
            tasks.spawn(keep_alive(tasks.len(), socket, Arc::clone(&board), role));
        }
        Ok(Self { tasks, board })
    }

    /// Starts a round: from now on every socket must receive exactly one
    /// `next`.
    pub fn expect(&mut self) -> Result<()> {
        self.ensure_quiet()?;
        self.board
            .remaining
            .store(self.board.slots.len(), Ordering::Release);
        Ok(())
    }

    /// Waits until every socket received its `next` of the round, at most
    /// until `deadline`, and returns them by socket.
    pub async fn collect(&mut self, deadline: tokio::time::Instant) -> Result<Vec<Received>> {
        let board = &self.board;
        loop {
            if let Some(failure) = board.failure() {
                bail!("{failure}");
            }
            let remaining = board.remaining.load(Ordering::Acquire);
            if remaining == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, board.done.notified())
                .await
                .is_err()
            {
                let received = board.slots.len() - remaining;
                bail!(
                    "only {received} of {} subscribers received it in time",
                    board.slots.len()
                );
            }
        }
        Ok(board
            .slots
            .iter()
            .map(|slot| {
                let value = slot.swap(0, Ordering::AcqRel);
                Received {
                    at: board.base + Duration::from_nanos(value >> 1),
                    has_role: value & 1 == 1,
                }
            })
            .collect())
    }

    /// Fails if any socket received anything or failed since the last
    /// round.
    pub fn ensure_quiet(&self) -> Result<()> {
        if let Some(failure) = self.board.failure() {
            bail!("{failure}");
        }
        let busy = self
            .board
            .slots
            .iter()
            .position(|slot| slot.load(Ordering::Acquire) != 0);
        ensure!(
            busy.is_none(),
            "subscriber {busy:?} got a next nobody caused"
        );
        ensure!(!self.tasks.is_empty(), "every socket is gone");
        Ok(())
    }

    /// Drops every socket.
    pub async fn close(mut self) {
        self.tasks.shutdown().await;
    }
}

/// The path of the GraphQL socket, `/graphql/ws` unless `--ws-path` set it.
static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Points every scenario's sockets at `path` (`--ws-path`).
pub fn use_path(path: &str) {
    let _ = PATH.set(path.to_owned());
}

/// The `ws://` address of the GraphQL socket of the server at `base_url`.
pub fn endpoint(base_url: &str) -> String {
    format!(
        "{}{}",
        base_url.trim_end_matches('/').replacen("http", "ws", 1),
        PATH.get().map_or("/graphql/ws", String::as_str)
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

/// A message of an established subscription, as the hot loops read it:
/// borrowed and typed, so checking a message costs no tree of JSON
/// values. Unknown fields are ignored.
#[derive(serde::Deserialize)]
struct Next<'a, D> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(borrow)]
    id: Option<&'a str>,
    payload: Option<NextPayload<D>>,
}

#[derive(serde::Deserialize)]
struct NextPayload<D> {
    data: Option<D>,
    errors: Option<serde::de::IgnoredAny>,
}

/// The `data` of one text frame of subscription [`SUBSCRIPTION_ID`];
/// `None` for a protocol ping (answered by the caller). Anything else, a
/// `next` with `errors` or without `data`, fails.
pub(crate) fn next_data<'a, D: serde::Deserialize<'a>>(text: &'a str) -> Result<Option<D>> {
    let message: Next<'a, D> =
        serde_json::from_str(text).with_context(|| format!("message is not a next: {text}"))?;
    if message.kind == "ping" {
        return Ok(None);
    }
    ensure!(
        message.kind == "next" && message.id == Some(SUBSCRIPTION_ID),
        "expected a next for subscription {SUBSCRIPTION_ID}, got {text}"
    );
    let payload = message.payload.context("next without a payload")?;
    ensure!(payload.errors.is_none(), "subscription errors: {text}");
    payload
        .data
        .map(Some)
        .with_context(|| format!("next without data: {text}"))
}

#[derive(serde::Deserialize)]
struct MeData<'a> {
    #[serde(rename = "meUpdated", borrow)]
    me_updated: Option<MeUser<'a>>,
}

#[derive(serde::Deserialize)]
struct MeUser<'a> {
    #[serde(borrow)]
    roles: Vec<&'a str>,
}

/// The roles of a `meUpdated` frame; `None` for a ping.
fn roles(text: &str) -> Result<Option<Vec<&str>>> {
    let Some(data) = next_data::<MeData<'_>>(text)? else {
        return Ok(None);
    };
    let user = data
        .me_updated
        .with_context(|| format!("next without meUpdated data: {text}"))?;
    Ok(Some(user.roles))
}

/// Serves one socket until it fails, recording each `next` on `board`.
async fn keep_alive(subscriber: usize, mut socket: Socket, board: Arc<Board>, role: &str) {
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
        match roles(text.as_str()) {
            Ok(Some(roles)) => board.record(subscriber, at, roles.contains(&role)),
            Ok(None) => {
                if let Err(err) = send(&mut socket, &json!({ "type": "pong" })).await {
                    break err;
                }
            }
            Err(err) => break err,
        }
    };
    board.fail(format!("subscriber {subscriber}: {failure:#}"));
}
