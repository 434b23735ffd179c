//! The built-in sandbox provider (`PAYMENT_PROVIDER=sandbox`, the default):
//! the app plays the payment provider itself. Its checkout page lives at
//! `/sandbox/checkout/{reference}`; paying or failing there sends the same
//! signed webhook a real provider would, through the same verification.

use async_trait::async_trait;

use super::webhook::{self, ChargeData, Notification, Received, Refused};
use super::{Checkout, CheckoutRequest, PaymentProvider, ProviderError};
use crate::Services;
use crate::context::RequestMeta;

/// The sandbox provider; checkout URLs point back at this app.
#[derive(Clone, Debug)]
pub struct SandboxProvider {
    /// Public base URL of this app, e.g. `http://localhost:8000`.
    pub base_url: String,
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
        Ok(Checkout {
            url: format!(
                "{}{}",
                self.base_url.trim_end_matches('/'),
                Self::checkout_path(request.reference)
            ),
        })
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
