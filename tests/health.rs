//! Liveness, readiness and metrics.

use crate::support::proxy::RedisProxy;
use crate::support::{AppOptions, spawn_app};

#[tokio::test(crate = "crate::support::harness")]
async fn liveness_and_metrics_answer() {
    let app = spawn_app().await;
    let live = app
        .client
        .get(app.url("/health/live"))
        .send()
        .await
        .expect("sent");
    assert_eq!(live.status(), 200);
    app.gql(None, "{ platform { currency } }", serde_json::json!({}))
        .await;
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("giftdrop_http_requests_total"),
        "{metrics}"
    );
}

#[tokio::test(crate = "crate::support::harness")]
async fn readiness_follows_redis_down_and_back() {
    let mut proxy = RedisProxy::start(None).await;
    let addr = proxy.addr;
    let app = AppOptions::new()
        .await
        .config(|c| c.redis_url = format!("redis://{addr}"))
        .mode(true, false)
        .spawn()
        .await;
    let ready = || async {
        app.client
            .get(app.url("/health/ready"))
            .send()
            .await
            .expect("sent")
    };
    assert_eq!(ready().await.status(), 200);

    proxy.cut();
    let down = ready().await;
    assert_eq!(down.status(), 503);
    let body: serde_json::Value = down.json().await.expect("json");
    assert_eq!(body["redis"], "unavailable");
    assert_eq!(body["postgres"], "ok");

    let _restored = RedisProxy::start(Some(addr)).await;
    crate::support::eventually("readiness back to 200", || async {
        ready().await.status() == 200
    })
    .await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn the_cache_serves_until_invalidated_and_reads_through_when_redis_is_cut() {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::time::Duration;

    use giftdrop_domain::cache::Cache;

    let app = spawn_app().await;
    let mut proxy = RedisProxy::start(None).await;
    let redis = redis::Client::open(format!("redis://{}", proxy.addr))
        .expect("url")
        .get_connection_manager()
        .await
        .expect("connected through the proxy");
    let cache = Cache::new(redis, app.running().services.ns.clone());
    let source = AtomicI64::new(1);
    let loads = AtomicI64::new(0);
    let read = || {
        cache.get_or_set("answer", Duration::from_secs(60), || async {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok(source.load(Ordering::SeqCst))
        })
    };

    assert_eq!(read().await.expect("read"), 1);
    assert_eq!(read().await.expect("read"), 1);
    assert_eq!(loads.load(Ordering::SeqCst), 1, "the second read is a hit");

    source.store(2, Ordering::SeqCst);
    assert_eq!(read().await.expect("read"), 1, "stale until invalidated");
    cache.invalidate("answer", Duration::from_secs(60)).await;
    assert_eq!(read().await.expect("read"), 2);
    assert_eq!(loads.load(Ordering::SeqCst), 2);

    proxy.cut();
    source.store(3, Ordering::SeqCst);
    cache.invalidate("answer", Duration::from_secs(60)).await;
    assert_eq!(
        read().await.expect("no error without redis"),
        3,
        "with Redis cut, reads go to the source"
    );
}
