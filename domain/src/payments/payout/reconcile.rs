//! Settling payouts left PENDING (FLOWS.md §3): the process that reserved
//! one died, or could not record the provider's answer, so the provider is
//! asked what became of its transfer.

use giftdrop_entities::ledger::payouts;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::{Pending, TransferOutcome, amount, record, reference_of};
use crate::Services;
use crate::audit::{self, AuditRecord};
use crate::context::RequestMeta;
use crate::error::DomainResult;

/// Settles payouts left PENDING for longer than `age` (the process that
/// made them died, or could not record the provider's answer), at most
/// `batch` of them; returns how many. The provider is asked what became of
/// each reference: accepted settles the reservation, declined or unknown to
/// it returns the money to the wallet; no answer waits for the next pass.
/// One payout that cannot be settled now never holds up the others.
pub async fn reconcile_stale(
    s: &Services,
    age: std::time::Duration,
    batch: u32,
) -> DomainResult<u64> {
    let rows: Vec<(Uuid, Uuid, i64, String)> = payouts::Entity::find()
        .select_only()
        .columns([
            payouts::Column::Id,
            payouts::Column::AccountId,
            payouts::Column::Amount,
            payouts::Column::Destination,
        ])
        .filter(payouts::Column::Status.eq(payouts::Status::Pending))
        .filter(Expr::col((payouts::Entity, payouts::Column::CreatedAt)).lt(
            Expr::cust_with_values("now() - make_interval(secs => $1)", [age.as_secs_f64()]),
        ))
        .order_by_asc(payouts::Column::CreatedAt)
        .limit(u64::from(batch))
        .into_tuple()
        .all(&s.db)
        .await?;
    let mut settled = 0;
    for (id, account_id, minor, destination) in rows {
        let payout = Pending::new(id, account_id, amount(minor)?, destination);
        if s.payments.ready().is_err() {
            break;
        }
        match reconcile_one(s, &payout).await {
            Ok(true) => settled += 1,
            Ok(false) => {}
            Err(err) => {
                tracing::error!(error = ?err, payout = %payout.id, "cannot settle a stale payout yet");
            }
        }
    }
    Ok(settled)
}

/// Settles one stale payout from the provider's answer; false when the
/// provider could not say (the next pass asks again) or another process
/// settled it first.
async fn reconcile_one(s: &Services, payout: &Pending) -> DomainResult<bool> {
    let reference = reference_of(payout.id);
    let status = s
        .payments
        .call(s.payments.provider.transfer_status(&reference))
        .await;
    let answer = match status {
        Ok(Some(answer)) => answer,
        Ok(None) => TransferOutcome::Declined("the provider never received the transfer".into()),
        Err(err) => {
            tracing::warn!(error = %err, payout = %payout.id, "cannot reconcile a stale payout yet");
            return Ok(false);
        }
    };
    let meta = RequestMeta::system();
    let accepted = answer == TransferOutcome::Accepted;
    let (txn, posted) = record(s, &meta, payout, answer).await?;
    let Some(posted) = posted else {
        return Ok(false);
    };
    audit::record(
        &txn,
        &meta,
        AuditRecord {
            actor: None,
            action: "payout.reconcile",
            subject: format!("payout:{}", payout.id),
            detail: Some(
                if accepted {
                    "accepted by the provider"
                } else {
                    "failed"
                }
                .to_owned(),
            ),
        },
    )
    .await?;
    txn.commit().await?;
    posted.committed(s);
    Ok(true)
}
