//! `identity.users`: one row per account. `email` is stored normalized
//! (trimmed, lowercase), so its unique constraint is case-insensitive.

use sea_orm::entity::prelude::*;

/// A user account.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(schema_name = "identity", table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(column_type = "Text", unique)]
    pub email: String,
    #[sea_orm(column_type = "Text")]
    pub display_name: String,
    #[sea_orm(column_type = "Text")]
    pub password_hash: String,
    pub created_at: ChronoDateTimeUtc,
    pub updated_at: ChronoDateTimeUtc,
}

/// Relations of a user. Every other table naming a user holds the foreign
/// key (`belongs_to` there); only the user's own roles are navigable here.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The roles the user holds.
    #[sea_orm(has_many = "super::user_roles::Entity")]
    Roles,
}

impl Related<super::user_roles::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Roles.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
