//! The `ledger` scenario: postings per second of `ledger::post` (two wallets
//! per transfer, each in its own transaction) next to `pgbench -b tpcb-like`
//! on the same server in the same run. Needs Postgres only, not the server.
//!
//! Order: pgbench, ledger uniform, ledger hot, pgbench again; the baseline is
//! the mean of the two pgbench runs, so drift during the run shows up as a
//! gap between them rather than in the ratio.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use futures_util::{StreamExt, TryStreamExt, stream};
use giftdrop_domain::RequestMeta;
use giftdrop_domain::ledger::{
    self, Account, EntryKind, Leg, PlatformAccount, Transfer, WalletOwner,
};
use giftdrop_domain::money::Amount;
use giftdrop_migration::Migrator;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DbBackend, IsolationLevel, Statement,
    TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::pgbench::{
    self, Figures, PGBENCH_DB, connect, database_url, pgbench, pool_size, recreate_database,
    setup_pgbench, with_admin,
};
use crate::rss::cpu_ms;
use crate::stats::{percentile, sorted};

/// The database the ledger runs in (dropped and re-created).
const LEDGER_DB: &str = "giftdrop_bench_ledger";
/// What each wallet is funded with, in minor units: no posting ever fails
/// for funds.
const FUNDING: i64 = 1_000_000_000;
/// Reference of every measured transfer.
const REFERENCE: &str = "bench";

/// Options of the `ledger` scenario.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Concurrent posting tasks (and pgbench clients).
    #[arg(long, default_value = "32")]
    clients: NonZeroUsize,
    /// Length of each measured run, seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// User wallets to post between (at least 2).
    #[arg(long, default_value = "1000")]
    wallets: NonZeroUsize,
    /// Any database on the server; its name is replaced by the scenario's
    /// own databases, which are dropped at the end.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    database_url: String,
}

/// Who the other side of each posting is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Two distinct wallets chosen uniformly.
    Uniform,
    /// One fixed hot wallet on one side (debit or credit at random), the
    /// other side uniform.
    Hot,
}

/// Runs the scenario, prints its table and ratios, and drops its databases
/// whatever happened.
pub async fn run(args: &Args) -> Result<()> {
    ensure!(args.wallets.get() >= 2, "--wallets must be at least 2");
    ensure!(args.seconds > 0, "--seconds must be positive");
    with_admin(
        &args.database_url,
        &[LEDGER_DB, PGBENCH_DB],
        |admin| async move { scenario(&admin, args).await },
    )
    .await
}

async fn scenario(admin: &DatabaseConnection, args: &Args) -> Result<()> {
    let clients = args.clients.get();
    let duration = Duration::from_secs(args.seconds);
    let ledger_url = database_url(&args.database_url, LEDGER_DB)?;
    let pgbench_url = database_url(&args.database_url, PGBENCH_DB)?;

    let started = Instant::now();
    let wallets = setup_ledger(admin, &ledger_url, clients, args.wallets.get()).await?;
    println!(
        "ledger: {} wallets funded with {FUNDING} each in {:.1?}",
        wallets.len(),
        started.elapsed()
    );
    // tpcb-like updates one of `scale` branch rows per transaction: with
    // fewer branches than clients, pgbench would measure its own hot rows.
    let scale = clients;
    let started = Instant::now();
    setup_pgbench(admin, &pgbench_url, scale).await?;
    println!(
        "pgbench: initialized with -s {scale} (= --clients, so tpcb-like has a branch per client) in {:.1?}",
        started.elapsed()
    );
    println!(
        "\nledger: {clients} clients, {} s per run; pgbench -b tpcb-like -c {clients} -j {} -T {} -n\n",
        args.seconds,
        clients.min(2),
        args.seconds
    );

    let wallets = Arc::new(wallets);
    let pg1 = pgbench(&pgbench_url, clients, args.seconds, "pgbench #1").await?;
    let uniform = ledger_run(&ledger_url, &wallets, Mode::Uniform, clients, duration).await?;
    let hot = ledger_run(&ledger_url, &wallets, Mode::Hot, clients, duration).await?;
    let pg2 = pgbench(&pgbench_url, clients, args.seconds, "pgbench #2").await?;

    println!("| run | transactions | tps | p50 ms | p99 ms | client CPU s |");
    println!("|---|---|---|---|---|---|");
    for figures in [&pg1, &uniform, &hot, &pg2] {
        println!("{}", figures.row());
    }
    let baseline = pgbench::baseline(&pg1, &pg2);
    println!("RATIO uniform/pgbench = {:.2}", uniform.tps / baseline);
    println!("RATIO hot/pgbench = {:.2}", hot.tps / baseline);

    verify(&ledger_url, uniform.transactions + hot.transactions).await
}

