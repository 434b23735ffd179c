//! `ledger.idempotency_keys`: one caller's key for one operation, claimed
//! while the operation runs and holding its outcome once done.

use sea_orm::entity::prelude::*;

/// Where a key stands (`state`'s check constraint).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum State {
    /// Claimed by a running attempt (`claim` set).
    #[sea_orm(string_value = "IN_PROGRESS")]
    InProgress,
    /// Finished (`outcome` set, `claim` null).
    #[sea_orm(string_value = "DONE")]
    Done,
}

/// One idempotency key.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(schema_name = "ledger", table_name = "idempotency_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub caller_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub operation: String,
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub key: String,
    /// SHA-256 of the request, so a key reused for another request is
    /// refused.
    pub request_hash: Vec<u8>,
    pub state: State,
    /// The running attempt's claim.
    pub claim: Option<Uuid>,
    #[sea_orm(column_type = "JsonBinary")]
    pub outcome: Option<Json>,
    /// Until when the running attempt's claim holds.
    pub locked_until: Option<ChronoDateTimeUtc>,
    pub created_at: ChronoDateTimeUtc,
    pub expires_at: ChronoDateTimeUtc,
}

/// An idempotency key has no relations: `caller_id` names the caller but is
/// not a foreign key.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
