//! `giveaway.winners`: one award of a prize unit to a participant, numbered
//! 1, 2, 3, ... within the event; a disqualified win stays, marked.

use sea_orm::entity::prelude::*;

/// One win.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(schema_name = "giveaway", table_name = "winners")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub event_id: Uuid,
    pub participant_id: Uuid,
    pub prize_id: Uuid,
    pub unit_id: Uuid,
    /// The card issued for the win (unique).
    #[sea_orm(unique)]
    pub card_id: Uuid,
    /// 1, 2, ... within the event, never repeated.
    pub sequence: i32,
    pub announced_at: ChronoDateTimeUtc,
    pub disqualified_at: Option<ChronoDateTimeUtc>,
    #[sea_orm(column_type = "Text")]
    pub disqualify_reason: Option<String>,
}

/// Relations of a win.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The event.
    #[sea_orm(
        belongs_to = "super::events::Entity",
        from = "Column::EventId",
        to = "super::events::Column::Id"
    )]
    Event,
    /// The winner.
    #[sea_orm(
        belongs_to = "super::participants::Entity",
        from = "Column::ParticipantId",
        to = "super::participants::Column::Id"
    )]
    Participant,
    /// The prize.
    #[sea_orm(
        belongs_to = "super::prizes::Entity",
        from = "Column::PrizeId",
        to = "super::prizes::Column::Id"
    )]
    Prize,
    /// The unit awarded.
    #[sea_orm(
        belongs_to = "super::prize_units::Entity",
        from = "Column::UnitId",
        to = "super::prize_units::Column::Id"
    )]
    Unit,
    /// The card issued.
    #[sea_orm(
        belongs_to = "crate::giftcard::cards::Entity",
        from = "Column::CardId",
        to = "crate::giftcard::cards::Column::Id"
    )]
    Card,
}

impl Related<super::events::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Event.def()
    }
}

impl Related<super::participants::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Participant.def()
    }
}

impl Related<super::prizes::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Prize.def()
    }
}

impl Related<super::prize_units::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Unit.def()
    }
}

impl Related<crate::giftcard::cards::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Card.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
