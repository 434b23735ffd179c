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
use crate::ledger::{self, Figures, PGBENCH_DB};
use crate::rss::cpu_ms;
use crate::stats::{percentile, sorted};

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

async fn scenario(base_url: &str, admin: &DatabaseConnection, args: &Args) -> Result<()> {
    let duration = Duration::from_secs(args.seconds);
    let clients = args.buyers.get();
    let pgbench_url = ledger::database_url(&args.database_url, PGBENCH_DB)?;

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
    ledger::setup_pgbench(admin, &pgbench_url, clients).await?;
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

    let pg1 = ledger::pgbench(&pgbench_url, clients, args.seconds, "pgbench #1").await?;
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
    let pg2 = ledger::pgbench(&pgbench_url, clients, args.seconds, "pgbench #2").await?;

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
    let baseline = f64::midpoint(pg1.tps, pg2.tps);
    println!(
        "\npgbench baseline (mean of #1 and #2) = {baseline:.0} tps (#1 {:.0}, #2 {:.0}, drift {:+.1}%)",
        pg1.tps,
        pg2.tps,
        (pg2.tps / pg1.tps - 1.0) * 100.0
    );
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

/// The merchant (approved by the admin), its branch and a product of the
/// one denomination `face_value`.
pub(crate) async fn setup_market(
    base_url: &str,
    admin_email: &str,
    admin_password: &str,
    face_value: u64,
) -> Result<Market> {
    let admin = Api::new(base_url)?;
    let token = admin.login(admin_email, admin_password).await?;
    let admin = admin.signed_in(token);
    let owner = Api::new(base_url)?;
    let session = owner.register().await?;
    let owner_token = session.token;
    let owner = owner.signed_in(owner_token.clone());

    let suffix = Uuid::new_v4().simple().to_string();
    let input = json!({ "name": format!("Bench Market {suffix}"), "payoutAccount": "0123456789" });
    let data = owner
        .execute(REGISTER_MERCHANT, json!({ "i": input }))
        .await
        .context("registerMerchant")?;
    let merchant_id = string_at(&data, "/registerMerchant/id")?;
    let data = admin
        .execute(APPROVE_MERCHANT, json!({ "id": merchant_id }))
        .await
        .context("approveMerchant")?;
    let status = string_at(&data, "/approveMerchant/status")?;
    ensure!(status == "ACTIVE", "approveMerchant left it {status}");
    let service_rate = data
        .pointer("/approveMerchant/serviceRateBps")
        .and_then(Value::as_u64)
        .with_context(|| format!("no serviceRateBps in {data}"))?;

    let input = json!({ "name": "Till row", "address": "1 Bench Street" });
    let data = owner
        .execute(ADD_BRANCH, json!({ "m": merchant_id, "i": input }))
        .await
        .context("addBranch")?;
    let branch_id = string_at(&data, "/addBranch/id")?;

    let face = face_value.to_string();
    let input = json!({
        "merchantId": merchant_id,
        "name": "Bench card",
        "description": "Bought and redeemed by giftdrop-bench",
        "denominations": [face],
        "validityDays": VALIDITY_DAYS,
    });
    let data = owner
        .execute(CREATE_PRODUCT, json!({ "i": input }))
        .await
        .context("createCardProduct")?;
    ensure!(
        data.pointer("/createCardProduct/active") == Some(&Value::Bool(true))
            && data.pointer("/createCardProduct/denominations") == Some(&json!([face])),
        "createCardProduct gave {data}"
    );
    let product_id = string_at(&data, "/createCardProduct/id")?;

    let data = owner
        .execute("{ platform { depositFeeBps } }", json!({}))
        .await
        .context("platform")?;
    let deposit_fee = data
        .pointer("/platform/depositFeeBps")
        .and_then(Value::as_u64)
        .with_context(|| format!("no depositFeeBps in {data}"))?;
    Ok(Market {
        owner,
        owner_token,
        merchant_id,
        branch_id,
        product_id,
        payout: merchant_payout(face_value, deposit_fee, service_rate)?,
    })
}

/// `amount - depositFee - serviceFee` of FLOWS.md §3.
fn merchant_payout(amount: u64, deposit_fee_bps: u64, service_rate_bps: u64) -> Result<u64> {
    let half_up = |value: u128, bps: u64| (value * u128::from(bps) + 5_000) / 10_000;
    let amount = u128::from(amount);
    let deposit_fee = half_up(amount, deposit_fee_bps);
    let net = amount
        .checked_sub(deposit_fee)
        .context("deposit fee above the amount")?;
    let payout = net
        .checked_sub(half_up(net, service_rate_bps))
        .context("service fee above the amount")?;
    u64::try_from(payout).context("payout out of range")
}

/// `count` staff of the merchant, signed in: its owner and new users it
/// adds.
async fn setup_tills(base_url: &str, market: &Market, count: usize) -> Result<Vec<Api>> {
    let added = stream::iter(1..count)
        .map(|_| async {
            let till = Api::new(base_url)?;
            let session = till.register().await?;
            market
                .owner
                .execute(
                    ADD_STAFF,
                    json!({ "m": market.merchant_id, "e": session.email }),
                )
                .await
                .context("addMerchantStaff")?;
            Ok::<_, anyhow::Error>(till.signed_in(session.token))
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    // The owner tills too, on a connection of its own.
    let owner = Api::new(base_url)?.signed_in(market.owner_token.clone());
    Ok(std::iter::once(owner).chain(added).collect())
}

/// `count` buyers, signed in, each with `funding` in its wallet.
async fn setup_buyers(base_url: &str, funding: u64, count: usize) -> Result<Vec<Api>> {
    // The sandbox checkout is not GraphQL: a plain client posts to it.
    let checkout = reqwest::Client::builder()
        .build()
        .context("building the HTTP client")?;
    let checkout = &checkout;
    stream::iter(0..count)
        .map(|_| async move {
            let api = Api::new(base_url)?;
            let session: Session = api.register().await?;
            let api = api.signed_in(session.token);
            fund(&api, checkout, base_url, funding)
                .await
                .with_context(|| format!("funding buyer {}", session.user_id))?;
            Ok::<_, anyhow::Error>(api)
        })
        .buffered(SETUP_CONCURRENCY)
        .try_collect()
        .await
}

/// Tops the wallet up with `amount` through the sandbox checkout and checks
/// the balance.
pub(crate) async fn fund(
    api: &Api,
    checkout: &reqwest::Client,
    base_url: &str,
    amount: u64,
) -> Result<()> {
    let amount = amount.to_string();
    let input = json!({ "amount": amount, "idempotencyKey": key() });
    let data = api
        .execute(INITIATE_TOPUP, json!({ "i": input }))
        .await
        .context("initiateTopup")?;
    ensure!(
        string_at(&data, "/initiateTopup/status")? == "PENDING"
            && string_at(&data, "/initiateTopup/amount")? == amount,
        "initiateTopup gave {data}"
    );
    let url = string_at(&data, "/initiateTopup/checkoutUrl")?;
    let url = if url.starts_with('/') {
        format!("{}{url}/pay", base_url.trim_end_matches('/'))
    } else {
        format!("{url}/pay")
    };
    let response = checkout
        .post(&url)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let body = response.text().await.context("reading the checkout")?;
    ensure!(
        status == reqwest::StatusCode::OK && body.contains(r#""outcome":"credited""#),
        "POST {url} answered {status}: {body}"
    );
    let balance = balance(api).await?;
    ensure!(
        balance == amount,
        "the wallet holds {balance} after a topup of {amount}"
    );
    Ok(())
}

async fn balance(api: &Api) -> Result<String> {
    let data = api.execute(BALANCE, json!({})).await.context("balance")?;
    string_at(&data, "/me/wallet/balance")
}

/// A fresh idempotency key.
pub(crate) fn key() -> String {
    format!("bench-{}", Uuid::new_v4().simple())
}

/// `workers` tasks made by `spawn`, released together once each has warmed
/// its connection; their figures once the last has finished.
async fn measure<F, Fut>(
    label: String,
    apis: Vec<Api>,
    server_pid: Option<u32>,
    mut spawn: F,
) -> Result<Run>
where
    F: FnMut(Api, Arc<Barrier>) -> Fut,
    Fut: Future<Output = (Api, Worker)> + Send + 'static,
{
    let start = Arc::new(Barrier::new(apis.len() + 1));
    let handles: Vec<JoinHandle<(Api, Worker)>> = apis
        .into_iter()
        .map(|api| tokio::spawn(spawn(api, Arc::clone(&start))))
        .collect();
    start.wait().await;
    let server_before = server_pid.map(|pid| cpu_ms(Some(pid))).transpose()?;
    let client_before = cpu_ms(None)?;
    let started = Instant::now();
    let mut run = Run {
        figures: Figures {
            label,
            transactions: 0,
            tps: 0.0,
            p50_ms: None,
            p99_ms: None,
            client_cpu_s: 0.0,
        },
        errors: 0,
        first_error: None,
        server_cpu_ms: None,
        workers: Vec::new(),
        cards: Vec::new(),
        exhausted: false,
    };
    let mut latencies = Vec::new();
    for handle in handles {
        let (api, worker) = handle.await.context("a worker panicked")?;
        run.figures.transactions += worker.ok;
        run.errors += worker.errors;
        run.first_error = run.first_error.or(worker.first_error);
        run.exhausted |= worker.exhausted;
        run.cards.extend(worker.cards);
        latencies.extend(worker.latencies);
        run.workers.push((api, worker.ok));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let done = run.figures.transactions as f64;
    run.figures.client_cpu_s = (cpu_ms(None)? - client_before) / 1000.0;
    if let (Some(pid), Some(before)) = (server_pid, server_before) {
        run.server_cpu_ms = Some((cpu_ms(Some(pid))? - before) / done);
    }
    run.figures.tps = done / elapsed;
    let latencies = sorted(latencies);
    run.figures.p50_ms = percentile(&latencies, 500);
    run.figures.p99_ms = percentile(&latencies, 990);
    Ok(run)
}

/// One buyer: purchases back to back for `duration` after the start.
async fn buyer(
    api: Api,
    product: Arc<str>,
    face: Arc<str>,
    start: Arc<Barrier>,
    duration: Duration,
) -> (Api, Worker) {
    let mut worker = Worker::default();
    // Opens the keep-alive connection before the clock starts.
    let warm = balance(&api).await;
    start.wait().await;
    if let Err(err) = warm {
        worker.fail(&err);
        return (api, worker);
    }
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline {
        let t0 = Instant::now();
        match purchase(&api, &product, &face).await {
            Ok(card) => {
                worker.latencies.push(millis(t0.elapsed()));
                worker.ok += 1;
                worker.cards.push(card);
            }
            Err(err) => worker.fail(&err),
        }
    }
    (api, worker)
}

/// One `purchaseCard`; the card, whose code and pin its owner sees.
async fn purchase(api: &Api, product: &str, face: &str) -> Result<Bought> {
    let input = json!({ "productId": product, "faceValue": face, "idempotencyKey": key() });
    let data = api
        .execute(PURCHASE, json!({ "i": input }))
        .await
        .context("purchaseCard")?;
    let card = Bought {
        id: string_at(&data, "/purchaseCard/id")?,
        code: string_at(&data, "/purchaseCard/code")?,
        pin: string_at(&data, "/purchaseCard/pin")?,
    };
    ensure!(
        string_at(&data, "/purchaseCard/status")? == "ACTIVE"
            && string_at(&data, "/purchaseCard/faceValue")? == face
            && !card.code.is_empty()
            && card.pin.len() == 6
            && card.pin.bytes().all(|b| b.is_ascii_digit()),
        "purchaseCard gave {data}"
    );
    Ok(card)
}

/// One till: redeems cards from the pool back to back for `duration` after
/// the start, or until none is left.
async fn till(
    api: Api,
    pool: Arc<Mutex<Vec<Bought>>>,
    branch: Arc<str>,
    payout: Arc<str>,
    start: Arc<Barrier>,
    duration: Duration,
) -> (Api, Worker) {
    let mut worker = Worker::default();
    let warm = api.execute("{ me { id } }", json!({})).await;
    start.wait().await;
    if let Err(err) = warm {
        worker.fail(&err);
        return (api, worker);
    }
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline {
        let Some(card) = pool.lock().await.pop() else {
            worker.exhausted = true;
            break;
        };
        let t0 = Instant::now();
        match redeem(&api, &card, &branch, &payout).await {
            Ok(()) => {
                worker.latencies.push(millis(t0.elapsed()));
                worker.ok += 1;
            }
            Err(err) => worker.fail(&err),
        }
    }
    (api, worker)
}

/// One `redeemCard` with the card's code and pin: the card REDEEMED, its
/// escrow SETTLED with the expected payout.
async fn redeem(api: &Api, card: &Bought, branch: &str, payout: &str) -> Result<()> {
    let input = json!({
        "code": card.code,
        "pin": card.pin,
        "branchId": branch,
        "idempotencyKey": key(),
    });
    let data = api
        .execute(REDEEM, json!({ "i": input }))
        .await
        .with_context(|| format!("redeemCard of card {}", card.id))?;
    ensure!(
        string_at(&data, "/redeemCard/card/id")? == card.id
            && string_at(&data, "/redeemCard/card/status")? == "REDEEMED"
            && string_at(&data, "/redeemCard/escrow/status")? == "SETTLED"
            && string_at(&data, "/redeemCard/escrow/merchantPayout")? == payout,
        "redeemCard of card {} gave {data}",
        card.id
    );
    Ok(())
}

/// Every buyer's balance is its funding less what it bought; the merchant's
/// is what it was paid for the redemptions.
async fn verify(buyers: &[(Api, u64)], args: &Args, market: &Market, redeemed: u64) -> Result<()> {
    for (n, (api, bought)) in buyers.iter().enumerate() {
        let spent = bought
            .checked_mul(args.face_value)
            .context("spending overflows")?;
        let expected = args
            .funding
            .checked_sub(spent)
            .context("a buyer spent more than its funding")?;
        let balance = balance(api).await?;
        ensure!(
            balance == expected.to_string(),
            "buyer {n} bought {bought} cards of {} but holds {balance}, not {expected}",
            args.face_value
        );
    }
    let data = market
        .owner
        .execute(MERCHANT_BALANCE, json!({ "m": market.merchant_id }))
        .await
        .context("the merchant's balance")?;
    let balance = string_at(&data, "/merchant/wallet/balance")?;
    let expected = redeemed
        .checked_mul(market.payout)
        .context("payouts overflow")?;
    ensure!(
        balance == expected.to_string(),
        "the merchant holds {balance} after {redeemed} redemptions of {} each, not {expected}",
        market.payout
    );
    let bought: u64 = buyers.iter().map(|(_, bought)| bought).sum();
    println!(
        "check: {} buyer balances = funding - {bought} purchases; merchant balance = {redeemed} x {}",
        buyers.len(),
        market.payout
    );
    Ok(())
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merchant_payout_follows_the_contract() {
        // FLOWS.md §3: A = 500000, d = 150, s = 500.
        assert_eq!(merchant_payout(500_000, 150, 500).ok(), Some(467_875));
        // 5000: depositFee 75, serviceFee round(4925 * 5%) = 246.25 -> 246.
        assert_eq!(merchant_payout(5_000, 150, 500).ok(), Some(4_679));
        assert_eq!(merchant_payout(1, 0, 0).ok(), Some(1));
    }
}
