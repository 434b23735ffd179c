//! The provider's signed webhook (FLOWS.md §3): `POST /webhooks/payments`
//! with `x-provider-signature` = lowercase hex HMAC-SHA512 of the raw body.
//!
//! Answers, which the HTTP layer maps to statuses: a bad or missing
//! signature is refused before anything is read ([`Refused::BadSignature`],
//! 401); an unknown reference is 404; an amount that differs from the
//! topup's flags the topup FAILED for review and is 422; a delivery for a
//! topup that is no longer PENDING is a duplicate and changes nothing (200);
//! a payment the wallet's balance cannot hold is credited not at all and
//! flags the topup FAILED for review (200: a retry could never succeed).
//! `charge.success` credits the wallet the full amount and books the
//! provider's fee in one transaction. Concurrent duplicates serialize on the
//! topup row, so a payment is credited exactly once.

use anyhow::Context as _;
use hmac::{Hmac, Mac};
use sea_orm::{DatabaseTransaction, TransactionTrait};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha512;

use super::topup::{self, TopupStatus};
use crate::Services;
use crate::context::RequestMeta;
use crate::error::{DomainError, DomainResult};
use crate::ledger::{self, Account, EntryKind, Leg, PlatformAccount, Transfer};
use crate::money::Amount;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-provider-signature";

/// The successful-charge event.
pub const CHARGE_SUCCESS: &str = "charge.success";
/// The failed-charge event.
pub const CHARGE_FAILED: &str = "charge.failed";

type HmacSha512 = Hmac<Sha512>;

fn mac(secret: &SecretString) -> HmacSha512 {
    // HMAC accepts keys of any length, so this never fails.
    <HmacSha512 as Mac>::new_from_slice(secret.expose_secret().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

/// The signature of `body`: lowercase hex HMAC-SHA512 with `secret`.
pub fn sign(secret: &SecretString, body: &[u8]) -> String {
    let mut mac = mac(secret);
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// True when `signature` is `body`'s, compared in constant time.
pub fn verify(secret: &SecretString, body: &[u8], signature: &str) -> bool {
    let Ok(claimed) = hex::decode(signature.trim()) else {
        return false;
    };
    let mut mac = mac(secret);
    mac.update(body);
    mac.verify_slice(&claimed).is_ok()
}

/// A webhook body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// `charge.success`, `charge.failed`, or an event we do not handle.
    pub event: String,
    /// What it is about.
    pub data: ChargeData,
}

/// The `data` of a charge event; amounts are strings of digits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeData {
    /// Our topup reference.
    pub reference: String,
    /// What the provider charged.
    pub amount: String,
    /// The provider's deposit fee (required on `charge.success`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee: Option<String>,
}

/// A delivery that was accepted (HTTP 200).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// The wallet was credited.
    Credited,
    /// The topup was marked FAILED.
    MarkedFailed,
    /// The topup was already completed: nothing changed.
    Duplicate,
    /// An event type we do not act on.
    Ignored,
}

/// A delivery that was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// Missing or wrong signature (401).
    #[error("invalid signature")]
    BadSignature,
    /// Signed, but not a charge notification we can read (400).
    #[error("malformed notification: {0}")]
    Malformed(String),
    /// No topup has this reference (404).
    #[error("unknown reference")]
    UnknownReference,
    /// The amount differs from the topup's, which is now FAILED (422).
    #[error("amount does not match the topup")]
    AmountMismatch,
    /// Our failure; the provider should retry (500).
    #[error(transparent)]
    Internal(#[from] DomainError),
}

impl From<sea_orm::DbErr> for Refused {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::Internal(err.into())
    }
}

fn amount_field(text: &str, field: &str) -> Result<Amount, Refused> {
    text.parse::<Amount>()
        .map_err(|e| Refused::Malformed(format!("data.{field} {e}")))
}

/// Verifies and applies one delivery.
pub async fn receive(
    services: &Services,
    meta: &RequestMeta,
    body: &[u8],
    signature: Option<&str>,
) -> Result<Received, Refused> {
    if !signature.is_some_and(|s| verify(&services.payments.webhook_secret, body, s)) {
        metrics::counter!("giftdrop_webhooks_total", "result" => "bad_signature").increment(1);
        // A wrong PAYMENT_WEBHOOK_SECRET, or someone forging deliveries.
        tracing::warn!(
            signed = signature.is_some(),
            "payment webhook refused: bad or missing signature"
        );
        return Err(Refused::BadSignature);
    }
    let notification: Notification =
        serde_json::from_slice(body).map_err(|e| Refused::Malformed(e.to_string()))?;
    let result = apply(services, meta, &notification).await;
    let label = match &result {
        Ok(Received::Credited) => "credited",
        Ok(Received::MarkedFailed) => "failed",
        Ok(Received::Duplicate) => "duplicate",
        Ok(Received::Ignored) => "ignored",
        Err(Refused::UnknownReference) => "unknown_reference",
        Err(Refused::AmountMismatch) => "amount_mismatch",
        Err(Refused::Malformed(_)) => "malformed",
        Err(Refused::BadSignature | Refused::Internal(_)) => "error",
    };
    metrics::counter!("giftdrop_webhooks_total", "result" => label).increment(1);
    tracing::info!(
        reference = %notification.data.reference,
        event = %notification.event,
        result = label,
        "payment webhook"
    );
    result
}

