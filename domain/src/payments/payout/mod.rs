//! Merchant payouts (FLOWS.md §3): money from a merchant wallet to the
//! merchant's bank account through the provider.
//!
//! A payout is a pending transfer in the ledger, settled or voided by the
//! provider's answer. The order is what makes it safe to retry and to run
//! concurrently:
//! 1. [`reserve`]: one transaction posts the reservation (the amount moves
//!    from the merchant wallet to the payouts-in-flight account, a PAYOUT
//!    transfer) and records the PENDING payout, with a reference derived
//!    only from its id. The wallet's own balance check, on its row lock,
//!    refuses what it cannot cover, so concurrent payouts can never
//!    promise more than the wallet holds and nothing is computed beside
//!    the ledger.
//! 2. The provider is asked to transfer, with that reference (a repeat is
//!    the same transfer at the provider).
//! 3. The answer settles the reservation: accepted moves it on to provider
//!    clearing (PAYOUT) and makes the payout SUCCEEDED; declined returns it
//!    to the wallet (PAYOUT_REVERSAL) and makes it FAILED. Neither can fail
//!    for lack of funds: the money is already in flight. The outcome is
//!    stored under the idempotency key in the same transaction, so a retry
//!    with the key returns it and never calls the provider again.
//!
//! While the provider's breaker is open the request fails fast with
//! `PAYMENT_PROVIDER_UNAVAILABLE` before anything is written. A payout left
//! PENDING by a process that died mid-way (or whose answer could not be
//! recorded) is finished by [`reconcile_stale`], which asks the provider
//! what became of it.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, QueryResult, TransactionTrait};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ProviderError, TransferOutcome, TransferRequest};
use crate::Services;
use crate::audit::{self, AuditRecord};
use crate::context::{RequestMeta, Viewer};
use crate::error::{DomainError, DomainResult};
use crate::giftcard::merchants::{self, MerchantStatus};
use crate::idempotency::{self, Scope, Work};
use crate::identity::staff::Reach;
use crate::ledger::{
    self, Account, EntryKind, Leg, PlatformAccount, Posted, Transfer, WalletOwner,
};
use crate::money::Amount;
use crate::sql::{amount, bug, by_id, enum_col, statement};

mod reconcile;

pub use reconcile::reconcile_stale;

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
    /// The account it is paid to (the merchant's, when it was requested).
    pub destination: String,
    /// When it was requested.
    pub created_at: DateTime<Utc>,
    /// When the provider answered.
    pub completed_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, merchant_id, amount, status, reference, failure_reason, destination, created_at, completed_at";

fn view(row: &QueryResult) -> DomainResult<PayoutView> {
    Ok(PayoutView {
        id: row.try_get("", "id")?,
        merchant_id: row.try_get("", "merchant_id")?,
        amount: amount(row, "amount")?,
        status: enum_col(row, "status")?,
        reference: row.try_get("", "reference")?,
        failure_reason: row.try_get("", "failure_reason")?,
        destination: row.try_get("", "destination")?,
        created_at: row.try_get("", "created_at")?,
        completed_at: row.try_get("", "completed_at")?,
    })
}

