//! The shared log, against a log held in memory.

use std::sync::Mutex;
use std::time::Duration;

use futures_util::StreamExt;
use giftdrop_domain::RequestMeta;
use giftdrop_graphql::auth::Auth;
use tokio::sync::broadcast;

use super::super::frame::Payload;
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

    /// Executions as the `winnerAnnounced` resolver runs them: subscribe
    /// to the feed, read the store after the cursor, then go live.
    fn execute(&self) -> Box<Execute> {
        let fake = self.clone();
        Box::new(move |after, data: RequestData| {
            let rx = fake.live.subscribe();
            let stored = fake.stored();
            let live = stream::unfold(rx, |mut rx| async move {
                loop {
                    match rx.recv().await {
                        Ok(position) => return Some((position, rx)),
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            })
            .take_while(|position| std::future::ready(*position != CLOSE))
            .filter(move |position| std::future::ready(*position > stored.max(after)));
            let frames = stream::iter(after + 1..=stored)
                .chain(live)
                .map(|position| (next(position), Some(position)))
                .chain(stream::once(async { (Frame::Complete, None) }))
                .boxed();
            Execution {
                frames,
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
fn two(logs: &SharedLogs, fake: &Fake) -> (BoxStream<'static, Frame>, BoxStream<'static, Frame>) {
    let key: Arc<str> = "k".into();
    let first = logs.join(Arc::clone(&key), 0, data(), || fake.execute());
    let second = logs.join(key, 0, data(), || panic!("one execution"));
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
async fn a_follower_left_behind_by_the_window_catches_up_on_its_own_then_shares_again() {
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
    // Back on the window, its own execution (and its feed) is gone.
    assert_eq!(fake.live.receiver_count(), 1);
}

#[tokio::test]
async fn a_follower_joining_late_gets_the_store_then_the_live_frames() {
    let logs = SharedLogs::new(4, Feeds::current());
    let fake = Fake::new(0);
    let key: Arc<str> = "k".into();
    let mut first = logs.join(Arc::clone(&key), 0, data(), || fake.execute());
    fake.announce(10);
    assert_eq!(take(&mut first, 10).await, (1..=10).collect::<Vec<_>>());
    let mut late = logs.join(Arc::clone(&key), 0, data(), || panic!("one execution"));
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
    let mut c = logs.join("k".into(), 0, data(), || fresh.execute());
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
fn the_live_execution_records_frames_on_the_feeds_runtime_while_the_followers_runtime_is_busy() {
    let runtime =
        |builder: &mut tokio::runtime::Builder| builder.enable_all().build().expect("a runtime");
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
            while lock(&log.window).len() < 3 {
                changed.changed().await.expect("the log lives");
            }
        };
        tokio::time::timeout(Duration::from_secs(10), filled).await
    });
    assert!(recorded.is_ok(), "the live execution recorded nothing");
    assert_eq!(sockets.block_on(take(&mut a, 3)), [1, 2, 3]);
}
