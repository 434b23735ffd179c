//! Events as stored, and reading them with the contract's visibility
//! (FLOWS.md §5). The use cases that change them
//! live in their own modules and depend on this one.

use chrono::{DateTime, Utc};
use giftdrop_entities::giveaway::{events, participants};
use sea_orm::sea_query::extension::postgres::PgFunc;
use sea_orm::sea_query::{Expr, ExprTrait, IntoCondition};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, JoinType,
    QueryFilter, QueryOrder, QuerySelect, RelationTrait, Select, UpdateMany,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::draw::Seed;
use super::participants::ParticipantView;
use crate::context::Viewer;
use crate::error::{DomainError, DomainResult};
use crate::money::Amount;
use crate::sql::{self, bug};

/// `EventStatus` of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventStatus {
    /// Being edited by its host; visible to the host and admins only.
    Draft,
    /// Published and funded, not started.
    Scheduled,
    /// Between `startsAt` and `endsAt`.
    Live,
    /// Over.
    Ended,
    /// Called off; unawarded prizes refunded.
    Cancelled,
}

/// `WinnerSelection` of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WinnerSelection {
    /// Participants try during the live window under a per-slot budget.
    Instant,
    /// Winners drawn from verified participants when the event ends.
    Draw,
}

/// An event as stored. The draw seed is not here: it is secret until the
/// draw reveals it ([`EventView::draw_seed`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventView {
    /// Event id.
    pub id: Uuid,
    /// Who runs and funds it.
    pub host_id: Uuid,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// The social post participants engage with.
    pub social_post_url: Option<String>,
    /// Where it stands.
    pub status: EventStatus,
    /// How winners are chosen.
    pub selection: WinnerSelection,
    /// INSTANT: chance in percent that an attempt within budget wins.
    pub win_chance_percent: Option<i32>,
    /// INSTANT: the live window is cut into this many slots.
    pub slot_count: i32,
    /// Start of the live window.
    pub starts_at: DateTime<Utc>,
    /// End of the live window.
    pub ends_at: DateTime<Utc>,
    /// Prize units in all.
    pub prize_count: i32,
    /// Units held by a standing winner.
    pub prizes_awarded: i32,
    /// What publishing debits: the sum of every unit's face value.
    pub total_cost: Amount,
    /// Participants joined.
    pub participant_count: i32,
    /// DRAW: hex SHA-256 of the seed, fixed at publishing.
    pub draw_commitment: Option<String>,
    /// DRAW: the seed in hex, once the winners are drawn.
    pub draw_seed: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was published.
    pub published_at: Option<DateTime<Utc>>,
    /// When it was cancelled.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Why.
    pub cancel_reason: Option<String>,
    /// Raised by every change: of two states, the higher version is newer.
    pub version: i32,
    /// Sequence number of the latest winner (0: none yet).
    pub last_sequence: i32,
}

impl EventView {
    /// True when `viewer` may see the event: anyone once published; a
    /// DRAFT (or a draft cancelled before publishing) only its host and
    /// admins.
    pub fn visible_to(&self, viewer: Option<&Viewer>) -> bool {
        self.published_at.is_some() || self.managed_by(viewer)
    }

    /// True when `viewer` may manage it and list its participants: the
    /// host and admins.
    pub fn managed_by(&self, viewer: Option<&Viewer>) -> bool {
        viewer.is_some_and(|v| v.user_id == self.host_id || v.is_admin())
    }
}

/// Filters of `events`.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    /// Only this status.
    pub status: Option<EventStatus>,
    /// Only this host's.
    pub host_id: Option<Uuid>,
}

impl From<events::Status> for EventStatus {
    fn from(status: events::Status) -> Self {
        match status {
            events::Status::Draft => Self::Draft,
            events::Status::Scheduled => Self::Scheduled,
            events::Status::Live => Self::Live,
            events::Status::Ended => Self::Ended,
            events::Status::Cancelled => Self::Cancelled,
        }
    }
}

