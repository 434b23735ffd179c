//! The WebSocket protocol: close codes, the subscription cap, pings, the
//! legacy protocol, and delivery across two app instances.

use serde_json::json;

use crate::support::ws::WsClient;
use crate::support::{AppOptions, spawn_app};

const ME_UPDATED: &str = "subscription { meUpdated { id roles } }";

#[tokio::test(crate = "crate::support::harness")]
async fn protocol_violations_close_with_their_codes() {
    let app = AppOptions::new()
        .await
        .config(|c| c.ws_init_timeout_ms = 300)
        .spawn()
        .await;
    let url = app.ws_url();

    let mut silent = WsClient::connect(&url, "graphql-transport-ws").await;
    assert_eq!(silent.closed().await, 4408, "no connection_init in time");

    let mut twice = WsClient::ready(&url, None).await;
    twice.init(None).await;
    assert_eq!(twice.closed().await, 4429, "second connection_init");

    let mut early = WsClient::connect(&url, "graphql-transport-ws").await;
    early.subscribe("1", "{ platform { currency } }").await;
    assert_eq!(early.closed().await, 4401, "subscribe before the ack");

    let mut forged = WsClient::connect(&url, "graphql-transport-ws").await;
    forged.init(Some("forged-token")).await;
    assert_eq!(forged.closed().await, 4403, "bad token");

    let mut garbage = WsClient::ready(&url, None).await;
    garbage.send_text("{not json").await;
    assert_eq!(garbage.closed().await, 4400, "unparseable message");

    let (token, _) = app.register("ada@example.com", "Ada").await;
    let mut duplicate = WsClient::ready(&url, Some(&token)).await;
    duplicate.subscribe("same", ME_UPDATED).await;
    assert_eq!(duplicate.next().await["type"], "next");
    duplicate.subscribe("same", ME_UPDATED).await;
    assert_eq!(duplicate.closed().await, 4409, "duplicate subscription id");
}

#[tokio::test(crate = "crate::support::harness")]
async fn every_message_the_protocol_does_not_allow_closes_with_4400() {
    let app = spawn_app().await;
    let url = app.ws_url();
    let query = json!({ "query": "{ platform { currency } }" });
    let cases = [
        ("no type", json!({ "id": "1", "payload": query })),
        (
            "the legacy protocol's start",
            json!({ "type": "start", "id": "1", "payload": query }),
        ),
        (
            "a subscribe without an id",
            json!({ "type": "subscribe", "payload": query }),
        ),
        (
            "a subscribe without a payload",
            json!({ "type": "subscribe", "id": "1" }),
        ),
        (
            "a subscribe whose payload is no request",
            json!({ "type": "subscribe", "id": "1", "payload": "{ platform { currency } }" }),
        ),
        ("a complete without an id", json!({ "type": "complete" })),
    ];
    for (what, message) in cases {
        let mut client = WsClient::ready(&url, None).await;
        client.send(message).await;
        assert_eq!(client.closed().await, 4400, "{what}");
    }
    let mut binary = WsClient::ready(&url, None).await;
    binary.send_binary(b"{}").await;
    assert_eq!(binary.closed().await, 4400, "a binary message");
}

