//! Publishing (the prize pool into escrow, in one transaction), the
//! lifecycle on time (SCHEDULED -> LIVE -> ENDED), and cancelling.

use chrono::Utc;
use sea_orm::sea_query::InsertStatement;
use sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionTrait};
use uuid::Uuid;

use super::award;
use super::draft;
use super::events::{self, EventStatus, EventView, WinnerSelection};
use super::live;
use super::participants::{self, WinnerView};
use super::rules::START_GRACE;
use crate::Services;
use crate::audit::{self, AuditRecord};
use crate::context::{RequestMeta, Viewer};
use crate::error::{DomainError, DomainResult};
use crate::giftcard::escrow::{self, EscrowSource, Funding, NewEscrow};
use crate::giftcard::merchants::MerchantStatus;
use crate::giftcard::products;
use crate::idempotency::{self, Scope, Work};
use crate::ledger::{
    self, Account, EntryKind, Leg, PlatformAccount, Posted, Transfer, WalletOwner,
};
use crate::sql::{Batch, bug, db_name, statement, text_input};

const PUBLISH: &str = "publishEvent";

/// `publishEvent`: in ONE transaction, debits `totalCost` from the host's
/// wallet (EVENT_FUNDING), reserves one escrow per prize unit (EVENT_PRIZE,
/// each merchant's service rate snapshotted) and schedules the event; a
/// DRAW event gets its secret seed and public commitment. Once per key.
pub async fn publish(
    s: &Services,
    meta: &RequestMeta,
    viewer: &Viewer,
    id: Uuid,
    key: &str,
) -> DomainResult<EventView> {
    idempotency::validate_key(key, "idempotencyKey")?;
    let scope = Scope {
        caller: viewer.user_id,
        operation: PUBLISH,
        key,
    };
    let id = idempotency::run_posting(
        s,
        idempotency::Hold::Transaction,
        scope,
        &id,
        || async move {
            let txn = s.db.begin().await?;
            let event = draft::lock_own_draft(&txn, viewer, id).await?;
            if event.starts_at < Utc::now() - START_GRACE {
                return Err(DomainError::Conflict(
                    "the event's start has passed: move startsAt before publishing".into(),
                ));
            }
            let wallet = s
                .wallet_ids
                .of(&txn, WalletOwner::User(viewer.user_id))
                .await?;
            let reference = id.to_string();
            let funded = ledger::post(
                &txn,
                meta,
                Transfer {
                    kind: EntryKind::EventFunding,
                    reference: &reference,
                    legs: vec![
                        Leg::debit(Account::Wallet(wallet), event.total_cost),
                        Leg::credit(
                            Account::Platform(PlatformAccount::EscrowHolding),
                            event.total_cost,
                        ),
                    ],
                },
            )
            .await?;
            let funding = Funding {
                funder_id: event.host_id,
                funder_account_id: wallet,
                transfer_id: funded.transfer_id,
                event_id: Some(event.id),
                deposit_fee_bps: s.settings.deposit_fee_bps,
            };
            let mut closing = prize_pool(&txn, &event, funding).await?;
            let (seed, commitment) = match event.selection {
                WinnerSelection::Draw => {
                    let seed = super::draw::Seed::random();
                    (Some(seed.as_bytes().to_vec()), Some(seed.commitment()))
                }
                WinnerSelection::Instant => (None, None),
            };
            let scheduled = events::fetch_one_returning(
                &txn,
                "UPDATE giveaway.events SET status = 'SCHEDULED', published_at = now(), version = version + 1, \
                 funding_transfer_id = $2, draw_seed = $3, draw_commitment = $4 \
                 WHERE id = $1 AND status = 'DRAFT'",
                vec![
                    id.into(),
                    funded.transfer_id.into(),
                    seed.into(),
                    commitment.into(),
                ],
            )
            .await?;
            closing.push(live::changed(meta, &scheduled)?);
            closing.push(audit::statement(
                meta,
                AuditRecord {
                    actor: Some(viewer.user_id),
                    action: "event.publish",
                    subject: format!("event:{id}"),
                    detail: Some(format!(
                        "{} into escrow for {} prize units",
                        event.total_cost, event.prize_count
                    )),
                },
            ));
            Ok(Work {
                txn,
                value: id,
                posted: Some(funded),
                closing,
            })
        },
    )
    .await?;
    events::find(&s.db, id)
        .await?
        .ok_or_else(|| bug("a published event vanished"))
}

