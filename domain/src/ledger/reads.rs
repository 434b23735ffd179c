//! Reading wallets and their entries, always from Postgres.
//!
//! Balances are not cached: a balance read after a posting commits must
//! never show an older balance, in any process, with or without a Redis
//! outage in between. A Redis copy cannot promise that (an invalidation
//! lost while Redis was unreachable left a copy served after it came back,
//! in every process), and knowing whether a copy is current takes reading
//! the account row, which is all a balance read costs: one indexed SELECT
//! (BENCHMARKS.md measured no gain from the cache).

use chrono::{DateTime, Utc};
use giftdrop_entities::ledger::{accounts, entries};
use sea_orm::sea_query::{Expr, ExprTrait, Func, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DerivePartialModel, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::wallet::{WALLET_KINDS, balance};
use super::{Direction, EntryKind, WalletOwner, WalletView, bug, from_db, wallet_of};
use crate::Services;
use crate::error::{DomainError, DomainResult};
use crate::money::Amount;

/// The wallet of `owner` as committed now (created on first use).
pub async fn wallet(services: &Services, owner: WalletOwner) -> DomainResult<WalletView> {
    wallet_of(&services.db, owner).await
}

/// One entry of a wallet, as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryView {
    /// Entry id: increasing, so newest first is descending id.
    pub id: i64,
    /// Why money moved.
    pub kind: EntryKind,
    /// In or out.
    pub direction: Direction,
    /// How much.
    pub amount: Amount,
    /// The wallet balance right after this entry.
    pub balance_after: Amount,
    /// What caused it (topup reference, event, escrow or payout id).
    pub reference: String,
    /// When it was posted.
    pub created_at: DateTime<Utc>,
}

/// The columns of `ledger.entries` an [`EntryView`] shows.
#[derive(DerivePartialModel)]
#[sea_orm(entity = "entries::Entity")]
struct EntryRow {
    id: i64,
    kind: String,
    direction: entries::Direction,
    amount: i64,
    balance_after: Option<i64>,
    reference: String,
    created_at: DateTime<Utc>,
}

impl From<entries::Direction> for Direction {
    fn from(direction: entries::Direction) -> Self {
        match direction {
            entries::Direction::Credit => Self::Credit,
            entries::Direction::Debit => Self::Debit,
        }
    }
}

impl TryFrom<EntryRow> for EntryView {
    type Error = DomainError;

    fn try_from(row: EntryRow) -> DomainResult<Self> {
        Ok(Self {
            id: row.id,
            kind: from_db(&row.kind)?,
            direction: row.direction.into(),
            amount: Amount::new(row.amount).map_err(|_| bug("a negative entry"))?,
            balance_after: balance(
                row.balance_after
                    .ok_or_else(|| bug("a wallet entry without a balance"))?,
            )?,
            reference: row.reference,
            created_at: row.created_at,
        })
    }
}

/// Up to `limit` entries of `wallet`, newest first, older than the entry
/// `before` when given (keyset pagination on the entry id).
pub async fn entries<C: ConnectionTrait>(
    conn: &C,
    wallet: Uuid,
    before: Option<i64>,
    limit: u64,
) -> DomainResult<Vec<EntryView>> {
    entries::Entity::find()
        .filter(entries::Column::AccountId.eq(wallet))
        .filter(entries::Column::Id.lt(before.unwrap_or(i64::MAX)))
        .order_by_desc(entries::Column::Id)
        .limit(limit)
        .into_partial_model::<EntryRow>()
        .all(conn)
        .await?
        .into_iter()
        .map(EntryView::try_from)
        .collect()
}

/// An entry's change to its account: its amount, credits in and debits
/// out.
pub(super) fn signed_amount() -> Expr {
    let amount = || Expr::col((entries::Entity, entries::Column::Amount));
    Expr::case(
        Expr::col((entries::Entity, entries::Column::Direction)).eq(entries::Direction::Credit),
        amount(),
    )
    .finally(amount().mul(-1))
    .into()
}

/// The balance of a platform account: the sum of its entries, credits in
/// and debits out (platform accounts keep no running balance).
pub async fn platform_balance<C: ConnectionTrait>(
    conn: &C,
    account: super::PlatformAccount,
) -> DomainResult<Amount> {
    let sum: Option<i64> = entries::Entity::find()
        .select_only()
        .column_as(
            Expr::from(Func::coalesce([
                Func::sum(signed_amount()).into(),
                Expr::val(0),
            ]))
            .cast_as("bigint"),
            "balance",
        )
        .filter(entries::Column::AccountId.eq(account.id()))
        .into_tuple()
        .one(conn)
        .await?;
    let minor = sum.ok_or_else(|| bug("no platform balance"))?;
    Amount::new(minor).map_err(|_| bug("a negative platform balance"))
}

/// The two halves of [`total`], as text (a sum of bigints is numeric).
#[derive(FromQueryResult)]
struct Totals {
    wallets: String,
    platform: String,
}

/// The signed sum over every account: wallets by their running balance,
/// platform accounts by their entries. Zero whenever the ledger is sound.
/// Run it in a REPEATABLE READ transaction for one consistent snapshot.
pub async fn total<C: ConnectionTrait>(conn: &C) -> DomainResult<i128> {
    let sum = |expr: Expr| Expr::from(Func::coalesce([Func::sum(expr).into(), Expr::val(0)]));
    let wallets = accounts::Entity::find()
        .select_only()
        .expr(sum(Expr::col(accounts::Column::Balance)))
        .filter(accounts::Column::Kind.is_in(WALLET_KINDS))
        .into_query();
    let platform = entries::Entity::find()
        .select_only()
        .expr(sum(signed_amount()))
        .inner_join(accounts::Entity)
        .filter(accounts::Column::Kind.is_not_in(WALLET_KINDS))
        .into_query();
    let query = Query::select()
        .expr_as(Expr::from(wallets).cast_as("text"), "wallets")
        .expr_as(Expr::from(platform).cast_as("text"), "platform")
        .to_owned();
    let totals = Totals::find_by_statement(conn.get_database_backend().build(&query))
        .one(conn)
        .await?
        .ok_or_else(|| bug("no total"))?;
    let parse =
        |text: &str| -> DomainResult<i128> { text.parse().map_err(|_| bug("unparseable total")) };
    Ok(parse(&totals.wallets)? + parse(&totals.platform)?)
}
