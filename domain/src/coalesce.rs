//! Identical reads in flight share one execution, and never an execution
//! that started before they arrived.
//!
//! When a giveaway starts, thousands of browsers ask for the same event page
//! at once (the HTTP layer's queries), and thousands of subscribers replay
//! the same winners ([`crate::giveaway::winners`]). [`Coalescer::run`]
//! gives each key at most one *running* round and one *queued* round. The
//! first request for a key starts a round; a request that arrives while a
//! round runs never joins it (that round may have read the database before
//! a change the request already knows of committed): it joins the queued
//! round, which starts only when the running one has finished, so after
//! every request that joined it arrived. A read
//! that starts after a change commits therefore never returns the state
//! before it, and the database sees at most one execution per key at a time,
//! however many requests wait.
//!
//! Rounds run as their own tasks: a client that hangs up does not stop a
//! round others wait for, and a round that panics ends as `None` for its
//! waiters without leaving its key stuck.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use tokio::sync::oneshot;
use tracing::Instrument;

/// A round's outcome, shared by its waiters: `None` if it panicked.
type Round<V> = Shared<BoxFuture<'static, Option<V>>>;

/// The rounds of one key.
struct Rounds<V> {
    /// Identifies the running round, so that only it hands the key over.
    running: u64,
    /// The round the next arrivals join, if one was asked for.
    queued: Option<Queued<V>>,
}

/// A round waiting for the running one to end.
struct Queued<V> {
    id: u64,
    round: Round<V>,
    /// Starts it.
    start: oneshot::Sender<()>,
}

/// Single flight per key, with the freshness rule of the module docs.
pub struct Coalescer<K, V> {
    /// What it shares, the `what` label of `giftdrop_coalesced_total`.
    what: &'static str,
    /// The last round id given, and the rounds of every key in flight.
    rounds: Mutex<(u64, HashMap<K, Rounds<V>>)>,
}

impl<K, V> Coalescer<K, V> {
    /// A coalescer of `what` (a metric label: `query`, `winners`).
    pub fn new(what: &'static str) -> Self {
        Self {
            what,
            rounds: Mutex::new((0, HashMap::new())),
        }
    }
}

/// What [`Coalescer::run`] gives a request.
#[derive(Debug, PartialEq, Eq)]
pub struct Joined<V> {
    /// The round's value; `None` if the round panicked.
    pub value: Option<V>,
    /// True when the round ran this request's own `work`.
    pub led: bool,
}

impl<K, V> Coalescer<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The value of a round of `key` that starts no earlier than this call:
    /// a new round running `work`, or the queued round (which runs the
    /// `work` of whoever queued it; this `work` is then dropped unrun).
    pub async fn run<F, Fut>(self: &Arc<Self>, key: K, work: F) -> Joined<V>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = V> + Send + 'static,
    {
        let (round, led) = {
            let mut guard = self.rounds.lock().unwrap_or_else(PoisonError::into_inner);
            let (last_id, rounds) = &mut *guard;
            *last_id += 1;
            let id = *last_id;
            match rounds.get_mut(&key) {
                None => {
                    let round = self.spawn(key.clone(), id, None, work);
                    let running = Rounds {
                        running: id,
                        queued: None,
                    };
                    rounds.insert(key, running);
                    (round, true)
                }
                Some(Rounds {
                    queued: Some(queued),
                    ..
                }) => {
                    metrics::counter!("giftdrop_coalesced_total", "what" => self.what).increment(1);
                    (queued.round.clone(), false)
                }
                Some(entry) => {
                    let (start, started) = oneshot::channel();
                    let round = self.spawn(key, id, Some(started), work);
                    entry.queued = Some(Queued {
                        id,
                        round: round.clone(),
                        start,
                    });
                    (round, true)
                }
            }
        };
        Joined {
            value: round.await,
            led,
        }
    }

    /// Spawns round `id`; a queued round first waits for `started`.
    fn spawn<F, Fut>(
        self: &Arc<Self>,
        key: K,
        id: u64,
        started: Option<oneshot::Receiver<()>>,
        work: F,
    ) -> Round<V>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = V> + Send + 'static,
    {
        let handover = HandOver {
            coalescer: Arc::clone(self),
            key,
            id,
        };
        // The round logs under the span of the request that asked for it
        // (its correlation id).
        let task = tokio::spawn(
            async move {
                if let Some(started) = started {
                    // Sent by the running round's hand-over, which always runs.
                    let _ = started.await;
                }
                let _handover = handover;
                work().await
            }
            .in_current_span(),
        );
        async move { task.await.ok() }.boxed().shared()
    }
}