/// The escrows and prize units of `event`'s prizes, funded by `funding`,
/// as statements for the publishing transaction. Every prize must still be
/// on sale by an ACTIVE merchant (else CONFLICT).
async fn prize_pool(
    txn: &DatabaseTransaction,
    event: &EventView,
    funding: Funding,
) -> DomainResult<Batch> {
    let prizes = events::prizes_of(txn, &[event.id]).await?;
    let product_ids: Vec<Uuid> = prizes.iter().map(|p| p.card_product_id).collect();
    let products = products::find_many_with_merchants(txn, &product_ids).await?;
    let capacity = usize::try_from(event.prize_count).unwrap_or(0);
    let mut escrows = Vec::with_capacity(capacity);
    let (mut unit_ids, mut unit_prizes, mut unit_numbers) = (
        Vec::with_capacity(capacity),
        Vec::with_capacity(capacity),
        Vec::with_capacity(capacity),
    );
    for prize in &prizes {
        let Some((product, merchant)) =
            products.iter().find(|(p, _)| p.id == prize.card_product_id)
        else {
            return Err(bug("a prize's product vanished"));
        };
        if !product.active || merchant.status != MerchantStatus::Active {
            return Err(DomainError::Conflict(format!(
                "the product of prize {} is no longer on sale by an active merchant",
                prize.id
            )));
        }
        for unit in 1..=prize.quantity {
            escrows.push(NewEscrow {
                id: Uuid::now_v7(),
                source: EscrowSource::EventPrize,
                amount: prize.face_value,
                merchant_id: merchant.id,
                service_rate_bps: merchant.service_rate_bps,
            });
            unit_ids.push(Uuid::now_v7());
            unit_prizes.push(prize.id);
            unit_numbers.push(unit);
        }
    }
    let escrow_ids: Vec<Uuid> = escrows.iter().map(|e| e.id).collect();
    let mut pool = Batch::new();
    escrow::reserve_in(&mut pool, funding, &escrows);
    let [ids, prizes, numbers, escrow_ids, event_id] = pool.binds([
        unit_ids.into(),
        unit_prizes.into(),
        unit_numbers.into(),
        escrow_ids.into(),
        event.id.into(),
    ]);
    pool.sql(format!(
        "INSERT INTO giveaway.prize_units (id, event_id, prize_id, unit, escrow_id) \
         SELECT u.id, {event_id}, u.prize_id, u.unit, u.escrow_id \
         FROM unnest({ids}::uuid[], {prizes}::uuid[], {numbers}::integer[], {escrow_ids}::uuid[]) \
           AS u (id, prize_id, unit, escrow_id)"
    ));
    Ok(pool)
}

/// Releases the escrows of `event`'s units without a standing winner and
/// refunds the host (EVENT_REFUND) in one transfer; what it posted, if
/// anything was left.
async fn release_unawarded(
    txn: &DatabaseTransaction,
    meta: &RequestMeta,
    event: &EventView,
    reason: &str,
) -> DomainResult<Option<Posted>> {
    let rows = txn
        .query_all_raw(statement(
            "SELECT escrow_id FROM giveaway.prize_units WHERE event_id = $1 AND winner_id IS NULL FOR UPDATE",
            vec![event.id.into()],
        ))
        .await?;
    let ids = rows
        .iter()
        .map(|r| Ok(r.try_get("", "escrow_id")?))
        .collect::<DomainResult<Vec<Uuid>>>()?;
    if ids.is_empty() {
        return Ok(None);
    }
    let reference = event.id.to_string();
    Ok(escrow::release_all(txn, meta, &ids, &reference, reason)
        .await?
        .map(|(_, posted)| posted))
}

/// `cancelEvent`: the host while DRAFT, SCHEDULED or LIVE, an admin any
/// time before ENDED. Every unawarded prize unit's escrow is released and
/// the host refunded, in one transaction; cards already won stay valid.
pub async fn cancel(
    s: &Services,
    meta: &RequestMeta,
    viewer: &Viewer,
    id: Uuid,
    reason: &str,
) -> DomainResult<EventView> {
    let reason = text_input(reason, "reason", 1, 500)?;
    let txn = s.db.begin().await?;
    let event = events::lock(&txn, id)
        .await?
        .filter(|e| e.visible_to(Some(viewer)))
        .ok_or(DomainError::NotFound)?;
    if !event.managed_by(Some(viewer)) {
        return Err(DomainError::Forbidden);
    }
    if matches!(event.status, EventStatus::Ended | EventStatus::Cancelled) {
        return Err(DomainError::Conflict(format!(
            "the event is {}",
            db_name(&event.status)
        )));
    }
    let posted = release_unawarded(&txn, meta, &event, "event cancelled").await?;
    let cancelled = events::fetch_one_returning(
        &txn,
        "UPDATE giveaway.events SET status = 'CANCELLED', cancelled_at = now(), cancel_reason = $2, \
         version = version + 1 WHERE id = $1",
        vec![id.into(), reason.as_str().into()],
    )
    .await?;
    outbox_now(&txn, live::changed(meta, &cancelled)?).await?;
    audit::record(
        &txn,
        meta,
        AuditRecord {
            actor: Some(viewer.user_id),
            action: "event.cancel",
            subject: format!("event:{id}"),
            detail: Some(reason),
        },
    )
    .await?;
    txn.commit().await?;
    s.outbox.wake();
    if let Some(posted) = posted {
        posted.committed(s);
    }
    Ok(cancelled)
}

