//! `ledger.topups`: a wallet top-up through the payment provider, PENDING
//! until the provider's webhook (or reconciliation) books or fails it.

use sea_orm::entity::prelude::*;

/// Where a top-up stands (`status`'s check constraint).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum Status {
    /// Waiting for the provider.
    #[sea_orm(string_value = "PENDING")]
    Pending,
    /// Paid and booked (`fee` and `transfer_id` set).
    #[sea_orm(string_value = "SUCCEEDED")]
    Succeeded,
    /// Refused or abandoned at the provider.
    #[sea_orm(string_value = "FAILED")]
    Failed,
}

/// One top-up.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(schema_name = "ledger", table_name = "topups")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    /// The wallet credited.
    pub account_id: Uuid,
    /// The provider's reference (unique).
    #[sea_orm(column_type = "Text", unique)]
    pub reference: String,
    /// Minor units, positive.
    pub amount: i64,
    /// The provider's fee, known once SUCCEEDED.
    pub fee: Option<i64>,
    pub status: Status,
    #[sea_orm(column_type = "Text")]
    pub checkout_url: String,
    #[sea_orm(column_type = "Text")]
    pub failure_reason: Option<String>,
    /// The TOPUP transfer, once SUCCEEDED.
    pub transfer_id: Option<Uuid>,
    #[sea_orm(column_type = "Text")]
    pub correlation_id: String,
    pub created_at: ChronoDateTimeUtc,
    /// Set when the top-up leaves PENDING.
    pub completed_at: Option<ChronoDateTimeUtc>,
}

/// Relations of a top-up.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The user topping up.
    #[sea_orm(
        belongs_to = "crate::identity::users::Entity",
        from = "Column::UserId",
        to = "crate::identity::users::Column::Id"
    )]
    User,
    /// The wallet credited.
    #[sea_orm(
        belongs_to = "super::accounts::Entity",
        from = "Column::AccountId",
        to = "super::accounts::Column::Id"
    )]
    Account,
    /// The TOPUP transfer.
    #[sea_orm(
        belongs_to = "super::transfers::Entity",
        from = "Column::TransferId",
        to = "super::transfers::Column::Id"
    )]
    Transfer,
}

impl Related<crate::identity::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl Related<super::accounts::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Account.def()
    }
}

impl Related<super::transfers::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Transfer.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
