//! Setting a giveaway up through the API: the host, the event, its participants.

use super::*;

/// How the event picks its winners.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Selection {
    /// Every attempt wins while units are left; the event lasts an hour.
    Instant,
    /// A draw when the event ends, this long after it starts.
    Draw(Duration),
}

/// The host, its funded wallet, and the published event, starting once
/// `participants` can have joined.
pub(super) async fn setup_event(
    base_url: &str,
    args: &Args,
    participants: usize,
    selection: Selection,
) -> Result<(String, Api)> {
    let (host, product_id) = setup_host(
        base_url,
        &args.admin_email,
        &args.admin_password,
        args.prizes * FACE_VALUE,
    )
    .await?;
    // Late enough for every participant to join first.
    let setup = Duration::from_millis(40 * u64::try_from(participants).unwrap_or(u64::MAX));
    let starts =
        chrono::Utc::now() + chrono::Duration::from_std(setup.max(Duration::from_secs(10)))?;
    let event_id = publish_event(&host, &product_id, &[args.prizes], starts, selection).await?;
    Ok((event_id, host))
}

/// A merchant's card product, and a HOST whose wallet holds `budget`:
/// the product and budget every event of this host draws on.
pub(crate) async fn setup_host(
    base_url: &str,
    admin_email: &str,
    admin_password: &str,
    budget: u64,
) -> Result<(Api, String)> {
    let market = setup_market(base_url, admin_email, admin_password, FACE_VALUE).await?;
    let host = Api::new(base_url)?;
    let session = host.register().await?;
    let host = host.signed_in(session.token);
    host.execute("mutation { becomeHost { id } }", json!({}))
        .await
        .context("becomeHost")?;
    let checkout = reqwest::Client::new();
    fund(&host, &checkout, base_url, budget).await?;
    Ok((host, market.product_id))
}

/// Creates and publishes an event of `host` starting at `starts`, with one
/// prize line of [`FACE_VALUE`] per entry of `quantities`.
pub(crate) async fn publish_event(
    host: &Api,
    product_id: &str,
    quantities: &[u64],
    starts: chrono::DateTime<chrono::Utc>,
    selection: Selection,
) -> Result<String> {
    let prizes: Vec<Value> = quantities
        .iter()
        .map(|q| json!({ "cardProductId": product_id, "faceValue": FACE_VALUE.to_string(), "quantity": q }))
        .collect();
    let mut input = json!({
        "title": "Bench giveaway",
        "description": "Attempted by giftdrop-bench",
        "selection": "INSTANT",
        "winChancePercent": 100,
        "startsAt": starts.to_rfc3339(),
        "endsAt": (starts + chrono::Duration::hours(1)).to_rfc3339(),
        "prizes": prizes,
    });
    if let Selection::Draw(lasting) = selection {
        input["selection"] = json!("DRAW");
        input["winChancePercent"] = Value::Null;
        input["endsAt"] = json!((starts + chrono::Duration::from_std(lasting)?).to_rfc3339());
    }
    let data = host
        .execute(
            "mutation($i: CreateEventInput!) { createEvent(input: $i) { id } }",
            json!({ "i": input }),
        )
        .await
        .context("createEvent")?;
    let event_id = string_at(&data, "/createEvent/id")?;
    let data = host
        .execute(
            "mutation($id: ID!, $k: String!) { publishEvent(id: $id, idempotencyKey: $k) { status } }",
            json!({ "id": event_id, "k": key() }),
        )
        .await
        .context("publishEvent")?;
    ensure!(
        string_at(&data, "/publishEvent/status")? == "SCHEDULED",
        "publishEvent gave {data}"
    );
    Ok(event_id)
}

/// `count` users who registered and joined, once all are VERIFIED.
pub(super) async fn setup_participants(
    base_url: &str,
    event_id: &str,
    count: usize,
) -> Result<Vec<Api>> {
    let users = register_users(base_url, count).await?;
    join_all(&users, event_id).await?;
    Ok(users)
}

/// `count` freshly registered users, signed in.
pub(crate) async fn register_users(base_url: &str, count: usize) -> Result<Vec<Api>> {
    stream::iter(0..count)
        .map(|_| async move {
            let api = Api::new(base_url)?;
            let session = api.register().await?;
            Ok::<_, anyhow::Error>(api.signed_in(session.token))
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect()
        .await
}

/// Every one of `users` joins `event_id`; returns once all are VERIFIED.
pub(crate) async fn join_all(users: &[Api], event_id: &str) -> Result<()> {
    stream::iter(users.iter().enumerate())
        .map(|(n, api)| async move {
            api.execute(
                "mutation($i: JoinEventInput!) { joinEvent(input: $i) { id } }",
                json!({ "i": { "eventId": event_id, "socialHandle": format!("@fan{n}") } }),
            )
            .await
            .context("joinEvent")
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    for api in users {
        wait_for(
            api,
            event_id,
            |e| e["myParticipation"]["status"] == "VERIFIED",
            "a participant to be verified",
        )
        .await?;
    }
    Ok(())
}

/// Polls the event as `api` sees it until `done` holds (a minute at most).
pub(crate) async fn wait_for(
    api: &Api,
    event_id: &str,
    done: impl Fn(&Value) -> bool,
    what: &str,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let data = api
            .execute(
                "query($id: ID!) { event(id: $id) { status myParticipation { status } } }",
                json!({ "id": event_id }),
            )
            .await?;
        if done(&data["event"]) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}: {data}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
