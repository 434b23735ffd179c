//! `giftcard.merchants`: a business selling gift cards on the platform.

use sea_orm::entity::prelude::*;

/// Where a merchant stands (`status`'s check constraint).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum Status {
    /// Created, not yet approved.
    #[sea_orm(string_value = "PENDING")]
    Pending,
    /// Approved: its products can be sold.
    #[sea_orm(string_value = "ACTIVE")]
    Active,
    /// Suspended by an admin (`status_reason` says why).
    #[sea_orm(string_value = "SUSPENDED")]
    Suspended,
}

/// One merchant.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(schema_name = "giftcard", table_name = "merchants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub name: String,
    pub status: Status,
    /// The platform's service fee on the merchant's sales, in basis points.
    pub service_rate_bps: i32,
    #[sea_orm(column_type = "Text")]
    pub payout_account: String,
    #[sea_orm(column_type = "Text")]
    pub status_reason: Option<String>,
    pub created_by: Uuid,
    pub created_at: ChronoDateTimeUtc,
    pub updated_at: ChronoDateTimeUtc,
}

/// Relations of a merchant.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The admin who created it.
    #[sea_orm(
        belongs_to = "crate::identity::users::Entity",
        from = "Column::CreatedBy",
        to = "crate::identity::users::Column::Id"
    )]
    CreatedBy,
    /// Its staff.
    #[sea_orm(has_many = "crate::identity::merchant_staff::Entity")]
    Staff,
    /// Its branches.
    #[sea_orm(has_many = "super::branches::Entity")]
    Branches,
    /// Its card products.
    #[sea_orm(has_many = "super::card_products::Entity")]
    CardProducts,
}

impl Related<crate::identity::merchant_staff::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Staff.def()
    }
}

impl Related<super::branches::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Branches.def()
    }
}

impl Related<super::card_products::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::CardProducts.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
