//! The `ledger` scenario: postings per second of `ledger::post` (two wallets
//! per transfer, each in its own transaction) next to `pgbench -b tpcb-like`
//! on the same server in the same run. Needs Postgres only, not the server.
//!
//! Order: pgbench, ledger uniform, ledger hot, pgbench again; the baseline is
//! the mean of the two pgbench runs, so drift during the run shows up as a
//! gap between them rather than in the ratio.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
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
    AccessMode, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend,
    IsolationLevel, Statement, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::rss::{children_cpu_s, cpu_ms};
use crate::stats::{percentile, sorted};

/// The database the ledger runs in (dropped and re-created).
const LEDGER_DB: &str = "giftdrop_bench_ledger";
/// The database pgbench runs in (dropped and re-created).
pub(crate) const PGBENCH_DB: &str = "giftdrop_bench_pgbench";
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

/// One measured run.
pub(crate) struct Figures {
    pub(crate) label: String,
    pub(crate) transactions: u64,
    pub(crate) tps: f64,
    pub(crate) p50_ms: Option<f64>,
    pub(crate) p99_ms: Option<f64>,
    pub(crate) client_cpu_s: f64,
}

impl Figures {
    fn row(&self) -> String {
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
        format!(
            "| {} | {} | {:.0} | {} | {} | {:.1} |",
            self.label,
            self.transactions,
            self.tps,
            ms(self.p50_ms),
            ms(self.p99_ms),
            self.client_cpu_s
        )
    }
}

/// Runs the scenario, prints its table and ratios, and drops its databases
/// whatever happened.
pub async fn run(args: &Args) -> Result<()> {
    ensure!(args.wallets.get() >= 2, "--wallets must be at least 2");
    ensure!(args.seconds > 0, "--seconds must be positive");
    let admin = connect(&args.database_url, 2).await?;
    let outcome = scenario(&admin, args).await;
    let mut cleanup = Ok(());
    for name in [LEDGER_DB, PGBENCH_DB] {
        let dropped = drop_database(&admin, name).await;
        cleanup = cleanup.and(dropped);
    }
    admin
        .close()
        .await
        .context("closing the admin connection")?;
    outcome?;
    cleanup
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
    let baseline = f64::midpoint(pg1.tps, pg2.tps);
    println!(
        "\npgbench baseline (mean of #1 and #2) = {baseline:.0} tps (#1 {:.0}, #2 {:.0}, drift {:+.1}%)",
        pg1.tps,
        pg2.tps,
        (pg2.tps / pg1.tps - 1.0) * 100.0
    );
    println!("RATIO uniform/pgbench = {:.2}", uniform.tps / baseline);
    println!("RATIO hot/pgbench = {:.2}", hot.tps / baseline);

    verify(&ledger_url, uniform.transactions + hot.transactions).await
}

/// A pool of `max` connections on `url`.
pub(crate) async fn connect(url: &str, max: u32) -> Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(max)
        .min_connections(0)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false);
    Database::connect(options)
        .await
        .with_context(|| format!("connecting to {}", without_password(url)))
}

/// `url` with its database name replaced by `name` (query string kept).
pub(crate) fn database_url(url: &str, name: &str) -> Result<String> {
    let scheme = url.find("://").context("--database-url is not a URL")?;
    let (server, rest) = url[scheme + 3..]
        .split_once('/')
        .map(|(host, rest)| (&url[..scheme + 3 + host.len()], rest))
        .context("--database-url must name a database")?;
    let query = rest.find('?').map_or("", |at| &rest[at..]);
    Ok(format!("{server}/{name}{query}"))
}

/// `url` without its password, for messages.
fn without_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

pub(crate) async fn drop_database(admin: &DatabaseConnection, name: &str) -> Result<()> {
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .with_context(|| format!("dropping database {name}"))
        .map(drop)
}

