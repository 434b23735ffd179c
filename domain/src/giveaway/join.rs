//! `joinEvent` (FLOWS.md §5): a person joins a SCHEDULED or LIVE event
//! once; a job then checks their social handle ([`super::verify`]).

use chrono::{DateTime, Utc};
use giftdrop_entities::giveaway as db;
use giftdrop_entities::identity::users;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityName, EntityTrait, FromQueryResult,
    QueryFilter, QuerySelect, TransactionTrait,
};
use uuid::Uuid;

use super::events::{self, EventStatus};
use super::live;
use super::participants::ParticipantView;
use super::verify::VerifyParticipant;
use crate::Services;
use crate::context::{RequestMeta, Viewer};
use crate::error::{DomainError, DomainResult};
use crate::outbox;
use crate::sql::{Batch, bug, db_name, text_input};

/// The rate limit (`RATE_LIMITS`) `joinEvent` counts against.
pub const RATE_LIMIT: &str = "join";

/// `joinEvent`: the viewer joins a SCHEDULED or LIVE event they do not
/// host, once (CONFLICT on a second time); a job then checks the handle.
pub async fn join(
    s: &Services,
    meta: &RequestMeta,
    viewer: &Viewer,
    event_id: Uuid,
    social_handle: &str,
) -> DomainResult<ParticipantView> {
    let handle = text_input(social_handle, "input.socialHandle", 1, 100)?;
    if handle.chars().any(char::is_whitespace) {
        return Err(DomainError::bad_input(
            "input.socialHandle",
            "must not contain spaces",
        ));
    }
    s.limiter
        .check(RATE_LIMIT, &viewer.user_id.to_string())
        .await?;
    let txn = s.db.begin().await?;
    // Read without a lock; the counter's update below re-checks the status
    // under the row lock (a share lock here would deadlock two joins, each
    // waiting to upgrade it).
    let event: Option<(Uuid, db::events::Status, Option<DateTime<Utc>>)> =
        db::events::Entity::find_by_id(event_id)
            .select_only()
            .columns([
                db::events::Column::HostId,
                db::events::Column::Status,
                db::events::Column::PublishedAt,
            ])
            .into_tuple()
            .one(&txn)
            .await?;
    let Some((host_id, status, published_at)) = event else {
        return Err(DomainError::NotFound);
    };
    let status = EventStatus::from(status);
    if published_at.is_none() && host_id != viewer.user_id && !viewer.is_admin() {
        return Err(DomainError::NotFound);
    }
    if host_id == viewer.user_id {
        return Err(DomainError::Forbidden);
    }
    if !matches!(status, EventStatus::Scheduled | EventStatus::Live) {
        return Err(DomainError::Conflict(format!(
            "the event is {}: it cannot be joined",
            db_name(&status)
        )));
    }
    let inserted = insert(&txn, event_id, viewer.user_id, &handle).await?;
    let Some(row) = inserted else {
        return Err(DomainError::Conflict(
            "you have already joined this event".into(),
        ));
    };
    let participant = ParticipantView::from((row, host_id));
    let Some(event) = events::update_returning(
        &txn,
        events::changed()
            .col_expr(
                db::events::Column::ParticipantCount,
                Expr::col(db::events::Column::ParticipantCount).add(1),
            )
            .filter(db::events::Column::Id.eq(event_id))
            .filter(
                db::events::Column::Status
                    .is_in([db::events::Status::Scheduled, db::events::Status::Live]),
            ),
    )
    .await?
    else {
        // It ended or was cancelled meanwhile.
        return Err(DomainError::Conflict(
            "the event can no longer be joined".into(),
        ));
    };
    let mut rest = Batch::new();
    rest.push(outbox::job_statement(
        meta,
        &VerifyParticipant {
            participant_id: participant.id,
        },
    )?);
    rest.push(live::changed(meta, &event)?);
    rest.execute(&txn).await?;
    txn.commit().await?;
    s.outbox.wake();
    Ok(participant)
}

/// Adds `user_id` to event `event_id` with `handle` and their display name
/// as it is now; `None` if they had joined already.
async fn insert(
    txn: &DatabaseTransaction,
    event_id: Uuid,
    user_id: Uuid,
    handle: &str,
) -> DomainResult<Option<db::participants::Model>> {
    let user = Query::select()
        .expr(Expr::val(Uuid::now_v7()))
        .expr(Expr::val(event_id))
        .column((users::Entity, users::Column::Id))
        .expr(Expr::val(handle))
        .column((users::Entity, users::Column::DisplayName))
        .from(users::Entity.table_ref())
        .and_where(Expr::col((users::Entity, users::Column::Id)).eq(user_id))
        .to_owned();
    let insert = Query::insert()
        .into_table(db::participants::Entity.table_ref())
        .columns([
            db::participants::Column::Id,
            db::participants::Column::EventId,
            db::participants::Column::UserId,
            db::participants::Column::SocialHandle,
            db::participants::Column::DisplayName,
        ])
        .select_from(user)
        .map_err(bug)?
        .on_conflict(
            OnConflict::columns([
                db::participants::Column::EventId,
                db::participants::Column::UserId,
            ])
            .do_nothing()
            .to_owned(),
        )
        .returning_all()
        .to_owned();
    Ok(
        db::participants::Model::find_by_statement(txn.get_database_backend().build(&insert))
            .one(txn)
            .await?,
    )
}
