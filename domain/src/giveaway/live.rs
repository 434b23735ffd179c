//! What a giveaway announces (FLOWS.md §6): the event's new state on every
//! status or count change (`eventUpdated`), and each winner
//! (`winnerAnnounced`). Both leave through the outbox with the change.

use sea_orm::Statement;
use uuid::Uuid;

use super::events::EventView;
use super::participants::WinnerView;
use crate::context::RequestMeta;
use crate::error::DomainResult;
use crate::outbox;

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
pub fn changed(meta: &RequestMeta, event: &EventView) -> DomainResult<Statement> {
    outbox::publish_statement(meta, &event_topic(event.id), event)
}

/// The statement announcing `winner`.
pub fn announced(meta: &RequestMeta, winner: &WinnerView) -> DomainResult<Statement> {
    outbox::publish_statement(meta, &winners_topic(winner.event_id), winner)
}
