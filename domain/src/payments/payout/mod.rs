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
//!    the same transfer at the provider). When the call fails, the provider
//!    is asked what became of the reference: an answer lost after the
//!    provider acted is still its answer ([`send`]).
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

use chrono::Utc;
use giftdrop_entities::ledger::payouts;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveEnum, ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QuerySelect, TransactionTrait,
};
use uuid::Uuid;

use super::{TransferOutcome, TransferRequest};
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
use crate::sql::bug;

mod reconcile;
mod view;

pub use reconcile::reconcile_stale;
pub use view::{PayoutStatus, PayoutView, find, find_for};

use view::amount;

/// The rate limit (`RATE_LIMITS`) `requestPayout` counts against.
pub const RATE_LIMIT: &str = "payout";
const OPERATION: &str = "requestPayout";

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
    payouts::Entity::insert(payouts::ActiveModel {
        id: Set(id),
        merchant_id: Set(merchant.id),
        account_id: Set(wallet_id),
        amount: Set(amount.minor()),
        reference: Set(reference_of(id)),
        destination: Set(merchant.payout_account.clone()),
        requested_by: Set(viewer.user_id),
        correlation_id: Set(meta.correlation_id.clone()),
        reservation_id: Set(Some(reserved.transfer_id)),
        ..Default::default()
    })
    .exec_without_returning(&txn)
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

/// Step 2: asks the provider to transfer, under the payout's reference,
/// and returns its answer. A failed call is not yet a failed payout: the
/// answer may have been lost after the provider acted (a proxy in front of
/// it timing out, a 5xx after the transfer was booked), and a payout called
/// FAILED returns its money to the wallet, to be paid out again. So the
/// provider is asked what became of the reference ([`confirm`]); only a
/// transfer it never made, or one it cannot say anything about, is
/// declined with the call's error.
async fn send(s: &Services, payout: &Pending) -> TransferOutcome {
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
    let err = match result {
        Ok(outcome) => return outcome,
        Err(err) => err,
    };
    tracing::error!(error = %err, payout = %payout.id, "payout transfer failed at the provider");
    metrics::counter!("giftdrop_payment_provider_failures_total").increment(1);
    match confirm(s, &reference).await {
        Some(outcome) => {
            tracing::warn!(payout = %payout.id, ?outcome, "the provider had answered the failed transfer");
            outcome
        }
        None => TransferOutcome::Declined(err.to_string()),
    }
}

/// What the provider says became of the transfer `reference`: asked once,
/// within the provider timeout, outside the breaker (which has counted the
/// failed transfer: one payout, one failure, as the contract's five in a
/// row count them). `None` when it never received the transfer, or cannot say.
async fn confirm(s: &Services, reference: &str) -> Option<TransferOutcome> {
    let status = s.payments.provider.transfer_status(reference);
    s.payments
        .uncounted(status)
        .await
        .inspect_err(|err| {
            tracing::warn!(error = %err, reference, "the provider cannot say what became of a failed transfer");
        })
        .ok()
        .flatten()
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
    let still_pending = payouts::Entity::find_by_id(payout.id)
        .select_only()
        .column(payouts::Column::Id)
        .filter(payouts::Column::Status.eq(payouts::Status::Pending))
        .lock_exclusive()
        .into_tuple::<Uuid>()
        .one(&txn)
        .await?
        .is_some();
    if !still_pending {
        return Ok((txn, None));
    }
    let (status, reason) = match answer {
        TransferOutcome::Accepted => (payouts::Status::Succeeded, None),
        TransferOutcome::Declined(reason) => (payouts::Status::Failed, Some(reason)),
    };
    let posted = ledger::post(&txn, meta, payout.outcome(reason.is_none())).await?;
    payouts::Entity::update_many()
        .col_expr(payouts::Column::Status, status.into())
        .col_expr(payouts::Column::FailureReason, reason.into())
        .col_expr(payouts::Column::TransferId, posted.transfer_id.into())
        .col_expr(payouts::Column::CompletedAt, Expr::current_timestamp())
        .filter(payouts::Column::Id.eq(payout.id))
        .exec(&txn)
        .await?;
    metrics::counter!("giftdrop_payouts_total", "status" => status.to_value()).increment(1);
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
            let answer = send(s, &pending).await;
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
