//! `giveaway.prize_units`: one awardable card of a prize, backed by its own
//! escrow; in the pool while `winner_id` is null.

use sea_orm::entity::prelude::*;

/// One prize unit.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(schema_name = "giveaway", table_name = "prize_units")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub event_id: Uuid,
    pub prize_id: Uuid,
    /// 1, 2, ... within the prize.
    pub unit: i32,
    #[sea_orm(unique)]
    pub escrow_id: Uuid,
    /// The participant holding it now; null while it is in the pool.
    pub winner_id: Option<Uuid>,
}

/// Relations of a prize unit.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The event.
    #[sea_orm(
        belongs_to = "super::events::Entity",
        from = "Column::EventId",
        to = "super::events::Column::Id"
    )]
    Event,
    /// The prize.
    #[sea_orm(
        belongs_to = "super::prizes::Entity",
        from = "Column::PrizeId",
        to = "super::prizes::Column::Id"
    )]
    Prize,
    /// The escrow backing it.
    #[sea_orm(
        belongs_to = "crate::giftcard::escrows::Entity",
        from = "Column::EscrowId",
        to = "crate::giftcard::escrows::Column::Id"
    )]
    Escrow,
    /// The participant holding it.
    #[sea_orm(
        belongs_to = "super::participants::Entity",
        from = "Column::WinnerId",
        to = "super::participants::Column::Id"
    )]
    Winner,
}

impl Related<super::events::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Event.def()
    }
}

impl Related<super::prizes::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Prize.def()
    }
}

impl Related<crate::giftcard::escrows::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Escrow.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
