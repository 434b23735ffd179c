//! Shared execution of snapshot subscriptions.
//!
//! Thousands of sockets often run the very same subscription as the same
//! viewer (every open tab of one page). For subscriptions whose each message
//! is the whole current state ([`giftdrop_graphql::live::SNAPSHOT_SUBSCRIPTIONS`]),
//! the process runs ONE GraphQL execution per distinct (viewer, operation,
//! variables) and serializes each response once; every socket then only
//! frames and writes those bytes. A subscriber that joins later first gets
//! the latest response, then every later one; one that falls behind skips to
//! the latest, which is the current state, so no state is ever missed.
//!
//! An execution with a single subscriber (the usual case: each user watching
//! their own account) is polled by that subscriber itself, with no task and
//! no channel. When a second subscriber joins, the execution moves to a task
//! that broadcasts each response to all of them.
//!
//! The execution stops when its last subscriber goes away.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::task::{Context, Poll, Waker};

use futures_util::stream::BoxStream;
use futures_util::{StreamExt, stream};
use giftdrop_graphql::AppSchema;
use giftdrop_graphql::auth::{Auth, RequestData};
use giftdrop_graphql::error::{INTERNAL_MESSAGE, finish_errors};
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, DropGuard};

/// Responses buffered per shared execution before a slow socket skips ahead.
const CAPACITY: usize = 16;

/// One serialized result of a subscription, ready to frame.
#[derive(Clone, Debug)]
pub enum Frame {
    /// A response (`{"data":…}`, possibly with partial errors).
    Next(Payload),
    /// Several responses, in order: what a subscriber behind by more than
    /// one takes at once, so it costs one turn of the socket's streams and
    /// one write, not one each.
    Run(Run),
    /// A failed response: the serialized `errors` array. Ends the operation.
    Error(Arc<str>),
    /// The operation completed.
    Complete,
}

/// A serialized response, shared by every socket it goes to, with the
/// WebSocket frame of the protocol message first asked of it: thousands of
/// sockets that run one operation under the same subscription id (most
/// clients number theirs from 1) share that frame, byte for byte (a
/// server's frames are not masked), so each only hands the kernel the same
/// bytes, and reading it takes no lock (thousands of sockets on every core
/// ask).
#[derive(Clone, Debug)]
pub struct Payload(Arc<PayloadInner>);

#[derive(Debug)]
struct PayloadInner {
    json: Box<str>,
    framed: Framing,
}

/// Consecutive responses that many sockets take together (every socket
/// that had sent the same last winner, when a burst comes), with the
/// frames of all of them back to back, built once: such a socket writes
/// one slice and counts one reference, whatever the run's length.
#[derive(Clone, Debug)]
pub struct Run(Arc<RunInner>);

#[derive(Debug)]
struct RunInner {
    payloads: Box<[Payload]>,
    framed: Framing,
}

/// The WebSocket bytes of a shared payload or run under the first
/// `(message type, subscription id)` asked for.
#[derive(Debug, Default)]
struct Framing(OnceLock<Framed>);

/// A payload's or run's WebSocket frames for one (message type,
/// subscription id).
#[derive(Debug)]
struct Framed {
    kind: &'static str,
    id: Box<str>,
    bytes: Box<[u8]>,
}

impl Framing {
    /// True if the shared bytes are those of `(kind, id)`, built with
    /// `build` if none were yet; false if they were built for another.
    fn shares(&self, kind: &'static str, id: &str, build: impl FnOnce() -> Vec<u8>) -> bool {
        let framed = self.0.get_or_init(|| Framed {
            kind,
            id: id.into(),
            bytes: build().into_boxed_slice(),
        });
        framed.kind == kind && *framed.id == *id
    }

    fn bytes(&self) -> &[u8] {
        self.0.get().map_or(&[], |framed| &framed.bytes)
    }
}

impl Payload {
    /// The serialized response.
    pub fn as_str(&self) -> &str {
        &self.0.json
    }

    /// The WebSocket frame of the server message
    /// `{"type":kind,"id":id,"payload":…}`.
    fn frame(&self, kind: &str, id: &str) -> Vec<u8> {
        text_frame(&framed_message(kind, id, &self.0.json))
    }

