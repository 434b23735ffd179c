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
    #[sea_orm(column_type = "Text")]
    pub action: String,
    #[sea_orm(column_type = "Text")]
    pub subject: String,
    #[sea_orm(column_type = "Text")]
    pub detail: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub correlation_id: Option<String>,
    pub created_at: ChronoDateTimeUtc,
}

/// Relations of an audit entry.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The acting user.
    #[sea_orm(
        belongs_to = "crate::identity::users::Entity",
        from = "Column::ActorId",
        to = "crate::identity::users::Column::Id",
        on_delete = "SetNull"
    )]
    Actor,
}

impl Related<crate::identity::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Actor.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
