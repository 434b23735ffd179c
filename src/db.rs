//! Postgres connection, creation of a missing database, and migrations.

use std::time::Duration;

use anyhow::Context;
use giftdrop_migration::Migrator;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};
use sea_orm_migration::MigratorTrait;

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