/// The payout `id`, whoever asks.
pub async fn find<C: ConnectionTrait>(conn: &C, id: Uuid) -> DomainResult<Option<PayoutView>> {
    by_id(conn, "ledger.payouts", COLUMNS, id, view).await
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

/// The id of the payout that `caller`'s key `key` asks for: derived from
/// the two alone, so a retry of a request that failed mid-way (after its
/// payout was committed, before its outcome was stored) finds that same
/// payout, and its provider reference, instead of paying a second one.
pub fn payout_id(caller: Uuid, key: &str) -> Uuid {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"giftdrop payout\0")
        .chain_update(caller.as_bytes())
        .chain_update(key.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// Step 1: the payout `id` of this request. A PENDING one left by an
/// earlier attempt is resumed as it is; a finished one is `None` (its
/// outcome stands). Otherwise the amount is reserved in the ledger (wallet
/// -> payouts in flight; `InsufficientFunds` when the wallet cannot cover
/// it, and nothing is written) and the PENDING payout committed with it.
/// Public so that tests can stop a payout here, as a crash would.
pub async fn reserve(
    s: &Services,
    meta: &RequestMeta,
    viewer: &Viewer,
    merchant: &merchants::MerchantView,
    amount: Amount,
    id: Uuid,
) -> DomainResult<Option<Pending>> {
    let txn = s.db.begin().await?;
    let wallet_id = s
        .wallet_ids
        .of(&txn, WalletOwner::Merchant(merchant.id))
        .await?;
    let mut id = id;
    if let Some(earlier) = find(&txn, id).await? {
        if earlier.status == PayoutStatus::Pending {
            return Ok(Some(Pending::new(
                id,
                wallet_id,
                earlier.amount,
                earlier.destination,
            )));
        }
        let retention = chrono::Duration::from_std(idempotency::RETENTION)
            .map_err(|e| bug(format_args!("retention out of range: {e}")))?;
        if earlier.created_at > Utc::now() - retention {
            return Ok(None);
        }
        // The key was used again after its outcome expired: a new payout.
        id = Uuid::now_v7();
    }
    let pending = Pending::new(id, wallet_id, amount, merchant.payout_account.clone());
    let reserved = ledger::post(&txn, meta, pending.reservation()).await?;
    txn.execute_raw(statement(
        "INSERT INTO ledger.payouts (id, merchant_id, account_id, amount, reference, destination, requested_by, correlation_id, reservation_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        vec![
            id.into(),
            merchant.id.into(),
            wallet_id.into(),
            amount.minor().into(),
            reference_of(id).into(),
            merchant.payout_account.as_str().into(),
            viewer.user_id.into(),
            meta.correlation_id.as_str().into(),
            reserved.transfer_id.into(),
        ],
    ))
    .await?;
    txn.commit().await?;
    reserved.committed(s);
    Ok(Some(pending))
}

/// A PENDING payout, as much as sending and settling it needs.
#[derive(Debug)]
pub struct Pending {
    id: Uuid,
    /// The id as the ledger's transfers reference it.
    ledger_ref: String,
    wallet_id: Uuid,
    amount: Amount,
    destination: String,
}

impl Pending {
    fn new(id: Uuid, wallet_id: Uuid, amount: Amount, destination: String) -> Self {
        Self {
            id,
            ledger_ref: id.to_string(),
            wallet_id,
            amount,
            destination,
        }
    }

    /// The payout's id.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The wallet's money put aside for the provider's answer.
    fn reservation(&self) -> Transfer<'_> {
        self.moving(
            EntryKind::Payout,
            Account::Wallet(self.wallet_id),
            IN_FLIGHT,
        )
    }

    /// The provider's answer booked: accepted moves the reservation on to
    /// provider clearing; declined returns it to the wallet.
    fn outcome(&self, accepted: bool) -> Transfer<'_> {
        if accepted {
            self.moving(
                EntryKind::Payout,
                IN_FLIGHT,
                Account::Platform(PlatformAccount::ProviderClearing),
            )
        } else {
            self.moving(
                EntryKind::PayoutReversal,
                IN_FLIGHT,
                Account::Wallet(self.wallet_id),
            )
        }
    }

    /// The payout's amount from `from` to `to`, referencing the payout.
    fn moving(&self, kind: EntryKind, from: Account, to: Account) -> Transfer<'_> {
        Transfer {
            kind,
            reference: &self.ledger_ref,
            legs: vec![Leg::debit(from, self.amount), Leg::credit(to, self.amount)],
        }
    }
}

/// Where a payout's money waits for the provider's answer.
const IN_FLIGHT: Account = Account::Platform(PlatformAccount::PayoutsInFlight);

