//! The `fanout` scenario: how long one account change takes to reach every
//! socket subscribed to that account, next to the mutation's own round trip.

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

use crate::api::{Api, RoleChange};
use crate::rss::{cpu_ms, mib, rss_kib};
use crate::stats::{median, percentile, sorted};
use crate::ws::{Fleet, endpoint};

/// The role toggled on the subscribed user, one change per message.
const ROLE: &str = "HOST";
/// Longest wait for every subscriber to receive one message.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between messages.
const SETTLE: Duration = Duration::from_secs(1);

/// Options of the `fanout` scenario.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Sockets subscribed to `meUpdated` of the same user.
    #[arg(long, default_value = "10000")]
    subscribers: NonZeroUsize,
    /// Changes to publish, alternately granting and revoking HOST.
    #[arg(long, default_value = "5")]
    messages: NonZeroUsize,
    /// Give every socket a distinct operation, so each runs its own
    /// execution (no shared serialization).
    #[arg(long)]
    distinct: bool,
    /// Process id of the server, whose RSS is reported.
    #[arg(long)]
    server_pid: u32,
    /// The bootstrap admin, who changes the roles.
    #[arg(long, default_value = "admin@bench.local")]
    admin_email: String,
    /// Password of the bootstrap admin.
    #[arg(long, default_value = "admin-password-1")]
    admin_password: String,
}

/// Delivery of one message, in milliseconds.
struct Delivery {
    change: RoleChange,
    mutation_rtt: f64,
    first: f64,
    p50: f64,
    p99: f64,
    max: f64,
    server_cpu: f64,
    client_cpu: f64,
}

/// Runs the scenario and prints per-message and aggregated latencies.
pub async fn run(base_url: &str, args: &Args) -> Result<()> {
    let count = args.subscribers.get();
    let user = Api::new(base_url)?.register().await?;
    let admin = Api::new(base_url)?;
    let token = admin.login(&args.admin_email, &args.admin_password).await?;
    let admin = admin.signed_in(token);
    let rss_before = rss_kib(args.server_pid)?;
    let started = Instant::now();
    let mut fleet =
        Fleet::open(&endpoint(base_url), &user.token, count, args.distinct, ROLE).await?;
    println!(
        "fanout: {count} sockets subscribed to one user's meUpdated, opened in {:.2?}; server RSS {:.1} -> {:.1} MiB\n",
        started.elapsed(),
        mib(rss_before),
        mib(rss_kib(args.server_pid)?)
    );
    println!(
        "| message | change | mutation RTT ms | first ms | p50 ms | p99 ms | max ms | received | server CPU ms | load generator CPU ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut deliveries = Vec::new();
    for message in 1..=args.messages.get() {
        tokio::time::sleep(SETTLE).await;
        let change = if message % 2 == 1 {
            RoleChange::Grant
        } else {
            RoleChange::Revoke
        };
        let delivery = publish(&admin, &mut fleet, &user.user_id, change, args.server_pid)
            .await
            .with_context(|| format!("message {message}"))?;
        println!(
            "| {message} | {:?} {ROLE} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {count}/{count} | {:.0} | {:.0} |",
            delivery.change,
            delivery.mutation_rtt,
            delivery.first,
            delivery.p50,
            delivery.p99,
            delivery.max,
            delivery.server_cpu,
            delivery.client_cpu
        );
        deliveries.push(delivery);
    }
    fleet.close().await;
    summarize(&deliveries, count)
}

/// Prints the medians over messages of each per-message figure.
fn summarize(deliveries: &[Delivery], subscribers: usize) -> Result<()> {
    let median_of = |figure: fn(&Delivery) -> f64| {
        median(&deliveries.iter().map(figure).collect::<Vec<_>>()).context("no messages")
    };
    let rtt = median_of(|d| d.mutation_rtt)?;
    let first = median_of(|d| d.first)?;
    let p50 = median_of(|d| d.p50)?;
    let p99 = median_of(|d| d.p99)?;
    let max = median_of(|d| d.max)?;
    println!(
        "\nmedian over messages: mutation RTT {rtt:.2} ms, first {first:.2} ms, p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms"
    );
    println!(
        "server CPU per message {:.0} ms ({:.1} us per delivery), load generator {:.0} ms",
        median_of(|d| d.server_cpu)?,
        median_of(|d| d.server_cpu)? * 1000.0 / subscribers as f64,
        median_of(|d| d.client_cpu)?,
    );
    println!(
        "FANOUT p99/mutation_rtt = {:.2}, max/mutation_rtt = {:.2}",
        p99 / rtt,
        max / rtt
    );
    Ok(())
}

/// Sends one role change and waits until every subscriber received it.
async fn publish(
    admin: &Api,
    fleet: &mut Fleet,
    user_id: &str,
    change: RoleChange,
    server_pid: u32,
) -> Result<Delivery> {
    let (server_cpu, client_cpu) = (cpu_ms(Some(server_pid))?, cpu_ms(None)?);
    fleet.expect()?;
    let t0 = Instant::now();
    admin.change_role(change, user_id, ROLE).await?;
    let mutation_rtt = millis(t0.elapsed());
    let latencies = sorted(collect(fleet, t0, change).await?);
    let server_cpu = cpu_ms(Some(server_pid))? - server_cpu;
    let client_cpu = cpu_ms(None)? - client_cpu;
    let at = |per_mille| percentile(&latencies, per_mille).context("no deliveries");
    Ok(Delivery {
        change,
        mutation_rtt,
        first: at(0)?,
        p50: at(500)?,
        p99: at(990)?,
        max: at(1000)?,
        server_cpu,
        client_cpu,
    })
}

/// Latency from `t0` of each subscriber's copy of `change`: exactly one
/// each, showing the change.
async fn collect(fleet: &mut Fleet, t0: Instant, change: RoleChange) -> Result<Vec<f64>> {
    let deadline = tokio::time::Instant::from_std(t0) + DELIVERY_TIMEOUT;
    let received = fleet.collect(deadline).await?;
    received
        .iter()
        .enumerate()
        .map(|(subscriber, next)| {
            ensure!(
                next.has_role == matches!(change, RoleChange::Grant),
                "subscriber {subscriber} got roles that do not show the {change:?} of {ROLE}"
            );
            Ok(millis(next.at.saturating_duration_since(t0)))
        })
        .collect()
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
