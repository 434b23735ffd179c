//! Giveaway helpers: hosts, drafts, publishing, through the API.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::TestApp;

/// Event fields the tests read.
pub const EVENT_FIELDS: &str = "id title status selection winChancePercent slotCount startsAt endsAt \
     prizeCount prizesAwarded totalCost participantCount drawCommitment drawSeed publishedAt cancelledAt cancelReason \
     host { id } prizes { id faceValue quantity awarded cardProduct { id } }";

/// `createEvent` input: an INSTANT event from `starts` to `ends` with
/// one prize of `quantity` x `face_value` of `product_id`.
pub fn instant(
    product_id: &str,
    face_value: i64,
    quantity: i64,
    starts: DateTime<Utc>,
    ends: DateTime<Utc>,
) -> Value {
    json!({
        "title": "Launch giveaway",
        "description": "Like the post, win a card",
        "socialPostUrl": "https://social.example/p/1",
        "selection": "INSTANT",
        "winChancePercent": 50,
        "startsAt": starts.to_rfc3339(),
        "endsAt": ends.to_rfc3339(),
        "prizes": [{ "cardProductId": product_id, "faceValue": face_value.to_string(), "quantity": quantity }],
    })
}

/// An hour from now, for two hours.
pub fn later() -> (DateTime<Utc>, DateTime<Utc>) {
    let starts = Utc::now() + Duration::hours(1);
    (starts, starts + Duration::hours(2))
}

impl TestApp {
    /// A new user who became a HOST and has `funds` in their wallet.
    pub async fn host(&self, email: &str, funds: i64) -> (String, String) {
        let (token, id) = self.register(email, "Hilda Host").await;
        self.ok(
            Some(&token),
            "mutation { becomeHost { id } }",
            json!({}),
            "becomeHost",
        )
        .await;
        if funds > 0 {
            self.fund(&token, funds).await;
        }
        (token, id)
    }

    /// `createEvent` with `input`; the whole body.
    pub async fn create_event(&self, token: &str, input: Value) -> Value {
        self.gql(
            Some(token),
            &format!(
                "mutation($i: CreateEventInput!) {{ createEvent(input: $i) {{ {EVENT_FIELDS} }} }}"
            ),
            json!({ "i": input }),
        )
        .await
    }

    /// `publishEvent`; the whole body.
    pub async fn publish_event(&self, token: &str, id: &str, key: &str) -> Value {
        self.gql(
            Some(token),
            &format!(
                "mutation($id: ID!, $k: String!) {{ publishEvent(id: $id, idempotencyKey: $k) {{ {EVENT_FIELDS} }} }}"
            ),
            json!({ "id": id, "k": key }),
        )
        .await
    }

    /// A published INSTANT event of `host` (a HOST's token) that every
    /// attempt wins, `quantity` cards of `face_value` of `product_id`, made
    /// LIVE now by the clock: its id.
    pub async fn live_instant_event(
        &self,
        host: &str,
        product_id: &str,
        face_value: i64,
        quantity: i64,
    ) -> String {
        use sea_orm::ConnectionTrait;
        let starts = Utc::now() + Duration::seconds(1);
        let ends = starts + Duration::minutes(5);
        let mut input = instant(product_id, face_value, quantity, starts, ends);
        input["winChancePercent"] = json!(100);
        let event = self.create_event(host, input).await;
        let id = event["data"]["createEvent"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("createEvent: {event}"))
            .to_owned();
        self.publish_event(host, &id, &format!("publish-{id}"))
            .await;
        self.db
            .execute_unprepared(&format!(
                "UPDATE giveaway.events SET starts_at = now() - interval '1 second' WHERE id = '{id}'"
            ))
            .await
            .expect("started");
        giftdrop_domain::giveaway::lifecycle::advance(&self.running().services)
            .await
            .expect("the clock");
        assert_eq!(self.event(None, &id).await["status"], "LIVE");
        id
    }

    /// A HOST with funds and a LIVE INSTANT event of theirs that every
    /// attempt wins, 10 cards of 500 from a new shop: the host's token and
    /// the event's id.
    pub async fn live_giveaway(&self) -> (String, String) {
        let shop = self.open_shop("shop@example.com", "Winners", &[500]).await;
        let (host, _) = self.host("host@example.com", 5_000).await;
        let id = self
            .live_instant_event(&host, &shop.product_id, 500, 10)
            .await;
        (host, id)
    }

    /// `joinEvent` by `token` of `event_id` with `handle`: the whole body.
    pub async fn join_event(&self, token: &str, event_id: &str, handle: &str) -> Value {
        self.gql(
            Some(token),
            "mutation($i: JoinEventInput!) { joinEvent(input: $i) { id } }",
            json!({ "i": { "eventId": event_id, "socialHandle": handle } }),
        )
        .await
    }

    /// `event(id)` as `token` sees it (`null` if invisible).
    pub async fn event(&self, token: Option<&str>, id: &str) -> Value {
        self.ok(
            token,
            &format!("query($id: ID!) {{ event(id: $id) {{ {EVENT_FIELDS} }} }}"),
            json!({ "id": id }),
            "event",
        )
        .await
    }
}

impl TestApp {
    /// `n` users who joined `event_id` and were verified, made straight in
    /// the database (registering thousands through the API would spend the
    /// test on password hashing); their tokens.
    pub async fn verified_crowd(&self, event_id: &str, n: usize) -> Vec<String> {
        use sea_orm::ConnectionTrait;
        let sql = format!(
            "WITH u AS (INSERT INTO identity.users (id, email, display_name, password_hash) \
               SELECT gen_random_uuid(), 'fan' || i || '-' || substr(md5(random()::text), 1, 8) || '@crowd.test', \
                 'Fan Number' || i, 'x' FROM generate_series(1, {n}) AS i RETURNING id, display_name), \
             r AS (INSERT INTO identity.user_roles (user_id, role) SELECT id, 'PARTICIPANT' FROM u), \
             p AS (INSERT INTO giveaway.participants (id, event_id, user_id, social_handle, display_name, status, verified_at) \
               SELECT gen_random_uuid(), '{event_id}', id, '@' || replace(display_name, ' ', ''), display_name, 'VERIFIED', now() FROM u) \
             SELECT id FROM u"
        );
        let rows = self
            .db
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                sql,
            ))
            .await
            .expect("crowd inserted");
        let issuer = &self.running().services.tokens;
        rows.iter()
            .map(|row| {
                let id: uuid::Uuid = row.try_get("", "id").expect("id");
                issuer.issue(id).expect("token").0
            })
            .collect()
    }

    /// Waits until `n` disqualified INSTANT wins have had their awards
    /// given back to their budgets (`release_grant` jobs done).
    pub async fn grants_released(&self, n: u64) {
        use giftdrop_domain::jobs::JobPayload;
        let queues = &self.running().queues;
        super::eventually("the awards given back", || async {
            queues
                .done(giftdrop_domain::giveaway::attempt::ReleaseGrant::KIND)
                .await
                .expect("redis")
                == n
        })
        .await;
    }

    /// `attemptPrize` by `token`: the outcome, or the error code.
    pub async fn attempt(&self, token: &str, event_id: &str) -> String {
        let body = self
            .gql(
                Some(token),
                "mutation($e: ID!) { attemptPrize(eventId: $e) { outcome winner { sequence } } }",
                json!({ "e": event_id }),
            )
            .await;
        match body["data"]["attemptPrize"]["outcome"].as_str() {
            Some(outcome) => outcome.to_owned(),
            None => super::code(&body).to_owned(),
        }
    }
}
