//! An admin's changes to a merchant: approving, suspending, its service
//! rate (FLOWS.md §2).

use giftdrop_entities::giftcard::merchants;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};
use uuid::Uuid;

use super::{MerchantStatus, MerchantView, find, lock};
use crate::Services;
use crate::audit::{self, AuditRecord};
use crate::context::{RequestMeta, Viewer};
use crate::error::{DomainError, DomainResult};
use crate::identity::Role;
use crate::sql::{db_name, text_input};

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
    let update = merchants::Entity::update_many()
        .col_expr(merchants::Column::UpdatedAt, Expr::current_timestamp())
        .filter(merchants::Column::Id.eq(id));
    let (action, detail, update) = match &change {
        AdminChange::Approve => (
            "merchant.approve",
            None,
            update
                .col_expr(merchants::Column::Status, merchants::Status::Active.into())
                .col_expr(merchants::Column::StatusReason, Expr::null()),
        ),
        AdminChange::Suspend(reason) => {
            let reason = text_input(reason, "reason", 1, 500)?;
            (
                "merchant.suspend",
                Some(reason.clone()),
                update
                    .col_expr(
                        merchants::Column::Status,
                        merchants::Status::Suspended.into(),
                    )
                    .col_expr(merchants::Column::StatusReason, reason.into()),
            )
        }
        AdminChange::ServiceRate(rate) => {
            if !(0..=10_000).contains(rate) {
                return Err(DomainError::bad_input("bps", "must be between 0 and 10000"));
            }
            (
                "merchant.service_rate",
                Some(format!("{rate} bps")),
                update.col_expr(merchants::Column::ServiceRateBps, (*rate).into()),
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
    update.exec(&txn).await?;
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