/// Step 2: asks the provider to transfer, under the payout's reference.
async fn send(s: &Services, payout: &Pending) -> Result<TransferOutcome, ProviderError> {
    let reference = reference_of(payout.id);
    let result = s
        .payments
        .call(s.payments.provider.transfer(&TransferRequest {
            reference: &reference,
            amount: payout.amount,
            currency: &s.settings.currency,
            destination: &payout.destination,
        }))
        .await;
    if let Err(err) = &result {
        tracing::error!(error = %err, payout = %payout.id, "payout transfer failed at the provider");
        metrics::counter!("giftdrop_payment_provider_failures_total").increment(1);
    }
    result
}

/// Step 3: records the provider's answer on the payout, in a transaction
/// returned open with the posting that settles its reservation: accepted
/// makes it SUCCEEDED, declined FAILED with the money back in the wallet.
/// A payout that is no longer PENDING (finished meanwhile by the other
/// path) is left as it is.
async fn record(
    s: &Services,
    meta: &RequestMeta,
    payout: &Pending,
    answer: TransferOutcome,
) -> DomainResult<(DatabaseTransaction, Option<Posted>)> {
    let txn = s.db.begin().await?;
    let still_pending = txn
        .query_one_raw(statement(
            "SELECT 1 AS one FROM ledger.payouts WHERE id = $1 AND status = 'PENDING' FOR UPDATE",
            vec![payout.id.into()],
        ))
        .await?
        .is_some();
    if !still_pending {
        return Ok((txn, None));
    }
    let (status, reason) = match answer {
        TransferOutcome::Accepted => ("SUCCEEDED", None),
        TransferOutcome::Declined(reason) => ("FAILED", Some(reason)),
    };
    let posted = ledger::post(&txn, meta, payout.outcome(reason.is_none())).await?;
    txn.execute_raw(statement(
        "UPDATE ledger.payouts SET status = $2, failure_reason = $3, transfer_id = $4, completed_at = now() \
         WHERE id = $1",
        vec![
            payout.id.into(),
            status.into(),
            reason.into(),
            posted.transfer_id.into(),
        ],
    ))
    .await?;
    metrics::counter!("giftdrop_payouts_total", "status" => status).increment(1);
    Ok((txn, Some(posted)))
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
    let id = idempotency::run_posting(
        s,
        idempotency::Hold::Claim,
        scope,
        &(merchant_id, amount),
        || async move {
            s.limiter
                .check(RATE_LIMIT, &viewer.user_id.to_string())
                .await?;
            let reach = Reach::of(&s.db, Some(viewer)).await?;
            let merchant = merchants::managed(&s.db, &reach, merchant_id).await?;
            if !reach.staff_of(merchant_id) || merchant.status != MerchantStatus::Active {
                return Err(DomainError::Forbidden);
            }
            s.payments.ready()?;
            let id = payout_id(viewer.user_id, key);
            let Some(pending) = reserve(s, meta, viewer, &merchant, amount, id).await? else {
                // Finished by an earlier attempt whose outcome was lost:
                // that payout is this request's answer.
                return Ok(Work::new(s.db.begin().await?, id, None));
            };
            let answer = match send(s, &pending).await {
                Ok(outcome) => outcome,
                Err(err) => TransferOutcome::Declined(err.to_string()),
            };
            let (txn, posted) = record(s, meta, &pending, answer).await?;
            let id = pending.id;
            let mut work = Work::new(txn, id, posted);
            work.closing.push(audit::statement(
                meta,
                AuditRecord {
                    actor: Some(viewer.user_id),
                    action: "payout.request",
                    subject: format!("payout:{id}"),
                    detail: Some(format!("{amount} for merchant {merchant_id}")),
                },
            ));
            Ok(work)
        },
    )
    .await?;
    find(&s.db, id)
        .await?
        .ok_or_else(|| bug("a requested payout vanished"))
}
