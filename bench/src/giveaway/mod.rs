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
use crate::market::{fund, key, setup_market};
use crate::pgbench::{self, Figures, PGBENCH_DB};
use crate::rss::cpu_ms;
use crate::stats::{percentile, sorted};

mod announce;
mod load;
mod setup;

pub(crate) use announce::*;
use load::*;
pub(crate) use setup::*;

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
    pgbench::with_admin(&args.database_url, &[PGBENCH_DB], |admin| async move {
        scenario(base_url, &admin, args).await
    })
    .await
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
    let pgbench_url = pgbench::database_url(&args.database_url, PGBENCH_DB)?;
    pgbench::setup_pgbench(admin, &pgbench_url, clients).await?;
    let pg1 = pgbench::pgbench(&pgbench_url, clients, args.seconds, "pgbench #1").await?;
    let storm = storm(participants, &event_id, clients).await?;
    let pg2 = pgbench::pgbench(&pgbench_url, clients, args.seconds, "pgbench #2").await?;

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
