//! Holding a key by a claim committed before the work runs
//! ([`super::Hold::Claim`]), for work that calls another party first.

use std::future::Future;

use anyhow::Context as _;
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::{
    Existing, LEASE, Outcome, POLL, RETENTION, Scope, StoredError, WAIT, existing, hash_of,
    write_key,
};
use crate::error::{DomainError, DomainResult};
use crate::sql::{Batch, statement};

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
        let claimed = db
            .query_one_raw(statement(
                "INSERT INTO ledger.idempotency_keys \
                   (caller_id, operation, key, request_hash, state, claim, locked_until, expires_at) \
                 VALUES ($1, $2, $3, $4, 'IN_PROGRESS', $5, now() + make_interval(secs => $6), now() + make_interval(secs => $7)) \
                 ON CONFLICT (caller_id, operation, key) DO UPDATE \
                   SET request_hash = EXCLUDED.request_hash, state = 'IN_PROGRESS', claim = EXCLUDED.claim, \
                       outcome = NULL, locked_until = EXCLUDED.locked_until, created_at = now(), \
                       expires_at = EXCLUDED.expires_at \
                 WHERE idempotency_keys.expires_at < now() \
                    OR (idempotency_keys.state = 'IN_PROGRESS' AND idempotency_keys.locked_until < now() \
                        AND idempotency_keys.request_hash = EXCLUDED.request_hash) \
                 RETURNING claim",
                scope.values([
                    hash.to_vec().into(),
                    token.into(),
                    LEASE.as_secs_f64().into(),
                    RETENTION.as_secs_f64().into(),
                ]),
            ))
            .await?;
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

/// Adds the storing of `outcome` in the key, guarded by our claim token,
/// to `batch`; it returns a row if it stored.
fn push_store(
    batch: &mut Batch,
    scope: &Scope<'_>,
    token: Uuid,
    outcome: &Outcome,
) -> DomainResult<()> {
    let json = serde_json::to_value(outcome).context("unstorable outcome")?;
    let [caller, operation, key] = scope.bind(batch);
    let [token, outcome] = batch.binds([token.into(), json.into()]);
    batch.sql(format!(
        "UPDATE ledger.idempotency_keys SET state = 'DONE', outcome = {outcome}, claim = NULL, locked_until = NULL \
         WHERE caller_id = {caller} AND operation = {operation} AND key = {key} AND claim = {token} \
         RETURNING 1 AS written"
    ));
    Ok(())
}

async fn release(db: &DatabaseConnection, scope: &Scope<'_>, token: Uuid) -> DomainResult<()> {
    db.execute_raw(statement(
        "DELETE FROM ledger.idempotency_keys WHERE caller_id = $1 AND operation = $2 AND key = $3 AND claim = $4",
        scope.values([token.into()]),
    ))
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
