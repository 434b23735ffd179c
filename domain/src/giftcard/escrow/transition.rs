//! The final transitions of an escrow: RESERVED -> SETTLED and RESERVED ->
//! RELEASED, exactly once, each with its ledger transfer (module docs of
//! [`super`]).

use sea_orm::{ConnectionTrait, DatabaseTransaction};
use uuid::Uuid;

use super::{COLUMNS, EscrowStatus, EscrowView, view};
use crate::context::RequestMeta;
use crate::error::{DomainError, DomainResult};
use crate::ledger::{self, Account, EntryKind, Leg, PlatformAccount, Posted, Transfer};
use crate::money::{Amount, Settlement};
use crate::sql::{bug, db_name, statement};

/// Locks the escrow and checks it is still RESERVED.
async fn lock_reserved(txn: &DatabaseTransaction, id: Uuid) -> DomainResult<EscrowView> {
    let row = txn
        .query_one_raw(statement(
            &format!("SELECT {COLUMNS} FROM giftcard.escrows WHERE id = $1 FOR UPDATE"),
            vec![id.into()],
        ))
        .await?
        .ok_or(DomainError::NotFound)?;
    let escrow = view(&row)?;
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
    let row = txn
        .query_one_raw(statement(
            &format!(
                "UPDATE giftcard.escrows SET status = 'SETTLED', settled_at = now(), deposit_fee = $2, \
                 service_fee = $3, merchant_payout = $4, final_transfer_id = $5 \
                 WHERE id = $1 AND status = 'RESERVED' RETURNING {COLUMNS}"
            ),
            vec![
                id.into(),
                split.deposit_fee.minor().into(),
                split.service_fee.minor().into(),
                split.merchant_payout.minor().into(),
                posted.transfer_id.into(),
            ],
        ))
        .await?
        .ok_or_else(|| bug("a locked RESERVED escrow changed"))?;
    metrics::counter!("giftdrop_escrow_transitions_total", "to" => "SETTLED").increment(1);
    Ok(Transition {
        escrow: view(&row)?,
        posted,
    })
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
    let row = txn
        .query_one_raw(statement(
            &format!(
                "UPDATE giftcard.escrows SET status = 'RELEASED', released_at = now(), release_reason = $2, \
                 final_transfer_id = $3 WHERE id = $1 AND status = 'RESERVED' RETURNING {COLUMNS}"
            ),
            vec![id.into(), reason.into(), posted.transfer_id.into()],
        ))
        .await?
        .ok_or_else(|| bug("a locked RESERVED escrow changed"))?;
    metrics::counter!("giftdrop_escrow_transitions_total", "to" => "RELEASED").increment(1);
    Ok(Transition {
        escrow: view(&row)?,
        posted,
    })
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
    let rows = txn
        .query_all_raw(statement(
            &format!(
                "SELECT {COLUMNS} FROM giftcard.escrows WHERE id = ANY($1) AND status = 'RESERVED' \
                 ORDER BY id FOR UPDATE"
            ),
            vec![ids.to_vec().into()],
        ))
        .await?;
    let escrows = rows.iter().map(view).collect::<DomainResult<Vec<_>>>()?;
    let Some(first) = escrows.first() else {
        return Ok(None);
    };
    if escrows
        .iter()
        .any(|e| e.funder_account_id != first.funder_account_id || e.source != first.source)
    {
        return Err(bug("escrows of several funders released as one"));
    }
    let total = Amount::checked_sum(escrows.iter().map(|e| e.amount))
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
    let released: Vec<Uuid> = escrows.iter().map(|e| e.id).collect();
    txn.execute_raw(statement(
        "UPDATE giftcard.escrows SET status = 'RELEASED', released_at = now(), release_reason = $2, \
         final_transfer_id = $3 WHERE id = ANY($1) AND status = 'RESERVED'",
        vec![
            released.clone().into(),
            reason.into(),
            posted.transfer_id.into(),
        ],
    ))
    .await?;
    metrics::counter!("giftdrop_escrow_transitions_total", "to" => "RELEASED")
        .increment(released.len() as u64);
    Ok(Some((released, posted)))
}