    /// This payload's frame under `(kind, id)`: built once for the first
    /// (kind, id) asked for, and for any other each time. The shared frame
    /// goes as this payload itself, so writing it counts no reference on
    /// bytes that every socket on every core is writing too.
    pub fn into_wire(self, kind: &'static str, id: &str) -> Wire {
        if self.0.framed.shares(kind, id, || self.frame(kind, id)) {
            Wire::Shared(self)
        } else {
            Wire::Own(self.frame(kind, id))
        }
    }
}

impl Run {
    /// A run of `payloads`, in order.
    pub fn new(payloads: Box<[Payload]>) -> Self {
        Self(Arc::new(RunInner {
            payloads,
            framed: Framing::default(),
        }))
    }

    /// The responses, in order.
    pub fn payloads(&self) -> &[Payload] {
        &self.0.payloads
    }

    /// Every payload's frame under `(kind, id)`, back to back.
    fn frames(&self, kind: &'static str, id: &str) -> Vec<u8> {
        let mut bytes = Vec::new();
        for payload in self.payloads() {
            bytes.extend_from_slice(payload.clone().into_wire(kind, id).bytes());
        }
        bytes
    }

    /// The run's frames under `(kind, id)`, shared as [`Payload::into_wire`]
    /// shares one frame.
    pub fn into_wire(self, kind: &'static str, id: &str) -> Wire {
        if self.0.framed.shares(kind, id, || self.frames(kind, id)) {
            Wire::Run(self)
        } else {
            Wire::Own(self.frames(kind, id))
        }
    }
}

/// The bytes of whole WebSocket frames, as a socket writes them.
#[derive(Debug)]
pub enum Wire {
    /// A payload's shared frame.
    Shared(Payload),
    /// A run's shared frames.
    Run(Run),
    /// Frames of this socket's own.
    Own(Vec<u8>),
}

impl Wire {
    /// The frames' bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            // `into_wire` makes a shared wire only once its bytes are set.
            Wire::Shared(payload) => payload.0.framed.bytes(),
            Wire::Run(run) => run.0.framed.bytes(),
            Wire::Own(bytes) => bytes,
        }
    }
}

impl From<String> for Payload {
    fn from(json: String) -> Self {
        Self(Arc::new(PayloadInner {
            json: json.into_boxed_str(),
            framed: Framing::default(),
        }))
    }
}

/// A server message around an already serialized JSON payload, without
/// parsing it again.
pub(super) fn framed_message(kind: &str, id: &str, payload: &str) -> String {
    // The id is the client's: escaped as a JSON string.
    let id = serde_json::Value::from(id);
    format!(r#"{{"type":"{kind}","id":{id},"payload":{payload}}}"#)
}

/// The final, unmasked WebSocket text frame (RFC 6455 §5.2) of `message`,
/// as a server sends it.
pub(super) fn text_frame(message: &str) -> Vec<u8> {
    const FINAL_TEXT: u8 = 0x81;
    let length = message.len();
    let mut frame = Vec::with_capacity(length + 10);
    frame.push(FINAL_TEXT);
    match (u8::try_from(length), u16::try_from(length)) {
        (Ok(short @ 0..=125), _) => frame.push(short),
        (_, Ok(medium)) => {
            frame.push(126);
            frame.extend_from_slice(&medium.to_be_bytes());
        }
        _ => {
            frame.push(127);
            let long = u64::try_from(length).unwrap_or(u64::MAX);
            frame.extend_from_slice(&long.to_be_bytes());
        }
    }
    frame.extend_from_slice(message.as_bytes());
    frame
}

impl Frame {
    /// Serializes one response, once, its `INTERNAL` errors stamped with
    /// `correlation`, the id of the request that started the execution.
    pub fn of(mut response: async_graphql::Response, correlation: &str) -> Self {
        finish_errors(&mut response, correlation);
        let failed = response.data == async_graphql::Value::Null && !response.errors.is_empty();
        // Serializing these types cannot fail: they hold no maps with
        // non-string keys and no foreign serializers.
        let json = if failed {
            serde_json::to_string(&response.errors)
        } else {
            serde_json::to_string(&response)
        };
        match (failed, json) {
            (false, Ok(json)) => Frame::Next(json.into()),
            (true, Ok(json)) => Frame::Error(json.into()),
            (_, Err(err)) => {
                tracing::error!(error = %err, "could not serialize a subscription response");
                Frame::internal(correlation)
            }
        }
    }

    /// The generic `INTERNAL` failure, as every transport shows it: the
    /// generic message and the correlation id (the details go to the log).
    pub fn internal(correlation: &str) -> Self {
        // Both as JSON strings: escaped, and without a fallible serializer.
        let message = serde_json::Value::from(INTERNAL_MESSAGE);
        let correlation = serde_json::Value::from(correlation);
        Frame::Error(
            format!(
                r#"[{{"message":{message},"extensions":{{"code":"INTERNAL","correlationId":{correlation}}}}}]"#
            )
            .into(),
        )
    }

    /// The frames of an execution: one per response, then `Complete`
    /// unless a failure already ended it. `INTERNAL` errors carry
    /// `correlation`, the id of the request that started it.
    pub fn stream(
        responses: impl futures_util::Stream<Item = async_graphql::Response> + Send + 'static,
        correlation: String,
    ) -> BoxStream<'static, Frame> {
        until_final(
            responses
                .map(move |response| Frame::of(response, &correlation))
                .chain(stream::once(async { Frame::Complete })),
        )
    }

    /// The frames of `request` run for `data`'s viewer.
    pub fn execute(
        schema: &AppSchema,
        request: async_graphql::Request,
        data: RequestData,
    ) -> BoxStream<'static, Frame> {
        let correlation = data.meta.correlation_id.clone();
        Frame::stream(schema.execute_stream(request.data(data)), correlation)
    }

    /// True for a frame that ends the operation.
    pub fn is_final(&self) -> bool {
        !matches!(self, Frame::Next(_) | Frame::Run(_))
    }
}