async fn recreate_database(admin: &DatabaseConnection, name: &str) -> Result<()> {
    drop_database(admin, name).await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .with_context(|| format!("creating database {name}"))
        .map(drop)
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

fn pool_size(clients: usize) -> u32 {
    u32::try_from(clients).unwrap_or(u32::MAX).saturating_add(4)
}

pub(crate) async fn setup_pgbench(
    admin: &DatabaseConnection,
    url: &str,
    scale: usize,
) -> Result<()> {
    recreate_database(admin, PGBENCH_DB).await?;
    let output = tokio::process::Command::new("pgbench")
        .args(["-i", "-q", "-s", &scale.to_string(), url])
        .output()
        .await
        .context("starting pgbench -i (is pgbench installed?)")?;
    if !output.status.success() {
        bail!(
            "pgbench -i failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// One `pgbench -b tpcb-like` run, latencies from its per-transaction log.
pub(crate) async fn pgbench(
    url: &str,
    clients: usize,
    seconds: u64,
    label: &str,
) -> Result<Figures> {
    let logs = std::env::temp_dir().join(format!(
        "giftdrop-bench-pgbench-{}-{}",
        std::process::id(),
        Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let outcome = pgbench_in(url, clients, seconds, label, &logs).await;
    let _ = std::fs::remove_dir_all(&logs);
    outcome
}

async fn pgbench_in(
    url: &str,
    clients: usize,
    seconds: u64,
    label: &str,
    logs: &Path,
) -> Result<Figures> {
    let prefix = logs.join("tx");
    let cpu_before = children_cpu_s()?;
    let output = tokio::process::Command::new("pgbench")
        .args([
            "-b",
            "tpcb-like",
            "-c",
            &clients.to_string(),
            "-j",
            &clients.min(2).to_string(),
            "-T",
            &seconds.to_string(),
            "-n",
            "-l",
            &format!("--log-prefix={}", prefix.display()),
            url,
        ])
        .output()
        .await
        .context("starting pgbench (is pgbench installed?)")?;
    let client_cpu_s = children_cpu_s()? - cpu_before;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed ({}): {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim(),
            stdout.trim()
        );
    }
    let tps =
        parse_tps(&stdout).with_context(|| format!("no tps line in pgbench output:\n{stdout}"))?;
    let transactions = parse_after(&stdout, "number of transactions actually processed:")
        .with_context(|| format!("no transaction count in pgbench output:\n{stdout}"))?;
    if let Some(failed) = parse_after(&stdout, "number of failed transactions:")
        && failed > 0
    {
        bail!("pgbench reported {failed} failed transactions:\n{stdout}");
    }
    let latencies = sorted(read_pgbench_logs(logs)?);
    Ok(Figures {
        label: label.to_owned(),
        transactions,
        tps,
        p50_ms: percentile(&latencies, 500),
        p99_ms: percentile(&latencies, 990),
        client_cpu_s,
    })
}

/// The `tps = N (...)` figure: the one without connection time when there
/// are several (pg 13 and older print "excluding connections establishing").
fn parse_tps(stdout: &str) -> Option<f64> {
    let lines: Vec<&str> = stdout
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("tps = "))
        .collect();
    let line = lines
        .iter()
        .find(|line| line.contains("without initial connection time") || line.contains("excluding"))
        .or_else(|| lines.first())?;
    line.strip_prefix("tps = ")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The leading integer after `label` (e.g. `12345` of `12345/12345` or
/// `0 (0.000%)`).
fn parse_after(stdout: &str, label: &str) -> Option<u64> {
    let rest = stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix(label))?
        .trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Latencies in ms from pgbench's per-transaction logs in `dir`
/// (`client_id transaction_no time_us script_no epoch epoch_us`).
fn read_pgbench_logs(dir: &Path) -> Result<Vec<f64>> {
    let mut latencies = Vec::new();
    let entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    for path in entries {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        for line in text.lines() {
            let time = line.split_whitespace().nth(2);
            match time.and_then(|t| t.parse::<f64>().ok()) {
                Some(us) => latencies.push(us / 1000.0),
                None => bail!("unexpected pgbench log line in {}: {line}", path.display()),
            }
        }
    }
    Ok(latencies)
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
    fn database_url_replaces_the_name() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "x").ok(),
            Some("postgres://postgres@127.0.0.1:5432/x".to_owned())
        );
        assert_eq!(
            database_url("postgres://u:p@h/db?sslmode=disable", "x").ok(),
            Some("postgres://u:p@h/x?sslmode=disable".to_owned())
        );
        assert!(database_url("postgres://h", "x").is_err());
    }

    #[test]
    fn parses_pgbench_15_output() {
        let out = "number of transactions actually processed: 12345\n\
                   number of failed transactions: 0 (0.000%)\n\
                   latency average = 2.5 ms\n\
                   initial connection time = 30.1 ms\n\
                   tps = 1234.567890 (without initial connection time)\n";
        assert_eq!(parse_tps(out), Some(1234.56789));
        assert_eq!(
            parse_after(out, "number of transactions actually processed:"),
            Some(12345)
        );
        assert_eq!(parse_after(out, "number of failed transactions:"), Some(0));
        let old = "tps = 10.0 (including connections establishing)\n\
                   tps = 11.0 (excluding connections establishing)\n";
        assert_eq!(parse_tps(old), Some(11.0));
    }

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
