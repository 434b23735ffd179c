//! Money coming in from the payment provider: the [`PaymentProvider`] port
//! with its two implementations (the built-in [`sandbox`] and the REST
//! client in [`http`]), top-ups ([`topup`]) and the signed webhook that
//! confirms them ([`webhook`]).

pub mod http;
pub mod sandbox;
pub mod topup;
pub mod webhook;

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::SecretString;

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

/// The payment provider port.
#[async_trait]
pub trait PaymentProvider: Send + Sync + 'static {
    /// Registers a charge and returns where the payer completes it. Must be
    /// safe to repeat with the same reference.
    async fn checkout(&self, request: &CheckoutRequest<'_>) -> Result<Checkout, ProviderError>;
}

/// The configured provider and the webhook secret it signs with.
#[derive(Clone)]
pub struct Payments {
    /// Where checkouts are created.
    pub provider: Arc<dyn PaymentProvider>,
    /// Key of the webhook's HMAC-SHA512 signature.
    pub webhook_secret: SecretString,
    /// True when the app plays the provider itself (`PAYMENT_PROVIDER=sandbox`).
    pub sandbox: bool,
}
