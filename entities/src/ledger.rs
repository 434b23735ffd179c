//! The `ledger` schema: accounts, balanced transfers of append-only entries,
//! top-ups, merchant payouts, and idempotency keys.

pub mod accounts;
pub mod entries;
pub mod idempotency_keys;
pub mod payouts;
pub mod topups;
pub mod transfers;
