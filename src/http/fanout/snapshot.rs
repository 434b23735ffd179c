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

use std::future::poll_fn;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};

use futures_util::stream::BoxStream;
use futures_util::{StreamExt, stream};
use giftdrop_graphql::AppSchema;
use giftdrop_graphql::auth::RequestData;
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::frame::{Frame, until_final};
use super::registry::{Feeds, Running, alive, forget, lock, request_key};

/// Responses buffered per shared execution before a slow socket skips ahead.
const CAPACITY: usize = 16;

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

/// The process's shared snapshot executions, by viewer, operation and
/// variables.
#[derive(Clone)]
pub(super) struct Snapshots {
    running: Running<Shared>,
    /// Where the tasks of executions with several subscribers run.
    feeds: Feeds,
}

impl Snapshots {
    /// None running yet; their tasks will run on `feeds`.
    pub(super) fn new(feeds: Feeds) -> Self {
        Self {
            running: Running::default(),
            feeds,
        }
    }

    /// Executions running now.
    pub(super) fn running(&self) -> usize {
        alive(&self.running)
    }

    /// The frames of `request` for one subscriber, joining a running
    /// execution of the same request and viewer or starting one.
    pub(super) fn subscribe(
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
