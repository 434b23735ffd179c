//! The integration tests: one binary, every test against real Postgres and
//! Redis, each in its own database (cloned from a migrated template) and its
//! own Redis namespace, so they run in parallel.

#![allow(
    clippy::expect_used,
    reason = "a test helper that cannot do its job should fail the test loudly, naming what failed"
)]

mod support;

mod cleanup;
mod conn;
mod deploy;
mod draw;
mod entities;
mod escrow_race;
mod event_page;
mod events;
mod health;
mod hostile;
mod http;
mod identity;
mod instant;
mod ledger;
mod market_auth;
mod marketplace;
mod outage;
mod outbox;
mod payout;
mod pgbouncer;
mod production;
mod provider;
mod schema;
mod settlement;
mod statements;
mod wallet;
mod winners;
mod ws;
mod ws_account;
