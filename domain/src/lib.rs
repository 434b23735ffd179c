//! giftdrop business rules and use cases.
//!
//! Plain async functions over SeaORM connections and transactions, with ports
//! to Redis (pub/sub, counters) and, later, the payment provider. This crate
//! never imports async-graphql, axum or apalis: adapters live in `graphql`,
//! `jobs` and the app.

pub mod audit;
pub mod backoff;
pub mod breaker;
pub mod cache;
pub mod coalesce;
pub mod context;
pub mod error;
pub mod giftcard;
pub mod giveaway;
pub mod idempotency;
pub mod identity;
pub mod jobs;
pub mod keys;
pub mod ledger;
pub mod memo;
pub mod money;
pub mod outbox;
pub mod payments;
pub mod pubsub;
pub mod ratelimit;
pub mod sql;
pub mod stats;

pub use context::{RequestMeta, Viewer};
pub use error::{DomainError, DomainResult};

use redis::aio::ConnectionManager;
use sea_orm::DatabaseConnection;

/// Platform-wide settings the rules depend on (FLOWS.md §7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// ISO 4217 code of the one platform currency.
    pub currency: String,
    /// Default service rate for new merchants, in basis points.
    pub service_rate_bps: u32,
    /// Payment provider deposit fee, in basis points.
    pub deposit_fee_bps: u32,
    /// The largest top-up (`TOPUP_MAX_AMOUNT`).
    pub topup_max: money::Amount,
}

/// Everything a use case may need, built once per process.
#[derive(Clone)]
pub struct Services {
    /// Postgres pool.
    pub db: DatabaseConnection,
    /// Shared multiplexed Redis connection (commands, scripts, PUBLISH).
    pub redis: ConnectionManager,
    /// Prefix of every Redis name.
    pub ns: keys::Namespace,
    /// This process's pub/sub fan-out.
    pub hub: pubsub::Hub,
    /// Wakes the outbox relay after a commit.
    pub outbox: outbox::OutboxSignal,
    /// Signs and verifies access tokens.
    pub tokens: identity::TokenIssuer,
    /// Sliding-window limits.
    pub limiter: ratelimit::RateLimiter,
    /// Read-through cache (wallet balances).
    pub cache: cache::Cache,
    /// The payment provider and webhook secret.
    pub payments: payments::Payments,
    /// Keys that protect card pins.
    pub card_secrets: giftcard::pin::CardSecrets,
    /// The INSTANT prize budgets in Redis.
    pub budget: giveaway::attempt::Budget,
    /// Checks participants' social handles.
    pub verifier: giveaway::verify::SocialVerifier,
    /// Wallet ids this process has seen.
    pub wallet_ids: ledger::WalletIds,
    /// Card products as purchases last read them.
    pub on_sale: giftcard::products::OnSale,
    /// Reads of an event's winners that subscribers share.
    pub winner_reads: giveaway::winners::WinnerReads,
    /// Platform settings.
    pub settings: Settings,
}
