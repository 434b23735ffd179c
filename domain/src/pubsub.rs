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
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use std::future::{Future, poll_fn};
use std::task::Poll;

use futures_util::{Stream, StreamExt};
use redis::aio::ConnectionManager;
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::backoff::{Backoff, Outage};
use crate::error::{DomainError, DomainResult};
use crate::keys::Namespace;

/// Deliveries buffered per topic before a slow subscriber is resynced.
const TOPIC_CAPACITY: usize = 64;
/// Most messages taken off the Redis connection as one batch.
const BATCH: usize = 1024;
/// Pauses between reconnection attempts while Redis is unreachable.
const RECONNECT: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
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
        tokio::spawn(run(client, Arc::downgrade(&inner), rx, shutdown));
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

async fn run(
    client: redis::Client,
    inner: std::sync::Weak<Inner>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    shutdown: CancellationToken,
) {
    let mut reconnecting = false;
    let mut outage = Outage::new("the redis pub/sub connection", RECONNECT);
    loop {
        let pubsub = tokio::select! {
            () = shutdown.cancelled() => return,
            conn = client.get_async_pubsub() => conn,
        };
        let (mut sink, mut stream) = match pubsub {
            Ok(pubsub) => pubsub.split(),
            Err(err) => {
                let pause = outage.failed(&err);
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
                continue;
            }
        };
        let Some(hub) = inner.upgrade() else { return };
        let current: Vec<(String, watch::Sender<bool>)> = hub
            .topics()
            .iter()
            .map(|(channel, topic)| (channel.clone(), topic.ready.clone()))
            .collect();
        let mut healthy = true;
        for (channel, ready) in current {
            if sink.subscribe(&channel).await.is_err() {
                healthy = false;
                break;
            }
            ready.send_replace(true);
        }
        if healthy {
            outage.succeeded();
        }
        if reconnecting && healthy {
            tracing::info!("redis pub/sub reconnected, resyncing subscribers");
            for topic in hub.topics().values() {
                let _ = topic.tx.send(Delivery::Resync);
            }
        }
        drop(hub);
        reconnecting = true;
        while healthy {
            tokio::select! {
                () = shutdown.cancelled() => return,
                command = commands.recv() => match command {
                    None => return,
                    Some(Command::Subscribe(channel, ready)) => {
                        healthy = sink.subscribe(&channel).await.is_ok();
                        if healthy {
                            ready.send_replace(true);
                        }
                    }
                    Some(Command::Unsubscribe(channel)) => {
                        healthy = sink.unsubscribe(&channel).await.is_ok();
                    }
                },
                messages = next_batch(&mut stream) => match messages {
                    None => healthy = false,
                    Some(messages) => {
                        let Some(hub) = inner.upgrade() else { return };
                        let topics = hub.topics();
                        for (channel, payloads) in by_channel(&messages) {
                            if let Some(topic) = topics.get(channel) {
                                let _ = topic.tx.send(Delivery::Messages(payloads.into()));
                            }
                        }
                    }
                },
            }
        }
        // The first loss reconnects at once; a connection that fails
        // again before it works waits out the backoff.
        let pause = outage.failed(&"the connection was lost");
        if outage.failures() > 1 {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// Every message the connection has ready, at least one and at most
/// [`BATCH`]; `None` once it closed.
async fn next_batch(
    stream: &mut (impl Stream<Item = redis::Msg> + Unpin),
) -> Option<Vec<redis::Msg>> {
    poll_fn(|cx| {
        let mut batch = Vec::new();
        while batch.len() < BATCH {
            match stream.poll_next_unpin(cx) {
                Poll::Ready(Some(message)) => batch.push(message),
                // What came before the close is delivered; the next poll ends.
                Poll::Ready(None) if batch.is_empty() => return Poll::Ready(None),
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        if batch.is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(Some(batch))
        }
    })
    .await
}

/// `messages` grouped by channel, each channel's payloads in the order
/// they came, the channels in the order of their first message.
fn by_channel(messages: &[redis::Msg]) -> Vec<(&str, Vec<Arc<str>>)> {
    let mut groups: Vec<(&str, Vec<Arc<str>>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for message in messages {
        let channel = message.get_channel_name();
        let payload: Arc<str> = String::from_utf8_lossy(message.get_payload_bytes()).into();
        let group = *index.entry(channel).or_insert_with(|| {
            groups.push((channel, Vec::new()));
            groups.len() - 1
        });
        if let Some((_, payloads)) = groups.get_mut(group) {
            payloads.push(payload);
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    fn message(channel: &str, payload: &str) -> redis::Msg {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        redis::Msg::from_owned_value(Value::Array(vec![
            bulk("message"),
            bulk(channel),
            bulk(payload),
        ]))
        .expect("a message")
    }

    #[test]
    fn messages_that_came_together_are_grouped_by_channel_in_order() {
        let messages = [
            message("a", "1"),
            message("b", "x"),
            message("a", "2"),
            message("a", "3"),
            message("b", "y"),
        ];
        let groups: Vec<(&str, Vec<String>)> = by_channel(&messages)
            .into_iter()
            .map(|(channel, payloads)| (channel, payloads.iter().map(|p| p.to_string()).collect()))
            .collect();
        let strings = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            groups,
            [
                ("a", strings(&["1", "2", "3"])),
                ("b", strings(&["x", "y"]))
            ]
        );
    }
}
