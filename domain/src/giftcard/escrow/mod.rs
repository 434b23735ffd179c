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
use giftdrop_entities::giftcard::escrows;
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityName, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Select,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{DomainError, DomainResult};
use crate::identity::staff::Reach;
use crate::ledger::EntryKind;
use crate::money::{Amount, Settlement};

mod transition;

use crate::sql::{self, Batch, bug, db_name, unnest};
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

impl From<escrows::Status> for EscrowStatus {
    fn from(status: escrows::Status) -> Self {
        match status {
            escrows::Status::Reserved => Self::Reserved,
            escrows::Status::Settled => Self::Settled,
            escrows::Status::Released => Self::Released,
        }
    }
}

impl From<EscrowStatus> for escrows::Status {
    fn from(status: EscrowStatus) -> Self {
        match status {
            EscrowStatus::Reserved => Self::Reserved,
            EscrowStatus::Settled => Self::Settled,
            EscrowStatus::Released => Self::Released,
        }
    }
}

impl From<escrows::Source> for EscrowSource {
    fn from(source: escrows::Source) -> Self {
        match source {
            escrows::Source::EventPrize => Self::EventPrize,
            escrows::Source::CardPurchase => Self::CardPurchase,
        }
    }
}

fn amount(minor: i64) -> DomainResult<Amount> {
    Amount::new(minor).map_err(|_| bug("a negative escrow amount"))
}

fn bps(value: i32) -> DomainResult<u32> {
    u32::try_from(value).map_err(|_| bug("a negative escrow rate"))
}

/// An escrow from its row (every column: the transitions read the row
/// they update with `RETURNING`, which gives whole models).
impl TryFrom<escrows::Model> for EscrowView {
    type Error = DomainError;

    fn try_from(row: escrows::Model) -> DomainResult<Self> {
        let split = (
            row.deposit_fee.map(amount).transpose()?,
            row.service_fee.map(amount).transpose()?,
            row.merchant_payout.map(amount).transpose()?,
        );
        Ok(Self {
            id: row.id,
            status: row.status.into(),
            source: row.source.into(),
            amount: amount(row.amount)?,
            merchant_id: row.merchant_id,
            funder_id: row.funder_id,
            funder_account_id: row.funder_account_id,
            event_id: row.event_id,
            service_rate_bps: bps(row.service_rate_bps)?,
            deposit_fee_bps: row.deposit_fee_bps.map(bps).transpose()?,
            settlement: match split {
                (Some(deposit_fee), Some(service_fee), Some(merchant_payout)) => Some(Settlement {
                    deposit_fee,
                    service_fee,
                    merchant_payout,
                }),
                _ => None,
            },
            created_at: row.created_at,
            settled_at: row.settled_at,
            released_at: row.released_at,
            release_reason: row.release_reason,
        })
    }
}

/// Every escrow `query` selects.
async fn all<C: ConnectionTrait>(
    conn: &C,
    query: Select<escrows::Entity>,
) -> DomainResult<Vec<EscrowView>> {
    sql::all_as(conn, query.into_model::<escrows::Model>()).await
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
/// arrays ([`unnest`]), so a publish of thousands of prize units is one
/// statement of ten values.
pub fn reserve_in(batch: &mut Batch, funding: Funding, escrows: &[NewEscrow]) -> DomainResult<()> {
    use escrows::Column as C;
    let rate = |bps: u32| i32::try_from(bps.min(10_000)).unwrap_or(0);
    let rows = Query::select()
        .expr(unnest(escrows.iter().map(|e| e.id).collect::<Vec<Uuid>>()))
        .expr(unnest(
            escrows
                .iter()
                .map(|e| db_name(&e.source))
                .collect::<Vec<String>>(),
        ))
        .expr(unnest(
            escrows
                .iter()
                .map(|e| e.amount.minor())
                .collect::<Vec<i64>>(),
        ))
        .expr(unnest(
            escrows.iter().map(|e| e.merchant_id).collect::<Vec<Uuid>>(),
        ))
        .expr(Expr::val(funding.funder_id))
        .expr(Expr::val(funding.funder_account_id))
        .expr(Expr::val(funding.event_id))
        .expr(unnest(
            escrows
                .iter()
                .map(|e| rate(e.service_rate_bps))
                .collect::<Vec<i32>>(),
        ))
        .expr(Expr::val(funding.transfer_id))
        .expr(Expr::val(rate(funding.deposit_fee_bps)))
        .to_owned();
    let insert = Query::insert()
        .into_table(escrows::Entity.table_ref())
        .columns([
            C::Id,
            C::Source,
            C::Amount,
            C::MerchantId,
            C::FunderId,
            C::FunderAccountId,
            C::EventId,
            C::ServiceRateBps,
            C::ReserveTransferId,
            C::DepositFeeBps,
        ])
        .select_from(rows)
        .map_err(bug)?
        .to_owned();
    batch.push(insert);
    Ok(())
}

/// Counts `n` escrows reserved (the transition metric).
pub fn count_reserved(n: usize) {
    metrics::counter!("giftdrop_escrow_transitions_total", "to" => "RESERVED").increment(n as u64);
}

/// The escrow `id`, whoever asks.
pub async fn find<C: ConnectionTrait>(conn: &C, id: Uuid) -> DomainResult<Option<EscrowView>> {
    escrows::Entity::find_by_id(id)
        .one(conn)
        .await?
        .map(EscrowView::try_from)
        .transpose()
}

/// The escrows with these ids (unknown ids are skipped), in one query.
pub async fn find_many<C: ConnectionTrait>(
    conn: &C,
    ids: &[Uuid],
) -> DomainResult<Vec<EscrowView>> {
    all(
        conn,
        escrows::Entity::find().filter(escrows::Column::Id.eq_any(ids.iter().copied())),
    )
    .await
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
    let visible = if reach.admin {
        Condition::all()
    } else {
        Condition::any()
            .add(escrows::Column::MerchantId.eq_any(reach.merchants.iter().copied()))
            .add_option(reach.user_id.map(|id| escrows::Column::FunderId.eq(id)))
    };
    let query = escrows::Entity::find()
        .filter(visible)
        .apply_if(filter.status, |query, status| {
            query.filter(escrows::Column::Status.eq(escrows::Status::from(status)))
        })
        .apply_if(filter.merchant_id, |query, id| {
            query.filter(escrows::Column::MerchantId.eq(id))
        })
        .apply_if(filter.event_id, |query, id| {
            query.filter(escrows::Column::EventId.eq(id))
        })
        .apply_if(before, |query, id| query.filter(escrows::Column::Id.lt(id)))
        .order_by_desc(escrows::Column::Id)
        .limit(limit);
    all(conn, query).await
}
