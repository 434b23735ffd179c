//! `publishEvent` (FLOWS.md §5): the prize pool into escrow, in one
//! transaction.

use chrono::Utc;
use giftdrop_entities::giveaway::{events as db, prize_units};
use sea_orm::sea_query::{Expr, InsertStatement, Query};
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityName, QueryFilter, TransactionTrait, Value};
use uuid::Uuid;

use super::draft;
use super::draw::Seed;
use super::events::{self, EventView, WinnerSelection};
use super::live;
use super::prizes;
use super::rules::START_GRACE;
use crate::Services;
use crate::audit::{self, AuditRecord};
use crate::context::{RequestMeta, Viewer};
use crate::error::{DomainError, DomainResult};
use crate::giftcard::escrow::{self, EscrowSource, Funding, NewEscrow};
use crate::giftcard::merchants::MerchantStatus;
use crate::giftcard::products;
use crate::idempotency::{self, Scope, Work};
use crate::ledger::{self, Account, EntryKind, Leg, PlatformAccount, Transfer, WalletOwner};
use crate::sql::{Batch, bug, unnest};

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
                    let seed = Seed::random();
                    (Some(seed.as_bytes().to_vec()), Some(seed.commitment()))
                }
                WinnerSelection::Instant => (None, None),
            };
            let scheduled = events::update_one(
                &txn,
                id,
                events::changed()
                    .col_expr(db::Column::Status, db::Status::Scheduled.into())
                    .col_expr(db::Column::PublishedAt, Expr::current_timestamp())
                    .col_expr(db::Column::FundingTransferId, funded.transfer_id.into())
                    .col_expr(db::Column::DrawSeed, seed.into())
                    .col_expr(db::Column::DrawCommitment, commitment.into())
                    .filter(db::Column::Status.eq(db::Status::Draft)),
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
    let prizes = prizes::prizes_of(txn, &[event.id]).await?;
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
    escrow::reserve_in(&mut pool, funding, &escrows)?;
    pool.push(insert_units(
        event.id,
        [
            unit_ids.into(),
            unit_prizes.into(),
            unit_numbers.into(),
            escrow_ids.into(),
        ],
    )?);
    Ok(pool)
}

/// The insert of an event's prize units, one per element of the arrays of
/// their ids, prizes, numbers and escrows ([`unnest`]).
fn insert_units(
    event_id: Uuid,
    [ids, prizes, numbers, escrows]: [Value; 4],
) -> DomainResult<InsertStatement> {
    let units = Query::select()
        .expr(unnest(ids))
        .expr(Expr::val(event_id))
        .expr(unnest(prizes))
        .expr(unnest(numbers))
        .expr(unnest(escrows))
        .to_owned();
    Ok(Query::insert()
        .into_table(prize_units::Entity.table_ref())
        .columns([
            prize_units::Column::Id,
            prize_units::Column::EventId,
            prize_units::Column::PrizeId,
            prize_units::Column::Unit,
            prize_units::Column::EscrowId,
        ])
        .select_from(units)
        .map_err(bug)?
        .to_owned())
}

#[cfg(test)]
mod tests {
    use sea_orm::sea_query::PostgresQueryBuilder;

    use super::*;

    #[test]
    fn prize_units_go_in_as_arrays_unnested_in_step() {
        let units = insert_units(
            Uuid::nil(),
            [
                vec![Uuid::nil()].into(),
                vec![Uuid::nil()].into(),
                vec![1i32].into(),
                vec![Uuid::nil()].into(),
            ],
        )
        .expect("five columns from five expressions");
        assert_eq!(
            units.build(PostgresQueryBuilder).0,
            r#"INSERT INTO "giveaway"."prize_units" ("id", "event_id", "prize_id", "unit", "escrow_id") SELECT unnest($1), $2, unnest($3), unnest($4), unnest($5)"#
        );
    }
}
