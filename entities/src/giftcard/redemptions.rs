//! `giftcard.redemptions`: a card redeemed at a branch, once per card and
//! per escrow.

use sea_orm::entity::prelude::*;

/// One redemption.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(schema_name = "giftcard", table_name = "redemptions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub card_id: Uuid,
    #[sea_orm(unique)]
    pub escrow_id: Uuid,
    pub branch_id: Uuid,
    pub staff_id: Uuid,
    pub redeemed_at: ChronoDateTimeUtc,
}

/// Relations of a redemption.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The card.
    #[sea_orm(
        belongs_to = "super::cards::Entity",
        from = "Column::CardId",
        to = "super::cards::Column::Id"
    )]
    Card,
    /// The escrow it settled.
    #[sea_orm(
        belongs_to = "super::escrows::Entity",
        from = "Column::EscrowId",
        to = "super::escrows::Column::Id"
    )]
    Escrow,
    /// Where.
    #[sea_orm(
        belongs_to = "super::branches::Entity",
        from = "Column::BranchId",
        to = "super::branches::Column::Id"
    )]
    Branch,
    /// The staff member who redeemed it.
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

impl Related<super::escrows::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Escrow.def()
    }
}

impl Related<super::branches::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Branch.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
