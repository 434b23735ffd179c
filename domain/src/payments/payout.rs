//! Merchant payouts (FLOWS.md §3): money from a merchant wallet to the
//! merchant's bank account through the provider.
//!
//! The order is what makes a payout safe to retry:
//! 1. Under the wallet's row lock, the amount is checked against the
//!    balance less every PENDING payout, and a PENDING payout is committed
//!    with a reference derived only from its id. Concurrent payouts can
//!    therefore never promise more than the wallet holds.
//! 2. The provider is asked to transfer, with that reference (a repeat is
//!    the same transfer at the provider).
//! 3. Only if the provider accepts is the PAYOUT debit posted; otherwise
//!    the payout is FAILED and the wallet untouched. The outcome is stored
//!    under the idempotency key in the same transaction, so a retry with
//!    the key returns it and never calls the provider again.
//!
//! While the provider's breaker is open the request fails fast with
//! `PAYMENT_PROVIDER_UNAVAILABLE` before anything is written.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, QueryResult, TransactionTrait};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ProviderError, TransferOutcome, TransferRequest};
use crate::Services;
use crate::audit::{self, AuditRecord};
use crate::context::{RequestMeta, Viewer};
use crate::error::{DomainError, DomainResult};
use crate::giftcard::merchants::{self, MerchantStatus};
use crate::idempotency::{self, Scope};
use crate::identity::staff::Reach;
use crate::ledger::{self, Account, EntryKind, Leg, PlatformAccount, Transfer, WalletOwner};
use crate::money::Amount;
use crate::sql::{amount, bug, enum_col, statement};

/// The rate limit (`RATE_LIMITS`) `requestPayout` counts against.
pub const RATE_LIMIT: &str = "payout";
const OPERATION: &str = "requestPayout";

/// `PayoutStatus` of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PayoutStatus {
    /// Sent to the provider, no answer yet.
    Pending,
    /// Accepted by the provider; the wallet was debited.
    Succeeded,
    /// Refused or failed at the provider; the wallet is untouched.
    Failed,
}

/// A payout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutView {
    /// Payout id.
    pub id: Uuid,
    /// Whose.
    pub merchant_id: Uuid,
    /// How much.
    pub amount: Amount,
    /// Where it stands.
    pub status: PayoutStatus,
    /// The provider transfer reference (`po_` and the id).
    pub reference: String,
    /// Why it failed.
    pub failure_reason: Option<String>,
    /// When it was requested.
    pub created_at: DateTime<Utc>,
    /// When the provider answered.
    pub completed_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str =
    "id, merchant_id, amount, status, reference, failure_reason, created_at, completed_at";

fn view(row: &QueryResult) -> DomainResult<PayoutView> {
    Ok(PayoutView {
        id: row.try_get("", "id")?,
        merchant_id: row.try_get("", "merchant_id")?,
        amount: amount(row, "amount")?,
        status: enum_col(row, "status")?,
        reference: row.try_get("", "reference")?,
        failure_reason: row.try_get("", "failure_reason")?,
        created_at: row.try_get("", "created_at")?,
        completed_at: row.try_get("", "completed_at")?,
    })
}

/// The payout `id`, whoever asks.
pub async fn find<C: ConnectionTrait>(conn: &C, id: Uuid) -> DomainResult<Option<PayoutView>> {
    let row = conn
        .query_one_raw(statement(
            &format!("SELECT {COLUMNS} FROM ledger.payouts WHERE id = $1"),
            vec![id.into()],
        ))
        .await?;
    row.as_ref().map(view).transpose()
}

/// The payout `id` if `reach` manages its merchant (staff or admin).
pub async fn find_for<C: ConnectionTrait>(
    conn: &C,
    reach: &Reach,
    id: Uuid,
) -> DomainResult<Option<PayoutView>> {
    Ok(find(conn, id)
        .await?
        .filter(|p| reach.manages(p.merchant_id)))
}

/// The reference of payout `id`: derived from the id alone, so every retry
/// of the same payout names the same provider transfer.
fn reference_of(id: Uuid) -> String {
    format!("po_{}", id.simple())
}

