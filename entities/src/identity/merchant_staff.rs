//! `identity.merchant_staff`: who may act for which merchant.

use sea_orm::entity::prelude::*;

/// One user's membership of one merchant's staff.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(schema_name = "identity", table_name = "merchant_staff")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub merchant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    pub added_by: Option<Uuid>,
    pub added_at: ChronoDateTimeUtc,
}

/// Relations of a membership.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The merchant.
    #[sea_orm(
        belongs_to = "crate::giftcard::merchants::Entity",
        from = "Column::MerchantId",
        to = "crate::giftcard::merchants::Column::Id"
    )]
    Merchant,
    /// The staff member.
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::UserId",
        to = "super::users::Column::Id"
    )]
    User,
    /// The user who added them.
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::AddedBy",
        to = "super::users::Column::Id"
    )]
    AddedBy,
}

impl Related<crate::giftcard::merchants::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Merchant.def()
    }
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
