//! Live giveaway subscriptions (FLOWS.md §6): `eventUpdated`,
//! `eventCountdown` and `winnerAnnounced`, fed by the process's pub/sub hub
//! so they reach subscribers on every instance.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::{Context, Enum, ID, Result, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use giftdrop_domain::giveaway::events::{self, EventStatus, EventView};
use giftdrop_domain::giveaway::live;
use giftdrop_domain::giveaway::winners::{self, WinnerView};
use giftdrop_domain::pubsub::Delivery;
use giftdrop_domain::{DomainError, Services, Viewer};
use uuid::Uuid;

use crate::auth::{services, viewer};
use crate::error::Gql;
use crate::event::{Event, EventStatusGql, Winner};
use crate::ids;

/// Longest an `eventUpdated` subscriber waits for a newer state after it
/// was sent one: a burst of joins becomes one message per window.
const COALESCE: Duration = Duration::from_millis(250);

/// `CountdownPhase`.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
#[graphql(name = "CountdownPhase")]
pub enum CountdownPhase {
    /// Before `startsAt`.
    UntilStart,
    /// Between `startsAt` and `endsAt`.
    UntilEnd,
    /// Over (ended or cancelled).
    Finished,
}

/// One tick of `eventCountdown`.
#[derive(SimpleObject, Clone, Debug)]
pub struct CountdownTick {
    event_id: ID,
    status: EventStatusGql,
    phase: CountdownPhase,
    /// The server clock when this tick was produced; clients correct drift from it.
    server_time: DateTime<Utc>,
    /// Whole seconds until the next boundary (start or end); 0 when FINISHED.
    remaining_seconds: i32,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
}

/// The tick of `event` at `now`, computed from its absolute times (never by
/// counting ticks).
pub fn tick(event: &EventView, now: DateTime<Utc>) -> CountdownTick {
    let over = matches!(event.status, EventStatus::Ended | EventStatus::Cancelled);
    let (phase, boundary) = if over || now >= event.ends_at {
        (CountdownPhase::Finished, None)
    } else if now < event.starts_at {
        (CountdownPhase::UntilStart, Some(event.starts_at))
    } else {
        (CountdownPhase::UntilEnd, Some(event.ends_at))
    };
    let remaining = boundary.map_or(0, |b| {
        let millis = (b - now).num_milliseconds().max(0);
        // Whole seconds, rounded up: 0 only once the boundary is reached.
        i32::try_from((millis + 999) / 1000).unwrap_or(i32::MAX)
    });
    CountdownTick {
        event_id: ids::of(event.id),
        status: event.status.into(),
        phase,
        server_time: now,
        remaining_seconds: remaining,
        starts_at: event.starts_at,
        ends_at: event.ends_at,
    }
}

/// How long from `now` until the next whole second of the server clock.
fn until_next_second(now: DateTime<Utc>) -> Duration {
    let nanos = u64::from(now.timestamp_subsec_nanos());
    Duration::from_nanos(1_000_000_000u64.saturating_sub(nanos).max(1))
}

/// The event `id` if `viewer` may follow it, else NOT_FOUND.
async fn followed(s: &Services, viewer: Option<&Viewer>, id: Uuid) -> Result<EventView> {
    events::find_visible(&s.db, viewer, id)
        .await
        .gql()?
        .ok_or(DomainError::NotFound)
        .gql()
}

/// `current`, then every newer state of the event (stale messages dropped).
async fn event_states(
    s: &Services,
    viewer: Option<&Viewer>,
    id: Uuid,
) -> Result<impl Stream<Item = EventView> + Send + use<>> {
    let updates = s.hub.subscribe(&live::event_topic(id)).await.gql()?;
    let current = followed(s, viewer, id).await?;
    let db = s.db.clone();
    let reload = move || {
        let db = db.clone();
        async move { events::find(&db, id).await }
    };
    let mut shown = 0;
    Ok(updates.snapshots(current, reload).filter(move |event| {
        let newer = event.version > shown;
        if newer {
            shown = event.version;
        }
        std::future::ready(newer)
    }))
}

/// `states` with at most one item per `window`: the first at once, then
/// the latest of each window.
fn coalesced<T: Send + 'static>(
    states: impl Stream<Item = T> + Send + 'static,
    window: Duration,
) -> impl Stream<Item = T> + Send + 'static {
    let states = Box::pin(states);
    futures_util::stream::unfold(
        (states, None::<tokio::time::Instant>),
        move |(mut states, last)| async move {
            let mut item = states.next().await?;
            if let Some(last) = last {
                let deadline = last + window;
                while let Ok(Some(newer)) = tokio::time::timeout_at(deadline, states.next()).await {
                    item = newer;
                }
            }
            Some((item, (states, Some(tokio::time::Instant::now()))))
        },
    )
}

