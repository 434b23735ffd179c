//! The `giveaway` scenario (issue 5): the attempt storm of an INSTANT event
//! against `pgbench -b tpcb-like` at the same concurrency, then `event(id)`
//! with its prizes, winners and host at `--connections` against
//! `GET /health/live`, with the SQL statements each `event(id)` runs.
//!
//! Setup goes through the API: a merchant with one product, a host who
//! becomes HOST and tops up, an INSTANT event of `--prizes` units
//! (winChancePercent 100, one slot) published, and `--participants` users
//! who register and join (the development verifier verifies them through
//! the job queue). Once the event is LIVE, every participant attempts once,
//! `--concurrency` at a time. Exactly `--prizes` must win, and every other
//! attempt must answer NO_PRIZES_LEFT; any error fails the run.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures_util::{StreamExt, TryStreamExt, stream};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::api::{Api, string_at};
use crate::ledger::{self, Figures, PGBENCH_DB};
use crate::market::{fund, key, setup_market};
use crate::rss::cpu_ms;
use crate::stats::{percentile, sorted};

/// Setup requests in flight at once (registration hashes a password).
pub(crate) const SETUP_CONCURRENCY: usize = 4;
pub(crate) const FACE_VALUE: u64 = 500;

/// `event(id)` as a front end shows it.
pub(crate) const EVENT: &str = "query($id: ID!) { event(id: $id) { id title status prizeCount prizesAwarded host { id displayName } \
     prizes { id faceValue quantity awarded cardProduct { id name } } \
     winners { sequence displayName announcedAt participant { id } prize { id faceValue } } } }";

/// Options of the `giveaway` scenario.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Participants, each attempting once.
    #[arg(long, default_value_t = 2_000)]
    participants: usize,
    /// Prize units of the event.
    #[arg(long, default_value_t = 100)]
    prizes: u64,
    /// Attempts in flight at once (and pgbench clients).
    #[arg(long, default_value = "64")]
    concurrency: NonZeroUsize,
    /// Sockets subscribed to `winnerAnnounced` of a second event while its
    /// `--prizes` winners are announced (0 skips this part).
    #[arg(long, default_value_t = 5_000)]
    subscribers: usize,
    /// Process id of the server, whose CPU time the `winnerAnnounced` part
    /// reports.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Run only the `winnerAnnounced` part (no storm, pgbench or reads).
    #[arg(long)]
    announce_only: bool,
    /// Start the announcing attempts this many milliseconds apart (still
    /// at most 8 in flight); 0 starts each as soon as one finishes, the
    /// fastest the server can announce.
    #[arg(long, default_value_t = 0)]
    announce_every_ms: u64,
    /// Make the announced event a DRAW instead: it ends once the sockets
    /// have subscribed, and its end-of-event job announces every winner in
    /// one transaction. Latencies then count from the last winner's
    /// `announcedAt`, which the commit follows.
    #[arg(long)]
    draw: bool,
    /// Keep-alive connections reading `event(id)`.
    #[arg(long, default_value = "64")]
    connections: NonZeroUsize,
    /// Length of the pgbench and `event(id)` runs, seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The bootstrap admin, who approves the merchant.
    #[arg(long, default_value = "admin@bench.local")]
    admin_email: String,
    /// Password of the bootstrap admin.
    #[arg(long, default_value = "admin-password-1")]
    admin_password: String,
    /// Any database on the Postgres server; pgbench runs in its own
    /// database beside it, dropped at the end.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    database_url: String,
}

/// Runs the scenario and drops the pgbench database whatever happened.
pub async fn run(base_url: &str, args: &Args) -> Result<()> {
    ensure!(
        args.prizes > 0 && args.participants > 0,
        "nothing to attempt"
    );
    let admin = ledger::connect(&args.database_url, 2).await?;
    let outcome = scenario(base_url, &admin, args).await;
    let cleanup = ledger::drop_database(&admin, PGBENCH_DB).await;
    admin
        .close()
        .await
        .context("closing the admin connection")?;
    outcome?;
    cleanup
}

