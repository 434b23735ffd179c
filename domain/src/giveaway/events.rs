//! Events and their prizes: creating and editing drafts, reading with the
//! contract's visibility, listing (FLOWS.md §5).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, QueryResult, TransactionTrait};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Services;
use crate::audit::{self, AuditRecord};
use crate::context::{RequestMeta, Viewer};
use crate::error::{DomainError, DomainResult};
use crate::giftcard::merchants::MerchantStatus;
use crate::giftcard::products;
use crate::identity::Role;
use crate::money::Amount;
use crate::sql::{Batch, amount, bug, by_id, db_name, enum_col, fetch_all, statement, text_input};

/// Most prizes an event may list.
pub const MAX_PRIZES: usize = 20;
/// Most units one prize may have (FLOWS.md §5).
pub const MAX_QUANTITY: i32 = 10_000;
/// Most prize units one event may have in all: each is an escrow reserved
/// in the publishing transaction.
pub const MAX_UNITS: i64 = 50_000;
/// Most slots of an INSTANT event (FLOWS.md §5).
pub const MAX_SLOTS: i32 = 1_440;
/// How far in the past `startsAt` may be when it is set (clock skew).
pub const START_GRACE: chrono::Duration = chrono::Duration::seconds(5);

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

/// A prize as sent in `createEvent` / `updateEvent`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrizeInput {
    /// The card product.
    pub card_product_id: Uuid,
    /// One of its denominations.
    pub face_value: Amount,
    /// 1-10000.
    pub quantity: i32,
}

/// `createEvent` input.
#[derive(Clone, Debug)]
pub struct NewEvent {
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Social post URL.
    pub social_post_url: Option<String>,
    /// How winners are chosen.
    pub selection: WinnerSelection,
    /// INSTANT only.
    pub win_chance_percent: Option<i32>,
    /// INSTANT: defaults to 1.
    pub slot_count: Option<i32>,
    /// Start.
    pub starts_at: DateTime<Utc>,
    /// End.
    pub ends_at: DateTime<Utc>,
    /// At least one.
    pub prizes: Vec<PrizeInput>,
}

