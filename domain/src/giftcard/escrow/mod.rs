//! Escrows: money held between a funder's wallet and a merchant
//! (FLOWS.md §3). RESERVED -> SETTLED (the card is redeemed) or
//! RESERVED -> RELEASED (refunded to the funder), exactly once.
//!
//! A transition locks the escrow row, checks it is still RESERVED, posts
//! the ledger transfer and marks the row final, all in the caller's
//! transaction. Two concurrent transitions of one escrow serialize on the
//! row lock and the second sees the first's result: `Conflict`. The
//! database refuses any change to a final escrow as well (a trigger), so
//! no other writer can break the rule either.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::DomainResult;
use crate::identity::staff::Reach;
use crate::ledger::EntryKind;
use crate::money::{Amount, Settlement};

mod transition;

use crate::sql::{
    Batch, amount, amount_opt, bps, bps_opt, by_id, by_ids, db_name, enum_col, fetch_all,
};
pub use transition::{Transition, release, release_all, settle};

/// `EscrowStatus` of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EscrowStatus {
    /// Held.
    Reserved,
    /// Paid to the merchant (final).
    Settled,
    /// Returned to the funder (final).
    Released,
}

/// `EscrowSource` of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EscrowSource {
    /// A giveaway prize unit, funded by the host.
    EventPrize,
    /// A card bought in the marketplace, funded by the buyer.
    CardPurchase,
}

impl EscrowSource {
    /// The entry kind of a refund of this source.
    fn refund_kind(self) -> EntryKind {
        match self {
            Self::EventPrize => EntryKind::EventRefund,
            Self::CardPurchase => EntryKind::CardRefund,
        }
    }
}

/// An escrow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscrowView {
    /// Escrow id (time-ordered).
    pub id: Uuid,
    /// Where it stands.
    pub status: EscrowStatus,
    /// Why it exists.
    pub source: EscrowSource,
    /// How much is held.
    pub amount: Amount,
    /// Who it is held for.
    pub merchant_id: Uuid,
    /// Who paid it.
    pub funder_id: Uuid,
    /// The wallet a release refunds.
    pub funder_account_id: Uuid,
    /// The giveaway event of a prize escrow.
    pub event_id: Option<Uuid>,
    /// The merchant's rate when it was reserved.
    pub service_rate_bps: u32,
    /// The deposit fee rate in force when it was reserved (`None` for
    /// escrows reserved before rates were kept: the configured rate).
    pub deposit_fee_bps: Option<u32>,
    /// The split, once SETTLED.
    pub settlement: Option<Settlement>,
    /// When it was reserved.
    pub created_at: DateTime<Utc>,
    /// When it was settled.
    pub settled_at: Option<DateTime<Utc>>,
    /// When it was released.
    pub released_at: Option<DateTime<Utc>>,
    /// Why it was released.
    pub release_reason: Option<String>,
}

impl EscrowView {
    /// True when `reach` may see this escrow: admins, the merchant's staff,
    /// the funder.
    pub fn visible_to(&self, reach: &Reach) -> bool {
        reach.manages(self.merchant_id) || reach.is(self.funder_id)
    }
}

/// The columns [`view`] reads.
const COLUMNS: &str = "id, status, source, amount, merchant_id, funder_id, funder_account_id, event_id, \
     service_rate_bps, deposit_fee_bps, deposit_fee, service_fee, merchant_payout, created_at, settled_at, released_at, release_reason";

/// An escrow from a row of [`COLUMNS`].
fn view(row: &QueryResult) -> DomainResult<EscrowView> {
    let split = (
        amount_opt(row, "deposit_fee")?,
        amount_opt(row, "service_fee")?,
        amount_opt(row, "merchant_payout")?,
    );
    Ok(EscrowView {
        id: row.try_get("", "id")?,
        status: enum_col(row, "status")?,
        source: enum_col(row, "source")?,
        amount: amount(row, "amount")?,
        merchant_id: row.try_get("", "merchant_id")?,
        funder_id: row.try_get("", "funder_id")?,
        funder_account_id: row.try_get("", "funder_account_id")?,
        event_id: row.try_get("", "event_id")?,
        service_rate_bps: bps(row, "service_rate_bps")?,
        deposit_fee_bps: bps_opt(row, "deposit_fee_bps")?,
        settlement: match split {
            (Some(deposit_fee), Some(service_fee), Some(merchant_payout)) => Some(Settlement {
                deposit_fee,
                service_fee,
                merchant_payout,
            }),
            _ => None,
        },
        created_at: row.try_get("", "created_at")?,
        settled_at: row.try_get("", "settled_at")?,
        released_at: row.try_get("", "released_at")?,
        release_reason: row.try_get("", "release_reason")?,
    })
}

/// An escrow to reserve.
#[derive(Clone, Debug)]
pub struct NewEscrow {
    /// Its id (chosen by the caller, so the funding transfer can name it).
    pub id: Uuid,
    /// Why.
    pub source: EscrowSource,
    /// How much.
    pub amount: Amount,
    /// For whom.
    pub merchant_id: Uuid,
    /// The merchant's service rate now (snapshotted).
    pub service_rate_bps: u32,
}

