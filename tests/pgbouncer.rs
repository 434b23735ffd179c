//! giftdrop behind PgBouncer in transaction pooling mode, where consecutive
//! transactions of one client connection run on different server
//! connections: the process creates, migrates and serves its database
//! through it, and several processes migrating one empty database at once
//! all come up. `scripts/pgbouncer` starts PgBouncer when none answers.

use futures_util::future::join_all;
use giftdrop::config::Config;
use giftdrop_migration::Migrator;
use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection};
use sea_orm::sqlx::{self, ConnectOptions, Row};
use sea_orm::{Database, DatabaseConnection};
use sea_orm_migration::MigratorTrait;
use serde_json::json;
use tokio::sync::OnceCell;

use crate::support::market::assert_ledger_sound;
use crate::support::{
    AppOptions, TestApp, app_server_url, database_name, scalar, server_url, spawn_app,
    unborn_database,
};

/// PgBouncer's server URL: `TEST_DATABASE_APP_SERVER` when the suite runs
/// through it, else `postgres://postgres@127.0.0.1:6432`, started by
/// `scripts/pgbouncer` (idempotent) the first time.
async fn pgbouncer() -> String {
    static STARTED: OnceCell<String> = OnceCell::const_new();
    STARTED
        .get_or_init(|| async {
            if let Some(url) = app_server_url() {
                return url;
            }
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pgbouncer");
            let status = tokio::process::Command::new(script)
                .status()
                .await
                .expect("scripts/pgbouncer runs");
            assert!(status.success(), "scripts/pgbouncer failed: {status}");
            "postgres://postgres@127.0.0.1:6432".to_owned()
        })
        .await
        .clone()
}

/// The databases PgBouncer has client connections for (`SHOW CLIENTS` on
/// its admin console, which speaks only the simple query protocol).
async fn pgbouncer_client_databases() -> Vec<String> {
    let options: PgConnectOptions = format!("{}/pgbouncer", pgbouncer().await)
        .parse()
        .expect("PgBouncer URL");
    let mut console: PgConnection = options
        .extra_float_digits(None)
        .connect()
        .await
        .expect("PgBouncer's admin console answers");
    sqlx::raw_sql("SHOW CLIENTS")
        .fetch_all(&mut console)
        .await
        .expect("SHOW CLIENTS")
        .iter()
        .map(|row| row.try_get::<String, _>("database").expect("database"))
        .collect()
}

/// A direct connection to `database`, for assertions.
async fn direct(database: &str) -> DatabaseConnection {
    Database::connect(format!("{}/{database}", server_url()))
        .await
        .expect("direct connection")
}

async fn applied_migrations(database: &str) -> i64 {
    scalar(
        &direct(database).await,
        "SELECT count(*) FROM public.seaql_migrations",
    )
    .await
}

/// Sends `topups` top-ups for `users` users at once, each registering,
/// then funding its wallet `topups` times through the sandbox provider,
/// then reading its balance; every answer must be right.
async fn burst(app: &TestApp, users: usize, topups: i64) {
    let each = join_all((0..users).map(|i| async move {
        let (token, _) = app
            .register(&format!("burst{i}@giftdrop.test"), &format!("Burst {i}"))
            .await;
        join_all((0..topups).map(|k| app.fund(&token, 1_000 + k))).await;
        app.my_balance(&token).await
    }))
    .await;
    let expected: i64 = (0..topups).map(|k| 1_000 + k).sum();
    assert!(
        each.iter().all(|balance| *balance == expected),
        "every wallet holds its {topups} top-ups ({expected}): {each:?}"
    );
    assert_ledger_sound(app).await;
}

/// Through PgBouncer only (`DATABASE_MIGRATION_URL` unset): the process
/// creates its database, migrates it, then serves a burst of concurrent
/// requests with its workers running. Before, migrations failed at once:
/// `prepared statement "sqlx_s_1" already exists`.
#[tokio::test(crate = "crate::support::harness")]
async fn a_process_creates_migrates_and_serves_through_pgbouncer() {
    let bouncer = pgbouncer().await;
    let database = unborn_database();
    let app = AppOptions::new()
        .await
        .config(|c: &mut Config| {
            c.database_url = format!("{bouncer}/{database}");
            c.database_migration_url = None;
            c.database_pgbouncer = true;
        })
        .migrating()
        .spawn()
        .await;
    assert_eq!(
        applied_migrations(&database).await,
        i64::try_from(Migrator::migrations().len()).expect("a few migrations"),
        "every migration is applied"
    );
    assert!(
        pgbouncer_client_databases().await.contains(&database),
        "the app's pool goes through PgBouncer"
    );
    burst(&app, 12, 4).await;
}

/// Several processes started at the same moment on an empty database all
/// come up: one creates it, one migrates it, the others wait for the
/// migration lock and find nothing pending. Directly and through PgBouncer.
#[tokio::test(crate = "crate::support::harness")]
async fn processes_migrating_one_empty_database_at_once_all_succeed() {
    for server in [server_url(), pgbouncer().await] {
        let database = unborn_database();
        let url = format!("{server}/{database}");
        let results = join_all((0..4).map(|_| giftdrop::db::prepare(&url))).await;
        for result in results {
            result.unwrap_or_else(|err| panic!("migrating through {server} failed: {err:#}"));
        }
        assert_eq!(
            applied_migrations(&database).await,
            i64::try_from(Migrator::migrations().len()).expect("a few migrations"),
            "every migration is applied once (through {server})"
        );
    }
}

/// When the suite runs through PgBouncer (`TEST_DATABASE_APP_SERVER`), the
/// apps it starts really reach Postgres through it; otherwise directly.
#[tokio::test(crate = "crate::support::harness")]
async fn test_apps_reach_postgres_through_the_app_server() {
    let app = spawn_app().await;
    let database = database_name(&app.config).to_owned();
    let (token, id) = app.register("through@giftdrop.test", "Through").await;
    let me = app.ok(Some(&token), "{ me { id } }", json!({}), "me").await;
    assert_eq!(me["id"], id.as_str(), "the app reads what it wrote");
    match app_server_url() {
        Some(server) => {
            assert!(app.config.database_pgbouncer, "PgBouncer mode is on");
            assert!(app.config.database_url.starts_with(&server));
            assert!(
                pgbouncer_client_databases().await.contains(&database),
                "the app's pool goes through PgBouncer"
            );
        }
        None => {
            assert!(!app.config.database_pgbouncer, "PgBouncer mode is off");
            assert_eq!(app.config.migration_url(), app.config.database_url);
        }
    }
}