/// A migrated ledger database with `count` funded user wallets; their
/// account ids.
async fn setup_ledger(
    admin: &DatabaseConnection,
    url: &str,
    clients: usize,
    count: usize,
) -> Result<Vec<Uuid>> {
    recreate_database(admin, LEDGER_DB).await?;
    let db = connect(url, pool_size(clients)).await?;
    Migrator::up(&db, None)
        .await
        .context("migrating the ledger database")?;
    let funding = Amount::positive(FUNDING)?;
    let meta = RequestMeta::system();
    let wallets = stream::iter(0..count)
        .map(|_| fund_new_wallet(&db, &meta, funding))
        .buffer_unordered(clients)
        .try_collect()
        .await;
    db.close().await.context("closing the setup pool")?;
    wallets
}

/// Creates one user wallet (no users row: ledger accounts do not reference
/// identity.users) and funds it from provider clearing.
async fn fund_new_wallet(
    db: &DatabaseConnection,
    meta: &RequestMeta,
    amount: Amount,
) -> Result<Uuid> {
    let wallet = ledger::wallet_of(db, WalletOwner::User(Uuid::now_v7()))
        .await
        .context("creating a wallet")?;
    let txn = db.begin().await?;
    let _posted = ledger::post(
        &txn,
        meta,
        Transfer {
            kind: EntryKind::Adjustment,
            reference: "bench-funding",
            legs: vec![
                Leg::debit(Account::Platform(PlatformAccount::ProviderClearing), amount),
                Leg::credit(Account::Wallet(wallet.id), amount),
            ],
        },
    )
    .await
    .context("funding a wallet")?;
    txn.commit().await.context("committing a funding")?;
    Ok(wallet.id)
}

/// `clients` tasks posting back to back for `duration`.
async fn ledger_run(
    url: &str,
    wallets: &Arc<Vec<Uuid>>,
    mode: Mode,
    clients: usize,
    duration: Duration,
) -> Result<Figures> {
    let db = connect(url, pool_size(clients)).await?;
    // Every task holds a connection before the clock starts, so connecting
    // is not measured (as pgbench's "without initial connection time").
    let barrier = Arc::new(Barrier::new(clients + 1));
    let mut workers = JoinSet::new();
    for _ in 0..clients {
        workers.spawn(worker(
            db.clone(),
            Arc::clone(wallets),
            mode,
            Arc::clone(&barrier),
            duration,
        ));
    }
    barrier.wait().await;
    let cpu_before = cpu_ms(None)?;
    let started = Instant::now();
    let mut transactions = 0;
    let mut latencies = Vec::new();
    while let Some(done) = workers.join_next().await {
        match done.context("posting task panicked").and_then(|r| r) {
            Ok((count, samples)) => {
                transactions += count;
                latencies.extend(samples);
            }
            Err(err) => {
                workers.abort_all();
                db.close().await.ok();
                return Err(err.context(format!("{mode:?} run aborted")));
            }
        }
    }
    let elapsed = started.elapsed();
    let client_cpu_s = (cpu_ms(None)? - cpu_before) / 1000.0;
    db.close().await.context("closing the posting pool")?;
    let latencies = sorted(latencies);
    Ok(Figures {
        label: format!("ledger {}", format!("{mode:?}").to_lowercase()),
        transactions,
        tps: transactions as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&latencies, 500),
        p99_ms: percentile(&latencies, 990),
        client_cpu_s,
    })
}

