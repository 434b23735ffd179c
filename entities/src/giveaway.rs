//! The `giveaway` schema: events, their prizes, one prize unit per escrow,
//! participants and winners.

pub mod events;
pub mod participants;
pub mod prize_units;
pub mod prizes;
pub mod winners;