/// Runs one outbox statement in `txn`.
async fn outbox_now(txn: &DatabaseTransaction, statement: InsertStatement) -> DomainResult<()> {
    txn.execute(&statement).await?;
    Ok(())
}

/// Moves every event whose time has come: SCHEDULED -> LIVE at `startsAt`,
/// LIVE -> ENDED at `endsAt` (releasing the units nobody won). Each event
/// in its own transaction, guarded by its status, so a run repeated or
/// interrupted changes nothing twice. The events it moved.
pub async fn advance(s: &Services) -> DomainResult<Vec<EventView>> {
    let meta = RequestMeta::system();
    let txn = s.db.begin().await?;
    let mut moved = crate::sql::fetch_all(
        &txn,
        &format!(
            "UPDATE giveaway.events SET status = 'LIVE', version = version + 1 WHERE status = 'SCHEDULED' AND starts_at <= now() \
             RETURNING {}",
            events::COLUMNS
        ),
        vec![],
        events::view,
    )
    .await?;
    for event in &moved {
        outbox_now(&txn, live::changed(&meta, event)?).await?;
    }
    txn.commit().await?;
    if !moved.is_empty() {
        s.outbox.wake();
    }
    let due = s
        .db
        .query_all_raw(statement(
            "SELECT id FROM giveaway.events WHERE status = 'LIVE' AND ends_at <= now() ORDER BY ends_at LIMIT 100",
            vec![],
        ))
        .await?;
    for row in due {
        let id: Uuid = row.try_get("", "id")?;
        if let Some(event) = end(s, &meta, id).await? {
            moved.push(event);
        }
    }
    Ok(moved)
}

/// LIVE -> ENDED for `id`, if it is still LIVE and due.
async fn end(s: &Services, meta: &RequestMeta, id: Uuid) -> DomainResult<Option<EventView>> {
    let txn = s.db.begin().await?;
    let Some(event) = events::lock(&txn, id).await? else {
        return Ok(None);
    };
    if event.status != EventStatus::Live || event.ends_at > Utc::now() {
        return Ok(None);
    }
    let drawn = if event.selection == WinnerSelection::Draw {
        draw_winners(s, &txn, meta, &event).await?
    } else {
        Vec::new()
    };
    let posted = release_unawarded(&txn, meta, &event, "event ended").await?;
    let ended = events::fetch_one_returning(
        &txn,
        "UPDATE giveaway.events SET status = 'ENDED', version = version + 1, \
         drawn_at = CASE WHEN selection = 'DRAW' THEN now() END WHERE id = $1",
        vec![id.into()],
    )
    .await?;
    outbox_now(&txn, live::changed(meta, &ended)?).await?;
    txn.commit().await?;
    s.outbox.wake();
    live::announce_here(&s.hub, id, &drawn);
    if let Some(posted) = posted {
        posted.committed(s);
    }
    Ok(Some(ended))
}

/// The DRAW of FLOWS.md §5 for `event`, in `txn`: its committed seed
/// shuffles the VERIFIED participants, and the k-th unit (prizes by id as
/// text, then unit number) goes to the k-th of them. Setting `drawn_at`
/// afterwards reveals the seed. The winners, by sequence.
async fn draw_winners(
    s: &Services,
    txn: &DatabaseTransaction,
    meta: &RequestMeta,
    event: &EventView,
) -> DomainResult<Vec<WinnerView>> {
    let seed = super::draw::Seed::from_hex(&events::seed_hex(txn, event.id).await?)
        .ok_or_else(|| bug("a DRAW event without a seed"))?;
    let verified = participants::verified(txn, event.id).await?;
    let ids: Vec<Uuid> = verified.iter().map(|p| p.id).collect();
    let prizes: Vec<(Uuid, u32)> = events::prizes_of(txn, &[event.id])
        .await?
        .iter()
        .map(|p| (p.id, u32::try_from(p.quantity).unwrap_or(0)))
        .collect();
    // By key, not by search: a draw may hand out thousands of units.
    let pool: std::collections::HashMap<(Uuid, i32), award::Unit> = award::pool(txn, event.id)
        .await?
        .into_iter()
        .map(|u| ((u.prize_id, u.unit), u))
        .collect();
    let by_id: std::collections::HashMap<Uuid, &participants::ParticipantView> =
        verified.iter().map(|p| (p.id, p)).collect();
    let assignments = super::draw::assign(&seed, &ids, &prizes);
    let mut winners = Vec::with_capacity(assignments.len());
    for assignment in assignments {
        let number =
            i32::try_from(assignment.unit).map_err(|_| bug("a unit number out of range"))?;
        let unit = *pool
            .get(&(assignment.prize_id, number))
            .ok_or_else(|| bug("a drawn unit is not in the pool"))?;
        let participant = *by_id
            .get(&assignment.participant_id)
            .ok_or_else(|| bug("a drawn participant vanished"))?;
        winners.push(award::award(s, txn, meta, participant, unit).await?.0);
    }
    Ok(winners)
}
