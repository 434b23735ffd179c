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
//! The execution stops when its last subscriber goes away.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use futures_util::stream::BoxStream;
use futures_util::{StreamExt, stream};
use giftdrop_graphql::AppSchema;
use giftdrop_graphql::auth::{Auth, RequestData};
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, DropGuard};

/// Responses buffered per shared execution before a slow socket skips ahead.
const CAPACITY: usize = 16;

/// One serialized result of a subscription, ready to frame.
#[derive(Clone, Debug)]
pub enum Frame {
    /// A response (`{"data":…}`, possibly with partial errors).
    Next(Arc<str>),
    /// A failed response: the serialized `errors` array. Ends the operation.
    Error(Arc<str>),
    /// The operation completed.
    Complete,
}

impl Frame {
    /// Serializes one response, once.
    pub fn of(response: &async_graphql::Response) -> Self {
        let failed = response.data == async_graphql::Value::Null && !response.errors.is_empty();
        // Serializing these types cannot fail: they hold no maps with
        // non-string keys and no foreign serializers.
        let json = if failed {
            serde_json::to_string(&response.errors)
        } else {
            serde_json::to_string(response)
        };
        match (failed, json) {
            (false, Ok(json)) => Frame::Next(json.into()),
            (true, Ok(json)) => Frame::Error(json.into()),
            (_, Err(err)) => {
                tracing::error!(error = %err, "could not serialize a subscription response");
                Frame::Error(
                    r#"[{"message":"Internal server error","extensions":{"code":"INTERNAL"}}]"#
                        .into(),
                )
            }
        }
    }

    /// The frames of an execution: one per response, then `Complete`
    /// unless a failure already ended it.
    pub fn stream(
        responses: impl futures_util::Stream<Item = async_graphql::Response> + Send + 'static,
    ) -> BoxStream<'static, Frame> {
        until_final(
            responses
                .map(|response| Frame::of(&response))
                .chain(stream::once(async { Frame::Complete })),
        )
    }

    /// True for a frame that ends the operation.
    pub fn is_final(&self) -> bool {
        !matches!(self, Frame::Next(_))
    }
}

/// `frames` up to and including the first final one.
fn until_final(
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

struct Shared {
    tx: broadcast::Sender<Frame>,
    /// The latest frame, written under this lock together with the send,
    /// so a joiner sees exactly "latest, then everything after".
    latest: Arc<Mutex<Option<Frame>>>,
    /// Stops the execution when the last subscriber drops this.
    _stop: DropGuard,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a single assignment or lookup: a
    // panic cannot leave the data half-changed.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The process's shared executions, keyed by viewer, operation and variables.
#[derive(Clone, Default)]
pub struct SharedSubscriptions {
    running: Arc<Mutex<HashMap<String, Weak<Shared>>>>,
}

impl SharedSubscriptions {
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
        let key = format!(
            "{}\0{}\0{}\0{}",
            viewer_key(&data.auth),
            request.operation_name.as_deref().unwrap_or(""),
            serde_json::to_string(&request.variables).unwrap_or_default(),
            request.query,
        );
        let shared = {
            let mut running = lock(&self.running);
            match running.get(&key).and_then(Weak::upgrade) {
                Some(shared) => shared,
                None => {
                    let shared = self.start(schema, request.data(data), key.clone());
                    running.insert(key, Arc::downgrade(&shared));
                    shared
                }
            }
        };
        let (rx, first) = {
            let latest = lock(&shared.latest);
            (shared.tx.subscribe(), latest.clone())
        };
        follow(shared, rx, first)
    }

    fn start(
        &self,
        schema: &AppSchema,
        request: async_graphql::Request,
        key: String,
    ) -> Arc<Shared> {
        let (tx, _) = broadcast::channel(CAPACITY);
        let latest = Arc::new(Mutex::new(None));
        let stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            tx: tx.clone(),
            latest: Arc::clone(&latest),
            _stop: stop.clone().drop_guard(),
        });
        let me = Arc::downgrade(&shared);
        let running = Arc::clone(&self.running);
        let mut frames = Frame::stream(schema.execute_stream(request));
        tokio::spawn(async move {
            metrics::gauge!("giftdrop_ws_shared_executions").increment(1.0);
            loop {
                let frame = tokio::select! {
                    () = stop.cancelled() => break,
                    frame = frames.next() => frame.unwrap_or(Frame::Complete),
                };
                let last = frame.is_final();
                if last {
                    // Before the final frame, so nobody joins a finished run.
                    forget(&running, &key, &me);
                }
                let mut latest = lock(&latest);
                let _ = tx.send(frame.clone());
                *latest = Some(frame);
                if last {
                    break;
                }
            }
            // Stopped because every subscriber left: the entry is dead.
            forget(&running, &key, &me);
            metrics::gauge!("giftdrop_ws_shared_executions").decrement(1.0);
        });
        shared
    }
}

/// Removes `key` if it still names this execution (or a dead one).
fn forget(running: &Mutex<HashMap<String, Weak<Shared>>>, key: &str, me: &Weak<Shared>) {
    let mut running = lock(running);
    if running
        .get(key)
        .is_some_and(|entry| entry.ptr_eq(me) || entry.strong_count() == 0)
    {
        running.remove(key);
    }
}

/// One subscriber's view: the latest frame, then every later one, skipping
/// to the latest if it falls behind; ends after a final frame.
fn follow(
    shared: Arc<Shared>,
    rx: broadcast::Receiver<Frame>,
    first: Option<Frame>,
) -> BoxStream<'static, Frame> {
    struct State {
        shared: Arc<Shared>,
        rx: broadcast::Receiver<Frame>,
        pending: Option<Frame>,
    }
    let state = State {
        shared,
        rx,
        pending: first,
    };
    until_final(stream::unfold(state, |mut state| async move {
        let frame = loop {
            if let Some(frame) = state.pending.take() {
                break frame;
            }
            match state.rx.recv().await {
                Ok(frame) => break frame,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    metrics::counter!("giftdrop_pubsub_resyncs_total").increment(1);
                    let latest = lock(&state.shared.latest);
                    state.rx = state.shared.tx.subscribe();
                    state.pending = latest.clone();
                }
                // Unreachable while `shared` holds a sender; ends cleanly anyway.
                Err(broadcast::error::RecvError::Closed) => break Frame::Complete,
            }
        };
        Some((frame, state))
    }))
}
