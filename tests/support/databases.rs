//! Each test's own database, cloned from a migrated template, recorded in
//! the test's scope (`harness.rs`), whose teardown drops it.
//!
//! The template is `giftdrop_template_{digest of the migration names}`: the
//! first test of a process that needs it builds it, under an advisory lock
//! so that concurrent test processes build it once and the others reuse it.
//! It is removed deliberately, not per test: every test process holds a
//! shared advisory lock ([`TEMPLATE_USERS_LOCK`]) for its whole life, and
//! `scripts/test`, once its run is over, drops every template if it can
//! take that lock exclusively, that is when no test process (of this run or
//! of a concurrent one) may still clone from one. A run that starts after
//! builds the template again, so a run always tests the migrations as they
//! are. (`cargo test` run directly leaves the template for the next run to
//! reuse; the next `scripts/test` removes it.)

use giftdrop_migration::Migrator;
use sea_orm::sqlx::postgres::PgConnection;
use sea_orm::sqlx::{self, Connection, Row};
use sea_orm::{Database, DatabaseConnection};
use sea_orm_migration::MigratorTrait;
use tokio::sync::OnceCell;

use super::harness;
use super::server_url;

/// Held exclusively while a template is built.
const TEMPLATE_BUILD_LOCK: i64 = 727_274;
/// Held shared by every test process for its whole life; `scripts/test`
/// drops the templates only when it gets it exclusively.
pub const TEMPLATE_USERS_LOCK: i64 = 727_275;

/// A single connection (no pool: advisory locks belong to a session) to
/// `database` on the test server.
pub async fn connect(database: &str) -> Result<PgConnection, sqlx::Error> {
    PgConnection::connect(&format!("{}/{database}", server_url())).await
}

/// Runs `sql` (one statement, simple protocol) on `conn`.
pub async fn execute(conn: &mut PgConnection, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(conn)
        .await
        .map(drop)
}

/// `name` quoted as an SQL identifier.
pub fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Takes [`TEMPLATE_USERS_LOCK`] (shared) for the rest of this process, on
/// a connection of its own thread and runtime, so that it outlives every
/// test's runtime; the operating system closes it when the process exits.
async fn hold_template_users_lock() {
    static HELD: OnceCell<()> = OnceCell::const_new();
    HELD.get_or_init(|| async {
        let (held, holding) = tokio::sync::oneshot::channel::<Result<(), String>>();
        std::thread::Builder::new()
            .name("template-users-lock".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the template lock");
                runtime.block_on(async move {
                    let locked = async {
                        let mut conn = connect("postgres").await?;
                        let sql = format!("SELECT pg_advisory_lock_shared({TEMPLATE_USERS_LOCK})");
                        execute(&mut conn, &sql).await?;
                        Ok::<_, sqlx::Error>(conn)
                    }
                    .await;
                    match locked {
                        Ok(_conn) => {
                            let _ = held.send(Ok(()));
                            // The connection, and so the lock, lives as long
                            // as the process.
                            std::future::pending::<()>().await;
                        }
                        Err(err) => {
                            let _ = held.send(Err(err.to_string()));
                        }
                    }
                });
            })
            .expect("the template lock's thread starts");
        holding
            .await
            .expect("the template lock's thread answers")
            .unwrap_or_else(|err| panic!("could not take the template users' lock: {err}"));
    })
    .await;
}

/// The migrated template's name; builds it unless it exists.
async fn template() -> &'static str {
    static TEMPLATE: OnceCell<String> = OnceCell::const_new();
    TEMPLATE
        .get_or_init(|| async {
            hold_template_users_lock().await;
            let names: Vec<String> = Migrator::migrations()
                .iter()
                .map(|m| m.name().to_owned())
                .collect();
            let digest = names
                .join(",")
                .bytes()
                .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                });
            let name = format!("giftdrop_template_{digest:016x}");
            let mut admin = connect("postgres").await.expect("postgres reachable");
            let lock = format!("SELECT pg_advisory_lock({TEMPLATE_BUILD_LOCK})");
            execute(&mut admin, &lock).await.expect("lock");
            // A panic drops the connection, and so the lock, too.
            build_unless_present(&mut admin, &name).await;
            let unlock = format!("SELECT pg_advisory_unlock({TEMPLATE_BUILD_LOCK})");
            execute(&mut admin, &unlock).await.expect("unlock");
            admin.close().await.expect("close");
            name
        })
        .await
}

/// Builds the template `name` (under another name, renamed when migrated,
/// so no one clones a half-built one) unless it exists.
async fn build_unless_present(admin: &mut PgConnection, name: &str) {
    let exists = sqlx::query("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut *admin)
        .await
        .expect("lookup")
        .is_some();
    if exists {
        return;
    }
    let building = format!("{name}_building");
    let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quoted(&building));
    execute(admin, &drop).await.expect("drop");
    execute(admin, &format!("CREATE DATABASE {}", quoted(&building)))
        .await
        .expect("create");
    let db: DatabaseConnection = Database::connect(format!("{}/{building}", server_url()))
        .await
        .expect("connect");
    Migrator::up(&db, None).await.expect("migrations apply");
    db.close().await.expect("close");
    let rename = format!(
        "ALTER DATABASE {} RENAME TO {}",
        quoted(&building),
        quoted(name)
    );
    execute(admin, &rename).await.expect("rename");
}

/// A fresh database cloned from the template, dropped when the test ends.
pub async fn fresh_database() -> String {
    let name = unborn_database();
    let template = template().await;
    let mut admin = connect("postgres").await.expect("postgres reachable");
    let sql = format!(
        "CREATE DATABASE {} TEMPLATE {}",
        quoted(&name),
        quoted(template)
    );
    execute(&mut admin, &sql).await.expect("clone template");
    admin.close().await.expect("close");
    name
}

/// A database name no one has created yet, dropped (if it was created)
/// when the test ends.
pub fn unborn_database() -> String {
    let name = format!("giftdrop_test_{}", uuid::Uuid::new_v4().simple());
    harness::scope().database(&name);
    name
}

/// Whether the error says the database does not exist.
pub fn is_missing_database(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| code == "3D000")
}

/// The integer in the first column of the only row of `sql`.
pub async fn count(conn: &mut PgConnection, sql: &str) -> Result<i64, sqlx::Error> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(conn)
        .await
        .and_then(|row| row.try_get::<i64, _>(0))
}

/// Drops `database` (`WITH (FORCE)`: connections PgBouncer still pools to
/// it must not hold it), retrying a few times.
pub async fn drop_database(admin: &mut PgConnection, database: &str) -> Result<(), sqlx::Error> {
    let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quoted(database));
    let mut tries = 0;
    loop {
        match execute(admin, &sql).await {
            Ok(()) => return Ok(()),
            Err(err) if tries >= 4 => return Err(err),
            Err(_) => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100 * tries)).await;
            }
        }
    }
}
