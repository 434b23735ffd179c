//! The measured load: the attempt storm, and `event(id)` read under load.

use super::*;

pub(super) struct Storm {
    pub(super) figures: Figures,
    pub(super) won: u64,
    pub(super) none_left: u64,
}

/// Every participant attempts once, `concurrency` at a time.
pub(super) async fn storm(
    participants: Vec<Api>,
    event_id: &str,
    concurrency: usize,
) -> Result<Storm> {
    let cpu = crate::rss::children_cpu_s().unwrap_or(0.0);
    let started = Instant::now();
    let results: Vec<(f64, String)> = stream::iter(participants)
        .map(|api| async move {
            let sent = Instant::now();
            let data = api
                .execute(
                    "mutation($e: ID!) { attemptPrize(eventId: $e) { outcome winner { sequence } } }",
                    json!({ "e": event_id }),
                )
                .await
                .context("attemptPrize")?;
            let ms = sent.elapsed().as_secs_f64() * 1000.0;
            Ok::<_, anyhow::Error>((ms, string_at(&data, "/attemptPrize/outcome")?))
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    let elapsed = started.elapsed().as_secs_f64();
    let mut won = 0;
    let mut none_left = 0;
    for (_, outcome) in &results {
        match outcome.as_str() {
            "WON" => won += 1,
            "NO_PRIZES_LEFT" => none_left += 1,
            other => bail!("an attempt answered {other}"),
        }
    }
    let latencies = sorted(results.iter().map(|(ms, _)| *ms).collect());
    let transactions = u64::try_from(results.len()).unwrap_or(u64::MAX);
    Ok(Storm {
        figures: Figures {
            label: format!("attemptPrize ({concurrency} at once)"),
            transactions,
            tps: results.len() as f64 / elapsed,
            p50_ms: percentile(&latencies, 500),
            p99_ms: percentile(&latencies, 990),
            client_cpu_s: crate::rss::children_cpu_s().unwrap_or(0.0) - cpu,
        },
        won,
        none_left,
    })
}

pub(super) struct Reads {
    pub(super) event: Figures,
    pub(super) live: Figures,
    pub(super) statements_per_request: f64,
}

/// `event(id)` then `/health/live`, `connections` keep-alive workers for
/// `seconds` each; statements per `event(id)` from the server's counter.
pub(super) async fn read_event(
    base_url: &str,
    event_id: &str,
    connections: usize,
    seconds: u64,
) -> Result<Reads> {
    let statements_before = statements(base_url).await?;
    let event = hammer(base_url, connections, seconds, "event(id)", Some(event_id)).await?;
    let statements_after = statements(base_url).await?;
    let live = hammer(base_url, connections, seconds, "/health/live", None).await?;
    Ok(Reads {
        statements_per_request: (statements_after - statements_before) / event.transactions as f64,
        event,
        live,
    })
}

/// `giftdrop_db_statements_total` of the server (every outcome).
pub(super) async fn statements(base_url: &str) -> Result<f64> {
    let text = reqwest::get(format!("{}/metrics", base_url.trim_end_matches('/')))
        .await
        .context("GET /metrics")?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("giftdrop_db_statements_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// Requests per second of `event(id)` (or `/health/live` without an
/// event) over `connections` workers for `seconds`.
pub(super) async fn hammer(
    base_url: &str,
    connections: usize,
    seconds: u64,
    label: &str,
    event_id: Option<&str>,
) -> Result<Figures> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let workers = (0..connections).map(|_| {
        let latencies = Arc::clone(&latencies);
        let event_id = event_id.map(str::to_owned);
        let base_url = base_url.to_owned();
        tokio::spawn(async move {
            let api = Api::new(&base_url)?;
            let mut mine = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                match &event_id {
                    Some(id) => {
                        let data = api.execute(EVENT, json!({ "id": id })).await?;
                        ensure!(data["event"]["id"] == id.as_str(), "event(id) gave {data}");
                    }
                    None => api.live().await?,
                }
                mine.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            latencies.lock().await.extend(mine);
            Ok::<_, anyhow::Error>(())
        })
    });
    for worker in futures_util::future::join_all(workers).await {
        worker.context("a worker panicked")??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let latencies = sorted(std::mem::take(&mut *latencies.lock().await));
    Ok(Figures {
        label: label.to_owned(),
        transactions: u64::try_from(latencies.len()).unwrap_or(u64::MAX),
        tps: latencies.len() as f64 / elapsed,
        p50_ms: percentile(&latencies, 500),
        p99_ms: percentile(&latencies, 990),
        client_cpu_s: 0.0,
    })
}
