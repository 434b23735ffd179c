//! `winnerAnnounced` while winners are announced: attempts paced, deliveries timed.

use super::*;

/// Winners announced at once while subscribers watch.
pub(super) const ANNOUNCE_CONCURRENCY: usize = 8;

pub(super) struct Fanout {
    /// From the first attempt until every attempt was answered (INSTANT).
    pub(super) announced_in: Option<Duration>,
    /// From the first attempt until every subscriber had every winner.
    pub(super) delivered_in: Duration,
    /// CPU the server and the load generator used over `delivered_in`.
    pub(super) server_cpu_ms: Option<f64>,
    pub(super) client_cpu_ms: f64,
    pub(super) deliveries: usize,
    pub(super) p50_ms: Option<f64>,
    pub(super) p99_ms: Option<f64>,
    pub(super) max_ms: Option<f64>,
    /// The same, to the moment the kernel received each frame on the
    /// subscriber's socket, before the load generator read it.
    pub(super) arrived_p50_ms: Option<f64>,
    pub(super) arrived_p99_ms: Option<f64>,
    pub(super) arrived_max_ms: Option<f64>,
    /// Per winner, until its last subscriber had it.
    pub(super) last_p50_ms: Option<f64>,
    pub(super) last_p99_ms: Option<f64>,
    /// Per winner, until it arrived on its first subscriber's socket: the
    /// pipeline before the fan-out (commit, relay, Redis, hub, live log).
    pub(super) first_p50_ms: Option<f64>,
    pub(super) first_p99_ms: Option<f64>,
}

/// A second event of `--prizes` units and as many verified participants;
/// `--subscribers` anonymous sockets subscribe to its `winnerAnnounced`;
/// every participant attempts (and wins) once it is LIVE, or, with
/// `--draw`, wins the draw when it ends. Every subscriber must receive
/// every winner, in order.
pub(super) async fn announce(base_url: &str, args: &Args) -> Result<Fanout> {
    let count = usize::try_from(args.prizes).context("--prizes")?;
    let selection = if args.draw {
        // Long enough for the sockets to subscribe (about 4 ms each here).
        let subscribing = Duration::from_millis(4 * u64::try_from(args.subscribers)?);
        Selection::Draw(subscribing + Duration::from_secs(10))
    } else {
        Selection::Instant
    };
    let (event_id, host) = setup_event(base_url, args, count, selection).await?;
    let winners = setup_participants(base_url, &event_id, count).await?;
    let ws_url = crate::ws::endpoint(base_url);
    let query = format!(
        "subscription {{ winnerAnnounced(eventId: \"{event_id}\") {{ sequence announcedAt }} }}"
    );
    let subscribe = json!({ "id": crate::ws::SUBSCRIPTION_ID, "type": "subscribe", "payload": { "query": query } });
    let mut sockets = stream::iter(0..args.subscribers)
        .map(|_| crate::lean_ws::Subscriber::open(&ws_url, &subscribe))
        .buffer_unordered(200);
    let mut receiver = crate::lean_ws::Receiver::start(count)?;
    while let Some(socket) = sockets.next().await {
        receiver.add(socket?)?;
    }
    wait_for(
        &host,
        &event_id,
        |e| e["status"] == "LIVE",
        "the second event to go LIVE",
    )
    .await?;
    let cpu_before = (
        args.server_pid.map(|pid| cpu_ms(Some(pid))).transpose()?,
        cpu_ms(None)?,
    );
    println!(
        "winnerAnnounced: {} sockets subscribed; announcing",
        args.subscribers
    );
    let started = Instant::now();
    let announced_in = if args.draw {
        None
    } else {
        Some(attempt_all(&event_id, winners, args.announce_every_ms, started).await?)
    };
    let deadline = Duration::from_secs(60).saturating_sub(started.elapsed());
    let received = tokio::task::spawn_blocking(move || receiver.finish(deadline)).await??;
    let delivered_in = started.elapsed();
    let server_cpu_ms = match (args.server_pid, cpu_before.0) {
        (Some(pid), Some(before)) => Some(cpu_ms(Some(pid))? - before),
        _ => None,
    };
    let client_cpu_ms = cpu_ms(None)? - cpu_before.1;
    // Checked only now, so checking costs the deliveries no CPU. A draw's
    // winners commit together, after the last one's announcedAt.
    let committed = if args.draw {
        let first = received.first().context("no subscriber")?;
        let mut last = None;
        for frame in first.frames() {
            let (_, at) = winner(frame?.0)?.context("a protocol ping among the winners")?;
            last = last.max(Some(at));
        }
        last
    } else {
        None
    };
    let mut latencies = Vec::with_capacity(args.subscribers * count);
    let mut arrivals = Vec::with_capacity(args.subscribers * count);
    let mut last_by_winner = vec![0.0_f64; count];
    let mut first_by_winner = vec![f64::INFINITY; count];
    for frames in &received {
        let seen = latencies_of(frames, count, committed)?;
        for ((last, first), (arrived, read)) in last_by_winner
            .iter_mut()
            .zip(&mut first_by_winner)
            .zip(&seen)
        {
            *last = last.max(*read);
            *first = first.min(*arrived);
        }
        arrivals.extend(seen.iter().map(|(arrived, _)| *arrived));
        latencies.extend(seen.into_iter().map(|(_, read)| read));
    }
    let latencies = sorted(latencies);
    let arrivals = sorted(arrivals);
    let lasts = sorted(last_by_winner);
    let firsts = sorted(first_by_winner);
    Ok(Fanout {
        announced_in,
        delivered_in,
        server_cpu_ms,
        client_cpu_ms,
        deliveries: latencies.len(),
        p50_ms: percentile(&latencies, 500),
        p99_ms: percentile(&latencies, 990),
        max_ms: latencies.last().copied(),
        arrived_p50_ms: percentile(&arrivals, 500),
        arrived_p99_ms: percentile(&arrivals, 990),
        arrived_max_ms: arrivals.last().copied(),
        last_p50_ms: percentile(&lasts, 500),
        last_p99_ms: percentile(&lasts, 990),
        first_p50_ms: percentile(&firsts, 500),
        first_p99_ms: percentile(&firsts, 990),
    })
}

