//! Postgres migrations. One database, one schema per bounded context
//! (`identity`, `giveaway`, `giftcard`, `ledger`, `ops`); `seaql_migrations`
//! stays in `public`.
//!
//! Migrations are raw SQL on purpose: constraints, partial indexes and checks
//! are the database's half of the business invariants, and SQL says them
//! exactly.

use sea_orm_migration::prelude::*;

mod m20261121_000001_foundation;
mod m20261123_000001_ledger;
mod m20261123_000002_wallet_version;
mod m20261201_000001_giftcard;
mod m20261202_000001_giveaway;
mod m20261203_000001_lean_writes;
mod m20261206_000001_payout_reservation;
mod m20261206_000002_escrow_deposit_rate;

/// Every migration, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_foundation::Migration),
            Box::new(m20261123_000001_ledger::Migration),
            Box::new(m20261123_000002_wallet_version::Migration),
            Box::new(m20261201_000001_giftcard::Migration),
            Box::new(m20261202_000001_giveaway::Migration),
            Box::new(m20261203_000001_lean_writes::Migration),
            Box::new(m20261206_000001_payout_reservation::Migration),
            Box::new(m20261206_000002_escrow_deposit_rate::Migration),
        ]
    }
}

/// Runs `sql` (several statements allowed) on the manager's connection.
pub(crate) async fn run_sql(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    manager
        .get_connection()
        .execute_unprepared(sql)
        .await
        .map(|_| ())
}
