//! A payout as it is read: its status and view.

use chrono::{DateTime, Utc};
use giftdrop_entities::ledger::payouts;
use sea_orm::{ConnectionTrait, DerivePartialModel, EntityTrait};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{DomainError, DomainResult};
use crate::identity::staff::Reach;
use crate::money::Amount;
use crate::sql::bug;

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

impl From<payouts::Status> for PayoutStatus {
    fn from(status: payouts::Status) -> Self {
        match status {
            payouts::Status::Pending => Self::Pending,
            payouts::Status::Succeeded => Self::Succeeded,
            payouts::Status::Failed => Self::Failed,
        }
    }
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

/// The columns of `ledger.payouts` a [`PayoutView`] shows.
#[derive(DerivePartialModel)]
#[sea_orm(entity = "payouts::Entity")]
struct PayoutRow {
    id: Uuid,
    merchant_id: Uuid,
    amount: i64,
    status: payouts::Status,
    reference: String,
    failure_reason: Option<String>,
    destination: String,
    created_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
}

/// A stored amount, never negative.
pub(super) fn amount(minor: i64) -> DomainResult<Amount> {
    Amount::new(minor).map_err(|_| bug("a negative payout amount"))
}

impl TryFrom<PayoutRow> for PayoutView {
    type Error = DomainError;

    fn try_from(row: PayoutRow) -> DomainResult<Self> {
        Ok(Self {
            id: row.id,
            merchant_id: row.merchant_id,
            amount: amount(row.amount)?,
            status: row.status.into(),
            reference: row.reference,
            failure_reason: row.failure_reason,
            destination: row.destination,
            created_at: row.created_at,
            completed_at: row.completed_at,
        })
    }
}

/// The payout `id`, whoever asks.
pub async fn find<C: ConnectionTrait>(conn: &C, id: Uuid) -> DomainResult<Option<PayoutView>> {
    payouts::Entity::find_by_id(id)
        .into_partial_model::<PayoutRow>()
        .one(conn)
        .await?
        .map(PayoutView::try_from)
        .transpose()
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
