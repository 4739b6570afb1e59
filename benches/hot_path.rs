//! The hot path: `access_token()` on a warm session against its baseline, an
//! `RwLock<Option<Arc<str>>>` read plus an `Instant::now()` expiry check plus a clone of the
//! token handle (so both sides hand back an owned token), measured in the same run.
//!
//! `cargo bench --bench hot_path` prints ns per call (median and spread over rounds) and heap
//! allocations per call, for one thread and for one thread per core contending.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, RwLock};
use std::time::{Duration, Instant};

use futures::FutureExt;

/// Counts allocations, so that the fast path can be shown to make none.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const CALLS: u64 = 2_000_000;
const ROUNDS: usize = 15;

struct Baseline {
    token: RwLock<Option<(Arc<str>, Instant)>>,
}

impl Baseline {
    #[inline(never)]
    fn token(&self) -> Option<Arc<str>> {
        let guard = self.token.read().unwrap();
        let (token, expires) = guard.as_ref()?;
        (Instant::now() < *expires).then(|| token.clone())
    }
}

/// ns per call of `f`, run `CALLS` times on each of `threads` threads at once.
fn measure(threads: usize, f: &(dyn Fn() + Sync)) -> f64 {
    let barrier = Barrier::new(threads);
    let per_thread: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..CALLS {
                        f();
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let worst = per_thread.into_iter().max().unwrap();
    worst.as_nanos() as f64 / CALLS as f64
}

fn summary(mut samples: Vec<f64>) -> (f64, f64, f64) {
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    (samples[n / 2], samples[n / 10], samples[n - 1 - n / 10])
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(wiremock::MockServer::start());
    runtime.block_on(
        wiremock::Mock::given(wiremock::matchers::any())
            .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(
                serde_json::json!({"status": "success", "data": {"accessToken": "bench-opaque-token"}}),
            ))
            .mount(&server),
    );
    let session = tokensmith::s7risk::Session::builder()
        .base_url(server.uri())
        .origin("https://api.example.com")
        .user("bench@example.com", "pw")
        .build()
        .unwrap();
    runtime.block_on(session.access_token()).unwrap();
    let baseline = Baseline {
        token: RwLock::new(Some((
            Arc::from("bench-opaque-token"),
            Instant::now() + Duration::from_secs(3600),
        ))),
    };
    let ours = || {
        let token = session.access_token().now_or_never().unwrap().unwrap();
        std::hint::black_box(token);
    };
    let theirs = || {
        std::hint::black_box(baseline.token().unwrap());
    };

    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!("hot path: {CALLS} calls per thread, {ROUNDS} rounds, interleaved");
    for t in [1, threads] {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            b.push(measure(t, &theirs));
            a.push(measure(t, &ours));
        }
        let (am, alo, ahi) = summary(a);
        let (bm, blo, bhi) = summary(b);
        println!(
            "threads={t}: access_token {am:.1} ns [{alo:.1}..{ahi:.1}]  baseline {bm:.1} ns [{blo:.1}..{bhi:.1}]  ratio {:.2}",
            am / bm
        );
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..10_000 {
        ours();
    }
    let allocs = ALLOCATIONS.load(Ordering::Relaxed) - before;
    println!(
        "allocations per access_token: {:.3}",
        allocs as f64 / 10_000.0
    );
}
