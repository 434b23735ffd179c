//! Shared live part of event-log subscriptions
//! ([`giftdrop_graphql::live::LOG_SUBSCRIPTIONS`]).
//!
//! `winnerAnnounced` sends each winner once, in sequence order: a replay
//! from the database after the client's cursor, then live. The thousands of
//! browsers watching one event run the same operation; with an execution
//! each, every winner was resolved and serialized once per socket. Here the
//! live part runs ONCE per process for each (viewer, operation, variables):
//! its frames, each tagged with its position (the winner's sequence) through
//! a [`LogTap`], are kept in a short window. Each subscriber replays on its
//! own (its cursor is its own, and a replay reads what the database holds
//! now), then reads the shared frames after the last position it sent. One
//! that finds the window moved past it (it fell behind, or it joined while
//! winners were being announced) replays the gap from the database: it
//! never skips a position and never repeats one.
//!
//! The live execution stops when its last subscriber goes away.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Weak};
use std::task::Poll;

use async_graphql::parser::types::ExecutableDocument;
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use giftdrop_graphql::AppSchema;
use giftdrop_graphql::auth::RequestData;
use giftdrop_graphql::live::{LogMode, LogTap};
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::shared::{Feeds, Frame, Payload, Run, Running, forget, lock, request_key, until_final};

/// One execution of the operation in a [`LogMode`], with its tap.
struct Execution {
    frames: BoxStream<'static, Frame>,
    tap: Arc<LogTap>,
    /// The id of the request it runs for, which its failures carry.
    correlation: String,
}

/// Runs the shared operation in a mode, as one subscriber.
type Execute = dyn Fn(LogMode, RequestData) -> Execution + Send + Sync;

/// How to run the operation again, for another viewer's data or cursor:
/// what a request is made of, without its per-request data.
struct Operation {
    schema: AppSchema,
    query: String,
    operation_name: Option<String>,
    variables: async_graphql::Variables,
    document: Option<ExecutableDocument>,
}

impl Operation {
    fn of(schema: &AppSchema, request: &mut async_graphql::Request) -> Self {
        Self {
            schema: schema.clone(),
            query: request.query.clone(),
            operation_name: request.operation_name.clone(),
            variables: request.variables.clone(),
            document: request.parsed_query().ok().cloned(),
        }
    }

    fn execute(&self, mode: LogMode, data: RequestData) -> Execution {
        let tap = Arc::new(LogTap::new(mode));
        let mut request =
            async_graphql::Request::new(self.query.clone()).variables(self.variables.clone());
        request.operation_name.clone_from(&self.operation_name);
        if let Some(document) = &self.document {
            request.set_parsed_query(document.clone());
        }
        let request = request.data(Arc::clone(&tap));
        Execution {
            correlation: data.meta.correlation_id.clone(),
            frames: Frame::execute(&self.schema, request, data),
            tap,
        }
    }
}

/// The frames of the live execution that subscribers may still need.
struct Window {
    /// The frames cover the positions after this one; `None` until the live
    /// execution started.
    after: Option<i32>,
    /// Frame `i` is at position `after + 1 + i`.
    frames: VecDeque<Payload>,
    /// Most frames kept: a subscriber further behind replays.
    capacity: usize,
    /// The live execution's final frame, once it ended.
    end: Option<Frame>,
    /// Runs handed out since the last push, by the position before their
    /// first frame: every subscriber that had sent the same last frame
    /// takes the same run.
    runs: Vec<(i32, Run)>,
}

impl Window {
    /// Appends the frame at `position`. A position that does not follow the
    /// last one (which the live stream never sends) restarts the window just
    /// before it, so subscribers behind it replay from the database.
    fn push(&mut self, position: i32, frame: Payload) {
        let next = self.after.and_then(|after| {
            i32::try_from(self.frames.len())
                .ok()?
                .checked_add(after)?
                .checked_add(1)
        });
        if next != Some(position) {
            self.frames.clear();
            self.after = position.checked_sub(1);
        }
        self.frames.push_back(frame);
        if self.frames.len() > self.capacity {
            self.frames.pop_front();
            self.after = self.after.map(|after| after + 1);
        }
        self.runs.clear();
    }

