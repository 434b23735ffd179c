//! Top-ups (FLOWS.md §3): `initiateTopup` creates a PENDING topup with a
//! unique reference and a checkout URL from the provider; the provider's
//! webhook ([`super::webhook`]) completes it.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, QueryResult, TransactionTrait, Value};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::CheckoutRequest;
use crate::Services;
use crate::context::{RequestMeta, Viewer};
use crate::error::{DomainError, DomainResult};
use crate::idempotency::{self, Scope};
use crate::identity;
use crate::ledger::{self, WalletOwner};
use crate::money::Amount;
use crate::sql::{fetch_one, statement};

/// The rate limit (`RATE_LIMITS`) `initiateTopup` counts against.
pub const RATE_LIMIT: &str = "topup";
/// The idempotency operation name.
const OPERATION: &str = "initiateTopup";

/// `TopupStatus` of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TopupStatus {
    /// Waiting for the provider.
    Pending,
    /// Credited.
    Succeeded,
    /// Failed at the provider, or flagged for review.
    Failed,
}

/// A topup as its owner sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopupView {
    /// Topup id.
    pub id: Uuid,
    /// Who tops up.
    pub user_id: Uuid,
    /// The wallet it credits.
    pub account_id: Uuid,
    /// Reference shared with the provider.
    pub reference: String,
    /// Amount to credit.
    pub amount: Amount,
    /// Provider fee, once confirmed.
    pub fee: Option<Amount>,
    /// Where it stands.
    pub status: TopupStatus,
    /// The provider's checkout page.
    pub checkout_url: String,
    /// When it was started.
    pub created_at: DateTime<Utc>,
    /// When it succeeded or failed.
    pub completed_at: Option<DateTime<Utc>>,
}

fn amount(minor: i64) -> DomainResult<Amount> {
    Amount::new(minor)
        .map_err(|_| DomainError::Internal(anyhow::anyhow!("a negative topup amount")))
}

const COLUMNS: &str = "id, user_id, account_id, reference, amount, fee, status, checkout_url, created_at, completed_at";

fn view(row: &QueryResult) -> DomainResult<TopupView> {
    let fee: Option<i64> = row.try_get("", "fee")?;
    let status: String = row.try_get("", "status")?;
    Ok(TopupView {
        id: row.try_get("", "id")?,
        user_id: row.try_get("", "user_id")?,
        account_id: row.try_get("", "account_id")?,
        reference: row.try_get("", "reference")?,
        amount: amount(row.try_get("", "amount")?)?,
        fee: fee.map(amount).transpose()?,
        status: ledger::from_db(&status)?,
        checkout_url: row.try_get("", "checkout_url")?,
        created_at: row.try_get("", "created_at")?,
        completed_at: row.try_get("", "completed_at")?,
    })
}

/// Starts a topup of `amount` (validated by the caller: positive; at most
/// `TOPUP_MAX_AMOUNT`, else `BAD_USER_INPUT` and nothing is written) under
/// the client's idempotency `key`. A repeat with the same key and amount returns
/// the same topup; a provider failure leaves nothing behind.
pub async fn initiate(
    services: &Services,
    meta: &RequestMeta,
    viewer: &Viewer,
    amount: Amount,
    key: &str,
) -> DomainResult<TopupView> {
    let max = services.settings.topup_max;
    if amount > max {
        return Err(DomainError::bad_input(
            "input.amount",
            format!("must be at most {max}"),
        ));
    }
    let scope = Scope {
        caller: viewer.user_id,
        operation: OPERATION,
        key,
    };
    let id = idempotency::run(&services.db, scope, &amount, || async {
        services
            .limiter
            .check(RATE_LIMIT, &viewer.user_id.to_string())
            .await?;
        let user = identity::find_user(&services.db, viewer.user_id)
            .await?
            .ok_or(DomainError::Unauthenticated)?;
        let id = Uuid::now_v7();
        let reference = format!("tp_{}", id.simple());
        // The provider first: if it fails, nothing of ours exists yet.
        let payments = &services.payments;
        let checkout = payments
            .guarded(payments.provider.checkout(&CheckoutRequest {
                reference: &reference,
                amount,
                currency: &services.settings.currency,
                email: &user.email,
            }))
            .await?;
        let txn = services.db.begin().await?;
        let wallet = ledger::wallet_of(&txn, WalletOwner::User(viewer.user_id)).await?;
        txn.execute_raw(statement(
            "INSERT INTO ledger.topups (id, user_id, account_id, reference, amount, checkout_url, correlation_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            vec![
                id.into(),
                viewer.user_id.into(),
                wallet.id.into(),
                reference.into(),
                amount.minor().into(),
                checkout.url.into(),
                meta.correlation_id.as_str().into(),
            ],
        ))
        .await?;
        metrics::counter!("giftdrop_topups_initiated_total").increment(1);
        Ok((txn, id))
    })
    .await?;
    find(&services.db, id)
        .await?
        .ok_or_else(|| DomainError::Internal(anyhow::anyhow!("an initiated topup vanished")))
}

