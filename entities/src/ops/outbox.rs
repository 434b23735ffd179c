//! `ops.outbox`: side effects written in the same transaction as the business
//! rows that cause them, and moved to Redis (PUBLISH) or the job queue by the
//! relay after commit.

use sea_orm::entity::prelude::*;

/// What the relay does with a row (`kind`'s check constraint).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum Kind {
    /// A pub/sub message: PUBLISH `payload` on `target`.
    #[sea_orm(string_value = "publish")]
    Publish,
    /// A background job: push `payload` to the queue of job kind `target`.
    #[sea_orm(string_value = "job")]
    Job,
}

/// One pending side effect.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(schema_name = "ops", table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub kind: Kind,
    /// The topic (for `publish`) or the job kind (for `job`).
    #[sea_orm(column_type = "Text")]
    pub target: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub payload: Json,
    #[sea_orm(column_type = "Text")]
    pub correlation_id: Option<String>,
    pub attempts: i32,
    #[sea_orm(column_type = "Text")]
    pub last_error: Option<String>,
    pub available_at: ChronoDateTimeUtc,
    pub created_at: ChronoDateTimeUtc,
}

/// The outbox has no relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
