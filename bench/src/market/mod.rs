//! The `market` scenario: `purchaseCard` transactions per second at
//! `--buyers` concurrent buyers next to `pgbench -b tpcb-like` with as many
//! clients on the same Postgres in the same run, then `redeemCard` latency
//! and throughput at `--tills` concurrent tills redeeming the cards just
//! bought. Needs a running server with sandbox payments and raised rate
//! limits (`bench/run.sh market` starts one), and pgbench.
//!
//! Order: pgbench, purchases, redemptions, pgbench again; the baseline is
//! the mean of the two pgbench runs (as in the ledger scenario), so drift
//! during the run shows up as a gap between them rather than in the ratio.
//!
//! Setup goes through the public API only: the bootstrap admin logs in, a
//! new user registers a merchant, the admin approves it, its owner adds a
//! branch, a product of one denomination and the other tills as staff; every
//! buyer registers and tops up through the sandbox checkout. Every buyer
//! and every till is its own user on its own keep-alive connection, with a
//! fresh idempotency key per request. At the end the buyers' and the
//! merchant's balances must match what was measured.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures_util::{StreamExt, TryStreamExt, stream};
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};
use tokio::sync::{Barrier, Mutex};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::api::{Api, Session, string_at};
use crate::pgbench::{self, Figures, PGBENCH_DB};
use crate::rss::cpu_ms;
use crate::stats::{percentile, sorted};

mod load;
mod setup;

use load::*;
pub(crate) use setup::*;

/// Setup requests in flight at once (registration hashes a password).
const SETUP_CONCURRENCY: usize = 4;
/// Days a card stays valid: none expires during a run.
const VALIDITY_DAYS: u32 = 365;

const REGISTER_MERCHANT: &str =
    "mutation($i: RegisterMerchantInput!) { registerMerchant(input: $i) { id status } }";
const APPROVE_MERCHANT: &str =
    "mutation($id: ID!) { approveMerchant(id: $id) { id status serviceRateBps } }";
const ADD_BRANCH: &str =
    "mutation($m: ID!, $i: BranchInput!) { addBranch(merchantId: $m, input: $i) { id } }";
const ADD_STAFF: &str =
    "mutation($m: ID!, $e: String!) { addMerchantStaff(merchantId: $m, email: $e) { id } }";
const CREATE_PRODUCT: &str =
    "mutation($i: CardProductInput!) { createCardProduct(input: $i) { id denominations active } }";
const INITIATE_TOPUP: &str =
    "mutation($i: TopupInput!) { initiateTopup(input: $i) { amount status checkoutUrl } }";
const BALANCE: &str = "{ me { wallet { balance } } }";
const MERCHANT_BALANCE: &str = "query($m: ID!) { merchant(id: $m) { wallet { balance } } }";
const PURCHASE: &str =
    "mutation($i: PurchaseCardInput!) { purchaseCard(input: $i) { id code pin status faceValue } }";
const REDEEM: &str = "mutation($i: RedeemCardInput!) { redeemCard(input: $i) { id card { id status } escrow { status merchantPayout } } }";

/// Options of the `market` scenario.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Concurrent buyers, each its own user, wallet and keep-alive
    /// connection (and pgbench clients).
    #[arg(long, default_value = "32")]
    buyers: NonZeroUsize,
    /// Concurrent tills, each a staff user of the merchant on its own
    /// keep-alive connection.
    #[arg(long, default_value = "16")]
    tills: NonZeroUsize,
    /// Length of each measured run, seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Face value of every card, in minor units (the product's one
    /// denomination).
    #[arg(long, default_value_t = 5000)]
    face_value: u64,
    /// What each buyer's wallet is topped up with, in minor units: no
    /// purchase ever fails for funds.
    #[arg(long, default_value_t = 10_000_000_000)]
    funding: u64,
    /// Process id of the server, whose CPU time is reported.
    #[arg(long)]
    server_pid: Option<u32>,
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

/// The merchant, branch and product every purchase and redemption uses.
pub(crate) struct Market {
    /// The staff user who registered the merchant.
    owner: Api,
    owner_token: String,
    merchant_id: String,
    branch_id: String,
    pub(crate) product_id: String,
    /// What the merchant is credited per redeemed card (FLOWS.md §3).
    payout: u64,
}

/// A card bought in the purchase run, to be redeemed.
struct Bought {
    id: String,
    code: String,
    pin: String,
}

/// What one buyer or till did.
#[derive(Default)]
struct Worker {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    /// Latency of each successful request, ms.
    latencies: Vec<f64>,
    /// Cards bought (buyers only).
    cards: Vec<Bought>,
    /// The pool of cards to redeem ran dry (tills only).
    exhausted: bool,
}

impl Worker {
    fn fail(&mut self, err: &anyhow::Error) {
        self.errors += 1;
        self.first_error.get_or_insert_with(|| format!("{err:#}"));
    }
}

/// One measured run against the server.
struct Run {
    figures: Figures,
    errors: u64,
    first_error: Option<String>,
    /// Server CPU per successful request, ms (with `--server-pid`).
    server_cpu_ms: Option<f64>,
    /// The workers' clients and successful requests, in spawn order.
    workers: Vec<(Api, u64)>,
    /// Every card bought.
    cards: Vec<Bought>,
    /// Some till found no card left to redeem.
    exhausted: bool,
}

