//! The double-entry ledger: the only way balances change.
//!
//! Every movement is one [`Transfer`] of two or more [`Leg`]s whose credits
//! and debits are equal, posted by [`post`] inside the caller's transaction
//! (so a purchase's debit, escrow and card commit or vanish together).
//!
//! Concurrency: wallets keep a running balance, changed by one
//! `UPDATE … SET balance = balance + $delta WHERE … balance + $delta >= 0`
//! per wallet, taken in ascending account-id order. The UPDATE takes the
//! row lock and re-checks the condition on the latest committed row, so two
//! concurrent debits of one wallet serialize on that row and the second
//! sees the first's result: no lost update, no overdraft, and no deadlock
//! between postings (every posting locks in the same order). READ COMMITTED
//! with ordered row locks was chosen over SERIALIZABLE-with-retry because a
//! hot wallet then queues instead of aborting and re-running whole use
//! cases (see docs/DECISIONS.md and BENCHMARKS.md). Platform accounts keep
//! no running balance, so they are never a hot row: their balance is the
//! sum of their entries.
//!
//! The database re-checks all of it: entries of a transfer sum to zero
//! (a trigger on every statement that inserts entries), amounts are positive, wallets never go
//! below zero, entries and transfers are append-only.

use serde::{Deserialize, Serialize};
use uuid::{Uuid, uuid};

use crate::Services;
use crate::error::DomainError;
use crate::money::Amount;
// `payments::topup` reads its status through the ledger's path.
pub(crate) use crate::sql::from_db;

mod post;
mod reads;
mod wallet;

pub use post::{InBatch, post, post_in_batch};
pub use wallet::{
    WalletIds, WalletKind, WalletOwner, WalletView, wallet_balance, wallet_of, wallet_topic,
};

pub use reads::{EntryView, entries, platform_balance, total, wallet};

/// The platform's own accounts (FLOWS.md §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PlatformAccount {
    /// Money the payment provider holds for us (negative: an asset).
    ProviderClearing,
    /// Money reserved in escrows; equals the sum of RESERVED escrows.
    EscrowHolding,
    /// Service fees earned.
    PlatformFees,
    /// Deposit fees paid to the provider, recovered at settlement.
    ProviderFees,
    /// Payouts reserved from merchant wallets, not yet answered by the
    /// provider; equals the sum of PENDING payouts.
    PayoutsInFlight,
}

impl PlatformAccount {
    /// The account's fixed id (created by the ledger migration).
    pub const fn id(self) -> Uuid {
        match self {
            Self::ProviderClearing => uuid!("00000000-0000-0000-0000-00000000a001"),
            Self::EscrowHolding => uuid!("00000000-0000-0000-0000-00000000a002"),
            Self::PlatformFees => uuid!("00000000-0000-0000-0000-00000000a003"),
            Self::ProviderFees => uuid!("00000000-0000-0000-0000-00000000a004"),
            Self::PayoutsInFlight => uuid!("00000000-0000-0000-0000-00000000a005"),
        }
    }
}

/// One side of a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Account {
    /// A wallet (running balance, never negative), by account id.
    Wallet(Uuid),
    /// A platform account.
    Platform(PlatformAccount),
}

impl Account {
    /// The account id.
    pub fn id(self) -> Uuid {
        match self {
            Self::Wallet(id) => id,
            Self::Platform(p) => p.id(),
        }
    }
}

/// `EntryKind` of the contract: why money moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EntryKind {
    /// A top-up credited by the payment provider.
    Topup,
    /// A host funding an event's prizes.
    EventFunding,
    /// Unawarded prizes returned to the host.
    EventRefund,
    /// A card bought from a merchant.
    CardPurchase,
    /// A card's escrow returned to its buyer.
    CardRefund,
    /// An escrow settled to a merchant.
    Settlement,
    /// A merchant payout.
    Payout,
    /// A payout the provider reversed.
    PayoutReversal,
    /// A manual correction (and test seeding).
    Adjustment,
}

impl EntryKind {
    /// The database and API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Topup => "TOPUP",
            Self::EventFunding => "EVENT_FUNDING",
            Self::EventRefund => "EVENT_REFUND",
            Self::CardPurchase => "CARD_PURCHASE",
            Self::CardRefund => "CARD_REFUND",
            Self::Settlement => "SETTLEMENT",
            Self::Payout => "PAYOUT",
            Self::PayoutReversal => "PAYOUT_REVERSAL",
            Self::Adjustment => "ADJUSTMENT",
        }
    }
}

/// Money in or out of an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Direction {
    /// The balance goes up.
    Credit,
    /// The balance goes down.
    Debit,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Self::Credit => "CREDIT",
            Self::Debit => "DEBIT",
        }
    }
}

/// One entry of a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leg {
    /// Which account.
    pub account: Account,
    /// In or out.
    pub direction: Direction,
    /// How much (positive).
    pub amount: Amount,
}

impl Leg {
    /// Money into `account`.
    pub fn credit(account: Account, amount: Amount) -> Self {
        Self {
            account,
            direction: Direction::Credit,
            amount,
        }
    }

    /// Money out of `account`.
    pub fn debit(account: Account, amount: Amount) -> Self {
        Self {
            account,
            direction: Direction::Debit,
            amount,
        }
    }

    fn delta(self) -> i128 {
        i128::from(self.delta_minor())
    }

    /// The leg's change to its account's balance, in minor units (an
    /// amount is never negative, so its negation fits).
    fn delta_minor(self) -> i64 {
        match self.direction {
            Direction::Credit => self.amount.minor(),
            Direction::Debit => -self.amount.minor(),
        }
    }
}

/// A balanced movement of money.
#[derive(Clone, Debug)]
pub struct Transfer<'a> {
    /// Why (also the kind of every entry).
    pub kind: EntryKind,
    /// What caused it: a topup reference, event, escrow or payout id.
    pub reference: &'a str,
    /// Two or more legs, each account at most once, credits = debits.
    pub legs: Vec<Leg>,
}

/// A posted, not yet committed, transfer. After the caller's commit, call
/// [`Posted::committed`] so readers see the new balances at once.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "call `committed` after the transaction commits"]
pub struct Posted {
    /// The transfer's id.
    pub transfer_id: Uuid,
    /// Each wallet touched, as it is right after the transfer.
    pub wallets: Vec<WalletView>,
}

impl Posted {
    /// Run once the posting transaction has committed: wakes the outbox
    /// relay that announces the touched wallets (`walletUpdated`). Balances
    /// are read from Postgres, so there is no cached copy to invalidate.
    pub fn committed(&self, services: &Services) {
        services.outbox.wake();
    }
}

fn bug(message: &str) -> DomainError {
    DomainError::Internal(anyhow::anyhow!("ledger: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_spellings_read_back_as_the_same_variants() {
        for kind in [
            EntryKind::Topup,
            EntryKind::EventFunding,
            EntryKind::EventRefund,
            EntryKind::CardPurchase,
            EntryKind::CardRefund,
            EntryKind::Settlement,
            EntryKind::Payout,
            EntryKind::PayoutReversal,
            EntryKind::Adjustment,
        ] {
            assert_eq!(from_db::<EntryKind>(kind.as_str()).ok(), Some(kind));
        }
        for direction in [Direction::Credit, Direction::Debit] {
            assert_eq!(
                from_db::<Direction>(direction.as_str()).ok(),
                Some(direction)
            );
        }
        for kind in [WalletKind::User, WalletKind::Merchant] {
            assert_eq!(from_db::<WalletKind>(kind.as_str()).ok(), Some(kind));
        }
        assert!(from_db::<EntryKind>("REFUND").is_err());
    }
}
