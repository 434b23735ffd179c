//! The final transitions of an escrow: RESERVED -> SETTLED and RESERVED ->
//! RELEASED, exactly once, each with its ledger transfer (module docs of
//! [`super`]).

use giftdrop_entities::giftcard::escrows;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect, UpdateMany,
};
use uuid::Uuid;

use super::{EscrowStatus, EscrowView, all};
use crate::context::RequestMeta;
use crate::error::{DomainError, DomainResult};
use crate::ledger::{self, Account, EntryKind, Leg, PlatformAccount, Posted, Transfer};
use crate::money::{Amount, Settlement};
use crate::sql::{bug, db_name};

/// Locks the escrow and checks it is still RESERVED.
async fn lock_reserved(txn: &DatabaseTransaction, id: Uuid) -> DomainResult<EscrowView> {
    let escrow: EscrowView = escrows::Entity::find_by_id(id)
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or(DomainError::NotFound)?
        .try_into()?;
    if escrow.status != EscrowStatus::Reserved {
        return Err(DomainError::Conflict(format!(
            "the escrow is already {}",
            db_name(&escrow.status)
        )));
    }
    Ok(escrow)
}

/// A posted final transition.
#[derive(Debug)]
#[must_use = "call `posted.committed` after the transaction commits"]
pub struct Transition {
    /// The escrow as it is now.
    pub escrow: EscrowView,
    /// The ledger transfer (announce after commit).
    pub posted: Posted,
}

/// RESERVED -> SETTLED: the merchant's wallet gets `merchantPayout`, the
/// platform-fees account `serviceFee`, and the deposit fee returns to the
/// provider-fees account; one balanced transfer, at the rates the escrow
/// kept when it was reserved (`configured_deposit_fee_bps` only for an
/// escrow older than kept deposit rates). `Conflict` if final.
pub async fn settle(
    txn: &DatabaseTransaction,
    meta: &RequestMeta,
    id: Uuid,
    configured_deposit_fee_bps: u32,
) -> DomainResult<Transition> {
    let escrow = lock_reserved(txn, id).await?;
    let split = Settlement::of(
        escrow.amount,
        escrow.deposit_fee_bps.unwrap_or(configured_deposit_fee_bps),
        escrow.service_rate_bps,
    );
    let merchant_wallet =
        ledger::wallet_of(txn, ledger::WalletOwner::Merchant(escrow.merchant_id)).await?;
    let mut legs = vec![Leg::debit(
        Account::Platform(PlatformAccount::EscrowHolding),
        escrow.amount,
    )];
    for (account, part) in [
        (Account::Wallet(merchant_wallet.id), split.merchant_payout),
        (
            Account::Platform(PlatformAccount::PlatformFees),
            split.service_fee,
        ),
        (
            Account::Platform(PlatformAccount::ProviderFees),
            split.deposit_fee,
        ),
    ] {
        if !part.is_zero() {
            legs.push(Leg::credit(account, part));
        }
    }
    let reference = id.to_string();
    let posted = ledger::post(
        txn,
        meta,
        Transfer {
            kind: EntryKind::Settlement,
            reference: &reference,
            legs,
        },
    )
    .await?;
    let escrow = finish(
        txn,
        escrows::Entity::update_many()
            .col_expr(escrows::Column::Status, escrows::Status::Settled.into())
            .col_expr(escrows::Column::SettledAt, Expr::current_timestamp())
            .col_expr(
                escrows::Column::DepositFee,
                split.deposit_fee.minor().into(),
            )
            .col_expr(
                escrows::Column::ServiceFee,
                split.service_fee.minor().into(),
            )
            .col_expr(
                escrows::Column::MerchantPayout,
                split.merchant_payout.minor().into(),
            )
            .col_expr(escrows::Column::FinalTransferId, posted.transfer_id.into())
            .filter(escrows::Column::Id.eq(id)),
    )
    .await?;
    metrics::counter!("giftdrop_escrow_transitions_total", "to" => "SETTLED").increment(1);
    Ok(Transition { escrow, posted })
}

