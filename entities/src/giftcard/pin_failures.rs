//! `giftcard.pin_failures`: one wrong PIN entered at a branch, counted to
//! lock a card against guessing.

use sea_orm::entity::prelude::*;

/// One failed PIN attempt.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(schema_name = "giftcard", table_name = "pin_failures")]
pub struct Model {
    /// `GENERATED ALWAYS AS IDENTITY`: never set on insert.
    #[sea_orm(primary_key)]
    pub id: i64,
    pub card_id: Uuid,
    pub branch_id: Uuid,
    pub staff_id: Uuid,
    pub failed_at: ChronoDateTimeUtc,
}

/// Relations of a PIN failure.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The card.
    #[sea_orm(
        belongs_to = "super::cards::Entity",
        from = "Column::CardId",
        to = "super::cards::Column::Id"
    )]
    Card,
    /// Where it was entered.
    #[sea_orm(
        belongs_to = "super::branches::Entity",
        from = "Column::BranchId",
        to = "super::branches::Column::Id"
    )]
    Branch,
    /// Who entered it.
    #[sea_orm(
        belongs_to = "crate::identity::users::Entity",
        from = "Column::StaffId",
        to = "crate::identity::users::Column::Id"
    )]
    Staff,
}

impl Related<super::cards::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Card.def()
    }
}

impl Related<super::branches::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Branch.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