/// `frames` up to and including the first final one.
pub(super) fn until_final(
    frames: impl futures_util::Stream<Item = Frame> + Send + 'static,
) -> BoxStream<'static, Frame> {
    frames
        .scan(false, |ended, frame| {
            let item = (!*ended).then(|| {
                *ended = frame.is_final();
                frame
            });
            async move { item }
        })
        .boxed()
}

/// The identity a shared execution runs as: two subscribers share only if
/// the resolvers would see the same viewer.
fn viewer_key(auth: &Auth) -> String {
    match auth {
        Auth::Anonymous => "anonymous".to_owned(),
        Auth::Invalid => "invalid".to_owned(),
        Auth::User(viewer) => {
            let mut key = viewer.user_id.to_string();
            for role in &viewer.roles {
                let _ = write!(key, ",{role:?}");
            }
            key
        }
    }
}

/// One execution and its subscribers.
struct Shared {
    state: Mutex<State>,
    /// The registry this execution is listed in, under `key`.
    running: Running<Shared>,
    key: Arc<str>,
}

struct State {
    /// The latest frame, written under this lock together with its
    /// delivery, so a joiner sees exactly "latest, then everything after".
    latest: Option<Frame>,
    mode: Mode,
}

enum Mode {
    /// A single subscriber, which polls the execution itself: no task, no
    /// channel. Most executions never get a second subscriber (each user
    /// watching their own account or wallet).
    Solo {
        frames: BoxStream<'static, Frame>,
        /// The subscriber's waker, woken when the execution moves to a task.
        waker: Option<Waker>,
    },
    /// A task runs the execution and broadcasts every frame.
    Broadcast {
        tx: broadcast::Sender<Frame>,
        /// The receiver of the subscriber that polled the execution before
        /// it moved, subscribed at the move, until that subscriber takes it.
        handoff: Option<broadcast::Receiver<Frame>>,
        /// Stops the task when the last subscriber drops this.
        _stop: DropGuard,
    },
    /// The solo execution delivered its final frame (in `latest`).
    Ended,
}

/// What a solo subscriber gets from polling the execution.
enum Solo {
    Frame(Frame),
    /// The execution moved to a task: follow it with this receiver.
    Moved(broadcast::Receiver<Frame>),
}

/// Executions by key, listed while they may be joined.
pub(super) type Running<T> = Arc<Mutex<HashMap<Arc<str>, Weak<T>>>>;

