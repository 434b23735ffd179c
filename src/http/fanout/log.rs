//! The shared live part of event-log subscriptions
//! ([`giftdrop_graphql::live::LOG_SUBSCRIPTIONS`]).
//!
//! `winnerAnnounced` sends each winner once, in sequence order: the ones
//! after the client's cursor, from the database, then live. The thousands
//! of browsers watching one event run the same operation; with an
//! execution each, every winner was resolved and serialized once per
//! socket. Here ONE execution of the operation runs for each (viewer,
//! operation, variables), an ordinary one: its frames, each at the
//! position its item's `sequence` shows ([`LogShape::position`]), are kept
//! in a short [`Window`]. Every subscriber reads the window after the last
//! position it sent. One that finds the window moved past it (it fell
//! behind, or it joined once the window had dropped the first items) runs
//! the operation on its own, its cursor set to that last position
//! ([`LogShape::request`]), until it reaches the window again: it never
//! skips a position and never repeats one.
//!
//! The live execution stops when its last subscriber goes away.

use std::future::poll_fn;
use std::sync::{Arc, Weak};
use std::task::Poll;

use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use giftdrop_graphql::AppSchema;
use giftdrop_graphql::auth::RequestData;
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::frame::{Frame, until_final};
use super::plan::LogShape;
use super::registry::{Feeds, Running, alive, forget, lock, request_key};
use super::window::{Next, Window};

/// One execution of the operation: its frames, each with the position of
/// its item (`None` for a frame that is no item).
struct Execution {
    frames: BoxStream<'static, (Frame, Option<i32>)>,
    /// The id of the request it runs for, which its failures carry.
    correlation: String,
}

/// Runs the shared operation from a cursor, as one subscriber.
type Execute = dyn Fn(i32, RequestData) -> Execution + Send + Sync;

/// The execution of `shape` after position `after`, for `data`'s viewer.
fn execution(
    schema: &AppSchema,
    shape: &Arc<LogShape>,
    after: i32,
    data: RequestData,
) -> Execution {
    let correlation = data.meta.correlation_id.clone();
    let request = shape.request(after).data(data);
    let frames = {
        let shape = Arc::clone(shape);
        let correlation = correlation.clone();
        schema
            .execute_stream(request)
            .map(move |response| {
                let position = shape.position(&response);
                (Frame::of(response, &correlation), position)
            })
            .chain(stream::once(async { (Frame::Complete, None) }))
            .boxed()
    };
    Execution {
        frames,
        correlation,
    }
}

/// One live execution and its subscribers.
struct Log {
    window: std::sync::Mutex<Window>,
    /// Bumped after every change to `window`.
    changed: watch::Sender<()>,
    execute: Box<Execute>,
    /// The cursor of the operation, where every subscriber starts.
    start: i32,
    running: Running<Log>,
    key: Arc<str>,
    /// Stops the execution's task when the last subscriber drops this.
    _stop: DropGuard,
}

impl Log {
    fn change(&self, change: impl FnOnce(&mut Window)) {
        change(&mut lock(&self.window));
        self.changed.send_replace(());
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        forget(&self.running, &self.key, self);
        metrics::gauge!("giftdrop_ws_shared_logs").decrement(1.0);
    }
}

/// The process's shared live log executions, by viewer, operation and
/// variables.
#[derive(Clone)]
pub struct SharedLogs {
    running: Running<Log>,
    /// Frames each execution keeps (`WS_LOG_WINDOW`).
    window: usize,
    /// Where the live executions' tasks run.
    feeds: Feeds,
}

impl SharedLogs {
    /// Shared logs keeping `window` frames each (at least one), their
    /// live executions running on `feeds`.
    pub(super) fn new(window: usize, feeds: Feeds) -> Self {
        Self {
            running: Running::default(),
            window: window.max(1),
            feeds,
        }
    }

    /// Live executions running now (for tests and metrics).
    pub fn running(&self) -> usize {
        alive(&self.running)
    }

    /// The frames of `request`, a log subscription shaped `shape`, for one
    /// subscriber: the shared live frames, caught up on its own when it is
    /// behind them.
    pub(super) fn subscribe(
        &self,
        schema: &AppSchema,
        request: &async_graphql::Request,
        shape: LogShape,
        data: RequestData,
    ) -> BoxStream<'static, Frame> {
        let key = request_key(&data.auth, request);
        let start = shape.start();
        self.join(key, start, data, || {
            let schema = schema.clone();
            let shape = Arc::new(shape);
            Box::new(move |after, data| execution(&schema, &shape, after, data))
        })
    }

    /// One subscriber of the execution under `key`, started after `start`
    /// with `execute()` unless one is running.
    fn join(
        &self,
        key: Arc<str>,
        start: i32,
        data: RequestData,
        execute: impl FnOnce() -> Box<Execute>,
    ) -> BoxStream<'static, Frame> {
        let mut running = lock(&self.running);
        let log = if let Some(log) = running.get(&key).and_then(Weak::upgrade) {
            log
        } else {
            let execute = execute();
            let live = execute(start, data.clone());
            let stop = CancellationToken::new();
            let log = Arc::new(Log {
                window: std::sync::Mutex::new(Window::new(start, self.window)),
                changed: watch::Sender::new(()),
                execute,
                start,
                running: Arc::clone(&self.running),
                key: Arc::clone(&key),
                _stop: stop.clone().drop_guard(),
            });
            running.insert(key, Arc::downgrade(&log));
            metrics::gauge!("giftdrop_ws_shared_logs").increment(1.0);
            self.feeds.spawn(drive(live, Arc::downgrade(&log), stop));
            log
        };
        drop(running);
        follow(log, data)
    }
}

