//! Giveaway events (`giveaway`): events, their prizes, one prize unit per
//! escrow, participants and winners.
//!
//! A disqualified win's escrow backs the next card, so a card escrow is
//! unique among cards that are not VOID (it was unique outright).
//!
//! The database is the second guard of every award: a prize unit has at
//! most one standing winner, a participant at most one standing win per
//! event, and an event's winners are numbered 1, 2, 3, ... without a
//! repeat. So no number of concurrent attempts, or a lost Redis budget,
//! can award a unit twice.

use sea_orm_migration::prelude::*;

use crate::run_sql;

/// Giveaway tables.
#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r"
CREATE TABLE giveaway.events (
    id                  uuid PRIMARY KEY,
    host_id             uuid NOT NULL REFERENCES identity.users (id),
    title               text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    description         text NOT NULL CHECK (char_length(description) <= 5000),
    social_post_url     text CHECK (char_length(social_post_url) BETWEEN 1 AND 2000),
    selection           text NOT NULL CHECK (selection IN ('INSTANT', 'DRAW')),
    win_chance_percent  integer CHECK (win_chance_percent BETWEEN 1 AND 100),
    slot_count          integer NOT NULL DEFAULT 1 CHECK (slot_count BETWEEN 1 AND 1440),
    starts_at           timestamptz NOT NULL,
    ends_at             timestamptz NOT NULL,
    status              text NOT NULL DEFAULT 'DRAFT'
                        CHECK (status IN ('DRAFT', 'SCHEDULED', 'LIVE', 'ENDED', 'CANCELLED')),
    prize_count         integer NOT NULL DEFAULT 0 CHECK (prize_count >= 0),
    prizes_awarded      integer NOT NULL DEFAULT 0 CHECK (prizes_awarded BETWEEN 0 AND prize_count),
    total_cost          bigint NOT NULL DEFAULT 0 CHECK (total_cost >= 0),
    participant_count   integer NOT NULL DEFAULT 0 CHECK (participant_count >= 0),
    last_sequence       integer NOT NULL DEFAULT 0 CHECK (last_sequence >= 0),
    -- Raised by every change a subscriber sees, so a stale message is known.
    version             integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    draw_seed           bytea CHECK (octet_length(draw_seed) = 32),
    draw_commitment     text CHECK (draw_commitment ~ '^[0-9a-f]{64}$'),
    drawn_at            timestamptz,
    funding_transfer_id uuid REFERENCES ledger.transfers (id),
    created_at          timestamptz NOT NULL DEFAULT now(),
    published_at        timestamptz,
    cancelled_at        timestamptz,
    cancel_reason       text CHECK (char_length(cancel_reason) BETWEEN 1 AND 500),
    CONSTRAINT events_window CHECK (ends_at > starts_at),
    CONSTRAINT events_instant_has_chance CHECK ((selection = 'INSTANT') = (win_chance_percent IS NOT NULL)),
    CONSTRAINT events_published_is_funded CHECK ((published_at IS NULL) = (funding_transfer_id IS NULL)),
    CONSTRAINT events_unpublished_is_draft CHECK (published_at IS NOT NULL OR status IN ('DRAFT', 'CANCELLED')),
    CONSTRAINT events_draw_is_committed CHECK (selection = 'INSTANT' OR published_at IS NULL
        OR (draw_seed IS NOT NULL AND draw_commitment IS NOT NULL)),
    CONSTRAINT events_cancelled_has_reason CHECK ((status = 'CANCELLED') = (cancelled_at IS NOT NULL AND cancel_reason IS NOT NULL))
);
CREATE INDEX events_host_idx ON giveaway.events (host_id, id DESC);
CREATE INDEX events_status_idx ON giveaway.events (status, id DESC);
CREATE INDEX events_starting_idx ON giveaway.events (starts_at) WHERE status = 'SCHEDULED';
CREATE INDEX events_ending_idx ON giveaway.events (ends_at) WHERE status = 'LIVE';
CREATE INDEX events_funding_transfer_idx ON giveaway.events (funding_transfer_id);

CREATE TABLE giveaway.prizes (
    id              uuid PRIMARY KEY,
    event_id        uuid NOT NULL REFERENCES giveaway.events (id),
    card_product_id uuid NOT NULL REFERENCES giftcard.card_products (id),
    face_value      bigint NOT NULL CHECK (face_value > 0),
    quantity        integer NOT NULL CHECK (quantity BETWEEN 1 AND 10000),
    awarded         integer NOT NULL DEFAULT 0,
    CONSTRAINT prizes_awarded_within_quantity CHECK (awarded BETWEEN 0 AND quantity)
);
CREATE INDEX prizes_event_idx ON giveaway.prizes (event_id, id);
CREATE INDEX prizes_card_product_idx ON giveaway.prizes (card_product_id);

