//! Posting transfers: the only code that changes balances.

use std::collections::BTreeSet;

use sea_orm::{ConnectionTrait, DatabaseTransaction, QueryResult, Statement, Value};
use uuid::Uuid;

use super::{
    Account, Direction, EntryKind, Leg, Posted, Transfer, bug, wallet_balance, wallet_topic,
    wallet_view,
};
use crate::context::RequestMeta;
use crate::error::{DomainError, DomainResult};
use crate::outbox;
use crate::sql::{Batch, statement};

/// Posts `transfer` inside `txn`. A debit larger than a wallet's balance is
/// `InsufficientFunds`, a credit past the largest balance `BalanceLimit`
/// (and the caller's transaction must be rolled back, which dropping it
/// does). An unbalanced transfer is a bug: `Internal`.
pub async fn post(
    txn: &DatabaseTransaction,
    meta: &RequestMeta,
    transfer: Transfer<'_>,
) -> DomainResult<Posted> {
    let wallet_legs = checked(&transfer)?;
    if let [(wallet, leg)] = wallet_legs[..] {
        return post_one_wallet(txn, meta, &transfer, wallet, leg).await;
    }
    let legs = &transfer.legs;

    // Wallets first, in ascending id order: the lock order of every posting.
    let mut wallets = Vec::with_capacity(wallet_legs.len());
    for (id, leg) in &wallet_legs {
        let delta = i64::try_from(leg.delta()).map_err(|_| bug("delta out of range"))?;
        let row = txn
            .query_one_raw(statement(
                "UPDATE ledger.accounts SET balance = balance + $2, version = version + 1 \
                 WHERE id = $1 AND kind IN ('USER', 'MERCHANT') AND balance + $2 >= 0 \
                 RETURNING id, kind, owner_id, balance, version",
                vec![(*id).into(), delta.into()],
            ))
            .await
            .map_err(|err| DomainError::from(err).or_balance_limit())?;
        match row {
            Some(row) => wallets.push(wallet_view(&row)?),
            None => {
                let available = wallet_balance(txn, *id)
                    .await?
                    .ok_or_else(|| bug("posting to a wallet that does not exist"))?;
                return Err(DomainError::InsufficientFunds {
                    required: leg.amount,
                    available,
                });
            }
        }
    }

    // The transfer and all its entries in one statement.
    let transfer_id = Uuid::now_v7();
    let mut values: Vec<Value> = vec![
        transfer_id.into(),
        transfer.kind.as_str().into(),
        transfer.reference.into(),
        meta.correlation_id.as_str().into(),
    ];
    let mut rows = Vec::with_capacity(legs.len());
    for leg in legs {
        let balance_after = wallets
            .iter()
            .find(|w| Account::Wallet(w.id) == leg.account)
            .map(|w| w.balance.minor());
        let n = values.len();
        rows.push(format!(
            "($1, ${}::uuid, $2, ${}, ${}::bigint, ${}::bigint, $3)",
            n + 1,
            n + 2,
            n + 3,
            n + 4
        ));
        values.push(leg.account.id().into());
        values.push(leg.direction.as_str().into());
        values.push(leg.amount.minor().into());
        values.push(balance_after.into());
    }
    // The wallets' new states go to the outbox in the same statement
    // (`walletUpdated`); the relay publishes them after the commit.
    let mut announcements = Vec::with_capacity(wallets.len());
    for wallet in &wallets {
        let payload = serde_json::to_value(wallet).map_err(|e| {
            DomainError::Internal(anyhow::Error::new(e).context("unencodable wallet"))
        })?;
        let n = values.len();
        announcements.push(format!(
            "('{}', ${}, ${}::jsonb, $4)",
            outbox::KIND_PUBLISH,
            n + 1,
            n + 2
        ));
        values.push(wallet_topic(wallet.owner()).into());
        values.push(payload.into());
    }
    let announce = if announcements.is_empty() {
        String::new()
    } else {
        format!(
            ", announce AS (INSERT INTO ops.outbox (kind, target, payload, correlation_id) VALUES {})",
            announcements.join(", ")
        )
    };
    let sql = format!(
        "WITH transfer AS (INSERT INTO ledger.transfers (id, kind, reference, correlation_id) \
         VALUES ($1, $2, $3, $4)){announce} \
         INSERT INTO ledger.entries (transfer_id, account_id, kind, direction, amount, balance_after, reference) \
         VALUES {}",
        rows.join(", ")
    );
    txn.execute_raw(statement(&sql, values)).await?;
    count_movements(&transfer);
    Ok(Posted {
        transfer_id,
        wallets,
    })
}

