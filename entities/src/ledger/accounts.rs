//! `ledger.accounts`: wallets (a user's or a merchant's, with a running
//! balance) and platform accounts (one per kind, no running balance: their
//! balance is the sum of their entries).

use sea_orm::entity::prelude::*;

/// What an account is (`kind`'s check constraint).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum Kind {
    /// A user's wallet.
    #[sea_orm(string_value = "USER")]
    User,
    /// A merchant's wallet.
    #[sea_orm(string_value = "MERCHANT")]
    Merchant,
    /// Money the payment provider holds for us.
    #[sea_orm(string_value = "PROVIDER_CLEARING")]
    ProviderClearing,
    /// Money reserved in escrows.
    #[sea_orm(string_value = "ESCROW_HOLDING")]
    EscrowHolding,
    /// Service fees earned.
    #[sea_orm(string_value = "PLATFORM_FEES")]
    PlatformFees,
    /// Deposit fees paid to the provider, recovered at settlement.
    #[sea_orm(string_value = "PROVIDER_FEES")]
    ProviderFees,
    /// Payouts reserved from merchant wallets, not yet answered by the
    /// provider.
    #[sea_orm(string_value = "PAYOUTS_IN_FLIGHT")]
    PayoutsInFlight,
}

/// One account.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(schema_name = "ledger", table_name = "accounts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub kind: Kind,
    /// The user or merchant owning a wallet; null for platform accounts.
    pub owner_id: Option<Uuid>,
    /// Minor units; always 0 for platform accounts.
    pub balance: i64,
    pub created_at: ChronoDateTimeUtc,
    /// Raised by every posting that touches the account.
    pub version: i64,
}

/// Relations of an account.
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
