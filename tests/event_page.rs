//! The event page at giveaway scale: identical reads in flight share one
//! execution, the public page is answered from memory while its event's
//! version stands, yet a read that starts after a change commits never
//! returns the state before it, and no viewer ever gets another viewer's
//! page.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::support::{AppOptions, TestApp, spawn_app};

/// The page a front end opens when a giveaway starts, with what only the
/// viewer may see (their card, their participation): never kept, only
/// shared by identical reads in flight.
const PAGE: &str = "query($id: ID!) { event(id: $id) { id status participantCount prizesAwarded \
     host { id displayName } prizes { id awarded cardProduct { name } } \
     winners { sequence displayName disqualifiedAt participant { id } prize { id } card { id } } \
     myParticipation { id displayName } } }";

/// The public page: the same without the viewer's own card and
/// participation, so its answer is kept while the event's version stands.
const PUBLIC: &str = "query($id: ID!) { event(id: $id) { id status participantCount prizesAwarded \
     host { id displayName } prizes { id awarded cardProduct { name } } \
     winners { sequence displayName disqualifiedAt participant { id } prize { id } } } }";

/// `event(id)` of `query` at `url` as `token` sees it.
async fn read(
    client: &reqwest::Client,
    url: &str,
    query: &str,
    token: Option<&str>,
    id: &str,
) -> Value {
    let mut request = client
        .post(url)
        .json(&json!({ "query": query, "variables": { "id": id } }));
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

/// `PAGE` at `url` as `token` sees it.
async fn page(client: &reqwest::Client, url: &str, token: Option<&str>, id: &str) -> Value {
    read(client, url, PAGE, token, id).await
}

/// Anonymous readers of both pages on `app` until `stop`: a round of each
/// is in flight nearly all the time, and the public one is kept.
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
                    let query = if reads % 2 == 0 { PAGE } else { PUBLIC };
                    read(&client, &url, query, None, &id).await;
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
        for (instance, query) in [&app, &other]
            .into_iter()
            .flat_map(|i| [(i, PAGE), (i, PUBLIC)])
        {
            let event = read(&client, &instance.url("/graphql"), query, None, &id).await;
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
    let full =
        |viewer: Option<&str>| viewer == Some(host.as_str()) || viewer == Some(winner.as_str());
    let mut names = std::collections::HashMap::new();
    for round in 0..6 {
        // Viewer-specific and public pages, and each read twice: the
        // second public read of a viewer is answered from memory.
        let query = if round % 2 == 0 { PAGE } else { PUBLIC };
        let reads = viewers
            .iter()
            .flat_map(|viewer| [(*viewer, id.as_str()), (*viewer, draft.as_str())])
            .cycle()
            .take(viewers.len() * 2 * 4)
            .map(|(viewer, event)| {
                let (client, url) = (&client, &url);
                async move { (viewer, event, read(client, url, query, viewer, event).await) }
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
            let name = seen["winners"][0]["displayName"].clone();
            names.entry(full(viewer)).or_insert_with(|| name.clone());
            assert_eq!(
                names[&full(viewer)],
                name,
                "{viewer:?} sees the winner's name as viewers like them do: {seen}"
            );
            if query == PUBLIC {
                continue;
            }
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
    assert_ne!(
        names[&true], names[&false],
        "the host and the winner see the name in full, others masked"
    );
}

/// `giftdrop_page_cache_total{outcome="hit"}` on `app`'s `/metrics`.
async fn page_hits(app: &TestApp) -> u64 {
    app.metrics()
        .await
        .lines()
        .find_map(|line| line.strip_prefix("giftdrop_page_cache_total{outcome=\"hit\"} "))
        .map_or(0, |count| count.trim().parse().expect("a count"))
}

#[tokio::test(crate = "crate::support::harness")]
async fn the_public_page_is_answered_from_memory_while_its_event_stands() {
    // Serving only: nothing else runs statements meanwhile.
    let app = AppOptions::new().await.quiet().spawn().await;
    let (_, id) = app.live_giveaway().await;
    let crowd = app.verified_crowd(&id, 1).await;
    let client = reqwest::Client::new();
    let url = app.url("/graphql");
    let statements = || app.running().db_statements.get();
    let before = statements();
    let first = read(&client, &url, PUBLIC, None, &id).await;
    let executed = statements() - before;
    let (before, hits) = (statements(), page_hits(&app).await);
    let again = read(&client, &url, PUBLIC, None, &id).await;
    assert_eq!(again, first);
    assert_eq!(
        statements() - before,
        1,
        "a kept page costs the read of its event's version (an execution: {executed})"
    );
    // Counted where an operator looks (other tests in this process only
    // ever add to the count).
    assert!(page_hits(&app).await > hits, "the hit is on /metrics");
    assert_eq!(app.attempt(&crowd[0], &id).await, "WON");
    let before = statements();
    let after = read(&client, &url, PUBLIC, None, &id).await;
    let again = statements() - before;
    assert!(again > 1, "a changed event runs again: {again} statements");
    assert_eq!(
        after["winners"].as_array().map(Vec::len),
        Some(1),
        "{after}"
    );
    // An id that is no event's is never kept: each read looks again.
    let unknown = uuid::Uuid::new_v4().to_string();
    for _ in 0..2 {
        let before = statements();
        assert_eq!(
            read(&client, &url, PUBLIC, None, &unknown).await,
            Value::Null
        );
        assert_eq!(statements() - before, 2, "the version, then the event");
    }
}

#[tokio::test(crate = "crate::support::harness")]
async fn every_change_to_an_event_reaches_its_kept_page_on_either_instance() {
    let app = spawn_app().await;
    let other = AppOptions::beside(&app).spawn().await;
    let (host, id) = app.live_giveaway().await;
    let crowd = app.verified_crowd(&id, 1).await;
    let client = reqwest::Client::new();
    let (fan, _) = app.register("fan@example.com", "Fola Fan").await;
    // Each change, then what every reader must see once it committed:
    // participants, prizes awarded, status, winners, the first disqualified.
    let steps = [
        ("read", (0, 0, "LIVE", 0, false)),
        ("join", (1, 0, "LIVE", 0, false)),
        ("win", (1, 1, "LIVE", 1, false)),
        ("disqualify", (1, 0, "LIVE", 1, true)),
        ("cancel", (1, 0, "CANCELLED", 1, true)),
    ];
    let mut last = Value::Null;
    for (step, expected) in steps {
        match step {
            "join" => {
                let joined = app.join_event(&fan, &id, "@fola").await;
                assert!(joined["errors"].is_null(), "{joined}");
            }
            "win" => assert_eq!(app.attempt(&crowd[0], &id).await, "WON"),
            "disqualify" => {
                let winner = last["winners"][0]["id"].as_str().expect("winner id");
                app.ok(
                    Some(&host),
                    "mutation($w: ID!) { disqualifyWinner(winnerId: $w, reason: \"bot\") { id } }",
                    json!({ "w": winner }),
                    "disqualifyWinner",
                )
                .await;
            }
            "cancel" => {
                app.ok(
                    Some(&host),
                    "mutation($id: ID!) { cancelEvent(id: $id, reason: \"storm\") { id } }",
                    json!({ "id": id }),
                    "cancelEvent",
                )
                .await;
            }
            _ => {}
        }
        let mut seen = Vec::new();
        // Each instance twice, anonymous and as the host: the second read
        // of each is answered from memory.
        for instance in [&app, &other, &app, &other] {
            for viewer in [None, Some(host.as_str())] {
                let url = instance.url("/graphql");
                seen.push((viewer, read(&client, &url, KEPT, viewer, &id).await));
            }
        }
        for (viewer, event) in &seen {
            assert_eq!(
                (
                    event["participantCount"].as_i64().unwrap_or(-1),
                    event["prizesAwarded"].as_i64().unwrap_or(-1),
                    event["status"].as_str().unwrap_or_default(),
                    event["winners"].as_array().map_or(0, Vec::len),
                    event["winners"][0]["disqualifiedAt"].is_string(),
                ),
                expected,
                "after {step}, as {viewer:?}: {event}"
            );
        }
        last = seen.swap_remove(0).1;
    }
}

/// The public page with the winners' ids, for the host to disqualify one.
const KEPT: &str = "query($id: ID!) { event(id: $id) { id status participantCount prizesAwarded \
     winners { id sequence displayName disqualifiedAt participant { id } prize { id } } } }";
