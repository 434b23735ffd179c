//! The measured load: buyers purchasing, tills redeeming, and the books checked after.

use super::*;

/// `workers` tasks made by `spawn`, released together once each has warmed
/// its connection; their figures once the last has finished.
pub(super) async fn measure<F, Fut>(
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
pub(super) async fn buyer(
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
pub(super) async fn purchase(api: &Api, product: &str, face: &str) -> Result<Bought> {
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
pub(super) async fn till(
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
pub(super) async fn redeem(api: &Api, card: &Bought, branch: &str, payout: &str) -> Result<()> {
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
pub(super) async fn verify(
    buyers: &[(Api, u64)],
    args: &Args,
    market: &Market,
    redeemed: u64,
) -> Result<()> {
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

pub(super) fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
