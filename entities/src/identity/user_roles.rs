//! `identity.user_roles`: the roles a user holds, one row each.

use sea_orm::entity::prelude::*;

/// A platform role (`role`'s check constraint).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum Role {
    /// Every user.
    #[sea_orm(string_value = "PARTICIPANT")]
    Participant,
    /// Funds and runs giveaway events.
    #[sea_orm(string_value = "HOST")]
    Host,
    /// Staff of at least one merchant.
    #[sea_orm(string_value = "MERCHANT")]
    Merchant,
    /// Platform operator.
    #[sea_orm(string_value = "ADMIN")]
    Admin,
}

/// One role held by one user.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(schema_name = "identity", table_name = "user_roles")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub role: Role,
    pub granted_at: ChronoDateTimeUtc,
    /// Null for roles granted by the system (registration, bootstrap).
    pub granted_by: Option<Uuid>,
}

/// Relations of a role row.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The user holding the role.
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::UserId",
        to = "super::users::Column::Id",
        on_delete = "Cascade"
    )]
    User,
    /// The user who granted it.
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::GrantedBy",
        to = "super::users::Column::Id",
        on_delete = "SetNull"
    )]
    GrantedBy,
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
