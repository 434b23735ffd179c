//! Winners: the DRAW reproduced from its revealed seed, disqualification,
//! who sees a winner's card, and the live feeds (`winnerAnnounced`,
//! `eventCountdown`).

use chrono::{Duration, Timelike, Utc};
use futures_util::future::join_all;
use giftdrop_domain::pubsub::Delivery;
use serde_json::{Value, json};

use crate::draw::{independent_assign, sha256_hex};
use crate::support::code as error_code;
use crate::support::events::instant;
use crate::support::market::assert_ledger_sound;
use crate::support::ws::WsClient;
use crate::support::{AppOptions, TestApp, eventually, scalar, spawn_app};

const WINNERS: &str = "query($id: ID!) { event(id: $id) { status drawSeed drawCommitment drawParticipants prizesAwarded \
     prizes { id quantity } winners { id sequence displayName disqualifiedAt participant { id } prize { id } card { id status } } } }";

/// A published event of `prizes` (face value 500 each) from `starts` for
/// `seconds`; its id and the host's token.
async fn event_of(
    app: &TestApp,
    selection: &str,
    prizes: &[i64],
    starts: chrono::DateTime<Utc>,
    seconds: i64,
) -> (String, String) {
    let shop = app.open_shop("shop@example.com", "Winners", &[500]).await;
    let total: i64 = prizes.iter().sum();
    let (host, _) = app.host("host@example.com", total * 500).await;
    let mut input = instant(
        &shop.product_id,
        500,
        1,
        starts,
        starts + Duration::seconds(seconds),
    );
    input["selection"] = json!(selection);
    input["winChancePercent"] = if selection == "DRAW" {
        Value::Null
    } else {
        json!(100)
    };
    input["prizes"] = prizes
        .iter()
        .map(|q| json!({ "cardProductId": shop.product_id, "faceValue": "500", "quantity": q }))
        .collect();
    let created = app.create_event(&host, input).await;
    let id = created["data"]["createEvent"]["id"]
        .as_str()
        .expect("an event")
        .to_owned();
    let published = app.publish_event(&host, &id, "p").await;
    assert!(published["errors"].is_null(), "{published}");
    (id, host)
}

/// An INSTANT event of `units` prizes (winChancePercent 100, 2 minutes
/// long) once it is LIVE, and its host's token.
async fn live_instant(app: &TestApp, units: i64) -> (String, String) {
    let (event_id, host) = event_of(
        app,
        "INSTANT",
        &[units],
        Utc::now() + Duration::seconds(1),
        120,
    )
    .await;
    status_is(app, &event_id, "LIVE").await;
    (event_id, host)
}

