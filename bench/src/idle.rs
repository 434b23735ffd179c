//! The `ws-idle` scenario: server memory per idle `meUpdated` subscription.

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::api::Api;
use crate::rss::{mib, rss_kib};
use crate::ws::{Fleet, endpoint};

/// Time for the server to settle before and after measuring.
const SETTLE: Duration = Duration::from_secs(2);

/// Options of the `ws-idle` scenario.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Sockets to open, one subscription each.
    #[arg(long, default_value = "10000")]
    subscriptions: NonZeroUsize,
    /// Give every socket a distinct operation, so none share an execution
    /// (the worst case; by default all run the same one, as many tabs
    /// watching one page do).
    #[arg(long)]
    distinct: bool,
    /// Process id of the server, whose RSS is measured.
    #[arg(long)]
    server_pid: u32,
}

/// Runs the scenario and prints the memory figures.
pub async fn run(base_url: &str, args: &Args) -> Result<()> {
    let count = args.subscriptions.get();
    let session = Api::new(base_url)?.register().await?;
    tokio::time::sleep(SETTLE).await;
    let before = rss_kib(args.server_pid)?;

    let started = Instant::now();
    let fleet = Fleet::open(
        &endpoint(base_url),
        &session.token,
        count,
        args.distinct,
        "HOST",
    )
    .await?;
    let opened_in = started.elapsed();
    tokio::time::sleep(SETTLE).await;
    let after = rss_kib(args.server_pid)?;
    fleet.ensure_quiet()?;

    fleet.close().await;
    tokio::time::sleep(SETTLE).await;
    let closed = rss_kib(args.server_pid)?;

    let per_subscription = (after.saturating_sub(before) * 1024) as f64 / count as f64;
    let kind = if args.distinct {
        "distinct"
    } else {
        "identical"
    };
    println!(
        "ws-idle: {count} sockets x 1 meUpdated subscription ({kind} operations), opened in {opened_in:.2?}\n"
    );
    println!("| server RSS | MiB |");
    println!("|---|---|");
    println!("| before | {:.1} |", mib(before));
    println!("| with {count} subscriptions | {:.1} |", mib(after));
    println!("| after closing them | {:.1} |", mib(closed));
    println!(
        "\nPER_SUBSCRIPTION = {per_subscription:.0} bytes ({:.2} KiB)",
        per_subscription / 1024.0
    );
    Ok(())
}
