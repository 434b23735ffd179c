//! Live messages between processes: ONE Redis pub/sub connection per
//! process, fanned out in-process with a `broadcast` channel per topic.
//!
//! A topic's broadcast channel is created by its first local subscriber and
//! dropped (with a Redis UNSUBSCRIBE) by its last. Every message of a topic
//! that reached the process together is one delivery: a draw's hundred
//! winners are one entry of the topic's buffer, not a hundred that overrun
//! it. A subscriber that falls behind, or that was listening while the
//! Redis connection dropped, gets [`Delivery::Resync`] instead of silently
//! missing messages: it must re-send current state from the database.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use redis::aio::ConnectionManager;
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::error::{DomainError, DomainResult};
use crate::keys::Namespace;

mod connection;

/// Deliveries buffered per topic before a slow subscriber is resynced.
const TOPIC_CAPACITY: usize = 64;
/// How long a new subscriber waits for Redis to confirm its subscription.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a subscriber receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Published payloads (JSON text), in the order they were published:
    /// every message of the topic that arrived with the others.
    Messages(Arc<[Arc<str>]>),
    /// Messages may have been missed: reload current state.
    Resync,
}

enum Command {
    Subscribe(String, watch::Sender<bool>),
    Unsubscribe(String),
}

struct Topic {
    tx: broadcast::Sender<Delivery>,
    ready: watch::Sender<bool>,
}

struct Inner {
    ns: Namespace,
    topics: Mutex<HashMap<String, Topic>>,
    commands: mpsc::UnboundedSender<Command>,
}

impl Inner {
    fn topics(&self) -> MutexGuard<'_, HashMap<String, Topic>> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (every critical section is a single insert/remove/lookup).
        self.topics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The process-wide pub/sub hub. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl Hub {
    /// Starts the hub's Redis subscriber task; it stops on `shutdown`.
    pub fn start(client: redis::Client, ns: Namespace, shutdown: CancellationToken) -> Self {
        let (commands, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            ns,
            topics: Mutex::new(HashMap::new()),
            commands,
        });
        tokio::spawn(connection::run(
            client,
            Arc::downgrade(&inner),
            rx,
            shutdown,
        ));
        Self { inner }
    }

    /// Subscribes to `topic` (e.g. `user:{id}`) and returns once Redis has
    /// confirmed the subscription, so nothing published afterwards is missed.
    pub async fn subscribe(&self, topic: &str) -> DomainResult<Subscription> {
        let channel = self.inner.ns.channel(topic);
        let (rx, mut ready) = {
            let mut topics = self.inner.topics();
            let entry = topics.entry(channel.clone()).or_insert_with(|| {
                let (tx, _) = broadcast::channel(TOPIC_CAPACITY);
                let (ready, _) = watch::channel(false);
                // The subscriber task outlives every hub handle that can call this.
                let _ = self
                    .inner
                    .commands
                    .send(Command::Subscribe(channel.clone(), ready.clone()));
                Topic { tx, ready }
            });
            (entry.tx.subscribe(), entry.ready.subscribe())
        };
        let subscription = Subscription {
            channel: channel.into(),
            rx,
            inner: Arc::clone(&self.inner),
        };
        match tokio::time::timeout(SUBSCRIBE_TIMEOUT, ready.wait_for(|r| *r)).await {
            Ok(Ok(_)) => Ok(subscription),
            _ => Err(DomainError::Internal(anyhow::anyhow!(
                "live updates are unavailable: redis did not confirm the subscription"
            ))),
        }
    }

    /// Hands `payloads`, already committed for publishing on `topic`
    /// through the outbox, to this process's subscribers now, ahead of the
    /// relay's copy through Redis, which the other processes wait for and
    /// which these subscribers receive again. Only for a topic whose
    /// subscribers drop a message they already have and read a gap from
    /// the database (an event log by sequence, `winnerAnnounced`): a
    /// snapshot topic's subscribers would show the state twice.
    pub fn deliver_here(&self, topic: &str, payloads: Vec<Arc<str>>) {
        if payloads.is_empty() {
            return;
        }
        let channel = self.inner.ns.channel(topic);
        if let Some(topic) = self.inner.topics().get(&channel) {
            // No receiver left: nobody here is watching.
            let _ = topic.tx.send(Delivery::Messages(payloads.into()));
        }
    }

