//! The marketplace: merchants, their staff and branches, card products,
//! escrows, cards and redemptions (`giftcard`, staff in `identity`), and
//! merchant payouts (`ledger`).
//!
//! The escrow state machine is enforced here as well as in code: an escrow
//! is RESERVED, then SETTLED or RELEASED exactly once. A trigger refuses any
//! change to a final escrow and any change of its amount, parties or rate,
//! and the checks tie each status to exactly the columns it must have. So
//! even a buggy or concurrent writer cannot settle a released escrow, or
//! release one twice.

use sea_orm_migration::prelude::*;

use crate::run_sql;

/// Marketplace tables.
#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r"
CREATE TABLE giftcard.merchants (
    id               uuid PRIMARY KEY,
    name             text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    status           text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'ACTIVE', 'SUSPENDED')),
    service_rate_bps integer NOT NULL CHECK (service_rate_bps BETWEEN 0 AND 10000),
    payout_account   text NOT NULL CHECK (char_length(payout_account) BETWEEN 1 AND 200),
    status_reason    text,
    created_by       uuid NOT NULL REFERENCES identity.users (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX merchants_status_idx ON giftcard.merchants (status, id);
CREATE INDEX merchants_created_by_idx ON giftcard.merchants (created_by);

CREATE TABLE identity.merchant_staff (
    merchant_id uuid NOT NULL REFERENCES giftcard.merchants (id),
    user_id     uuid NOT NULL REFERENCES identity.users (id),
    added_by    uuid REFERENCES identity.users (id),
    added_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, user_id)
);
CREATE INDEX merchant_staff_user_idx ON identity.merchant_staff (user_id);
CREATE INDEX merchant_staff_added_by_idx ON identity.merchant_staff (added_by);