/// Unlists `me` from `running` under `key`, unless another execution has
/// taken its place there.
pub(super) fn forget<T>(running: &Running<T>, key: &str, me: &T) {
    let mut running = lock(running);
    if running
        .get(key)
        .is_some_and(|entry| std::ptr::eq(entry.as_ptr(), me))
    {
        running.remove(key);
    }
}

/// The key two subscribers share an execution under: same viewer, same
/// operation, same variables.
pub(super) fn request_key(auth: &Auth, request: &async_graphql::Request) -> Arc<str> {
    format!(
        "{}\0{}\0{}\0{}",
        viewer_key(auth),
        request.operation_name.as_deref().unwrap_or(""),
        serde_json::to_string(&request.variables).unwrap_or_default(),
        request.query,
    )
    .into()
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is an assignment, a lookup or one poll of
    // an execution whose result is stored after it returns: a panic cannot
    // leave the data half-changed.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The process's shared executions, keyed by viewer, operation and variables.
#[derive(Clone)]
pub struct SharedSubscriptions {
    running: Running<Shared>,
    logs: super::log::SharedLogs,
    /// Where the tasks that run shared executions go (see [`Feeds`]).
    feeds: Feeds,
}

/// The runtime the tasks of shared executions run on: never the sockets'
/// own. There, the task that takes a new winner in would wait behind every
/// socket of the round in progress (5,000 tasks queued by the last one)
/// before any socket could see it; on another runtime it records the
/// winner at once, and each socket still queued in the round sends it in
/// the same write as the rest.
pub type Feeds = tokio::runtime::Handle;

impl SharedSubscriptions {
    /// No execution running yet; shared log executions keep `log_window`
    /// frames each; the tasks of shared executions run on `feeds`.
    pub fn new(log_window: usize, feeds: Feeds) -> Self {
        Self {
            running: Running::default(),
            logs: super::log::SharedLogs::new(log_window, feeds.clone()),
            feeds,
        }
    }

    /// The shared live parts of log subscriptions.
    pub fn logs(&self) -> &super::log::SharedLogs {
        &self.logs
    }

    /// Executions running now (for tests and metrics).
    pub fn running(&self) -> usize {
        lock(&self.running)
            .values()
            .filter(|shared| shared.strong_count() > 0)
            .count()
    }

    /// The frames of `request` for one subscriber, joining a running
    /// execution of the same request and viewer or starting one.
    pub fn subscribe(
        &self,
        schema: &AppSchema,
        request: async_graphql::Request,
        data: RequestData,
    ) -> BoxStream<'static, Frame> {
        let key = request_key(&data.auth, &request);
        let mut running = lock(&self.running);
        if let Some(shared) = running.get(&key).and_then(Weak::upgrade) {
            // Never both locks at once here: a solo subscriber takes
            // `running` while holding its execution's state.
            drop(running);
            return join(shared, &self.feeds);
        }
        let frames = Frame::execute(schema, request, data);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                latest: None,
                mode: Mode::Solo {
                    frames,
                    waker: None,
                },
            }),
            running: Arc::clone(&self.running),
            key: Arc::clone(&key),
        });
        running.insert(key, Arc::downgrade(&shared));
        drop(running);
        metrics::gauge!("giftdrop_ws_shared_executions").increment(1.0);
        follow(shared, None, None)
    }
}

impl Shared {
    /// Unlists this execution, so nobody joins it any more.
    fn forget(&self) {
        forget(&self.running, &self.key, self);
    }

