//! Top-ups (FLOWS.md §3): `initiateTopup` creates a PENDING topup with a
//! unique reference and a checkout URL from the provider; the provider's
//! webhook ([`super::webhook`]) completes it.

use chrono::{DateTime, Utc};
use giftdrop_entities::ledger::topups;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DerivePartialModel,
    EntityTrait, QueryFilter, QuerySelect, Select, TransactionTrait,
};
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
use crate::sql;

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

impl From<topups::Status> for TopupStatus {
    fn from(status: topups::Status) -> Self {
        match status {
            topups::Status::Pending => Self::Pending,
            topups::Status::Succeeded => Self::Succeeded,
            topups::Status::Failed => Self::Failed,
        }
    }
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

/// The columns of `ledger.topups` a [`TopupView`] shows.
#[derive(DerivePartialModel)]
#[sea_orm(entity = "topups::Entity")]
struct TopupRow {
    id: Uuid,
    user_id: Uuid,
    account_id: Uuid,
    reference: String,
    amount: i64,
    fee: Option<i64>,
    status: topups::Status,
    checkout_url: String,
    created_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
}

impl TryFrom<TopupRow> for TopupView {
    type Error = DomainError;

    fn try_from(row: TopupRow) -> DomainResult<Self> {
        Ok(Self {
            id: row.id,
            user_id: row.user_id,
            account_id: row.account_id,
            reference: row.reference,
            amount: amount(row.amount)?,
            fee: row.fee.map(amount).transpose()?,
            status: row.status.into(),
            checkout_url: row.checkout_url,
            created_at: row.created_at,
            completed_at: row.completed_at,
        })
    }
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
        topups::Entity::insert(topups::ActiveModel {
            id: Set(id),
            user_id: Set(viewer.user_id),
            account_id: Set(wallet.id),
            reference: Set(reference),
            amount: Set(amount.minor()),
            checkout_url: Set(checkout.url),
            correlation_id: Set(meta.correlation_id.clone()),
            ..Default::default()
        })
        .exec_without_returning(&txn)
        .await?;
        metrics::counter!("giftdrop_topups_initiated_total").increment(1);
        Ok((txn, id))
    })
    .await?;
    find(&services.db, id)
        .await?
        .ok_or_else(|| DomainError::Internal(anyhow::anyhow!("an initiated topup vanished")))
}

/// The one topup `query` selects, if any.
async fn one<C: ConnectionTrait>(
    conn: &C,
    query: Select<topups::Entity>,
) -> DomainResult<Option<TopupView>> {
    sql::one_as(conn, query.into_partial_model::<TopupRow>()).await
}

/// The topup `id`, whoever owns it (authorization is the caller's).
pub async fn find<C: ConnectionTrait>(conn: &C, id: Uuid) -> DomainResult<Option<TopupView>> {
    one(conn, topups::Entity::find_by_id(id)).await
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
    one(conn, by_reference(reference)).await
}

fn by_reference(reference: &str) -> Select<topups::Entity> {
    topups::Entity::find().filter(topups::Column::Reference.eq(reference))
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
    one(txn, by_reference(reference).lock_exclusive()).await
}

pub(super) async fn mark_failed(
    txn: &DatabaseTransaction,
    id: Uuid,
    reason: &str,
) -> DomainResult<()> {
    topups::Entity::update_many()
        .col_expr(topups::Column::Status, topups::Status::Failed.into())
        .col_expr(topups::Column::FailureReason, reason.into())
        .col_expr(topups::Column::CompletedAt, Expr::current_timestamp())
        .filter(topups::Column::Id.eq(id))
        .filter(topups::Column::Status.eq(topups::Status::Pending))
        .exec(txn)
        .await?;
    Ok(())
}

pub(super) async fn mark_succeeded(
    txn: &DatabaseTransaction,
    id: Uuid,
    fee: Amount,
    transfer_id: Uuid,
) -> DomainResult<()> {
    let updated = topups::Entity::update_many()
        .col_expr(topups::Column::Status, topups::Status::Succeeded.into())
        .col_expr(topups::Column::Fee, fee.minor().into())
        .col_expr(topups::Column::TransferId, transfer_id.into())
        .col_expr(topups::Column::CompletedAt, Expr::current_timestamp())
        .filter(topups::Column::Id.eq(id))
        .filter(topups::Column::Status.eq(topups::Status::Pending))
        .exec(txn)
        .await?;
    if updated.rows_affected == 1 {
        Ok(())
    } else {
        Err(DomainError::Internal(anyhow::anyhow!(
            "topup {id} was not PENDING while locked"
        )))
    }
}
