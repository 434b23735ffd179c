//! Load generator for the giftdrop server: HTTP throughput, memory per idle
//! subscription, subscription fan-out latency, ledger posting throughput
//! against pgbench, and gift card purchases and redemptions through the API
//! against pgbench. Every response is checked; a run with any error exits
//! non-zero.

mod api;
mod fanout;
mod giveaway;
mod http;
mod idle;
mod lean_ws;
mod ledger;
mod market;
mod peer;
mod pgbench;
mod rss;
mod stats;
mod ws;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "Benchmarks a running giftdrop server")]
struct Cli {
    /// Base URL of the server.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8100")]
    url: String,
    /// Path of the GraphQL WebSocket endpoint the sockets open:
    /// `/graphql/stock-ws` for async-graphql-axum's stock route (a server
    /// built with `--features stock-ws`).
    #[arg(long, global = true, default_value = "/graphql/ws")]
    ws_path: String,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Requests per second of `{ platform { currency } }` against `/health/live`.
    Http(http::Args),
    /// Server memory per idle `meUpdated` subscription, one per socket.
    WsIdle(idle::Args),
    /// Latency of one change reaching every subscriber of a user.
    Fanout(fanout::Args),
    /// Postings per second of `ledger::post` against `pgbench -b tpcb-like`
    /// (Postgres only, no server; ignores `--url`).
    Ledger(ledger::Args),
    /// `purchaseCard` transactions per second against `pgbench -b
    /// tpcb-like`, then `redeemCard` latency, through the API.
    Market(market::Args),
    /// The INSTANT attempt storm against `pgbench -b tpcb-like` at the same
    /// concurrency, then `event(id)` against `/health/live`.
    Giveaway(giveaway::Args),
    /// Seeds the events `bench/peer.sh` reads on giftdrop and PostGraphile.
    PeerSeed(peer::SeedArgs),
    /// Announces winners on a LIVE INSTANT event at a steady pace.
    PeerAnnounce(peer::AnnounceArgs),
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    // reqwest is built with rustls and no default provider in this workspace.
    let _ = rustls::crypto::ring::default_provider().install_default();
    ws::use_path(&cli.ws_path);
    match &cli.scenario {
        Scenario::Http(args) => http::run(&cli.url, args).await,
        Scenario::WsIdle(args) => idle::run(&cli.url, args).await,
        Scenario::Fanout(args) => fanout::run(&cli.url, args).await,
        Scenario::Ledger(args) => ledger::run(args).await,
        Scenario::Market(args) => market::run(&cli.url, args).await,
        Scenario::Giveaway(args) => giveaway::run(&cli.url, args).await,
        Scenario::PeerSeed(args) => peer::seed(&cli.url, args).await,
        Scenario::PeerAnnounce(args) => peer::announce(&cli.url, args).await,
    }
}
