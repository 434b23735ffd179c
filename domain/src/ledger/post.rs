//! Posting transfers: the only code that changes balances.
//!
//! Every posting is ONE statement, built in one place ([`Posting::push`]),
//! whether it runs on its own inside the caller's transaction ([`post`]) or
//! as parts of a larger autocommitted statement ([`post_in_batch`], the
//! purchase): `w` updates the wallets (balance-checked; several are locked
//! first in ascending id order, the lock order of every posting), `t`
//! inserts the transfer, `e`
//! its entries (each wallet's with its balance after) and `o` each touched
//! wallet's `walletUpdated` message ([`super::wallet::message`]).
//!
//! Hand-written SQL, kept because it is measured: a hot wallet's row lock
//! is held for one round trip instead of three, which took purchases from
//! 726 to 806 a second (docs/benchmarks-history.md, "Reads and writes";
//! today's figure in BENCHMARKS.md, "Ledger posting").

use std::collections::BTreeSet;

use sea_orm::{ConnectionTrait, DatabaseTransaction, QueryResult};
use uuid::Uuid;

use super::wallet::{self, wallet_view};
use super::{Account, Direction, EntryKind, Leg, Posted, Transfer, bug, wallet_balance};
use crate::context::RequestMeta;
use crate::error::{DomainError, DomainResult};
use crate::outbox;
use crate::sql::{Batch, statement};

/// Posts `transfer` inside `txn`. A debit larger than a wallet's balance is
/// `InsufficientFunds` and writes nothing; a credit past the largest
/// balance is `BalanceLimit` (and the caller's transaction must be rolled
/// back, which dropping it does). An unbalanced transfer is a bug:
/// `Internal`.
pub async fn post(
    txn: &DatabaseTransaction,
    meta: &RequestMeta,
    transfer: Transfer<'_>,
) -> DomainResult<Posted> {
    let posting = Posting::of(&transfer)?;
    posting.lock(txn).await?;
    let mut batch = Batch::new();
    let pending = posting.push(&mut batch, meta, Guard::Skip);
    pending.select_wallets(&mut batch);
    let rows = batch
        .fetch_all(txn)
        .await
        .map_err(DomainError::or_balance_limit)?;
    if rows.len() != posting.wallets.len() {
        return Err(shortfall(txn, &posting.wallets).await);
    }
    pending.posted(&rows)
}

/// A transfer as parts of a batch that is sent on its own, as ONE
/// autocommitted statement, with the rest of its use case: the caller adds
/// the batch's main statement with [`InBatch::select_wallets`] and reads
/// its rows with [`InBatch::posted`]. A wallet without the funds fails the
/// whole statement on the wallet's `CHECK (balance >= 0)`, so nothing of
/// the batch is written; so does any other constraint. With `only_if`,
/// the name of an earlier part, nothing is posted unless that part returns
/// a row: the batch's other rows must then reference the transfer (as an
/// escrow's `reserve_transfer_id` does), so that they fail the statement
/// without it. (Inside a transaction, use [`post`].)
pub fn post_in_batch(
    batch: &mut Batch,
    meta: &RequestMeta,
    transfer: &Transfer<'_>,
    only_if: Option<&str>,
) -> DomainResult<InBatch> {
    let posting = Posting::of(transfer)?;
    if posting.wallets.len() > 1 {
        return Err(bug("a batched posting has at most one wallet leg"));
    }
    Ok(posting.push(batch, meta, Guard::Fail(only_if)))
}

/// A posting added to a batch, not yet run.
#[derive(Debug)]
#[must_use = "add the main statement with `select_wallets` and read its rows with `posted`"]
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

    /// Adds the batch's main statement: the touched wallets' rows after the
    /// posting, by id.
    pub fn select_wallets(&self, batch: &mut Batch) {
        batch.sql(format!("SELECT {} FROM w ORDER BY id", wallet::columns("")));
    }

    /// The posting, from the rows of [`InBatch::select_wallets`] (once the
    /// batch has committed, or inside the caller's transaction).
    pub fn posted(self, rows: &[QueryResult]) -> DomainResult<Posted> {
        for direction in &self.directions {
            count_movement(self.kind, *direction);
        }
        Ok(Posted {
            transfer_id: self.transfer_id,
            wallets: rows.iter().map(wallet_view).collect::<DomainResult<_>>()?,
        })
    }
}

