//! Events and their prizes as stored, and reading them with the
//! contract's visibility (FLOWS.md §5). The use cases that change them
//! live in their own modules and depend on this one.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::participants::{self, ParticipantView};
use crate::context::Viewer;
use crate::error::DomainResult;
use crate::money::Amount;
use crate::sql::{amount, bug, by_id, db_name, enum_col, fetch_all};

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

/// A prize of an event: `quantity` cards of one product at one face value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrizeView {
    /// Prize id.
    pub id: Uuid,
    /// Its event.
    pub event_id: Uuid,
    /// The card product won.
    pub card_product_id: Uuid,
    /// Face value of each card.
    pub face_value: Amount,
    /// Units.
    pub quantity: i32,
    /// Units held by a standing winner.
    pub awarded: i32,
}

/// Filters of `events`.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    /// Only this status.
    pub status: Option<EventStatus>,
    /// Only this host's.
    pub host_id: Option<Uuid>,
}

pub(super) const COLUMNS: &str = "id, host_id, title, description, social_post_url, status, selection, \
     win_chance_percent, slot_count, starts_at, ends_at, prize_count, prizes_awarded, total_cost, \
     participant_count, draw_commitment, CASE WHEN drawn_at IS NOT NULL THEN encode(draw_seed, 'hex') END AS draw_seed, \
     created_at, published_at, cancelled_at, cancel_reason, version, last_sequence";

pub(super) fn view(row: &QueryResult) -> DomainResult<EventView> {
    Ok(EventView {
        id: row.try_get("", "id")?,
        host_id: row.try_get("", "host_id")?,
        title: row.try_get("", "title")?,
        description: row.try_get("", "description")?,
        social_post_url: row.try_get("", "social_post_url")?,
        status: enum_col(row, "status")?,
        selection: enum_col(row, "selection")?,
        win_chance_percent: row.try_get("", "win_chance_percent")?,
        slot_count: row.try_get("", "slot_count")?,
        starts_at: row.try_get("", "starts_at")?,
        ends_at: row.try_get("", "ends_at")?,
        prize_count: row.try_get("", "prize_count")?,
        prizes_awarded: row.try_get("", "prizes_awarded")?,
        total_cost: amount(row, "total_cost")?,
        participant_count: row.try_get("", "participant_count")?,
        draw_commitment: row.try_get("", "draw_commitment")?,
        draw_seed: row.try_get("", "draw_seed")?,
        created_at: row.try_get("", "created_at")?,
        published_at: row.try_get("", "published_at")?,
        cancelled_at: row.try_get("", "cancelled_at")?,
        cancel_reason: row.try_get("", "cancel_reason")?,
        version: row.try_get("", "version")?,
        last_sequence: row.try_get("", "last_sequence")?,
    })
}

const PRIZE_COLUMNS: &str = "id, event_id, card_product_id, face_value, quantity, awarded";

fn prize_view(row: &QueryResult) -> DomainResult<PrizeView> {
    Ok(PrizeView {
        id: row.try_get("", "id")?,
        event_id: row.try_get("", "event_id")?,
        card_product_id: row.try_get("", "card_product_id")?,
        face_value: amount(row, "face_value")?,
        quantity: row.try_get("", "quantity")?,
        awarded: row.try_get("", "awarded")?,
    })
}

/// The event `id`, whoever asks.
pub async fn find<C: ConnectionTrait>(conn: &C, id: Uuid) -> DomainResult<Option<EventView>> {
    by_id(conn, "giveaway.events", COLUMNS, id, view).await
}

/// Runs `update` (an UPDATE of one row of `giveaway.events`, without a
/// RETURNING clause) with `values` and returns the event as it is after.
/// The caller's SET must raise `version`.
pub(super) async fn fetch_one_returning<C: ConnectionTrait>(
    conn: &C,
    update: &str,
    values: Vec<sea_orm::Value>,
) -> DomainResult<EventView> {
    update_returning(conn, update, values)
        .await?
        .ok_or_else(|| bug("an updated event vanished"))
}