/// The wallet legs of a well-formed `transfer`, in ascending wallet id (the
/// lock order of every posting); a malformed transfer is a bug: `Internal`.
fn checked(transfer: &Transfer<'_>) -> DomainResult<Vec<(Uuid, Leg)>> {
    let legs = &transfer.legs;
    if legs.len() < 2 {
        return Err(bug("a transfer needs two or more legs"));
    }
    if legs.iter().any(|l| l.amount.is_zero()) {
        return Err(bug("a leg of zero"));
    }
    if legs.iter().map(|l| l.delta()).sum::<i128>() != 0 {
        return Err(bug("credits and debits differ"));
    }
    let accounts: BTreeSet<Account> = legs.iter().map(|l| l.account).collect();
    if accounts.len() != legs.len() {
        return Err(bug("an account appears twice in one transfer"));
    }
    let mut wallet_legs: Vec<(Uuid, Leg)> = legs
        .iter()
        .filter_map(|leg| match leg.account {
            Account::Wallet(id) => Some((id, *leg)),
            Account::Platform(_) => None,
        })
        .collect();
    wallet_legs.sort_by_key(|(id, _)| *id);
    Ok(wallet_legs)
}

/// [`post`] of a transfer with exactly one wallet leg (every flow today
/// but wallet-to-wallet transfers): the balance-checked wallet update, the
/// transfer, its entries and the wallet's announcement in ONE statement,
/// so a hot wallet's row lock is held for one round trip less per step of
/// the caller. Nothing is written when the wallet lacks the funds.
async fn post_one_wallet(
    txn: &DatabaseTransaction,
    meta: &RequestMeta,
    transfer: &Transfer<'_>,
    wallet: Uuid,
    wallet_leg: Leg,
) -> DomainResult<Posted> {
    let mut batch = Batch::new();
    let transfer_id = push_one_wallet(&mut batch, meta, transfer, wallet, wallet_leg, Guard::Skip)?;
    let posted = batch.fetch_one(txn, posted_wallet()).await;
    let Some(row) = posted.map_err(DomainError::or_balance_limit)? else {
        let available = wallet_balance(txn, wallet)
            .await?
            .ok_or_else(|| bug("posting to a wallet that does not exist"))?;
        return Err(DomainError::InsufficientFunds {
            required: wallet_leg.amount,
            available,
        });
    };
    count_movements(transfer);
    Ok(Posted {
        transfer_id,
        wallets: vec![wallet_view(&row)?],
    })
}

/// A one-wallet transfer as parts of a batch that is sent on its own, as
/// ONE autocommitted statement, with the rest of its use case: the caller
/// runs `batch` with [`InBatch::main`] as its main statement and reads the
/// row with [`InBatch::posted`]. A wallet without the funds fails the whole
/// statement on the wallet's `CHECK (balance >= 0)`, so nothing of the
/// batch is written; so does any other constraint. With `only_if`, the
/// name of an earlier part, nothing is posted unless that part returns a
/// row: the batch's other rows must then reference the transfer (as an
/// escrow's `reserve_transfer_id` does), so that they fail the statement
/// without it. (Inside a transaction, use [`post`].)
pub fn post_in_batch(
    batch: &mut Batch,
    meta: &RequestMeta,
    transfer: &Transfer<'_>,
    only_if: Option<&str>,
) -> DomainResult<InBatch> {
    let [(wallet, leg)] = checked(transfer)?[..] else {
        return Err(bug("a batched posting has exactly one wallet leg"));
    };
    let transfer_id = push_one_wallet(batch, meta, transfer, wallet, leg, Guard::Fail(only_if))?;
    Ok(InBatch {
        transfer_id,
        kind: transfer.kind,
        directions: transfer.legs.iter().map(|l| l.direction).collect(),
    })
}

/// A posting added to a batch by [`post_in_batch`], not yet run.
#[derive(Debug)]
#[must_use = "run the batch with `main` and read its row with `posted`"]
pub struct InBatch {
    transfer_id: Uuid,
    kind: EntryKind,
    directions: Vec<Direction>,
}

impl InBatch {
    /// The transfer's id.
    pub fn transfer_id(&self) -> Uuid {
        self.transfer_id
    }

