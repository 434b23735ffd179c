//! `ledger.transfers`: one balanced movement of money, append-only.

use sea_orm::entity::prelude::*;

/// Why money moved (`kind`'s check constraint).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum Kind {
    /// A wallet top-up through the payment provider.
    #[sea_orm(string_value = "TOPUP")]
    Topup,
    /// A host funding an event's prizes.
    #[sea_orm(string_value = "EVENT_FUNDING")]
    EventFunding,
    /// An event's unawarded prizes back to its host.
    #[sea_orm(string_value = "EVENT_REFUND")]
    EventRefund,
    /// A participant buying a card.
    #[sea_orm(string_value = "CARD_PURCHASE")]
    CardPurchase,
    /// A card's price back to its buyer.
    #[sea_orm(string_value = "CARD_REFUND")]
    CardRefund,
    /// An escrow settled to the merchant and the fee accounts.
    #[sea_orm(string_value = "SETTLEMENT")]
    Settlement,
    /// A merchant payout: its reservation or its settlement.
    #[sea_orm(string_value = "PAYOUT")]
    Payout,
    /// A failed payout's reservation back to the merchant's wallet.
    #[sea_orm(string_value = "PAYOUT_REVERSAL")]
    PayoutReversal,
    /// A manual correction.
    #[sea_orm(string_value = "ADJUSTMENT")]
    Adjustment,
}

/// One transfer; its entries sum to zero.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(schema_name = "ledger", table_name = "transfers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub kind: Kind,
    /// What the transfer is for (a top-up reference, an escrow id, ...).
    #[sea_orm(column_type = "Text")]
    pub reference: String,
    #[sea_orm(column_type = "Text")]
    pub correlation_id: String,
    pub created_at: ChronoDateTimeUtc,
}

/// Relations of a transfer.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// Its entries.
    #[sea_orm(has_many = "super::entries::Entity")]
    Entries,
}

impl Related<super::entries::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Entries.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
