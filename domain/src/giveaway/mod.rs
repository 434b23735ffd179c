//! Giveaway events (FLOWS.md §5): drafts, publishing with the prize pool
//! in escrow, joining, attempts and draws, the lifecycle on time,
//! cancelling.
//!
//! Dependencies point one way: [`participants`] and [`events`] hold what
//! is stored and how it is read; [`live`] what is announced; every use
//! case module (drafts, joining, publishing, attempts, ...) depends on
//! them and never the other way round.

pub mod attempt;
mod award;
pub mod disqualify;
pub mod draft;
pub mod draw;
pub mod events;
pub mod join;
pub mod live;
pub mod participants;
pub mod publish;
pub mod rules;
pub mod verify;
