//! The audit log: every state-changing admin action leaves one entry with
//! the actor and the correlation id, written in the action's transaction.

use chrono::Utc;
use giftdrop_entities::ops::audit_log;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect,
    Statement,
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
    conn.execute_raw(statement(meta, entry)).await?;
    Ok(())
}

/// The statement of [`record`], for a [`crate::sql::Batch`].
pub fn statement(meta: &RequestMeta, entry: AuditRecord<'_>) -> Statement {
    crate::sql::statement(
        "INSERT INTO ops.audit_log (id, actor_id, action, subject, detail, correlation_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        vec![
            Uuid::now_v7().into(),
            entry.actor.into(),
            entry.action.into(),
            entry.subject.into(),
            entry.detail.into(),
            meta.correlation_id.as_str().into(),
            Utc::now().into(),
        ],
    )
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
