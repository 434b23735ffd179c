//! Money in and out through the payment provider: the [`PaymentProvider`]
//! port with its two implementations (the built-in [`sandbox`] and the REST
//! client in [`http`]), top-ups ([`topup`]) and the signed webhook that
//! confirms them ([`webhook`]), and merchant payouts ([`payout`]).
//!
//! Every provider call goes through one circuit breaker ([`Payments::call`]):
//! after 5 consecutive failures calls fail fast for 30 s, then one trial
//! call is let through.

pub mod http;
pub mod payout;
pub mod sandbox;
pub mod topup;
pub mod webhook;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;

use crate::breaker::{Breaker, Failure};
use crate::error::DomainError;
use crate::money::Amount;

/// What the provider needs to take a payment.
#[derive(Clone, Debug)]
pub struct CheckoutRequest<'a> {
    /// Our unique reference; the provider's webhook quotes it back.
    pub reference: &'a str,
    /// How much to charge, in minor units.
    pub amount: Amount,
    /// ISO 4217 currency code.
    pub currency: &'a str,
    /// The payer's email (providers send receipts to it).
    pub email: &'a str,
}

/// Where the payer completes a payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkout {
    /// The provider's checkout page for this payment.
    pub url: String,
}

/// Why a provider call failed. Every variant reaches clients as
/// `PAYMENT_PROVIDER_UNAVAILABLE`; the detail goes to logs and Sentry.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// No answer within the configured timeout.
    #[error("the payment provider did not answer in time")]
    Timeout,
    /// The provider could not be reached, or answered with a server error.
    #[error("the payment provider is unreachable or failing: {0}")]
    Unavailable(String),
    /// The provider answered, but not with what its API promises.
    #[error("the payment provider refused or garbled the request: {0}")]
    Rejected(String),
}

impl From<ProviderError> for DomainError {
    fn from(err: ProviderError) -> Self {
        metrics::counter!("giftdrop_payment_provider_failures_total").increment(1);
        // Infrastructure failure: logged at error level, which Sentry captures.
        tracing::error!(error = %err, "payment provider call failed");
        DomainError::PaymentProviderUnavailable
    }
}

/// A transfer out to a bank account (a merchant payout).
#[derive(Clone, Debug)]
pub struct TransferRequest<'a> {
    /// Our reference, derived only from the payout id: the provider treats
    /// a repeat with the same reference as the same transfer.
    pub reference: &'a str,
    /// How much, in minor units.
    pub amount: Amount,
    /// ISO 4217 currency code.
    pub currency: &'a str,
    /// The destination, as the provider names a bank account.
    pub destination: &'a str,
}

/// The provider's answer to a transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferOutcome {
    /// The provider accepted the transfer.
    Accepted,
    /// The provider refused it for good (e.g. an unknown account).
    Declined(String),
}

/// The payment provider port.
#[async_trait]
pub trait PaymentProvider: Send + Sync + 'static {
    /// Registers a charge and returns where the payer completes it. Must be
    /// safe to repeat with the same reference.
    async fn checkout(&self, request: &CheckoutRequest<'_>) -> Result<Checkout, ProviderError>;

    /// Sends money out. Must be safe to repeat with the same reference: a
    /// repeat is the same transfer, never a second one.
    async fn transfer(
        &self,
        request: &TransferRequest<'_>,
    ) -> Result<TransferOutcome, ProviderError>;

    /// What became of the transfer with `reference`: its outcome, or
    /// `None` if the provider never received it. Never causes a transfer.
    async fn transfer_status(
        &self,
        reference: &str,
    ) -> Result<Option<TransferOutcome>, ProviderError>;
}

/// The configured provider and the webhook secret it signs with.
#[derive(Clone)]
pub struct Payments {
    /// Where checkouts are created.
    pub provider: Arc<dyn PaymentProvider>,
    /// Key of the webhook's HMAC-SHA512 signature.
    pub webhook_secret: SecretString,
    /// The sandbox's knobs when the app plays the provider itself
    /// (`PAYMENT_PROVIDER=sandbox`), else `None`.
    pub sandbox: Option<Arc<sandbox::SandboxKnobs>>,
    /// Wraps every provider call.
    pub breaker: Breaker,
    /// Time allowed for one provider call.
    pub timeout: Duration,
}

/// Consecutive provider failures that open the breaker (FLOWS.md §3).
pub const BREAKER_THRESHOLD: u32 = 5;
/// How long the open breaker fails calls fast (FLOWS.md §3).
pub const BREAKER_COOLDOWN: Duration = Duration::from_secs(30);

impl Payments {
    /// A provider setup with the contract's breaker (`cooldown` is 30 s
    /// outside tests).
    pub fn new(
        provider: Arc<dyn PaymentProvider>,
        webhook_secret: SecretString,
        sandbox: Option<Arc<sandbox::SandboxKnobs>>,
        timeout: Duration,
        cooldown: Duration,
    ) -> Self {
        Self {
            provider,
            webhook_secret,
            sandbox,
            breaker: Breaker::new("payment_provider", BREAKER_THRESHOLD, cooldown),
            timeout,
        }
    }

    /// `PaymentProviderUnavailable` while the breaker is open.
    pub fn ready(&self) -> Result<(), DomainError> {
        if self.breaker.allow() {
            Ok(())
        } else {
            metrics::counter!("giftdrop_payment_provider_fast_failures_total").increment(1);
            Err(DomainError::PaymentProviderUnavailable)
        }
    }

    /// Runs one provider call, admitted by [`Self::ready`], bounded by the
    /// timeout, its outcome reported to the breaker.
    pub async fn call<T>(
        &self,
        call: impl Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        self.breaker
            .call(self.timeout, call)
            .await
            .map_err(|failure| match failure {
                Failure::Failed(err) => err,
                Failure::TimedOut(_) => ProviderError::Timeout,
            })
    }

    /// Runs one provider call bounded by the timeout, its outcome not
    /// reported to the breaker: a follow-up of a call the breaker has
    /// already counted.
    pub async fn uncounted<T>(
        &self,
        call: impl Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or(Err(ProviderError::Timeout))
    }

    /// [`Self::ready`], then [`Self::call`], failures as the domain error.
    pub async fn guarded<T>(
        &self,
        call: impl Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, DomainError> {
        self.ready()?;
        Ok(self.call(call).await?)
    }
}