    /// The solo subscriber's poll: runs the execution itself.
    fn poll_solo(&self, cx: &mut Context<'_>) -> Poll<Solo> {
        let mut state = lock(&self.state);
        let state = &mut *state;
        let frame = match &mut state.mode {
            Mode::Solo { frames, waker } => match frames.poll_next_unpin(cx) {
                Poll::Pending => {
                    if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        *waker = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
                Poll::Ready(frame) => frame.unwrap_or(Frame::Complete),
            },
            Mode::Broadcast { handoff, .. } => {
                return Poll::Ready(
                    handoff
                        .take()
                        .map_or(Solo::Frame(Frame::Complete), Solo::Moved),
                );
            }
            Mode::Ended => {
                return Poll::Ready(Solo::Frame(state.latest.clone().unwrap_or(Frame::Complete)));
            }
        };
        if frame.is_final() {
            // Before the final frame is stored, so nobody joins a finished
            // run; whoever joined before gets it as the latest.
            self.forget();
            state.mode = Mode::Ended;
        }
        state.latest = Some(frame.clone());
        Poll::Ready(Solo::Frame(frame))
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The last subscriber left: the entry is dead.
        self.forget();
        metrics::gauge!("giftdrop_ws_shared_executions").decrement(1.0);
    }
}

/// A second (or later) subscriber joins `shared`.
fn join(shared: Arc<Shared>, feeds: &Feeds) -> BoxStream<'static, Frame> {
    let (rx, first) = {
        let mut state = lock(&shared.state);
        let mode = std::mem::replace(&mut state.mode, Mode::Ended);
        state.mode = match mode {
            // Its subscriber left while this one was joining: take its place.
            Mode::Solo { frames, .. } if Arc::strong_count(&shared) == 1 => Mode::Solo {
                frames,
                waker: None,
            },
            // Move the execution to a task that broadcasts its frames.
            // Nothing is sent before this lock is released, so both
            // receivers miss nothing after `latest`.
            Mode::Solo { frames, waker } => {
                let (tx, handoff) = broadcast::channel(CAPACITY);
                let stop = CancellationToken::new();
                feeds.spawn(broadcast_frames(
                    frames,
                    Arc::downgrade(&shared),
                    tx.clone(),
                    stop.clone(),
                ));
                if let Some(waker) = waker {
                    waker.wake();
                }
                Mode::Broadcast {
                    tx,
                    handoff: Some(handoff),
                    _stop: stop.drop_guard(),
                }
            }
            other => other,
        };
        let rx = match &state.mode {
            Mode::Broadcast { tx, .. } => Some(tx.subscribe()),
            // Solo: this subscriber polls the execution itself. Ended: the
            // latest frame is the final one, and all there is.
            Mode::Solo { .. } | Mode::Ended => None,
        };
        (rx, state.latest.clone())
    };
    follow(shared, rx, first)
}

/// The task of an execution with several subscribers.
async fn broadcast_frames(
    mut frames: BoxStream<'static, Frame>,
    me: Weak<Shared>,
    tx: broadcast::Sender<Frame>,
    stop: CancellationToken,
) {
    loop {
        let frame = tokio::select! {
            () = stop.cancelled() => break,
            frame = frames.next() => frame.unwrap_or(Frame::Complete),
        };
        // Every subscriber left while this frame was made.
        let Some(shared) = me.upgrade() else { break };
        let last = frame.is_final();
        if last {
            // Before the final frame, so nobody joins a finished run.
            shared.forget();
        }
        {
            let mut state = lock(&shared.state);
            let _ = tx.send(frame.clone());
            state.latest = Some(frame);
        }
        // Possibly the last reference, if every subscriber just left.
        drop(shared);
        if last {
            break;
        }
    }
}