/// Queues the winners of `payloads` that follow `last`, in order; `true`
/// when one skipped ahead, so the gap must be read from the database (which
/// holds the rest of `payloads` too: winners are published once committed).
fn queue_next(queue: &mut VecDeque<WinnerView>, last: i32, payloads: &[Arc<str>]) -> bool {
    for json in payloads {
        let queued = queued_up_to(queue, last);
        match serde_json::from_str::<WinnerView>(json) {
            Ok(w) if w.sequence <= queued => {}
            Ok(w) if w.sequence == queued + 1 => queue.push_back(w),
            Ok(_) => return true,
            Err(e) => tracing::error!(error = %e, "malformed winner message"),
        }
    }
    false
}

/// The last sequence sent (`last`) or queued after it.
fn queued_up_to(queue: &VecDeque<WinnerView>, last: i32) -> i32 {
    queue.back().map_or(last, |w| w.sequence)
}

/// The winners after sequence `after`: `replay` (read from the database
/// after subscribing to `updates`), then live, in order, without a gap or
/// a repeat. A message that skips ahead, or a resync, is filled in with
/// `missed_after(the last one sent or queued)`.
fn winners<F, Fut>(
    missed_after: F,
    updates: giftdrop_domain::pubsub::Subscription,
    replay: Vec<WinnerView>,
    after: i32,
) -> impl Stream<Item = WinnerView> + Send + 'static
where
    F: Fn(i32) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = giftdrop_domain::DomainResult<Vec<WinnerView>>> + Send,
{
    // `last` is the last one sent: the replay is queued, not sent yet.
    let last = after;
    let queue: VecDeque<WinnerView> = replay.into();
    let missed_after = std::sync::Arc::new(missed_after);
    futures_util::stream::unfold(
        (missed_after, updates, queue, last),
        move |(missed_after, mut updates, mut queue, mut last)| async move {
            loop {
                if let Some(next) = queue.pop_front() {
                    if next.sequence > last {
                        last = next.sequence;
                        return Some((next, (missed_after, updates, queue, last)));
                    }
                    continue;
                }
                // The queue is empty: everything up to `last` was sent.
                let fill = match updates.recv().await? {
                    Delivery::Messages(payloads) => queue_next(&mut queue, last, &payloads),
                    Delivery::Resync => true,
                };
                if fill {
                    match Box::pin(missed_after(queued_up_to(&queue, last))).await {
                        Ok(missed) => queue.extend(missed),
                        Err(e) => tracing::warn!(error = ?e, "could not read missed winners"),
                    }
                }
            }
        },
    )
}

/// Giveaway subscriptions.
#[derive(Default)]
pub struct EventSubscription;

