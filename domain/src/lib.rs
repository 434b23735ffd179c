//! giftdrop business rules and use cases.
//!
//! Plain async functions over SeaORM transactions, with ports to Redis (cache,
//! pub/sub, counters) and, later, the payment provider. This crate never
//! imports async-graphql, axum or apalis: adapters live in `graphql`, `jobs`
//! and the app.

pub mod jobs;
pub mod keys;