/// What the wallet update of a posting does when it cannot go through.
#[derive(Clone, Copy, Debug)]
enum Guard<'a> {
    /// A wallet without the funds: no wallet is updated, and the parts
    /// write nothing.
    Skip,
    /// A wallet without the funds fails the statement; with a part's name,
    /// the wallets are updated only if that part returned a row.
    Fail(Option<&'a str>),
}

/// A well-formed transfer and its wallet legs.
struct Posting<'t, 'a> {
    transfer: &'t Transfer<'a>,
    /// The wallet legs, in ascending wallet id.
    wallets: Vec<(Uuid, Leg)>,
}

impl<'t, 'a> Posting<'t, 'a> {
    /// Checks `transfer`: two or more legs, none of zero, each account
    /// once, credits equal to debits. A malformed transfer is a bug:
    /// `Internal`.
    fn of(transfer: &'t Transfer<'a>) -> DomainResult<Self> {
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
        let mut wallets: Vec<(Uuid, Leg)> = legs
            .iter()
            .filter_map(|leg| match leg.account {
                Account::Wallet(id) => Some((id, *leg)),
                Account::Platform(_) => None,
            })
            .collect();
        wallets.sort_by_key(|(id, _)| *id);
        Ok(Self { transfer, wallets })
    }

    /// Locks the wallet rows in ascending id order, when there are several
    /// (a one-wallet posting's UPDATE takes its one lock itself): one
    /// UPDATE of several rows locks them in the order the plan meets them.
    async fn lock(&self, txn: &DatabaseTransaction) -> DomainResult<()> {
        if self.wallets.len() > 1 {
            let ids: Vec<Uuid> = self.wallets.iter().map(|(id, _)| *id).collect();
            txn.execute_raw(statement(
                "SELECT 1 FROM ledger.accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE",
                vec![ids.into()],
            ))
            .await?;
        }
        Ok(())
    }