async fn apply(
    services: &Services,
    meta: &RequestMeta,
    notification: &Notification,
) -> Result<Received, Refused> {
    let success = match notification.event.as_str() {
        CHARGE_SUCCESS => true,
        CHARGE_FAILED => false,
        _ => return Ok(Received::Ignored),
    };
    let data = &notification.data;
    let amount = amount_field(&data.amount, "amount")?;
    let fee = match (&data.fee, success) {
        (Some(fee), _) => Some(amount_field(fee, "fee")?),
        (None, true) => return Err(Refused::Malformed("data.fee is required".into())),
        (None, false) => None,
    };
    if fee.is_some_and(|fee| fee > amount) {
        return Err(Refused::Malformed("data.fee exceeds data.amount".into()));
    }

    let txn = services.db.begin().await?;
    // The row lock serializes concurrent deliveries of one payment.
    let Some(found) = topup::lock_by_reference(&txn, &data.reference).await? else {
        return Err(Refused::UnknownReference);
    };
    if found.amount != amount {
        if found.status == TopupStatus::Pending {
            let reason = format!(
                "amount mismatch: the provider reported {amount}, the topup is for {}",
                found.amount
            );
            tracing::warn!(reference = %data.reference, %reason, "topup flagged FAILED for review");
            topup::mark_failed(&txn, found.id, &reason).await?;
            txn.commit().await?;
        }
        return Err(Refused::AmountMismatch);
    }
    if found.status != TopupStatus::Pending {
        return Ok(Received::Duplicate);
    }
    if !success {
        topup::mark_failed(&txn, found.id, "the provider reported charge.failed").await?;
        txn.commit().await?;
        return Ok(Received::MarkedFailed);
    }
    let fee = fee.unwrap_or(Amount::ZERO);
    let posted = match credit(&txn, meta, &found, fee).await {
        Ok(posted) => posted,
        Err(Refused::Internal(DomainError::BalanceLimit)) => {
            txn.rollback().await?;
            return unpayable(services, &found).await;
        }
        Err(refused) => return Err(refused),
    };
    txn.commit().await?;
    posted.committed(services);
    Ok(Received::Credited)
}

/// A payment the wallet cannot hold (its balance would pass the largest
/// the ledger holds): nothing is credited, the topup is FAILED for review
/// (the provider holds the money; an operator refunds it), and the answer
/// is 200 so the provider stops retrying what can never succeed.
async fn unpayable(services: &Services, found: &topup::TopupView) -> Result<Received, Refused> {
    let reason = "the wallet's balance cannot hold this amount";
    tracing::error!(reference = %found.reference, reason, "topup flagged FAILED for review");
    let txn = services.db.begin().await?;
    topup::mark_failed(&txn, found.id, reason).await?;
    txn.commit().await?;
    Ok(Received::MarkedFailed)
}

/// Credits the wallet the full amount: the provider owes us `amount - fee`
/// (clearing) and kept `fee` (provider fees).
async fn credit(
    txn: &DatabaseTransaction,
    meta: &RequestMeta,
    found: &topup::TopupView,
    fee: Amount,
) -> Result<ledger::Posted, Refused> {
    let net = found
        .amount
        .checked_sub(fee)
        .context("fee exceeds amount")
        .map_err(DomainError::Internal)?;
    let mut legs = vec![Leg::credit(Account::Wallet(found.account_id), found.amount)];
    if !net.is_zero() {
        legs.push(Leg::debit(
            Account::Platform(PlatformAccount::ProviderClearing),
            net,
        ));
    }
    if !fee.is_zero() {
        legs.push(Leg::debit(
            Account::Platform(PlatformAccount::ProviderFees),
            fee,
        ));
    }
    let posted = ledger::post(
        txn,
        meta,
        Transfer {
            kind: EntryKind::Topup,
            reference: &found.reference,
            legs,
        },
    )
    .await?;
    topup::mark_succeeded(txn, found.id, fee, posted.transfer_id).await?;
    Ok(posted)
}

/// The body and signature of a notification, as a provider would send it.
pub fn signed(
    secret: &SecretString,
    notification: &Notification,
) -> DomainResult<(Vec<u8>, String)> {
    let body = serde_json::to_vec(notification).context("unencodable notification")?;
    let signature = sign(secret, &body);
    Ok((body, signature))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_the_same_body_and_secret() {
        let secret = SecretString::from("whsec-test");
        let body = br#"{"event":"charge.success"}"#;
        let signature = sign(&secret, body);
        assert_eq!(signature.len(), 128, "hex of 64 bytes");
        assert_eq!(signature, signature.to_lowercase());
        assert!(verify(&secret, body, &signature));
        assert!(!verify(
            &secret,
            b"{\"event\":\"charge.failed\"}",
            &signature
        ));
        assert!(!verify(&SecretString::from("other"), body, &signature));
        assert!(!verify(&secret, body, "not hex"));
        assert!(!verify(&secret, body, &signature[..64]));
    }
}
