//! The integration tests: one binary, every test against real Postgres and
//! Redis, each in its own database (cloned from a migrated template) and its
//! own Redis namespace, so they run in parallel.

mod support;

mod health;
mod http;
mod identity;
mod outbox;
mod schema;
mod ws;
