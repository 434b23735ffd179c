//! Idempotency keys (FLOWS.md §3), one mechanism for every financial
//! mutation.
//!
//! A key is scoped to (caller, operation). The first request claims it with
//! a committed `IN_PROGRESS` row holding a random claim token and a lease;
//! the work then runs in its own transaction, and [`run`] writes the
//! outcome into the key row *in that same transaction*, guarded by the
//! claim token, before committing. So the effect and the stored outcome
//! commit together or not at all, and a request whose lease was taken over
//! (it stalled past the lease) cannot commit a second effect.
//!
//! Work that is all database ([`Hold::Transaction`]) needs no separate
//! claim: the key row is written, as DONE with the outcome, by the work's
//! own transaction just before it commits. A concurrent duplicate does the
//! same; its insert waits for the first transaction, finds the key taken,
//! and rolls its own work back, returning the first one's outcome. One
//! commit per request instead of two, and still never two effects.
//!
//! A repeat with the same input gets the stored outcome; with a different
//! input `IDEMPOTENCY_KEY_REUSED`; while the first is in flight it waits a
//! moment for the outcome, then gets `IDEMPOTENCY_KEY_IN_USE`. Validation
//! failures and transient errors are not stored: the claim is released so a
//! corrected or later retry can do the work. Keys live 24 hours; a job
//! sweeps expired ones.

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use giftdrop_entities::ledger::idempotency_keys as keys;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    DerivePartialModel, EntityTrait, QueryFilter, QuerySelect, QueryTrait,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{DomainError, DomainResult};
use crate::money::Amount;
use crate::sql::Batch;

mod claim;
mod transaction;

pub use claim::run;
pub use transaction::first_use;

/// How long a stored outcome is kept (at least 24 h, FLOWS.md §3).
pub const RETENTION: Duration = Duration::from_secs(25 * 3600);
/// How long a claim is exclusive before a stalled request can be taken over.
const LEASE: Duration = Duration::from_secs(60);
/// How long a concurrent duplicate waits for the first request's outcome.
const WAIT: Duration = Duration::from_millis(1_500);
const POLL: Duration = Duration::from_millis(25);

/// Who is asking, for what, with which key.
#[derive(Clone, Debug)]
pub struct Scope<'a> {
    /// The caller (user id).
    pub caller: Uuid,
    /// The operation, e.g. `initiateTopup`.
    pub operation: &'static str,
    /// The client's key.
    pub key: &'a str,
}

impl Scope<'_> {
    /// The key row's primary key: caller, operation, key.
    fn key_row(&self) -> Condition {
        Condition::all()
            .add(keys::Column::CallerId.eq(self.caller))
            .add(keys::Column::Operation.eq(self.operation))
            .add(keys::Column::Key.eq(self.key))
    }
}

/// `now()` plus `duration`, on the database's clock.
fn from_now(duration: Duration) -> Expr {
    Expr::cust_with_values(
        "now() + make_interval(secs => $1)",
        [duration.as_secs_f64()],
    )
}

/// A column of the key row an `ON CONFLICT` update would change.
fn current(column: keys::Column) -> Expr {
    Expr::col((keys::Entity, column))
}

/// The column a conflicting insert proposed.
fn excluded(column: keys::Column) -> Expr {
    Expr::col(("excluded", column))
}

/// Checks a client key: 1-255 printable characters.
pub fn validate_key(key: &str, field: &str) -> DomainResult<()> {
    let length = key.chars().count();
    if !(1..=255).contains(&length) || key.chars().any(char::is_control) {
        return Err(DomainError::bad_input(
            field,
            "must be 1-255 printable characters",
        ));
    }
    Ok(())
}

/// A client-meaningful error, as stored for replay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "SCREAMING_SNAKE_CASE")]
enum StoredError {
    Forbidden,
    NotFound,
    Conflict { message: String },
    InsufficientFunds { required: Amount, available: Amount },
}

