//! Drafts: `createEvent` and `updateEvent` (FLOWS.md §5). A draft is
//! visible to its host and admins only, and changes freely until it is
//! published.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionTrait};
use uuid::Uuid;

use super::events::{self, EventStatus, EventView, WinnerSelection};
use super::rules::{Checked, Draft, PrizeInput, check};
use crate::Services;
use crate::audit::{self, AuditRecord};
use crate::context::{RequestMeta, Viewer};
use crate::error::{DomainError, DomainResult};
use crate::identity::Role;
use crate::sql::{Batch, Param, bug, db_name, statement};

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

/// The placeholders of an event's checked fields, as `createEvent`
/// inserts and `updateEvent` sets them.
struct Fields {
    title: Param,
    description: Param,
    url: Param,
    chance: Param,
    slots: Param,
    starts: Param,
    ends: Param,
    count: Param,
    cost: Param,
}

impl Fields {
    /// Binds `checked`'s fields on `batch`.
    fn bind(batch: &mut Batch, checked: &Checked) -> Self {
        let [
            title,
            description,
            url,
            chance,
            slots,
            starts,
            ends,
            count,
            cost,
        ] = batch.binds([
            checked.title.as_str().into(),
            checked.description.as_str().into(),
            checked.social_post_url.clone().into(),
            checked.win_chance_percent.into(),
            checked.slot_count.into(),
            checked.starts_at.into(),
            checked.ends_at.into(),
            checked.prize_count.into(),
            checked.total_cost.minor().into(),
        ]);
        Self {
            title,
            description,
            url,
            chance,
            slots,
            starts,
            ends,
            count,
            cost,
        }
    }
}

/// Adds the insert of `prizes` of `event_id` (ids fresh) to `batch`.
fn insert_prizes(batch: &mut Batch, event_id: Uuid, prizes: &[PrizeInput]) {
    let [ids, products, values, quantities, event] = batch.binds([
        prizes
            .iter()
            .map(|_| Uuid::now_v7())
            .collect::<Vec<Uuid>>()
            .into(),
        prizes
            .iter()
            .map(|p| p.card_product_id)
            .collect::<Vec<Uuid>>()
            .into(),
        prizes
            .iter()
            .map(|p| p.face_value.minor())
            .collect::<Vec<i64>>()
            .into(),
        prizes
            .iter()
            .map(|p| p.quantity)
            .collect::<Vec<i32>>()
            .into(),
        event_id.into(),
    ]);
    batch.sql(format!(
        "INSERT INTO giveaway.prizes (id, event_id, card_product_id, face_value, quantity) \
         SELECT p.id, {event}, p.product, p.face_value, p.quantity \
         FROM unnest({ids}::uuid[], {products}::uuid[], {values}::bigint[], {quantities}::integer[]) \
           AS p (id, product, face_value, quantity)"
    ));
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
    let [id_param, host, selection] = batch.binds([
        id.into(),
        viewer.user_id.into(),
        db_name(&input.selection).into(),
    ]);
    let f = Fields::bind(&mut batch, &checked);
    batch.sql(format!(
        "INSERT INTO giveaway.events (id, host_id, selection, title, description, social_post_url, \
         win_chance_percent, slot_count, starts_at, ends_at, prize_count, total_cost) \
         VALUES ({id_param}, {host}, {selection}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
        f.title, f.description, f.url, f.chance, f.slots, f.starts, f.ends, f.count, f.cost
    ));
    insert_prizes(&mut batch, id, &checked.prizes);
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
    let mut batch = batch;
    batch.push(audit::statement(
        meta,
        AuditRecord {
            actor: Some(viewer.user_id),
            action,
            subject: format!("event:{id}"),
            detail: None,
        },
    ));
    batch.execute(&txn).await?;
    txn.commit().await?;
    events::find(&s.db, id)
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
    let event = events::lock(txn, id)
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
            current_prizes = events::prizes_of(&txn, &[id])
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
    let id_param = batch.bind(id);
    let f = Fields::bind(&mut batch, &checked);
    batch.sql(format!(
        "UPDATE giveaway.events SET title = {}, description = {}, social_post_url = {}, \
         win_chance_percent = {}, slot_count = {}, starts_at = {}, ends_at = {}, prize_count = {}, \
         total_cost = {}, version = version + 1 WHERE id = {id_param}",
        f.title, f.description, f.url, f.chance, f.slots, f.starts, f.ends, f.count, f.cost
    ));
    if changes.prizes.is_some() {
        // Replacing the prizes of a draft: nothing references them yet.
        txn.execute_raw(statement(
            "DELETE FROM giveaway.prizes WHERE event_id = $1",
            vec![id.into()],
        ))
        .await?;
        insert_prizes(&mut batch, id, &checked.prizes);
    }
    commit_audited(s, txn, batch, meta, viewer, "event.update", id).await
}