/// Most frames of the live execution recorded under one window lock.
const DRAIN: usize = 256;

/// The task of one live execution: records its frames in the window, all
/// that are ready at once before the subscribers are woken, so a burst of
/// winners (a draw's hundred) wakes each of them once, not once a frame.
async fn drive(mut live: Execution, log: Weak<Log>, stop: CancellationToken) {
    let mut ready: Vec<(Frame, Option<i32>)> = Vec::new();
    loop {
        let next = poll_fn(|cx| {
            while ready.len() < DRAIN {
                match live.frames.poll_next_unpin(cx) {
                    Poll::Ready(item) => {
                        let item = item.unwrap_or((Frame::Complete, None));
                        let last = item.0.is_final();
                        ready.push(item);
                        if last {
                            break;
                        }
                    }
                    Poll::Pending => break,
                }
            }
            if ready.is_empty() {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        });
        tokio::select! {
            () = stop.cancelled() => return,
            () = next => {}
        }
        // Every subscriber left while these frames were made.
        let Some(log) = log.upgrade() else { return };
        let mut end = None;
        log.change(|window| {
            for (frame, position) in ready.drain(..) {
                match (frame, position) {
                    (Frame::Next(payload), Some(position)) => window.push(position, payload),
                    (frame, _) => {
                        end = Some(if frame.is_final() {
                            frame
                        } else {
                            tracing::error!("a live log frame without a position");
                            Frame::internal(&live.correlation)
                        });
                        break;
                    }
                }
            }
        });
        if let Some(end) = end {
            // Before the final frame, so nobody joins a finished run.
            forget(&log.running, &log.key, &log);
            log.change(|window| window.end(end));
            return;
        }
    }
}

/// One subscriber of a shared log.
struct Follower {
    log: Arc<Log>,
    changed: watch::Receiver<()>,
    data: RequestData,
    /// The position of the last item sent; at first, the operation's cursor.
    last: i32,
    /// Its own execution after `last`, while the window is past it.
    own: Option<Execution>,
}

impl Follower {
    async fn next(&mut self) -> Frame {
        loop {
            self.changed.borrow_and_update();
            let next = lock(&self.log.window).after(self.last);
            if !matches!(next, Next::Behind) {
                // The window has everything after `last`: its own
                // execution (if it had one) has caught up.
                self.own = None;
            }
            match next {
                Next::Frames(frame, count) => {
                    // Past `i32::MAX` (never reached), the operation fails.
                    let Some(last) = i32::try_from(count)
                        .ok()
                        .and_then(|count| self.last.checked_add(count))
                    else {
                        return Frame::internal(&self.data.meta.correlation_id);
                    };
                    self.last = last;
                    return frame;
                }
                Next::End(frame) => return frame,
                Next::Wait => {
                    if self.changed.changed().await.is_err() {
                        return Frame::Complete;
                    }
                }
                Next::Behind => {
                    if let Some(frame) = self.catch_up().await {
                        return frame;
                    }
                }
            }
        }
    }

    /// The next frame of its own execution after `last` (started if
    /// needed); `None` for an item already sent.
    async fn catch_up(&mut self) -> Option<Frame> {
        let own = self.own.get_or_insert_with(|| {
            metrics::counter!("giftdrop_pubsub_resyncs_total").increment(1);
            (self.log.execute)(self.last, self.data.clone())
        });
        let (frame, position) = own.frames.next().await.unwrap_or((Frame::Complete, None));
        match (frame, position) {
            (frame @ Frame::Next(_), Some(position)) => (position > self.last).then(|| {
                self.last = position;
                frame
            }),
            (Frame::Next(_) | Frame::Run(_), _) => {
                tracing::error!("a log frame without a position");
                Some(Frame::internal(&self.data.meta.correlation_id))
            }
            // A failure (the event is not visible, the database is down)
            // ends the operation, as it would alone.
            (end, _) => Some(end),
        }
    }
}

/// One subscriber of `log`, running as `data`'s request.
fn follow(log: Arc<Log>, data: RequestData) -> BoxStream<'static, Frame> {
    let follower = Follower {
        changed: log.changed.subscribe(),
        last: log.start,
        log,
        data,
        own: None,
    };
    until_final(stream::unfold(follower, |mut me| async move {
        let frame = me.next().await;
        Some((frame, me))
    }))
}

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;
