//! A payout's money is reserved in the ledger, not computed beside it.
//!
//! Requesting a payout moves its amount from the merchant's wallet to the
//! payouts-in-flight platform account (a PAYOUT transfer) in the same
//! transaction that records the PENDING payout. The provider's answer then
//! settles the reservation (in flight -> provider clearing, PAYOUT) or
//! reverses it (in flight -> the wallet, PAYOUT_REVERSAL). So the wallet's
//! own balance check refuses a payout it cannot cover, whatever runs
//! concurrently, and no step after the provider's answer can fail for lack
//! of funds. The payouts-in-flight balance always equals the sum of PENDING
//! payouts.
//!
//! Payouts made before this migration were never reserved: it refuses to
//! run while any is PENDING (let the running version's reconciliation
//! settle them first), so every PENDING payout afterwards has a
//! reservation.

use sea_orm_migration::prelude::*;

use crate::run_sql;

/// The payouts-in-flight account; payouts carry their reservation.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(
            manager,
            r"
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM ledger.payouts WHERE status = 'PENDING') THEN
        RAISE EXCEPTION 'ledger.payouts has PENDING payouts made before payouts were reserved in the ledger: let the running version settle them (its payout reconciliation) and run the migration again';
    END IF;
END
$$;

ALTER TABLE ledger.accounts DROP CONSTRAINT accounts_kind_check;
ALTER TABLE ledger.accounts ADD CONSTRAINT accounts_kind_check
    CHECK (kind IN ('USER', 'MERCHANT', 'PROVIDER_CLEARING', 'ESCROW_HOLDING', 'PLATFORM_FEES', 'PROVIDER_FEES', 'PAYOUTS_IN_FLIGHT'));
INSERT INTO ledger.accounts (id, kind) VALUES ('00000000-0000-0000-0000-00000000a005', 'PAYOUTS_IN_FLIGHT');

ALTER TABLE ledger.payouts ADD COLUMN reservation_id uuid REFERENCES ledger.transfers (id);
ALTER TABLE ledger.payouts DROP CONSTRAINT payouts_success_is_booked;
ALTER TABLE ledger.payouts ADD CONSTRAINT payouts_pending_is_reserved
    CHECK (status <> 'PENDING' OR reservation_id IS NOT NULL);
ALTER TABLE ledger.payouts ADD CONSTRAINT payouts_outcome_is_booked
    CHECK (CASE WHEN reservation_id IS NULL
                THEN (status = 'SUCCEEDED') = (transfer_id IS NOT NULL)
                ELSE (status = 'PENDING') = (transfer_id IS NULL) END);
COMMENT ON COLUMN ledger.payouts.reservation_id IS 'The PAYOUT transfer that moved the amount from the wallet to payouts in flight (NULL only for payouts finished before reservations existed)';
COMMENT ON COLUMN ledger.payouts.transfer_id IS 'The transfer that settled the payout: PAYOUT to provider clearing when SUCCEEDED, PAYOUT_REVERSAL to the wallet when FAILED (NULL for a FAILED payout made before reservations existed)';
",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(
            manager,
            r"
ALTER TABLE ledger.payouts DROP CONSTRAINT payouts_outcome_is_booked;
ALTER TABLE ledger.payouts DROP CONSTRAINT payouts_pending_is_reserved;
ALTER TABLE ledger.payouts DROP COLUMN reservation_id;
ALTER TABLE ledger.payouts ADD CONSTRAINT payouts_success_is_booked
    CHECK ((status = 'SUCCEEDED') = (transfer_id IS NOT NULL)) NOT VALID;
",
        )
        .await
    }
}
