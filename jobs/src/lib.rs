//! Background work: apalis job queues and handlers, the mail transports,
//! and the outbox relay that moves committed side effects to Redis.
//!
//! Handlers are thin (decode, call, report) and idempotent on a business
//! key, because delivery is at least once. Errors here are `anyhow`.

pub mod email;
pub mod expiry;
pub mod grants;
pub mod handler;
pub mod lifecycle;
pub mod mail;
pub mod payouts;
pub mod queues;
pub mod relay;
pub mod schedule;
pub mod sweep;
pub mod verify;
pub mod worker;

pub use queues::{Envelope, JobQueues};
