//! Merchants, their branches and staff (FLOWS.md §2, §4).
//!
//! A merchant is PENDING until an admin approves it. Staff act only for
//! their own merchants; a PENDING or SUSPENDED merchant cannot sell or
//! redeem. A PENDING merchant is visible only to its staff and admins.

use chrono::{DateTime, Utc};
use giftdrop_entities::giftcard::{branches, merchants};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DerivePartialModel, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Select,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{DomainError, DomainResult};
use crate::identity::staff::Reach;
use crate::sql::{self, bug};

mod admin;
mod manage;

pub use admin::{AdminChange, change_as_admin};
pub use manage::{add_branch, add_staff, register};

/// `MerchantStatus` of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MerchantStatus {
    /// Waiting for an admin's approval.
    Pending,
    /// Selling and redeeming.
    Active,
    /// Stopped by an admin; existing escrows stay as they are.
    Suspended,
}

/// A merchant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerchantView {
    /// Merchant id.
    pub id: Uuid,
    /// Trading name.
    pub name: String,
    /// Where it stands.
    pub status: MerchantStatus,
    /// Service rate applied to new escrows, in basis points.
    pub service_rate_bps: u32,
    /// Where payouts go (the provider's name for a bank account).
    pub payout_account: String,
    /// When it registered.
    pub created_at: DateTime<Utc>,
}

impl MerchantView {
    /// True when `reach` may see this merchant at all.
    pub fn visible_to(&self, reach: &Reach) -> bool {
        self.status != MerchantStatus::Pending || reach.manages(self.id)
    }
}

/// A branch, where cards are redeemed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, DerivePartialModel)]
#[sea_orm(entity = "branches::Entity")]
pub struct BranchView {
    /// Branch id.
    pub id: Uuid,
    /// Its merchant.
    pub merchant_id: Uuid,
    /// Branch name.
    pub name: String,
    /// Street address.
    pub address: String,
}

impl From<merchants::Status> for MerchantStatus {
    fn from(status: merchants::Status) -> Self {
        match status {
            merchants::Status::Pending => Self::Pending,
            merchants::Status::Active => Self::Active,
            merchants::Status::Suspended => Self::Suspended,
        }
    }
}

impl From<MerchantStatus> for merchants::Status {
    fn from(status: MerchantStatus) -> Self {
        match status {
            MerchantStatus::Pending => Self::Pending,
            MerchantStatus::Active => Self::Active,
            MerchantStatus::Suspended => Self::Suspended,
        }
    }
}

impl TryFrom<merchants::Model> for MerchantView {
    type Error = DomainError;

    fn try_from(row: merchants::Model) -> DomainResult<Self> {
        Ok(Self {
            id: row.id,
            name: row.name,
            status: row.status.into(),
            service_rate_bps: u32::try_from(row.service_rate_bps)
                .map_err(|_| bug("a negative service_rate_bps"))?,
            payout_account: row.payout_account,
            created_at: row.created_at,
        })
    }
}

/// The one merchant `query` selects, if any.
async fn one<C: ConnectionTrait>(
    conn: &C,
    query: Select<merchants::Entity>,
) -> DomainResult<Option<MerchantView>> {
    sql::one_as(conn, query.into_model::<merchants::Model>()).await
}

/// Every merchant `query` selects.
async fn all<C: ConnectionTrait>(
    conn: &C,
    query: Select<merchants::Entity>,
) -> DomainResult<Vec<MerchantView>> {
    sql::all_as(conn, query.into_model::<merchants::Model>()).await
}

/// The merchant `id`, whoever asks (authorization is the caller's).
pub async fn find<C: ConnectionTrait>(conn: &C, id: Uuid) -> DomainResult<Option<MerchantView>> {
    one(conn, merchants::Entity::find_by_id(id)).await
}

/// The merchants with these ids (unknown ids are skipped), in one query.
pub async fn find_many<C: ConnectionTrait>(
    conn: &C,
    ids: &[Uuid],
) -> DomainResult<Vec<MerchantView>> {
    let query = merchants::Entity::find().filter(merchants::Column::Id.eq_any(ids.iter().copied()));
    all(conn, query).await
}

/// The merchant `id`, locked until the transaction ends.
async fn lock<C: ConnectionTrait>(conn: &C, id: Uuid) -> DomainResult<MerchantView> {
    one(conn, merchants::Entity::find_by_id(id).lock_exclusive())
        .await?
        .ok_or(DomainError::NotFound)
}

/// The merchant `id` if `reach` may see it.
pub async fn find_visible<C: ConnectionTrait>(
    conn: &C,
    reach: &Reach,
    id: Uuid,
) -> DomainResult<Option<MerchantView>> {
    Ok(find(conn, id).await?.filter(|m| m.visible_to(reach)))
}

/// The merchant `id` if `reach` is its staff or an admin: `NotFound` if it
/// may not know the merchant, `Forbidden` if it only may not act for it.
pub async fn managed<C: ConnectionTrait>(
    conn: &C,
    reach: &Reach,
    id: Uuid,
) -> DomainResult<MerchantView> {
    let merchant = find_visible(conn, reach, id)
        .await?
        .ok_or(DomainError::NotFound)?;
    if reach.manages(id) {
        Ok(merchant)
    } else {
        Err(DomainError::Forbidden)
    }
}

/// A page of merchants `reach` may see, newest first, older than `before`.
/// Others see ACTIVE and SUSPENDED merchants and their own PENDING ones.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    reach: &Reach,
    status: Option<MerchantStatus>,
    before: Option<Uuid>,
    limit: u64,
) -> DomainResult<Vec<MerchantView>> {
    let visible = if reach.admin {
        Condition::all()
    } else {
        Condition::any()
            .add(merchants::Column::Status.ne(merchants::Status::Pending))
            .add(merchants::Column::Id.eq_any(reach.merchants.iter().copied()))
    };
    let query = merchants::Entity::find()
        .filter(visible)
        .apply_if(status, |query, status| {
            query.filter(merchants::Column::Status.eq(merchants::Status::from(status)))
        })
        .apply_if(before, |query, id| {
            query.filter(merchants::Column::Id.lt(id))
        })
        .order_by_desc(merchants::Column::Id)
        .limit(limit);
    all(conn, query).await
}

/// The branches of these merchants, oldest first, in one query.
pub async fn branches<C: ConnectionTrait>(
    conn: &C,
    merchant_ids: &[Uuid],
) -> DomainResult<Vec<BranchView>> {
    Ok(branches::Entity::find()
        .filter(branches::Column::MerchantId.eq_any(merchant_ids.iter().copied()))
        .order_by_asc(branches::Column::Id)
        .into_partial_model::<BranchView>()
        .all(conn)
        .await?)
}

/// The branch `id`, if any.
pub async fn find_branch<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
) -> DomainResult<Option<BranchView>> {
    Ok(branches::Entity::find_by_id(id)
        .into_partial_model::<BranchView>()
        .one(conn)
        .await?)
}