/// `updateEvent` input: what is given replaces what is there.
#[derive(Clone, Debug, Default)]
pub struct EventChanges {
    /// New title.
    pub title: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New social post URL.
    pub social_post_url: Option<String>,
    /// New chance.
    pub win_chance_percent: Option<i32>,
    /// New slot count.
    pub slot_count: Option<i32>,
    /// New start.
    pub starts_at: Option<DateTime<Utc>>,
    /// New end.
    pub ends_at: Option<DateTime<Utc>>,
    /// New prizes (all of them).
    pub prizes: Option<Vec<PrizeInput>>,
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
) -> DomainResult<Option<(EventView, Option<super::participants::ParticipantView>)>> {
    let found = crate::sql::fetch_one(
        conn,
        &format!(
            "SELECT {COLUMNS}, p.* FROM giveaway.events {} WHERE id = $1",
            super::participants::OF_USER_BESIDE_EVENT
        ),
        vec![id.into(), viewer.user_id.into()],
        |row| Ok((view(row)?, super::participants::of_user_beside(row)?)),
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

/// An event's fields after validation, ready to store.
struct Checked {
    title: String,
    description: String,
    social_post_url: Option<String>,
    win_chance_percent: Option<i32>,
    slot_count: i32,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    prizes: Vec<PrizeInput>,
    prize_count: i32,
    total_cost: Amount,
}

/// The fields of an event, as they would be stored (new, or a draft with
/// its changes applied), before validation.
struct Draft<'a> {
    selection: WinnerSelection,
    title: &'a str,
    description: &'a str,
    social_post_url: Option<&'a str>,
    win_chance_percent: Option<i32>,
    slot_count: Option<i32>,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    prizes: &'a [PrizeInput],
    /// True for `startsAt` given in this request (checked against now).
    start_changed: bool,
}

/// Every rule of FLOWS.md §5 with the input path of the first one broken.
async fn check<C: ConnectionTrait>(conn: &C, draft: Draft<'_>) -> DomainResult<Checked> {
    let title = text_input(draft.title, "input.title", 1, 200)?;
    let description = text_input(draft.description, "input.description", 0, 5000)?;
    let social_post_url = draft
        .social_post_url
        .map(|url| {
            let url = text_input(url, "input.socialPostUrl", 1, 2000)?;
            if !(url.starts_with("https://") || url.starts_with("http://")) || url.contains(' ') {
                return Err(DomainError::bad_input(
                    "input.socialPostUrl",
                    "must be an http(s) URL",
                ));
            }
            Ok(url)
        })
        .transpose()?;
    match (draft.selection, draft.win_chance_percent) {
        (WinnerSelection::Instant, None) => {
            return Err(DomainError::bad_input(
                "input.winChancePercent",
                "is required for INSTANT events",
            ));
        }
        (WinnerSelection::Instant, Some(p)) if !(1..=100).contains(&p) => {
            return Err(DomainError::bad_input(
                "input.winChancePercent",
                "must be between 1 and 100",
            ));
        }
        (WinnerSelection::Draw, Some(_)) => {
            return Err(DomainError::bad_input(
                "input.winChancePercent",
                "is only for INSTANT events",
            ));
        }
        _ => {}
    }
    let slot_count = draft.slot_count.unwrap_or(1);
    if !(1..=MAX_SLOTS).contains(&slot_count) {
        return Err(DomainError::bad_input(
            "input.slotCount",
            format!("must be between 1 and {MAX_SLOTS}"),
        ));
    }
    if draft.start_changed && draft.starts_at < Utc::now() - START_GRACE {
        return Err(DomainError::bad_input(
            "input.startsAt",
            "must not be in the past",
        ));
    }
    if draft.ends_at <= draft.starts_at {
        return Err(DomainError::bad_input(
            "input.endsAt",
            "must be after startsAt",
        ));
    }
    if draft.prizes.is_empty() || draft.prizes.len() > MAX_PRIZES {
        return Err(DomainError::bad_input(
            "input.prizes",
            format!("must list 1-{MAX_PRIZES} prizes"),
        ));
    }
    let ids: Vec<Uuid> = draft.prizes.iter().map(|p| p.card_product_id).collect();
    let found = products::find_many_with_merchants(conn, &ids).await?;
    let mut total = Amount::ZERO;
    let mut units: i64 = 0;
    for (i, prize) in draft.prizes.iter().enumerate() {
        let field = |name: &str| format!("input.prizes[{i}].{name}");
        let Some((product, merchant)) = found.iter().find(|(p, _)| p.id == prize.card_product_id)
        else {
            return Err(DomainError::bad_input(
                field("cardProductId"),
                "is not a card product",
            ));
        };
        if !product.active || merchant.status != MerchantStatus::Active {
            return Err(DomainError::bad_input(
                field("cardProductId"),
                "is not on sale by an active merchant",
            ));
        }
        if !product.denominations.contains(&prize.face_value) {
            return Err(DomainError::bad_input(
                field("faceValue"),
                "is not one of the product's denominations",
            ));
        }
        if !(1..=MAX_QUANTITY).contains(&prize.quantity) {
            return Err(DomainError::bad_input(
                field("quantity"),
                format!("must be between 1 and {MAX_QUANTITY}"),
            ));
        }
        units += i64::from(prize.quantity);
        let cost = u32::try_from(prize.quantity)
            .ok()
            .and_then(|q| prize.face_value.checked_mul(q))
            .and_then(|c| total.checked_add(c));
        total = cost.ok_or_else(|| {
            DomainError::bad_input(field("quantity"), "makes the total cost too large")
        })?;
    }
    if units > MAX_UNITS {
        return Err(DomainError::bad_input(
            "input.prizes",
            format!("may hold at most {MAX_UNITS} units in all"),
        ));
    }
    Ok(Checked {
        title,
        description,
        social_post_url,
        win_chance_percent: draft.win_chance_percent,
        slot_count,
        starts_at: draft.starts_at,
        ends_at: draft.ends_at,
        prizes: draft.prizes.to_vec(),
        prize_count: i32::try_from(units).map_err(|_| bug("unit count out of range"))?,
        total_cost: total,
    })
}

/// The statement inserting `prizes` of `event_id` (ids fresh).
fn insert_prizes(event_id: Uuid, prizes: &[PrizeInput]) -> sea_orm::Statement {
    let ids: Vec<Uuid> = prizes.iter().map(|_| Uuid::now_v7()).collect();
    let products: Vec<Uuid> = prizes.iter().map(|p| p.card_product_id).collect();
    let values: Vec<i64> = prizes.iter().map(|p| p.face_value.minor()).collect();
    let quantities: Vec<i32> = prizes.iter().map(|p| p.quantity).collect();
    statement(
        "INSERT INTO giveaway.prizes (id, event_id, card_product_id, face_value, quantity) \
         SELECT p.id, $5, p.product, p.face_value, p.quantity \
         FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::integer[]) AS p (id, product, face_value, quantity)",
        vec![
            ids.into(),
            products.into(),
            values.into(),
            quantities.into(),
            event_id.into(),
        ],
    )
}

/// `createEvent`: a DRAFT event of the viewer, who must be a HOST.
pub async fn create(
    s: &Services,
    meta: &RequestMeta,
    viewer: &Viewer,
    input: NewEvent,
) -> DomainResult<EventView> {
    viewer.require(Role::Host)?;
    let checked = check(
        &s.db,
        Draft {
            selection: input.selection,
            title: &input.title,
            description: &input.description,
            social_post_url: input.social_post_url.as_deref(),
            win_chance_percent: input.win_chance_percent,
            slot_count: input.slot_count,
            starts_at: input.starts_at,
            ends_at: input.ends_at,
            prizes: &input.prizes,
            start_changed: true,
        },
    )
    .await?;
    let id = Uuid::now_v7();
    let txn = s.db.begin().await?;
    let mut batch = Batch::new();
    batch.push(statement(
        "INSERT INTO giveaway.events (id, host_id, title, description, social_post_url, selection, \
         win_chance_percent, slot_count, starts_at, ends_at, prize_count, total_cost) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        vec![
            id.into(),
            viewer.user_id.into(),
            checked.title.into(),
            checked.description.into(),
            checked.social_post_url.into(),
            db_name(&input.selection).into(),
            checked.win_chance_percent.into(),
            checked.slot_count.into(),
            checked.starts_at.into(),
            checked.ends_at.into(),
            checked.prize_count.into(),
            checked.total_cost.minor().into(),
        ],
    ));
    batch.push(insert_prizes(id, &checked.prizes));
    commit_audited(s, txn, batch, meta, viewer, "event.create", id).await
}

