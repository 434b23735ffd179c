//! Operator views: the audit log.

use async_graphql::{Context, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use giftdrop_domain::{audit, identity};

use crate::auth::{require_role, services};
use crate::error::Gql;
use crate::identity::User;
use crate::ids;
use crate::page::page_size;

/// One audited action.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct AuditEntry {
    id: ID,
    #[graphql(skip)]
    actor: Option<identity::UserView>,
    action: String,
    subject: String,
    detail: Option<String>,
    correlation_id: Option<String>,
    created_at: DateTime<Utc>,
}

#[async_graphql::ComplexObject]
impl AuditEntry {
    async fn actor(&self) -> Option<User> {
        // Only admins read the audit log, so private fields are visible.
        self.actor.clone().map(User::with_private_fields)
    }
}

crate::connection!(AuditEntryConnection, AuditEntryEdge, AuditEntry);

/// Operator queries.
#[derive(Default)]
pub struct OpsQuery;

#[Object]
impl OpsQuery {
    /// Admin only; newest first.
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<AuditEntryConnection> {
        require_role(ctx, identity::Role::Admin)?;
        let first = page_size(first.unwrap_or(50)).gql()?;
        let after = after
            .map(|c| ids::parse(&ID(c), "after"))
            .transpose()
            .gql()?;
        let db = &services(ctx)?.db;
        let limit = u64::try_from(first + 1).unwrap_or(u64::MAX);
        let entries = audit::list(db, after, limit).await.gql()?;
        let mut actor_ids: Vec<_> = entries.iter().filter_map(|e| e.actor_id).collect();
        actor_ids.sort();
        actor_ids.dedup();
        let actors = identity::find_users(db, &actor_ids).await.gql()?;
        let nodes = entries
            .into_iter()
            .map(|e| AuditEntry {
                id: ids::of(e.id),
                actor: e
                    .actor_id
                    .and_then(|a| actors.iter().find(|u| u.id == a).cloned()),
                action: e.action,
                subject: e.subject,
                detail: e.detail,
                correlation_id: e.correlation_id,
                created_at: e.created_at,
            })
            .collect();
        Ok(AuditEntryConnection::from_fetched(nodes, first, |e| {
            e.id.to_string()
        }))
    }
}
