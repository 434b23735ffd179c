//! Postgres for the scenarios: connecting, (re)creating their databases,
//! and `pgbench -b tpcb-like`, the baseline every throughput figure is
//! measured against in the same run.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use uuid::Uuid;

use crate::rss::children_cpu_s;
use crate::stats::{percentile, sorted};

/// The database pgbench runs in (dropped and re-created).
pub(crate) const PGBENCH_DB: &str = "giftdrop_bench_pgbench";

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
    /// The run as a row of the scenarios' tables.
    pub(crate) fn row(&self) -> String {
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

/// The baseline of a scenario, the mean of its two pgbench runs, printed
/// with their drift.
pub(crate) fn baseline(pg1: &Figures, pg2: &Figures) -> f64 {
    let baseline = f64::midpoint(pg1.tps, pg2.tps);
    println!(
        "\npgbench baseline (mean of #1 and #2) = {baseline:.0} tps (#1 {:.0}, #2 {:.0}, drift {:+.1}%)",
        pg1.tps,
        pg2.tps,
        (pg2.tps / pg1.tps - 1.0) * 100.0
    );
    baseline
}

/// Runs `scenario` with an admin connection to the server of `url`, then
/// drops `databases` and closes the connection whatever happened; the
/// scenario's error first, then the cleanup's.
pub(crate) async fn with_admin<F, Fut>(url: &str, databases: &[&str], scenario: F) -> Result<()>
where
    F: FnOnce(DatabaseConnection) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let admin = connect(url, 2).await?;
    let outcome = scenario(admin.clone()).await;
    let mut cleanup = Ok(());
    for name in databases {
        cleanup = cleanup.and(drop_database(&admin, name).await);
    }
    admin
        .close()
        .await
        .context("closing the admin connection")?;
    outcome?;
    cleanup
}

/// Drops and creates database `name`.
pub(crate) async fn recreate_database(admin: &DatabaseConnection, name: &str) -> Result<()> {
    drop_database(admin, name).await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .with_context(|| format!("creating database {name}"))
        .map(drop)
}

/// Connections for `clients` clients and a few for setup.
pub(crate) fn pool_size(clients: usize) -> u32 {
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
}