    /// Adds the posting's parts `w`, `t`, `e` and `o` (see the module
    /// docs) to `batch`. `w` updates every wallet, each only if the debit
    /// leaves it at zero or more (with [`Guard::Skip`]); with several
    /// wallets, all or none.
    fn push(&self, batch: &mut Batch, meta: &RequestMeta, guard: Guard<'_>) -> InBatch {
        let transfer = self.transfer;
        let transfer_id = Uuid::now_v7();
        let [id, kind, reference, correlation, wallet_count] = batch.binds([
            transfer_id.into(),
            transfer.kind.as_str().into(),
            transfer.reference.into(),
            meta.correlation_id.as_str().into(),
            i64::try_from(self.wallets.len()).unwrap_or(i64::MAX).into(),
        ]);
        let returning = wallet::columns("a.");
        let funded = |delta: &str| match guard {
            Guard::Skip => format!(" AND a.balance + {delta} >= 0"),
            Guard::Fail(_) => String::new(),
        };
        let only_if = match guard {
            Guard::Fail(Some(part)) => format!(" AND EXISTS (SELECT 1 FROM {part})"),
            Guard::Skip | Guard::Fail(None) => String::new(),
        };
        let update = if let [(wallet, leg)] = self.wallets[..] {
            let [wallet, delta] = batch.binds([wallet.into(), leg.delta_minor().into()]);
            format!(
                "UPDATE ledger.accounts a SET balance = a.balance + {delta}, version = a.version + 1 \
                 WHERE a.id = {wallet} AND a.kind IN ('USER', 'MERCHANT'){}{only_if} \
                 RETURNING {returning}",
                funded(&delta.to_string())
            )
        } else {
            let [wallets, deltas] = batch.binds([
                self.wallets
                    .iter()
                    .map(|(id, _)| *id)
                    .collect::<Vec<Uuid>>()
                    .into(),
                self.wallets
                    .iter()
                    .map(|(_, leg)| leg.delta_minor())
                    .collect::<Vec<i64>>()
                    .into(),
            ]);
            let deltas_of = format!("unnest({wallets}::uuid[], {deltas}::bigint[])");
            // All or none: the rows are locked ([`Posting::lock`]), so the
            // statement's snapshot holds their balances as they are.
            let all = match guard {
                Guard::Skip => format!(
                    " AND NOT EXISTS (SELECT 1 FROM ledger.accounts s JOIN {deltas_of} AS x (id, delta) \
                     ON x.id = s.id WHERE s.balance + x.delta < 0)"
                ),
                Guard::Fail(_) => String::new(),
            };
            format!(
                "UPDATE ledger.accounts a SET balance = a.balance + d.delta, version = a.version + 1 \
                 FROM {deltas_of} AS d (id, delta) \
                 WHERE a.id = d.id AND a.kind IN ('USER', 'MERCHANT'){}{all}{only_if} \
                 RETURNING {returning}",
                funded("d.delta")
            )
        };
        batch.named("w", update);
        let posted = format!("(SELECT count(*) FROM w) = {wallet_count}");
        batch.named(
            "t",
            format!(
                "INSERT INTO ledger.transfers (id, kind, reference, correlation_id) \
                 SELECT {id}, {kind}, {reference}, {correlation} WHERE {posted}"
            ),
        );
        let legs = &transfer.legs;
        let [accounts, directions, amounts] = batch.binds([
            legs.iter()
                .map(|l| l.account.id())
                .collect::<Vec<Uuid>>()
                .into(),
            legs.iter()
                .map(|l| l.direction.as_str().to_owned())
                .collect::<Vec<String>>()
                .into(),
            legs.iter()
                .map(|l| l.amount.minor())
                .collect::<Vec<i64>>()
                .into(),
        ]);
        batch.named(
            "e",
            format!(
                "INSERT INTO ledger.entries (transfer_id, account_id, kind, direction, amount, balance_after, reference) \
                 SELECT {id}, x.account, {kind}, x.direction, x.amount, w.balance, {reference} \
                 FROM unnest({accounts}::uuid[], {directions}::text[], {amounts}::bigint[]) AS x (account, direction, amount) \
                 LEFT JOIN w ON w.id = x.account WHERE {posted}"
            ),
        );
        batch.named(
            "o",
            format!(
                "INSERT INTO ops.outbox (kind, target, payload, correlation_id) \
                 SELECT '{}', {}, {correlation} FROM w",
                outbox::KIND_PUBLISH,
                wallet::message("w"),
            ),
        );
        InBatch {
            transfer_id,
            kind: transfer.kind,
            directions: legs.iter().map(|l| l.direction).collect(),
        }
    }
}

/// Why a posting in a transaction updated no wallet: the first wallet (in
/// lock order) a debit would take below zero.
async fn shortfall(txn: &DatabaseTransaction, wallets: &[(Uuid, Leg)]) -> DomainError {
    for (wallet, leg) in wallets {
        match wallet_balance(txn, *wallet).await {
            Err(err) => return err,
            Ok(None) => return bug("posting to a wallet that does not exist"),
            Ok(Some(available)) if leg.direction == Direction::Debit && available < leg.amount => {
                return DomainError::InsufficientFunds {
                    required: leg.amount,
                    available,
                };
            }
            Ok(Some(_)) => {}
        }
    }
    bug("a posting wrote nothing though every wallet has the funds")
}

fn count_movement(kind: EntryKind, direction: Direction) {
    metrics::counter!("giftdrop_ledger_movements_total", "kind" => kind.as_str(), "direction" => direction.as_str())
        .increment(1);
}
