//! `spawn_app()` and typed helpers shared by every test.
//!
//! Every test runs on the harness (`harness.rs`,
//! `#[tokio::test(crate = "crate::support::harness")]`) in a world of its
//! own: a database cloned from a migrated template and a Redis namespace
//! (`databases.rs`, `namespaces.rs`). When it ends, passed or failed, its teardown
//! (`teardown.rs`) stops its apps, checks that they left no work behind
//! (if it passed), and removes its databases, namespaces and temporary
//! files.

#![allow(
    dead_code,
    reason = "each test module uses a different subset of the helpers"
)]

pub mod databases;
pub mod events;
pub mod harness;
pub mod market;
pub mod namespaces;
pub mod proxy;
pub mod teardown;
pub mod ws;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use giftdrop::app::{self, Mode, Running};
use giftdrop::config::Config;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub use databases::{fresh_database, unborn_database};
use harness::{Parked, Scope};
pub use namespaces::fresh_namespace;

/// The Postgres server tests run against.
pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_SERVER")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// Where the app under test reaches that server: `TEST_DATABASE_APP_SERVER`
/// (PgBouncer in transaction mode, e.g. `postgres://postgres@127.0.0.1:6432`,
/// which turns `DATABASE_PGBOUNCER` on), else the server itself. Test
/// databases are created, and asserted on, directly.
pub fn app_server_url() -> Option<String> {
    std::env::var("TEST_DATABASE_APP_SERVER")
        .ok()
        .filter(|url| !url.is_empty())
}

/// The Redis server tests run against.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Password of every test user.
pub const PASSWORD: &str = "correct-horse-battery";
/// The bootstrap admin of every test app.
pub const ADMIN_EMAIL: &str = "admin@giftdrop.test";

/// How to start a test app.
pub struct AppOptions {
    config: Config,
    mode: Mode,
}

impl AppOptions {
    /// Serve + worker on a fresh database and namespace, random port.
    pub async fn new() -> Self {
        let mut config = Config::from_env();
        let database = fresh_database().await;
        let direct = format!("{}/{database}", server_url());
        let app_server = app_server_url();
        config.database_pgbouncer = app_server.is_some();
        config.database_url = match app_server {
            Some(server) => format!("{server}/{database}"),
            None => direct.clone(),
        };
        config.database_migration_url = Some(direct);
        config.redis_url = redis_url();
        config.redis_namespace = fresh_namespace();
        config.http_addr = "127.0.0.1:0".parse().expect("valid address");
        config.jwt_secret = Some("test-secret-0123456789-0123456789".to_owned().into());
        config.card_secret = Some("test-card-secret-0123456789".to_owned().into());
        config.admin_email = Some(ADMIN_EMAIL.to_owned());
        config.admin_password = Some(PASSWORD.to_owned().into());
        config.app_env = giftdrop::config::AppEnv::Development;
        config.graphql_introspection = None;
        config.sentry_dsn = None;
        config.smtp_url = None;
        config.mail_dir = std::env::temp_dir()
            .join(format!("giftdrop-mail-{}", uuid::Uuid::new_v4().simple()))
            .display()
            .to_string();
        config.job_poll_ms = 50;
        config.outbox_sweep_ms = 200;
        config.shutdown_grace_secs = 5;
        harness::scope().world(&config);
        Self {
            config,
            mode: Mode {
                serve: true,
                worker: true,
                migrate: false,
            },
        }
    }

    /// A second instance of `app`: same database, namespace and secret.
    pub fn beside(app: &TestApp) -> Self {
        Self {
            config: app.config.clone(),
            mode: Mode {
                serve: true,
                worker: false,
                migrate: false,
            },
        }
    }

    /// Changes the configuration.
    pub fn config(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(&mut self.config);
        self
    }

    /// On the Redis at `url` (e.g. a private server a test stops and starts).
    pub fn redis(self, url: &str) -> Self {
        self.config(|c| url.clone_into(&mut c.redis_url))
    }

    /// Without the outbox relay: committed rows stay in `ops.outbox`.
    pub fn without_relay(self) -> Self {
        self.config(|c| c.outbox_relay = false)
    }

    /// Serving only, without the outbox relay: nothing runs statements or
    /// delivers messages but the requests a test makes.
    pub fn quiet(self) -> Self {
        self.without_relay().mode(true, false)
    }

    /// Also creates the database if missing and migrates it, as `all` does.
    pub fn migrating(mut self) -> Self {
        self.mode.migrate = true;
        self
    }

    /// Runs only these parts.
    pub fn mode(mut self, serve: bool, worker: bool) -> Self {
        self.mode = Mode {
            serve,
            worker,
            migrate: false,
        };
        self
    }

    /// Starts the app.
    pub async fn spawn(self) -> TestApp {
        let scope = harness::scope();
        scope.spawned(&self.config);
        giftdrop::install_crypto_provider();
        let shutdown = CancellationToken::new();
        let running = app::start(self.config.clone(), self.mode, shutdown.clone())
            .await
            .expect("app starts");
        let db = Database::connect(direct_url(&self.config))
            .await
            .expect("test connection");
        TestApp {
            addr: running.http_addr,
            client: reqwest::Client::new(),
            config: self.config,
            shutdown,
            running: Some(running),
            db,
            worker: self.mode.worker,
            scope,
        }
    }
}

