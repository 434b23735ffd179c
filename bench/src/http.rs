//! The `http` scenario: throughput of a GraphQL query against a baseline
//! measured in the same run: `{ platform { currency } }` against the
//! liveness endpoint (`--pair platform`), or the signed-in user's wallet
//! balance against the cheapest signed-in query (`--pair wallet`).

use std::fmt;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;
use tokio::task::JoinSet;

use crate::api::{Api, string_at};
use crate::rss::cpu_ms;
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
    /// What is measured against what.
    #[arg(long, value_enum, default_value = "platform")]
    pair: Pair,
    /// Process id of the server: with it, the server's CPU time per
    /// request is reported too, which still compares the two targets when
    /// the load generator, not the server, limits the rate.
    #[arg(long)]
    server_pid: Option<u32>,
}

/// A measured target and its baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Pair {
    /// `{ platform { currency } }` against `GET /health/live`.
    Platform,
    /// `{ me { wallet { balance } } }` against `{ me { id } }`, one
    /// signed-in user per connection.
    Wallet,
}

impl Pair {
    /// (baseline, measured).
    fn targets(self) -> [Target; 2] {
        match self {
            Pair::Platform => [Target::Live, Target::Platform],
            Pair::Wallet => [Target::Me, Target::Wallet],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// `GET /health/live`.
    Live,
    /// `POST /graphql { platform { currency } }`.
    Platform,
    /// `{ me { id } }`: authentication and one user lookup.
    Me,
    /// `{ me { wallet { balance } } }`: the same plus the wallet row.
    Wallet,
}

impl Target {
    fn signed_in(self) -> bool {
        matches!(self, Target::Me | Target::Wallet)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Target::Live => "GET /health/live",
            Target::Platform => "POST /graphql { platform { currency } }",
            Target::Me => "POST /graphql { me { id } }",
            Target::Wallet => "POST /graphql { me { wallet { balance } } }",
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
    let [baseline_target, measured_target] = args.pair.targets();
    // One user per connection, signed up before the clock starts.
    let mut tokens = Vec::new();
    if measured_target.signed_in() {
        let api = Api::new(base_url)?;
        for _ in 0..args.connections.get() {
            tokens.push(api.register().await?.token);
        }
    }
    println!(
        "http: {} connections, {} s rounds, {} rounds per target\n",
        args.connections, args.seconds, args.rounds
    );
    println!("| round | target | requests | errors | req/s | server CPU us/request |");
    println!("|---|---|---|---|---|---|");
    let (mut baseline, mut measured) = (Vec::new(), Vec::new());
    let (mut baseline_cpu, mut measured_cpu) = (Vec::new(), Vec::new());
    let mut errors = 0;
    for round in 1..=args.rounds.get() {
        for target in [baseline_target, measured_target] {
            let cpu_before = args.server_pid.map(|pid| cpu_ms(Some(pid))).transpose()?;
            let (tally, elapsed) =
                round_of(base_url, target, args.connections.get(), &tokens, duration).await?;
            let rate = tally.ok as f64 / elapsed.as_secs_f64();
            let cpu_per_request = match (args.server_pid, cpu_before) {
                (Some(pid), Some(before)) => {
                    Some((cpu_ms(Some(pid))? - before) * 1000.0 / tally.ok.max(1) as f64)
                }
                _ => None,
            };
            let cpu = cpu_per_request.map_or_else(|| "-".to_owned(), |us| format!("{us:.1}"));
            println!(
                "| {round} | {target} | {} | {} | {rate:.0} | {cpu} |",
                tally.ok, tally.errors
            );
            if let Some(us) = cpu_per_request {
                if target == baseline_target {
                    baseline_cpu.push(us);
                } else {
                    measured_cpu.push(us);
                }
            }
            if let Some(error) = &tally.first_error {
                eprintln!("first error ({target}): {error}");
            }
            errors += tally.errors;
            if target == baseline_target {
                baseline.push(rate);
            } else {
                measured.push(rate);
            }
        }
    }
    let baseline = median(&baseline).context("no rounds")?;
    let measured = median(&measured).context("no rounds")?;
    println!("\nmedian req/s: {baseline_target} {baseline:.0}, {measured_target} {measured:.0}");
    println!("RATIO measured/baseline = {:.2}", measured / baseline);
    if let (Some(baseline_cpu), Some(measured_cpu)) = (median(&baseline_cpu), median(&measured_cpu))
    {
        println!(
            "server CPU per request: {baseline_target} {baseline_cpu:.1} us, {measured_target} {measured_cpu:.1} us; CPU RATIO baseline/measured = {:.2}",
            baseline_cpu / measured_cpu
        );
    }
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
    tokens: &[String],
    duration: Duration,
) -> Result<(Tally, Duration)> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = JoinSet::new();
    for n in 0..connections {
        let mut api = Api::new(base_url)?;
        if let Some(token) = tokens.get(n) {
            api = api.signed_in(token.clone());
        }
        workers.spawn(worker(api, target, deadline));
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
        Target::Me => {
            let data = api.execute("{ me { id } }", json!({})).await?;
            string_at(&data, "/me/id").map(drop)
        }
        Target::Wallet => {
            let data = api
                .execute("{ me { wallet { balance } } }", json!({}))
                .await?;
            string_at(&data, "/me/wallet/balance").map(drop)
        }
    }
}
