//! Giveaway events: drafts and their rules, publishing into escrow, cancel,
//! and the lifecycle on time (FLOWS.md §5).

use chrono::{Duration, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::code as error_code;
use crate::support::events::{EVENT_FIELDS, instant, later};
use crate::support::market::{assert_ledger_sound, platform_balance};
use crate::support::ws::WsClient;
use crate::support::{AppOptions, TestApp, eventually, scalar, spawn_app};

/// The event's escrows as (status, source, amount) counts.
async fn escrows_of(app: &TestApp, event_id: &str, status: &str) -> i64 {
    scalar(
        &app.db,
        &format!(
            "SELECT count(*) FROM giftcard.escrows WHERE event_id = '{event_id}' AND status = '{status}' \
             AND source = 'EVENT_PRIZE'"
        ),
    )
    .await
}

fn id(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_host_drafts_edits_and_publishes_an_event_into_escrow_once() {
    let app = spawn_app().await;
    let shop = app
        .open_shop("shop@example.com", "Shoprite", &[1_000, 5_000])
        .await;
    let (host, host_id) = app.host("host@example.com", 100_000).await;
    let (other, _) = app.register("fan@example.com", "Fola Fan").await;
    let (starts, ends) = later();

    let created = app
        .create_event(&host, instant(&shop.product_id, 1_000, 3, starts, ends))
        .await;
    let event = created["data"]["createEvent"].clone();
    assert_eq!(event["status"], "DRAFT", "{created}");
    assert_eq!(event["prizeCount"], 3);
    assert_eq!(event["totalCost"], "3000");
    assert_eq!(event["slotCount"], 1);
    assert_eq!(event["host"]["id"], host_id.as_str());
    let event_id = id(&event);
    // A draft is its host's alone.
    assert!(app.event(Some(&other), &event_id).await.is_null());
    assert!(app.event(None, &event_id).await.is_null());
    let listed = app
        .ok(
            Some(&other),
            "{ events { nodes { id } } }",
            json!({}),
            "events",
        )
        .await;
    assert_eq!(listed["nodes"], json!([]));

    let updated = app
        .ok(
            Some(&host),
            &format!("mutation($id: ID!, $i: UpdateEventInput!) {{ updateEvent(id: $id, input: $i) {{ {EVENT_FIELDS} }} }}"),
            json!({ "id": event_id, "i": {
                "title": "Bigger giveaway",
                "prizes": [
                    { "cardProductId": shop.product_id, "faceValue": "5000", "quantity": 2 },
                    { "cardProductId": shop.product_id, "faceValue": "1000", "quantity": 4 },
                ],
            } }),
            "updateEvent",
        )
        .await;
    assert_eq!(updated["title"], "Bigger giveaway");
    assert_eq!(updated["prizeCount"], 6);
    assert_eq!(updated["totalCost"], "14000");
    assert_eq!(updated["prizes"].as_array().map(Vec::len), Some(2));
    let holding_before = platform_balance(&app, "ESCROW_HOLDING").await;

    let published = app.publish_event(&host, &event_id, "pub-1").await;
    let event = published["data"]["publishEvent"].clone();
    assert_eq!(event["status"], "SCHEDULED", "{published}");
    assert!(event["publishedAt"].is_string());
    assert!(event["drawCommitment"].is_null());
    assert_eq!(app.my_balance(&host).await, 100_000 - 14_000);
    assert_eq!(escrows_of(&app, &event_id, "RESERVED").await, 6);
    assert_eq!(
        platform_balance(&app, "ESCROW_HOLDING").await - holding_before,
        14_000
    );
    let units = scalar(
        &app.db,
        &format!("SELECT count(DISTINCT escrow_id) FROM giveaway.prize_units WHERE event_id = '{event_id}'"),
    )
    .await;
    assert_eq!(units, 6);
    // Published: visible to everyone; no longer editable.
    assert_eq!(app.event(None, &event_id).await["status"], "SCHEDULED");
    let edit = app
        .gql(
            Some(&host),
            "mutation($id: ID!) { updateEvent(id: $id, input: { title: \"Late\" }) { id } }",
            json!({ "id": event_id }),
        )
        .await;
    assert_eq!(error_code(&edit), "CONFLICT");

    // The same key again: the same event, no second debit or escrow.
    let again = app.publish_event(&host, &event_id, "pub-1").await;
    assert_eq!(again["data"]["publishEvent"]["id"], event_id.as_str());
    let other_key = app.publish_event(&host, &event_id, "pub-2").await;
    assert_eq!(error_code(&other_key), "CONFLICT");
    assert_eq!(app.my_balance(&host).await, 100_000 - 14_000);
    assert_eq!(escrows_of(&app, &event_id, "RESERVED").await, 6);
    // Escrows of an event name it, and the host sees them as their funder.
    let escrows = app
        .ok(
            Some(&host),
            "query($e: ID!) { escrows(filter: { eventId: $e }) { nodes { source amount event { id } } } }",
            json!({ "e": event_id }),
            "escrows",
        )
        .await;
    let nodes = escrows["nodes"].as_array().expect("escrows");
    assert_eq!(nodes.len(), 6);
    assert!(nodes.iter().all(|e| e["event"]["id"] == event_id.as_str()));
    assert_ledger_sound(&app).await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn every_rule_of_a_draft_names_its_field_and_a_refused_draft_leaves_nothing() {
    let app = spawn_app().await;
    let shop = app.open_shop("shop@example.com", "Spar", &[1_000]).await;
    let (host, _) = app.host("host@example.com", 0).await;
    let (starts, ends) = later();
    let valid = instant(&shop.product_id, 1_000, 2, starts, ends);
    let with = |change: &dyn Fn(&mut Value)| {
        let mut input = valid.clone();
        change(&mut input);
        input
    };
    let cases: Vec<(Value, &str)> = vec![
        (with(&|i| i["title"] = json!("")), "input.title"),
        (
            with(&|i| i["endsAt"] = json!(starts.to_rfc3339())),
            "input.endsAt",
        ),
        (
            with(&|i| i["startsAt"] = json!((Utc::now() - Duration::minutes(1)).to_rfc3339())),
            "input.startsAt",
        ),
        (
            with(&|i| i["winChancePercent"] = Value::Null),
            "input.winChancePercent",
        ),
        (
            with(&|i| i["winChancePercent"] = json!(101)),
            "input.winChancePercent",
        ),
        (
            with(&|i| i["selection"] = json!("DRAW")),
            "input.winChancePercent",
        ),
        (with(&|i| i["slotCount"] = json!(0)), "input.slotCount"),
        (with(&|i| i["slotCount"] = json!(1441)), "input.slotCount"),
        (with(&|i| i["prizes"] = json!([])), "input.prizes"),
        (
            with(&|i| i["prizes"][0]["quantity"] = json!(0)),
            "input.prizes[0].quantity",
        ),
        (
            with(&|i| i["prizes"][0]["quantity"] = json!(10_001)),
            "input.prizes[0].quantity",
        ),
        (
            with(&|i| i["prizes"][0]["faceValue"] = json!("2000")),
            "input.prizes[0].faceValue",
        ),
        (
            with(&|i| i["prizes"][0]["cardProductId"] = json!(uuid::Uuid::new_v4().to_string())),
            "input.prizes[0].cardProductId",
        ),
        (
            with(&|i| i["socialPostUrl"] = json!("not a url")),
            "input.socialPostUrl",
        ),
    ];
    for (input, field) in cases {
        let body = app.create_event(&host, input).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{field}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
    }
    // A product taken off sale cannot be a prize.
    app.ok(
        Some(&shop.staff_token),
        "mutation($id: ID!) { setCardProductActive(id: $id, active: false) { active } }",
        json!({ "id": shop.product_id }),
        "setCardProductActive",
    )
    .await;
    let off_sale = app.create_event(&host, valid.clone()).await;
    assert_eq!(
        off_sale["errors"][0]["extensions"]["field"],
        "input.prizes[0].cardProductId"
    );
    // Only hosts create events.
    let (fan, _) = app.register("fan@example.com", "Fola Fan").await;
    let refused = app.create_event(&fan, valid).await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
    assert_eq!(app.count("giveaway.events").await, 0);
    assert_eq!(app.count("giveaway.prizes").await, 0);
}

#[tokio::test(crate = "crate::support::harness")]
async fn publishing_without_the_funds_reserves_nothing_and_a_draw_commits_to_its_seed() {
    let app = spawn_app().await;
    let shop = app.open_shop("shop@example.com", "Ebeano", &[5_000]).await;
    let (host, _) = app.host("host@example.com", 12_000).await;
    let (starts, ends) = later();
    let event = app
        .create_event(&host, instant(&shop.product_id, 5_000, 3, starts, ends))
        .await;
    let event_id = id(&event["data"]["createEvent"]);
    let poor = app.publish_event(&host, &event_id, "k").await;
    assert_eq!(error_code(&poor), "INSUFFICIENT_FUNDS", "{poor}");
    assert_eq!(poor["errors"][0]["extensions"]["required"], "15000");
    assert_eq!(app.event(Some(&host), &event_id).await["status"], "DRAFT");
    assert_eq!(app.count("giftcard.escrows").await, 0);
    assert_eq!(app.count("giveaway.prize_units").await, 0);
    assert_eq!(app.my_balance(&host).await, 12_000);

    let mut draw = instant(&shop.product_id, 5_000, 2, starts, ends);
    draw["selection"] = json!("DRAW");
    draw["winChancePercent"] = Value::Null;
    let draw_id = id(&app.create_event(&host, draw).await["data"]["createEvent"]);
    let published = app.publish_event(&host, &draw_id, "d").await;
    let event = &published["data"]["publishEvent"];
    assert_eq!(event["status"], "SCHEDULED", "{published}");
    let commitment = event["drawCommitment"].as_str().expect("a commitment");
    assert_eq!(commitment.len(), 64);
    assert!(
        commitment
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    // The seed stays secret until the draw, and matches its commitment.
    assert!(event["drawSeed"].is_null());
    let seed = scalar_bytes(&app, &draw_id).await;
    assert_eq!(hex::encode(Sha256::digest(&seed)), commitment);
    assert_eq!(app.my_balance(&host).await, 2_000);
    assert_ledger_sound(&app).await;
}

async fn scalar_bytes(app: &TestApp, event_id: &str) -> Vec<u8> {
    use sea_orm::ConnectionTrait;
    let row = app
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("SELECT draw_seed FROM giveaway.events WHERE id = '{event_id}'"),
        ))
        .await
        .expect("query")
        .expect("the event");
    row.try_get("", "draw_seed").expect("a seed")
}

#[tokio::test(crate = "crate::support::harness")]
async fn cancelling_refunds_every_unawarded_prize_once_and_only_the_host_or_an_admin_may() {
    let app = spawn_app().await;
    let shop = app.open_shop("shop@example.com", "Game", &[2_000]).await;
    let (host, _) = app.host("host@example.com", 50_000).await;
    let (fan, _) = app.register("fan@example.com", "Fola Fan").await;
    let (starts, ends) = later();
    let event_id = id(&app
        .create_event(&host, instant(&shop.product_id, 2_000, 5, starts, ends))
        .await["data"]["createEvent"]);
    app.publish_event(&host, &event_id, "p").await;
    assert_eq!(app.my_balance(&host).await, 40_000);
    let cancel = |token: String, reason: &'static str| {
        let app = &app;
        let event_id = event_id.clone();
        async move {
            app.gql(
                Some(&token),
                "mutation($id: ID!, $r: String!) { cancelEvent(id: $id, reason: $r) { status cancelReason cancelledAt } }",
                json!({ "id": event_id, "r": reason }),
            )
            .await
        }
    };
    assert_eq!(error_code(&cancel(fan, "mine now").await), "FORBIDDEN");
    assert_eq!(
        error_code(&cancel(host.clone(), "").await),
        "BAD_USER_INPUT"
    );
    let cancelled = cancel(host.clone(), "venue closed").await;
    assert_eq!(
        cancelled["data"]["cancelEvent"]["status"], "CANCELLED",
        "{cancelled}"
    );
    assert_eq!(
        cancelled["data"]["cancelEvent"]["cancelReason"],
        "venue closed"
    );
    assert_eq!(app.my_balance(&host).await, 50_000);
    assert_eq!(escrows_of(&app, &event_id, "RELEASED").await, 5);
    assert_eq!(escrows_of(&app, &event_id, "RESERVED").await, 0);
    let refunds = scalar(
        &app.db,
        &format!("SELECT count(*) FROM ledger.transfers WHERE kind = 'EVENT_REFUND' AND reference = '{event_id}'"),
    )
    .await;
    assert_eq!(refunds, 1);
    let admin = app.admin_token().await;
    assert_eq!(error_code(&cancel(admin, "again").await), "CONFLICT");
    assert_eq!(app.my_balance(&host).await, 50_000);
    assert_ledger_sound(&app).await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn an_event_goes_live_and_ends_on_time_as_event_updated_shows_and_returns_what_nobody_won() {
    let app = spawn_app().await;
    let shop = app.open_shop("shop@example.com", "Park", &[1_000]).await;
    let (host, _) = app.host("host@example.com", 10_000).await;
    let starts = Utc::now() + Duration::seconds(2);
    let ends = starts + Duration::seconds(3);
    let event_id = id(&app
        .create_event(&host, instant(&shop.product_id, 1_000, 4, starts, ends))
        .await["data"]["createEvent"]);
    let published = app.publish_event(&host, &event_id, "p").await;
    assert_eq!(published["data"]["publishEvent"]["status"], "SCHEDULED");
    assert_eq!(app.my_balance(&host).await, 6_000);

    // Anyone may watch a published event.
    let mut ws = WsClient::ready(&app.ws_url(), None).await;
    ws.subscribe(
        "u",
        &format!(
            "subscription {{ eventUpdated(eventId: \"{event_id}\") {{ status prizesAwarded }} }}"
        ),
    )
    .await;
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("ENDED") {
        let message = ws.next().await;
        assert_eq!(message["type"], "next", "{message}");
        let status = message["payload"]["data"]["eventUpdated"]["status"]
            .as_str()
            .expect("a status")
            .to_owned();
        let now = Utc::now();
        match status.as_str() {
            "LIVE" => {
                assert!(now >= starts, "live at {now}, before {starts}");
                assert!(
                    now - starts < Duration::seconds(2),
                    "live at {now}, due {starts}"
                );
            }
            "ENDED" => {
                assert!(now >= ends);
                assert!(
                    now - ends < Duration::seconds(2),
                    "ended at {now}, due {ends}"
                );
            }
            _ => {}
        }
        seen.push(status);
    }
    assert_eq!(seen, ["SCHEDULED", "LIVE", "ENDED"]);
    // Nobody won: every unit's escrow went back to the host.
    assert_eq!(escrows_of(&app, &event_id, "RELEASED").await, 4);
    assert_eq!(app.my_balance(&host).await, 10_000);
    assert_ledger_sound(&app).await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn participants_join_once_are_verified_by_the_job_and_only_the_host_lists_them() {
    let app = spawn_app().await;
    let shop = app.open_shop("shop@example.com", "Mall", &[1_000]).await;
    let (host, _) = app.host("host@example.com", 10_000).await;
    let (starts, ends) = later();
    let event_id = id(&app
        .create_event(&host, instant(&shop.product_id, 1_000, 2, starts, ends))
        .await["data"]["createEvent"]);
    let (ada, _) = app.register("ada@example.com", "Ada Lovelace").await;
    let join = |token: String, handle: &'static str| {
        let app = &app;
        let event_id = event_id.clone();
        async move {
            app.gql(
                Some(&token),
                "mutation($i: JoinEventInput!) { joinEvent(input: $i) { id status displayName socialHandle won } }",
                json!({ "i": { "eventId": event_id, "socialHandle": handle } }),
            )
            .await
        }
    };
    // A draft cannot be joined (nor seen).
    assert_eq!(error_code(&join(ada.clone(), "@ada").await), "NOT_FOUND");
    app.publish_event(&host, &event_id, "p").await;
    assert_eq!(error_code(&join(host.clone(), "@host").await), "FORBIDDEN");
    assert_eq!(error_code(&join(ada.clone(), "").await), "BAD_USER_INPUT");
    let joined = join(ada.clone(), "@ada").await;
    let me = &joined["data"]["joinEvent"];
    assert_eq!(me["status"], "PENDING_VERIFICATION", "{joined}");
    assert_eq!(me["displayName"], "Ada Lovelace");
    assert_eq!(me["won"], false);
    assert_eq!(error_code(&join(ada.clone(), "@ada2").await), "CONFLICT");
    let (grace, _) = app.register("grace@example.com", "Grace Hopper").await;
    join(grace.clone(), "@grace").await;

    // The development verifier verifies at once, through the job.
    let mine = "query($id: ID!) { event(id: $id) { participantCount myParticipation { status } } }";
    eventually("ada verified", || async {
        app.ok(Some(&ada), mine, json!({ "id": event_id }), "event")
            .await["myParticipation"]["status"]
            == "VERIFIED"
    })
    .await;
    let event = app
        .ok(Some(&ada), mine, json!({ "id": event_id }), "event")
        .await;
    assert_eq!(event["participantCount"], 2);

    let list = "query($id: ID!) { event(id: $id) { participants(first: 1) { totalCount nodes { displayName socialHandle } pageInfo { hasNextPage } } } }";
    let listed = app
        .ok(Some(&host), list, json!({ "id": event_id }), "event")
        .await;
    assert_eq!(listed["participants"]["totalCount"], 2);
    assert_eq!(
        listed["participants"]["nodes"][0]["displayName"],
        "Ada Lovelace"
    );
    assert_eq!(listed["participants"]["pageInfo"]["hasNextPage"], true);
    let refused = app.gql(Some(&grace), list, json!({ "id": event_id })).await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
    // Others see a masked name.
    let as_grace = app
        .ok(
            Some(&grace),
            "query($id: ID!) { event(id: $id) { myParticipation { displayName } } }",
            json!({ "id": event_id }),
            "event",
        )
        .await;
    assert_eq!(as_grace["myParticipation"]["displayName"], "Grace Hopper");
}

#[tokio::test(crate = "crate::support::harness")]
async fn the_http_verifier_asks_the_service_and_rejects_whom_it_rejects() {
    // A stand-in for the social network's verification service.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let service = listener.local_addr().expect("addr");
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let log = asked.clone();
    let router = axum::Router::new().route(
        "/verify",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let log = log.clone();
            async move {
                let verified = body["handle"] != "@bot";
                log.lock().expect("log").push(body);
                axum::Json(json!({ "verified": verified }))
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    let app = AppOptions::new()
        .await
        .config(|c| c.social_verifier_url = Some(format!("http://{service}/verify")))
        .spawn()
        .await;
    let shop = app.open_shop("shop@example.com", "Hub", &[1_000]).await;
    let (host, _) = app.host("host@example.com", 10_000).await;
    let (starts, ends) = later();
    let event_id = id(&app
        .create_event(&host, instant(&shop.product_id, 1_000, 1, starts, ends))
        .await["data"]["createEvent"]);
    app.publish_event(&host, &event_id, "p").await;
    let mut tokens = Vec::new();
    for (email, handle) in [("human@example.com", "@human"), ("bot@example.com", "@bot")] {
        let (token, _) = app.register(email, "Some One").await;
        let joined = app.join_event(&token, &event_id, handle).await;
        assert!(joined["errors"].is_null(), "joinEvent failed: {joined}");
        tokens.push(token);
    }
    let status_of = |token: String| {
        let app = &app;
        let event_id = event_id.clone();
        async move {
            app.ok(
                Some(&token),
                "query($id: ID!) { event(id: $id) { myParticipation { status } } }",
                json!({ "id": event_id }),
                "event",
            )
            .await["myParticipation"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
    };
    eventually("both checked", || async {
        status_of(tokens[0].clone()).await != "PENDING_VERIFICATION"
            && status_of(tokens[1].clone()).await != "PENDING_VERIFICATION"
    })
    .await;
    assert_eq!(status_of(tokens[0].clone()).await, "VERIFIED");
    assert_eq!(status_of(tokens[1].clone()).await, "REJECTED");
    let asked = asked.lock().expect("log").clone();
    assert_eq!(asked.len(), 2);
    assert!(
        asked
            .iter()
            .all(|a| a["postUrl"] == "https://social.example/p/1")
    );
}

#[tokio::test(crate = "crate::support::harness")]
async fn the_event_clock_run_twice_at_once_ends_an_event_and_refunds_it_once() {
    use giftdrop_domain::giveaway::lifecycle;
    use sea_orm::ConnectionTrait;

    // No worker: this test is the clock.
    let app = AppOptions::new().await.mode(true, false).spawn().await;
    let shop = app.open_shop("shop@example.com", "Clock", &[1_000]).await;
    let (host, _) = app.host("host@example.com", 5_000).await;
    let (starts, ends) = later();
    let event_id = id(&app
        .create_event(&host, instant(&shop.product_id, 1_000, 3, starts, ends))
        .await["data"]["createEvent"]);
    app.publish_event(&host, &event_id, "p").await;
    // Its window is over.
    app.db
        .execute_unprepared(&format!(
            "UPDATE giveaway.events SET starts_at = now() - interval '2 seconds', \
             ends_at = now() - interval '1 second' WHERE id = '{event_id}'"
        ))
        .await
        .expect("moved");
    let s = &app.running().services;
    // Two passes at once: the event is started once and ended once.
    let (a, b) = tokio::join!(lifecycle::advance(s), lifecycle::advance(s));
    let mut moves: Vec<String> = a
        .expect("a pass")
        .into_iter()
        .chain(b.expect("a pass"))
        .map(|e| format!("{:?}", e.status))
        .collect();
    moves.sort();
    assert_eq!(moves, ["Ended", "Live"]);
    let (a, b) = tokio::join!(lifecycle::advance(s), lifecycle::advance(s));
    assert!(a.expect("a pass").is_empty() && b.expect("a pass").is_empty());
    assert!(lifecycle::advance(s).await.expect("a pass").is_empty());
    assert_eq!(app.event(None, &event_id).await["status"], "ENDED");
    // An ended event can no longer be joined (FLOWS.md §5: SCHEDULED or LIVE).
    let (late, _) = app.register("late@example.com", "Late Comer").await;
    let joined = app.join_event(&late, &event_id, "@late").await;
    assert_eq!(error_code(&joined), "CONFLICT");
    let refunds = scalar(
        &app.db,
        &format!("SELECT count(*) FROM ledger.transfers WHERE kind = 'EVENT_REFUND' AND reference = '{event_id}'"),
    )
    .await;
    assert_eq!(refunds, 1);
    assert_eq!(app.my_balance(&host).await, 5_000);
    assert_ledger_sound(&app).await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn joins_at_the_same_moment_all_count() {
    let app = spawn_app().await;
    let shop = app.open_shop("shop@example.com", "Rush", &[1_000]).await;
    let (host, _) = app.host("host@example.com", 1_000).await;
    let (starts, ends) = later();
    let event_id = id(&app
        .create_event(&host, instant(&shop.product_id, 1_000, 1, starts, ends))
        .await["data"]["createEvent"]);
    app.publish_event(&host, &event_id, "p").await;
    let mut fans = Vec::new();
    for n in 0..12 {
        fans.push(
            app.register(&format!("fan{n}@example.com"), "Fan Person")
                .await
                .0,
        );
    }
    let handles: Vec<String> = (0..fans.len()).map(|n| format!("@fan{n}")).collect();
    let joins = futures_util::future::join_all(
        fans.iter()
            .zip(&handles)
            .map(|(token, handle)| app.join_event(token, &event_id, handle)),
    )
    .await;
    assert!(joins.iter().all(|j| j["errors"].is_null()), "{joins:?}");
    assert_eq!(app.event(None, &event_id).await["participantCount"], 12);
}

#[tokio::test(crate = "crate::support::harness")]
async fn joining_counts_against_the_join_rate_limit() {
    let app = AppOptions::new()
        .await
        .config(|c| c.rate_limits = "join=2/60".into())
        .spawn()
        .await;
    let (fan, _) = app.register("fan@example.com", "Fay N").await;
    let join = || {
        app.gql(
            Some(&fan),
            "mutation($i: JoinEventInput!) { joinEvent(input: $i) { id } }",
            json!({ "i": { "eventId": uuid::Uuid::now_v7(), "socialHandle": "@fay" } }),
        )
    };
    assert_eq!(error_code(&join().await), "NOT_FOUND");
    assert_eq!(error_code(&join().await), "NOT_FOUND");
    let limited = join().await;
    assert_eq!(error_code(&limited), "RATE_LIMITED", "{limited}");
}
