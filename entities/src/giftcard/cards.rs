//! `giftcard.cards`: an issued gift card, backed by one escrow. A
//! disqualified win's escrow backs a new card, so an escrow has one card
//! that is not VOID.

use sea_orm::entity::prelude::*;

/// Where a card stands (`status`'s check constraint).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum Status {
    /// Redeemable.
    #[sea_orm(string_value = "ACTIVE")]
    Active,
    /// Redeemed at a branch (`redeemed_at` set).
    #[sea_orm(string_value = "REDEEMED")]
    Redeemed,
    /// Past `expires_at` unredeemed.
    #[sea_orm(string_value = "EXPIRED")]
    Expired,
    /// Cancelled (e.g. its win was disqualified).
    #[sea_orm(string_value = "VOID")]
    Void,
}

/// One card.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(schema_name = "giftcard", table_name = "cards")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub product_id: Uuid,
    pub merchant_id: Uuid,
    pub owner_id: Uuid,
    pub escrow_id: Uuid,
    /// Minor units, positive.
    pub face_value: i64,
    /// The card's public code (unique).
    #[sea_orm(column_type = "Text", unique)]
    pub code: String,
    /// The PIN's hash, checked at redemption.
    pub pin_hash: Vec<u8>,
    /// The PIN sealed for its owner to read.
    pub pin_sealed: Vec<u8>,
    pub status: Status,
    /// Locked against PIN attempts until then, after repeated failures.
    pub locked_until: Option<ChronoDateTimeUtc>,
    pub issued_at: ChronoDateTimeUtc,
    pub expires_at: ChronoDateTimeUtc,
    pub redeemed_at: Option<ChronoDateTimeUtc>,
}

/// Relations of a card.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// Its product.
    #[sea_orm(
        belongs_to = "super::card_products::Entity",
        from = "Column::ProductId",
        to = "super::card_products::Column::Id"
    )]
    Product,
    /// The merchant honouring it.
    #[sea_orm(
        belongs_to = "super::merchants::Entity",
        from = "Column::MerchantId",
        to = "super::merchants::Column::Id"
    )]
    Merchant,
    /// Its owner.
    #[sea_orm(
        belongs_to = "crate::identity::users::Entity",
        from = "Column::OwnerId",
        to = "crate::identity::users::Column::Id"
    )]
    Owner,
    /// The escrow backing it.
    #[sea_orm(
        belongs_to = "super::escrows::Entity",
        from = "Column::EscrowId",
        to = "super::escrows::Column::Id"
    )]
    Escrow,
}

impl Related<super::card_products::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Product.def()
    }
}

impl Related<super::merchants::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Merchant.def()
    }
}

impl Related<super::escrows::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Escrow.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
