//! Posting transfers: the only code that changes balances.

use std::collections::BTreeSet;

use sea_orm::{ConnectionTrait, DatabaseTransaction, Value};
use uuid::Uuid;

use super::{Account, Leg, Posted, Transfer, bug, wallet_balance, wallet_topic, wallet_view};
use crate::context::RequestMeta;
use crate::error::{DomainError, DomainResult};
use crate::outbox;
use crate::sql::statement;

/// Posts `transfer` inside `txn`. A debit larger than a wallet's balance is
/// `InsufficientFunds` (and the caller's transaction must be rolled back,
/// which dropping it does). An unbalanced transfer is a bug: `Internal`.
pub async fn post(
    txn: &DatabaseTransaction,
    meta: &RequestMeta,
    transfer: Transfer<'_>,
) -> DomainResult<Posted> {
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
    if let [(wallet, leg)] = wallet_legs[..] {
        return post_one_wallet(txn, meta, &transfer, wallet, leg).await;
    }

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
            .await?;
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
    // The announcement is the WalletView's JSON, built by Postgres from the
    // updated row; its topic is `wallet_topic` of the owner.
    let sql = format!(
        "WITH w AS (UPDATE ledger.accounts SET balance = balance + $5, version = version + 1 \
           WHERE id = $6 AND kind IN ('USER', 'MERCHANT') AND balance + $5 >= 0 \
           RETURNING id, kind, owner_id, balance, version), \
         t AS (INSERT INTO ledger.transfers (id, kind, reference, correlation_id) SELECT $1, $2, $3, $4 FROM w), \
         e AS (INSERT INTO ledger.entries (transfer_id, account_id, kind, direction, amount, balance_after, reference) \
           SELECT $1, x.account, $2, x.direction, x.amount, CASE WHEN x.account = w.id THEN w.balance END, $3 \
           FROM w CROSS JOIN (VALUES {}) AS x (account, direction, amount)), \
         o AS (INSERT INTO ops.outbox (kind, target, payload, correlation_id) \
           SELECT '{}', 'wallet:' || w.kind || ':' || w.owner_id, \
             jsonb_build_object('id', w.id, 'kind', w.kind, 'owner_id', w.owner_id, 'balance', w.balance, 'version', w.version), $4 \
           FROM w) \
         SELECT id, kind, owner_id, balance, version FROM w",
        rows.join(", "),
        outbox::KIND_PUBLISH,
    );
    let Some(row) = txn.query_one_raw(statement(&sql, values)).await? else {
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

fn count_movements(transfer: &Transfer<'_>) {
    for leg in &transfer.legs {
        metrics::counter!("giftdrop_ledger_movements_total", "kind" => transfer.kind.as_str(), "direction" => leg.direction.as_str())
            .increment(1);
    }
}
