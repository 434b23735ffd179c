//! The audit log: every state-changing admin action leaves one entry with
//! the actor and the correlation id, written in the action's transaction.

use chrono::Utc;
use giftdrop_entities::ops::audit_log;
use sea_orm::sea_query::InsertStatement;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, Order, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait,
};
use uuid::Uuid;

use crate::context::RequestMeta;
use crate::error::DomainResult;

/// What to record.
pub struct AuditRecord<'a> {
    /// The acting user; `None` for the system itself.
    pub actor: Option<Uuid>,
    /// Dotted action name, e.g. `role.grant`.
    pub action: &'a str,
    /// What was acted on, e.g. `user:{id}`.
    pub subject: String,
    /// Free-form detail for a human reader.
    pub detail: Option<String>,
}

/// Writes one audit entry inside the caller's transaction.
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    meta: &RequestMeta,
    entry: AuditRecord<'_>,
) -> DomainResult<()> {
    conn.execute(&statement(meta, entry)).await?;
    Ok(())
}

/// The statement of [`record`], for a [`crate::sql::Batch`].
pub fn statement(meta: &RequestMeta, entry: AuditRecord<'_>) -> InsertStatement {
    audit_log::Entity::insert(audit_log::ActiveModel {
        id: Set(Uuid::now_v7()),
        actor_id: Set(entry.actor),
        action: Set(entry.action.to_owned()),
        subject: Set(entry.subject),
        detail: Set(entry.detail),
        correlation_id: Set(Some(meta.correlation_id.as_str().to_owned())),
        created_at: Set(Utc::now()),
    })
    .into_query()
}

/// One audit entry as read back (the `ops.audit_log` row).
pub use giftdrop_entities::ops::audit_log::Model as AuditEntry;

/// Newest-first page of entries strictly older than `before` (an entry id).
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    before: Option<Uuid>,
    limit: u64,
) -> DomainResult<Vec<AuditEntry>> {
    let mut query = audit_log::Entity::find()
        .order_by(audit_log::Column::Id, Order::Desc)
        .limit(limit);
    if let Some(before) = before {
        query = query.filter(audit_log::Column::Id.lt(before));
    }
    Ok(query.all(conn).await?)
}
