//! The ledger: accounts (wallets and platform accounts), balanced transfers
//! of append-only entries, top-ups, and idempotency keys.
//!
//! The database holds the invariants as well as the code:
//! - every transfer's entries sum to zero, with at least two entries
//!   (a deferred constraint trigger checked at commit);
//! - entry amounts are positive, wallet balances never negative;
//! - transfers and entries are append-only.
//!
//! Platform accounts keep no running balance (it would be one hot row every
//! top-up and purchase locks): their balance is the sum of their entries.
//! Wallets keep a running balance, updated in the same statement that checks
//! it, so concurrent debits serialize on the wallet row.

use sea_orm_migration::prelude::*;

use crate::run_sql;

/// Ledger tables.
#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r"
CREATE TABLE ledger.accounts (
    id         uuid PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('USER', 'MERCHANT', 'PROVIDER_CLEARING', 'ESCROW_HOLDING', 'PLATFORM_FEES', 'PROVIDER_FEES')),
    owner_id   uuid,
    balance    bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT accounts_wallet_has_owner CHECK ((kind IN ('USER', 'MERCHANT')) = (owner_id IS NOT NULL)),
    CONSTRAINT accounts_wallet_not_negative CHECK (balance >= 0),
    CONSTRAINT accounts_platform_no_running_balance CHECK (kind IN ('USER', 'MERCHANT') OR balance = 0)
);
CREATE UNIQUE INDEX accounts_wallet_owner_key ON ledger.accounts (kind, owner_id) WHERE owner_id IS NOT NULL;
CREATE UNIQUE INDEX accounts_platform_kind_key ON ledger.accounts (kind) WHERE owner_id IS NULL;

INSERT INTO ledger.accounts (id, kind) VALUES
    ('00000000-0000-0000-0000-00000000a001', 'PROVIDER_CLEARING'),
    ('00000000-0000-0000-0000-00000000a002', 'ESCROW_HOLDING'),
    ('00000000-0000-0000-0000-00000000a003', 'PLATFORM_FEES'),
    ('00000000-0000-0000-0000-00000000a004', 'PROVIDER_FEES');

CREATE TABLE ledger.transfers (
    id             uuid PRIMARY KEY,
    kind           text NOT NULL CHECK (kind IN ('TOPUP', 'EVENT_FUNDING', 'EVENT_REFUND', 'CARD_PURCHASE', 'CARD_REFUND', 'SETTLEMENT', 'PAYOUT', 'PAYOUT_REVERSAL', 'ADJUSTMENT')),
    reference      text NOT NULL,
    correlation_id text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transfers_reference_idx ON ledger.transfers (reference);
CREATE INDEX transfers_created_at_idx ON ledger.transfers (created_at);

CREATE TABLE ledger.entries (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transfer_id   uuid NOT NULL REFERENCES ledger.transfers (id),
    account_id    uuid NOT NULL REFERENCES ledger.accounts (id),
    kind          text NOT NULL,
    direction     text NOT NULL CHECK (direction IN ('CREDIT', 'DEBIT')),
    amount        bigint NOT NULL CHECK (amount > 0),
    balance_after bigint CHECK (balance_after >= 0),
    reference     text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX entries_account_idx ON ledger.entries (account_id, id DESC);
CREATE INDEX entries_transfer_idx ON ledger.entries (transfer_id);

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

CREATE FUNCTION ledger.append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger.% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER transfers_append_only BEFORE UPDATE OR DELETE ON ledger.transfers
    FOR EACH ROW EXECUTE FUNCTION ledger.append_only();
CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON ledger.entries
    FOR EACH ROW EXECUTE FUNCTION ledger.append_only();

CREATE TABLE ledger.topups (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES identity.users (id),
    account_id     uuid NOT NULL REFERENCES ledger.accounts (id),
    reference      text NOT NULL,
    amount         bigint NOT NULL CHECK (amount > 0),
    fee            bigint CHECK (fee >= 0),
    status         text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED')),
    checkout_url   text NOT NULL,
    failure_reason text,
    transfer_id    uuid REFERENCES ledger.transfers (id),
    correlation_id text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    completed_at   timestamptz,
    CONSTRAINT topups_reference_key UNIQUE (reference),
    CONSTRAINT topups_success_is_booked CHECK ((status = 'SUCCEEDED') = (transfer_id IS NOT NULL AND fee IS NOT NULL)),
    CONSTRAINT topups_completed CHECK ((status = 'PENDING') = (completed_at IS NULL))
);
CREATE INDEX topups_user_idx ON ledger.topups (user_id, created_at DESC);
CREATE INDEX topups_account_idx ON ledger.topups (account_id);
CREATE INDEX topups_transfer_idx ON ledger.topups (transfer_id);

CREATE TABLE ledger.idempotency_keys (
    caller_id    uuid NOT NULL,
    operation    text NOT NULL,
    key          text NOT NULL,
    request_hash bytea NOT NULL,
    state        text NOT NULL CHECK (state IN ('IN_PROGRESS', 'DONE')),
    claim        uuid,
    outcome      jsonb,
    locked_until timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (caller_id, operation, key),
    CONSTRAINT idempotency_keys_state CHECK ((state = 'DONE') = (outcome IS NOT NULL AND claim IS NULL))
);
CREATE INDEX idempotency_keys_expires_at_idx ON ledger.idempotency_keys (expires_at);
";

const DOWN: &str = r"
DROP TABLE IF EXISTS ledger.idempotency_keys;
DROP TABLE IF EXISTS ledger.topups;
DROP TABLE IF EXISTS ledger.entries;
DROP TABLE IF EXISTS ledger.transfers;
DROP TABLE IF EXISTS ledger.accounts;
DROP FUNCTION IF EXISTS ledger.check_transfer_balanced();
DROP FUNCTION IF EXISTS ledger.append_only();
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(manager, DOWN).await
    }
}
