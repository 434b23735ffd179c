//! INSTANT events: attempts under the Redis slot budget, with the database
//! as the second guard (FLOWS.md §5).

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use futures_util::StreamExt;
use serde_json::json;

use giftdrop_domain::giveaway::attempt::{self, Budget};

use crate::support::events::instant;
use crate::support::market::assert_ledger_sound;
use crate::support::proxy::RedisProxy;
use crate::support::{TestApp, eventually, scalar, spawn_app};

/// A LIVE INSTANT event of `units` units (winChancePercent 100) in
/// `slots` slots over `seconds`; its id and its host's token.
async fn live_event(app: &TestApp, units: i64, slots: i64, seconds: i64) -> (String, String) {
    let shop = app.open_shop("shop@example.com", "Instant", &[500]).await;
    let (host, _) = app.host("host@example.com", units * 500).await;
    let starts = Utc::now() + Duration::seconds(1);
    let mut input = instant(
        &shop.product_id,
        500,
        units,
        starts,
        starts + Duration::seconds(seconds),
    );
    input["winChancePercent"] = json!(100);
    input["slotCount"] = json!(slots);
    let created = app.create_event(&host, input).await;
    let event_id = created["data"]["createEvent"]["id"]
        .as_str()
        .expect("an event")
        .to_owned();
    let published = app.publish_event(&host, &event_id, "p").await;
    assert!(published["errors"].is_null(), "{published}");
    eventually("the event is live", || async {
        app.event(None, &event_id).await["status"] == "LIVE"
    })
    .await;
    (event_id, host)
}

/// Every token attempts once, all at the same time; outcomes counted. An
/// attempt that failed with INTERNAL (on this 2-core machine, thousands of
/// requests at once can outwait the database pool's 5 s) spent nothing,
/// so it is sent again, as a client that backs off would: at most 64 retries
/// in flight, until it has an outcome.
async fn storm(app: &TestApp, tokens: &[String], event_id: &str) -> BTreeMap<String, usize> {
    let mut counted = BTreeMap::new();
    let mut pending: Vec<&String> = tokens.iter().collect();
    for round in 0..10 {
        let in_flight = if round == 0 { pending.len() } else { 64 };
        let outcomes: Vec<String> = futures_util::stream::iter(&pending)
            .map(|t| app.attempt(t, event_id))
            .buffered(in_flight.max(1))
            .collect()
            .await;
        let mut again = Vec::new();
        for (token, outcome) in pending.into_iter().zip(outcomes) {
            if outcome == "INTERNAL" {
                again.push(token);
            } else {
                *counted.entry(outcome).or_default() += 1;
            }
        }
        if again.is_empty() {
            return counted;
        }
        pending = again;
    }
    panic!("attempts still failing after 10 rounds: {counted:?}");
}

