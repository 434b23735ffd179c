//! Giveaway events (FLOWS.md §5): drafts, publishing with the prize pool
//! in escrow, the lifecycle on time, cancelling.

pub mod attempt;
mod award;
pub mod disqualify;
pub mod draw;
pub mod events;
pub mod live;
pub mod participants;
pub mod publish;
pub mod verify;