/// Who funds a set of escrows, and the transfer that moved the money into
/// escrow holding.
#[derive(Clone, Copy, Debug)]
pub struct Funding {
    /// The funding user.
    pub funder_id: Uuid,
    /// Their wallet.
    pub funder_account_id: Uuid,
    /// The posted transfer (funder debit, escrow holding credit).
    pub transfer_id: Uuid,
    /// The event whose prize units they back; `None` for a purchase.
    pub event_id: Option<Uuid>,
    /// The deposit fee rate in force (`DEPOSIT_FEE_BPS`), kept on every
    /// escrow so that settling it later uses this rate.
    pub deposit_fee_bps: u32,
}

/// Adds the insert of RESERVED escrows funded by `funding` to `batch`
/// (with the funding transfer, or after it in the caller's transaction);
/// call [`count_reserved`] once it has committed. The escrows travel as
/// arrays, so a publish of thousands of prize units is one statement of
/// ten values.
pub fn reserve_in(batch: &mut Batch, funding: Funding, escrows: &[NewEscrow]) {
    let rate = |bps: u32| i32::try_from(bps.min(10_000)).unwrap_or(0);
    let [ids, sources, amounts, merchants, rates] = batch.binds([
        escrows.iter().map(|e| e.id).collect::<Vec<Uuid>>().into(),
        escrows
            .iter()
            .map(|e| db_name(&e.source))
            .collect::<Vec<String>>()
            .into(),
        escrows
            .iter()
            .map(|e| e.amount.minor())
            .collect::<Vec<i64>>()
            .into(),
        escrows
            .iter()
            .map(|e| e.merchant_id)
            .collect::<Vec<Uuid>>()
            .into(),
        escrows
            .iter()
            .map(|e| rate(e.service_rate_bps))
            .collect::<Vec<i32>>()
            .into(),
    ]);
    let [funder, account, transfer, event, deposit_rate] = batch.binds([
        funding.funder_id.into(),
        funding.funder_account_id.into(),
        funding.transfer_id.into(),
        funding.event_id.into(),
        rate(funding.deposit_fee_bps).into(),
    ]);
    batch.sql(format!(
        "INSERT INTO giftcard.escrows (id, source, amount, merchant_id, funder_id, funder_account_id, \
         event_id, service_rate_bps, reserve_transfer_id, deposit_fee_bps) \
         SELECT e.id, e.source, e.amount, e.merchant_id, {funder}, {account}, {event}, e.rate, \
           {transfer}, {deposit_rate} \
         FROM unnest({ids}::uuid[], {sources}::text[], {amounts}::bigint[], {merchants}::uuid[], \
           {rates}::integer[]) AS e (id, source, amount, merchant_id, rate)"
    ));
}

/// Counts `n` escrows reserved (the transition metric).
pub fn count_reserved(n: usize) {
    metrics::counter!("giftdrop_escrow_transitions_total", "to" => "RESERVED").increment(n as u64);
}

/// The escrow `id`, whoever asks.
pub async fn find<C: ConnectionTrait>(conn: &C, id: Uuid) -> DomainResult<Option<EscrowView>> {
    by_id(conn, "giftcard.escrows", COLUMNS, id, view).await
}

/// The escrows with these ids (unknown ids are skipped), in one query.
pub async fn find_many<C: ConnectionTrait>(
    conn: &C,
    ids: &[Uuid],
) -> DomainResult<Vec<EscrowView>> {
    by_ids(conn, "giftcard.escrows", COLUMNS, ids, view).await
}

/// Filters of `escrows`.
#[derive(Clone, Debug, Default)]
pub struct EscrowFilter {
    /// Only this status.
    pub status: Option<EscrowStatus>,
    /// Only this merchant's.
    pub merchant_id: Option<Uuid>,
    /// Only this event's.
    pub event_id: Option<Uuid>,
}

/// A page of escrows `reach` may see, newest first, older than `before`.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    reach: &Reach,
    filter: &EscrowFilter,
    before: Option<Uuid>,
    limit: u64,
) -> DomainResult<Vec<EscrowView>> {
    fetch_all(
        conn,
            &format!(
                "SELECT {COLUMNS} FROM giftcard.escrows \
                 WHERE ($1 OR merchant_id = ANY($2) OR funder_id = $3) \
                   AND ($4::text IS NULL OR status = $4) AND ($5::uuid IS NULL OR merchant_id = $5) \
                   AND ($6::uuid IS NULL OR event_id = $6) AND ($7::uuid IS NULL OR id < $7) \
                 ORDER BY id DESC LIMIT $8"
            ),
            vec![
                reach.admin.into(),
                reach.merchants.clone().into(),
                reach.user_id.into(),
                filter.status.map(|s| db_name(&s)).into(),
                filter.merchant_id.into(),
                filter.event_id.into(),
                before.into(),
                i64::try_from(limit).unwrap_or(i64::MAX).into(),
            ],
        view,
    )
    .await
}
