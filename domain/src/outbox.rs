//! Writing side effects to `ops.outbox` inside the business transaction.
//!
//! A use case never publishes or enqueues directly: it writes an outbox row
//! with its business rows and, after commit, wakes the relay (`jobs` crate)
//! through [`OutboxSignal`]. A rolled-back transaction therefore emits
//! nothing, and a committed one is delivered even if this process dies (the
//! relay's periodic sweep picks the row up).

use std::sync::Arc;

use chrono::Utc;
use giftdrop_entities::ops::outbox;
use sea_orm::{ActiveValue::NotSet, ActiveValue::Set, ConnectionTrait, EntityTrait};
use serde::Serialize;
use tokio::sync::Notify;

use crate::context::RequestMeta;
use crate::error::DomainResult;
use crate::jobs::JobPayload;

/// `ops.outbox.kind` of a pub/sub message.
pub const KIND_PUBLISH: &str = "publish";
/// `ops.outbox.kind` of a background job.
pub const KIND_JOB: &str = "job";

/// Wakes the outbox relay of this process after a commit.
#[derive(Clone, Debug, Default)]
pub struct OutboxSignal(Arc<Notify>);

impl OutboxSignal {
    /// Tells the relay new rows were committed. A wake with no relay waiting
    /// is remembered, so it is never lost between two relay passes.
    pub fn wake(&self) {
        self.0.notify_one();
    }

    /// Resolves at the next wake.
    pub async fn woken(&self) {
        self.0.notified().await;
    }
}

/// Queues a pub/sub message on `topic` (e.g. `user:{id}`).
pub async fn publish<C: ConnectionTrait, T: Serialize>(
    conn: &C,
    meta: &RequestMeta,
    topic: &str,
    payload: &T,
) -> DomainResult<()> {
    insert(
        conn,
        meta,
        KIND_PUBLISH,
        topic,
        serde_json::to_value(payload),
    )
    .await
}

/// Queues a background job.
pub async fn enqueue<C: ConnectionTrait, J: JobPayload>(
    conn: &C,
    meta: &RequestMeta,
    job: &J,
) -> DomainResult<()> {
    insert(conn, meta, KIND_JOB, J::KIND, serde_json::to_value(job)).await
}

async fn insert<C: ConnectionTrait>(
    conn: &C,
    meta: &RequestMeta,
    kind: &str,
    target: &str,
    payload: serde_json::Result<serde_json::Value>,
) -> DomainResult<()> {
    outbox::Entity::insert(row(meta, kind, target, payload)?)
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

fn row(
    meta: &RequestMeta,
    kind: &str,
    target: &str,
    payload: serde_json::Result<serde_json::Value>,
) -> DomainResult<outbox::ActiveModel> {
    let payload =
        payload.map_err(|e| anyhow::Error::new(e).context("failed to encode an outbox payload"))?;
    let now = Utc::now();
    Ok(outbox::ActiveModel {
        id: NotSet,
        kind: Set(kind.to_owned()),
        target: Set(target.to_owned()),
        payload: Set(payload),
        correlation_id: Set(Some(meta.correlation_id.clone())),
        attempts: Set(0),
        last_error: Set(None),
        available_at: Set(now),
        created_at: Set(now),
    })
}