/// RESERVED -> RELEASED: the full amount returns to the funder's wallet
/// (EVENT_REFUND or CARD_REFUND). `Conflict` if final.
pub async fn release(
    txn: &DatabaseTransaction,
    meta: &RequestMeta,
    id: Uuid,
    reason: &str,
) -> DomainResult<Transition> {
    let escrow = lock_reserved(txn, id).await?;
    let reference = id.to_string();
    let posted = ledger::post(
        txn,
        meta,
        Transfer {
            kind: escrow.source.refund_kind(),
            reference: &reference,
            legs: vec![
                Leg::debit(
                    Account::Platform(PlatformAccount::EscrowHolding),
                    escrow.amount,
                ),
                Leg::credit(Account::Wallet(escrow.funder_account_id), escrow.amount),
            ],
        },
    )
    .await?;
    let escrow = finish(
        txn,
        released(reason, posted.transfer_id).filter(escrows::Column::Id.eq(id)),
    )
    .await?;
    metrics::counter!("giftdrop_escrow_transitions_total", "to" => "RELEASED").increment(1);
    Ok(Transition { escrow, posted })
}

/// RESERVED -> RELEASED for every escrow of `ids` still RESERVED (the
/// others are left alone), refunding their one funder in ONE transfer with
/// `reference`. `None` if none was RESERVED. Every escrow of `ids` must
/// share one funder's wallet and one source (an event's prize units do).
pub async fn release_all(
    txn: &DatabaseTransaction,
    meta: &RequestMeta,
    ids: &[Uuid],
    reference: &str,
    reason: &str,
) -> DomainResult<Option<(Vec<Uuid>, Posted)>> {
    let locked = all(
        txn,
        escrows::Entity::find()
            .filter(escrows::Column::Id.eq_any(ids.iter().copied()))
            .filter(escrows::Column::Status.eq(escrows::Status::Reserved))
            .order_by_asc(escrows::Column::Id)
            .lock_exclusive(),
    )
    .await?;
    let Some(first) = locked.first() else {
        return Ok(None);
    };
    if locked
        .iter()
        .any(|e| e.funder_account_id != first.funder_account_id || e.source != first.source)
    {
        return Err(bug("escrows of several funders released as one"));
    }
    let total = Amount::checked_sum(locked.iter().map(|e| e.amount))
        .ok_or_else(|| bug("released escrows overflow"))?;
    let posted = ledger::post(
        txn,
        meta,
        Transfer {
            kind: first.source.refund_kind(),
            reference,
            legs: vec![
                Leg::debit(Account::Platform(PlatformAccount::EscrowHolding), total),
                Leg::credit(Account::Wallet(first.funder_account_id), total),
            ],
        },
    )
    .await?;
    let released_ids: Vec<Uuid> = locked.iter().map(|e| e.id).collect();
    released(reason, posted.transfer_id)
        .filter(escrows::Column::Id.eq_any(released_ids.iter().copied()))
        .filter(escrows::Column::Status.eq(escrows::Status::Reserved))
        .exec(txn)
        .await?;
    metrics::counter!("giftdrop_escrow_transitions_total", "to" => "RELEASED")
        .increment(released_ids.len() as u64);
    Ok(Some((released_ids, posted)))
}

/// The update of escrows to RELEASED by transfer `transfer_id`, for
/// `reason` (filtered by the caller).
fn released(reason: &str, transfer_id: Uuid) -> UpdateMany<escrows::Entity> {
    escrows::Entity::update_many()
        .col_expr(escrows::Column::Status, escrows::Status::Released.into())
        .col_expr(escrows::Column::ReleasedAt, Expr::current_timestamp())
        .col_expr(escrows::Column::ReleaseReason, reason.into())
        .col_expr(escrows::Column::FinalTransferId, transfer_id.into())
}

/// Runs `update` of the one escrow the caller locked RESERVED; the escrow
/// as it is now.
async fn finish(
    txn: &DatabaseTransaction,
    update: UpdateMany<escrows::Entity>,
) -> DomainResult<EscrowView> {
    update
        .filter(escrows::Column::Status.eq(escrows::Status::Reserved))
        .exec_with_returning(txn)
        .await?
        .pop()
        .ok_or_else(|| bug("a locked RESERVED escrow changed"))?
        .try_into()
}
