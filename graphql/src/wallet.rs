//! Wallets, ledger entries and top-ups (FLOWS.md §3).

use async_graphql::{Context, Enum, ID, InputObject, Object, Result};
use chrono::{DateTime, Utc};
use giftdrop_domain::ledger::{self, EntryView, WalletOwner, WalletView};
use giftdrop_domain::payments::topup::{self, TopupView};
use giftdrop_domain::{DomainError, idempotency};

use crate::auth::{request, require_viewer, services};
use crate::connection;
use crate::error::Gql;
use crate::ids;
use crate::money::Money;
use crate::page::page_size;

/// `WalletKind`.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "WalletKind", remote = "giftdrop_domain::ledger::WalletKind")]
pub enum WalletKindGql {
    /// A person's wallet: hosts fund events and buy cards from it.
    User,
    /// A merchant's wallet: settlements are credited to it, payouts debit it.
    Merchant,
}

/// `EntryDirection`.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "EntryDirection", remote = "giftdrop_domain::ledger::Direction")]
pub enum EntryDirectionGql {
    /// Money in.
    Credit,
    /// Money out.
    Debit,
}

/// `EntryKind`.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "EntryKind", remote = "giftdrop_domain::ledger::EntryKind")]
pub enum EntryKindGql {
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
    /// A manual correction.
    Adjustment,
}

/// `TopupStatus`.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(
    name = "TopupStatus",
    remote = "giftdrop_domain::payments::topup::TopupStatus"
)]
pub enum TopupStatusGql {
    /// Waiting for the provider.
    Pending,
    /// Credited to the wallet.
    Succeeded,
    /// Failed at the provider, or flagged for review.
    Failed,
}

/// A wallet, shown only to its owner and admins.
pub struct Wallet(pub WalletView);

/// The wallet of the user `user_id` (created on first use), read from
/// Postgres.
pub async fn of_user(ctx: &Context<'_>, user_id: uuid::Uuid) -> Result<Wallet> {
    let view = ledger::wallet(services(ctx)?, WalletOwner::User(user_id))
        .await
        .gql()?;
    Ok(Wallet(view))
}

#[Object]
impl Wallet {
    async fn id(&self) -> ID {
        ids::of(self.0.id)
    }

    async fn kind(&self) -> WalletKindGql {
        self.0.kind.into()
    }

    async fn currency(&self, ctx: &Context<'_>) -> Result<String> {
        Ok(services(ctx)?.settings.currency.clone())
    }

    /// Funds available to spend now.
    async fn balance(&self) -> Money {
        self.0.balance.into()
    }

    /// Newest first.
    async fn entries(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<LedgerEntryConnection> {
        let first = page_size(first.unwrap_or(20)).gql()?;
        let before = after
            .map(|cursor| {
                cursor
                    .parse::<i64>()
                    .map_err(|_| DomainError::bad_input("after", "is not a cursor of this list"))
            })
            .transpose()
            .gql()?;
        let limit = u64::try_from(first).unwrap_or(100) + 1;
        let fetched = ledger::entries(&services(ctx)?.db, self.0.id, before, limit)
            .await
            .gql()?;
        Ok(LedgerEntryConnection::from_fetched(
            fetched.into_iter().map(LedgerEntry).collect(),
            first,
            |entry| entry.0.id.to_string(),
        ))
    }
}

/// One wallet entry.
#[derive(Clone)]
pub struct LedgerEntry(EntryView);

#[Object]
impl LedgerEntry {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn kind(&self) -> EntryKindGql {
        self.0.kind.into()
    }

    async fn direction(&self) -> EntryDirectionGql {
        self.0.direction.into()
    }

    async fn amount(&self) -> Money {
        self.0.amount.into()
    }

    /// Wallet balance right after this entry.
    async fn balance_after(&self) -> Money {
        self.0.balance_after.into()
    }

    /// What caused it: a topup reference, event id, escrow id or payout id.
    async fn reference(&self) -> &str {
        &self.0.reference
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

connection!(LedgerEntryConnection, LedgerEntryEdge, LedgerEntry);

/// A top-up.
pub struct Topup(TopupView);

#[Object]
impl Topup {
    async fn id(&self) -> ID {
        ids::of(self.0.id)
    }

    /// Unique reference shared with the payment provider.
    async fn reference(&self) -> &str {
        &self.0.reference
    }

    async fn amount(&self) -> Money {
        self.0.amount.into()
    }

    /// Provider deposit fee, known once the provider confirms.
    async fn fee(&self) -> Option<Money> {
        self.0.fee.map(Money::from)
    }

    async fn status(&self) -> TopupStatusGql {
        self.0.status.into()
    }

    /// Where the payer completes payment (the provider's checkout page).
    async fn checkout_url(&self) -> &str {
        &self.0.checkout_url
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.0.completed_at
    }
}

/// `initiateTopup` input.
#[derive(InputObject)]
pub struct TopupInput {
    amount: Money,
    idempotency_key: String,
}

/// Wallet queries.
#[derive(Default)]
pub struct WalletQuery;

#[Object]
impl WalletQuery {
    /// The viewer's topup, or null (also for other users' topups, unless
    /// the viewer is an admin).
    async fn topup(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Topup>> {
        let viewer = require_viewer(ctx)?;
        let id = ids::parse(&id, "id").gql()?;
        let found = topup::find_for(&services(ctx)?.db, viewer, id)
            .await
            .gql()?;
        Ok(found.map(Topup))
    }
}

/// Wallet mutations.
#[derive(Default)]
pub struct WalletMutation;

#[Object]
impl WalletMutation {
    /// Starts a top-up; the wallet is credited when the provider confirms by webhook.
    async fn initiate_topup(&self, ctx: &Context<'_>, input: TopupInput) -> Result<Topup> {
        let viewer = require_viewer(ctx)?;
        let amount = input.amount.positive("input.amount").gql()?;
        idempotency::validate_key(&input.idempotency_key, "input.idempotencyKey").gql()?;
        let view = topup::initiate(
            services(ctx)?,
            &request(ctx)?.meta,
            viewer,
            amount,
            &input.idempotency_key,
        )
        .await
        .gql()?;
        Ok(Topup(view))
    }
}