/// [`fetch_one_returning`] of an `update` whose condition may match no
/// row: `None` then.
pub(super) async fn update_returning<C: ConnectionTrait>(
    conn: &C,
    update: &str,
    values: Vec<sea_orm::Value>,
) -> DomainResult<Option<EventView>> {
    crate::sql::fetch_one(conn, &format!("{update} RETURNING {COLUMNS}"), values, view).await
}

/// The draw seed of event `id` in hex, secret or not (for the draw).
pub(super) async fn seed_hex<C: ConnectionTrait>(conn: &C, id: Uuid) -> DomainResult<String> {
    crate::sql::fetch_one(
        conn,
        "SELECT encode(draw_seed, 'hex') AS seed FROM giveaway.events WHERE id = $1 AND draw_seed IS NOT NULL",
        vec![id.into()],
        |row| Ok(row.try_get::<String>("", "seed")?),
    )
    .await?
    .ok_or_else(|| bug("the event has no draw seed"))
}

/// The event `id` locked for update, whoever asks.
pub(super) async fn lock(txn: &DatabaseTransaction, id: Uuid) -> DomainResult<Option<EventView>> {
    crate::sql::fetch_one(
        txn,
        &format!("SELECT {COLUMNS} FROM giveaway.events WHERE id = $1 FOR UPDATE"),
        vec![id.into()],
        view,
    )
    .await
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
    let found = crate::sql::fetch_one(
        conn,
        &format!(
            "SELECT {COLUMNS}, p.* FROM giveaway.events {} WHERE id = $1",
            participants::OF_USER_BESIDE_EVENT
        ),
        vec![id.into(), viewer.user_id.into()],
        |row| Ok((view(row)?, participants::of_user_beside(row)?)),
    )
    .await?;
    Ok(found.filter(|(event, _)| event.visible_to(Some(viewer))))
}

/// The events with these ids (unknown ids are skipped), in one query.
pub async fn find_many<C: ConnectionTrait>(conn: &C, ids: &[Uuid]) -> DomainResult<Vec<EventView>> {
    crate::sql::by_ids(conn, "giveaway.events", COLUMNS, ids, view).await
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
    fetch_all(
        conn,
        &format!(
            "SELECT {COLUMNS} FROM giveaway.events \
             WHERE ($1 OR published_at IS NOT NULL OR host_id = $2) \
               AND ($3::text IS NULL OR status = $3) AND ($4::uuid IS NULL OR host_id = $4) \
               AND ($5::uuid IS NULL OR id < $5) \
             ORDER BY id DESC LIMIT $6"
        ),
        vec![
            viewer.is_some_and(Viewer::is_admin).into(),
            viewer.map(|v| v.user_id).into(),
            filter.status.map(|s| db_name(&s)).into(),
            filter.host_id.into(),
            before.into(),
            i64::try_from(limit).unwrap_or(i64::MAX).into(),
        ],
        view,
    )
    .await
}

/// The prizes of these events, each event's by ascending id, in one query.
pub async fn prizes_of<C: ConnectionTrait>(
    conn: &C,
    event_ids: &[Uuid],
) -> DomainResult<Vec<PrizeView>> {
    fetch_all(
        conn,
        &format!(
            "SELECT {PRIZE_COLUMNS} FROM giveaway.prizes WHERE event_id = ANY($1) ORDER BY event_id, id::text"
        ),
        vec![event_ids.to_vec().into()],
        prize_view,
    )
    .await
}

/// The prizes with these ids, in one query.
pub async fn find_prizes<C: ConnectionTrait>(
    conn: &C,
    ids: &[Uuid],
) -> DomainResult<Vec<PrizeView>> {
    crate::sql::by_ids(conn, "giveaway.prizes", PRIZE_COLUMNS, ids, prize_view).await
}
