//! Holding a key inside the work's own transaction
//! ([`super::Hold::Transaction`], [`super::Hold::Optimistic`]), for work
//! that is all database.

use std::future::Future;

use anyhow::Context as _;
use giftdrop_entities::ledger::idempotency_keys as keys;
use sea_orm::sea_query::{Expr, ExprTrait, InsertStatement, OnConflict, Query};
use sea_orm::{DatabaseConnection, DatabaseTransaction, EntityName};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    Existing, Outcome, POLL, RETENTION, Scope, StoredError, WAIT, current, existing, from_now,
    hash_of, write_key,
};
use crate::error::{DomainError, DomainResult};
use crate::sql::Batch;

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

/// Adds the write of the key as DONE with `outcome` unless a live key
/// exists to `batch`; it returns a row if it wrote. Run, it waits for a
/// concurrent transaction writing the same key.
fn push_done(
    batch: &mut Batch,
    scope: &Scope<'_>,
    hash: &[u8],
    outcome: &Outcome,
) -> DomainResult<()> {
    use keys::Column::{
        CallerId, Claim, CreatedAt, ExpiresAt, Key, LockedUntil, Operation, RequestHash, State,
    };
    batch.push(
        done_insert(scope, hash, outcome)?
            .on_conflict(
                OnConflict::columns([CallerId, Operation, Key])
                    .update_columns([RequestHash, keys::Column::Outcome, ExpiresAt])
                    .value(State, keys::State::Done)
                    .value(Claim, Expr::null())
                    .value(LockedUntil, Expr::null())
                    .value(CreatedAt, Expr::current_timestamp())
                    .action_and_where(current(ExpiresAt).lt(Expr::current_timestamp()))
                    .to_owned(),
            )
            .returning_col(CallerId)
            .to_owned(),
    );
    Ok(())
}

/// The insert of the key as DONE with `outcome`.
fn done_insert(scope: &Scope<'_>, hash: &[u8], outcome: &Outcome) -> DomainResult<InsertStatement> {
    use keys::Column::{CallerId, ExpiresAt, Key, Operation, RequestHash, State};
    let json = serde_json::to_value(outcome).context("unstorable outcome")?;
    Ok(Query::insert()
        .into_table(keys::Entity.table_ref())
        .columns([
            CallerId,
            Operation,
            Key,
            RequestHash,
            State,
            keys::Column::Outcome,
            ExpiresAt,
        ])
        .values_panic([
            scope.caller.into(),
            scope.operation.into(),
            scope.key.into(),
            hash.to_vec().into(),
            keys::State::Done.into(),
            json.into(),
            from_now(RETENTION),
        ])
        .to_owned())
}

/// The key of work that runs as ONE autocommitted statement (a
/// [`crate::sql::Batch`] sent outside any transaction), as a part of that
/// statement: written as DONE with `value` as the outcome. Any row of the
/// scope's key (live, in flight or expired and not yet swept) fails the
/// whole statement with a unique violation, so the work commits only as
/// the key's first use; on any such failure the caller runs its general
/// path ([`super::run_posting`]), which replays, waits or reuses the key.
pub fn first_use<I: Serialize, T: Serialize>(
    batch: &mut Batch,
    scope: &Scope<'_>,
    input: &I,
    value: &T,
) -> DomainResult<()> {
    let value = serde_json::to_value(value).context("unstorable outcome")?;
    batch.push(done_insert(
        scope,
        &hash_of(input)?,
        &Outcome::Ok { value },
    )?);
    Ok(())
}

/// [`super::run_posting`] for work that is all database: the outcome is
/// written with the effect, and with the work's closing statements, in the
/// work's one transaction (see the module docs). With `check_first`, a
/// stored outcome is looked for before the work runs ([`super::Hold`]).
/// Also says whether this call's work is the one that committed (false: a
/// replay, or a concurrent duplicate won and this call's work was rolled
/// back).
pub(super) async fn run_in_transaction<I, T, F, Fut>(
    db: &DatabaseConnection,
    scope: Scope<'_>,
    input: &I,
    check_first: bool,
    work: F,
) -> DomainResult<(T, bool)>
where
    I: Serialize,
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: Future<Output = DomainResult<(DatabaseTransaction, T, Batch)>>,
{
    let hash = hash_of(input)?;
    if check_first && let Some(outcome) = stored(db, &scope, &hash).await? {
        return Ok((outcome.into_result()?, false));
    }
    let result = async {
        let (txn, value, mut closing) = work().await?;
        let json = serde_json::to_value(&value).context("unstorable outcome")?;
        push_done(&mut closing, &scope, &hash, &Outcome::Ok { value: json })?;
        if write_key(&txn, closing).await? {
            txn.commit().await?;
            Ok(Some(value))
        } else {
            // A live key was there first (a repeat, or a concurrent
            // duplicate that committed first): drop (roll back) ours.
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
            if let Some(error) = StoredError::of(&err) {
                let mut key = Batch::new();
                push_done(&mut key, &scope, &hash, &Outcome::Err { error })?;
                if !write_key(db, key).await? {
                    return Ok((replay(db, &scope, &hash).await?, false));
                }
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
