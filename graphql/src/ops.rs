//! Operator views: the audit log and platform figures.

use async_graphql::{Context, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use giftdrop_domain::{audit, identity, stats};

use crate::auth::{require_role, services};
use crate::error::Gql;
use crate::identity::User;
use crate::ids;
use crate::money::Money;
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

/// Headline figures for operators.
#[derive(SimpleObject)]
pub struct PlatformStats {
    users: i32,
    live_events: i32,
    escrow_reserved: Money,
    escrow_settled: Money,
    fees_earned: Money,
    generated_at: DateTime<Utc>,
}

/// Operator queries.
#[derive(Default)]
pub struct OpsQuery;

#[Object]
impl OpsQuery {
    /// Admin only.
    async fn platform_stats(&self, ctx: &Context<'_>) -> Result<PlatformStats> {
        require_role(ctx, identity::Role::Admin)?;
        let figures = stats::platform_stats(services(ctx)?).await.gql()?;
        let count = |n: i64| i32::try_from(n).unwrap_or(i32::MAX);
        Ok(PlatformStats {
            users: count(figures.users),
            live_events: count(figures.live_events),
            escrow_reserved: figures.escrow_reserved.into(),
            escrow_settled: figures.escrow_settled.into(),
            fees_earned: figures.fees_earned.into(),
            generated_at: figures.generated_at,
        })
    }

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
