//! `ops.audit_log`: who did what to whom, with the request's correlation id.

use sea_orm::entity::prelude::*;

/// One audited action.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(schema_name = "ops", table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Null for actions of the system itself (bootstrap, scheduled jobs).
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub subject: String,
    pub detail: Option<String>,
    pub correlation_id: Option<String>,
    pub created_at: ChronoDateTimeUtc,
}

/// The audit log has no navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