/// Step 1: checks the amount against the balance less PENDING payouts
/// under the wallet lock, and commits a PENDING payout.
async fn reserve(
    s: &Services,
    meta: &RequestMeta,
    viewer: &Viewer,
    merchant: &merchants::MerchantView,
    amount: Amount,
) -> DomainResult<(Uuid, Uuid)> {
    let txn = s.db.begin().await?;
    let wallet = ledger::wallet_of(&txn, WalletOwner::Merchant(merchant.id)).await?;
    let row = txn
        .query_one_raw(statement(
            "SELECT a.balance - coalesce((SELECT sum(p.amount) FROM ledger.payouts p \
               WHERE p.account_id = a.id AND p.status = 'PENDING'), 0)::bigint AS available \
             FROM ledger.accounts a WHERE a.id = $1 FOR UPDATE",
            vec![wallet.id.into()],
        ))
        .await?
        .ok_or_else(|| bug("a merchant wallet vanished"))?;
    let available: i64 = row.try_get("", "available")?;
    let available = Amount::new(available.max(0)).unwrap_or(Amount::ZERO);
    if available < amount {
        return Err(DomainError::InsufficientFunds {
            required: amount,
            available,
        });
    }
    let id = Uuid::now_v7();
    txn.execute_raw(statement(
        "INSERT INTO ledger.payouts (id, merchant_id, account_id, amount, reference, destination, requested_by, correlation_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        vec![
            id.into(),
            merchant.id.into(),
            wallet.id.into(),
            amount.minor().into(),
            reference_of(id).into(),
            merchant.payout_account.as_str().into(),
            viewer.user_id.into(),
            meta.correlation_id.as_str().into(),
        ],
    ))
    .await?;
    txn.commit().await?;
    Ok((id, wallet.id))
}

/// `requestPayout` (staff of an ACTIVE merchant), once per idempotency key.
pub async fn request(
    s: &Services,
    meta: &RequestMeta,
    viewer: &Viewer,
    merchant_id: Uuid,
    amount: Amount,
    key: &str,
) -> DomainResult<PayoutView> {
    let scope = Scope {
        caller: viewer.user_id,
        operation: OPERATION,
        key,
    };
    let id = idempotency::run_posting(s, scope, &(merchant_id, amount), || async move {
        s.limiter
            .check(RATE_LIMIT, &viewer.user_id.to_string())
            .await?;
        let reach = Reach::of(&s.db, Some(viewer)).await?;
        let merchant = merchants::managed(&s.db, &reach, merchant_id).await?;
        if !reach.staff_of(merchant_id) || merchant.status != MerchantStatus::Active {
            return Err(DomainError::Forbidden);
        }
        s.payments.ready()?;
        let (id, wallet_id) = reserve(s, meta, viewer, &merchant, amount).await?;
        let reference = reference_of(id);
        let outcome = s
            .payments
            .call(s.payments.provider.transfer(&TransferRequest {
                reference: &reference,
                amount,
                currency: &s.settings.currency,
                destination: &merchant.payout_account,
            }))
            .await;
        let txn = s.db.begin().await?;
        let mut posted = None;
        let failure = match outcome {
            Ok(TransferOutcome::Accepted) => None,
            Ok(TransferOutcome::Declined(reason)) => Some(reason),
            Err(err) => {
                let err: ProviderError = err;
                tracing::error!(error = %err, payout = %id, "payout transfer failed at the provider");
                metrics::counter!("giftdrop_payment_provider_failures_total").increment(1);
                Some(err.to_string())
            }
        };
        match failure {
            None => {
                let paid = ledger::post(
                    &txn,
                    meta,
                    Transfer {
                        kind: EntryKind::Payout,
                        reference: &id.to_string(),
                        legs: vec![
                            Leg::debit(Account::Wallet(wallet_id), amount),
                            Leg::credit(
                                Account::Platform(PlatformAccount::ProviderClearing),
                                amount,
                            ),
                        ],
                    },
                )
                .await?;
                txn.execute_raw(statement(
                    "UPDATE ledger.payouts SET status = 'SUCCEEDED', transfer_id = $2, completed_at = now() \
                     WHERE id = $1 AND status = 'PENDING'",
                    vec![id.into(), paid.transfer_id.into()],
                ))
                .await?;
                posted = Some(paid);
            }
            Some(reason) => {
                txn.execute_raw(statement(
                    "UPDATE ledger.payouts SET status = 'FAILED', failure_reason = $2, completed_at = now() \
                     WHERE id = $1 AND status = 'PENDING'",
                    vec![id.into(), reason.into()],
                ))
                .await?;
            }
        }
        audit::record(
            &txn,
            meta,
            AuditRecord {
                actor: Some(viewer.user_id),
                action: "payout.request",
                subject: format!("payout:{id}"),
                detail: Some(format!("{amount} for merchant {merchant_id}")),
            },
        )
        .await?;
        Ok((txn, id, posted))
    })
    .await?;
    find(&s.db, id)
        .await?
        .ok_or_else(|| bug("a requested payout vanished"))
}
