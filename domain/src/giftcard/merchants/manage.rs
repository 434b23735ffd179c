//! What a merchant's staff do for it: registering it, its branches, its
//! staff (FLOWS.md §2, §4).

use giftdrop_entities::giftcard::{branches, merchants};
use sea_orm::{ActiveValue::Set, EntityTrait, TransactionTrait};
use uuid::Uuid;

use super::{BranchView, MerchantView, managed};
use crate::Services;
use crate::audit::{self, AuditRecord};
use crate::context::{RequestMeta, Viewer};
use crate::error::{DomainError, DomainResult};
use crate::identity::{self, Email, staff::Reach};
use crate::sql::text_input;

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
    let merchant: MerchantView = merchants::Entity::insert(merchants::ActiveModel {
        id: Set(id),
        name: Set(name),
        service_rate_bps: Set(i32::try_from(s.settings.service_rate_bps.min(10_000)).unwrap_or(0)),
        payout_account: Set(payout_account),
        created_by: Set(viewer.user_id),
        ..Default::default()
    })
    .exec_with_returning(&txn)
    .await?
    .try_into()?;
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
    let branch = BranchView {
        id: Uuid::now_v7(),
        merchant_id,
        name,
        address,
    };
    branches::Entity::insert(branches::ActiveModel {
        id: Set(branch.id),
        merchant_id: Set(branch.merchant_id),
        name: Set(branch.name.clone()),
        address: Set(branch.address.clone()),
        ..Default::default()
    })
    .exec_without_returning(&txn)
    .await?;
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
