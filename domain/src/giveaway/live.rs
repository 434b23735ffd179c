//! What a giveaway announces (FLOWS.md §6): the event's new state on every
//! status or count change (`eventUpdated`), and each winner
//! (`winnerAnnounced`). Both leave through the outbox with the change.

use std::sync::Arc;

use sea_orm::sea_query::InsertStatement;
use uuid::Uuid;

use super::events::EventView;
use super::winners::WinnerView;
use crate::context::RequestMeta;
use crate::error::DomainResult;
use crate::outbox;
use crate::pubsub::Hub;

/// The topic carrying an event's state: every message is the whole
/// [`EventView`].
pub fn event_topic(event_id: Uuid) -> String {
    format!("event:{event_id}")
}

/// The topic carrying an event's winners: every message one [`WinnerView`].
pub fn winners_topic(event_id: Uuid) -> String {
    format!("event:{event_id}:winners")
}

/// The statement announcing `event` as it is now.
pub fn changed(meta: &RequestMeta, event: &EventView) -> DomainResult<InsertStatement> {
    outbox::publish_statement(meta, &event_topic(event.id), event)
}

/// The statement announcing `winner`.
pub fn announced(meta: &RequestMeta, winner: &WinnerView) -> DomainResult<InsertStatement> {
    outbox::publish_statement(meta, &winners_topic(winner.event_id), winner)
}

/// Hands `winners` of event `event_id`, just committed with their
/// [`announced`] rows, to this process's `winnerAnnounced` subscribers at
/// once: the relay's copy through Redis, which the other processes wait
/// for, comes after the outbox's round trips, and the subscribers here
/// drop it as already sent (a winner is a position in a log). Never before
/// the commit: what is delivered must be in the database.
pub fn announce_here(hub: &Hub, event_id: Uuid, winners: &[WinnerView]) {
    let payloads = winners
        .iter()
        .filter_map(|winner| {
            serde_json::to_string(winner)
                .inspect_err(|e| tracing::error!(error = %e, "could not encode a winner"))
                .ok()
        })
        .map(Arc::from)
        .collect();
    hub.deliver_here(&winners_topic(event_id), payloads);
}
