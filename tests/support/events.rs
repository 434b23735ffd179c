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