async fn winners_are_sound(app: &TestApp, event_id: &str, expected: i64) {
    let count = |sql: String| async move { scalar(&app.db, &sql).await };
    assert_eq!(
        count(format!(
            "SELECT count(*) FROM giveaway.winners WHERE event_id = '{event_id}'"
        ))
        .await,
        expected
    );
    assert_eq!(
        count(format!(
            "SELECT count(DISTINCT sequence) FROM giveaway.winners WHERE event_id = '{event_id}' \
             AND sequence BETWEEN 1 AND {expected}"
        ))
        .await,
        expected
    );
    assert_eq!(
        count(format!(
            "SELECT count(DISTINCT c.id) FROM giveaway.winners w JOIN giftcard.cards c ON c.id = w.card_id \
             JOIN giveaway.prize_units u ON u.id = w.unit_id AND u.escrow_id = c.escrow_id \
             WHERE w.event_id = '{event_id}' AND c.status = 'ACTIVE'"
        ))
        .await,
        expected
    );
    assert_eq!(
        count(format!(
            "SELECT count(*) FROM giveaway.prize_units WHERE event_id = '{event_id}' AND winner_id IS NOT NULL"
        ))
        .await,
        expected
    );
    let event = app.event(None, event_id).await;
    assert_eq!(event["prizesAwarded"], expected);
    assert_ledger_sound(app).await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn two_thousand_attempts_at_once_award_exactly_the_hundred_prizes() {
    let app = spawn_app().await;
    // Live long enough for 2,000 sign-ups and the storm on a busy machine:
    // the last check needs the event still LIVE.
    let (event_id, _) = live_event(&app, 100, 1, 900).await;
    let crowd = app.verified_crowd(&event_id, 2_000).await;
    let outcomes = storm(&app, &crowd, &event_id).await;
    assert_eq!(outcomes.get("WON"), Some(&100), "{outcomes:?}");
    assert_eq!(outcomes.get("NO_PRIZES_LEFT"), Some(&1_900), "{outcomes:?}");
    winners_are_sound(&app, &event_id, 100).await;
    // One attempt each.
    assert_eq!(app.attempt(&crowd[0], &event_id).await, "ALREADY_ATTEMPTED");
}

#[tokio::test(crate = "crate::support::harness")]
async fn only_a_verified_participant_of_a_visible_event_attempts() {
    let app = spawn_app().await;
    let (event_id, _) = live_event(&app, 2, 1, 120).await;
    let crowd = app.verified_crowd(&event_id, 3).await;
    scalar(
        &app.db,
        "WITH p AS (UPDATE giveaway.participants SET status = 'PENDING_VERIFICATION' \
           WHERE id = (SELECT id FROM giveaway.participants ORDER BY joined_at, id LIMIT 1) RETURNING 1) \
         SELECT count(*) FROM p",
    )
    .await;
    let mut outcomes = Vec::new();
    for token in &crowd {
        outcomes.push(app.attempt(token, &event_id).await);
    }
    outcomes.sort();
    assert_eq!(outcomes, ["FORBIDDEN", "WON", "WON"]);
    assert_eq!(
        app.attempt(&crowd[0], &uuid::Uuid::new_v4().to_string())
            .await,
        "NOT_FOUND"
    );
    // Only while the event is LIVE.
    scalar(
        &app.db,
        &format!(
            "WITH e AS (UPDATE giveaway.events SET status = 'ENDED' WHERE id = '{event_id}' RETURNING 1) \
             SELECT count(*) FROM e"
        ),
    )
    .await;
    assert_eq!(app.attempt(&crowd[0], &event_id).await, "CONFLICT");
    // The unverified participant's attempt is not spent.
    let unspent = "SELECT count(*) FROM giveaway.participants WHERE attempted_at IS NULL";
    assert_eq!(scalar(&app.db, unspent).await, 1);
}

#[tokio::test(crate = "crate::support::harness")]
async fn each_slot_obeys_its_cumulative_cap() {
    let app = spawn_app().await;
    // 4 slots of 30 s: by the end of the first, at most 25 of 100.
    let (event_id, _) = live_event(&app, 100, 4, 120).await;
    let crowd = app.verified_crowd(&event_id, 300).await;
    let outcomes = storm(&app, &crowd, &event_id).await;
    assert_eq!(outcomes.get("WON"), Some(&25), "{outcomes:?}");
    assert_eq!(
        outcomes.get("SLOT_BUDGET_SPENT"),
        Some(&275),
        "{outcomes:?}"
    );
    winners_are_sound(&app, &event_id, 25).await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_budget_lost_mid_run_is_rebuilt_and_never_awards_more_than_the_pool() {
    let app = spawn_app().await;
    let (event_id, _) = live_event(&app, 100, 1, 120).await;
    let crowd = app.verified_crowd(&event_id, 1_000).await;
    let services = &app.running().services;
    let key = Budget::key(services, uuid::Uuid::parse_str(&event_id).expect("uuid"));
    let redis = services.redis.clone();
    let deleting = async {
        for _ in 0..20 {
            let _: Result<i64, _> = redis::cmd("DEL")
                .arg(&key)
                .query_async(&mut redis.clone())
                .await;
            tokio::task::yield_now().await;
        }
    };
    let (outcomes, ()) = tokio::join!(storm(&app, &crowd, &event_id), deleting);
    let won = outcomes.get("WON").copied().unwrap_or(0);
    assert!(won <= 100, "{outcomes:?}");
    assert_eq!(
        won + outcomes.get("NO_PRIZES_LEFT").copied().unwrap_or(0),
        1_000,
        "{outcomes:?}"
    );
    winners_are_sound(&app, &event_id, i64::try_from(won).expect("small")).await;
    // Whatever the budget went through, the rest of the pool can still be
    // won, and no more.
    let late = app.verified_crowd(&event_id, 150).await;
    let outcomes = storm(&app, &late, &event_id).await;
    let total = won + outcomes.get("WON").copied().unwrap_or(0);
    assert_eq!(total, 100, "{outcomes:?}");
    winners_are_sound(&app, &event_id, 100).await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_budget_lost_under_a_storm_is_rebuilt_once_for_every_attempt_that_found_it_lost() {
    let app = spawn_app().await;
    let (event_id, _) = live_event(&app, 100, 1, 120).await;
    let crowd = app.verified_crowd(&event_id, 300).await;
    let (early, storming) = crowd.split_at(20);
    let outcomes = storm(&app, early, &event_id).await;
    assert_eq!(outcomes.get("WON"), Some(&20), "{outcomes:?}");
    let services = &app.running().services;
    let key = Budget::key(services, uuid::Uuid::parse_str(&event_id).expect("uuid"));
    let deleted: i64 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut services.redis.clone())
        .await
        .expect("DEL");
    assert_eq!(deleted, 1);
    let before = services.budget.rebuilds();
    // Every attempt that reaches the budget before the rebuild finds it
    // lost; one rebuilds it, the others wait and take from it.
    let outcomes = storm(&app, storming, &event_id).await;
    assert_eq!(outcomes.get("WON"), Some(&80), "{outcomes:?}");
    assert_eq!(outcomes.get("NO_PRIZES_LEFT"), Some(&200), "{outcomes:?}");
    assert_eq!(services.budget.rebuilds() - before, 1);
    winners_are_sound(&app, &event_id, 100).await;
}

/// The app's services with `budget`, on a Redis reached through `proxy`.
async fn through(app: &TestApp, proxy: &RedisProxy, budget: Budget) -> giftdrop_domain::Services {
    let mut services = app.running().services.clone();
    services.budget = budget;
    services.redis = redis::Client::open(format!("redis://{}", proxy.addr))
        .expect("url")
        .get_connection_manager()
        .await
        .expect("connected through the proxy");
    services
}

/// `token`'s attempt at `event_id`, straight through the domain on
/// `services`, fails with INTERNAL and leaves the `awarded` winners there
/// were.
async fn fails_internally(
    app: &TestApp,
    services: &giftdrop_domain::Services,
    token: &str,
    event_id: &str,
    awarded: i64,
) {
    let viewer = giftdrop_domain::Viewer {
        user_id: services.tokens.verify(token).expect("token"),
        roles: vec![giftdrop_domain::identity::Role::Participant],
    };
    let id = uuid::Uuid::parse_str(event_id).expect("uuid");
    let meta = giftdrop_domain::RequestMeta::system();
    let failed = attempt::attempt(services, &meta, &viewer, id).await;
    assert!(
        matches!(failed, Err(giftdrop_domain::DomainError::Internal(_))),
        "{failed:?}"
    );
    winners_are_sound(app, event_id, awarded).await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn attempts_while_redis_is_unreachable_fail_and_award_nothing() {
    let app = spawn_app().await;
    let (event_id, _) = live_event(&app, 10, 1, 120).await;
    let crowd = app.verified_crowd(&event_id, 1).await;
    let mut proxy = RedisProxy::start(None).await;
    let services = through(&app, &proxy, Budget::default()).await;
    proxy.cut();
    fails_internally(&app, &services, &crowd[0], &event_id, 0).await;
    // The attempt was not spent: with Redis back, it wins.
    assert_eq!(app.attempt(&crowd[0], &event_id).await, "WON");
    winners_are_sound(&app, &event_id, 1).await;
}

/// An event of two units, one won (so Redis knows the budget scripts),
/// and a participant whose attempt was granted the other in Redis but
/// failed with INTERNAL because the reply never came back.
async fn a_grant_lost_on_its_way_back(hold: Duration) -> (TestApp, String, Vec<String>) {
    let app = spawn_app().await;
    let (event_id, _) = live_event(&app, 2, 1, 120).await;
    let crowd = app.verified_crowd(&event_id, 3).await;
    assert_eq!(app.attempt(&crowd[0], &event_id).await, "WON");
    let proxy = RedisProxy::start(None).await;
    let budget = Budget::holding_grants_for(hold.to_std().expect("a hold"));
    let services = through(&app, &proxy, budget).await;
    proxy.deafen();
    fails_internally(&app, &services, &crowd[1], &event_id, 1).await;
    (app, event_id, crowd)
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_grant_whose_reply_was_lost_is_held_for_its_participant_retry() {
    let (app, event_id, crowd) = a_grant_lost_on_its_way_back(Duration::seconds(60)).await;
    // The last unit is held for the participant whose reply was lost:
    // no one else takes it, and the retry wins it, counted once.
    assert_eq!(app.attempt(&crowd[2], &event_id).await, "NO_PRIZES_LEFT");
    assert_eq!(app.attempt(&crowd[1], &event_id).await, "WON");
    winners_are_sound(&app, &event_id, 2).await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_grant_never_retried_is_released_when_its_hold_ends() {
    let (app, event_id, crowd) = a_grant_lost_on_its_way_back(Duration::zero()).await;
    // Its hold over, the grant no longer holds back the last unit.
    assert_eq!(app.attempt(&crowd[2], &event_id).await, "WON");
    assert_eq!(app.attempt(&crowd[1], &event_id).await, "NO_PRIZES_LEFT");
    winners_are_sound(&app, &event_id, 2).await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_win_disqualified_while_redis_is_unreachable_still_goes_back_to_the_budget() {
    let app = spawn_app().await;
    let (event_id, host) = live_event(&app, 1, 1, 120).await;
    let crowd = app.verified_crowd(&event_id, 2).await;
    assert_eq!(app.attempt(&crowd[0], &event_id).await, "WON");
    let event = app
        .ok(
            Some(&host),
            "query($id: ID!) { event(id: $id) { winners { id } } }",
            json!({ "id": event_id }),
            "event",
        )
        .await;
    let winner =
        uuid::Uuid::parse_str(event["winners"][0]["id"].as_str().expect("a winner")).expect("uuid");
    // The host disqualifies the win on a process whose Redis is cut.
    let mut proxy = RedisProxy::start(None).await;
    let services = through(&app, &proxy, Budget::default()).await;
    proxy.cut();
    let user = services.tokens.verify(&host).expect("token");
    let viewer = giftdrop_domain::identity::load_viewer(&services.db, user)
        .await
        .expect("the host");
    let meta = giftdrop_domain::RequestMeta::system();
    let disqualified =
        giftdrop_domain::giveaway::disqualify::disqualify(&services, &meta, &viewer, winner, "bot")
            .await
            .expect("disqualified without Redis");
    assert!(disqualified.disqualified_at.is_some());
    // Its award goes back to the budget through the job queue (the app's
    // own relay and worker reach Redis): the unit can be won again, once.
    app.grants_released(1).await;
    assert_eq!(app.attempt(&crowd[1], &event_id).await, "WON");
    let standing = scalar(
        &app.db,
        &format!(
            "SELECT count(*) FROM giveaway.winners WHERE event_id = '{event_id}' AND disqualified_at IS NULL"
        ),
    )
    .await;
    assert_eq!(standing, 1);
    assert_eq!(app.event(None, &event_id).await["prizesAwarded"], 1);
    assert_ledger_sound(&app).await;
}