    /// Every frame after position `last` (which the window covers, from
    /// `after`) as one frame, and how many it holds; `None` if there are
    /// none yet.
    fn frames_after(&mut self, last: i32, after: i32) -> Option<(Frame, usize)> {
        let index = usize::try_from(i64::from(last) - i64::from(after)).unwrap_or(usize::MAX);
        let count = self.frames.len().saturating_sub(index);
        match count {
            0 => None,
            1 => self
                .frames
                .back()
                .cloned()
                .map(|frame| (Frame::Next(frame), 1)),
            _ => {
                let run = match self.runs.iter().find(|(from, _)| *from == last) {
                    Some((_, run)) => run.clone(),
                    None => {
                        let run = Run::new(self.frames.range(index..).cloned().collect());
                        self.runs.push((last, run.clone()));
                        run
                    }
                };
                Some((Frame::Run(run), count))
            }
        }
    }
}

/// One live execution and its subscribers.
struct Log {
    window: std::sync::Mutex<Window>,
    /// Bumped after every change to `window`.
    changed: watch::Sender<()>,
    execute: Box<Execute>,
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
    pub fn new(window: usize, feeds: Feeds) -> Self {
        Self {
            running: Running::default(),
            window: window.max(1),
            feeds,
        }
    }

    /// Live executions running now (for tests and metrics).
    pub fn running(&self) -> usize {
        lock(&self.running)
            .values()
            .filter(|log| log.strong_count() > 0)
            .count()
    }

