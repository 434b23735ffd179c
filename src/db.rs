//! Postgres connection, creation of a missing database, and migrations.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use giftdrop_migration::Migrator;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};
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

/// A pool on `url`, with its statement count.
pub async fn connect_counted(url: &str) -> anyhow::Result<(DatabaseConnection, StatementCount)> {
    let mut db = connect(url).await?;
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
pub async fn connect(url: &str) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(20)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false);
    Database::connect(options)
        .await
        .with_context(|| format!("failed to connect to Postgres at {}", redact(url)))
}

/// Creates the database named in `url` if it does not exist (connecting to
/// the server's `postgres` database to do so).
pub async fn ensure_database(url: &str) -> anyhow::Result<()> {
    let (server, name) = url
        .rsplit_once('/')
        .filter(|(_, name)| !name.is_empty())
        .context("DATABASE_URL must name a database")?;
    let name = name.split('?').next().unwrap_or(name);
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        anyhow::bail!("database name {name:?} must be letters, digits and underscores");
    }
    let admin = connect(&format!("{server}/postgres")).await?;
    let exists = admin
        .query_one_raw(Statement::from_sql_and_values(
            admin.get_database_backend(),
            "SELECT 1 FROM pg_database WHERE datname = $1",
            [name.into()],
        ))
        .await
        .context("failed to look up the database")?
        .is_some();
    if !exists {
        let created = admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await;
        // Another process may have created it in the meantime.
        if let Err(err) = created
            && !err.to_string().contains("already exists")
        {
            return Err(err).context("failed to create the database");
        }
        tracing::info!(database = name, "created database");
    }
    admin
        .close()
        .await
        .context("failed to close the admin connection")?;
    Ok(())
}

/// Applies pending migrations.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(db, None)
        .await
        .context("failed to run migrations")
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
