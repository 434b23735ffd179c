//! `joinEvent` (FLOWS.md §5): a person joins a SCHEDULED or LIVE event
//! once; a job then checks their social handle ([`super::verify`]).

use chrono::Utc;
use sea_orm::{ConnectionTrait, TransactionTrait};
use uuid::Uuid;

use super::events::{self, EventStatus};
use super::live;
use super::participants::{self, ParticipantView};
use super::verify::VerifyParticipant;
use crate::Services;
use crate::context::{RequestMeta, Viewer};
use crate::error::{DomainError, DomainResult};
use crate::outbox;
use crate::sql::{Batch, db_name, enum_col, fetch_one, statement, text_input};

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
    let event = fetch_one(
        &txn,
        "SELECT host_id, status, published_at FROM giveaway.events WHERE id = $1",
        vec![event_id.into()],
        |row| {
            Ok((
                row.try_get::<Uuid>("", "host_id")?,
                enum_col::<EventStatus>(row, "status")?,
                row.try_get::<Option<chrono::DateTime<Utc>>>("", "published_at")?,
            ))
        },
    )
    .await?;
    let Some((host_id, status, published_at)) = event else {
        return Err(DomainError::NotFound);
    };
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
    let id = Uuid::now_v7();
    let inserted = txn
        .query_one_raw(statement(
            &format!(
                "INSERT INTO giveaway.participants (id, event_id, user_id, social_handle, display_name) \
                 SELECT $1, $2, u.id, $4, u.display_name FROM identity.users u WHERE u.id = $3 \
                 ON CONFLICT (event_id, user_id) DO NOTHING RETURNING {}",
                participants::COLUMNS
            ),
            vec![
                id.into(),
                event_id.into(),
                viewer.user_id.into(),
                handle.into(),
            ],
        ))
        .await?;
    let Some(row) = inserted else {
        return Err(DomainError::Conflict(
            "you have already joined this event".into(),
        ));
    };
    let participant = participants::view(&row)?;
    let Some(event) = events::update_returning(
        &txn,
        "UPDATE giveaway.events SET participant_count = participant_count + 1, version = version + 1 \
         WHERE id = $1 AND status IN ('SCHEDULED', 'LIVE')",
        vec![event_id.into()],
    )
    .await?
    else {
        // It ended or was cancelled meanwhile.
        return Err(DomainError::Conflict("the event can no longer be joined".into()));
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