async fn status_is(app: &TestApp, id: &str, status: &'static str) {
    eventually(status, || async {
        app.event(None, id).await["status"] == status
    })
    .await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_draw_is_reproduced_from_its_revealed_seed_and_a_disqualified_prize_goes_to_the_next_in_line()
 {
    let app = spawn_app().await;
    let (event_id, host) =
        event_of(&app, "DRAW", &[3, 2], Utc::now() + Duration::seconds(1), 2).await;
    app.verified_crowd(&event_id, 12).await;
    let participants: Vec<String> = {
        use sea_orm::ConnectionTrait;
        let rows = app
            .db
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!(
                    "SELECT id::text AS id FROM giveaway.participants WHERE event_id = '{event_id}'"
                ),
            ))
            .await
            .expect("participants");
        rows.iter()
            .map(|r| r.try_get("", "id").expect("id"))
            .collect()
    };
    let before = app
        .ok(None, WINNERS, json!({ "id": event_id }), "event")
        .await;
    assert!(before["drawSeed"].is_null());
    assert!(before["drawParticipants"].is_null());
    // The public page, kept while the event stands: no seed before the
    // draw, and the seed on the first read after it.
    assert!(app.event(None, &event_id).await["drawSeed"].is_null());
    status_is(&app, &event_id, "ENDED").await;

    let event = app
        .ok(None, WINNERS, json!({ "id": event_id }), "event")
        .await;
    let seed_hex = event["drawSeed"].as_str().expect("the seed is revealed");
    assert_eq!(app.event(None, &event_id).await["drawSeed"], seed_hex);
    // The public data of the draw names exactly the verified participants.
    let public: Vec<String> = event["drawParticipants"]
        .as_array()
        .expect("the drawn participants are revealed")
        .iter()
        .map(|id| id.as_str().expect("an id").to_owned())
        .collect();
    let mut joined = participants.clone();
    joined.sort();
    assert_eq!(public, joined);
    let seed: [u8; 32] = hex::decode(seed_hex)
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    assert_eq!(
        sha256_hex(&seed),
        event["drawCommitment"].as_str().expect("commitment")
    );
    let prizes: Vec<(String, u32)> = event["prizes"]
        .as_array()
        .expect("prizes")
        .iter()
        .map(|p| {
            (
                p["id"].as_str().expect("id").to_owned(),
                u32::try_from(p["quantity"].as_i64().expect("quantity")).expect("small"),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = independent_assign(seed, &public, &prizes)
        .into_iter()
        .map(|(prize, _, participant)| (prize, participant))
        .collect();
    let winners = event["winners"].as_array().expect("winners");
    let drawn: Vec<(String, String)> = winners
        .iter()
        .map(|w| {
            (
                w["prize"]["id"].as_str().expect("prize").to_owned(),
                w["participant"]["id"]
                    .as_str()
                    .expect("participant")
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(drawn, expected);
    let sequences: Vec<i64> = winners
        .iter()
        .map(|w| w["sequence"].as_i64().expect("seq"))
        .collect();
    assert_eq!(sequences, [1, 2, 3, 4, 5]);
    assert_eq!(event["prizesAwarded"], 5);
    // Names are masked for the public, cards hidden.
    assert!(
        winners
            .iter()
            .all(|w| w["displayName"].as_str().is_some_and(|n| n.ends_with('.')))
    );
    assert!(winners.iter().all(|w| w["card"].is_null()));

    // The host disqualifies the first winner: the prize goes to the sixth
    // participant of the committed shuffle.
    let line = independent_assign(seed, &participants, &[("p".to_owned(), 12)]);
    let first = winners[0]["id"].as_str().expect("winner id");
    let (fan, _) = app.register("fan@example.com", "Fola Fan").await;
    let disqualify = "mutation($w: ID!, $r: String!) { disqualifyWinner(winnerId: $w, reason: $r) { id disqualifiedAt card { status } } }";
    let refused = app
        .gql(Some(&fan), disqualify, json!({ "w": first, "r": "bot" }))
        .await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
    let done = app
        .ok(
            Some(&host),
            disqualify,
            json!({ "w": first, "r": "bot" }),
            "disqualifyWinner",
        )
        .await;
    assert!(done["disqualifiedAt"].is_string());
    let again = app
        .gql(Some(&host), disqualify, json!({ "w": first, "r": "bot" }))
        .await;
    assert_eq!(error_code(&again), "CONFLICT");
    let admin = app.admin_token().await;
    let event = app
        .ok(Some(&admin), WINNERS, json!({ "id": event_id }), "event")
        .await;
    let winners = event["winners"].as_array().expect("winners");
    assert_eq!(winners.len(), 6);
    assert_eq!(winners[0]["card"]["status"], "VOID");
    assert_eq!(winners[5]["sequence"], 6);
    assert_eq!(winners[5]["participant"]["id"], line[5].2.as_str());
    assert_eq!(winners[5]["prize"]["id"], winners[0]["prize"]["id"]);
    assert_eq!(event["prizesAwarded"], 5);
    assert_ledger_sound(&app).await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn winner_announced_replays_then_goes_live_without_a_gap_or_a_repeat() {
    // A window of 4 shared frames: a socket that falls further behind, or
    // joins while winners are being announced, replays from Postgres.
    let app = AppOptions::new()
        .await
        .config(|c| c.ws_log_window = 4)
        .spawn()
        .await;
    let (event_id, _) = live_instant(&app, 60).await;
    let crowd = app.verified_crowd(&event_id, 60).await;
    // Ten winners before anyone watches.
    join_all(crowd[..10].iter().map(|t| app.attempt(t, &event_id))).await;
    let subscription = |after: &str| {
        format!("subscription {{ winnerAnnounced(eventId: \"{event_id}\"{after}) {{ sequence }} }}")
    };
    // Three sockets run the same operation, and share its live part.
    let mut all = Vec::new();
    for _ in 0..3 {
        let mut ws = WsClient::ready(&app.ws_url(), None).await;
        ws.subscribe("all", &subscription("")).await;
        all.push(ws);
    }
    let mut late = WsClient::ready(&app.ws_url(), None).await;
    late.subscribe("late", &subscription(", after: 5")).await;
    assert_eq!(
        collect(&mut all[0], 10).await,
        (1..=10).collect::<Vec<i64>>()
    );
    // Its replay arrived: its subscribe was handled. One live execution per
    // distinct operation.
    assert_eq!(collect(&mut late, 5).await, (6..=10).collect::<Vec<i64>>());
    assert_eq!(app.running().shared.logs().running(), 2);
    // The other fifty win while they watch; one socket joins once the
    // first has seen winner 30.
    let (first, rest) = all.split_first_mut().expect("sockets");
    let (halfway, mut reached) = tokio::sync::watch::channel(0);
    let (outcomes, seen_first, seen_rest, seen_late, joined) = tokio::join!(
        join_all(crowd[10..].iter().map(|t| app.attempt(t, &event_id))),
        collect_with(first, 50, |sequence| halfway.send_replace(sequence)),
        join_all(rest.iter_mut().map(|ws| collect(ws, 60))),
        collect(&mut late, 50),
        async {
            reached
                .wait_for(|s| *s >= 30)
                .await
                .expect("the first socket");
            let mut ws = WsClient::ready(&app.ws_url(), None).await;
            ws.subscribe("joined", &subscription("")).await;
            collect(&mut ws, 60).await
        }
    );
    assert!(outcomes.iter().all(|o| o == "WON"), "{outcomes:?}");
    assert_eq!(seen_first, (11..=60).collect::<Vec<i64>>());
    for seen in &seen_rest {
        assert_eq!(*seen, (1..=60).collect::<Vec<i64>>());
    }
    assert_eq!(seen_late, (11..=60).collect::<Vec<i64>>());
    assert_eq!(joined, (1..=60).collect::<Vec<i64>>());
    assert_eq!(app.running().shared.logs().running(), 2);
}

/// A socket on `app` subscribed to the sequences of `event_id`'s winners.
async fn watch_winners(app: &TestApp, event_id: &str) -> WsClient {
    let mut ws = WsClient::ready(&app.ws_url(), None).await;
    ws.subscribe(
        "w",
        &format!("subscription {{ winnerAnnounced(eventId: \"{event_id}\") {{ sequence }} }}"),
    )
    .await;
    ws
}

/// The sequences of the next `n` winners on `ws`.
async fn collect(ws: &mut WsClient, n: usize) -> Vec<i64> {
    collect_with(ws, n, |_| 0).await
}

/// [`collect`], telling `seen` each sequence as it arrives.
async fn collect_with<T>(ws: &mut WsClient, n: usize, mut seen: impl FnMut(i64) -> T) -> Vec<i64> {
    let mut sequences = Vec::with_capacity(n);
    while sequences.len() < n {
        let message = ws.next().await;
        assert_eq!(message["type"], "next", "{message}");
        let sequence = message["payload"]["data"]["winnerAnnounced"]["sequence"]
            .as_i64()
            .expect("a sequence");
        seen(sequence);
        sequences.push(sequence);
    }
    sequences
}

#[tokio::test(crate = "crate::support::harness")]
async fn countdown_ticks_land_on_whole_seconds_and_finish() {
    let app = spawn_app().await;
    // Starting far enough ahead that a loaded machine still subscribes
    // before it (the first tick must be UNTIL_START).
    let (event_id, _) = event_of(&app, "INSTANT", &[1], Utc::now() + Duration::seconds(4), 2).await;
    let mut ws = WsClient::ready(&app.ws_url(), None).await;
    ws.subscribe(
        "c",
        &format!("subscription {{ eventCountdown(eventId: \"{event_id}\") {{ phase remainingSeconds serverTime status }} }}"),
    )
    .await;
    let mut phases = Vec::new();
    loop {
        let message = ws.next().await;
        if message["type"] == "complete" {
            break;
        }
        let received = Utc::now();
        let tick = &message["payload"]["data"]["eventCountdown"];
        let server: chrono::DateTime<Utc> = tick["serverTime"]
            .as_str()
            .expect("serverTime")
            .parse()
            .expect("a time");
        let off = |t: chrono::DateTime<Utc>| t.nanosecond() / 1_000_000;
        assert!(off(server) < 50, "tick at {server}");
        assert!(
            received - server < Duration::milliseconds(50),
            "received {received}, ticked {server}"
        );
        phases.push(tick["phase"].as_str().expect("phase").to_owned());
    }
    assert!(
        phases.first().is_some_and(|p| p == "UNTIL_START"),
        "{phases:?}"
    );
    assert!(phases.contains(&"UNTIL_END".to_owned()), "{phases:?}");
    assert_eq!(phases.last().map(String::as_str), Some("FINISHED"));
    assert_eq!(phases.iter().filter(|p| *p == "FINISHED").count(), 1);
}

#[tokio::test(crate = "crate::support::harness")]
async fn an_instant_win_disqualified_goes_back_to_the_pool_and_only_the_winner_and_admins_see_its_card()
 {
    let app = spawn_app().await;
    let (event_id, host) = live_instant(&app, 1).await;
    let crowd = app.verified_crowd(&event_id, 3).await;
    // Only a VERIFIED participant may attempt: not the host, who is none.
    assert_eq!(app.attempt(&host, &event_id).await, "FORBIDDEN");
    let admin = app.admin_token().await;
    let stats = app
        .ok(
            Some(&admin),
            "{ platformStats { liveEvents } }",
            json!({}),
            "platformStats",
        )
        .await;
    assert_eq!(stats["liveEvents"], 1);
    assert_eq!(app.attempt(&crowd[0], &event_id).await, "WON");
    assert_eq!(app.attempt(&crowd[1], &event_id).await, "NO_PRIZES_LEFT");
    let winner_id = scalar_text(
        &app,
        &format!("SELECT id::text FROM giveaway.winners WHERE event_id = '{event_id}'"),
    )
    .await;
    // The winner is told by email, through the job queue.
    let mail = app.mail_dir().join(format!("win_{winner_id}.eml"));
    eventually("the winner's email", || async { mail.exists() }).await;
    let email = std::fs::read_to_string(&mail).expect("readable");
    assert!(email.contains("You won a prize"), "{email}");
    let winner_card = "query($id: ID!) { event(id: $id) { winners { id card { id code pin } } } }";
    let as_winner = app
        .ok(
            Some(&crowd[0]),
            winner_card,
            json!({ "id": event_id }),
            "event",
        )
        .await;
    let card = &as_winner["winners"][0]["card"];
    assert!(
        card["code"].is_string() && card["pin"].is_string(),
        "{as_winner}"
    );
    let as_admin = app
        .ok(
            Some(&admin),
            winner_card,
            json!({ "id": event_id }),
            "event",
        )
        .await;
    assert_eq!(as_admin["winners"][0]["card"]["id"], card["id"]);
    for token in [&crowd[1], &host] {
        let seen = app
            .ok(Some(token), winner_card, json!({ "id": event_id }), "event")
            .await;
        assert!(seen["winners"][0]["card"].is_null(), "{seen}");
    }
    let wins = app
        .ok(
            Some(&crowd[0]),
            "{ myWins { sequence } }",
            json!({}),
            "myWins",
        )
        .await;
    assert_eq!(wins, json!([{ "sequence": 1 }]));

    assert_eq!(as_winner["winners"][0]["id"], winner_id.as_str());
    app.ok(
        Some(&host),
        "mutation($w: ID!) { disqualifyWinner(winnerId: $w, reason: \"two accounts\") { id } }",
        json!({ "w": &winner_id }),
        "disqualifyWinner",
    )
    .await;
    // Back in the pool, and its award back in the budget through the job
    // queue: the next attempt wins it, with the next sequence.
    app.grants_released(1).await;
    let body = app
        .gql(
            Some(&crowd[2]),
            "mutation($e: ID!) { attemptPrize(eventId: $e) { outcome winner { sequence } } }",
            json!({ "e": event_id }),
        )
        .await;
    assert_eq!(body["data"]["attemptPrize"]["outcome"], "WON", "{body}");
    assert_eq!(body["data"]["attemptPrize"]["winner"]["sequence"], 2);
    let cards = scalar(
        &app.db,
        &format!(
            "SELECT count(*) FROM giftcard.cards c JOIN giveaway.prize_units u ON u.escrow_id = c.escrow_id \
             WHERE u.event_id = '{event_id}' AND c.status = 'ACTIVE'"
        ),
    )
    .await;
    assert_eq!(cards, 1);
    assert_ledger_sound(&app).await;
}

async fn scalar_text(app: &TestApp, sql: &str) -> String {
    use sea_orm::ConnectionTrait;
    let row = app
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            sql.to_owned(),
        ))
        .await
        .expect("query")
        .expect("a row");
    row.try_get_by_index(0).expect("text")
}

#[tokio::test(crate = "crate::support::harness")]
async fn cancelling_a_live_event_refunds_exactly_the_unawarded_prizes_and_won_cards_stay_valid() {
    let app = spawn_app().await;
    let (event_id, host) = live_instant(&app, 5).await;
    assert_eq!(app.my_balance(&host).await, 0);
    let crowd = app.verified_crowd(&event_id, 2).await;
    for token in &crowd {
        assert_eq!(app.attempt(token, &event_id).await, "WON");
    }
    let cancelled = app
        .ok(
            Some(&host),
            "mutation($id: ID!) { cancelEvent(id: $id, reason: \"rain\") { status prizesAwarded } }",
            json!({ "id": event_id }),
            "cancelEvent",
        )
        .await;
    assert_eq!(cancelled["status"], "CANCELLED");
    assert_eq!(cancelled["prizesAwarded"], 2);
    // Three units of 500 came back; the two won stay in escrow behind
    // their cards.
    assert_eq!(app.my_balance(&host).await, 1_500);
    let count = |status: &'static str| {
        let app = &app;
        let event_id = event_id.clone();
        async move {
            scalar(
                &app.db,
                &format!("SELECT count(*) FROM giftcard.escrows WHERE event_id = '{event_id}' AND status = '{status}'"),
            )
            .await
        }
    };
    assert_eq!(count("RELEASED").await, 3);
    assert_eq!(count("RESERVED").await, 2);
    let wins = app
        .ok(
            Some(&crowd[0]),
            "{ myWins { card { status } } }",
            json!({}),
            "myWins",
        )
        .await;
    assert_eq!(wins[0]["card"]["status"], "ACTIVE");
    assert_ledger_sound(&app).await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_draft_can_be_followed_by_its_host_only() {
    let app = spawn_app().await;
    let shop = app.open_shop("shop@example.com", "Draft", &[500]).await;
    let (host, _) = app.host("host@example.com", 0).await;
    let (starts, ends) = crate::support::events::later();
    let created = app
        .create_event(&host, instant(&shop.product_id, 500, 1, starts, ends))
        .await;
    let id = created["data"]["createEvent"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (fan, _) = app.register("fan@example.com", "Fola Fan").await;
    let query = format!("subscription {{ eventUpdated(eventId: \"{id}\") {{ status }} }}");
    let mut stranger = WsClient::ready(&app.ws_url(), Some(&fan)).await;
    stranger.subscribe("s", &query).await;
    let refused = stranger.next().await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "NOT_FOUND");
    let mut owner = WsClient::ready(&app.ws_url(), Some(&host)).await;
    owner.subscribe("h", &query).await;
    let first = owner.next().await;
    assert_eq!(
        first["payload"]["data"]["eventUpdated"]["status"], "DRAFT",
        "{first}"
    );
    // The shared winners feed refuses the stranger once, and ends.
    let winners = format!("subscription {{ winnerAnnounced(eventId: \"{id}\") {{ sequence }} }}");
    stranger.subscribe("w", &winners).await;
    let refused = stranger.next().await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["id"], "w", "{refused}");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "NOT_FOUND");
    stranger.subscribe("w", &winners).await;
    let again = stranger.next().await;
    assert_eq!(
        again["type"], "error",
        "a finished id may be reused: {again}"
    );
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_shared_winners_feed_shows_the_card_to_the_winner_only() {
    let app = spawn_app().await;
    let (event_id, _) = live_instant(&app, 1).await;
    let crowd = app.verified_crowd(&event_id, 1).await;
    let query = format!(
        "subscription {{ winnerAnnounced(eventId: \"{event_id}\") {{ sequence card {{ id }} }} }}"
    );
    let mut winner = WsClient::ready(&app.ws_url(), Some(&crowd[0])).await;
    winner.subscribe("w", &query).await;
    let mut anonymous = Vec::new();
    for _ in 0..2 {
        let mut ws = WsClient::ready(&app.ws_url(), None).await;
        ws.subscribe("w", &query).await;
        anonymous.push(ws);
    }
    // One live execution per viewer: the winner's, and the anonymous one.
    eventually("a shared execution per viewer", || async {
        app.running().shared.logs().running() == 2
    })
    .await;
    assert_eq!(app.attempt(&crowd[0], &event_id).await, "WON");
    let own = winner.next().await;
    let card = &own["payload"]["data"]["winnerAnnounced"]["card"];
    assert!(card["id"].is_string(), "{own}");
    for ws in &mut anonymous {
        let seen = ws.next().await;
        assert_eq!(
            seen["payload"]["data"]["winnerAnnounced"]["sequence"], 1,
            "{seen}"
        );
        assert!(
            seen["payload"]["data"]["winnerAnnounced"]["card"].is_null(),
            "{seen}"
        );
    }
}

#[tokio::test(crate = "crate::support::harness")]
async fn winners_reach_subscribers_of_another_instance() {
    let app = spawn_app().await;
    let other = AppOptions::beside(&app).spawn().await;
    let (event_id, _) = live_instant(&app, 2).await;
    let crowd = app.verified_crowd(&event_id, 2).await;
    // Watching on the second instance; winning on the first.
    let mut ws = watch_winners(&other, &event_id).await;
    let mut updates = WsClient::ready(&other.ws_url(), None).await;
    updates
        .subscribe(
            "u",
            &format!(
                "subscription {{ eventUpdated(eventId: \"{event_id}\") {{ prizesAwarded }} }}"
            ),
        )
        .await;
    let first = updates.next().await;
    assert_eq!(
        first["payload"]["data"]["eventUpdated"]["prizesAwarded"], 0,
        "{first}"
    );
    for token in &crowd {
        assert_eq!(app.attempt(token, &event_id).await, "WON");
    }
    assert_eq!(collect(&mut ws, 2).await, [1, 2]);
    let mut awarded = 0;
    while awarded < 2 {
        let message = updates.next().await;
        awarded = message["payload"]["data"]["eventUpdated"]["prizesAwarded"]
            .as_i64()
            .expect("a count");
    }
    assert_eq!(awarded, 2);
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_winner_reaches_this_instances_watchers_at_its_commit_and_its_relayed_copy_is_not_sent_again()
 {
    // No relay running: only the attempt itself can hand a winner to the
    // sockets of its instance.
    let app = AppOptions::new().await.without_relay().spawn().await;
    let (event_id, _) = live_instant(&app, 3).await;
    let crowd = app.verified_crowd(&event_id, 3).await;
    let mut ws = watch_winners(&app, &event_id).await;
    // Beside the socket, what this instance's hub hands its subscribers.
    let services = &app.running().services;
    let topic = giftdrop_domain::giveaway::live::winners_topic(event_id.parse().expect("a uuid"));
    let mut tap = services.hub.subscribe(&topic).await.expect("subscribed");
    assert_eq!(app.attempt(&crowd[0], &event_id).await, "WON");
    assert_eq!(collect(&mut ws, 1).await, [1]);
    let announcements =
        "SELECT count(*) FROM ops.outbox WHERE kind = 'publish' AND target LIKE '%:winners'";
    assert_eq!(
        scalar(&app.db, announcements).await,
        1,
        "the winner went out before the relay moved its row"
    );
    // The relay's copy of each winner reaches the same live execution
    // through Redis, here before the next winner: it is not sent again.
    let relay = giftdrop_jobs::relay::Relay::new(services, app.running().queues.clone());
    for (n, token) in crowd[1..].iter().enumerate() {
        relay.drain().await.expect("relayed");
        // The winner as its attempt handed it over, then the relayed copy;
        // the live execution had both before the next winner.
        for _ in 0..2 {
            let delivery = tokio::time::timeout(std::time::Duration::from_secs(10), tap.recv())
                .await
                .expect("a delivery in time");
            assert!(
                matches!(delivery, Some(Delivery::Messages(ref m)) if m.len() == 1),
                "{delivery:?}"
            );
        }
        assert_eq!(app.attempt(token, &event_id).await, "WON");
        let sequence = i64::try_from(n).expect("small") + 2;
        assert_eq!(collect(&mut ws, 1).await, [sequence]);
    }
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_draws_winners_reach_this_instances_watchers_at_its_commit() {
    // No relay running: only the draw itself can hand its winners over.
    let app = AppOptions::new().await.without_relay().spawn().await;
    let (event_id, _) = event_of(&app, "DRAW", &[3], Utc::now() + Duration::seconds(1), 2).await;
    app.verified_crowd(&event_id, 5).await;
    let mut ws = watch_winners(&app, &event_id).await;
    assert_eq!(collect(&mut ws, 3).await, [1, 2, 3]);
    status_is(&app, &event_id, "ENDED").await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn subscribers_reading_the_same_winners_at_once_share_the_read() {
    use giftdrop_domain::giveaway::winners::winners_after_shared;

    let app = AppOptions::new().await.quiet().spawn().await;
    let (_, id) = app.live_giveaway().await;
    for token in app.verified_crowd(&id, 3).await {
        assert_eq!(app.attempt(&token, &id).await, "WON");
    }
    let event_id: uuid::Uuid = id.parse().expect("uuid");
    let s = &app.running().services;
    let read = || winners_after_shared(&s.winner_reads, &s.db, event_id, 1);
    let before = app.running().db_statements.get();
    let alone = read().await.expect("the winners");
    let one = app.running().db_statements.get() - before;
    assert_eq!(
        alone.iter().map(|w| w.sequence).collect::<Vec<_>>(),
        vec![2, 3]
    );
    let before = app.running().db_statements.get();
    let reads = join_all((0..32).map(|_| read())).await;
    let spent = app.running().db_statements.get() - before;
    for winners in reads {
        assert_eq!(winners.expect("the winners"), alone);
    }
    assert!(
        spent < one * 32,
        "32 reads at once cost {spent} statements, one {one}"
    );
}
