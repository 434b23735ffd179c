//! The built-in sandbox provider (`PAYMENT_PROVIDER=sandbox`, the default):
//! the app plays the payment provider itself. Its checkout page lives at
//! `/sandbox/checkout/{reference}`; paying or failing there sends the same
//! signed webhook a real provider would, through the same verification.
//! Transfers (payouts) are accepted and remembered by reference, so a repeat
//! is the same transfer.
//!
//! Knobs ([`SandboxKnobs`], `SANDBOX_LATENCY_MS`, `SANDBOX_FAILURE_PERCENT`,
//! or `POST /sandbox/settings`) make every call slow or failing, so the
//! breaker, timeouts and retries can be driven; and transfers made whose
//! answer is then lost, as when a proxy in front of a provider times out
//! after the provider acted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::webhook::{self, ChargeData, Notification, Received, Refused};
use super::{
    Checkout, CheckoutRequest, PaymentProvider, ProviderError, TransferOutcome, TransferRequest,
};
use crate::Services;
use crate::context::RequestMeta;
use crate::money::Amount;

/// How the sandbox misbehaves, changeable while it runs.
#[derive(Debug, Default)]
pub struct SandboxKnobs {
    latency_ms: AtomicU64,
    failure_percent: AtomicU32,
    lost_answer_percent: AtomicU32,
    transfer_calls: AtomicU64,
    transfers: Mutex<HashMap<String, (Amount, u32)>>,
}

/// The knob settings, as `POST /sandbox/settings` takes and answers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KnobSettings {
    /// Added to every call, ms.
    pub latency_ms: u64,
    /// Share of calls that fail like a provider outage (HTTP 5xx), 0-100.
    pub failure_percent: u32,
    /// Share of transfers made whose answer is lost: the call fails (HTTP
    /// 5xx) after the money has left, 0-100.
    #[serde(default)]
    pub lost_answer_percent: u32,
}

impl SandboxKnobs {
    /// Knobs at `settings`.
    pub fn new(settings: KnobSettings) -> Self {
        let knobs = Self::default();
        knobs.set(settings);
        knobs
    }

    /// Changes the knobs.
    pub fn set(&self, settings: KnobSettings) {
        self.latency_ms
            .store(settings.latency_ms, Ordering::Relaxed);
        self.failure_percent
            .store(settings.failure_percent.min(100), Ordering::Relaxed);
        self.lost_answer_percent
            .store(settings.lost_answer_percent.min(100), Ordering::Relaxed);
    }

    /// The knobs now.
    pub fn get(&self) -> KnobSettings {
        KnobSettings {
            latency_ms: self.latency_ms.load(Ordering::Relaxed),
            failure_percent: self.failure_percent.load(Ordering::Relaxed),
            lost_answer_percent: self.lost_answer_percent.load(Ordering::Relaxed),
        }
    }

    /// The amount transferred under `reference`, and how many times the
    /// transfer was asked for (a repeat is the same transfer).
    pub fn transferred(&self, reference: &str) -> Option<(Amount, u32)> {
        self.ledger().get(reference).copied()
    }

    /// Every transfer made so far: its reference and amount.
    pub fn transfers(&self) -> Vec<(String, Amount)> {
        self.ledger()
            .iter()
            .map(|(reference, (amount, _))| (reference.clone(), *amount))
            .collect()
    }

    /// Transfer calls received so far, failed ones included.
    pub fn transfer_calls(&self) -> u64 {
        self.transfer_calls.load(Ordering::Relaxed)
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Amount, u32)>> {
        self.transfers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits out the latency, then fails as often as configured.
    async fn behave(&self) -> Result<(), ProviderError> {
        let KnobSettings {
            latency_ms,
            failure_percent,
            ..
        } = self.get();
        if latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(latency_ms)).await;
        }
        if chance(failure_percent) {
            return Err(ProviderError::Unavailable(
                "sandbox: simulated provider outage".into(),
            ));
        }
        Ok(())
    }

    /// The answer to a transfer just made, unless it is to be lost.
    fn answer(&self, outcome: TransferOutcome) -> Result<TransferOutcome, ProviderError> {
        if chance(self.lost_answer_percent.load(Ordering::Relaxed)) {
            return Err(ProviderError::Unavailable(
                "sandbox: the transfer was made, its answer lost".into(),
            ));
        }
        Ok(outcome)
    }
}

/// True `percent` times in a hundred.
fn chance(percent: u32) -> bool {
    percent > 0 && rand::rng().random_range(0..100) < percent
}

/// The sandbox provider; checkout URLs point back at this app.
#[derive(Clone, Debug)]
pub struct SandboxProvider {
    /// Public base URL of this app, e.g. `http://localhost:8000`.
    pub base_url: String,
    /// How it misbehaves.
    pub knobs: Arc<SandboxKnobs>,
}

impl SandboxProvider {
    /// The checkout page path of `reference`.
    pub fn checkout_path(reference: &str) -> String {
        format!("/sandbox/checkout/{reference}")
    }
}

#[async_trait]
impl PaymentProvider for SandboxProvider {
    async fn checkout(&self, request: &CheckoutRequest<'_>) -> Result<Checkout, ProviderError> {
        self.knobs.behave().await?;
        Ok(Checkout {
            url: format!(
                "{}{}",
                self.base_url.trim_end_matches('/'),
                Self::checkout_path(request.reference)
            ),
        })
    }

    async fn transfer(
        &self,
        request: &TransferRequest<'_>,
    ) -> Result<TransferOutcome, ProviderError> {
        self.knobs.transfer_calls.fetch_add(1, Ordering::Relaxed);
        self.knobs.behave().await?;
        if request.destination.trim().is_empty() {
            return Ok(TransferOutcome::Declined("no destination account".into()));
        }
        // Same reference, same transfer: the first amount stands.
        let mut ledger = self.knobs.ledger();
        let asked = ledger
            .entry(request.reference.to_owned())
            .or_insert((request.amount, 0));
        asked.1 += 1;
        self.knobs.answer(TransferOutcome::Accepted)
    }

    async fn transfer_status(
        &self,
        reference: &str,
    ) -> Result<Option<TransferOutcome>, ProviderError> {
        self.knobs.behave().await?;
        Ok(self
            .knobs
            .transferred(reference)
            .map(|_| TransferOutcome::Accepted))
    }
}

/// How the payer leaves the sandbox checkout page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `charge.success`, with fee = amount x `DEPOSIT_FEE_BPS`, half up.
    Pay,
    /// `charge.failed`.
    Fail,
}

/// Completes the sandbox payment `reference` by sending the provider's
/// signed webhook to ourselves. Unknown reference: `NotFound`.
pub async fn complete(
    services: &Services,
    meta: &RequestMeta,
    reference: &str,
    outcome: Outcome,
) -> Result<Received, Refused> {
    let topup = super::topup::find_by_reference(&services.db, reference)
        .await?
        .ok_or(Refused::UnknownReference)?;
    let notification = Notification {
        event: match outcome {
            Outcome::Pay => webhook::CHARGE_SUCCESS,
            Outcome::Fail => webhook::CHARGE_FAILED,
        }
        .to_owned(),
        data: ChargeData {
            reference: topup.reference,
            amount: topup.amount.to_string(),
            fee: Some(
                topup
                    .amount
                    .bps_half_up(services.settings.deposit_fee_bps)
                    .to_string(),
            ),
        },
    };
    let (body, signature) = webhook::signed(&services.payments.webhook_secret, &notification)
        .map_err(Refused::Internal)?;
    webhook::receive(services, meta, &body, Some(&signature)).await
}
