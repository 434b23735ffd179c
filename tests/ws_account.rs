//! An open WebSocket follows its account: a revoked role or an expired
//! token takes effect on sockets opened before.

use giftdrop_domain::identity::TokenIssuer;
use serde_json::{Value, json};

use crate::support::events::{instant, later};
use crate::support::ws::WsClient;
use crate::support::{AppOptions, TestApp, spawn_app};

/// A DRAFT event of a new host, and a second admin (not the host) who may
/// follow it: (event id, admin id, admin token).
async fn draft_and_admin(app: &TestApp) -> (String, String, String) {
    let shop = app.open_shop("shop@example.com", "Draft", &[500]).await;
    let (host, _) = app.host("host@example.com", 0).await;
    let (starts, ends) = later();
    let created = app
        .create_event(&host, instant(&shop.product_id, 500, 1, starts, ends))
        .await;
    let event = created["data"]["createEvent"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("createEvent failed: {created}"))
        .to_owned();
    let (_, ada) = app.register("ada@example.com", "Ada Admin").await;
    set_admin(app, &ada, true).await;
    let token = app.login("ada@example.com").await;
    (event, ada, token)
}

/// Grants or revokes ADMIN, as the bootstrap admin.
async fn set_admin(app: &TestApp, user: &str, grant: bool) {
    let admin = app.admin_token().await;
    let field = if grant { "grantRole" } else { "revokeRole" };
    let body = app
        .gql(
            Some(&admin),
            &format!("mutation($u: ID!) {{ {field}(userId: $u, role: ADMIN) {{ id }} }}"),
            json!({ "u": user }),
        )
        .await;
    assert_eq!(body["data"][field]["id"], user, "{body}");
}

fn event_updated(event: &str) -> String {
    format!("subscription {{ eventUpdated(eventId: \"{event}\") {{ status }} }}")
}

/// Subscribes `id` to the DRAFT event and checks the admin sees it.
async fn follow_draft(socket: &mut WsClient, id: &str, event: &str) {
    socket.subscribe(id, &event_updated(event)).await;
    let first = socket.next_of("next", id).await;
    assert_eq!(
        first["payload"]["data"]["eventUpdated"]["status"], "DRAFT",
        "{first}"
    );
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_subscribe_runs_with_the_roles_the_account_holds_now() {
    // No relay: the account's change never reaches the socket, so only
    // the subscribe itself can see the revocation.
    let app = AppOptions::new().await.without_relay().spawn().await;
    let (event, ada, token) = draft_and_admin(&app).await;
    let mut socket = WsClient::ready(&app.ws_url(), Some(&token)).await;
    follow_draft(&mut socket, "1", &event).await;

    set_admin(&app, &ada, false).await;
    socket.subscribe("2", &event_updated(&event)).await;
    let refused = socket.next_of("error", "2").await;
    assert_eq!(
        refused["payload"][0]["extensions"]["code"], "NOT_FOUND",
        "another host's draft, for a user who is no longer an admin: {refused}"
    );
    socket
        .subscribe("3", "subscription { meUpdated { roles } }")
        .await;
    let me: Value = socket.next_of("next", "3").await;
    assert_eq!(
        me["payload"]["data"]["meUpdated"]["roles"],
        json!(["PARTICIPANT"]),
        "{me}"
    );
}

#[tokio::test(crate = "crate::support::harness")]
async fn an_admin_socket_closes_when_its_admin_role_is_revoked() {
    let app = spawn_app().await;
    let (event, ada, token) = draft_and_admin(&app).await;
    let mut socket = WsClient::ready(&app.ws_url(), Some(&token)).await;
    follow_draft(&mut socket, "1", &event).await;
    // A role that widens nothing leaves the socket as it is.
    let admin = app.admin_token().await;
    let body = app
        .gql(
            Some(&admin),
            "mutation($u: ID!) { grantRole(userId: $u, role: HOST) { id } }",
            json!({ "u": ada }),
        )
        .await;
    assert_eq!(body["data"]["grantRole"]["id"], ada, "{body}");
    socket
        .subscribe("2", "subscription { meUpdated { roles } }")
        .await;
    let me = socket.next_of("next", "2").await;
    assert_eq!(
        me["payload"]["data"]["meUpdated"]["roles"],
        json!(["PARTICIPANT", "HOST", "ADMIN"]),
        "{me}"
    );

    set_admin(&app, &ada, false).await;
    assert_eq!(
        socket.closed().await,
        4403,
        "the draft's subscription ran with a role the account lost"
    );
    // A new socket with the same token runs as the account now is.
    let mut again = WsClient::ready(&app.ws_url(), Some(&token)).await;
    again.subscribe("1", &event_updated(&event)).await;
    let refused = again.next_of("error", "1").await;
    assert_eq!(refused["payload"][0]["extensions"]["code"], "NOT_FOUND");
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_socket_closes_when_its_token_expires() {
    let app = spawn_app().await;
    let (_, user) = app.register("ada@example.com", "Ada").await;
    // A token that expires in 3 s (accepted 5 s more: the clock leeway).
    let secret = app.config.jwt_secret.clone().expect("tests set a secret");
    let issuer = TokenIssuer::new(&secret, chrono::Duration::seconds(3));
    let (token, _) = issuer
        .issue(user.parse().expect("a uuid"))
        .expect("a token");
    let mut socket = WsClient::ready(&app.ws_url(), Some(&token)).await;
    socket
        .subscribe("1", "subscription { meUpdated { id } }")
        .await;
    assert_eq!(
        socket.next_of("next", "1").await["payload"]["data"]["meUpdated"]["id"],
        user
    );
    assert_eq!(
        socket.closed().await,
        4403,
        "an expired token authorizes nothing"
    );
    // And it signs nothing in.
    let mut late = WsClient::connect(&app.ws_url(), "graphql-transport-ws").await;
    late.init(Some(&token)).await;
    assert_eq!(late.closed().await, 4403);
}
