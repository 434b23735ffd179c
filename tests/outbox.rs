//! Side effects leave through the outbox: nothing from a failed mutation,
//! everything from a committed one, even when the relay was down.

use giftdrop_domain::jobs::{JobPayload, SendEmail};
use redis::AsyncCommands;
use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::support::proxy::RedisProxy;
use crate::support::{AppOptions, PASSWORD, TestApp, eventually, spawn_app, temp_path};

#[tokio::test(crate = "crate::support::harness")]
async fn registering_sends_a_welcome_email_through_the_job_queue() {
    let app = spawn_app().await;
    let (_, id) = app.register("ada@example.com", "Ada Lovelace").await;
    let file = app.mail_dir().join(format!("welcome_{id}.eml"));
    eventually("the welcome email", || async { file.exists() }).await;
    let email = std::fs::read_to_string(&file).expect("readable");
    assert!(email.contains("To: ada@example.com") && email.contains("Hi Ada Lovelace"));
    eventually("the outbox drained", || async {
        app.count("ops.outbox").await == 0
    })
    .await;
    eventually("the queue drained", || async {
        app.running()
            .queues
            .pending(SendEmail::KIND)
            .await
            .expect("redis")
            == 0
    })
    .await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_failed_mutation_emits_nothing() {
    let app = AppOptions::new().await.without_relay().spawn().await;
    let admin = app.admin_token().await;
    let failures = [
        json!({ "query": "mutation($u: ID!) { grantRole(userId: $u, role: HOST) { id } }", "variables": { "u": uuid::Uuid::new_v4() } }),
        json!({ "query": "mutation { register(input: { email: \"x\", password: \"short\", displayName: \"X\" }) { token } }" }),
    ];
    for failure in failures {
        let body: serde_json::Value = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(&admin)
            .json(&failure)
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("json");
        assert!(body["errors"].is_array(), "{body}");
    }
    assert_eq!(app.count("ops.outbox").await, 0);
    assert_eq!(
        app.running()
            .queues
            .pending(SendEmail::KIND)
            .await
            .expect("redis"),
        0
    );
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_commit_made_while_the_relay_was_down_is_delivered_by_the_sweep() {
    let down = AppOptions::new().await.quiet().spawn().await;
    let (_, id) = down.register("ada@example.com", "Ada").await;
    assert_eq!(
        down.count("ops.outbox").await,
        1,
        "the welcome email waits in the outbox"
    );

    let worker = AppOptions::beside(&down)
        .mode(false, true)
        .config(|c| c.outbox_relay = true)
        .spawn()
        .await;
    let file = worker.mail_dir().join(format!("welcome_{id}.eml"));
    eventually("the swept email", || async { file.exists() }).await;
    // The relay deletes the row in the commit after it pushed the job,
    // which may land just after the worker already sent the email.
    eventually("the drained outbox", || async {
        down.count("ops.outbox").await == 0
    })
    .await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_job_that_keeps_failing_is_retried_then_moved_to_the_dead_set() {
    let blocker = temp_path("giftdrop-not-a-dir");
    std::fs::write(&blocker, b"a file where the mail directory should be").expect("temp file");
    let app = AppOptions::new()
        .await
        .config(|c| {
            c.mail_dir = blocker.join("mail").display().to_string();
            c.job_max_attempts = 2;
        })
        .spawn()
        .await;
    let body = app
        .gql(
            None,
            "mutation($i: RegisterInput!) { register(input: $i) { token } }",
            json!({ "i": { "email": "ada@example.com", "password": PASSWORD, "displayName": "Ada" } }),
        )
        .await;
    assert!(
        body["data"]["register"]["token"].is_string(),
        "registration itself succeeds"
    );
    let queues = &app.running().queues;
    eventually("the job in the dead set", || async {
        queues.dead(SendEmail::KIND).await.expect("redis") == 1
    })
    .await;
    assert_eq!(
        queues.pending(SendEmail::KIND).await.expect("redis"),
        0,
        "no retry left scheduled"
    );
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_redelivered_email_job_sends_nothing_twice() {
    let app = spawn_app().await;
    let (_, id) = app.register("ada@example.com", "Ada").await;
    let file = app.mail_dir().join(format!("welcome_{id}.eml"));
    let queues = &app.running().queues;
    let done = |n: u64| async move { queues.done(SendEmail::KIND).await.expect("redis") == n };
    eventually("the welcome email", || done(1)).await;
    assert!(file.exists());
    std::fs::remove_file(&file).expect("removed");

    // The same job again, as an at-least-once relay or queue may deliver it.
    let again = json!({
        "to": "ada@example.com",
        "subject": "Welcome to giftdrop",
        "body": "Hi again",
        "dedupe_key": format!("welcome:{id}"),
    });
    queues
        .push(SendEmail::KIND, again, None)
        .await
        .expect("pushed");
    eventually("the repeated job to finish", || done(2)).await;
    assert!(!file.exists(), "a re-delivered job sent the email again");
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_job_carries_the_correlation_id_of_the_request_that_caused_it() {
    let app = AppOptions::new().await.quiet().spawn().await;
    let body: serde_json::Value = app
        .client
        .post(app.url("/graphql"))
        .header("x-correlation-id", "signup-77")
        .json(&json!({
            "query": "mutation($i: RegisterInput!) { register(input: $i) { token } }",
            "variables": { "i": { "email": "ada@example.com", "password": PASSWORD, "displayName": "Ada" } },
        }))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert!(body["data"]["register"]["token"].is_string(), "{body}");
    let row = app
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT correlation_id FROM ops.outbox",
        ))
        .await
        .expect("query")
        .expect("the queued email");
    let outbox_id: Option<String> = row.try_get_by_index(0).expect("column");
    assert_eq!(outbox_id.as_deref(), Some("signup-77"));

    // The relay hands it to the job, whose envelope carries it.
    let relay = AppOptions::beside(&app)
        .mode(true, false)
        .config(|c| c.outbox_relay = true)
        .spawn()
        .await;
    eventually("the outbox drained", || async {
        relay.count("ops.outbox").await == 0
    })
    .await;
    let queues = &relay.running().queues;
    let data_key = queues.send_email.get_config().job_data_hash();
    let jobs: Vec<String> = redis::Client::open(crate::support::redis_url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis")
        .hvals(&data_key)
        .await
        .expect("job data");
    assert!(
        jobs.iter().any(|job| job.contains("signup-77")),
        "no queued job carries the correlation id: {jobs:?}"
    );
}

/// Three messages committed while the relay's Redis was cut, each tried
/// and marked failed: the cut proxy, the app (serving nothing, its relay
/// sweeping every 100 ms) and the channel's messages, watched on Redis
/// itself.
async fn messages_held_by_a_cut_redis() -> (RedisProxy, TestApp, redis::aio::PubSubStream) {
    use giftdrop_domain::RequestMeta;

    let mut proxy = RedisProxy::start(None).await;
    let addr = proxy.addr;
    let app = AppOptions::new()
        .await
        .config(|c| {
            c.redis_url = format!("redis://{addr}");
            c.outbox_sweep_ms = 100;
        })
        .mode(true, false)
        .spawn()
        .await;
    let services = &app.running().services;
    let channel = services.ns.channel("relay-test");
    let watcher = redis::Client::open(crate::support::redis_url()).expect("url");
    let mut watcher = watcher.get_async_pubsub().await.expect("pubsub");
    watcher.subscribe(&channel).await.expect("subscribe");

    proxy.cut();
    let meta = RequestMeta {
        correlation_id: "relay-test".into(),
    };
    for n in 1..=3 {
        let insert =
            giftdrop_domain::outbox::publish_statement(&meta, "relay-test", &json!({ "n": n }))
                .expect("statement");
        services.db.execute(&insert).await.expect("insert");
    }
    services.outbox.wake();
    eventually("the failed rows marked", || async {
        app.count("ops.outbox WHERE attempts >= 1 AND last_error IS NOT NULL")
            .await
            == 3
    })
    .await;
    (proxy, app, watcher.into_on_message())
}

/// The `n` of the next three messages of `received`, each within 30 s.
async fn next_three(received: &mut redis::aio::PubSubStream) -> Vec<i64> {
    use futures_util::StreamExt;

    let mut order = Vec::new();
    for _ in 0..3 {
        let message = tokio::time::timeout(std::time::Duration::from_secs(30), received.next())
            .await
            .expect("published in time")
            .expect("a message");
        let payload: serde_json::Value =
            serde_json::from_str(&message.get_payload::<String>().expect("text")).expect("JSON");
        order.push(payload["n"].as_i64().expect("n"));
    }
    order
}

#[tokio::test(crate = "crate::support::harness")]
async fn messages_the_relay_could_not_publish_wait_marked_and_go_out_in_order_once_redis_is_back() {
    let (proxy, app, mut received) = messages_held_by_a_cut_redis().await;
    let _restored = RedisProxy::start(Some(proxy.addr)).await;
    assert_eq!(
        next_three(&mut received).await,
        [1, 2, 3],
        "one pipeline, in the outbox's order"
    );
    eventually("the drained outbox", || async {
        app.count("ops.outbox").await == 0
    })
    .await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn rows_held_back_by_a_long_outage_go_as_soon_as_redis_is_back() {
    let (proxy, app, mut received) = messages_held_by_a_cut_redis().await;
    // Once the cut has closed every connection (the proxy's close its own
    // a moment after its listener), the relay fails again and finds Redis
    // itself down.
    eventually("Redis refused", || async {
        let mut redis = app.running().services.redis.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut redis)
            .await
            .is_err()
    })
    .await;
    eventually("the rows tried again", || async {
        app.count("ops.outbox WHERE attempts >= 2").await == 3
    })
    .await;
    // As minutes of failed tries leave them: each row's own backoff at its
    // longest, 256 s.
    app.running()
        .services
        .db
        .execute_unprepared(
            "UPDATE ops.outbox SET attempts = 8, available_at = now() + interval '256 seconds'",
        )
        .await
        .expect("held back");
    let _restored = RedisProxy::start(Some(proxy.addr)).await;
    // Within the relay's longest pause between passes (10 s), not 256 s.
    assert_eq!(next_three(&mut received).await, [1, 2, 3]);
    eventually("the drained outbox", || async {
        app.count("ops.outbox").await == 0
    })
    .await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_row_that_fails_on_its_own_keeps_its_backoff_while_redis_answers() {
    let app = AppOptions::new()
        .await
        .config(|c| c.outbox_sweep_ms = 100)
        .mode(true, false)
        .spawn()
        .await;
    // A job for a queue this build does not know: it fails however healthy
    // Redis is.
    app.running()
        .services
        .db
        .execute_unprepared(
            "INSERT INTO ops.outbox (kind, target, payload) VALUES ('job', 'no-such-job', '{}')",
        )
        .await
        .expect("inserted");
    app.running().services.outbox.wake();
    eventually("the row tried and marked", || async {
        app.count("ops.outbox WHERE attempts >= 1").await == 1
    })
    .await;
    // Its backoff is 2 s, then 4 s: Redis answering is no reason to try it
    // at every sweep (10 tries a second).
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        app.count("ops.outbox WHERE attempts <= 2").await,
        1,
        "tried at most twice in 3 s"
    );
    app.running()
        .services
        .db
        .execute_unprepared("DELETE FROM ops.outbox")
        .await
        .expect("the row removed");
}
