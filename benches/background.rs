//! Callers across a renewal, with a token endpoint that answers in 20 ms or more: blocking mode
//! (the default) against `background_refresh(true)`. Counts the callers that waited on the
//! network, and compares the calls' p99 latency with the p99 of warm `access_token()` calls
//! measured the same way in the same run.
//!
//! "Waited" is a forced observation, not a timing threshold. The token endpoint holds its
//! answer to the renewal until the bench releases it, and marks the renewal as in flight
//! before it starts holding; the bench clears the mark before it releases the answer. A caller
//! that completes a call while the mark is set was served without the network's answer (it
//! did not exist yet). The answer is released no sooner than 20 ms after the renewal arrived,
//! and then only once every caller has been served so, or once no call at all has completed
//! for 20 ms (nothing is being served: every caller is inside `access_token()` waiting). A
//! caller waited on the network when, at the release, it was inside `access_token()` and had
//! completed no call while the renewal was held.
//!
//! `cargo bench --bench background`

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokensmith::clock::ManualClock;
use tokio::sync::{oneshot, Notify};

#[path = "support/mod.rs"]
mod support;

const CALLERS: usize = 64;
const WARM_CALLS: usize = 2_000;
const ROUNDS: usize = 5;
/// The token endpoint's answer time: the renewal's answer is held at least this long.
const ENDPOINT: Duration = Duration::from_millis(20);
/// A bound on the hold, for a mode that would serve some callers and starve others.
const MAX_HOLD: Duration = Duration::from_secs(5);

/// What the callers and the token endpoint tell the bench.
struct Probe {
    /// Set by the endpoint when the renewal arrives, before it holds the answer; cleared by the
    /// bench before it releases the answer.
    held: AtomicBool,
    /// Per caller: inside `access_token()` now.
    inside: Vec<AtomicBool>,
    /// Per caller: completed a call while `held` was set.
    served: Vec<AtomicBool>,
    /// When a call last completed while `held` was set (ns since `base`).
    last_served: AtomicU64,
    base: Instant,
}

impl Probe {
    fn new() -> Self {
        Self {
            held: AtomicBool::new(false),
            inside: (0..CALLERS).map(|_| AtomicBool::new(false)).collect(),
            served: (0..CALLERS).map(|_| AtomicBool::new(false)).collect(),
            last_served: AtomicU64::new(0),
            base: Instant::now(),
        }
    }

