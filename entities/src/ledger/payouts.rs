//! `ledger.payouts`: a merchant's withdrawal. Requesting one reserves its
//! amount (wallet -> payouts in flight, `reservation_id`); the provider's
//! answer settles it (`transfer_id`: PAYOUT to provider clearing) or
//! reverses it (PAYOUT_REVERSAL to the wallet).

use sea_orm::entity::prelude::*;

/// Where a payout stands (`status`'s check constraint).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum Status {
    /// Reserved, waiting for the provider.
    #[sea_orm(string_value = "PENDING")]
    Pending,
    /// Paid out.
    #[sea_orm(string_value = "SUCCEEDED")]
    Succeeded,
    /// Refused by the provider (`failure_reason` set).
    #[sea_orm(string_value = "FAILED")]
    Failed,
}

/// One payout.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(schema_name = "ledger", table_name = "payouts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub merchant_id: Uuid,
    /// The merchant's wallet.
    pub account_id: Uuid,
    /// Minor units, positive.
    pub amount: i64,
    pub status: Status,
    /// The reference sent to the provider (unique).
    #[sea_orm(column_type = "Text", unique)]
    pub reference: String,
    #[sea_orm(column_type = "Text")]
    pub destination: String,
    #[sea_orm(column_type = "Text")]
    pub failure_reason: Option<String>,
    /// The transfer that settled the payout (null while PENDING, and for a
    /// FAILED payout made before reservations existed).
    pub transfer_id: Option<Uuid>,
    pub requested_by: Uuid,
    #[sea_orm(column_type = "Text")]
    pub correlation_id: String,
    pub created_at: ChronoDateTimeUtc,
    /// Set when the payout leaves PENDING.
    pub completed_at: Option<ChronoDateTimeUtc>,
    /// The PAYOUT transfer that reserved the amount (null only for payouts
    /// finished before reservations existed).
    pub reservation_id: Option<Uuid>,
}

/// Relations of a payout.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The merchant paid out.
    #[sea_orm(
        belongs_to = "crate::giftcard::merchants::Entity",
        from = "Column::MerchantId",
        to = "crate::giftcard::merchants::Column::Id"
    )]
    Merchant,
    /// The merchant's wallet.
    #[sea_orm(
        belongs_to = "super::accounts::Entity",
        from = "Column::AccountId",
        to = "super::accounts::Column::Id"
    )]
    Account,
    /// The settling transfer.
    #[sea_orm(
        belongs_to = "super::transfers::Entity",
        from = "Column::TransferId",
        to = "super::transfers::Column::Id"
    )]
    Transfer,
    /// The reserving transfer.
    #[sea_orm(
        belongs_to = "super::transfers::Entity",
        from = "Column::ReservationId",
        to = "super::transfers::Column::Id"
    )]
    Reservation,
    /// The staff member or admin who asked for it.
    #[sea_orm(
        belongs_to = "crate::identity::users::Entity",
        from = "Column::RequestedBy",
        to = "crate::identity::users::Column::Id"
    )]
    RequestedBy,
}

impl Related<crate::giftcard::merchants::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Merchant.def()
    }
}

impl Related<super::accounts::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Account.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
