//! Fewer writes per posting and per purchase, the same guarantees:
//!
//! - The balance check of a transfer's entries runs once per statement
//!   over the rows that statement inserted (a transition table), instead
//!   of once per entry at commit with an index scan each. Every posting
//!   inserts all entries of its transfer in one statement, so a statement
//!   whose new entries of a transfer do not sum to zero (or are fewer than
//!   two) is refused, and the sum of every transfer stays zero.
//! - Indexes that only a delete of the referenced row would use are
//!   dropped: transfers are append-only, and products, merchants and
//!   accounts are never deleted, so nothing ever looks cards or escrows up
//!   by these columns, while every purchase paid for them.

use sea_orm_migration::prelude::*;

use crate::run_sql;

/// Statement-level balance check; unused foreign-key-side indexes dropped.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(
            manager,
            r"
DROP TRIGGER entries_transfer_balanced ON ledger.entries;
DROP FUNCTION ledger.check_transfer_balanced();
CREATE FUNCTION ledger.check_transfers_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    unbalanced record;
BEGIN
    SELECT transfer_id, count(*) AS legs,
           sum(CASE direction WHEN 'CREDIT' THEN amount ELSE -amount END) AS total
      INTO unbalanced
      FROM new_entries
     GROUP BY transfer_id
    HAVING sum(CASE direction WHEN 'CREDIT' THEN amount ELSE -amount END) <> 0 OR count(*) < 2
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger transfer % is unbalanced: % entries summing to %',
            unbalanced.transfer_id, unbalanced.legs, unbalanced.total
            USING ERRCODE = 'check_violation', CONSTRAINT = 'entries_transfer_balanced';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER entries_transfer_balanced AFTER INSERT ON ledger.entries
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.check_transfers_balanced();

DROP INDEX giftcard.cards_product_idx;
DROP INDEX giftcard.cards_merchant_idx;
DROP INDEX giftcard.escrows_funder_account_idx;
DROP INDEX giftcard.escrows_reserve_transfer_idx;
DROP INDEX giftcard.escrows_final_transfer_idx;
",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(
            manager,
            r"
CREATE INDEX escrows_final_transfer_idx ON giftcard.escrows (final_transfer_id);
CREATE INDEX escrows_reserve_transfer_idx ON giftcard.escrows (reserve_transfer_id);
CREATE INDEX escrows_funder_account_idx ON giftcard.escrows (funder_account_id);
CREATE INDEX cards_merchant_idx ON giftcard.cards (merchant_id);
CREATE INDEX cards_product_idx ON giftcard.cards (product_id);

DROP TRIGGER entries_transfer_balanced ON ledger.entries;
DROP FUNCTION ledger.check_transfers_balanced();
CREATE FUNCTION ledger.check_transfer_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    total numeric;
    legs  integer;
BEGIN
    SELECT coalesce(sum(CASE direction WHEN 'CREDIT' THEN amount ELSE -amount END), 0), count(*)
      INTO total, legs
      FROM ledger.entries WHERE transfer_id = NEW.transfer_id;
    IF total <> 0 OR legs < 2 THEN
        RAISE EXCEPTION 'ledger transfer % is unbalanced: % entries summing to %', NEW.transfer_id, legs, total
            USING ERRCODE = 'check_violation', CONSTRAINT = 'entries_transfer_balanced';
    END IF;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER entries_transfer_balanced
    AFTER INSERT ON ledger.entries DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger.check_transfer_balanced();
",
        )
        .await
    }
}