impl StoredError {
    /// The stored form of `err`, or `None` for errors a retry may not
    /// repeat (validation, rate limits, provider outages, internal).
    fn of(err: &DomainError) -> Option<Self> {
        match err {
            DomainError::Forbidden => Some(Self::Forbidden),
            DomainError::NotFound => Some(Self::NotFound),
            DomainError::Conflict(message) => Some(Self::Conflict {
                message: message.clone(),
            }),
            DomainError::InsufficientFunds {
                required,
                available,
            } => Some(Self::InsufficientFunds {
                required: *required,
                available: *available,
            }),
            _ => None,
        }
    }

    fn into_error(self) -> DomainError {
        match self {
            Self::Forbidden => DomainError::Forbidden,
            Self::NotFound => DomainError::NotFound,
            Self::Conflict { message } => DomainError::Conflict(message),
            Self::InsufficientFunds {
                required,
                available,
            } => DomainError::InsufficientFunds {
                required,
                available,
            },
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
enum Outcome {
    Ok { value: serde_json::Value },
    Err { error: StoredError },
}

impl Outcome {
    fn into_result<T: DeserializeOwned>(self) -> DomainResult<T> {
        match self {
            Outcome::Ok { value } => {
                Ok(serde_json::from_value(value).context("unreadable stored outcome")?)
            }
            Outcome::Err { error } => Err(error.into_error()),
        }
    }
}

fn hash_of<I: Serialize>(input: &I) -> DomainResult<Vec<u8>> {
    let bytes = serde_json::to_vec(input).context("unhashable input")?;
    Ok(Sha256::digest(bytes).to_vec())
}

/// A live key with the same input.
enum Existing {
    /// Its outcome is stored.
    Done(Outcome),
    /// Claimed, outcome not stored yet.
    InFlight,
}

/// The columns of a key row [`existing`] reads.
#[derive(DerivePartialModel)]
#[sea_orm(entity = "keys::Entity")]
struct KeyRow {
    request_hash: Vec<u8>,
    state: keys::State,
    outcome: Option<serde_json::Value>,
}

/// The live key of `scope`, if any; `IDEMPOTENCY_KEY_REUSED` if it was
/// used with another input.
async fn existing(
    db: &DatabaseConnection,
    scope: &Scope<'_>,
    hash: &[u8],
) -> DomainResult<Option<Existing>> {
    let row = keys::Entity::find()
        .filter(scope.key_row())
        .filter(
            keys::Column::ExpiresAt
                .into_expr()
                .gte(Expr::current_timestamp()),
        )
        .into_partial_model::<KeyRow>()
        .one(db)
        .await?;
    let Some(row) = row else { return Ok(None) };
    if row.request_hash != hash {
        return Err(DomainError::IdempotencyKeyReused);
    }
    if row.state != keys::State::Done {
        return Ok(Some(Existing::InFlight));
    }
    let outcome = row
        .outcome
        .ok_or_else(|| DomainError::Internal(anyhow::anyhow!("a DONE key without an outcome")))?;
    Ok(Some(Existing::Done(
        serde_json::from_value(outcome).context("unreadable stored outcome")?,
    )))
}

/// How a key is held while its work runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// Claimed in its own committed transaction first ([`run`]): for work
    /// that calls another party (the payment provider) before its
    /// transaction, so a duplicate sees the claim meanwhile.
    Claim,
    /// Written by the work's own transaction, after the work has checked
    /// for a stored outcome: for work that is all database; one commit
    /// instead of two.
    Transaction,
    /// [`Hold::Transaction`] without looking for a stored outcome first:
    /// the work just runs, and finds the key taken when it writes it (then
    /// it is rolled back and the stored outcome answered). One round trip
    /// less on every first request; only for work whose every effect
    /// commits with the key, so a repeat's work leaves nothing behind.
    Optimistic,
}

/// What work under a key hands back to [`run_posting`].
pub struct Work<T> {
    /// Its open transaction, committed with the key's outcome.
    pub txn: DatabaseTransaction,
    /// The value replayed to repeats.
    pub value: T,
    /// Its ledger posting, announced (caches invalidated, relay woken) once
    /// the transaction has committed.
    pub posted: Option<crate::ledger::Posted>,
    /// Statements that end the work, written with the key's outcome in one
    /// round trip (rows nothing else in the work reads, the audit entry).
    pub closing: Batch,
}

impl<T> Work<T> {
    /// Work with nothing left to write but the key.
    pub fn new(txn: DatabaseTransaction, value: T, posted: Option<crate::ledger::Posted>) -> Self {
        Self {
            txn,
            value,
            posted,
            closing: Batch::new(),
        }
    }
}

/// Runs `work` once per key and input, holding the key as `hold` says. A
/// replay posted nothing and announces nothing.
pub async fn run_posting<I, T, F, Fut>(
    services: &crate::Services,
    hold: Hold,
    scope: Scope<'_>,
    input: &I,
    work: F,
) -> DomainResult<T>
where
    I: Serialize,
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: Future<Output = DomainResult<Work<T>>>,
{
    let mut posted = None;
    let slot = &mut posted;
    let work = || async move {
        let work = work().await?;
        *slot = work.posted;
        Ok((work.txn, work.value, work.closing))
    };
    let value = match hold {
        // A claimed run's work either committed or failed the whole call.
        Hold::Claim => claim::run_closing(&services.db, scope, input, work).await?,
        Hold::Transaction | Hold::Optimistic => {
            let check_first = hold == Hold::Transaction;
            let (value, ours) =
                transaction::run_in_transaction(&services.db, scope, input, check_first, work)
                    .await?;
            if !ours {
                // Rolled back in favour of a duplicate: nothing to announce.
                posted = None;
            }
            value
        }
    };
    if let Some(posted) = posted {
        posted.committed(services);
    }
    Ok(value)
}

/// Runs `closing`, whose last part writes the key and returns a row when
/// it did, as one statement; true if the key was written.
async fn write_key<C: ConnectionTrait>(conn: &C, closing: Batch) -> DomainResult<bool> {
    Ok(closing.fetch_one(conn).await?.is_some())
}

/// Deletes expired keys, at most `batch` of them; returns how many.
pub async fn sweep(db: &DatabaseConnection, batch: u32) -> DomainResult<u64> {
    let expired = keys::Entity::find()
        .select_only()
        .expr(Expr::col("ctid"))
        .filter(
            keys::Column::ExpiresAt
                .into_expr()
                .lt(Expr::current_timestamp()),
        )
        .limit(u64::from(batch))
        .into_query();
    let deleted = keys::Entity::delete_many()
        .filter(Expr::col("ctid").in_subquery(expired))
        .exec(db)
        .await?;
    Ok(deleted.rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_255_printable_characters() {
        assert!(validate_key("order-42", "k").is_ok());
        assert!(validate_key(&"x".repeat(255), "k").is_ok());
        assert!(validate_key("", "k").is_err());
        assert!(validate_key(&"x".repeat(256), "k").is_err());
        assert!(validate_key("line\nbreak", "k").is_err());
    }

    #[test]
    fn only_client_meaningful_errors_are_stored() {
        assert!(StoredError::of(&DomainError::bad_input("f", "m")).is_none());
        assert!(StoredError::of(&DomainError::PaymentProviderUnavailable).is_none());
        let stored = StoredError::of(&DomainError::InsufficientFunds {
            required: Amount::new(5).expect("amount"),
            available: Amount::ZERO,
        });
        let json = serde_json::to_string(&stored).expect("json");
        let back: Option<StoredError> = serde_json::from_str(&json).expect("back");
        assert_eq!(back, stored);
    }
}
