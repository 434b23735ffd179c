//! `giftcard.escrows`: money reserved for one card (a purchase or an event
//! prize), RESERVED then SETTLED or RELEASED exactly once; a trigger keeps
//! its terms fixed and a final escrow final.

use sea_orm::entity::prelude::*;

/// Where an escrow stands (`status`'s check constraint).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum Status {
    /// Money held in escrow holding.
    #[sea_orm(string_value = "RESERVED")]
    Reserved,
    /// Paid to the merchant and the fee accounts (the split set).
    #[sea_orm(string_value = "SETTLED")]
    Settled,
    /// Returned to the funder (`release_reason` set).
    #[sea_orm(string_value = "RELEASED")]
    Released,
}

/// What reserved it (`source`'s check constraint).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum Source {
    /// One unit of an event's prize, funded by the host.
    #[sea_orm(string_value = "EVENT_PRIZE")]
    EventPrize,
    /// A card bought by a participant.
    #[sea_orm(string_value = "CARD_PURCHASE")]
    CardPurchase,
}

/// One escrow.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(schema_name = "giftcard", table_name = "escrows")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub status: Status,
    pub source: Source,
    /// Minor units, positive.
    pub amount: i64,
    pub merchant_id: Uuid,
    pub funder_id: Uuid,
    /// The wallet that paid, and that a release refunds.
    pub funder_account_id: Uuid,
    /// The event, for an EVENT_PRIZE escrow.
    pub event_id: Option<Uuid>,
    /// The merchant's service rate when reserved, basis points.
    pub service_rate_bps: i32,
    /// The split, set when SETTLED (they sum to `amount`).
    pub deposit_fee: Option<i64>,
    pub service_fee: Option<i64>,
    pub merchant_payout: Option<i64>,
    pub reserve_transfer_id: Uuid,
    /// The settling or releasing transfer, once final.
    pub final_transfer_id: Option<Uuid>,
    #[sea_orm(column_type = "Text")]
    pub release_reason: Option<String>,
    pub created_at: ChronoDateTimeUtc,
    pub settled_at: Option<ChronoDateTimeUtc>,
    pub released_at: Option<ChronoDateTimeUtc>,
    /// The deposit fee rate when reserved, basis points; null for escrows
    /// reserved before rates were kept (they settle at the configured rate).
    pub deposit_fee_bps: Option<i32>,
}

/// Relations of an escrow.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The merchant paid at settlement.
    #[sea_orm(
        belongs_to = "super::merchants::Entity",
        from = "Column::MerchantId",
        to = "super::merchants::Column::Id"
    )]
    Merchant,
    /// The user who paid.
    #[sea_orm(
        belongs_to = "crate::identity::users::Entity",
        from = "Column::FunderId",
        to = "crate::identity::users::Column::Id"
    )]
    Funder,
    /// The wallet that paid.
    #[sea_orm(
        belongs_to = "crate::ledger::accounts::Entity",
        from = "Column::FunderAccountId",
        to = "crate::ledger::accounts::Column::Id"
    )]
    FunderAccount,
    /// The event of a prize escrow.
    #[sea_orm(
        belongs_to = "crate::giveaway::events::Entity",
        from = "Column::EventId",
        to = "crate::giveaway::events::Column::Id"
    )]
    Event,
    /// The reserving transfer.
    #[sea_orm(
        belongs_to = "crate::ledger::transfers::Entity",
        from = "Column::ReserveTransferId",
        to = "crate::ledger::transfers::Column::Id"
    )]
    ReserveTransfer,
    /// The settling or releasing transfer.
    #[sea_orm(
        belongs_to = "crate::ledger::transfers::Entity",
        from = "Column::FinalTransferId",
        to = "crate::ledger::transfers::Column::Id"
    )]
    FinalTransfer,
    /// The cards it backs (one standing, earlier ones VOID).
    #[sea_orm(has_many = "super::cards::Entity")]
    Cards,
}

impl Related<super::merchants::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Merchant.def()
    }
}

impl Related<crate::giveaway::events::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Event.def()
    }
}

impl Related<super::cards::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Cards.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
