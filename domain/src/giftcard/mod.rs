//! The gift-card marketplace (FLOWS.md §3, §4): merchants and branches,
//! card products, cards, the escrows behind them, redemption at the till,
//! and releasing escrows (by an admin, or when cards expire).

pub mod cards;
pub mod escrow;
pub mod merchants;
pub mod pin;
pub mod products;
pub mod purchase;
pub mod redeem;

use sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionTrait};
use uuid::Uuid;

use crate::Services;
use crate::audit::{self, AuditRecord};
use crate::context::{RequestMeta, Viewer};
use crate::error::{DomainError, DomainResult};
use crate::identity::Role;
use crate::sql::{db_name, statement, text_input};
use cards::CardStatus;
use escrow::{EscrowView, Transition};

/// Releases escrow `id` to its funder and moves its ACTIVE card (if one was
/// issued) to `card_status`, inside the caller's transaction.
///
/// Lock order, shared by every path that touches both: the card row
/// first, then the escrow row (a redemption locks the card it looked up by
/// code, then settles its escrow). The opposite order deadlocks against a
/// concurrent redemption.
async fn release_with_card(
    txn: &DatabaseTransaction,
    meta: &RequestMeta,
    id: Uuid,
    reason: &str,
    card_status: CardStatus,
) -> DomainResult<Transition> {
    txn.execute_raw(statement(
        "SELECT 1 FROM giftcard.cards WHERE escrow_id = $1 FOR UPDATE",
        vec![id.into()],
    ))
    .await?;
    let released = escrow::release(txn, meta, id, reason).await?;
    txn.execute_raw(statement(
        "UPDATE giftcard.cards SET status = $2 WHERE escrow_id = $1 AND status = 'ACTIVE'",
        vec![id.into(), db_name(&card_status).into()],
    ))
    .await?;
    Ok(released)
}

/// `releaseEscrow` (admin): the full amount back to the funder, the card
/// (if any) VOID, audited. A final escrow is `Conflict`.
pub async fn release_as_admin(
    s: &Services,
    meta: &RequestMeta,
    admin: &Viewer,
    id: Uuid,
    reason: &str,
) -> DomainResult<EscrowView> {
    admin.require(Role::Admin)?;
    let reason = text_input(reason, "reason", 1, 500)?;
    let txn = s.db.begin().await?;
    let released = release_with_card(&txn, meta, id, &reason, CardStatus::Void).await?;
    audit::record(
        &txn,
        meta,
        AuditRecord {
            actor: Some(admin.user_id),
            action: "escrow.release",
            subject: format!("escrow:{id}"),
            detail: Some(reason),
        },
    )
    .await?;
    txn.commit().await?;
    released.posted.committed(s);
    Ok(released.escrow)
}

/// Expires ACTIVE cards past `expiresAt`, at most `batch` of them, and
/// releases their escrows to the funders; returns how many. One card per
/// transaction, locked with `SKIP LOCKED`: concurrent sweeps in several
/// workers, or a sweep re-run after a crash, never release twice.
pub async fn expire_due(s: &Services, batch: u32) -> DomainResult<u64> {
    let due =
        s.db.query_all_raw(statement(
            "SELECT id FROM giftcard.cards WHERE status = 'ACTIVE' AND expires_at <= now() \
             ORDER BY expires_at LIMIT $1",
            vec![i64::from(batch).into()],
        ))
        .await?;
    let mut expired = 0;
    for row in &due {
        let card_id: Uuid = row.try_get("", "id")?;
        let meta = RequestMeta::system();
        let txn = s.db.begin().await?;
        let locked = txn
            .query_one_raw(statement(
                "SELECT escrow_id FROM giftcard.cards WHERE id = $1 AND status = 'ACTIVE' \
                 AND expires_at <= now() FOR UPDATE SKIP LOCKED",
                vec![card_id.into()],
            ))
            .await?;
        let Some(locked) = locked else { continue };
        let escrow_id: Uuid = locked.try_get("", "escrow_id")?;
        let released = match release_with_card(
            &txn,
            &meta,
            escrow_id,
            "card expired",
            CardStatus::Expired,
        )
        .await
        {
            Ok(released) => released,
            Err(DomainError::Conflict(_)) => {
                // The escrow is already final (released by an admin
                // between the two reads): only the card is left.
                tracing::warn!(card = %card_id, escrow = %escrow_id, "expiring a card whose escrow is already final");
                txn.execute_raw(statement(
                        "UPDATE giftcard.cards SET status = 'EXPIRED' WHERE id = $1 AND status = 'ACTIVE'",
                        vec![card_id.into()],
                    ))
                    .await?;
                txn.commit().await?;
                continue;
            }
            Err(err) => return Err(err),
        };
        audit::record(
            &txn,
            &meta,
            AuditRecord {
                actor: None,
                action: "card.expire",
                subject: format!("card:{card_id}"),
                detail: Some(format!("escrow {escrow_id} released to the funder")),
            },
        )
        .await?;
        txn.commit().await?;
        released.posted.committed(s);
        expired += 1;
    }
    if expired > 0 {
        metrics::counter!("giftdrop_cards_expired_total").increment(expired);
    }
    Ok(expired)
}
