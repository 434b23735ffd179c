//! Merchants, their branches and staff (FLOWS.md §2, §4).
//!
//! A merchant is PENDING until an admin approves it. Staff act only for
//! their own merchants; a PENDING or SUSPENDED merchant cannot sell or
//! redeem. A PENDING merchant is visible only to its staff and admins.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, QueryResult, TransactionTrait};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Services;
use crate::audit::{self, AuditRecord};
use crate::context::{RequestMeta, Viewer};
use crate::error::{DomainError, DomainResult};
use crate::identity::{self, Email, Role, staff::Reach};
use crate::sql::{
    bps, by_id, by_ids, db_name, enum_col, fetch_all, fetch_one, statement, text_input,
};

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

/// `registerMerchant`: a PENDING merchant at the platform's default service
/// rate; the caller becomes its staff and gains MERCHANT.
pub async fn register(
    s: &Services,
    meta: &RequestMeta,
    viewer: &Viewer,
    name: &str,
    payout_account: &str,
) -> DomainResult<MerchantView> {
    let name = text_input(name, "input.name", 1, 200)?;
    let payout_account = text_input(payout_account, "input.payoutAccount", 1, 200)?;
    let id = Uuid::now_v7();
    let txn = s.db.begin().await?;
    let row = txn
        .query_one_raw(statement(
            &format!(
                "INSERT INTO giftcard.merchants (id, name, service_rate_bps, payout_account, created_by) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
            ),
            vec![
                id.into(),
                name.into(),
                i32::try_from(s.settings.service_rate_bps.min(10_000))
                    .unwrap_or(0)
                    .into(),
                payout_account.into(),
                viewer.user_id.into(),
            ],
        ))
        .await?
        .ok_or_else(|| crate::sql::bug("INSERT RETURNING gave no row"))?;
    identity::staff::add(&txn, meta, id, viewer.user_id, viewer.user_id).await?;
    audit::record(
        &txn,
        meta,
        AuditRecord {
            actor: Some(viewer.user_id),
            action: "merchant.register",
            subject: format!("merchant:{id}"),
            detail: None,
        },
    )
    .await?;
    let merchant = view(&row)?;
    txn.commit().await?;
    s.outbox.wake();
    Ok(merchant)
}

/// `addBranch`: staff of the merchant, or an admin.
pub async fn add_branch(
    s: &Services,
    meta: &RequestMeta,
    viewer: &Viewer,
    merchant_id: Uuid,
    name: &str,
    address: &str,
) -> DomainResult<BranchView> {
    let name = text_input(name, "input.name", 1, 200)?;
    let address = text_input(address, "input.address", 1, 500)?;
    let reach = Reach::of(&s.db, Some(viewer)).await?;
    managed(&s.db, &reach, merchant_id).await?;
    let txn = s.db.begin().await?;
    let row = txn
        .query_one_raw(statement(
            "INSERT INTO giftcard.branches (id, merchant_id, name, address) VALUES ($1, $2, $3, $4) \
             RETURNING id, merchant_id, name, address",
            vec![
                Uuid::now_v7().into(),
                merchant_id.into(),
                name.into(),
                address.into(),
            ],
        ))
        .await?
        .ok_or_else(|| crate::sql::bug("INSERT RETURNING gave no row"))?;
    let branch = branch_view(&row)?;
    audit::record(
        &txn,
        meta,
        AuditRecord {
            actor: Some(viewer.user_id),
            action: "merchant.branch.add",
            subject: format!("merchant:{merchant_id}"),
            detail: Some(format!("branch {}", branch.id)),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(branch)
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

/// `addMerchantStaff`: staff of the merchant or an admin adds an existing
/// user by email. Unknown email: `NotFound`; already staff: `Conflict`.
pub async fn add_staff(
    s: &Services,
    meta: &RequestMeta,
    viewer: &Viewer,
    merchant_id: Uuid,
    email: &str,
) -> DomainResult<MerchantView> {
    let email = Email::parse(email, "email")?;
    let reach = Reach::of(&s.db, Some(viewer)).await?;
    let merchant = managed(&s.db, &reach, merchant_id).await?;
    let user = identity::find_by_email(&s.db, &email)
        .await?
        .ok_or(DomainError::NotFound)?;
    let txn = s.db.begin().await?;
    if !identity::staff::add(&txn, meta, merchant_id, user.id, viewer.user_id).await? {
        return Err(DomainError::Conflict(
            "this user is already staff of the merchant".into(),
        ));
    }
    audit::record(
        &txn,
        meta,
        AuditRecord {
            actor: Some(viewer.user_id),
            action: "merchant.staff.add",
            subject: format!("merchant:{merchant_id}"),
            detail: Some(format!("user {}", user.id)),
        },
    )
    .await?;
    txn.commit().await?;
    s.outbox.wake();
    Ok(merchant)
}

/// An admin's change to a merchant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminChange {
    /// PENDING or SUSPENDED -> ACTIVE.
    Approve,
    /// PENDING or ACTIVE -> SUSPENDED, with the reason.
    Suspend(String),
    /// A new service rate for future escrows, in basis points.
    ServiceRate(i32),
}

/// `approveMerchant`, `suspendMerchant`, `setMerchantServiceRate`: admin
/// only, audited. A transition from the state it would reach is `Conflict`.
pub async fn change_as_admin(
    s: &Services,
    meta: &RequestMeta,
    admin: &Viewer,
    id: Uuid,
    change: AdminChange,
) -> DomainResult<MerchantView> {
    admin.require(Role::Admin)?;
    let (action, detail, sql, values): (_, _, &str, Vec<sea_orm::Value>) = match &change {
        AdminChange::Approve => (
            "merchant.approve",
            None,
            "UPDATE giftcard.merchants SET status = 'ACTIVE', status_reason = NULL, updated_at = now() WHERE id = $1",
            vec![id.into()],
        ),
        AdminChange::Suspend(reason) => {
            let reason = text_input(reason, "reason", 1, 500)?;
            (
                "merchant.suspend",
                Some(reason.clone()),
                "UPDATE giftcard.merchants SET status = 'SUSPENDED', status_reason = $2, updated_at = now() WHERE id = $1",
                vec![id.into(), reason.into()],
            )
        }
        AdminChange::ServiceRate(rate) => {
            if !(0..=10_000).contains(rate) {
                return Err(DomainError::bad_input("bps", "must be between 0 and 10000"));
            }
            (
                "merchant.service_rate",
                Some(format!("{rate} bps")),
                "UPDATE giftcard.merchants SET service_rate_bps = $2, updated_at = now() WHERE id = $1",
                vec![id.into(), (*rate).into()],
            )
        }
    };
    let txn = s.db.begin().await?;
    let current = lock(&txn, id).await?;
    let conflict = match change {
        AdminChange::Approve => current.status == MerchantStatus::Active,
        AdminChange::Suspend(_) => current.status == MerchantStatus::Suspended,
        AdminChange::ServiceRate(_) => false,
    };
    if conflict {
        return Err(DomainError::Conflict(format!(
            "the merchant is already {}",
            db_name(&current.status)
        )));
    }
    txn.execute_raw(statement(sql, values)).await?;
    audit::record(
        &txn,
        meta,
        AuditRecord {
            actor: Some(admin.user_id),
            action,
            subject: format!("merchant:{id}"),
            detail,
        },
    )
    .await?;
    let merchant = find(&txn, id).await?.ok_or(DomainError::NotFound)?;
    txn.commit().await?;
    Ok(merchant)
}
