//! Redis and Postgres outages: job workers come back by themselves and
//! readiness says when they are down, no balance older than a posting is
//! ever shown, and loops back off while a dependency is unreachable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::support::proxy::RedisProxy;
use crate::support::{AppOptions, TestApp, eventually, redis_url, server_url};

/// How long Redis stays down in these tests: long enough for every worker
/// to poll (every 50 ms in tests) and fail, as in the incident.
const OUTAGE: Duration = Duration::from_secs(1);

/// A redis-server of the test's own on a free port, which it stops and
/// starts again. Append-only like the compose file's, so what was stored
/// before a stop is there after the restart.
struct PrivateRedis {
    port: u16,
    dir: PathBuf,
    server: Option<Child>,
}

impl PrivateRedis {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("giftdrop-redis-{port}"));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut redis = Self {
            port,
            dir,
            server: None,
        };
        redis.resume().await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) and waits until it answers.
    async fn resume(&mut self) {
        let server = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt install redis-server)");
        self.server = Some(server);
        let client = redis::Client::open(self.url()).expect("url");
        eventually("the private Redis to answer", || async {
            match client.get_multiplexed_async_connection().await {
                Ok(mut conn) => redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok(),
                Err(_) => false,
            }
        })
        .await;
    }

    /// Shuts the server down (its data kept on disk) and waits for its exit.
    fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            Command::new("redis-cli")
                .args(["-p", &self.port.to_string(), "shutdown"])
                .status()
                .expect("redis-cli runs");
            server.wait().expect("redis-server exits");
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `GET /health/ready`: the status and the JSON body.
async fn ready(app: &TestApp) -> (u16, Value) {
    let response = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

/// Waits until readiness answers `status` with `jobs` (`ok`/`unavailable`).
async fn ready_with(app: &TestApp, what: &str, status: u16, jobs: &str) {
    eventually(what, || async {
        let (got, body) = ready(app).await;
        got == status && body["jobs"] == jobs
    })
    .await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn readiness_is_503_while_the_job_workers_are_down_and_200_once_they_are_back() {
    let mut redis = PrivateRedis::start().await;
    let app = AppOptions::new().await.redis(&redis.url()).spawn().await;
    ready_with(&app, "every job worker polling", 200, "ok").await;

    redis.stop();
    ready_with(&app, "the job workers reported down", 503, "unavailable").await;
    let (_, body) = ready(&app).await;
    assert!(
        body["jobs_down"]
            .as_array()
            .is_some_and(|down| down.contains(&json!("send_email"))),
        "{body}"
    );

    redis.resume().await;
    ready_with(&app, "the job workers back after Redis", 200, "ok").await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn jobs_are_processed_again_after_redis_restarts() {
    let mut redis = PrivateRedis::start().await;
    let app = AppOptions::new().await.redis(&redis.url()).spawn().await;
    eventually("the app ready", || async { ready(&app).await.0 == 200 }).await;

    redis.stop();
    eventually("Redis seen down", || async { ready(&app).await.0 == 503 }).await;
    tokio::time::sleep(OUTAGE).await;
    redis.resume().await;

    // Nothing restarts the process: the workers must come back by themselves.
    let (_, id) = app.register("ada@example.com", "Ada").await;
    let file = app.mail_dir().join(format!("welcome_{id}.eml"));
    eventually("the welcome email sent after the outage", || async {
        file.exists()
    })
    .await;
}

const INITIATE: &str =
    "mutation($i: TopupInput!) { initiateTopup(input: $i) { reference checkoutUrl } }";
const BALANCE: &str = "{ me { wallet { balance } } }";

/// A user of `app` with a started top-up of `minor`: (token, checkout URL).
async fn user_with_topup(app: &TestApp, minor: i64) -> (String, String) {
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let body = app
        .gql(
            Some(&token),
            INITIATE,
            json!({ "i": { "amount": minor.to_string(), "idempotencyKey": "k" } }),
        )
        .await;
    let url = body["data"]["initiateTopup"]["checkoutUrl"]
        .as_str()
        .unwrap_or_else(|| panic!("initiateTopup failed: {body}"))
        .to_owned();
    (token, url)
}

/// Pays the sandbox checkout at `url`: the provider's webhook credits it.
async fn pay(app: &TestApp, url: &str) {
    let response = app
        .client
        .post(format!("{url}/pay"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["outcome"], "credited", "{body}");
}

async fn balance(app: &TestApp, token: &str) -> Value {
    let body = app.gql(Some(token), BALANCE, json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["me"]["wallet"]["balance"].clone()
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_balance_posted_while_redis_was_down_reads_right_once_it_is_back() {
    let mut redis = PrivateRedis::start().await;
    let app = AppOptions::new().await.redis(&redis.url()).spawn().await;
    let (token, checkout) = user_with_topup(&app, 7_000).await;
    assert_eq!(balance(&app, &token).await, "0");

    redis.stop();
    pay(&app, &checkout).await;
    redis.resume().await;
    eventually("Redis seen back", || async {
        ready(&app).await.1["redis"] == "ok"
    })
    .await;

    // Every read from now on, Redis or not, shows the posting: a few
    // seconds of them, past the cache's 1 s circuit-breaker cooldown.
    for _ in 0..12 {
        assert_eq!(balance(&app, &token).await, "7000");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(crate = "crate::support::harness")]
async fn another_process_never_shows_a_balance_older_than_a_posting() {
    // `poster` loses Redis; `reader`, beside it, never does.
    let mut proxy = RedisProxy::start(None).await;
    let poster = AppOptions::new()
        .await
        .redis(&format!("redis://{}", proxy.addr))
        .spawn()
        .await;
    let reader = AppOptions::beside(&poster)
        .redis(&redis_url())
        .spawn()
        .await;
    let (token, checkout) = user_with_topup(&poster, 7_000).await;
    assert_eq!(balance(&reader, &token).await, "0");

    proxy.cut();
    pay(&poster, &checkout).await;
    assert_eq!(balance(&reader, &token).await, "7000");
    assert_eq!(balance(&poster, &token).await, "7000");
}

/// A gate in front of the test Postgres: it forwards connections until
/// shut, then drops them and closes every new one at once (a database that
/// fails fast, e.g. a host that went away), counting them.
struct PostgresGate {
    addr: SocketAddr,
    shut: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
    open: CancellationToken,
}

impl PostgresGate {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("addr");
        let upstream = Self::upstream();
        let (shut, refused, open) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
            CancellationToken::new(),
        );
        let gate = Self {
            addr,
            shut: shut.clone(),
            refused: refused.clone(),
            open: open.clone(),
        };
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if shut.load(Ordering::SeqCst) {
                    refused.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                let (upstream, open) = (upstream.clone(), open.clone());
                tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        tokio::select! {
                            () = open.cancelled() => {}
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        }
                    }
                });
            }
        });
        gate
    }

    /// `host:port` of the test Postgres.
    fn upstream() -> String {
        let server = server_url();
        server
            .rsplit('@')
            .next()
            .unwrap_or(&server)
            .trim_end_matches('/')
            .to_owned()
    }

    /// `url` (of the test Postgres) through the gate.
    fn route(&self, url: &str) -> String {
        url.replace(&Self::upstream(), &self.addr.to_string())
    }

    /// Drops every connection and refuses the next ones.
    fn close(&self) {
        self.shut.store(true, Ordering::SeqCst);
        self.open.cancel();
    }

    fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

#[tokio::test(crate = "crate::support::harness")]
async fn loops_back_off_while_postgres_is_unreachable() {
    let gate = PostgresGate::start().await;
    let app = AppOptions::new()
        .await
        .config(|c| {
            c.database_url = gate.route(&c.database_url);
            c.event_clock_ms = 50;
            c.outbox_sweep_ms = 50;
        })
        .mode(false, true)
        .spawn()
        .await;
    gate.close();

    // Without backoff the event clock and the relay would each try every
    // 50 ms: 120 connection attempts in these 3 s. With it, each waits
    // 50, 100, 200, ... ms after consecutive failures: about 6 tries each.
    let window = Duration::from_secs(3);
    let before = gate.refused();
    tokio::time::sleep(window).await;
    let tries = gate.refused() - before;
    assert!(
        tries <= 30,
        "{tries} attempts to reach Postgres in {window:?} while it was down"
    );
    drop(app);
}