#[Subscription]
impl EventSubscription {
    /// One tick on every whole second of the server clock until the event is finished.
    async fn event_countdown(
        &self,
        ctx: &Context<'_>,
        event_id: ID,
    ) -> Result<impl Stream<Item = CountdownTick> + use<>> {
        let id = ids::parse(&event_id, "eventId").gql()?;
        let s = services(ctx)?;
        let states = Box::pin(event_states(s, viewer(ctx)?, id)).await?;
        let mut states = Box::pin(states);
        let first = states.next().await.ok_or(DomainError::NotFound).gql()?;
        Ok(futures_util::stream::unfold(
            (states, first, false),
            |(mut states, mut event, finished)| async move {
                if finished {
                    return None;
                }
                let sleep = tokio::time::sleep(until_next_second(Utc::now()));
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        () = &mut sleep => break,
                        newer = states.next() => match newer {
                            Some(newer) => event = newer,
                            None => return None,
                        },
                    }
                }
                let tick = tick(&event, Utc::now());
                let finished = tick.phase == CountdownPhase::Finished;
                Some((tick, (states, event, finished)))
            },
        ))
    }

    /// Every winner announced for the event. Starts by replaying winners after
    /// the `after` sequence number (all of them when omitted), then goes live.
    async fn winner_announced(
        &self,
        ctx: &Context<'_>,
        event_id: ID,
        after: Option<i32>,
    ) -> Result<impl Stream<Item = Winner> + use<>> {
        let id = ids::parse(&event_id, "eventId").gql()?;
        let s = services(ctx)?;
        // Subscribe first, then read: nothing announced between the two is lost.
        let updates = s.hub.subscribe(&live::winners_topic(id)).await.gql()?;
        followed(s, viewer(ctx)?, id).await?;
        let after = after.unwrap_or(0).max(0);
        let replay = winners::winners_after_shared(&s.winner_reads, &s.db, id, after)
            .await
            .gql()?;
        let (reads, db) = (s.winner_reads.clone(), s.db.clone());
        let missed_after = move |last| {
            let (reads, db) = (reads.clone(), db.clone());
            async move { winners::winners_after_shared(&reads, &db, id, last).await }
        };
        Ok(winners(missed_after, updates, replay, after).map(Winner))
    }

    /// The event now, then again every time its status or counts change.
    async fn event_updated(
        &self,
        ctx: &Context<'_>,
        event_id: ID,
    ) -> Result<impl Stream<Item = Event> + use<>> {
        let id = ids::parse(&event_id, "eventId").gql()?;
        let s = services(ctx)?;
        let states = Box::pin(event_states(s, viewer(ctx)?, id)).await?;
        Ok(coalesced(states, COALESCE).map(Event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(status: EventStatus, starts: DateTime<Utc>, ends: DateTime<Utc>) -> EventView {
        EventView {
            id: Uuid::nil(),
            host_id: Uuid::nil(),
            title: "t".into(),
            description: String::new(),
            social_post_url: None,
            status,
            selection: events::WinnerSelection::Draw,
            win_chance_percent: None,
            slot_count: 1,
            starts_at: starts,
            ends_at: ends,
            prize_count: 1,
            prizes_awarded: 0,
            total_cost: giftdrop_domain::money::Amount::ZERO,
            participant_count: 0,
            draw_commitment: None,
            draw_seed: None,
            created_at: starts,
            published_at: Some(starts),
            cancelled_at: None,
            cancel_reason: None,
            version: 1,
            last_sequence: 0,
        }
    }

    #[test]
    fn ticks_count_whole_seconds_to_the_next_boundary_from_absolute_times() {
        let starts = DateTime::parse_from_rfc3339("2026-12-01T10:00:00.400Z")
            .expect("time")
            .with_timezone(&Utc);
        let ends = starts + chrono::Duration::seconds(10);
        let scheduled = event(EventStatus::Scheduled, starts, ends);
        let at = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("time")
                .with_timezone(&Utc)
        };
        let before = tick(&scheduled, at("2026-12-01T09:59:57Z"));
        assert_eq!(before.phase, CountdownPhase::UntilStart);
        assert_eq!(before.remaining_seconds, 4);
        let during = tick(&scheduled, at("2026-12-01T10:00:01Z"));
        assert_eq!(during.phase, CountdownPhase::UntilEnd);
        assert_eq!(during.remaining_seconds, 10);
        let after = tick(&scheduled, at("2026-12-01T10:00:11Z"));
        assert_eq!(after.phase, CountdownPhase::Finished);
        assert_eq!(after.remaining_seconds, 0);
        let cancelled = event(EventStatus::Cancelled, starts, ends);
        assert_eq!(
            tick(&cancelled, at("2026-12-01T09:00:00Z")).phase,
            CountdownPhase::Finished
        );
    }

    #[test]
    fn the_next_whole_second_is_never_now() {
        let on = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(until_next_second(on), Duration::from_secs(1));
        let mid = on + chrono::Duration::milliseconds(250);
        assert_eq!(until_next_second(mid), Duration::from_millis(750));
    }

    fn winner_json(sequence: i32) -> Arc<str> {
        let winner = WinnerView {
            id: Uuid::nil(),
            event_id: Uuid::nil(),
            participant_id: Uuid::nil(),
            user_id: Uuid::nil(),
            host_id: Uuid::nil(),
            display_name: "w".into(),
            prize_id: Uuid::nil(),
            card_id: Uuid::nil(),
            sequence,
            announced_at: Utc::now(),
            disqualified_at: None,
        };
        serde_json::to_string(&winner).expect("serializable").into()
    }

    fn sequences(queue: &VecDeque<WinnerView>) -> Vec<i32> {
        queue.iter().map(|w| w.sequence).collect()
    }

    #[test]
    fn a_delivery_of_many_winners_queues_those_after_the_last_sent_in_order() {
        let mut queue = VecDeque::new();
        let payloads: Vec<_> = [2, 3, 4, 5, 4, 6].into_iter().map(winner_json).collect();
        assert!(!queue_next(&mut queue, 3, &payloads));
        assert_eq!(sequences(&queue), [4, 5, 6]);
    }

    #[test]
    fn a_winner_that_skips_ahead_asks_for_the_gap_after_what_was_queued() {
        let mut queue = VecDeque::new();
        let payloads: Vec<_> = [1, 2, 4, 5].into_iter().map(winner_json).collect();
        assert!(queue_next(&mut queue, 0, &payloads));
        assert_eq!(sequences(&queue), [1, 2]);
        let malformed: Arc<str> = "{}".into();
        assert!(!queue_next(&mut queue, 0, &[malformed, winner_json(3)]));
        assert_eq!(sequences(&queue), [1, 2, 3]);
    }
}
