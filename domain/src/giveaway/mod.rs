//! Giveaway events (FLOWS.md §5): drafts, publishing with the prize pool
//! in escrow, joining, attempts and draws, the lifecycle on time,
//! cancelling.
//!
//! Dependencies point one way: [`events`], [`prizes`], [`participants`]
//! and [`winners`] hold what is stored and how it is read, [`live`] what is announced, `pool` the
//! prize units; each use case has its module ([`draft`], [`join`],
//! [`verify`], [`publish`], [`attempt`], `award`, [`lifecycle`],
//! [`cancel`], [`disqualify`]), which depends on them and never the other
//! way round.

pub mod attempt;
mod award;
pub mod cancel;
pub mod disqualify;
pub mod draft;
pub mod draw;
pub mod events;
pub mod join;
pub mod lifecycle;
pub mod live;
pub mod participants;
mod pool;
pub mod prizes;
pub mod publish;
pub mod rules;
pub mod verify;
pub mod winners;
