//! SeaORM entities, one module per Postgres schema. They describe tables and
//! nothing else: rules live in `domain`, and no entity is ever exposed as a
//! GraphQL type.
//!
//! [`tables`] lists every entity once; the integration test
//! `tests/entities.rs` checks that list against the migrated database, so an
//! entity that drifts from its table, or a table without an entity, fails.

pub mod giftcard;
pub mod giveaway;
pub mod identity;
pub mod ledger;
pub mod ops;

mod registry;

pub use registry::{Table, tables};
