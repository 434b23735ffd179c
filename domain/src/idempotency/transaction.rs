//! Holding a key inside the work's own transaction
//! ([`super::Hold::Transaction`]), for work that is all database.

use std::future::Future;

use anyhow::Context as _;
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Existing, Outcome, POLL, RETENTION, Scope, StoredError, WAIT, existing, hash_of};
use crate::error::{DomainError, DomainResult};
use crate::sql::statement;

/// The stored outcome of a live key with this input: `Ok(None)` if there is
/// none (or it expired), `IDEMPOTENCY_KEY_REUSED` for another input, and a
/// moment's wait, then `IDEMPOTENCY_KEY_IN_USE`, for a claim in flight.
async fn stored(
    db: &DatabaseConnection,
    scope: &Scope<'_>,
    hash: &[u8],
) -> DomainResult<Option<Outcome>> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match existing(db, scope, hash).await? {
            None => return Ok(None),
            Some(Existing::Done(outcome)) => return Ok(Some(outcome)),
            Some(Existing::InFlight) if tokio::time::Instant::now() >= deadline => {
                return Err(DomainError::IdempotencyKeyInUse);
            }
            Some(Existing::InFlight) => tokio::time::sleep(POLL).await,
        }
    }
}

/// Writes the key as DONE with `outcome` unless a live key exists; true if
/// written. Waits for a concurrent transaction writing the same key.
async fn insert_done<C: ConnectionTrait>(
    conn: &C,
    scope: &Scope<'_>,
    hash: &[u8],
    outcome: &Outcome,
) -> DomainResult<bool> {
    let json = serde_json::to_value(outcome).context("unstorable outcome")?;
    let written = conn
        .query_one_raw(statement(
            "INSERT INTO ledger.idempotency_keys (caller_id, operation, key, request_hash, state, outcome, expires_at) \
             VALUES ($1, $2, $3, $4, 'DONE', $5, now() + make_interval(secs => $6)) \
             ON CONFLICT (caller_id, operation, key) DO UPDATE \
               SET request_hash = EXCLUDED.request_hash, state = 'DONE', claim = NULL, outcome = EXCLUDED.outcome, \
                   locked_until = NULL, created_at = now(), expires_at = EXCLUDED.expires_at \
             WHERE idempotency_keys.expires_at < now() \
             RETURNING 1 AS written",
            scope.values([
                hash.to_vec().into(),
                json.into(),
                RETENTION.as_secs_f64().into(),
            ]),
        ))
        .await?;
    Ok(written.is_some())
}

/// [`run`] for work that is all database: the outcome is written with the
/// effect in the work's one transaction (see the module docs). Also says
/// whether this call's work is the one that committed (false: a replay, or
/// a concurrent duplicate won and this call's work was rolled back).
pub(super) async fn run_in_transaction<I, T, F, Fut>(
    db: &DatabaseConnection,
    scope: Scope<'_>,
    input: &I,
    work: F,
) -> DomainResult<(T, bool)>
where
    I: Serialize,
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: Future<Output = DomainResult<(DatabaseTransaction, T)>>,
{
    let hash = hash_of(input)?;
    if let Some(outcome) = stored(db, &scope, &hash).await? {
        return Ok((outcome.into_result()?, false));
    }
    let result = async {
        let (txn, value) = work().await?;
        let json = serde_json::to_value(&value).context("unstorable outcome")?;
        if insert_done(&txn, &scope, &hash, &Outcome::Ok { value: json }).await? {
            txn.commit().await?;
            Ok(Some(value))
        } else {
            // A concurrent duplicate committed first: drop (roll back) ours.
            Ok(None)
        }
    }
    .await;
    match result {
        Ok(Some(value)) => Ok((value, true)),
        Ok(None) => Ok((replay(db, &scope, &hash).await?, false)),
        Err(err) => {
            // The work may have failed only because a duplicate won (the
            // card it would redeem is redeemed): the winner's outcome is
            // the answer.
            if let Some(outcome) = stored(db, &scope, &hash).await? {
                return Ok((outcome.into_result()?, false));
            }
            if let Some(error) = StoredError::of(&err)
                && !insert_done(db, &scope, &hash, &Outcome::Err { error }).await?
            {
                return Ok((replay(db, &scope, &hash).await?, false));
            }
            Err(err)
        }
    }
}

/// The outcome a concurrent duplicate just stored.
async fn replay<T: DeserializeOwned>(
    db: &DatabaseConnection,
    scope: &Scope<'_>,
    hash: &[u8],
) -> DomainResult<T> {
    stored(db, scope, hash)
        .await?
        .ok_or(DomainError::IdempotencyKeyInUse)?
        .into_result()
}