/// Hands the key over when its round ends, however it ends (a panic too):
/// to the queued round, which then starts, or else the key is forgotten.
struct HandOver<K: Hash + Eq, V> {
    coalescer: Arc<Coalescer<K, V>>,
    key: K,
    id: u64,
}

impl<K: Hash + Eq, V> Drop for HandOver<K, V> {
    fn drop(&mut self) {
        let mut guard = self
            .coalescer
            .rounds
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let rounds = &mut guard.1;
        let Some(entry) = rounds.get_mut(&self.key) else {
            return;
        };
        if entry.running != self.id {
            return;
        }
        match entry.queued.take() {
            Some(next) => {
                entry.running = next.id;
                let _ = next.start.send(());
            }
            None => {
                rounds.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    use futures_util::poll;

    use super::*;

    /// A round's work that reports its start and then waits to be released.
    fn gated(
        value: u32,
        started: oneshot::Sender<()>,
        release: oneshot::Receiver<()>,
    ) -> impl FnOnce() -> BoxFuture<'static, u32> + Send + 'static {
        move || {
            async move {
                let _ = started.send(());
                let _ = release.await;
                value
            }
            .boxed()
        }
    }

    #[tokio::test]
    async fn a_request_arriving_during_a_round_gets_the_next_round() {
        let coalescer = Arc::new(Coalescer::<&str, u32>::new("test"));
        let (started, first_started) = oneshot::channel();
        let (release, gate) = oneshot::channel();
        let mut first = Box::pin(coalescer.run("event", gated(1, started, gate)));
        assert!(poll!(&mut first).is_pending());
        first_started.await.expect("the first round starts");

        let first_done = Arc::new(AtomicBool::new(false));
        let runs = Arc::new(AtomicU32::new(0));
        let work = |value| {
            let first_done = Arc::clone(&first_done);
            let runs = Arc::clone(&runs);
            move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                // Freshness: a queued round reads nothing before the
                // running round has ended.
                assert!(first_done.load(Ordering::SeqCst));
                value
            }
        };
        let mut second = Box::pin(coalescer.run("event", work(2)));
        let mut third = Box::pin(coalescer.run("event", work(3)));
        assert!(poll!(&mut second).is_pending());
        assert!(poll!(&mut third).is_pending());

        first_done.store(true, Ordering::SeqCst);
        release.send(()).expect("the first round waits");
        assert_eq!(
            first.await,
            Joined {
                value: Some(1),
                led: true
            }
        );
        assert_eq!(
            second.await,
            Joined {
                value: Some(2),
                led: true
            }
        );
        assert_eq!(
            third.await,
            Joined {
                value: Some(2),
                led: false
            }
        );
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "the third request's work never ran"
        );
        assert!(
            coalescer.rounds.lock().unwrap().1.is_empty(),
            "every key is forgotten"
        );
    }

    #[tokio::test]
    async fn distinct_keys_never_share() {
        let coalescer = Arc::new(Coalescer::<&str, u32>::new("test"));
        let (started, first_started) = oneshot::channel();
        let (release, gate) = oneshot::channel();
        let mut host = Box::pin(coalescer.run("host", gated(1, started, gate)));
        assert!(poll!(&mut host).is_pending());
        first_started.await.expect("the host's round starts");
        let anonymous = coalescer.run("anonymous", || async { 2 }).await;
        assert_eq!(anonymous.value, Some(2));
        release.send(()).expect("the host's round waits");
        assert_eq!(host.await.value, Some(1));
    }

    #[tokio::test]
    async fn a_round_that_panics_leaves_no_key_stuck() {
        let coalescer = Arc::new(Coalescer::<&str, u32>::new("test"));
        let (started, first_started) = oneshot::channel::<()>();
        let (release, gate) = oneshot::channel::<()>();
        let mut failing = Box::pin(coalescer.run("event", move || async move {
            let _ = started.send(());
            let _ = gate.await;
            panic!("a resolver bug")
        }));
        assert!(poll!(&mut failing).is_pending());
        first_started.await.expect("the failing round starts");
        let mut queued = Box::pin(coalescer.run("event", || async { 7 }));
        assert!(poll!(&mut queued).is_pending());
        release.send(()).expect("the failing round waits");
        assert_eq!(failing.await.value, None);
        assert_eq!(queued.await.value, Some(7));
        assert_eq!(coalescer.run("event", || async { 8 }).await.value, Some(8));
        assert!(coalescer.rounds.lock().unwrap().1.is_empty());
    }
}