/// Runs the scenario, prints its table and ratios, and drops the pgbench
/// database whatever happened.
pub async fn run(base_url: &str, args: &Args) -> Result<()> {
    ensure!(args.seconds > 0, "--seconds must be positive");
    ensure!(args.face_value > 0, "--face-value must be positive");
    ensure!(
        args.funding >= args.face_value,
        "--funding must cover at least one card"
    );
    pgbench::with_admin(&args.database_url, &[PGBENCH_DB], |admin| async move {
        scenario(base_url, &admin, args).await
    })
    .await
}

async fn scenario(base_url: &str, admin: &DatabaseConnection, args: &Args) -> Result<()> {
    let duration = Duration::from_secs(args.seconds);
    let clients = args.buyers.get();
    let pgbench_url = pgbench::database_url(&args.database_url, PGBENCH_DB)?;

    let started = Instant::now();
    let market = setup_market(
        base_url,
        &args.admin_email,
        &args.admin_password,
        args.face_value,
    )
    .await?;
    let tills = setup_tills(base_url, &market, args.tills.get()).await?;
    let buyers = setup_buyers(base_url, args.funding, clients).await?;
    println!(
        "market: set up through the API in {:.1?}: merchant {}, {} tills (staff), {} buyers funded with {} each; cards of {} with a merchant payout of {}",
        started.elapsed(),
        market.merchant_id,
        tills.len(),
        buyers.len(),
        args.funding,
        args.face_value,
        market.payout
    );
    // As in the ledger scenario: a tpcb-like branch row per client.
    let started = Instant::now();
    pgbench::setup_pgbench(admin, &pgbench_url, clients).await?;
    println!(
        "pgbench: initialized with -s {clients} (= --buyers, so tpcb-like has a branch per client) in {:.1?}",
        started.elapsed()
    );
    println!(
        "\nmarket: {clients} buyers, {} tills, {} s per run; pgbench -b tpcb-like -c {clients} -j {} -T {} -n\n",
        tills.len(),
        args.seconds,
        clients.min(2),
        args.seconds
    );

    let pg1 = pgbench::pgbench(&pgbench_url, clients, args.seconds, "pgbench #1").await?;
    let product: Arc<str> = Arc::from(market.product_id.as_str());
    let face = Arc::<str>::from(args.face_value.to_string());
    let mut purchases = measure(
        format!("purchaseCard ({clients} buyers)"),
        buyers,
        args.server_pid,
        |api, start| {
            buyer(
                api,
                Arc::clone(&product),
                Arc::clone(&face),
                start,
                duration,
            )
        },
    )
    .await?;
    let bought = purchases.figures.transactions;
    let pool = Arc::new(Mutex::new(std::mem::take(&mut purchases.cards)));
    let till_count = tills.len();
    let branch: Arc<str> = Arc::from(market.branch_id.as_str());
    let payout = Arc::<str>::from(market.payout.to_string());
    let redemptions = measure(
        format!("redeemCard ({till_count} tills)"),
        tills,
        args.server_pid,
        |api, start| {
            till(
                api,
                Arc::clone(&pool),
                Arc::clone(&branch),
                Arc::clone(&payout),
                start,
                duration,
            )
        },
    )
    .await?;
    let pg2 = pgbench::pgbench(&pgbench_url, clients, args.seconds, "pgbench #2").await?;

    println!(
        "| run | transactions | errors | tx/s | p50 ms | p99 ms | client CPU s | server CPU ms/tx |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!("{}", row(&pg1, 0, None));
    println!(
        "{}",
        row(
            &purchases.figures,
            purchases.errors,
            purchases.server_cpu_ms
        )
    );
    println!(
        "{}",
        row(
            &redemptions.figures,
            redemptions.errors,
            redemptions.server_cpu_ms
        )
    );
    println!("{}", row(&pg2, 0, None));
    let baseline = pgbench::baseline(&pg1, &pg2);
    println!(
        "RATIO purchaseCard/pgbench = {:.3}",
        purchases.figures.tps / baseline
    );
    println!(
        "RATIO redeemCard/pgbench = {:.3}",
        redemptions.figures.tps / baseline
    );
    if redemptions.exhausted {
        println!(
            "note: all {bought} cards bought were redeemed before the {} s were up; the redemption rate is over the time it ran",
            args.seconds
        );
    }
    let errors = purchases.errors + redemptions.errors;
    for (label, run) in [("purchaseCard", &purchases), ("redeemCard", &redemptions)] {
        if let Some(error) = &run.first_error {
            eprintln!("first error ({label}): {error}");
        }
    }
    if errors > 0 {
        bail!("{errors} requests failed: the run does not count");
    }
    verify(
        &purchases.workers,
        args,
        &market,
        redemptions.figures.transactions,
    )
    .await?;
    println!("errors=0");
    Ok(())
}

/// A markdown table row.
fn row(figures: &Figures, errors: u64, server_cpu_ms: Option<f64>) -> String {
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
    format!(
        "| {} | {} | {errors} | {:.0} | {} | {} | {:.1} | {} |",
        figures.label,
        figures.transactions,
        figures.tps,
        ms(figures.p50_ms),
        ms(figures.p99_ms),
        figures.client_cpu_s,
        ms(server_cpu_ms)
    )
}
