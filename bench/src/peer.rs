//! Data for `bench/peer.sh`, which measures `event(id)` on giftdrop
//! against PostGraphile on the same database. Everything goes through the
//! API, with the setup of the `giveaway` scenario.
//!
//! `peer-seed` writes, under `--out`:
//! - `same.txt`: one event per measurement window of the same-event case
//!   (each `--same-lines` prize lines of `--same-units`, `--same-winners`
//!   winners already announced), and for each `announce-<id>.tokens`: the
//!   tokens of verified participants who have not attempted yet, so that
//!   `peer-announce` can announce more winners while that window runs;
//! - `random.txt`: `--events` events of `--min-winners`..=`--max-winners`
//!   winners each (every unit won), read one at random per request.
//!
//! The same users join every event (a user wins at most once per event),
//! so the setup registers only as many users as the largest event needs.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use futures_util::{StreamExt, TryStreamExt, stream};
use rand::Rng;
use serde_json::json;

use crate::api::Api;
use crate::giveaway::{
    FACE_VALUE, SETUP_CONCURRENCY, Selection, attempt_all, join_all, publish_event, register_users,
    setup_host, wait_for,
};

/// Options of `peer-seed`.
#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    /// Events of the same-event case (one per measurement window, so that
    /// each window announces winners into an event of its own).
    #[arg(long, default_value_t = 1)]
    same_events: usize,
    /// Prize lines of each same-event event.
    #[arg(long, default_value_t = 10)]
    same_lines: u64,
    /// Units of each of those lines.
    #[arg(long, default_value_t = 22)]
    same_units: u64,
    /// Winners announced before the measurement starts.
    #[arg(long, default_value_t = 100)]
    same_winners: usize,
    /// Events of the random-event case.
    #[arg(long, default_value_t = 300)]
    events: usize,
    /// Fewest winners of a random-case event.
    #[arg(long, default_value_t = 10)]
    min_winners: u64,
    /// Most winners of a random-case event.
    #[arg(long, default_value_t = 20)]
    max_winners: u64,
    /// Directory the event ids and tokens are written to.
    #[arg(long)]
    out: PathBuf,
    /// The bootstrap admin, who approves the merchant.
    #[arg(long, default_value = "admin@bench.local")]
    admin_email: String,
    /// Password of the bootstrap admin.
    #[arg(long, default_value = "admin-password-1")]
    admin_password: String,
}

/// Options of `peer-announce`.
#[derive(Debug, clap::Args)]
pub struct AnnounceArgs {
    /// The LIVE INSTANT event winners are announced on.
    #[arg(long)]
    event: String,
    /// File of bearer tokens (one a line) of its verified participants
    /// who have not attempted yet; each attempts once and must win.
    #[arg(long)]
    tokens: PathBuf,
    /// Milliseconds between the starts of two attempts (100: ~10/s).
    #[arg(long, default_value_t = 100)]
    every_ms: u64,
}

/// Seeds both cases through the API and writes their ids under `--out`.
pub async fn seed(base_url: &str, args: &SeedArgs) -> Result<()> {
    ensure!(
        args.min_winners >= 1 && args.min_winners <= args.max_winners,
        "--min-winners must be between 1 and --max-winners"
    );
    let started = Instant::now();
    let same_units = args.same_lines * args.same_units;
    let same_units_usize = usize::try_from(same_units)?;
    ensure!(
        args.same_winners <= same_units_usize,
        "more winners than units"
    );
    let budget =
        (same_units * args.same_events as u64 + args.max_winners * args.events as u64) * FACE_VALUE;
    let (host, product_id) =
        setup_host(base_url, &args.admin_email, &args.admin_password, budget).await?;
    let users = register_users(
        base_url,
        same_units_usize.max(usize::try_from(args.max_winners)?),
    )
    .await?;
    std::fs::create_dir_all(&args.out)?;

    let mut rng = rand::rng();
    let winners: Vec<u64> = (0..args.events)
        .map(|_| rng.random_range(args.min_winners..=args.max_winners))
        .collect();
    let now = chrono::Utc::now();
    // Starting now: joining and attempting are open while LIVE.
    let same_lines = vec![args.same_units; usize::try_from(args.same_lines)?];
    let mut same = Vec::new();
    for _ in 0..args.same_events {
        same.push(publish_event(&host, &product_id, &same_lines, now, Selection::Instant).await?);
    }
    let random: Vec<String> = stream::iter(&winners)
        .map(|w| {
            // Two prize lines, every unit won.
            let lines = [w / 2, w - w / 2];
            let (host, product_id) = (&host, &product_id);
            async move { publish_event(host, product_id, &lines, now, Selection::Instant).await }
        })
        .buffered(SETUP_CONCURRENCY)
        .try_collect()
        .await?;
    println!(
        "peer-seed: {} + {} events published in {:.1?}",
        same.len(),
        random.len(),
        started.elapsed()
    );

    for event_id in &same {
        let joined = &users[..same_units_usize];
        win(&host, event_id, joined, args.same_winners).await?;
        let tokens: Vec<&str> = joined[args.same_winners..]
            .iter()
            .filter_map(Api::token)
            .collect();
        std::fs::write(
            args.out.join(format!("announce-{event_id}.tokens")),
            tokens.join("\n") + "\n",
        )?;
    }
    stream::iter(random.iter().zip(&winners))
        .map(|(event_id, w)| {
            let (host, users) = (&host, &users);
            async move {
                let count = usize::try_from(*w)?;
                win(host, event_id, &users[..count], count).await
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    std::fs::write(args.out.join("same.txt"), same.join("\n") + "\n")?;
    std::fs::write(args.out.join("random.txt"), random.join("\n") + "\n")?;
    println!(
        "peer-seed: {} same-event events ({} lines of {} units, {} winners), {} random events \
         ({}..={} winners) set up through the API in {:.1?}",
        same.len(),
        args.same_lines,
        args.same_units,
        args.same_winners,
        random.len(),
        args.min_winners,
        args.max_winners,
        started.elapsed()
    );
    Ok(())
}

/// `users` join `event_id` once it is LIVE, and the first `winners` of
/// them attempt (and win).
async fn win(host: &Api, event_id: &str, users: &[Api], winners: usize) -> Result<()> {
    wait_for(
        host,
        event_id,
        |e| e["status"] == "LIVE",
        "the event to go LIVE",
    )
    .await?;
    join_all(users, event_id).await?;
    attempt_all(event_id, users[..winners].to_vec(), 0, Instant::now()).await?;
    let data = host
        .execute(
            "query($id: ID!) { event(id: $id) { prizesAwarded } }",
            json!({ "id": event_id }),
        )
        .await?;
    ensure!(
        data.pointer("/event/prizesAwarded") == Some(&json!(winners)),
        "event {event_id} shows {data} after {winners} wins"
    );
    Ok(())
}

/// Announces one winner every `--every-ms` on `--event` until every token
/// has attempted (or the process is stopped).
pub async fn announce(base_url: &str, args: &AnnounceArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.tokens)
        .with_context(|| format!("reading {}", args.tokens.display()))?;
    let users: Vec<Api> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|token| Ok(Api::new(base_url)?.signed_in(token.to_owned())))
        .collect::<Result<_>>()?;
    let count = users.len();
    let took = attempt_all(&args.event, users, args.every_ms, Instant::now()).await?;
    println!(
        "peer-announce: {count} winners announced on {} in {took:.1?}",
        args.event
    );
    Ok(())
}
