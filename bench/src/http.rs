//! The `http` scenario: throughput of a cheap GraphQL query against the
//! liveness endpoint, as a ratio measured in one run.

use std::fmt;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;
use tokio::task::JoinSet;

use crate::api::{Api, string_at};
use crate::stats::median;

/// Options of the `http` scenario.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Concurrent keep-alive connections, one worker each.
    #[arg(long, default_value = "64")]
    connections: NonZeroUsize,
    /// Length of one round, seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Rounds per target; targets alternate round by round.
    #[arg(long, default_value = "2")]
    rounds: NonZeroUsize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// `GET /health/live`, the baseline.
    Live,
    /// `POST /graphql { platform { currency } }`.
    Platform,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Target::Live => "GET /health/live",
            Target::Platform => "POST /graphql { platform { currency } }",
        })
    }
}

/// What one worker or one round did.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn record(&mut self, outcome: Result<()>) {
        match outcome {
            Ok(()) => self.ok += 1,
            Err(err) => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| format!("{err:#}"));
            }
        }
    }

    fn add(&mut self, other: Tally) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
    }
}

/// Runs the scenario and prints its table and ratio.
pub async fn run(base_url: &str, args: &Args) -> Result<()> {
    let duration = Duration::from_secs(args.seconds);
    println!(
        "http: {} connections, {} s rounds, {} rounds per target\n",
        args.connections, args.seconds, args.rounds
    );
    println!("| round | target | requests | errors | req/s |");
    println!("|---|---|---|---|---|");
    let (mut live, mut platform) = (Vec::new(), Vec::new());
    let mut errors = 0;
    for round in 1..=args.rounds.get() {
        for target in [Target::Live, Target::Platform] {
            let (tally, elapsed) =
                round_of(base_url, target, args.connections.get(), duration).await?;
            let rate = tally.ok as f64 / elapsed.as_secs_f64();
            println!(
                "| {round} | {target} | {} | {} | {rate:.0} |",
                tally.ok, tally.errors
            );
            if let Some(error) = &tally.first_error {
                eprintln!("first error ({target}): {error}");
            }
            errors += tally.errors;
            match target {
                Target::Live => live.push(rate),
                Target::Platform => platform.push(rate),
            }
        }
    }
    let live = median(&live).context("no rounds")?;
    let platform = median(&platform).context("no rounds")?;
    println!("\nmedian req/s: live {live:.0}, platform {platform:.0}");
    println!("RATIO platform/live = {:.2}", platform / live);
    if errors > 0 {
        bail!("{errors} requests failed: the run does not count");
    }
    Ok(())
}

/// `connections` workers hitting `target` for `duration`; their tally and
/// the time until the last one finished.
async fn round_of(
    base_url: &str,
    target: Target,
    connections: usize,
    duration: Duration,
) -> Result<(Tally, Duration)> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = JoinSet::new();
    for _ in 0..connections {
        workers.spawn(worker(Api::new(base_url)?, target, deadline));
    }
    let mut tally = Tally::default();
    while let Some(done) = workers.join_next().await {
        tally.add(done.context("worker panicked")?);
    }
    Ok((tally, started.elapsed()))
}

/// One connection sending requests back to back until `deadline`.
async fn worker(api: Api, target: Target, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    while Instant::now() < deadline {
        tally.record(hit(&api, target).await);
    }
    tally
}

async fn hit(api: &Api, target: Target) -> Result<()> {
    match target {
        Target::Live => api.live().await,
        Target::Platform => {
            let data = api.execute("{ platform { currency } }", json!({})).await?;
            string_at(&data, "/platform/currency").map(drop)
        }
    }
}
