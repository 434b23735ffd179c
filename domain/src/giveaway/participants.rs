//! Participants of an event, as read (FLOWS.md §5).

use chrono::{DateTime, Utc};
use giftdrop_entities::giveaway::{events, participants};
use sea_orm::sea_query::extension::postgres::PgFunc;
use sea_orm::sea_query::{Asterisk, Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityName, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, QuerySelect, Select, SelectModel, Selector,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::context::Viewer;
use crate::error::DomainResult;

/// `ParticipantStatus` of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ParticipantStatus {
    /// Joined; the social handle is being checked.
    PendingVerification,
    /// May win.
    Verified,
    /// The social check failed.
    Rejected,
    /// Removed by the host or an admin.
    Disqualified,
}

/// A participant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantView {
    /// Participant id.
    pub id: Uuid,
    /// The event.
    pub event_id: Uuid,
    /// The person.
    pub user_id: Uuid,
    /// The event's host (who sees names in full).
    pub host_id: Uuid,
    /// Their handle on the event's social network.
    pub social_handle: String,
    /// Their display name when they joined, unmasked.
    pub display_name: String,
    /// Where they stand.
    pub status: ParticipantStatus,
    /// When they joined.
    pub joined_at: DateTime<Utc>,
    /// True once they won a prize of the event.
    pub won: bool,
}

/// `displayName` as everyone but the person, the host and admins see it:
/// the first word, then the first letter of the second word and a dot
/// ("Ada Lovelace" -> "Ada L."). A single word stays as it is.
pub fn masked(display_name: &str) -> String {
    let mut words = display_name.split_whitespace();
    let first = words.next().unwrap_or_default();
    match words.next().and_then(|w| w.chars().next()) {
        Some(initial) => format!("{first} {initial}."),
        None => first.to_owned(),
    }
}

/// True when `viewer` sees `user_id`'s details in full in an event hosted
/// by `host_id`: the person, the host and admins.
pub fn sees_in_full(viewer: Option<&Viewer>, host_id: Uuid, user_id: Uuid) -> bool {
    viewer.is_some_and(|v| v.user_id == user_id || v.user_id == host_id || v.is_admin())
}

/// The name `viewer` sees for `user_id`'s `display_name` in an event hosted
/// by `host_id` ([`sees_in_full`], else [`masked`]).
pub fn display_name_for(
    viewer: Option<&Viewer>,
    host_id: Uuid,
    user_id: Uuid,
    display_name: &str,
) -> String {
    if sees_in_full(viewer, host_id, user_id) {
        display_name.to_owned()
    } else {
        masked(display_name)
    }
}

impl From<participants::Status> for ParticipantStatus {
    fn from(status: participants::Status) -> Self {
        match status {
            participants::Status::PendingVerification => Self::PendingVerification,
            participants::Status::Verified => Self::Verified,
            participants::Status::Rejected => Self::Rejected,
            participants::Status::Disqualified => Self::Disqualified,
        }
    }
}

impl From<ParticipantStatus> for participants::Status {
    fn from(status: ParticipantStatus) -> Self {
        match status {
            ParticipantStatus::PendingVerification => Self::PendingVerification,
            ParticipantStatus::Verified => Self::Verified,
            ParticipantStatus::Rejected => Self::Rejected,
            ParticipantStatus::Disqualified => Self::Disqualified,
        }
    }
}

/// A participant's row and the host of its event.
impl From<(participants::Model, Uuid)> for ParticipantView {
    fn from((row, host_id): (participants::Model, Uuid)) -> Self {
        Self {
            id: row.id,
            event_id: row.event_id,
            user_id: row.user_id,
            host_id,
            social_handle: row.social_handle,
            display_name: row.display_name,
            status: row.status.into(),
            joined_at: row.joined_at,
            won: row.won,
        }
    }
}

/// A participant's row beside the host of its event ([`with_host`]).
#[derive(FromQueryResult)]
struct ParticipantRow {
    #[sea_orm(nested)]
    participant: participants::Model,
    host_id: Uuid,
}

