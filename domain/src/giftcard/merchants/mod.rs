//! Merchants, their branches and staff (FLOWS.md §2, §4).
//!
//! A merchant is PENDING until an admin approves it. Staff act only for
//! their own merchants; a PENDING or SUSPENDED merchant cannot sell or
//! redeem. A PENDING merchant is visible only to its staff and admins.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{DomainError, DomainResult};
use crate::identity::staff::Reach;
use crate::sql::{bps, by_id, by_ids, db_name, enum_col, fetch_all, fetch_one, statement};

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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

const COLUMNS: &str = "id, name, status, service_rate_bps, payout_account, created_at";

fn view(row: &QueryResult) -> DomainResult<MerchantView> {
    view_prefixed(row, "")
}

/// A merchant row whose columns are named `{prefix}id`, `{prefix}name`, …
/// (e.g. joined beside another table's columns).
pub(super) fn view_prefixed(row: &QueryResult, prefix: &str) -> DomainResult<MerchantView> {
    let column = |name: &str| format!("{prefix}{name}");
    Ok(MerchantView {
        id: row.try_get("", &column("id"))?,
        name: row.try_get("", &column("name"))?,
        status: enum_col(row, &column("status"))?,
        service_rate_bps: bps(row, &column("service_rate_bps"))?,
        payout_account: row.try_get("", &column("payout_account"))?,
        created_at: row.try_get("", &column("created_at"))?,
    })
}

fn branch_view(row: &QueryResult) -> DomainResult<BranchView> {
    Ok(BranchView {
        id: row.try_get("", "id")?,
        merchant_id: row.try_get("", "merchant_id")?,
        name: row.try_get("", "name")?,
        address: row.try_get("", "address")?,
    })
}

/// The merchant `id`, whoever asks (authorization is the caller's).
pub async fn find<C: ConnectionTrait>(conn: &C, id: Uuid) -> DomainResult<Option<MerchantView>> {
    by_id(conn, "giftcard.merchants", COLUMNS, id, view).await
}

/// The merchants with these ids (unknown ids are skipped), in one query.
pub async fn find_many<C: ConnectionTrait>(
    conn: &C,
    ids: &[Uuid],
) -> DomainResult<Vec<MerchantView>> {
    by_ids(conn, "giftcard.merchants", COLUMNS, ids, view).await
}

/// The merchant `id`, locked until the transaction ends.
async fn lock<C: ConnectionTrait>(conn: &C, id: Uuid) -> DomainResult<MerchantView> {
    let row = conn
        .query_one_raw(statement(
            &format!("SELECT {COLUMNS} FROM giftcard.merchants WHERE id = $1 FOR UPDATE"),
            vec![id.into()],
        ))
        .await?
        .ok_or(DomainError::NotFound)?;
    view(&row)
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
    fetch_all(
        conn,
        &format!(
            "SELECT {COLUMNS} FROM giftcard.merchants \
                 WHERE ($1 OR status <> 'PENDING' OR id = ANY($2)) \
                   AND ($3::text IS NULL OR status = $3) AND ($4::uuid IS NULL OR id < $4) \
                 ORDER BY id DESC LIMIT $5"
        ),
        vec![
            reach.admin.into(),
            reach.merchants.clone().into(),
            status.map(|s| db_name(&s)).into(),
            before.into(),
            i64::try_from(limit).unwrap_or(i64::MAX).into(),
        ],
        view,
    )
    .await
}

/// The branches of these merchants, oldest first, in one query.
pub async fn branches<C: ConnectionTrait>(
    conn: &C,
    merchant_ids: &[Uuid],
) -> DomainResult<Vec<BranchView>> {
    fetch_all(
        conn,
        "SELECT id, merchant_id, name, address FROM giftcard.branches WHERE merchant_id = ANY($1) ORDER BY id",
        vec![merchant_ids.to_vec().into()],
        branch_view,
    )
    .await
}

/// The branch `id`, if any.
pub async fn find_branch<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
) -> DomainResult<Option<BranchView>> {
    fetch_one(
        conn,
        "SELECT id, merchant_id, name, address FROM giftcard.branches WHERE id = $1",
        vec![id.into()],
        branch_view,
    )
    .await
}
