//! `giftcard.card_products`: a kind of gift card a merchant sells, in fixed
//! denominations.

use sea_orm::entity::prelude::*;

/// One card product.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(schema_name = "giftcard", table_name = "card_products")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub merchant_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub name: String,
    #[sea_orm(column_type = "Text")]
    pub description: String,
    /// Face values on sale, minor units, 1-20 of them, each positive.
    pub denominations: Vec<i64>,
    /// How long a card is valid after issue.
    pub validity_days: i32,
    pub active: bool,
    pub created_at: ChronoDateTimeUtc,
}

/// Relations of a card product.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The merchant selling it.
    #[sea_orm(
        belongs_to = "super::merchants::Entity",
        from = "Column::MerchantId",
        to = "super::merchants::Column::Id"
    )]
    Merchant,
    /// Cards issued of it.
    #[sea_orm(has_many = "super::cards::Entity")]
    Cards,
}

impl Related<super::merchants::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Merchant.def()
    }
}

impl Related<super::cards::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Cards.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