    /// The frames of `request` (a log subscription) for one subscriber: its
    /// own replay, then the shared live frames after it.
    pub fn subscribe(
        &self,
        schema: &AppSchema,
        mut request: async_graphql::Request,
        data: RequestData,
    ) -> BoxStream<'static, Frame> {
        let key = request_key(&data.auth, &request);
        self.join(key, data, || {
            let operation = Operation::of(schema, &mut request);
            Box::new(move |mode, data| operation.execute(mode, data))
        })
    }

    /// One subscriber of the execution under `key`, started with
    /// `execute()` unless one is running.
    fn join(
        &self,
        key: Arc<str>,
        data: RequestData,
        execute: impl FnOnce() -> Box<Execute>,
    ) -> BoxStream<'static, Frame> {
        let mut running = lock(&self.running);
        let log = if let Some(log) = running.get(&key).and_then(Weak::upgrade) {
            log
        } else {
            let execute = execute();
            let live = execute(LogMode::Live, data.clone());
            let stop = CancellationToken::new();
            let log = Arc::new(Log {
                window: std::sync::Mutex::new(Window {
                    after: None,
                    frames: VecDeque::new(),
                    capacity: self.window,
                    end: None,
                    runs: Vec::new(),
                }),
                changed: watch::Sender::new(()),
                execute,
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
    let mut started = false;
    let mut ready: Vec<(Frame, Option<i32>)> = Vec::new();
    loop {
        let next = poll_fn(|cx| {
            while ready.len() < DRAIN {
                let poll = live.frames.poll_next_unpin(cx);
                // The resolver records where it starts before its first
                // item; subscribers need it even if no item ever comes.
                if !started && let Some(after) = live.tap.started() {
                    started = true;
                    if let Some(log) = log.upgrade() {
                        log.change(|window| {
                            window.after.get_or_insert(after);
                        });
                    }
                }
                match poll {
                    Poll::Ready(frame) => {
                        let frame = frame.unwrap_or(Frame::Complete);
                        let last = frame.is_final();
                        ready.push((frame, live.tap.pop()));
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
            log.change(|window| window.end = Some(end));
            return;
        }
    }
}

/// What a subscriber does next.
enum Step {
    Send(Frame),
    /// The window has moved past the subscriber: read from the database.
    Replay,
    Wait,
}

struct Follower {
    log: Arc<Log>,
    changed: watch::Receiver<()>,
    data: RequestData,
    /// The position of the last item sent, or the replay's cursor; `None`
    /// until the first replay started.
    last: Option<i32>,
    replay: Option<Execution>,
    /// Where the running replay of a gap started: it must send something.
    gap_from: Option<i32>,
}

impl Follower {
    async fn next(&mut self) -> Frame {
        loop {
            if let Some(replay) = &mut self.replay {
                let frame = replay.frames.next().await.unwrap_or(Frame::Complete);
                let position = replay.tap.pop();
                if self.last.is_none() {
                    self.last = replay.tap.started();
                }
                match (frame, position) {
                    (frame @ Frame::Next(_), Some(position)) => {
                        // A later replay may start at a position already sent.
                        if self.last.is_none_or(|last| position > last) {
                            self.last = Some(position);
                            return frame;
                        }
                    }
                    (Frame::Complete, _) => {
                        self.replay = None;
                        if self.last.is_none() || self.gap_from.take() == self.last {
                            // The database lacks positions the live stream
                            // already passed: never loop on it, never skip.
                            tracing::error!(last = ?self.last, "a log replay that could not fill its gap");
                            return Frame::internal(&self.data.meta.correlation_id);
                        }
                    }
                    (Frame::Next(_), None) | (Frame::Run(_), _) => {
                        tracing::error!("a log replay frame without a position");
                        return Frame::internal(&self.data.meta.correlation_id);
                    }
                    // A failure (the event is not visible, the database is
                    // down) ends the operation.
                    (failure, _) => return failure,
                }
                continue;
            }
            let Some(last) = self.last else {
                return Frame::internal(&self.data.meta.correlation_id);
            };
            self.changed.borrow_and_update();
            let step = {
                let mut window = lock(&self.log.window);
                match window.after {
                    Some(after) if last < after => Step::Replay,
                    Some(after) => {
                        match window.frames_after(last, after) {
                            None => window.end.clone().map_or(Step::Wait, Step::Send),
                            Some((frame, count)) => {
                                // Past `i32::MAX` (never reached), the next
                                // turn fails the operation, as for no cursor.
                                self.last = i32::try_from(count)
                                    .ok()
                                    .and_then(|count| last.checked_add(count));
                                Step::Send(frame)
                            }
                        }
                    }
                    None => window.end.clone().map_or(Step::Wait, Step::Send),
                }
            };
            match step {
                Step::Send(frame) => return frame,
                Step::Replay => {
                    metrics::counter!("giftdrop_pubsub_resyncs_total").increment(1);
                    self.gap_from = Some(last);
                    self.replay = Some((self.log.execute)(
                        LogMode::Replay { after: Some(last) },
                        self.data.clone(),
                    ));
                }
                Step::Wait => {
                    if self.changed.changed().await.is_err() {
                        return Frame::Complete;
                    }
                }
            }
        }
    }
}

/// One subscriber: its replay of `data`'s request, then the shared frames.
fn follow(log: Arc<Log>, data: RequestData) -> BoxStream<'static, Frame> {
    let replay = (log.execute)(LogMode::Replay { after: None }, data.clone());
    let follower = Follower {
        changed: log.changed.subscribe(),
        log,
        data,
        last: None,
        replay: Some(replay),
        gap_from: None,
    };
    until_final(stream::unfold(follower, |mut me| async move {
        let frame = me.next().await;
        Some((frame, me))
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use futures_util::StreamExt;
    use giftdrop_domain::RequestMeta;
    use giftdrop_graphql::auth::Auth;
    use tokio::sync::broadcast;

    use super::*;

    /// A log held in memory: the positions stored so far (1..=stored) and
    /// the live feed of each new one.
    #[derive(Clone)]
    struct Fake {
        stored: Arc<Mutex<i32>>,
        live: broadcast::Sender<i32>,
    }

    /// Sent on the feed to end the live executions.
    const CLOSE: i32 = i32::MIN;

    fn next(position: i32) -> Frame {
        Frame::Next(position.to_string().into())
    }

    impl Fake {
        fn new(stored: i32) -> Self {
            Self {
                stored: Arc::new(Mutex::new(stored)),
                live: broadcast::channel(1024).0,
            }
        }

        fn stored(&self) -> i32 {
            *self.stored.lock().expect("lock")
        }

        fn announce(&self, count: i32) {
            for _ in 0..count {
                let position = {
                    let mut stored = self.stored.lock().expect("lock");
                    *stored += 1;
                    *stored
                };
                let _ = self.live.send(position);
            }
        }

        /// Executions as the `winnerAnnounced` resolver runs them.
        fn execute(&self) -> Box<Execute> {
            let fake = self.clone();
            Box::new(move |mode, data: RequestData| {
                let tap = Arc::new(LogTap::new(mode));
                let tagged = {
                    let tap = Arc::clone(&tap);
                    move |position| {
                        tap.push(position);
                        next(position)
                    }
                };
                let frames = match mode {
                    LogMode::Replay { after } => {
                        let after = after.unwrap_or(0);
                        let stored = fake.stored();
                        tap.start(after);
                        stream::iter((after + 1..=stored).map(tagged))
                            .chain(stream::once(async { Frame::Complete }))
                            .boxed()
                    }
                    LogMode::Live => {
                        let rx = fake.live.subscribe();
                        let start = fake.stored();
                        tap.start(start);
                        stream::unfold(rx, |mut rx| async move {
                            loop {
                                match rx.recv().await {
                                    Ok(position) => return Some((position, rx)),
                                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                                    Err(broadcast::error::RecvError::Closed) => return None,
                                }
                            }
                        })
                        .take_while(|position| std::future::ready(*position != CLOSE))
                        .filter(move |position| std::future::ready(*position > start))
                        .map(tagged)
                        .chain(stream::once(async { Frame::Complete }))
                        .boxed()
                    }
                };
                Execution {
                    frames,
                    tap,
                    correlation: data.meta.correlation_id,
                }
            })
        }
    }

    fn data() -> RequestData {
        RequestData::new(
            Auth::Anonymous,
            RequestMeta {
                correlation_id: "test".to_owned(),
            },
            "127.0.0.1".to_owned(),
        )
    }

    /// Two followers of one execution of `fake` under one key.
    fn two(
        logs: &SharedLogs,
        fake: &Fake,
    ) -> (BoxStream<'static, Frame>, BoxStream<'static, Frame>) {
        let key: Arc<str> = "k".into();
        let first = logs.join(Arc::clone(&key), data(), || fake.execute());
        let second = logs.join(key, data(), || panic!("one execution"));
        (first, second)
    }

    async fn take(follower: &mut BoxStream<'static, Frame>, count: usize) -> Vec<i32> {
        let position = |payload: &Payload| payload.as_str().parse::<i32>().expect("a position");
        let mut positions = Vec::with_capacity(count);
        // A run may bring more than `count`: the caller's comparison shows it.
        while positions.len() < count {
            match follower.next().await {
                Some(Frame::Next(payload)) => positions.push(position(&payload)),
                Some(Frame::Run(run)) => positions.extend(run.payloads().iter().map(position)),
                other => panic!("expected a frame, got {other:?}"),
            }
        }
        positions
    }

    #[tokio::test]
    async fn followers_share_one_live_execution_and_see_every_position_once() {
        let logs = SharedLogs::new(4, Feeds::current());
        let fake = Fake::new(3);
        let (mut a, mut b) = two(&logs, &fake);
        assert_eq!(logs.running(), 1);
        assert_eq!(take(&mut a, 3).await, [1, 2, 3]);
        assert_eq!(take(&mut b, 3).await, [1, 2, 3]);
        fake.announce(5);
        assert_eq!(take(&mut a, 5).await, [4, 5, 6, 7, 8]);
        assert_eq!(take(&mut b, 5).await, [4, 5, 6, 7, 8]);
    }

    #[tokio::test]
    async fn frames_announced_together_reach_each_follower_as_one_shared_run() {
        let logs = SharedLogs::new(8, Feeds::current());
        let fake = Fake::new(0);
        let (mut a, mut b) = two(&logs, &fake);
        fake.announce(1);
        assert_eq!(take(&mut a, 1).await, [1]);
        assert_eq!(take(&mut b, 1).await, [1]);
        // Five at once: the live execution records them all before the
        // followers (waiting on the window) are woken; each takes them in
        // one turn, and both take the very same run.
        fake.announce(5);
        let mut runs = Vec::new();
        for follower in [&mut a, &mut b] {
            match follower.next().await {
                Some(Frame::Run(run)) => {
                    let positions: Vec<&str> = run.payloads().iter().map(Payload::as_str).collect();
                    assert_eq!(positions, ["2", "3", "4", "5", "6"]);
                    runs.push(run);
                }
                other => panic!("expected one run of five, got {other:?}"),
            }
        }
        assert!(std::ptr::eq(runs[0].payloads(), runs[1].payloads()));
        fake.announce(1);
        assert_eq!(take(&mut a, 1).await, [7]);
    }

    #[tokio::test]
    async fn a_follower_left_behind_by_the_window_replays_the_gap_from_the_store() {
        let logs = SharedLogs::new(4, Feeds::current());
        let fake = Fake::new(0);
        // The live execution follows the feed from the moment it is made.
        let (mut reader, mut behind) = two(&logs, &fake);
        fake.announce(20);
        assert_eq!(take(&mut reader, 20).await, (1..=20).collect::<Vec<_>>());
        // `behind` read nothing while 20 went by a window of 4.
        assert_eq!(take(&mut behind, 20).await, (1..=20).collect::<Vec<_>>());
        fake.announce(1);
        assert_eq!(take(&mut behind, 1).await, [21]);
        assert_eq!(take(&mut reader, 1).await, [21]);
    }

    #[tokio::test]
    async fn a_follower_joining_late_gets_the_store_then_the_live_frames() {
        let logs = SharedLogs::new(4, Feeds::current());
        let fake = Fake::new(0);
        let key: Arc<str> = "k".into();
        let mut first = logs.join(Arc::clone(&key), data(), || fake.execute());
        fake.announce(10);
        assert_eq!(take(&mut first, 10).await, (1..=10).collect::<Vec<_>>());
        let mut late = logs.join(Arc::clone(&key), data(), || panic!("one execution"));
        fake.announce(2);
        assert_eq!(take(&mut late, 12).await, (1..=12).collect::<Vec<_>>());
        assert_eq!(take(&mut first, 2).await, [11, 12]);
    }

    #[tokio::test]
    async fn the_end_of_the_live_execution_reaches_every_follower_after_its_frames() {
        let logs = SharedLogs::new(4, Feeds::current());
        let fake = Fake::new(1);
        let (mut a, mut b) = two(&logs, &fake);
        assert_eq!(take(&mut a, 1).await, [1]);
        fake.announce(2);
        assert_eq!(take(&mut a, 2).await, [2, 3]);
        // The feed closes: the live execution completes.
        let _ = fake.live.send(CLOSE);
        assert!(matches!(a.next().await, Some(Frame::Complete)));
        assert!(a.next().await.is_none());
        assert_eq!(take(&mut b, 3).await, [1, 2, 3]);
        assert!(matches!(b.next().await, Some(Frame::Complete)));
        assert!(b.next().await.is_none());
        // A finished execution is not joined: the next subscriber starts one.
        let fresh = Fake {
            stored: Arc::clone(&fake.stored),
            live: broadcast::channel(8).0,
        };
        let mut c = logs.join("k".into(), data(), || fresh.execute());
        assert_eq!(take(&mut c, 3).await, [1, 2, 3]);
    }

    #[tokio::test]
    async fn the_live_execution_stops_when_its_last_follower_leaves() {
        let logs = SharedLogs::new(4, Feeds::current());
        let fake = Fake::new(0);
        let (a, b) = two(&logs, &fake);
        assert_eq!(fake.live.receiver_count(), 1);
        drop(a);
        assert_eq!(logs.running(), 1);
        drop(b);
        assert_eq!(logs.running(), 0);
        // The task drops the execution (and its feed) on its next turn.
        for _ in 0..100 {
            if fake.live.receiver_count() == 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(fake.live.receiver_count(), 0);
    }

    #[test]
    fn the_live_execution_records_frames_on_the_feeds_runtime_while_the_followers_runtime_is_busy()
    {
        let runtime = |builder: &mut tokio::runtime::Builder| {
            builder.enable_all().build().expect("a runtime")
        };
        let feeds = runtime(tokio::runtime::Builder::new_multi_thread().worker_threads(1));
        let sockets = runtime(&mut tokio::runtime::Builder::new_current_thread());
        let logs = SharedLogs::new(8, feeds.handle().clone());
        let fake = Fake::new(0);
        let (mut a, _b) = {
            let _sockets = sockets.enter();
            two(&logs, &fake)
        };
        let log = lock(&logs.running)
            .get("k")
            .and_then(Weak::upgrade)
            .expect("a running log");
        fake.announce(3);
        // The followers' runtime runs nothing until it takes the frames
        // below: the window fills without it (on the sockets' runtime, the
        // live execution would wait behind every socket of a round).
        let mut changed = log.changed.subscribe();
        let recorded = feeds.block_on(async {
            let filled = async {
                while lock(&log.window).frames.len() < 3 {
                    changed.changed().await.expect("the log lives");
                }
            };
            tokio::time::timeout(Duration::from_secs(10), filled).await
        });
        assert!(recorded.is_ok(), "the live execution recorded nothing");
        assert_eq!(lock(&log.window).after, Some(0));
        assert_eq!(sockets.block_on(take(&mut a, 3)), [1, 2, 3]);
    }

    #[test]
    fn the_window_keeps_consecutive_positions_and_restarts_on_a_jump() {
        let mut window = Window {
            after: Some(0),
            frames: VecDeque::new(),
            capacity: 2,
            end: None,
            runs: Vec::new(),
        };
        let payload = |position: i32| Payload::from(position.to_string());
        window.push(1, payload(1));
        window.push(2, payload(2));
        window.push(3, payload(3));
        assert_eq!(window.after, Some(1));
        assert_eq!(window.frames.len(), 2);
        window.push(7, payload(7));
        assert_eq!(window.after, Some(6));
        assert_eq!(window.frames.len(), 1);
    }
}