CREATE TABLE giveaway.prize_units (
    id        uuid PRIMARY KEY,
    event_id  uuid NOT NULL REFERENCES giveaway.events (id),
    prize_id  uuid NOT NULL REFERENCES giveaway.prizes (id),
    unit      integer NOT NULL CHECK (unit >= 1),
    escrow_id uuid NOT NULL REFERENCES giftcard.escrows (id),
    -- The participant holding it now; NULL while it is in the pool.
    winner_id uuid,
    CONSTRAINT prize_units_unit_key UNIQUE (prize_id, unit),
    CONSTRAINT prize_units_escrow_key UNIQUE (escrow_id)
);
CREATE INDEX prize_units_pool_idx ON giveaway.prize_units (event_id, prize_id, unit) WHERE winner_id IS NULL;
CREATE INDEX prize_units_winner_idx ON giveaway.prize_units (winner_id);

CREATE TABLE giveaway.participants (
    id            uuid PRIMARY KEY,
    event_id      uuid NOT NULL REFERENCES giveaway.events (id),
    user_id       uuid NOT NULL REFERENCES identity.users (id),
    social_handle text NOT NULL CHECK (char_length(social_handle) BETWEEN 1 AND 100),
    display_name  text NOT NULL,
    status        text NOT NULL DEFAULT 'PENDING_VERIFICATION'
                  CHECK (status IN ('PENDING_VERIFICATION', 'VERIFIED', 'REJECTED', 'DISQUALIFIED')),
    joined_at     timestamptz NOT NULL DEFAULT now(),
    verified_at   timestamptz,
    attempted_at  timestamptz,
    won           boolean NOT NULL DEFAULT false,
    CONSTRAINT participants_once_per_event UNIQUE (event_id, user_id)
);
CREATE INDEX participants_event_idx ON giveaway.participants (event_id, id);
CREATE INDEX participants_verified_idx ON giveaway.participants (event_id, id) WHERE status = 'VERIFIED';
CREATE INDEX participants_user_idx ON giveaway.participants (user_id);

CREATE TABLE giveaway.winners (
    id                uuid PRIMARY KEY,
    event_id          uuid NOT NULL REFERENCES giveaway.events (id),
    participant_id    uuid NOT NULL REFERENCES giveaway.participants (id),
    prize_id          uuid NOT NULL REFERENCES giveaway.prizes (id),
    unit_id           uuid NOT NULL REFERENCES giveaway.prize_units (id),
    card_id           uuid NOT NULL REFERENCES giftcard.cards (id),
    sequence          integer NOT NULL CHECK (sequence >= 1),
    announced_at      timestamptz NOT NULL DEFAULT now(),
    disqualified_at   timestamptz,
    disqualify_reason text CHECK (char_length(disqualify_reason) BETWEEN 1 AND 500),
    CONSTRAINT winners_sequence_key UNIQUE (event_id, sequence),
    CONSTRAINT winners_card_key UNIQUE (card_id),
    CONSTRAINT winners_disqualified_has_reason CHECK ((disqualified_at IS NULL) = (disqualify_reason IS NULL))
);
-- A unit has one standing winner, a participant one standing win.
CREATE UNIQUE INDEX winners_unit_standing_key ON giveaway.winners (unit_id) WHERE disqualified_at IS NULL;
CREATE UNIQUE INDEX winners_participant_standing_key ON giveaway.winners (participant_id) WHERE disqualified_at IS NULL;
CREATE INDEX winners_participant_idx ON giveaway.winners (participant_id);
CREATE INDEX winners_prize_idx ON giveaway.winners (prize_id);
CREATE INDEX winners_unit_idx ON giveaway.winners (unit_id);

-- A prize unit's escrow backs a new card when a win is disqualified (the
-- old card VOID): one standing card per escrow, not one card.
ALTER TABLE giftcard.cards DROP CONSTRAINT cards_escrow_key;
CREATE UNIQUE INDEX cards_escrow_standing_key ON giftcard.cards (escrow_id) WHERE status <> 'VOID';
CREATE INDEX cards_escrow_idx ON giftcard.cards (escrow_id);

ALTER TABLE giveaway.prize_units
    ADD CONSTRAINT prize_units_winner_fk FOREIGN KEY (winner_id) REFERENCES giveaway.participants (id);
ALTER TABLE giftcard.escrows
    ADD CONSTRAINT escrows_event_fk FOREIGN KEY (event_id) REFERENCES giveaway.events (id);
";

const DOWN: &str = r"
ALTER TABLE giftcard.escrows DROP CONSTRAINT IF EXISTS escrows_event_fk;
DROP INDEX IF EXISTS giftcard.cards_escrow_idx;
DROP INDEX IF EXISTS giftcard.cards_escrow_standing_key;
ALTER TABLE giftcard.cards ADD CONSTRAINT cards_escrow_key UNIQUE (escrow_id);
DROP TABLE IF EXISTS giveaway.winners;
DROP TABLE IF EXISTS giveaway.participants CASCADE;
DROP TABLE IF EXISTS giveaway.prize_units;
DROP TABLE IF EXISTS giveaway.prizes;
DROP TABLE IF EXISTS giveaway.events;
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
