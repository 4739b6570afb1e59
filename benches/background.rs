//! Callers across a renewal, with a token endpoint that answers in 20 ms: blocking mode (the
//! default) against `background_refresh(true)`. Counts the callers that waited on the network
//! (a call of 10 ms or more: half the endpoint's delay) and compares the calls' p99 latency
//! with the p99 of warm `access_token()` calls measured the same way in the same run.
//!
//! `cargo bench --bench background`

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokensmith::clock::ManualClock;

#[path = "support/mod.rs"]
mod support;

const CALLERS: usize = 64;
const WARM_CALLS: usize = 2_000;
const ROUNDS: usize = 5;
/// A call this long waited on the network (the endpoint takes 20 ms).
const WAITED: Duration = Duration::from_millis(10);

fn session(base: &str, clock: &ManualClock, background: bool) -> tokensmith::s7risk::Session {
    tokensmith::s7risk::Session::builder()
        .base_url(base)
        .origin("https://api.example.com")
        .user("bench@example.com", "pw")
        .clock(clock.clone())
        .refresh_policy(tokensmith::RefreshPolicy::new().with_jitter(false))
        .background_refresh(background)
        .build()
        .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Every call's latency, from `CALLERS` tasks: each makes `calls` calls, or (with `until`)
/// calls until it is served a token expiring at another instant than `until` (the renewal
/// landed). Tasks yield between calls, as an application does between requests.
async fn run(
    session: &tokensmith::s7risk::Session,
    calls: usize,
    until: Option<Instant>,
) -> Vec<Vec<Duration>> {
    let barrier = Arc::new(tokio::sync::Barrier::new(CALLERS));
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let session = session.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let mut samples = Vec::with_capacity(calls);
                loop {
                    let start = Instant::now();
                    let token = session.access_token().await.unwrap();
                    samples.push(start.elapsed());
                    match until {
                        Some(old) if token.expires_at() != old => break,
                        None if samples.len() >= calls => break,
                        _ => {}
                    }
                    tokio::task::yield_now().await;
                }
                samples
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

struct Figures {
    warm_p99: Duration,
    waited: usize,
    calls: usize,
    p99: Duration,
    requests: usize,
}

async fn round(background: bool) -> Figures {
    let (base, token_requests) = support::server_with_token_delay(Duration::from_millis(20)).await;
    let clock = ManualClock::starting_at(SystemTime::now());
    let session = session(&base, &clock, background);
    let first = session.access_token().await.unwrap();
    let mut warm: Vec<Duration> = run(&session, WARM_CALLS, None)
        .await
        .into_iter()
        .flatten()
        .collect();
    warm.sort();
    // Into the margin of the day-long token (60 s before expiry).
    clock.advance(Duration::from_secs(24 * 60 * 60 - 30));
    let across = run(&session, 0, Some(first.expires_at())).await;
    let waited = across
        .iter()
        .filter(|calls| calls.iter().any(|d| *d >= WAITED))
        .count();
    let mut all: Vec<Duration> = across.into_iter().flatten().collect();
    all.sort();
    Figures {
        warm_p99: percentile(&warm, 0.99),
        waited,
        calls: all.len(),
        p99: percentile(&all, 0.99),
        requests: token_requests.load(std::sync::atomic::Ordering::Relaxed),
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!(
            "{CALLERS} callers across one renewal, token endpoint 20 ms, {ROUNDS} rounds per mode"
        );
        println!(
            "mode        round  token requests  callers waited  calls  p99 across  warm p99  ratio"
        );
        for background in [false, true] {
            let name = if background { "background" } else { "blocking" };
            for r in 0..ROUNDS {
                let f = round(background).await;
                println!(
                    "{name:<10}  {r:>5}  {:>14}  {:>14}  {:>5}  {:>10.1?}  {:>8.1?}  {:>5.1}",
                    f.requests,
                    f.waited,
                    f.calls,
                    f.p99,
                    f.warm_p99,
                    f.p99.as_secs_f64() / f.warm_p99.as_secs_f64()
                );
            }
        }
    });
}
