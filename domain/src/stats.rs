//! `platformStats` (admin): a few headline figures, cached briefly because
//! they scan whole tables.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use serde::{Deserialize, Serialize};

use crate::Services;
use crate::error::DomainResult;
use crate::ledger::PlatformAccount;
use crate::money::Amount;
use crate::sql::{amount, bug, statement};

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
    let row = conn
        .query_one_raw(statement(
            "SELECT (SELECT count(*) FROM identity.users) AS users, \
               (SELECT count(*) FROM giveaway.events WHERE status = 'LIVE') AS live_events, \
               (SELECT coalesce(sum(amount), 0)::bigint FROM giftcard.escrows WHERE status = 'RESERVED') AS reserved, \
               (SELECT coalesce(sum(amount), 0)::bigint FROM giftcard.escrows WHERE status = 'SETTLED') AS settled, \
               (SELECT coalesce(sum(CASE direction WHEN 'CREDIT' THEN amount ELSE -amount END), 0)::bigint \
                  FROM ledger.entries WHERE account_id = $1) AS fees, now() AS generated_at",
            vec![PlatformAccount::PlatformFees.id().into()],
        ))
        .await?
        .ok_or_else(|| bug("no stats row"))?;
    Ok(PlatformStats {
        users: row.try_get("", "users")?,
        live_events: row.try_get("", "live_events")?,
        escrow_reserved: amount(&row, "reserved")?,
        escrow_settled: amount(&row, "settled")?,
        fees_earned: amount(&row, "fees")?,
        generated_at: row.try_get("", "generated_at")?,
    })
}

/// The figures, at most [`TTL`] old.
pub async fn platform_stats(s: &Services) -> DomainResult<PlatformStats> {
    s.cache
        .get_or_set("stats:platform", TTL, || compute(&s.db))
        .await
}
