//! An escrow keeps the deposit fee rate in force when it was reserved, as
//! it keeps the merchant's service rate: a later change of
//! `DEPOSIT_FEE_BPS` never re-prices an open escrow. Escrows reserved
//! before this migration have none and settle at the configured rate.

use sea_orm_migration::prelude::*;

use crate::run_sql;

/// `giftcard.escrows.deposit_fee_bps`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(
            manager,
            "ALTER TABLE giftcard.escrows ADD COLUMN deposit_fee_bps integer \
             CHECK (deposit_fee_bps BETWEEN 0 AND 10000)",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(
            manager,
            "ALTER TABLE giftcard.escrows DROP COLUMN deposit_fee_bps",
        )
        .await
    }
}
