//! Writing side effects to `ops.outbox` inside the business transaction.
//!
//! A use case never publishes or enqueues directly: it writes an outbox row
//! with its business rows and, after commit, wakes the relay (`jobs` crate)
//! through [`OutboxSignal`]. A rolled-back transaction therefore emits
//! nothing, and a committed one is delivered even if this process dies (the
//! relay's periodic sweep picks the row up). After the commit, a use case
//! may also hand an event log's message (a winner) to this process's own
//! subscribers at once (`Hub::deliver_here`); the row still carries it to
//! every process.

use std::sync::Arc;

use giftdrop_entities::ops::outbox::{self, Kind};
use sea_orm::sea_query::InsertStatement;
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, QueryTrait};
use serde::Serialize;
use tokio::sync::Notify;

use crate::context::RequestMeta;
use crate::error::DomainResult;
use crate::jobs::JobPayload;

/// `ops.outbox.kind` of a pub/sub message ([`Kind::Publish`]), for the
/// statements written by hand (the ledger's posting).
pub const KIND_PUBLISH: &str = "publish";

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
    conn.execute(&publish_statement(meta, topic, payload)?)
        .await?;
    Ok(())
}

/// Queues a background job.
pub async fn enqueue<C: ConnectionTrait, J: JobPayload>(
    conn: &C,
    meta: &RequestMeta,
    job: &J,
) -> DomainResult<()> {
    conn.execute(&job_statement(meta, job)?).await?;
    Ok(())
}

/// The statement of [`publish`], for a [`crate::sql::Batch`].
pub fn publish_statement<T: Serialize>(
    meta: &RequestMeta,
    topic: &str,
    payload: &T,
) -> DomainResult<InsertStatement> {
    insert_statement(meta, Kind::Publish, topic, serde_json::to_value(payload))
}

/// The statement of [`enqueue`], for a [`crate::sql::Batch`].
pub fn job_statement<J: JobPayload>(meta: &RequestMeta, job: &J) -> DomainResult<InsertStatement> {
    insert_statement(meta, Kind::Job, J::KIND, serde_json::to_value(job))
}

fn insert_statement(
    meta: &RequestMeta,
    kind: Kind,
    target: &str,
    payload: serde_json::Result<serde_json::Value>,
) -> DomainResult<InsertStatement> {
    let payload =
        payload.map_err(|e| anyhow::Error::new(e).context("failed to encode an outbox payload"))?;
    Ok(outbox::Entity::insert(outbox::ActiveModel {
        kind: Set(kind),
        target: Set(target.to_owned()),
        payload: Set(payload),
        correlation_id: Set(Some(meta.correlation_id.as_str().to_owned())),
        ..Default::default()
    })
    .into_query())
}

#[cfg(test)]
mod tests {
    use sea_orm::ActiveEnum;

    use super::*;

    #[test]
    fn the_hand_written_kind_is_the_entitys() {
        assert_eq!(KIND_PUBLISH, Kind::Publish.to_value());
    }

    #[test]
    fn a_row_is_one_insert_of_its_four_columns() {
        let statement = publish_statement(&RequestMeta::system(), "user:1", &1).expect("encodes");
        assert_eq!(
            statement.build(sea_orm::sea_query::PostgresQueryBuilder).0,
            r#"INSERT INTO "ops"."outbox" ("kind", "target", "payload", "correlation_id") VALUES ($1, $2, $3, $4)"#
        );
    }
}
