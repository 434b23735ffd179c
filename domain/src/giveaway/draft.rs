//! Drafts: `createEvent` and `updateEvent` (FLOWS.md §5). A draft is
//! visible to its host and admins only, and changes freely until it is
//! published.

use chrono::{DateTime, Utc};
use giftdrop_entities::giveaway as db;
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryTrait, TransactionTrait,
};
use uuid::Uuid;

use super::events::{self, EventStatus, EventView, WinnerSelection};
use super::prizes;
use super::rules::{Checked, Draft, PrizeInput, check};
use crate::Services;
use crate::audit::{self, AuditRecord};
use crate::context::{RequestMeta, Viewer};
use crate::error::{DomainError, DomainResult};
use crate::identity::Role;
use crate::sql::{Batch, bug, db_name};

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

/// An event's checked fields, as `createEvent` inserts and `updateEvent`
/// sets them.
fn fields(checked: &Checked) -> db::events::ActiveModel {
    db::events::ActiveModel {
        title: Set(checked.title.clone()),
        description: Set(checked.description.clone()),
        social_post_url: Set(checked.social_post_url.clone()),
        win_chance_percent: Set(checked.win_chance_percent),
        slot_count: Set(checked.slot_count),
        starts_at: Set(checked.starts_at),
        ends_at: Set(checked.ends_at),
        prize_count: Set(checked.prize_count),
        total_cost: Set(checked.total_cost.minor()),
        ..Default::default()
    }
}

/// Adds the insert of `prizes` of `event_id` (ids fresh) to `batch`.
fn insert_prizes(batch: &mut Batch, event_id: Uuid, prizes: &[PrizeInput]) {
    batch.push(
        db::prizes::Entity::insert_many(prizes.iter().map(|p| db::prizes::ActiveModel {
            id: Set(Uuid::now_v7()),
            event_id: Set(event_id),
            card_product_id: Set(p.card_product_id),
            face_value: Set(p.face_value.minor()),
            quantity: Set(p.quantity),
            ..Default::default()
        }))
        .into_query(),
    );
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
    batch.push(
        db::events::Entity::insert(db::events::ActiveModel {
            id: Set(id),
            host_id: Set(viewer.user_id),
            selection: Set(input.selection.into()),
            ..fields(&checked)
        })
        .into_query(),
    );
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
            current_prizes = prizes::prizes_of(&txn, &[id])
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
    batch.push(
        events::changed()
            .set(fields(&checked))
            .filter(db::events::Column::Id.eq(id))
            .into_query(),
    );
    if changes.prizes.is_some() {
        // Replacing the prizes of a draft: nothing references them yet.
        db::prizes::Entity::delete_many()
            .filter(db::prizes::Column::EventId.eq(id))
            .exec(&txn)
            .await?;
        insert_prizes(&mut batch, id, &checked.prizes);
    }
    commit_audited(s, txn, batch, meta, viewer, "event.update", id).await
}