/// A running app.
pub struct TestApp {
    /// HTTP address, when serving.
    pub addr: Option<SocketAddr>,
    /// HTTP client.
    pub client: reqwest::Client,
    /// The configuration it runs with.
    pub config: Config,
    shutdown: CancellationToken,
    running: Option<Running>,
    /// A direct connection to its database, for assertions.
    pub db: DatabaseConnection,
    worker: bool,
    scope: Arc<Scope>,
}

/// The name of the app's database.
pub fn database_name(config: &Config) -> &str {
    let (_, database) = config
        .database_url
        .rsplit_once('/')
        .expect("DATABASE_URL names a database");
    database
}

/// The app's database on the test server itself, even when the app goes
/// through PgBouncer.
pub fn direct_url(config: &Config) -> String {
    format!("{}/{}", server_url(), database_name(config))
}

/// Lets the test leave work behind in `place`, a database or namespace it
/// created, for the reason `why`: teardown neither drains it nor fails the
/// test for it (see [`TestApp::leaves_work`]).
pub fn leaves_work(place: &str, why: &str) {
    harness::scope().allow_leftovers(place, why);
}

/// A path in the temporary directory, `{prefix}-{uuid}`, nothing there
/// yet; whatever the test puts there is removed when it ends.
pub fn temp_path(prefix: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
    harness::scope().path(&path);
    path
}

/// An app with default options.
pub async fn spawn_app() -> TestApp {
    AppOptions::new().await.spawn().await
}

impl Drop for TestApp {
    /// Stops the app; when the test's body ends with it, only after the
    /// teardown let it finish its work (`harness.rs`).
    fn drop(&mut self) {
        self.scope.app_dropped(Parked {
            shutdown: self.shutdown.clone(),
            running: self.running.take(),
            config: self.config.clone(),
            worker: self.worker,
        });
    }
}

/// Polls `check` every 20 ms until it holds; panics after 15 s. For state
/// that has no event to await (rows, files, Redis sets written by workers).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl TestApp {
    /// `http://addr`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr.expect("this app serves HTTP"))
    }

    /// `ws://addr/graphql/ws`.
    pub fn ws_url(&self) -> String {
        format!(
            "ws://{}/graphql/ws",
            self.addr.expect("this app serves HTTP")
        )
    }

    /// The text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("sent")
            .text()
            .await
            .expect("text")
    }

    /// Posts a GraphQL operation, optionally with a bearer token.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self
            .client
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request sent");
        assert_eq!(response.status(), 200, "GraphQL over HTTP answers 200");
        response.json().await.expect("JSON body")
    }

    /// Registers a user; returns (token, id).
    pub async fn register(&self, email: &str, name: &str) -> (String, String) {
        let body = self
            .gql(
                None,
                "mutation($i: RegisterInput!) { register(input: $i) { token user { id } } }",
                json!({ "i": { "email": email, "password": PASSWORD, "displayName": name } }),
            )
            .await;
        let payload = &body["data"]["register"];
        (
            payload["token"]
                .as_str()
                .unwrap_or_else(|| panic!("register failed: {body}"))
                .to_owned(),
            payload["user"]["id"].as_str().expect("user id").to_owned(),
        )
    }

    /// Logs in; returns the token.
    pub async fn login(&self, email: &str) -> String {
        let body = self
            .gql(
                None,
                "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
                json!({ "e": email, "p": PASSWORD }),
            )
            .await;
        body["data"]["login"]["token"]
            .as_str()
            .unwrap_or_else(|| panic!("login failed: {body}"))
            .to_owned()
    }

    /// The bootstrap admin's token.
    pub async fn admin_token(&self) -> String {
        self.login(ADMIN_EMAIL).await
    }

    /// Counts rows of `table` (schema-qualified).
    pub async fn count(&self, table: &str) -> i64 {
        scalar(&self.db, &format!("SELECT count(*) FROM {table}")).await
    }

    /// The mail directory of this app.
    pub fn mail_dir(&self) -> PathBuf {
        PathBuf::from(&self.config.mail_dir)
    }

    /// The running parts (queues, services).
    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("running")
    }

    /// Lets the test leave work behind in this app's database and
    /// namespace (outbox rows, jobs), for the reason `why`: teardown does
    /// not drain them or fail the test for them.
    pub fn leaves_work(&self, why: &str) {
        self.scope.allow_leftovers(database_name(&self.config), why);
        self.scope
            .allow_leftovers(&self.config.redis_namespace, why);
    }

    /// Shuts the app down as SIGTERM does and waits until every part stopped.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.running.take().expect("running").stopped().await
    }
}

/// The one integer `sql` selects.
pub async fn scalar(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            sql,
        ))
        .await
        .expect("query")
        .expect("a row");
    row.try_get_by_index::<i64>(0).expect("an integer")
}

/// The `extensions.code` of the first error.
pub fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("<no code>")
}