/// One subscriber's view: the latest frame, then every later one, skipping
/// to the latest if it falls behind; ends after a final frame. Without a
/// receiver, the subscriber polls the execution itself until it moves.
fn follow(
    shared: Arc<Shared>,
    rx: Option<broadcast::Receiver<Frame>>,
    first: Option<Frame>,
) -> BoxStream<'static, Frame> {
    struct Follower {
        shared: Arc<Shared>,
        rx: Option<broadcast::Receiver<Frame>>,
        pending: Option<Frame>,
    }
    impl Drop for Follower {
        fn drop(&mut self) {
            // A solo subscriber leaving after its execution moved, before it
            // took its receiver: nobody will read that receiver.
            if self.rx.is_none()
                && let Mode::Broadcast { handoff, .. } = &mut lock(&self.shared.state).mode
            {
                *handoff = None;
            }
        }
    }
    let follower = Follower {
        shared,
        rx,
        pending: first,
    };
    until_final(stream::unfold(follower, |mut me| async move {
        let frame = loop {
            if let Some(frame) = me.pending.take() {
                break frame;
            }
            let Some(rx) = me.rx.as_mut() else {
                match poll_fn(|cx| me.shared.poll_solo(cx)).await {
                    Solo::Frame(frame) => break frame,
                    Solo::Moved(rx) => {
                        me.rx = Some(rx);
                        continue;
                    }
                }
            };
            match rx.recv().await {
                Ok(frame) => break frame,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    metrics::counter!("giftdrop_pubsub_resyncs_total").increment(1);
                    let state = lock(&me.shared.state);
                    if let Mode::Broadcast { tx, .. } = &state.mode {
                        me.rx = Some(tx.subscribe());
                    }
                    me.pending = state.latest.clone();
                }
                // Unreachable while `shared` holds a sender; ends cleanly anyway.
                Err(broadcast::error::RecvError::Closed) => break Frame::Complete,
            }
        };
        Some((frame, me))
    }))
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};

    use super::{Payload, Run, Wire, text_frame};

    /// The text a server frame carries, read back by tungstenite's parser.
    fn text_of(frame: &[u8]) -> String {
        let mut cursor = Cursor::new(frame);
        let (header, length) = FrameHeader::parse(&mut cursor)
            .expect("a frame header")
            .expect("a whole header");
        assert!(header.is_final);
        assert_eq!(header.opcode, OpCode::Data(Data::Text));
        assert_eq!(header.mask, None, "a server frame is never masked");
        let start = usize::try_from(cursor.position()).expect("offset");
        let body = &frame[start..];
        assert_eq!(u64::try_from(body.len()).expect("length"), length);
        String::from_utf8(body.to_vec()).expect("UTF-8")
    }

    #[test]
    fn text_frames_match_tungstenite_at_every_length_encoding() {
        // 7-bit, 16-bit and 64-bit lengths, on both sides of each boundary.
        for length in [0, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
            let message = "x".repeat(length);
            let ours = text_frame(&message);
            let mut theirs = Vec::new();
            Frame::message(message.clone(), OpCode::Data(Data::Text), true)
                .format(&mut theirs)
                .expect("format");
            assert_eq!(&ours[..], &theirs[..], "length {length}");
            assert_eq!(text_of(&ours), message);
        }
    }

    #[test]
    fn a_run_is_its_payloads_frames_back_to_back_shared_under_its_first_id() {
        let payloads: Vec<Payload> = (1..=3)
            .map(|n| Payload::from(format!(r#"{{"data":{{"n":{n}}}}}"#)))
            .collect();
        let run = Run::new(payloads.clone().into_boxed_slice());
        let wire = run.clone().into_wire("next", "1");
        assert!(matches!(wire, Wire::Run(_)));
        let expected: Vec<u8> = payloads
            .iter()
            .flat_map(|payload| payload.clone().into_wire("next", "1").bytes().to_vec())
            .collect();
        assert_eq!(wire.bytes(), &expected[..]);
        let again = run.clone().into_wire("next", "1");
        assert!(std::ptr::eq(wire.bytes(), again.bytes()));
        // Under another id: the same frames, this socket's own.
        let other = run.into_wire("next", "2");
        assert!(matches!(other, Wire::Own(_)));
        assert_eq!(other.bytes().len(), expected.len());
        assert_ne!(other.bytes(), &expected[..]);
    }

    #[test]
    fn a_payload_frames_each_kind_and_id_exactly_and_shares_the_first_frame() {
        let payload = Payload::from(r#"{"data":{"n":1}}"#.to_owned());
        let first = payload.clone().into_wire("next", "1");
        assert!(matches!(first, Wire::Shared(_)));
        assert_eq!(
            text_of(first.bytes()),
            r#"{"type":"next","id":"1","payload":{"data":{"n":1}}}"#
        );
        // The same frame again: the very same bytes, not a copy.
        let again = payload.clone().into_wire("next", "1");
        assert!(std::ptr::eq(first.bytes(), again.bytes()));
        // Another client's id is escaped as a JSON string, in its own frame.
        let other = payload.clone().into_wire("data", "a\"b");
        assert!(matches!(other, Wire::Own(_)));
        let parsed: serde_json::Value =
            serde_json::from_str(&text_of(other.bytes())).expect("JSON");
        assert_eq!(parsed["type"], "data");
        assert_eq!(parsed["id"], "a\"b");
        assert_eq!(parsed["payload"]["data"]["n"], 1);
        // The first frame stays the shared one.
        let after_other = payload.into_wire("next", "1");
        assert!(std::ptr::eq(first.bytes(), after_other.bytes()));
    }
}
