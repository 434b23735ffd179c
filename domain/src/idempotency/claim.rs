//! Holding a key by a claim committed before the work runs
//! ([`super::Hold::Claim`]), for work that calls another party first.

use std::future::Future;

use anyhow::Context as _;
use giftdrop_entities::ledger::idempotency_keys as keys;
use sea_orm::sea_query::{Expr, ExprTrait, InsertStatement, OnConflict, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityName,
    EntityTrait, QueryFilter, QueryTrait,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::{
    Existing, LEASE, Outcome, POLL, RETENTION, Scope, StoredError, WAIT, current, excluded,
    existing, from_now, hash_of, write_key,
};
use crate::error::{DomainError, DomainResult};
use crate::sql::Batch;

enum Claimed {
    Fresh(Uuid),
    Done(Outcome),
}

/// Claims the key, or finds its outcome. Takes over an expired outcome or
/// a claim whose lease ran out (with the same input).
async fn claim(db: &DatabaseConnection, scope: &Scope<'_>, hash: &[u8]) -> DomainResult<Claimed> {
    let token = Uuid::new_v4();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let claimed = db.query_one(&claim_statement(scope, hash, token)).await?;
        if claimed.is_some() {
            return Ok(Claimed::Fresh(token));
        }
        match existing(db, scope, hash).await? {
            Some(Existing::Done(outcome)) => return Ok(Claimed::Done(outcome)),
            Some(Existing::InFlight) if tokio::time::Instant::now() >= deadline => {
                return Err(DomainError::IdempotencyKeyInUse);
            }
            Some(Existing::InFlight) => tokio::time::sleep(POLL).await,
            // Gone between the two statements (released by a failed first
            // request, or expired): claim again.
            None => {}
        }
    }
}

/// The insert of a fresh claim of the key with `token`, or its takeover
/// when the key expired or its claim's lease ran out (with the same
/// input); it returns a row if it claimed.
fn claim_statement(scope: &Scope<'_>, hash: &[u8], token: Uuid) -> InsertStatement {
    use keys::Column::{
        CallerId, Claim, CreatedAt, ExpiresAt, Key, LockedUntil, Operation, RequestHash, State,
    };
    let takeover = Condition::any()
        .add(current(ExpiresAt).lt(Expr::current_timestamp()))
        .add(
            Condition::all()
                .add(current(State).eq(keys::State::InProgress))
                .add(current(LockedUntil).lt(Expr::current_timestamp()))
                .add(current(RequestHash).eq(excluded(RequestHash))),
        );
    Query::insert()
        .into_table(keys::Entity.table_ref())
        .columns([
            CallerId,
            Operation,
            Key,
            RequestHash,
            State,
            Claim,
            LockedUntil,
            ExpiresAt,
        ])
        .values_panic([
            scope.caller.into(),
            scope.operation.into(),
            scope.key.into(),
            hash.to_vec().into(),
            keys::State::InProgress.into(),
            token.into(),
            from_now(LEASE),
            from_now(RETENTION),
        ])
        .on_conflict(
            OnConflict::columns([CallerId, Operation, Key])
                .update_columns([RequestHash, Claim, LockedUntil, ExpiresAt])
                .value(State, keys::State::InProgress)
                .value(keys::Column::Outcome, Expr::null())
                .value(CreatedAt, Expr::current_timestamp())
                .action_cond_where(takeover)
                .to_owned(),
        )
        .returning_col(Claim)
        .to_owned()
}

/// Adds the storing of `outcome` in the key, guarded by our claim token,
/// to `batch`; it returns a row if it stored.
fn push_store(
    batch: &mut Batch,
    scope: &Scope<'_>,
    token: Uuid,
    outcome: &Outcome,
) -> DomainResult<()> {
    let json = serde_json::to_value(outcome).context("unstorable outcome")?;
    batch.push(
        keys::Entity::update_many()
            .col_expr(keys::Column::State, keys::State::Done.into())
            .col_expr(keys::Column::Outcome, json.into())
            .col_expr(keys::Column::Claim, Expr::null())
            .col_expr(keys::Column::LockedUntil, Expr::null())
            .filter(scope.key_row())
            .filter(keys::Column::Claim.eq(token))
            .into_query()
            .returning_col(keys::Column::CallerId)
            .to_owned(),
    );
    Ok(())
}

async fn release(db: &DatabaseConnection, scope: &Scope<'_>, token: Uuid) -> DomainResult<()> {
    keys::Entity::delete_many()
        .filter(scope.key_row())
        .filter(keys::Column::Claim.eq(token))
        .exec(db)
        .await?;
    Ok(())
}

/// Runs `work` at most once per key and input. `work` returns its open
/// transaction with the value; the outcome is stored in that transaction
/// and committed with it. The value is replayed to repeats, so it should be
/// small (an id, a few amounts).
pub async fn run<I, T, F, Fut>(
    db: &DatabaseConnection,
    scope: Scope<'_>,
    input: &I,
    work: F,
) -> DomainResult<T>
where
    I: Serialize,
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: Future<Output = DomainResult<(DatabaseTransaction, T)>>,
{
    run_closing(db, scope, input, || async {
        let (txn, value) = work().await?;
        Ok((txn, value, Batch::new()))
    })
    .await
}

/// [`run`] whose work also hands back closing statements, written with the
/// outcome in one round trip.
pub(super) async fn run_closing<I, T, F, Fut>(
    db: &DatabaseConnection,
    scope: Scope<'_>,
    input: &I,
    work: F,
) -> DomainResult<T>
where
    I: Serialize,
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: Future<Output = DomainResult<(DatabaseTransaction, T, Batch)>>,
{
    let hash = hash_of(input)?;
    let token = match claim(db, &scope, &hash).await? {
        Claimed::Done(outcome) => return outcome.into_result(),
        Claimed::Fresh(token) => token,
    };
    let result = async {
        let (txn, value, mut closing) = work().await?;
        let json = serde_json::to_value(&value).context("unstorable outcome")?;
        push_store(&mut closing, &scope, token, &Outcome::Ok { value: json })?;
        if !write_key(&txn, closing).await? {
            // Our lease ran out and another request took the key over:
            // roll back rather than commit a second effect.
            return Err(DomainError::IdempotencyKeyInUse);
        }
        txn.commit().await?;
        Ok(value)
    }
    .await;
    if let Err(err) = &result {
        let recorded = match StoredError::of(err) {
            Some(error) => {
                let mut key = Batch::new();
                match push_store(&mut key, &scope, token, &Outcome::Err { error }) {
                    Ok(()) => write_key(db, key).await.map(drop),
                    Err(e) => Err(e),
                }
            }
            None => release(db, &scope, token).await,
        };
        // The caller learns the real failure; the claim then simply expires
        // with its lease, after which a retry can take the key over.
        if let Err(record_err) = recorded {
            tracing::error!(
                error = %record_err,
                operation = scope.operation,
                "could not record an idempotency outcome; the key frees when its lease ends"
            );
        }
    }
    result
}