/// Writes `batch` with the audit entry of `action` on event `id` in one
/// statement, commits, and reads the event back.
async fn commit_audited(
    s: &Services,
    txn: DatabaseTransaction,
    batch: Batch,
    meta: &RequestMeta,
    viewer: &Viewer,
    action: &str,
    id: Uuid,
) -> DomainResult<EventView> {
    batch
        .fetch_one(
            &txn,
            audit::statement(
                meta,
                AuditRecord {
                    actor: Some(viewer.user_id),
                    action,
                    subject: format!("event:{id}"),
                    detail: None,
                },
            ),
        )
        .await?;
    txn.commit().await?;
    find(&s.db, id)
        .await?
        .ok_or_else(|| bug("a written event vanished"))
}

/// The event `id` locked, if the viewer is its host and it is a DRAFT:
/// NOT_FOUND if the viewer may not see it, FORBIDDEN if not the host,
/// CONFLICT if no longer a draft.
pub(super) async fn lock_own_draft(
    txn: &DatabaseTransaction,
    viewer: &Viewer,
    id: Uuid,
) -> DomainResult<EventView> {
    let event = lock(txn, id)
        .await?
        .filter(|e| e.visible_to(Some(viewer)))
        .ok_or(DomainError::NotFound)?;
    if event.host_id != viewer.user_id {
        return Err(DomainError::Forbidden);
    }
    if event.status != EventStatus::Draft {
        return Err(DomainError::Conflict(format!(
            "the event is {}, not a draft",
            db_name(&event.status)
        )));
    }
    Ok(event)
}

/// `updateEvent`: the host's own DRAFT; the changed event must pass every
/// rule of `createEvent`.
pub async fn update(
    s: &Services,
    meta: &RequestMeta,
    viewer: &Viewer,
    id: Uuid,
    changes: EventChanges,
) -> DomainResult<EventView> {
    let txn = s.db.begin().await?;
    let event = lock_own_draft(&txn, viewer, id).await?;
    let current_prizes: Vec<PrizeInput>;
    let prizes = match &changes.prizes {
        Some(prizes) => prizes.as_slice(),
        None => {
            current_prizes = prizes_of(&txn, &[id])
                .await?
                .into_iter()
                .map(|p| PrizeInput {
                    card_product_id: p.card_product_id,
                    face_value: p.face_value,
                    quantity: p.quantity,
                })
                .collect();
            current_prizes.as_slice()
        }
    };
    let checked = check(
        &txn,
        Draft {
            selection: event.selection,
            title: changes.title.as_deref().unwrap_or(&event.title),
            description: changes.description.as_deref().unwrap_or(&event.description),
            social_post_url: changes
                .social_post_url
                .as_deref()
                .or(event.social_post_url.as_deref()),
            win_chance_percent: changes.win_chance_percent.or(event.win_chance_percent),
            slot_count: changes.slot_count.or(Some(event.slot_count)),
            starts_at: changes.starts_at.unwrap_or(event.starts_at),
            ends_at: changes.ends_at.unwrap_or(event.ends_at),
            prizes,
            start_changed: changes.starts_at.is_some(),
        },
    )
    .await?;
    let mut batch = Batch::new();
    batch.push(statement(
        "UPDATE giveaway.events SET title = $2, description = $3, social_post_url = $4, \
         win_chance_percent = $5, slot_count = $6, starts_at = $7, ends_at = $8, prize_count = $9, \
         total_cost = $10, version = version + 1 WHERE id = $1",
        vec![
            id.into(),
            checked.title.into(),
            checked.description.into(),
            checked.social_post_url.into(),
            checked.win_chance_percent.into(),
            checked.slot_count.into(),
            checked.starts_at.into(),
            checked.ends_at.into(),
            checked.prize_count.into(),
            checked.total_cost.minor().into(),
        ],
    ));
    if changes.prizes.is_some() {
        // Replacing the prizes of a draft: nothing references them yet.
        txn.execute_raw(statement(
            "DELETE FROM giveaway.prizes WHERE event_id = $1",
            vec![id.into()],
        ))
        .await?;
        batch.push(insert_prizes(id, &checked.prizes));
    }
    commit_audited(s, txn, batch, meta, viewer, "event.update", id).await
}