#[tokio::test(crate = "crate::support::harness")]
async fn the_legacy_protocol_closes_with_the_same_codes() {
    let app = AppOptions::new()
        .await
        .config(|c| c.ws_init_timeout_ms = 300)
        .spawn()
        .await;
    let url = app.ws_url();
    let start = |id: &str| json!({ "id": id, "type": "start", "payload": { "query": ME_UPDATED } });

    let mut silent = WsClient::connect(&url, "graphql-ws").await;
    assert_eq!(silent.closed().await, 4408, "no connection_init in time");

    let mut forged = WsClient::connect(&url, "graphql-ws").await;
    forged.init(Some("forged-token")).await;
    assert_eq!(forged.next().await["type"], "connection_error");
    assert_eq!(forged.closed().await, 4403, "bad token");

    let mut early = WsClient::connect(&url, "graphql-ws").await;
    early.send(start("1")).await;
    assert_eq!(early.closed().await, 4401, "start before the ack");

    let (token, _) = app.register("ada@example.com", "Ada").await;
    let mut client = WsClient::connect(&url, "graphql-ws").await;
    client.init(Some(&token)).await;
    assert_eq!(client.next().await["type"], "connection_ack");
    client.send(start("same")).await;
    assert_eq!(client.next().await["type"], "data");
    client.send(start("same")).await;
    assert_eq!(client.closed().await, 4409, "duplicate subscription id");

    let mut twice = WsClient::connect(&url, "graphql-ws").await;
    twice.init(None).await;
    twice.init(None).await;
    assert_eq!(twice.closed().await, 4429, "second connection_init");

    let mut leaving = WsClient::connect(&url, "graphql-ws").await;
    leaving.init(None).await;
    assert_eq!(leaving.next().await["type"], "connection_ack");
    leaving
        .send(json!({ "type": "connection_terminate" }))
        .await;
    assert_eq!(leaving.closed().await, 1000, "connection_terminate");
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_connection_holds_at_most_fifty_subscriptions() {
    let app = spawn_app().await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let mut client = WsClient::ready(&app.ws_url(), Some(&token)).await;
    for i in 0..50 {
        client.subscribe(&format!("s{i}"), ME_UPDATED).await;
        assert_eq!(
            client.next().await["type"],
            "next",
            "subscription {i} starts"
        );
    }
    client.subscribe("s50", ME_UPDATED).await;
    let refused = client.next().await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["id"], "s50");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "RATE_LIMITED");
    client.send(json!({ "type": "complete", "id": "s0" })).await;
    client.subscribe("s51", ME_UPDATED).await;
    // Room again after a complete.
    client.next_of("next", "s51").await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_message_larger_than_the_read_buffer_arrives_whole() {
    let app = spawn_app().await;
    let (token, user_id) = app.register("ada@example.com", "Ada").await;
    let mut client = WsClient::ready(&app.ws_url(), Some(&token)).await;
    // A query that spans many reads of the socket's 1 KiB read buffer.
    let long = format!("# {}\n{ME_UPDATED}", "x".repeat(6 * 1024));
    client.subscribe("long", &long).await;
    let first = client.next_of("next", "long").await;
    assert_eq!(
        first["payload"]["data"]["meUpdated"]["id"],
        user_id.as_str()
    );
    // The connection reads on as before: a short message after the long one.
    client.subscribe("short", ME_UPDATED).await;
    client.next_of("next", "short").await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_subscription_over_the_alias_limit_is_refused_and_the_connection_stays() {
    let app = spawn_app().await;
    let (token, _) = app.register("ada@example.com", "Ada").await;
    let mut client = WsClient::ready(&app.ws_url(), Some(&token)).await;
    let aliases: String = (0..31)
        .map(|i| format!("a{i}: meUpdated {{ id }} "))
        .collect();
    client
        .subscribe("many", &format!("subscription {{ {aliases} }}"))
        .await;
    let refused = client.next_of("error", "many").await;
    assert!(
        refused["payload"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("aliases")),
        "{refused}"
    );
    client.subscribe("one", ME_UPDATED).await;
    client.next_of("next", "one").await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_subscription_that_fails_inside_shows_the_generic_internal_error_with_its_correlation_id()
{
    let app = spawn_app().await;
    sea_orm::ConnectionTrait::execute_unprepared(
        &app.db,
        "ALTER TABLE giveaway.events RENAME TO events_gone",
    )
    .await
    .expect("break the schema of this test's own database");
    let mut client = WsClient::ready(&app.ws_url(), None).await;
    let query = format!(
        "subscription {{ eventUpdated(eventId: \"{}\") {{ id }} }}",
        uuid::Uuid::now_v7()
    );
    client.subscribe("e", &query).await;
    let failed = client.next().await;
    assert_eq!(failed["type"], "error", "{failed}");
    let error = &failed["payload"][0];
    assert_eq!(error["extensions"]["code"], "INTERNAL", "{failed}");
    assert!(
        error["extensions"]["correlationId"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{failed}"
    );
    assert!(!failed.to_string().contains("events_gone"), "{failed}");
}

#[tokio::test(crate = "crate::support::harness")]
async fn subscriptions_need_a_signed_in_user_where_queries_do() {
    let app = spawn_app().await;
    let mut client = WsClient::ready(&app.ws_url(), None).await;
    client.subscribe("1", ME_UPDATED).await;
    let message = client.next().await;
    assert_eq!(message["type"], "error");
    assert_eq!(
        message["payload"][0]["extensions"]["code"],
        "UNAUTHENTICATED"
    );
    client.subscribe("2", "{ platform { currency } }").await;
    assert_eq!(
        client.next().await["payload"]["data"]["platform"]["currency"],
        "NGN"
    );
    assert_eq!(
        client.next().await,
        json!({ "type": "complete", "id": "2" })
    );
}

#[tokio::test(crate = "crate::support::harness")]
async fn the_server_pings_and_answers_pings() {
    let app = AppOptions::new()
        .await
        .config(|c| c.ws_ping_ms = 200)
        .spawn()
        .await;
    let mut client = WsClient::ready(&app.ws_url(), None).await;
    assert_eq!(client.next_raw().await["type"], "ping");
    client.send(json!({ "type": "ping" })).await;
    assert_eq!(client.next().await["type"], "pong");
}

#[tokio::test(crate = "crate::support::harness")]
async fn the_legacy_graphql_ws_protocol_is_spoken() {
    let app = spawn_app().await;
    let (token, id) = app.register("ada@example.com", "Ada").await;
    let mut client = WsClient::connect(&app.ws_url(), "graphql-ws").await;
    client.init(Some(&token)).await;
    assert_eq!(client.next().await["type"], "connection_ack");
    client
        .send(json!({ "id": "1", "type": "start", "payload": { "query": ME_UPDATED } }))
        .await;
    let data = client.next().await;
    assert_eq!(data["type"], "data");
    assert_eq!(data["payload"]["data"]["meUpdated"]["id"], id);
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_change_made_on_one_instance_reaches_a_subscriber_on_another() {
    let a = spawn_app().await;
    let b = AppOptions::beside(&a).spawn().await;
    let (token, user_id) = a.register("ada@example.com", "Ada").await;
    let mut subscriber = WsClient::ready(&b.ws_url(), Some(&token)).await;
    subscriber.subscribe("me", ME_UPDATED).await;
    let current = subscriber.next().await;
    assert_eq!(
        current["payload"]["data"]["meUpdated"]["roles"],
        json!(["PARTICIPANT"])
    );

    let admin = a.admin_token().await;
    let body = a
        .gql(
            Some(&admin),
            "mutation($u: ID!) { grantRole(userId: $u, role: HOST) { id } }",
            json!({ "u": user_id }),
        )
        .await;
    assert_eq!(body["data"]["grantRole"]["id"], user_id);

    let update = subscriber.next().await;
    assert_eq!(update["id"], "me");
    assert_eq!(
        update["payload"]["data"]["meUpdated"]["roles"],
        json!(["PARTICIPANT", "HOST"])
    );
}

async fn set_host(app: &crate::support::TestApp, admin: &str, user: &str, grant: bool) {
    let field = if grant { "grantRole" } else { "revokeRole" };
    let body = app
        .gql(
            Some(admin),
            &format!("mutation($u: ID!) {{ {field}(userId: $u, role: HOST) {{ id }} }}"),
            json!({ "u": user }),
        )
        .await;
    assert_eq!(body["data"][field]["id"], user, "{body}");
}

#[tokio::test(crate = "crate::support::harness")]
async fn identical_snapshot_subscriptions_share_one_execution() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (token, user) = app.register("ada@example.com", "Ada").await;
    let roles =
        |message: &serde_json::Value| message["payload"]["data"]["meUpdated"]["roles"].clone();
    let participant = json!(["PARTICIPANT"]);
    let host = json!(["PARTICIPANT", "HOST"]);

    let mut first = WsClient::ready(&app.ws_url(), Some(&token)).await;
    first.subscribe("a", ME_UPDATED).await;
    assert_eq!(roles(&first.next().await), participant);
    let mut second = WsClient::ready(&app.ws_url(), Some(&token)).await;
    second.subscribe("b", ME_UPDATED).await;
    let joined = second.next().await;
    assert_eq!(joined["id"], "b");
    assert_eq!(roles(&joined), participant);
    assert_eq!(
        app.running().shared.running(),
        1,
        "the same request and viewer share"
    );

    // Another selection, or another viewer, is another execution.
    let mut narrow = WsClient::ready(&app.ws_url(), Some(&token)).await;
    narrow
        .subscribe("n", "subscription { meUpdated { id } }")
        .await;
    assert_eq!(
        narrow.next().await["payload"]["data"]["meUpdated"],
        json!({ "id": user })
    );
    let (other_token, other) = app.register("bob@example.com", "Bob").await;
    let mut bob = WsClient::ready(&app.ws_url(), Some(&other_token)).await;
    bob.subscribe("a", ME_UPDATED).await;
    assert_eq!(
        bob.next().await["payload"]["data"]["meUpdated"]["id"],
        other
    );
    assert_eq!(app.running().shared.running(), 3);

    set_host(&app, &admin, &user, true).await;
    assert_eq!(roles(&first.next().await), host);
    assert_eq!(roles(&second.next().await), host);
    assert_eq!(
        narrow.next().await["payload"]["data"]["meUpdated"],
        json!({ "id": user })
    );

    // A late joiner starts from the current state, not the first one.
    let mut late = WsClient::ready(&app.ws_url(), Some(&token)).await;
    late.subscribe("c", ME_UPDATED).await;
    assert_eq!(roles(&late.next().await), host);

    // One subscriber leaving does not stop the others' execution.
    first.send(json!({ "id": "a", "type": "complete" })).await;
    set_host(&app, &admin, &user, false).await;
    assert_eq!(roles(&second.next().await), participant);
    assert_eq!(roles(&late.next().await), participant);

    // When every subscriber has gone, the execution stops.
    drop((first, second, late, narrow, bob));
    crate::support::eventually("shared executions to stop", || async {
        app.running().shared.running() == 0
    })
    .await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn an_upgrade_request_is_checked_and_its_subprotocol_chosen_by_preference() {
    let app = spawn_app().await;
    let plain = app
        .client
        .get(app.url("/graphql/ws"))
        .send()
        .await
        .expect("request");
    assert_eq!(plain.status(), 400, "a GET that is no upgrade");
    let old_version = app
        .client
        .get(app.url("/graphql/ws"))
        .header("Connection", "keep-alive, Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "8")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .expect("request");
    assert_eq!(old_version.status(), 400, "a WebSocket version before 13");

    // The client's order does not matter: graphql-transport-ws is preferred.
    let (_, chosen) =
        WsClient::offering(&app.ws_url(), Some("graphql-ws, graphql-transport-ws")).await;
    assert_eq!(chosen.as_deref(), Some("graphql-transport-ws"));

    // No subprotocol offered: none named, and graphql-transport-ws spoken.
    let (mut client, chosen) = WsClient::offering(&app.ws_url(), None).await;
    assert_eq!(chosen, None);
    client.init(None).await;
    assert_eq!(client.next().await["type"], "connection_ack");
    client.subscribe("1", "{ platform { currency } }").await;
    let next = client.next().await;
    assert_eq!(next["type"], "next");
    assert_eq!(next["id"], "1");
    assert!(next["payload"]["data"]["platform"]["currency"].is_string());
    assert_eq!(client.next().await["type"], "complete");
}

/// async-graphql-axum's stock route, mounted beside ours for the
/// benchmark only (`--features stock-ws`, BENCHMARKS.md).
#[cfg(feature = "stock-ws")]
#[tokio::test(crate = "crate::support::harness")]
async fn the_stock_route_serves_the_same_schema_for_the_benchmark() {
    let app = spawn_app().await;
    let url = app.ws_url().replace("/graphql/ws", "/graphql/stock-ws");
    let (token, user_id) = app.register("ada@example.com", "Ada").await;
    let mut client = WsClient::ready(&url, Some(&token)).await;
    client.subscribe("me", ME_UPDATED).await;
    let first = client.next_of("next", "me").await;
    assert_eq!(
        first["payload"]["data"]["meUpdated"]["id"],
        user_id.as_str()
    );
    let mut anonymous = WsClient::ready(&url, None).await;
    anonymous.subscribe("1", "{ platform { currency } }").await;
    let next = anonymous.next_of("next", "1").await;
    assert_eq!(next["payload"]["data"]["platform"]["currency"], "NGN");
}
