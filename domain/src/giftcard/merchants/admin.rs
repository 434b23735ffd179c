//! An admin's changes to a merchant: approving, suspending, its service
//! rate (FLOWS.md §2).

use sea_orm::{ConnectionTrait, TransactionTrait};
use uuid::Uuid;

use super::{MerchantStatus, MerchantView, find, lock};
use crate::Services;
use crate::audit::{self, AuditRecord};
use crate::context::{RequestMeta, Viewer};
use crate::error::{DomainError, DomainResult};
use crate::identity::Role;
use crate::sql::{db_name, statement, text_input};

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
