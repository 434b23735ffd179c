//! `giveaway.prizes`: `quantity` cards of one product and face value on
//! offer in an event.

use sea_orm::entity::prelude::*;

/// One prize line.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(schema_name = "giveaway", table_name = "prizes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub event_id: Uuid,
    pub card_product_id: Uuid,
    /// Minor units, positive.
    pub face_value: i64,
    pub quantity: i32,
    /// Units currently held by a standing winner.
    pub awarded: i32,
}

/// Relations of a prize.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The event.
    #[sea_orm(
        belongs_to = "super::events::Entity",
        from = "Column::EventId",
        to = "super::events::Column::Id"
    )]
    Event,
    /// The card product awarded.
    #[sea_orm(
        belongs_to = "crate::giftcard::card_products::Entity",
        from = "Column::CardProductId",
        to = "crate::giftcard::card_products::Column::Id"
    )]
    CardProduct,
    /// Its units.
    #[sea_orm(has_many = "super::prize_units::Entity")]
    Units,
}

impl Related<super::events::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Event.def()
    }
}

impl Related<crate::giftcard::card_products::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::CardProduct.def()
    }
}

impl Related<super::prize_units::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Units.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