    /// Publishes `payload` on `topic` to every process.
    pub async fn publish(
        &self,
        redis: &mut ConnectionManager,
        topic: &str,
        payload: &str,
    ) -> redis::RedisResult<()> {
        self.publish_all(redis, [(topic, payload)]).await
    }

    /// Publishes every `(topic, payload)` in one round trip, in order. On
    /// an error some may have gone out: delivery is at least once.
    pub async fn publish_all<'a>(
        &self,
        redis: &mut ConnectionManager,
        messages: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        for (topic, payload) in messages {
            pipe.publish(self.inner.ns.channel(topic), payload).ignore();
        }
        pipe.query_async::<()>(redis).await
    }
}

/// Whether Redis answers PING within `within`; the error as it is logged.
/// Readiness and the outbox relay ask it.
pub async fn ping(redis: &ConnectionManager, within: Duration) -> Result<(), String> {
    let (mut redis, command) = (redis.clone(), redis::cmd("PING"));
    match tokio::time::timeout(within, command.query_async::<String>(&mut redis)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(format!("Redis: {err:#}")),
        Err(_) => Err(format!("Redis: no answer to PING within {within:?}")),
    }
}

/// One local subscription; unsubscribes from Redis when it is the last.
pub struct Subscription {
    /// Shared with the streams made from this subscription.
    channel: Arc<str>,
    rx: broadcast::Receiver<Delivery>,
    inner: Arc<Inner>,
}

impl Subscription {
    /// The next delivery; `None` once the hub has shut down.
    pub async fn recv(&mut self) -> Option<Delivery> {
        match self.rx.recv().await {
            Ok(delivery) => Some(delivery),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                metrics::counter!("giftdrop_pubsub_resyncs_total").increment(1);
                tracing::debug!(channel = %self.channel, missed, "slow subscriber resynced");
                Some(Delivery::Resync)
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// The deliveries as a stream.
    pub fn into_stream(self) -> impl Stream<Item = Delivery> + Send + 'static {
        futures_util::stream::unfold(
            self,
            |mut sub| async move { sub.recv().await.map(|d| (d, sub)) },
        )
    }

    /// A topic whose every message is a whole state `T`: `current` first,
    /// then each message; after a [`Delivery::Resync`] the state is read
    /// again with `reload` (`None` skips). Subscribe before reading
    /// `current`, so no change falls between the two.
    pub fn snapshots<T, F, Fut>(
        self,
        current: T,
        reload: F,
    ) -> impl Stream<Item = T> + Send + 'static
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = DomainResult<Option<T>>> + Send,
    {
        let reload = Arc::new(reload);
        let channel = Arc::clone(&self.channel);
        let changes = self
            .into_stream()
            .then(move |delivery| {
                let reload = Arc::clone(&reload);
                let channel = Arc::clone(&channel);
                async move {
                    match delivery {
                        Delivery::Messages(payloads) => payloads
                            .iter()
                            .filter_map(|json| {
                                serde_json::from_str::<T>(json)
                                    .inspect_err(|e| {
                                        tracing::error!(error = %e, %channel, "malformed message on pub/sub");
                                    })
                                    .ok()
                            })
                            .collect(),
                        // Boxed: a database read is a large future, and inline it
                        // would size every idle subscription's stream.
                        Delivery::Resync => Box::pin(reload())
                            .await
                            .inspect_err(|e| {
                                tracing::warn!(error = ?e, %channel, "could not reload after a resync");
                            })
                            .ok()
                            .flatten()
                            .into_iter()
                            .collect::<Vec<T>>(),
                    }
                }
            })
            .flat_map(futures_util::stream::iter);
        futures_util::stream::once(async move { current }).chain(changes)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut topics = self.inner.topics();
        // Our own receiver is still alive here, so 1 means "only us".
        let last = topics
            .get(&*self.channel)
            .is_some_and(|t| t.tx.receiver_count() <= 1);
        if last {
            topics.remove(&*self.channel);
            let _ = self
                .inner
                .commands
                .send(Command::Unsubscribe(self.channel.to_string()));
        }
    }
}
