//! The hub's one Redis pub/sub connection: (re)subscribing every topic,
//! and handing what arrives to the topics' broadcast channels.

use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{Command, Delivery, Inner};
use crate::backoff::{Backoff, Outage};

/// Most messages taken off the Redis connection as one batch.
const BATCH: usize = 1024;
/// Pauses between reconnection attempts while Redis is unreachable.
const RECONNECT: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));

pub(super) async fn run(
    client: redis::Client,
    inner: Weak<Inner>,
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
