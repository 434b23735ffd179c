//! The event page at giveaway scale: identical reads in flight share one
//! execution, yet a read that starts after a change commits never returns
//! the state before it, and no viewer ever gets another viewer's page.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::support::{AppOptions, TestApp, spawn_app};

/// The page a front end opens when a giveaway starts.
const PAGE: &str = "query($id: ID!) { event(id: $id) { id status participantCount prizesAwarded \
     host { id displayName } prizes { id awarded cardProduct { name } } \
     winners { sequence displayName participant { id } prize { id } card { id } } \
     myParticipation { id displayName } } }";

/// `event(id)` of `PAGE` at `url` as `token` sees it.
async fn page(client: &reqwest::Client, url: &str, token: Option<&str>, id: &str) -> Value {
    let mut request = client
        .post(url)
        .json(&json!({ "query": PAGE, "variables": { "id": id } }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let body: Value = request
        .send()
        .await
        .expect("request sent")
        .json()
        .await
        .expect("JSON body");
    assert!(body["errors"].is_null(), "the page failed: {body}");
    body["data"]["event"].clone()
}

/// Anonymous readers of the page on `app` until `stop`: a round of the
/// page is in flight nearly all the time.
fn readers(
    app: &TestApp,
    id: &str,
    n: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<usize>> {
    (0..n)
        .map(|_| {
            let (url, id, stop) = (app.url("/graphql"), id.to_owned(), Arc::clone(stop));
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut reads = 0;
                while !stop.load(Ordering::Relaxed) {
                    page(&client, &url, None, &id).await;
                    reads += 1;
                }
                reads
            })
        })
        .collect()
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_winner_committed_is_on_every_page_read_after_it_on_either_instance() {
    let app = spawn_app().await;
    let other = AppOptions::beside(&app).spawn().await;
    let (_, id) = app.live_giveaway().await;
    let crowd = app.verified_crowd(&id, 6).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut background = readers(&app, &id, 6, &stop);
    background.extend(readers(&other, &id, 6, &stop));
    let client = reqwest::Client::new();
    for (won, token) in crowd.iter().enumerate() {
        assert_eq!(app.attempt(token, &id).await, "WON");
        for instance in [&app, &other] {
            let event = page(&client, &instance.url("/graphql"), None, &id).await;
            assert_eq!(
                event["winners"].as_array().map(Vec::len),
                Some(won + 1),
                "a read after winner {} committed: {event}",
                won + 1
            );
            assert_eq!(event["prizesAwarded"], json!(won + 1));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for reader in background {
        assert!(reader.await.expect("a reader panicked") > 0);
    }
}

#[tokio::test(crate = "crate::support::harness")]
async fn identical_reads_in_flight_share_executions() {
    // Serving only: nothing else runs statements meanwhile.
    let app = AppOptions::new().await.quiet().spawn().await;
    let (_, id) = app.live_giveaway().await;
    let client = reqwest::Client::new();
    let url = app.url("/graphql");
    let statements = || app.running().db_statements.get();
    let before = statements();
    let alone = page(&client, &url, None, &id).await;
    let one = statements() - before;
    assert!(one > 0, "a read runs statements");
    let before = statements();
    let burst = 32;
    let pages = join_all((0..burst).map(|_| page(&client, &url, None, &id))).await;
    let spent = statements() - before;
    assert!(
        pages.iter().all(|event| *event == alone),
        "every read got the page"
    );
    assert!(
        spent < one * burst,
        "{burst} identical reads at once cost {spent} statements, one alone {one}"
    );
}

#[tokio::test(crate = "crate::support::harness")]
async fn viewers_reading_one_event_at_once_each_get_their_own_page() {
    let app = spawn_app().await;
    let shop = app.open_shop("shop@example.com", "Winners", &[500]).await;
    let (host, host_id) = app.host("host@example.com", 10_000).await;
    let id = app
        .live_instant_event(&host, &shop.product_id, 500, 10)
        .await;
    let crowd = app.verified_crowd(&id, 2).await;
    let (winner, bystander) = (&crowd[0], &crowd[1]);
    assert_eq!(app.attempt(winner, &id).await, "WON");
    // A DRAFT of the same host: only the host sees it.
    let (starts, ends) = crate::support::events::later();
    let draft = app
        .create_event(
            &host,
            crate::support::events::instant(&shop.product_id, 500, 1, starts, ends),
        )
        .await["data"]["createEvent"]["id"]
        .as_str()
        .expect("draft id")
        .to_owned();

    let client = reqwest::Client::new();
    let url = app.url("/graphql");
    let viewers = [
        Some(host.as_str()),
        Some(winner.as_str()),
        Some(bystander.as_str()),
        None,
    ];
    for _ in 0..5 {
        let reads = viewers
            .iter()
            .flat_map(|viewer| [(*viewer, id.as_str()), (*viewer, draft.as_str())])
            .cycle()
            .take(viewers.len() * 2 * 4)
            .map(|(viewer, event)| {
                let (client, url) = (&client, &url);
                async move { (viewer, event, page(client, url, viewer, event).await) }
            });
        for (viewer, event, seen) in join_all(reads).await {
            if event == draft {
                let host_sees = viewer == Some(host.as_str());
                assert_eq!(
                    seen.is_object(),
                    host_sees,
                    "the draft as {viewer:?}: {seen}"
                );
                continue;
            }
            assert_eq!(seen["host"]["id"], host_id.as_str());
            let card = &seen["winners"][0]["card"];
            let mine = &seen["myParticipation"];
            if viewer == Some(winner.as_str()) {
                assert!(card.is_object(), "the winner sees their card: {seen}");
                assert_eq!(seen["winners"][0]["participant"]["id"], mine["id"]);
            } else {
                assert!(card.is_null(), "{viewer:?} sees someone's card: {seen}");
            }
            if viewer == Some(bystander.as_str()) {
                assert!(
                    mine.is_object(),
                    "the bystander's own participation: {seen}"
                );
                assert_ne!(seen["winners"][0]["participant"]["id"], mine["id"]);
            }
            if viewer == Some(host.as_str()) || viewer.is_none() {
                assert!(mine.is_null(), "{viewer:?} never joined: {seen}");
            }
        }
    }
}
