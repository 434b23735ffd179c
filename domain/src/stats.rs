//! `platformStats` (admin): a few headline figures, cached briefly because
//! they scan whole tables.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
};
use serde::{Deserialize, Serialize};

use crate::Services;
use crate::error::DomainResult;
use crate::ledger::{PlatformAccount, platform_balance};
use crate::money::Amount;
use crate::sql::bug;

/// How long computed figures are served from the cache.
pub const TTL: Duration = Duration::from_secs(10);

/// The headline figures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformStats {
    /// Accounts.
    pub users: i64,
    /// Events running now.
    pub live_events: i64,
    /// Money held in RESERVED escrows.
    pub escrow_reserved: Amount,
    /// Money paid out of SETTLED escrows.
    pub escrow_settled: Amount,
    /// Service fees earned (the platform-fees account).
    pub fees_earned: Amount,
    /// When these figures were computed.
    pub generated_at: DateTime<Utc>,
}

async fn compute<C: ConnectionTrait>(conn: &C) -> DomainResult<PlatformStats> {
    use giftdrop_entities::{giftcard::escrows, giveaway::events, identity::users};
    let users = users::Entity::find().count(conn).await?;
    let live_events = events::Entity::find()
        .filter(events::Column::Status.eq(events::Status::Live))
        .count(conn)
        .await?;
    let escrowed = |status: escrows::Status| async move {
        let sum: Option<i64> = escrows::Entity::find()
            .select_only()
            .column_as(
                Expr::from(Func::coalesce([
                    Func::sum(Expr::col(escrows::Column::Amount)).into(),
                    Expr::val(0),
                ]))
                .cast_as("bigint"),
                "sum",
            )
            .filter(escrows::Column::Status.eq(status))
            .into_tuple()
            .one(conn)
            .await?;
        let minor = sum.ok_or_else(|| bug("no escrow sum"))?;
        Amount::new(minor).map_err(|_| bug("a negative escrow sum"))
    };
    Ok(PlatformStats {
        users: count(users)?,
        live_events: count(live_events)?,
        escrow_reserved: escrowed(escrows::Status::Reserved).await?,
        escrow_settled: escrowed(escrows::Status::Settled).await?,
        fees_earned: platform_balance(conn, PlatformAccount::PlatformFees).await?,
        generated_at: Utc::now(),
    })
}

fn count(rows: u64) -> DomainResult<i64> {
    i64::try_from(rows).map_err(|_| bug("a count past i64"))
}

/// The figures, at most [`TTL`] old.
pub async fn platform_stats(s: &Services) -> DomainResult<PlatformStats> {
    s.cache
        .get_or_set("stats:platform", TTL, || compute(&s.db))
        .await
}