/// The one topup matching `condition` (on `$1`), if any.
async fn one<C: ConnectionTrait>(
    conn: &C,
    condition: &str,
    value: Value,
) -> DomainResult<Option<TopupView>> {
    fetch_one(
        conn,
        &format!("SELECT {COLUMNS} FROM ledger.topups WHERE {condition}"),
        vec![value],
        view,
    )
    .await
}

/// The topup `id`, whoever owns it (authorization is the caller's).
pub async fn find<C: ConnectionTrait>(conn: &C, id: Uuid) -> DomainResult<Option<TopupView>> {
    one(conn, "id = $1", id.into()).await
}

/// The topup `id` if `viewer` may see it (its owner or an admin); `None`
/// otherwise, so others cannot learn it exists.
pub async fn find_for<C: ConnectionTrait>(
    conn: &C,
    viewer: &Viewer,
    id: Uuid,
) -> DomainResult<Option<TopupView>> {
    Ok(find(conn, id)
        .await?
        .filter(|t| t.user_id == viewer.user_id || viewer.is_admin()))
}

/// The topup with `reference`, whoever owns it.
pub async fn find_by_reference<C: ConnectionTrait>(
    conn: &C,
    reference: &str,
) -> DomainResult<Option<TopupView>> {
    if !storable(reference) {
        return Ok(None);
    }
    one(conn, "reference = $1", reference.into()).await
}

/// False for a reference no topup can have, which Postgres would refuse
/// to compare (text cannot hold a NUL): it is unknown, not a failure of
/// ours that a provider would retry.
fn storable(reference: &str) -> bool {
    !reference.contains('\0')
}

/// The topup with `reference`, locked until `txn` ends.
pub(super) async fn lock_by_reference(
    txn: &DatabaseTransaction,
    reference: &str,
) -> DomainResult<Option<TopupView>> {
    if !storable(reference) {
        return Ok(None);
    }
    one(txn, "reference = $1 FOR UPDATE", reference.into()).await
}

pub(super) async fn mark_failed(
    txn: &DatabaseTransaction,
    id: Uuid,
    reason: &str,
) -> DomainResult<()> {
    txn.execute_raw(statement(
        "UPDATE ledger.topups SET status = 'FAILED', failure_reason = $2, completed_at = now() \
         WHERE id = $1 AND status = 'PENDING'",
        vec![id.into(), reason.into()],
    ))
    .await?;
    Ok(())
}

pub(super) async fn mark_succeeded(
    txn: &DatabaseTransaction,
    id: Uuid,
    fee: Amount,
    transfer_id: Uuid,
) -> DomainResult<()> {
    let updated = txn
        .execute_raw(statement(
            "UPDATE ledger.topups SET status = 'SUCCEEDED', fee = $2, transfer_id = $3, completed_at = now() \
             WHERE id = $1 AND status = 'PENDING'",
            vec![id.into(), fee.minor().into(), transfer_id.into()],
        ))
        .await?;
    if updated.rows_affected() == 1 {
        Ok(())
    } else {
        Err(DomainError::Internal(anyhow::anyhow!(
            "topup {id} was not PENDING while locked"
        )))
    }
}
