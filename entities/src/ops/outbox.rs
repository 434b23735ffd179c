//! `ops.outbox`: side effects written in the same transaction as the business
//! rows that cause them, and moved to Redis (PUBLISH) or the job queue by the
//! relay after commit.

use sea_orm::entity::prelude::*;

/// One pending side effect.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(schema_name = "ops", table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// `publish` (a pub/sub message) or `job` (an apalis job).
    pub kind: String,
    /// The topic (for `publish`) or the job kind (for `job`).
    pub target: String,
    pub payload: Json,
    pub correlation_id: Option<String>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub available_at: ChronoDateTimeUtc,
    pub created_at: ChronoDateTimeUtc,
}

/// The outbox has no relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