async fn scenario(base_url: &str, admin: &sea_orm::DatabaseConnection, args: &Args) -> Result<()> {
    if args.announce_only {
        return report_announce(base_url, args).await;
    }
    let started = Instant::now();
    let (event_id, host) =
        setup_event(base_url, args, args.participants, Selection::Instant).await?;
    let participants = setup_participants(base_url, &event_id, args.participants).await?;
    println!(
        "giveaway: event {event_id} with {} units and {} verified participants, set up through the API in {:.1?}",
        args.prizes,
        participants.len(),
        started.elapsed()
    );
    wait_for(
        &host,
        &event_id,
        |e| e["status"] == "LIVE",
        "the event to go LIVE",
    )
    .await?;

    let clients = args.concurrency.get();
    let pgbench_url = ledger::database_url(&args.database_url, PGBENCH_DB)?;
    ledger::setup_pgbench(admin, &pgbench_url, clients).await?;
    let pg1 = ledger::pgbench(&pgbench_url, clients, args.seconds, "pgbench #1").await?;
    let storm = storm(participants, &event_id, clients).await?;
    let pg2 = ledger::pgbench(&pgbench_url, clients, args.seconds, "pgbench #2").await?;

    let event = host
        .execute(EVENT, json!({ "id": event_id }))
        .await
        .context("event")?;
    let awarded = event
        .pointer("/event/prizesAwarded")
        .and_then(Value::as_u64)
        .context("prizesAwarded")?;
    ensure!(
        storm.won == args.prizes && awarded == args.prizes,
        "{} attempts won and the event shows {awarded} awarded, for {} prizes",
        storm.won,
        args.prizes
    );

    let reads = read_event(base_url, &event_id, args.connections.get(), args.seconds).await?;

    println!("\n| run | transactions | tx/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|");
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
    for f in [&pg1, &storm.figures, &pg2] {
        println!(
            "| {} | {} | {:.0} | {} | {} |",
            f.label,
            f.transactions,
            f.tps,
            ms(f.p50_ms),
            ms(f.p99_ms)
        );
    }
    let baseline = f64::midpoint(pg1.tps, pg2.tps);
    println!(
        "\noutcomes: {} WON, {} NO_PRIZES_LEFT; pgbench baseline {baseline:.0} tps (#1 {:.0}, #2 {:.0})",
        storm.won, storm.none_left, pg1.tps, pg2.tps
    );
    println!(
        "RATIO attemptPrize/pgbench = {:.3}",
        storm.figures.tps / baseline
    );
    println!(
        "\nevent(id) with {} prizes and {awarded} winners at {} connections: {:.0} req/s, p50 {} ms, p99 {} ms; \
         /health/live {:.0} req/s",
        event
            .pointer("/event/prizes")
            .and_then(Value::as_array)
            .map_or(0, Vec::len),
        args.connections,
        reads.event.tps,
        ms(reads.event.p50_ms),
        ms(reads.event.p99_ms),
        reads.live.tps
    );
    println!(
        "RATIO event(id)/live = {:.3}",
        reads.event.tps / reads.live.tps
    );
    println!(
        "SQL statements per event(id) = {:.2}",
        reads.statements_per_request
    );
    report_announce(base_url, args).await
}