/// Every one of `winners` attempts (and must win), at most
/// [`ANNOUNCE_CONCURRENCY`] at once, the n-th starting no earlier than
/// `n * every_ms` after `started`; returns when the last was answered.
pub(crate) async fn attempt_all(
    event_id: &str,
    winners: Vec<Api>,
    every_ms: u64,
    started: Instant,
) -> Result<Duration> {
    let every = Duration::from_millis(every_ms);
    let start_at = |n: usize| {
        tokio::time::Instant::from_std(started) + every * u32::try_from(n).unwrap_or(u32::MAX)
    };
    stream::iter(winners.into_iter().enumerate())
        .map(|(n, api)| {
            let event_id = event_id.to_owned();
            async move {
                tokio::time::sleep_until(start_at(n)).await;
                let data = api
                    .execute(
                        "mutation($e: ID!) { attemptPrize(eventId: $e) { outcome } }",
                        json!({ "e": event_id }),
                    )
                    .await?;
                ensure!(
                    string_at(&data, "/attemptPrize/outcome")? == "WON",
                    "an announced attempt gave {data}"
                );
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(ANNOUNCE_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(started.elapsed())
}

/// One subscriber's winners: all `count` of them, each exactly once and
/// in sequence order, as their latencies from `announcedAt` (or from
/// `committed`, when all were committed together) to the moment the frame
/// arrived on the socket and to the moment it was read (ms), by sequence.
pub(super) fn latencies_of(
    received: &crate::lean_ws::Received,
    count: usize,
    committed: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Vec<(f64, f64)>> {
    let mut latencies = Vec::with_capacity(count);
    for frame in received.frames() {
        let (text, came) = frame?;
        // The subscriber answered protocol pings itself.
        let (sequence, at) = winner(text)?.context("a protocol ping among the winners")?;
        ensure!(
            usize::try_from(sequence).ok() == Some(latencies.len() + 1),
            "got winner {sequence}, expected {}",
            latencies.len() + 1
        );
        let since = |then: chrono::DateTime<chrono::Utc>| {
            (then - committed.unwrap_or(at))
                .num_microseconds()
                .unwrap_or(0) as f64
                / 1000.0
        };
        latencies.push((since(came.arrived), since(came.read)));
    }
    ensure!(
        latencies.len() == count,
        "a subscriber had {} winners of {count}",
        latencies.len()
    );
    Ok(latencies)
}

#[derive(serde::Deserialize)]
pub(super) struct WinnerData<'a> {
    #[serde(rename = "winnerAnnounced", borrow)]
    pub(super) winner: Option<NextWinner<'a>>,
}

#[derive(serde::Deserialize)]
pub(super) struct NextWinner<'a> {
    pub(super) sequence: u64,
    #[serde(rename = "announcedAt")]
    pub(super) announced_at: &'a str,
}

/// The winner of one text frame: its sequence and `announcedAt`; `None`
/// for a ping.
pub(super) fn winner(text: &str) -> Result<Option<(u64, chrono::DateTime<chrono::Utc>)>> {
    let Some(data) = crate::ws::next_data::<WinnerData<'_>>(text)? else {
        return Ok(None);
    };
    let winner = data
        .winner
        .with_context(|| format!("a next without a winner: {text}"))?;
    Ok(Some((winner.sequence, winner.announced_at.parse()?)))
}
