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
use sea_orm::ConnectionTrait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::wallet::balance_of;
use super::{Direction, EntryKind, WalletOwner, WalletView, from_db, statement, wallet_of};
use crate::Services;
use crate::error::DomainResult;
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

/// Up to `limit` entries of `wallet`, newest first, older than the entry
/// `before` when given (keyset pagination on the entry id).
pub async fn entries<C: ConnectionTrait>(
    conn: &C,
    wallet: Uuid,
    before: Option<i64>,
    limit: u64,
) -> DomainResult<Vec<EntryView>> {
    let rows = conn
        .query_all_raw(statement(
            "SELECT id, kind, direction, amount, balance_after AS balance, reference, created_at \
             FROM ledger.entries WHERE account_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
            vec![
                wallet.into(),
                before.unwrap_or(i64::MAX).into(),
                i64::try_from(limit).unwrap_or(i64::MAX).into(),
            ],
        ))
        .await?;
    rows.iter()
        .map(|row| {
            let kind: String = row.try_get("", "kind")?;
            let direction: String = row.try_get("", "direction")?;
            let amount: i64 = row.try_get("", "amount")?;
            Ok(EntryView {
                id: row.try_get("", "id")?,
                kind: from_db(&kind)?,
                direction: from_db(&direction)?,
                amount: Amount::new(amount).map_err(|_| super::bug("a negative entry"))?,
                balance_after: balance_of(row)?,
                reference: row.try_get("", "reference")?,
                created_at: row.try_get("", "created_at")?,
            })
        })
        .collect()
}

/// The balance of a platform account: the sum of its entries, credits in
/// and debits out (platform accounts keep no running balance).
pub async fn platform_balance<C: ConnectionTrait>(
    conn: &C,
    account: super::PlatformAccount,
) -> DomainResult<Amount> {
    use giftdrop_entities::ledger::entries;
    use sea_orm::sea_query::{Expr, ExprTrait, Func};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
    let amount = || Expr::col(entries::Column::Amount);
    let signed = Expr::case(
        Expr::col(entries::Column::Direction).eq(entries::Direction::Credit),
        amount(),
    )
    .finally(amount().mul(-1));
    let sum: Option<i64> = entries::Entity::find()
        .select_only()
        .column_as(
            Expr::from(Func::coalesce([Func::sum(signed).into(), Expr::val(0)])).cast_as("bigint"),
            "balance",
        )
        .filter(entries::Column::AccountId.eq(account.id()))
        .into_tuple()
        .one(conn)
        .await?;
    let minor = sum.ok_or_else(|| super::bug("no platform balance"))?;
    Amount::new(minor).map_err(|_| super::bug("a negative platform balance"))
}
