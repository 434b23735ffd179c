//! `ledger.entries`: one leg of a transfer on one account, append-only.
//! `kind` is the contract's `EntryKind` (its transfer's kind); the database
//! does not check it, so it stays text here.

use sea_orm::entity::prelude::*;

/// Which way money moves on the account (`direction`'s check constraint).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum Direction {
    /// Money into the account.
    #[sea_orm(string_value = "CREDIT")]
    Credit,
    /// Money out of the account.
    #[sea_orm(string_value = "DEBIT")]
    Debit,
}

/// One entry.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(schema_name = "ledger", table_name = "entries")]
pub struct Model {
    /// `GENERATED ALWAYS AS IDENTITY`: never set on insert.
    #[sea_orm(primary_key)]
    pub id: i64,
    pub transfer_id: Uuid,
    pub account_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub kind: String,
    pub direction: Direction,
    /// Minor units, positive.
    pub amount: i64,
    /// The wallet's balance after this entry; null on platform accounts.
    pub balance_after: Option<i64>,
    #[sea_orm(column_type = "Text")]
    pub reference: String,
    pub created_at: ChronoDateTimeUtc,
}

/// Relations of an entry.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The transfer it is a leg of.
    #[sea_orm(
        belongs_to = "super::transfers::Entity",
        from = "Column::TransferId",
        to = "super::transfers::Column::Id"
    )]
    Transfer,
    /// The account it moves money on.
    #[sea_orm(
        belongs_to = "super::accounts::Entity",
        from = "Column::AccountId",
        to = "super::accounts::Column::Id"
    )]
    Account,
}

impl Related<super::transfers::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Transfer.def()
    }
}

impl Related<super::accounts::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Account.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