CREATE TABLE giftcard.branches (
    id          uuid PRIMARY KEY,
    merchant_id uuid NOT NULL REFERENCES giftcard.merchants (id),
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    address     text NOT NULL CHECK (char_length(address) BETWEEN 1 AND 500),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX branches_merchant_idx ON giftcard.branches (merchant_id, id);

CREATE TABLE giftcard.card_products (
    id            uuid PRIMARY KEY,
    merchant_id   uuid NOT NULL REFERENCES giftcard.merchants (id),
    name          text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    description   text NOT NULL CHECK (char_length(description) <= 2000),
    denominations bigint[] NOT NULL CHECK (cardinality(denominations) BETWEEN 1 AND 20 AND 0 < ALL (denominations)),
    validity_days integer NOT NULL CHECK (validity_days BETWEEN 1 AND 3650),
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX card_products_merchant_idx ON giftcard.card_products (merchant_id, id);

CREATE TABLE giftcard.escrows (
    id                  uuid PRIMARY KEY,
    status              text NOT NULL DEFAULT 'RESERVED' CHECK (status IN ('RESERVED', 'SETTLED', 'RELEASED')),
    source              text NOT NULL CHECK (source IN ('EVENT_PRIZE', 'CARD_PURCHASE')),
    amount              bigint NOT NULL CHECK (amount > 0),
    merchant_id         uuid NOT NULL REFERENCES giftcard.merchants (id),
    funder_id           uuid NOT NULL REFERENCES identity.users (id),
    funder_account_id   uuid NOT NULL REFERENCES ledger.accounts (id),
    event_id            uuid,
    service_rate_bps    integer NOT NULL CHECK (service_rate_bps BETWEEN 0 AND 10000),
    deposit_fee         bigint CHECK (deposit_fee >= 0),
    service_fee         bigint CHECK (service_fee >= 0),
    merchant_payout     bigint CHECK (merchant_payout >= 0),
    reserve_transfer_id uuid NOT NULL REFERENCES ledger.transfers (id),
    final_transfer_id   uuid REFERENCES ledger.transfers (id),
    release_reason      text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    settled_at          timestamptz,
    released_at         timestamptz,
    CONSTRAINT escrows_settled_has_split CHECK ((status = 'SETTLED') = (settled_at IS NOT NULL AND deposit_fee IS NOT NULL AND service_fee IS NOT NULL AND merchant_payout IS NOT NULL)),
    CONSTRAINT escrows_split_sums_to_amount CHECK (status <> 'SETTLED' OR deposit_fee + service_fee + merchant_payout = amount),
    CONSTRAINT escrows_released_has_reason CHECK ((status = 'RELEASED') = (released_at IS NOT NULL AND release_reason IS NOT NULL)),
    CONSTRAINT escrows_final_is_booked CHECK ((status = 'RESERVED') = (final_transfer_id IS NULL))
);
CREATE INDEX escrows_status_idx ON giftcard.escrows (status, id DESC);
CREATE INDEX escrows_merchant_idx ON giftcard.escrows (merchant_id, id DESC);
CREATE INDEX escrows_funder_idx ON giftcard.escrows (funder_id, id DESC);
CREATE INDEX escrows_event_idx ON giftcard.escrows (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX escrows_funder_account_idx ON giftcard.escrows (funder_account_id);
CREATE INDEX escrows_reserve_transfer_idx ON giftcard.escrows (reserve_transfer_id);
CREATE INDEX escrows_final_transfer_idx ON giftcard.escrows (final_transfer_id);

CREATE FUNCTION giftcard.escrow_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'escrow % cannot be deleted', OLD.id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'escrows_state_machine';
    END IF;
    IF OLD.status <> 'RESERVED' THEN
        RAISE EXCEPTION 'escrow % is % and final', OLD.id, OLD.status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'escrows_state_machine';
    END IF;
    IF (NEW.amount, NEW.source, NEW.merchant_id, NEW.funder_id, NEW.funder_account_id, NEW.service_rate_bps, NEW.reserve_transfer_id, NEW.created_at)
       IS DISTINCT FROM
       (OLD.amount, OLD.source, OLD.merchant_id, OLD.funder_id, OLD.funder_account_id, OLD.service_rate_bps, OLD.reserve_transfer_id, OLD.created_at) THEN
        RAISE EXCEPTION 'escrow % terms are fixed at reservation', OLD.id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'escrows_state_machine';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER escrows_state_machine BEFORE UPDATE OR DELETE ON giftcard.escrows
    FOR EACH ROW EXECUTE FUNCTION giftcard.escrow_transition();

CREATE TABLE giftcard.cards (
    id           uuid PRIMARY KEY,
    product_id   uuid NOT NULL REFERENCES giftcard.card_products (id),
    merchant_id  uuid NOT NULL REFERENCES giftcard.merchants (id),
    owner_id     uuid NOT NULL REFERENCES identity.users (id),
    escrow_id    uuid NOT NULL REFERENCES giftcard.escrows (id),
    face_value   bigint NOT NULL CHECK (face_value > 0),
    code         text NOT NULL,
    pin_hash     bytea NOT NULL,
    pin_sealed   bytea NOT NULL,
    status       text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'REDEEMED', 'EXPIRED', 'VOID')),
    locked_until timestamptz,
    issued_at    timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    redeemed_at  timestamptz,
    CONSTRAINT cards_code_key UNIQUE (code),
    CONSTRAINT cards_escrow_key UNIQUE (escrow_id),
    CONSTRAINT cards_redeemed_at CHECK ((status = 'REDEEMED') = (redeemed_at IS NOT NULL)),
    CONSTRAINT cards_expiry_after_issue CHECK (expires_at > issued_at)
);
CREATE INDEX cards_owner_idx ON giftcard.cards (owner_id, issued_at DESC, id DESC);
CREATE INDEX cards_product_idx ON giftcard.cards (product_id);
CREATE INDEX cards_merchant_idx ON giftcard.cards (merchant_id);
CREATE INDEX cards_active_expiry_idx ON giftcard.cards (expires_at) WHERE status = 'ACTIVE';

CREATE TABLE giftcard.pin_failures (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    card_id   uuid NOT NULL REFERENCES giftcard.cards (id),
    branch_id uuid NOT NULL REFERENCES giftcard.branches (id),
    staff_id  uuid NOT NULL REFERENCES identity.users (id),
    failed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pin_failures_card_idx ON giftcard.pin_failures (card_id, failed_at DESC);
CREATE INDEX pin_failures_branch_idx ON giftcard.pin_failures (branch_id);
CREATE INDEX pin_failures_staff_idx ON giftcard.pin_failures (staff_id);

CREATE TABLE giftcard.redemptions (
    id          uuid PRIMARY KEY,
    card_id     uuid NOT NULL REFERENCES giftcard.cards (id),
    escrow_id   uuid NOT NULL REFERENCES giftcard.escrows (id),
    branch_id   uuid NOT NULL REFERENCES giftcard.branches (id),
    staff_id    uuid NOT NULL REFERENCES identity.users (id),
    redeemed_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT redemptions_card_key UNIQUE (card_id),
    CONSTRAINT redemptions_escrow_key UNIQUE (escrow_id)
);
CREATE INDEX redemptions_branch_idx ON giftcard.redemptions (branch_id);
CREATE INDEX redemptions_staff_idx ON giftcard.redemptions (staff_id);

CREATE TABLE ledger.payouts (
    id             uuid PRIMARY KEY,
    merchant_id    uuid NOT NULL REFERENCES giftcard.merchants (id),
    account_id     uuid NOT NULL REFERENCES ledger.accounts (id),
    amount         bigint NOT NULL CHECK (amount > 0),
    status         text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED')),
    reference      text NOT NULL,
    destination    text NOT NULL,
    failure_reason text,
    transfer_id    uuid REFERENCES ledger.transfers (id),
    requested_by   uuid NOT NULL REFERENCES identity.users (id),
    correlation_id text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    completed_at   timestamptz,
    CONSTRAINT payouts_reference_key UNIQUE (reference),
    CONSTRAINT payouts_success_is_booked CHECK ((status = 'SUCCEEDED') = (transfer_id IS NOT NULL)),
    CONSTRAINT payouts_failure_has_reason CHECK ((status = 'FAILED') = (failure_reason IS NOT NULL)),
    CONSTRAINT payouts_completed CHECK ((status = 'PENDING') = (completed_at IS NULL))
);
CREATE INDEX payouts_merchant_idx ON ledger.payouts (merchant_id, created_at DESC);
CREATE INDEX payouts_pending_idx ON ledger.payouts (account_id) WHERE status = 'PENDING';
CREATE INDEX payouts_transfer_idx ON ledger.payouts (transfer_id);
CREATE INDEX payouts_requested_by_idx ON ledger.payouts (requested_by);
";

const DOWN: &str = r"
DROP TABLE IF EXISTS ledger.payouts;
DROP TABLE IF EXISTS giftcard.redemptions;
DROP TABLE IF EXISTS giftcard.pin_failures;
DROP TABLE IF EXISTS giftcard.cards;
DROP TABLE IF EXISTS giftcard.escrows;
DROP FUNCTION IF EXISTS giftcard.escrow_transition();
DROP TABLE IF EXISTS giftcard.card_products;
DROP TABLE IF EXISTS giftcard.branches;
DROP TABLE IF EXISTS identity.merchant_staff;
DROP TABLE IF EXISTS giftcard.merchants;
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
