//! Refresh storm: 10,000 concurrent callers arrive at an expired token. Counts the token
//! requests (must be 1) and compares the callers' waits with one bare token round trip.
//! Also prints the memory an idle session and a cached token take.
//!
//! `cargo bench --bench storm` prints the figures and writes every caller's wait (µs) to
//! `target/storm-waits.csv` for `scripts/plot_storm.py`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokensmith::clock::ManualClock;

#[path = "support/mod.rs"]
mod support;

/// Tracks live heap bytes, to measure what sessions and tokens keep.
struct Live;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Live {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Live = Live;

const CALLERS: usize = 10_000;
const ROUNDS: usize = 5;

fn session(
    base: &str,
    clock: &ManualClock,
    http: &tokensmith::HttpClient,
) -> tokensmith::s7risk::Session {
    tokensmith::s7risk::Session::builder()
        .base_url(base)
        .origin("https://api.example.com")
        .user("bench@example.com", "pw")
        .http_client(http.clone())
        .clock(clock.clone())
        .build()
        .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn bare_round_trip(http: &reqwest::Client, base: &str) -> Duration {
    let mut samples = Vec::new();
    for _ in 0..200 {
        let start = Instant::now();
        http.post(format!("{base}/user/token"))
            .header("origin", "https://api.example.com")
            .json(&serde_json::json!({"email": "bench@example.com", "password": "pw"}))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        samples.push(start.elapsed());
    }
    samples.sort();
    percentile(&samples, 0.5)
}

/// 1,000 concurrent weavr calls answered STEP_UP_REQUIRED until one challenge is verified.
async fn step_up_storm() {
    use std::sync::atomic::AtomicBool;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    let server = MockServer::start().await;
    let stepped_up = Arc::new(AtomicBool::new(false));
    Mock::given(method("POST"))
        .and(path("/login_with_password"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"token": "t", "tokenType": "ACCESS"})),
        )
        .mount(&server)
        .await;
    let flag = stepped_up.clone();
    Mock::given(method("GET"))
        .and(path("/identities"))
        .respond_with(move |_: &Request| {
            if flag.load(Ordering::SeqCst) {
                ResponseTemplate::new(200).set_body_json(
                    serde_json::json!({"identities": [], "count": 0, "responseCount": 0}),
                )
            } else {
                ResponseTemplate::new(403)
                    .set_body_json(serde_json::json!({"errorCode": "STEP_UP_REQUIRED"}))
            }
        })
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/stepup/challenges/otp/SMS"))
        .respond_with(ResponseTemplate::new(204).set_delay(Duration::from_millis(20)))
        .mount(&server)
        .await;
    let flag = stepped_up.clone();
    Mock::given(method("POST"))
        .and(path("/stepup/challenges/otp/SMS/verify"))
        .respond_with(move |_: &Request| {
            flag.store(true, Ordering::SeqCst);
            ResponseTemplate::new(204)
        })
        .mount(&server)
        .await;
    let session = tokensmith::weavr::Session::builder()
        .base_url(server.uri())
        .api_key("bench-key")
        .email("bench@example.com")
        .password("pw")
        .step_up(tokensmith::weavr::StepUpMethod::Sms, |_| async {
            tokensmith::weavr::Answer::Code("123456".into())
        })
        .build()
        .unwrap();
    session.access_token().await.unwrap();
    let start = Instant::now();
    let calls: Vec<_> = (0..1000)
        .map(|_| {
            let session = session.clone();
            tokio::spawn(async move { session.api().list_identities(None, None).await })
        })
        .collect();
    let mut ok = 0;
    for call in calls {
        if call.await.unwrap().is_ok() {
            ok += 1;
        }
    }
    let requests = server.received_requests().await.unwrap();
    let count = |p: &str| requests.iter().filter(|r| r.url.path() == p).count();
    println!(
        "step-up storm: 1000 calls, {ok} succeeded, {} challenge request(s), {} verification(s), {:?} in all",
        count("/stepup/challenges/otp/SMS"),
        count("/stepup/challenges/otp/SMS/verify"),
        start.elapsed()
    );
    assert_eq!(count("/stepup/challenges/otp/SMS"), 1, "one challenge");
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // The token endpoint takes 20 ms, long enough for all the callers to arrive while the
        // one renewal is in flight: the wait then measures how fast they are all woken.
        let (base, token_requests) =
            support::server_with_token_delay(Duration::from_millis(20)).await;
        let http = reqwest::Client::new();
        // The sessions share one pool, as an application's sessions would.
        let shared = tokensmith::HttpClient::build(reqwest::Client::builder()).unwrap();
        let bare = bare_round_trip(&http, &base).await;
        println!("bare token round trip (median of 200): {bare:?}");

        let mut all_waits = Vec::new();
        for round in 0..ROUNDS {
            let clock = ManualClock::starting_at(SystemTime::now());
            let session = session(&base, &clock, &shared);
            session.access_token().await.unwrap();
            clock.advance(Duration::from_secs(25 * 3600));
            let before = token_requests.load(Ordering::Relaxed);
            let barrier = Arc::new(tokio::sync::Barrier::new(CALLERS));
            let tasks: Vec<_> = (0..CALLERS)
                .map(|_| {
                    let session = session.clone();
                    let barrier = barrier.clone();
                    tokio::spawn(async move {
                        barrier.wait().await;
                        let start = Instant::now();
                        session.access_token().await.unwrap();
                        start.elapsed()
                    })
                })
                .collect();
            let mut waits = Vec::with_capacity(CALLERS);
            for task in tasks {
                waits.push(task.await.unwrap());
            }
            let requests = token_requests.load(Ordering::Relaxed) - before;
            waits.sort();
            let (p50, p99) = (percentile(&waits, 0.5), percentile(&waits, 0.99));
            let joined = waits.iter().filter(|w| **w > bare / 2).count();
            println!(
                "round {round}: {CALLERS} callers ({joined} joined the flight), {requests} token request(s); wait p50 {p50:?} ({:.2}x bare) p99 {p99:?} ({:.2}x bare)",
                p50.as_secs_f64() / bare.as_secs_f64(),
                p99.as_secs_f64() / bare.as_secs_f64()
            );
            assert_eq!(requests, 1, "single flight");
            all_waits.extend(waits);
        }
        let csv: String = std::iter::once("wait_us".to_owned())
            .chain(all_waits.iter().map(|w| w.as_micros().to_string()))
            .collect::<Vec<_>>()
            .join("\n");
        let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/storm-waits.csv");
        std::fs::write(&out, csv + "\n").unwrap();
        println!("waits written to {}", out.display());

        // Memory: live heap bytes per idle session, then per cached token.
        let clock = ManualClock::starting_at(SystemTime::now());
        let before = LIVE.load(Ordering::Relaxed);
        let sessions: Vec<_> = (0..1000).map(|_| session(&base, &clock, &shared)).collect();
        let idle = LIVE.load(Ordering::Relaxed) - before;
        for session in &sessions {
            session.access_token().await.unwrap();
        }
        let with_tokens = LIVE.load(Ordering::Relaxed) - before;
        println!(
            "memory: {} bytes per idle session, {} bytes per cached token",
            idle / 1000,
            (with_tokens - idle) / 1000
        );
        drop(sessions);

        step_up_storm().await;
    });
}