    /// The batch's main statement: the wallet row after the posting.
    pub fn main(&self) -> Statement {
        posted_wallet()
    }

    /// The posting, from the row the batch returned (once it has
    /// committed).
    pub fn posted(self, row: &QueryResult) -> DomainResult<Posted> {
        for direction in &self.directions {
            count_movement(self.kind, *direction);
        }
        Ok(Posted {
            transfer_id: self.transfer_id,
            wallets: vec![wallet_view(row)?],
        })
    }
}

/// What the wallet update of a one-wallet posting does when it cannot go
/// through.
#[derive(Clone, Copy, Debug)]
enum Guard<'a> {
    /// A wallet without the funds is not updated, and the parts write
    /// nothing.
    Skip,
    /// A wallet without the funds fails the statement; with a part's name,
    /// the wallet is updated only if that part returned a row.
    Fail(Option<&'a str>),
}

/// The statement reading the wallet row of a one-wallet posting's parts.
fn posted_wallet() -> Statement {
    statement("SELECT id, kind, owner_id, balance, version FROM w", vec![])
}

/// Adds the parts of a one-wallet posting to `batch`: `w` (the wallet
/// update), `t` (the transfer), `e` (its entries) and `o` (the wallet's
/// announcement, the WalletView's JSON built by Postgres from the updated
/// row, on `wallet_topic` of the owner). Returns the transfer's id.
fn push_one_wallet(
    batch: &mut Batch,
    meta: &RequestMeta,
    transfer: &Transfer<'_>,
    wallet: Uuid,
    wallet_leg: Leg,
    guard: Guard<'_>,
) -> DomainResult<Uuid> {
    let delta = i64::try_from(wallet_leg.delta()).map_err(|_| bug("delta out of range"))?;
    let transfer_id = Uuid::now_v7();
    let mut values: Vec<Value> = vec![
        transfer_id.into(),
        transfer.kind.as_str().into(),
        transfer.reference.into(),
        meta.correlation_id.as_str().into(),
        delta.into(),
        wallet.into(),
    ];
    let mut rows = Vec::with_capacity(transfer.legs.len());
    for leg in &transfer.legs {
        let n = values.len();
        rows.push(format!(
            "(${}::uuid, ${}::text, ${}::bigint)",
            n + 1,
            n + 2,
            n + 3
        ));
        values.push(leg.account.id().into());
        values.push(leg.direction.as_str().into());
        values.push(leg.amount.minor().into());
    }
    let guard = match guard {
        Guard::Skip => " AND balance + $5 >= 0".to_owned(),
        Guard::Fail(None) => String::new(),
        Guard::Fail(Some(part)) => format!(" AND EXISTS (SELECT 1 FROM {part})"),
    };
    batch.push_named(
        &["w", "t", "e", "o"],
        [
            format!(
                "UPDATE ledger.accounts SET balance = balance + $5, version = version + 1 \
                 WHERE id = $6 AND kind IN ('USER', 'MERCHANT'){guard} \
                 RETURNING id, kind, owner_id, balance, version"
            ),
            "INSERT INTO ledger.transfers (id, kind, reference, correlation_id) SELECT $1, $2, $3, $4 FROM w"
                .to_owned(),
            format!(
                "INSERT INTO ledger.entries (transfer_id, account_id, kind, direction, amount, balance_after, reference) \
                 SELECT $1, x.account, $2, x.direction, x.amount, CASE WHEN x.account = w.id THEN w.balance END, $3 \
                 FROM w CROSS JOIN (VALUES {}) AS x (account, direction, amount)",
                rows.join(", ")
            ),
            format!(
                "INSERT INTO ops.outbox (kind, target, payload, correlation_id) \
                 SELECT '{}', 'wallet:' || w.kind || ':' || w.owner_id, \
                   jsonb_build_object('id', w.id, 'kind', w.kind, 'owner_id', w.owner_id, 'balance', w.balance, 'version', w.version), $4 \
                 FROM w",
                outbox::KIND_PUBLISH
            ),
        ],
        Some(sea_orm::Values(values)),
    );
    Ok(transfer_id)
}

fn count_movements(transfer: &Transfer<'_>) {
    for leg in &transfer.legs {
        count_movement(transfer.kind, leg.direction);
    }
}

fn count_movement(kind: EntryKind, direction: Direction) {
    metrics::counter!("giftdrop_ledger_movements_total", "kind" => kind.as_str(), "direction" => direction.as_str())
        .increment(1);
}