impl From<EventStatus> for events::Status {
    fn from(status: EventStatus) -> Self {
        match status {
            EventStatus::Draft => Self::Draft,
            EventStatus::Scheduled => Self::Scheduled,
            EventStatus::Live => Self::Live,
            EventStatus::Ended => Self::Ended,
            EventStatus::Cancelled => Self::Cancelled,
        }
    }
}

impl From<events::Selection> for WinnerSelection {
    fn from(selection: events::Selection) -> Self {
        match selection {
            events::Selection::Instant => Self::Instant,
            events::Selection::Draw => Self::Draw,
        }
    }
}

impl From<WinnerSelection> for events::Selection {
    fn from(selection: WinnerSelection) -> Self {
        match selection {
            WinnerSelection::Instant => Self::Instant,
            WinnerSelection::Draw => Self::Draw,
        }
    }
}

fn amount(minor: i64) -> DomainResult<Amount> {
    Amount::new(minor).map_err(|_| bug("a negative event cost"))
}

impl TryFrom<events::Model> for EventView {
    type Error = DomainError;

    /// The seed is revealed only once drawn; the funding transfer stays
    /// inside.
    fn try_from(row: events::Model) -> DomainResult<Self> {
        Ok(Self {
            id: row.id,
            host_id: row.host_id,
            title: row.title,
            description: row.description,
            social_post_url: row.social_post_url,
            status: row.status.into(),
            selection: row.selection.into(),
            win_chance_percent: row.win_chance_percent,
            slot_count: row.slot_count,
            starts_at: row.starts_at,
            ends_at: row.ends_at,
            prize_count: row.prize_count,
            prizes_awarded: row.prizes_awarded,
            total_cost: amount(row.total_cost)?,
            participant_count: row.participant_count,
            draw_commitment: row.draw_commitment,
            draw_seed: row.drawn_at.and(row.draw_seed).map(hex::encode),
            created_at: row.created_at,
            published_at: row.published_at,
            cancelled_at: row.cancelled_at,
            cancel_reason: row.cancel_reason,
            version: row.version,
            last_sequence: row.last_sequence,
        })
    }
}

/// The events `query` selects, as viewed.
async fn all<C: ConnectionTrait>(
    conn: &C,
    query: Select<events::Entity>,
) -> DomainResult<Vec<EventView>> {
    sql::all_as(conn, query.into_model::<events::Model>()).await
}

/// The event `query` selects, if any.
async fn one<C: ConnectionTrait>(
    conn: &C,
    query: Select<events::Entity>,
) -> DomainResult<Option<EventView>> {
    sql::one_as(conn, query.into_model::<events::Model>()).await
}

/// The event `id`, whoever asks.
pub async fn find<C: ConnectionTrait>(conn: &C, id: Uuid) -> DomainResult<Option<EventView>> {
    one(conn, events::Entity::find_by_id(id)).await
}

/// The `version` of each of the events `ids` that exists, by id, in one
/// statement: what a kept answer that read them is checked against
/// (every change raises it: [`changed`]).
pub async fn versions<C: ConnectionTrait>(
    conn: &C,
    ids: &[Uuid],
) -> DomainResult<Vec<(Uuid, i32)>> {
    Ok(events::Entity::find()
        .select_only()
        .column(events::Column::Id)
        .column(events::Column::Version)
        .filter(events::Column::Id.is_in(ids.iter().copied()))
        .order_by_asc(events::Column::Id)
        .into_tuple()
        .all(conn)
        .await?)
}

/// Runs `update` and returns the events it changed as they are after.
/// The caller's update must raise `version`.
pub(super) async fn update_all_returning<C: ConnectionTrait>(
    conn: &C,
    update: UpdateMany<events::Entity>,
) -> DomainResult<Vec<EventView>> {
    update
        .exec_with_returning(conn)
        .await?
        .into_iter()
        .map(EventView::try_from)
        .collect()
}

/// [`update_all_returning`] of an `update` of at most one event: `None`
/// when its condition matched no row.
pub(super) async fn update_returning<C: ConnectionTrait>(
    conn: &C,
    update: UpdateMany<events::Entity>,
) -> DomainResult<Option<EventView>> {
    Ok(update_all_returning(conn, update).await?.pop())
}