    fn since_base(&self, at: Instant) -> u64 {
        u64::try_from(at.duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A keep-alive HTTP/1.1 server answering every POST (a token request) with an s7risk token
/// after `ENDPOINT`. Its second POST (the renewal) instead sets `probe.held`, sends on
/// `arrived` when it came, and is answered only when `release` is notified.
async fn token_endpoint(
    probe: Arc<Probe>,
    arrived: oneshot::Sender<Instant>,
    release: Arc<Notify>,
) -> (String, Arc<AtomicUsize>) {
    let token_requests = Arc::new(AtomicUsize::new(0));
    let counter = token_requests.clone();
    let arrived = Arc::new(std::sync::Mutex::new(Some(arrived)));
    let base = support::serve(move |head| {
        let (counter, probe, arrived, release) = (
            counter.clone(),
            probe.clone(),
            arrived.clone(),
            release.clone(),
        );
        async move {
            assert!(head.starts_with("POST"), "only token requests: {head}");
            if counter.fetch_add(1, SeqCst) == 1 {
                // The renewal: in flight from now until the bench releases it (no sooner
                // than `ENDPOINT` from now).
                let released = release.notified();
                probe.held.store(true, SeqCst);
                let sender = arrived.lock().unwrap().take().unwrap();
                sender.send(Instant::now()).unwrap();
                released.await;
            } else {
                tokio::time::sleep(ENDPOINT).await;
            }
            support::TOKEN_BODY
        }
    })
    .await;
    (base, token_requests)
}

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
/// landed). Tasks yield between calls, as an application does between requests. Each caller
/// tells `probe` when it is inside a call, and when it completed one while the renewal was
/// held (outside the timed call).
fn run(
    session: &tokensmith::s7risk::Session,
    probe: &Arc<Probe>,
    calls: usize,
    until: Option<Instant>,
) -> tokio::task::JoinHandle<Vec<Vec<Duration>>> {
    let barrier = Arc::new(tokio::sync::Barrier::new(CALLERS));
    let tasks: Vec<_> = (0..CALLERS)
        .map(|i| {
            let (session, barrier, probe) = (session.clone(), barrier.clone(), probe.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let mut samples = Vec::with_capacity(calls);
                loop {
                    probe.inside[i].store(true, SeqCst);
                    let start = Instant::now();
                    let token = session.access_token().await.unwrap();
                    samples.push(start.elapsed());
                    probe.inside[i].store(false, SeqCst);
                    if probe.held.load(SeqCst) {
                        probe.served[i].store(true, SeqCst);
                        probe
                            .last_served
                            .fetch_max(probe.since_base(Instant::now()), SeqCst);
                    }
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
    tokio::spawn(async move {
        let mut out = Vec::new();
        for task in tasks {
            out.push(task.await.unwrap());
        }
        out
    })
}

struct Figures {
    warm_p99: Duration,
    /// Callers that completed a call while the renewal was held.
    served: usize,
    /// Callers inside `access_token()` at the release that completed no call while held.
    waited: usize,
    /// Callers neither served while held nor inside a call at the release (expected: 0).
    unobserved: usize,
    hold: Duration,
    calls: usize,
    p99: Duration,
    requests: usize,
}

/// Holds the renewal's answer (it arrived at `arrived`) until the rule in the module's
/// documentation lets it go, and tells who was served and who waited.
async fn hold_then_release(
    probe: &Probe,
    arrived: Instant,
    release: &Notify,
) -> (usize, usize, usize, Duration) {
    tokio::time::sleep_until((arrived + ENDPOINT).into()).await;
    loop {
        let now = Instant::now();
        let all_served = probe.served.iter().all(|s| s.load(SeqCst));
        let last = probe
            .last_served
            .load(SeqCst)
            .max(probe.since_base(arrived));
        let idle = probe.since_base(now).saturating_sub(last);
        if all_served
            || idle >= u64::try_from(ENDPOINT.as_nanos()).unwrap()
            || now - arrived >= MAX_HOLD
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Cleared first: a call completing from here on is not counted as served while held.
    probe.held.store(false, SeqCst);
    let (mut served, mut waited, mut unobserved) = (0, 0, 0);
    for (served_while_held, inside) in probe.served.iter().zip(&probe.inside) {
        match (served_while_held.load(SeqCst), inside.load(SeqCst)) {
            (true, _) => served += 1,
            (false, true) => waited += 1,
            (false, false) => unobserved += 1,
        }
    }
    let hold = arrived.elapsed();
    release.notify_one();
    (served, waited, unobserved, hold)
}

async fn round(background: bool) -> Figures {
    let probe = Arc::new(Probe::new());
    let (arrived_tx, arrived_rx) = oneshot::channel();
    let release = Arc::new(Notify::new());
    let (base, token_requests) = token_endpoint(probe.clone(), arrived_tx, release.clone()).await;
    let clock = ManualClock::starting_at(SystemTime::now());
    let session = session(&base, &clock, background);
    let first = session.access_token().await.unwrap();
    let mut warm: Vec<Duration> = run(&session, &probe, WARM_CALLS, None)
        .await
        .unwrap()
        .into_iter()
        .flatten()
        .collect();
    warm.sort();
    // Into the margin of the day-long token (60 s before expiry).
    clock.advance(Duration::from_secs(24 * 60 * 60 - 30));
    let across = run(&session, &probe, 0, Some(first.expires_at()));
    let arrived = arrived_rx.await.unwrap();
    let (served, waited, unobserved, hold) = hold_then_release(&probe, arrived, &release).await;
    let mut all: Vec<Duration> = across.await.unwrap().into_iter().flatten().collect();
    all.sort();
    Figures {
        warm_p99: percentile(&warm, 0.99),
        served,
        waited,
        unobserved,
        hold,
        calls: all.len(),
        p99: percentile(&all, 0.99),
        requests: token_requests.load(SeqCst),
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
            "{CALLERS} callers across one renewal, token endpoint answering in {ENDPOINT:?} or \
             more (held), {ROUNDS} rounds per mode"
        );
        println!(
            "served: completed a call while the renewal was held; waited: inside access_token() \
             at the release, never served while held"
        );
        println!(
            "mode        round  token requests  served  waited  unobserved  hold      calls  \
             p99 across  warm p99  ratio"
        );
        for background in [false, true] {
            let name = if background { "background" } else { "blocking" };
            for r in 0..ROUNDS {
                let f = round(background).await;
                println!(
                    "{name:<10}  {r:>5}  {:>14}  {:>6}  {:>6}  {:>10}  {:>8.1?}  {:>5}  {:>10.1?}  \
                     {:>8.1?}  {:>5.1}",
                    f.requests,
                    f.served,
                    f.waited,
                    f.unobserved,
                    f.hold,
                    f.calls,
                    f.p99,
                    f.warm_p99,
                    f.p99.as_secs_f64() / f.warm_p99.as_secs_f64()
                );
            }
        }
    });
}
