//! Postgres connection, creation of a missing database, and migrations.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use giftdrop_migration::Migrator;
use sea_orm::sea_query::{Expr, ExprTrait, Func, Query};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, TransactionTrait};
use sea_orm_migration::MigratorTrait;

/// How many SQL statements a pool has run (transaction control aside):
/// exported as `giftdrop_db_statements_total`, and read by tests that check
/// what a request costs (a list must not cost a statement per item).
#[derive(Clone, Debug, Default)]
pub struct StatementCount(Arc<AtomicU64>);

impl StatementCount {
    /// Statements so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What sits between the process and Postgres, which decides whether
/// statements may stay prepared on a server connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// Postgres itself (or a pooler in session mode): each statement is
    /// prepared once per connection and cached there.
    Session,
    /// PgBouncer in transaction mode (`DATABASE_PGBOUNCER`): consecutive
    /// transactions of one connection may run on different server
    /// connections, so nothing may outlive a statement. Statements are
    /// unnamed and parsed in the same round trip as their execution
    /// (vendor/README.md); no startup parameter PgBouncer would refuse.
    Transaction,
}

impl Pooling {
    /// `Transaction` when `DATABASE_PGBOUNCER` says so.
    pub fn from_pgbouncer(pgbouncer: bool) -> Self {
        if pgbouncer {
            Pooling::Transaction
        } else {
            Pooling::Session
        }
    }
}

/// A pool on `url`, with its statement count.
pub async fn connect_counted(
    url: &str,
    pooling: Pooling,
) -> anyhow::Result<(DatabaseConnection, StatementCount)> {
    let mut db = connect(url, pooling).await?;
    let count = StatementCount::default();
    let counter = count.clone();
    db.set_metric_callback(move |info| {
        counter.0.fetch_add(1, Ordering::Relaxed);
        let outcome = if info.failed { "error" } else { "ok" };
        metrics::counter!("giftdrop_db_statements_total", "outcome" => outcome).increment(1);
        metrics::histogram!("giftdrop_db_statement_duration_seconds")
            .record(info.elapsed.as_secs_f64());
    });
    Ok((db, count))
}

/// A pool on `url`.
pub async fn connect(url: &str, pooling: Pooling) -> anyhow::Result<DatabaseConnection> {
    pool(url, pooling, 20).await
}

async fn pool(url: &str, pooling: Pooling, size: u32) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(size)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false);
    if pooling == Pooling::Transaction {
        // No statement cache makes every statement unnamed (the patch in
        // vendor/sqlx-postgres); PgBouncer refuses `extra_float_digits`
        // unless told to ignore it, and giftdrop reads no float as text.
        options
            .map_sqlx_postgres_opts(|pg| pg.statement_cache_capacity(0).extra_float_digits(None));
    }
    Database::connect(options)
        .await
        .with_context(|| format!("failed to connect to Postgres at {}", redact(url)))
}

/// Creates the database named in `url` if missing, then applies pending
/// migrations; `url` is `DATABASE_MIGRATION_URL` (default `DATABASE_URL`).
/// Safe when several processes start at once: the database is created once,
/// and migrations run one process at a time (the others wait, then find
/// nothing to do). Works on a direct connection and through PgBouncer alike:
/// no session state, no statement left prepared.
pub async fn prepare(url: &str) -> anyhow::Result<()> {
    ensure_database(url).await?;
    let db = pool(url, Pooling::Transaction, 1).await?;
    migrate(&db).await?;
    db.close()
        .await
        .context("failed to close the migration connection")
}

/// Creates the database named in `url` if it does not exist (connecting to
/// the server's `postgres` database to do so).
async fn ensure_database(url: &str) -> anyhow::Result<()> {
    let (server, name) = url
        .rsplit_once('/')
        .filter(|(_, name)| !name.is_empty())
        .context("DATABASE_MIGRATION_URL (default: DATABASE_URL) must name a database")?;
    let name = name.split('?').next().unwrap_or(name);
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        anyhow::bail!("database name {name:?} must be letters, digits and underscores");
    }
    let admin = pool(&format!("{server}/postgres"), Pooling::Transaction, 1).await?;
    if !database_exists(&admin, name).await? {
        let created = admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await;
        match created {
            Ok(_) => tracing::info!(database = name, "created database"),
            // Another process created it in the meantime: "already exists",
            // or a unique violation when both inserted at once.
            Err(_) if database_exists(&admin, name).await? => {}
            Err(err) => return Err(err).context("failed to create the database"),
        }
    }
    admin
        .close()
        .await
        .context("failed to close the admin connection")?;
    Ok(())
}

async fn database_exists(admin: &DatabaseConnection, name: &str) -> anyhow::Result<bool> {
    let query = Query::select()
        .expr(Expr::val(1))
        .from("pg_database")
        .and_where(Expr::col("datname").eq(name))
        .to_owned();
    Ok(admin
        .query_one(&query)
        .await
        .context("failed to look up the database")?
        .is_some())
}

/// Key of the advisory lock that serialises migrations (any bigint that no
/// other lock of the database uses).
const MIGRATION_LOCK: i64 = 0x6769_6674_6d69_6772; // "giftmigr"

/// Applies pending migrations, all in one transaction that first takes
/// [`MIGRATION_LOCK`]: a second process waits for the first to commit, then
/// finds nothing pending. A transaction-level lock, not a session one, so it
/// holds through PgBouncer in transaction mode and can never be left behind.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    let txn = db
        .begin()
        .await
        .context("failed to start the migration transaction")?;
    let lock = Query::select()
        .expr(Func::cust("pg_advisory_xact_lock").arg(MIGRATION_LOCK))
        .to_owned();
    txn.execute(&lock)
        .await
        .context("failed to take the migration lock")?;
    Migrator::up(&txn, None)
        .await
        .context("failed to run migrations")?;
    txn.commit()
        .await
        .context("failed to commit the migrations")
}

/// `url` without its password, for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}