/// [`update_returning`] of the event `id`, which must exist.
pub(super) async fn update_one<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
    update: UpdateMany<events::Entity>,
) -> DomainResult<EventView> {
    update_returning(conn, update.filter(events::Column::Id.eq(id)))
        .await?
        .ok_or_else(|| bug("an updated event vanished"))
}

/// The change that raises an event's `version` (every change does).
pub(super) fn changed() -> UpdateMany<events::Entity> {
    events::Entity::update_many().col_expr(
        events::Column::Version,
        Expr::col(events::Column::Version).add(1),
    )
}

/// The draw seed of event `id`, secret or not (for the draw).
pub(super) async fn seed<C: ConnectionTrait>(conn: &C, id: Uuid) -> DomainResult<Seed> {
    let bytes: Option<Vec<u8>> = events::Entity::find_by_id(id)
        .select_only()
        .column(events::Column::DrawSeed)
        .filter(events::Column::DrawSeed.is_not_null())
        .into_tuple()
        .one(conn)
        .await?;
    bytes
        .as_deref()
        .and_then(Seed::from_bytes)
        .ok_or_else(|| bug("the event has no draw seed"))
}

/// The event `id` locked for update, whoever asks.
pub(super) async fn lock(txn: &DatabaseTransaction, id: Uuid) -> DomainResult<Option<EventView>> {
    one(txn, events::Entity::find_by_id(id).lock_exclusive()).await
}

/// The event `id` if `viewer` may see it.
pub async fn find_visible<C: ConnectionTrait>(
    conn: &C,
    viewer: Option<&Viewer>,
    id: Uuid,
) -> DomainResult<Option<EventView>> {
    Ok(find(conn, id).await?.filter(|e| e.visible_to(viewer)))
}

/// The event `id` if `viewer` may see it, and `viewer`'s participation in
/// it, in one query.
pub(super) async fn find_visible_with_participant<C: ConnectionTrait>(
    conn: &C,
    viewer: &Viewer,
    id: Uuid,
) -> DomainResult<Option<(EventView, Option<ParticipantView>)>> {
    let user_id = viewer.user_id;
    let found = events::Entity::find_by_id(id)
        .select_also(participants::Entity)
        .join(
            JoinType::LeftJoin,
            events::Relation::Participants
                .def()
                .on_condition(move |_, participant| {
                    Expr::col((participant, participants::Column::UserId))
                        .eq(user_id)
                        .into_condition()
                }),
        )
        .one(conn)
        .await?;
    let Some((event, participant)) = found else {
        return Ok(None);
    };
    let participant = participant.map(|p| ParticipantView::from((p, event.host_id)));
    let event = EventView::try_from(event)?;
    Ok(event
        .visible_to(Some(viewer))
        .then_some((event, participant)))
}

/// The events with these ids (unknown ids are skipped), in one query.
pub async fn find_many<C: ConnectionTrait>(conn: &C, ids: &[Uuid]) -> DomainResult<Vec<EventView>> {
    all(
        conn,
        events::Entity::find()
            .filter(Expr::col((events::Entity, events::Column::Id)).eq(PgFunc::any(ids.to_vec()))),
    )
    .await
}

/// A newest-first page of the events `viewer` may see, matching `filter`,
/// strictly older than `before` (an event id).
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    viewer: Option<&Viewer>,
    filter: &EventFilter,
    before: Option<Uuid>,
    limit: u64,
) -> DomainResult<Vec<EventView>> {
    let mut query = events::Entity::find();
    if !viewer.is_some_and(Viewer::is_admin) {
        let mut visible = Condition::any().add(events::Column::PublishedAt.is_not_null());
        if let Some(viewer) = viewer {
            visible = visible.add(events::Column::HostId.eq(viewer.user_id));
        }
        query = query.filter(visible);
    }
    if let Some(status) = filter.status {
        query = query.filter(events::Column::Status.eq(events::Status::from(status)));
    }
    if let Some(host_id) = filter.host_id {
        query = query.filter(events::Column::HostId.eq(host_id));
    }
    if let Some(before) = before {
        query = query.filter(events::Column::Id.lt(before));
    }
    all(conn, query.order_by_desc(events::Column::Id).limit(limit)).await
}