/// One task: postings until `duration` after the barrier; how many and each
/// one's latency (begin to commit) in ms.
async fn worker(
    db: DatabaseConnection,
    wallets: Arc<Vec<Uuid>>,
    mode: Mode,
    barrier: Arc<Barrier>,
    duration: Duration,
) -> Result<(u64, Vec<f64>)> {
    let mut rng = StdRng::from_rng(&mut rand::rng());
    let meta = RequestMeta::system();
    let warm = db.begin().await.context("warming up a connection")?;
    barrier.wait().await;
    warm.rollback().await?;
    let deadline = Instant::now() + duration;
    let mut count = 0;
    let mut latencies = Vec::new();
    while Instant::now() < deadline {
        let (from, to) = pick(&mut rng, &wallets, mode);
        let amount = Amount::positive(rng.random_range(1..=100))?;
        let t0 = Instant::now();
        let txn = db.begin().await.context("begin")?;
        let _posted = ledger::post(
            &txn,
            &meta,
            Transfer {
                kind: EntryKind::Adjustment,
                reference: REFERENCE,
                legs: vec![
                    Leg::debit(Account::Wallet(from), amount),
                    Leg::credit(Account::Wallet(to), amount),
                ],
            },
        )
        .await
        .with_context(|| format!("posting {} from {from} to {to}", amount.minor()))?;
        txn.commit().await.context("commit")?;
        latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
        count += 1;
    }
    Ok((count, latencies))
}

/// (debited, credited): two distinct wallets.
fn pick(rng: &mut StdRng, wallets: &[Uuid], mode: Mode) -> (Uuid, Uuid) {
    let n = wallets.len();
    let (a, b) = match mode {
        Mode::Uniform => {
            let a = rng.random_range(0..n);
            let b = rng.random_range(0..n - 1);
            (a, if b >= a { b + 1 } else { b })
        }
        Mode::Hot => {
            let other = rng.random_range(1..n);
            if rng.random_bool(0.5) {
                (0, other)
            } else {
                (other, 0)
            }
        }
    };
    (wallets[a], wallets[b])
}

/// The ledger still sums to zero and holds exactly the measured postings.
async fn verify(url: &str, posted: u64) -> Result<()> {
    let db = connect(url, 1).await?;
    let txn = db
        .begin_with_config(
            Some(IsolationLevel::RepeatableRead),
            Some(AccessMode::ReadOnly),
        )
        .await?;
    let total = ledger::total(&txn).await.context("ledger total")?;
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT count(*) AS n FROM ledger.transfers WHERE reference = $1",
            [REFERENCE.into()],
        ))
        .await?
        .context("no count")?;
    let stored: i64 = row.try_get("", "n")?;
    txn.commit().await?;
    db.close().await?;
    ensure!(total == 0, "the ledger does not balance: total {total}");
    ensure!(
        u64::try_from(stored).ok() == Some(posted),
        "{posted} postings counted but {stored} stored"
    );
    println!("check: ledger total = 0, {stored} measured transfers stored");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_distinct_wallets() {
        let wallets: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        let mut rng = StdRng::seed_from_u64(7);
        for mode in [Mode::Uniform, Mode::Hot] {
            for _ in 0..1000 {
                let (a, b) = pick(&mut rng, &wallets, mode);
                assert_ne!(a, b);
                if mode == Mode::Hot {
                    assert!(a == wallets[0] || b == wallets[0]);
                }
            }
        }
    }
}