/// `query` with the host of each participant's event, as `host_id`.
fn with_host(query: Select<participants::Entity>) -> Selector<SelectModel<ParticipantRow>> {
    let host = Query::select()
        .column(events::Column::HostId)
        .from(events::Entity.table_ref())
        .and_where(
            Expr::col((events::Entity, events::Column::Id))
                .equals((participants::Entity, participants::Column::EventId)),
        )
        .to_owned();
    query
        .column_as(Expr::SubQuery(None, Box::new(host.into())), "host_id")
        .into_model()
}

/// The participants `query` selects.
async fn all<C: ConnectionTrait>(
    conn: &C,
    query: Select<participants::Entity>,
) -> DomainResult<Vec<ParticipantView>> {
    Ok(with_host(query)
        .all(conn)
        .await?
        .into_iter()
        .map(|row| (row.participant, row.host_id).into())
        .collect())
}

/// The participants of `event_id`.
fn of_event(event_id: Uuid) -> Select<participants::Entity> {
    participants::Entity::find().filter(participants::Column::EventId.eq(event_id))
}

/// A page of `event_id`'s participants in joining order, after `after`.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    event_id: Uuid,
    after: Option<Uuid>,
    limit: u64,
) -> DomainResult<Vec<ParticipantView>> {
    let mut query = of_event(event_id);
    if let Some(after) = after {
        query = query.filter(participants::Column::Id.gt(after));
    }
    all(
        conn,
        query.order_by_asc(participants::Column::Id).limit(limit),
    )
    .await
}

/// The VERIFIED participants of `event_id`.
pub async fn verified<C: ConnectionTrait>(
    conn: &C,
    event_id: Uuid,
) -> DomainResult<Vec<ParticipantView>> {
    all(
        conn,
        of_event(event_id)
            .filter(participants::Column::Status.eq(participants::Status::Verified))
            .order_by_asc(participants::Column::Id),
    )
    .await
}

/// Everyone the DRAW of `event_id` shuffled: the participants VERIFIED
/// when it was drawn (some since DISQUALIFIED).
pub async fn drawn<C: ConnectionTrait>(
    conn: &C,
    event_id: Uuid,
) -> DomainResult<Vec<ParticipantView>> {
    let drawn_at = Query::select()
        .column(events::Column::DrawnAt)
        .from(events::Entity.table_ref())
        .and_where(Expr::col((events::Entity, events::Column::Id)).eq(event_id))
        .to_owned();
    all(
        conn,
        of_event(event_id)
            .filter(participants::Column::Status.is_in([
                participants::Status::Verified,
                participants::Status::Disqualified,
            ]))
            .filter(
                Expr::col((participants::Entity, participants::Column::VerifiedAt))
                    .lte(Expr::SubQuery(None, Box::new(drawn_at.into()))),
            )
            .order_by_asc(participants::Column::Id),
    )
    .await
}

/// `user_id`'s participation in `event_id`, if any.
pub async fn of_user<C: ConnectionTrait>(
    conn: &C,
    event_id: Uuid,
    user_id: Uuid,
) -> DomainResult<Option<ParticipantView>> {
    Ok(all(
        conn,
        of_event(event_id).filter(participants::Column::UserId.eq(user_id)),
    )
    .await?
    .pop())
}

/// The participants with these ids, in one query.
pub async fn find_many<C: ConnectionTrait>(
    conn: &C,
    ids: &[Uuid],
) -> DomainResult<Vec<ParticipantView>> {
    all(
        conn,
        participants::Entity::find().filter(
            Expr::col((participants::Entity, participants::Column::Id))
                .eq(PgFunc::any(ids.to_vec())),
        ),
    )
    .await
}

/// How many participants `event_id` has (its counter is the event's
/// `participant_count`; this counts rows, for checks).
pub async fn count<C: ConnectionTrait>(conn: &C, event_id: Uuid) -> DomainResult<i64> {
    let count: Option<i64> = of_event(event_id)
        .select_only()
        .column_as(Expr::col(Asterisk).count(), "n")
        .into_tuple()
        .one(conn)
        .await?;
    Ok(count.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_masked_to_a_first_word_and_an_initial() {
        assert_eq!(masked("Ada Lovelace"), "Ada L.");
        assert_eq!(masked("  Grace   Brewster Hopper "), "Grace B.");
        assert_eq!(masked("Cher"), "Cher");
        assert_eq!(masked("Émile Ødegaard"), "Émile Ø.");
        assert_eq!(masked(""), "");
    }
}