/// Runs and prints the `winnerAnnounced` part, unless `--subscribers 0`.
async fn report_announce(base_url: &str, args: &Args) -> Result<()> {
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
    if args.subscribers > 0 {
        let fanout = announce(base_url, args).await?;
        let how = if args.draw {
            "drawn in one transaction; from the last winner's announcedAt (the commit follows it)"
                .to_owned()
        } else {
            format!(
                "{ANNOUNCE_CONCURRENCY} attempts at once, started {} ms apart; from a winner's announcedAt (set just before its commit)",
                args.announce_every_ms
            )
        };
        println!(
            "\nwinnerAnnounced: {} subscribers, {} winners ({how}), {} deliveries. \
             To receipt: p50 {} ms, p99 {} ms, max {} ms; \
             until its first subscriber's socket had it: p50 {} ms, p99 {} ms; \
             until its last subscriber had it: p50 {} ms, p99 {} ms; \
             to arrival on the socket (kernel timestamp): p50 {} ms, p99 {} ms, max {} ms",
            args.subscribers,
            args.prizes,
            fanout.deliveries,
            ms(fanout.p50_ms),
            ms(fanout.p99_ms),
            ms(fanout.max_ms),
            ms(fanout.first_p50_ms),
            ms(fanout.first_p99_ms),
            ms(fanout.last_p50_ms),
            ms(fanout.last_p99_ms),
            ms(fanout.arrived_p50_ms),
            ms(fanout.arrived_p99_ms),
            ms(fanout.arrived_max_ms),
        );
        println!(
            "announced in {}, delivered in {:.0?}; CPU: server {} ms, load generator {:.0} ms ({:.2} + {:.2} µs per delivery)",
            fanout
                .announced_in
                .map_or_else(|| "-".to_owned(), |d| format!("{d:.0?}")),
            fanout.delivered_in,
            fanout
                .server_cpu_ms
                .map_or_else(|| "-".to_owned(), |v| format!("{v:.0}")),
            fanout.client_cpu_ms,
            fanout.server_cpu_ms.unwrap_or(f64::NAN) * 1000.0 / fanout.deliveries as f64,
            fanout.client_cpu_ms * 1000.0 / fanout.deliveries as f64,
        );
    }
    println!("errors=0");
    Ok(())
}

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
async fn setup_event(
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
async fn setup_participants(base_url: &str, event_id: &str, count: usize) -> Result<Vec<Api>> {
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

struct Storm {
    figures: Figures,
    won: u64,
    none_left: u64,
}

/// Every participant attempts once, `concurrency` at a time.
async fn storm(participants: Vec<Api>, event_id: &str, concurrency: usize) -> Result<Storm> {
    let cpu = crate::rss::children_cpu_s().unwrap_or(0.0);
    let started = Instant::now();
    let results: Vec<(f64, String)> = stream::iter(participants)
        .map(|api| async move {
            let sent = Instant::now();
            let data = api
                .execute(
                    "mutation($e: ID!) { attemptPrize(eventId: $e) { outcome winner { sequence } } }",
                    json!({ "e": event_id }),
                )
                .await
                .context("attemptPrize")?;
            let ms = sent.elapsed().as_secs_f64() * 1000.0;
            Ok::<_, anyhow::Error>((ms, string_at(&data, "/attemptPrize/outcome")?))
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    let elapsed = started.elapsed().as_secs_f64();
    let mut won = 0;
    let mut none_left = 0;
    for (_, outcome) in &results {
        match outcome.as_str() {
            "WON" => won += 1,
            "NO_PRIZES_LEFT" => none_left += 1,
            other => bail!("an attempt answered {other}"),
        }
    }
    let latencies = sorted(results.iter().map(|(ms, _)| *ms).collect());
    let transactions = u64::try_from(results.len()).unwrap_or(u64::MAX);
    Ok(Storm {
        figures: Figures {
            label: format!("attemptPrize ({concurrency} at once)"),
            transactions,
            tps: results.len() as f64 / elapsed,
            p50_ms: percentile(&latencies, 500),
            p99_ms: percentile(&latencies, 990),
            client_cpu_s: crate::rss::children_cpu_s().unwrap_or(0.0) - cpu,
        },
        won,
        none_left,
    })
}

struct Reads {
    event: Figures,
    live: Figures,
    statements_per_request: f64,
}

/// `event(id)` then `/health/live`, `connections` keep-alive workers for
/// `seconds` each; statements per `event(id)` from the server's counter.
async fn read_event(
    base_url: &str,
    event_id: &str,
    connections: usize,
    seconds: u64,
) -> Result<Reads> {
    let statements_before = statements(base_url).await?;
    let event = hammer(base_url, connections, seconds, "event(id)", Some(event_id)).await?;
    let statements_after = statements(base_url).await?;
    let live = hammer(base_url, connections, seconds, "/health/live", None).await?;
    Ok(Reads {
        statements_per_request: (statements_after - statements_before) / event.transactions as f64,
        event,
        live,
    })
}

/// `giftdrop_db_statements_total` of the server (every outcome).
async fn statements(base_url: &str) -> Result<f64> {
    let text = reqwest::get(format!("{}/metrics", base_url.trim_end_matches('/')))
        .await
        .context("GET /metrics")?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("giftdrop_db_statements_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// Requests per second of `event(id)` (or `/health/live` without an
/// event) over `connections` workers for `seconds`.
async fn hammer(
    base_url: &str,
    connections: usize,
    seconds: u64,
    label: &str,
    event_id: Option<&str>,
) -> Result<Figures> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let workers = (0..connections).map(|_| {
        let latencies = Arc::clone(&latencies);
        let event_id = event_id.map(str::to_owned);
        let base_url = base_url.to_owned();
        tokio::spawn(async move {
            let api = Api::new(&base_url)?;
            let mut mine = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                match &event_id {
                    Some(id) => {
                        let data = api.execute(EVENT, json!({ "id": id })).await?;
                        ensure!(data["event"]["id"] == id.as_str(), "event(id) gave {data}");
                    }
                    None => api.live().await?,
                }
                mine.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            latencies.lock().await.extend(mine);
            Ok::<_, anyhow::Error>(())
        })
    });
    for worker in futures_util::future::join_all(workers).await {
        worker.context("a worker panicked")??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let latencies = sorted(std::mem::take(&mut *latencies.lock().await));
    Ok(Figures {
        label: label.to_owned(),
        transactions: u64::try_from(latencies.len()).unwrap_or(u64::MAX),
        tps: latencies.len() as f64 / elapsed,
        p50_ms: percentile(&latencies, 500),
        p99_ms: percentile(&latencies, 990),
        client_cpu_s: 0.0,
    })
}

/// Winners announced at once while subscribers watch.
const ANNOUNCE_CONCURRENCY: usize = 8;

struct Fanout {
    /// From the first attempt until every attempt was answered (INSTANT).
    announced_in: Option<Duration>,
    /// From the first attempt until every subscriber had every winner.
    delivered_in: Duration,
    /// CPU the server and the load generator used over `delivered_in`.
    server_cpu_ms: Option<f64>,
    client_cpu_ms: f64,
    deliveries: usize,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    max_ms: Option<f64>,
    /// The same, to the moment the kernel received each frame on the
    /// subscriber's socket, before the load generator read it.
    arrived_p50_ms: Option<f64>,
    arrived_p99_ms: Option<f64>,
    arrived_max_ms: Option<f64>,
    /// Per winner, until its last subscriber had it.
    last_p50_ms: Option<f64>,
    last_p99_ms: Option<f64>,
    /// Per winner, until it arrived on its first subscriber's socket: the
    /// pipeline before the fan-out (commit, relay, Redis, hub, live log).
    first_p50_ms: Option<f64>,
    first_p99_ms: Option<f64>,
}

/// A second event of `--prizes` units and as many verified participants;
/// `--subscribers` anonymous sockets subscribe to its `winnerAnnounced`;
/// every participant attempts (and wins) once it is LIVE, or, with
/// `--draw`, wins the draw when it ends. Every subscriber must receive
/// every winner, in order.
async fn announce(base_url: &str, args: &Args) -> Result<Fanout> {
    let count = usize::try_from(args.prizes).context("--prizes")?;
    let selection = if args.draw {
        // Long enough for the sockets to subscribe (about 4 ms each here).
        let subscribing = Duration::from_millis(4 * u64::try_from(args.subscribers)?);
        Selection::Draw(subscribing + Duration::from_secs(10))
    } else {
        Selection::Instant
    };
    let (event_id, host) = setup_event(base_url, args, count, selection).await?;
    let winners = setup_participants(base_url, &event_id, count).await?;
    let ws_url = crate::ws::endpoint(base_url);
    let query = format!(
        "subscription {{ winnerAnnounced(eventId: \"{event_id}\") {{ sequence announcedAt }} }}"
    );
    let subscribe = json!({ "id": crate::ws::SUBSCRIPTION_ID, "type": "subscribe", "payload": { "query": query } });
    let mut sockets = stream::iter(0..args.subscribers)
        .map(|_| crate::lean_ws::Subscriber::open(&ws_url, &subscribe))
        .buffer_unordered(200);
    let mut receiver = crate::lean_ws::Receiver::start(count)?;
    while let Some(socket) = sockets.next().await {
        receiver.add(socket?)?;
    }
    wait_for(
        &host,
        &event_id,
        |e| e["status"] == "LIVE",
        "the second event to go LIVE",
    )
    .await?;
    let cpu_before = (
        args.server_pid.map(|pid| cpu_ms(Some(pid))).transpose()?,
        cpu_ms(None)?,
    );
    println!(
        "winnerAnnounced: {} sockets subscribed; announcing",
        args.subscribers
    );
    let started = Instant::now();
    let announced_in = if args.draw {
        None
    } else {
        Some(attempt_all(&event_id, winners, args.announce_every_ms, started).await?)
    };
    let deadline = Duration::from_secs(60).saturating_sub(started.elapsed());
    let received = tokio::task::spawn_blocking(move || receiver.finish(deadline)).await??;
    let delivered_in = started.elapsed();
    let server_cpu_ms = match (args.server_pid, cpu_before.0) {
        (Some(pid), Some(before)) => Some(cpu_ms(Some(pid))? - before),
        _ => None,
    };
    let client_cpu_ms = cpu_ms(None)? - cpu_before.1;
    // Checked only now, so checking costs the deliveries no CPU. A draw's
    // winners commit together, after the last one's announcedAt.
    let committed = if args.draw {
        let first = received.first().context("no subscriber")?;
        let mut last = None;
        for frame in first.frames() {
            let (_, at) = winner(frame?.0)?.context("a protocol ping among the winners")?;
            last = last.max(Some(at));
        }
        last
    } else {
        None
    };
    let mut latencies = Vec::with_capacity(args.subscribers * count);
    let mut arrivals = Vec::with_capacity(args.subscribers * count);
    let mut last_by_winner = vec![0.0_f64; count];
    let mut first_by_winner = vec![f64::INFINITY; count];
    for frames in &received {
        let seen = latencies_of(frames, count, committed)?;
        for ((last, first), (arrived, read)) in last_by_winner
            .iter_mut()
            .zip(&mut first_by_winner)
            .zip(&seen)
        {
            *last = last.max(*read);
            *first = first.min(*arrived);
        }
        arrivals.extend(seen.iter().map(|(arrived, _)| *arrived));
        latencies.extend(seen.into_iter().map(|(_, read)| read));
    }
    let latencies = sorted(latencies);
    let arrivals = sorted(arrivals);
    let lasts = sorted(last_by_winner);
    let firsts = sorted(first_by_winner);
    Ok(Fanout {
        announced_in,
        delivered_in,
        server_cpu_ms,
        client_cpu_ms,
        deliveries: latencies.len(),
        p50_ms: percentile(&latencies, 500),
        p99_ms: percentile(&latencies, 990),
        max_ms: latencies.last().copied(),
        arrived_p50_ms: percentile(&arrivals, 500),
        arrived_p99_ms: percentile(&arrivals, 990),
        arrived_max_ms: arrivals.last().copied(),
        last_p50_ms: percentile(&lasts, 500),
        last_p99_ms: percentile(&lasts, 990),
        first_p50_ms: percentile(&firsts, 500),
        first_p99_ms: percentile(&firsts, 990),
    })
}

/// Every one of `winners` attempts (and must win), at most
/// [`ANNOUNCE_CONCURRENCY`] at once, the n-th starting no earlier than
/// `n * every_ms` after `started`; returns when the last was answered.
pub(crate) async fn attempt_all(
    event_id: &str,
    winners: Vec<Api>,
    every_ms: u64,
    started: Instant,
) -> Result<Duration> {
    let every = Duration::from_millis(every_ms);
    let start_at = |n: usize| {
        tokio::time::Instant::from_std(started) + every * u32::try_from(n).unwrap_or(u32::MAX)
    };
    stream::iter(winners.into_iter().enumerate())
        .map(|(n, api)| {
            let event_id = event_id.to_owned();
            async move {
                tokio::time::sleep_until(start_at(n)).await;
                let data = api
                    .execute(
                        "mutation($e: ID!) { attemptPrize(eventId: $e) { outcome } }",
                        json!({ "e": event_id }),
                    )
                    .await?;
                ensure!(
                    string_at(&data, "/attemptPrize/outcome")? == "WON",
                    "an announced attempt gave {data}"
                );
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(ANNOUNCE_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(started.elapsed())
}

/// One subscriber's winners: all `count` of them, each exactly once and
/// in sequence order, as their latencies from `announcedAt` (or from
/// `committed`, when all were committed together) to the moment the frame
/// arrived on the socket and to the moment it was read (ms), by sequence.
fn latencies_of(
    received: &crate::lean_ws::Received,
    count: usize,
    committed: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Vec<(f64, f64)>> {
    let mut latencies = Vec::with_capacity(count);
    for frame in received.frames() {
        let (text, came) = frame?;
        // The subscriber answered protocol pings itself.
        let (sequence, at) = winner(text)?.context("a protocol ping among the winners")?;
        ensure!(
            usize::try_from(sequence).ok() == Some(latencies.len() + 1),
            "got winner {sequence}, expected {}",
            latencies.len() + 1
        );
        let since = |then: chrono::DateTime<chrono::Utc>| {
            (then - committed.unwrap_or(at))
                .num_microseconds()
                .unwrap_or(0) as f64
                / 1000.0
        };
        latencies.push((since(came.arrived), since(came.read)));
    }
    ensure!(
        latencies.len() == count,
        "a subscriber had {} winners of {count}",
        latencies.len()
    );
    Ok(latencies)
}

#[derive(serde::Deserialize)]
struct WinnerData<'a> {
    #[serde(rename = "winnerAnnounced", borrow)]
    winner: Option<NextWinner<'a>>,
}

#[derive(serde::Deserialize)]
struct NextWinner<'a> {
    sequence: u64,
    #[serde(rename = "announcedAt")]
    announced_at: &'a str,
}

/// The winner of one text frame: its sequence and `announcedAt`; `None`
/// for a ping.
fn winner(text: &str) -> Result<Option<(u64, chrono::DateTime<chrono::Utc>)>> {
    let Some(data) = crate::ws::next_data::<WinnerData<'_>>(text)? else {
        return Ok(None);
    };
    let winner = data
        .winner
        .with_context(|| format!("a next without a winner: {text}"))?;
    Ok(Some((winner.sequence, winner.announced_at.parse()?)))
}
