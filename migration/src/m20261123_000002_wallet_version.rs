//! A version on every account, raised by each posting that touches it, so
//! live wallet updates can be ordered: a subscriber drops a message older
//! than the state it already showed.

use sea_orm_migration::prelude::*;

use crate::run_sql;

/// `ledger.accounts.version`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(
            manager,
            "ALTER TABLE ledger.accounts ADD COLUMN version bigint NOT NULL DEFAULT 0",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(
            manager,
            "ALTER TABLE ledger.accounts DROP COLUMN IF EXISTS version",
        )
        .await
    }
}
