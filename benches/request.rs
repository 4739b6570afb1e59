//! An authenticated GET through the session against the same GET sent by raw reqwest with
//! fixed headers (the s7risk session sends `Authorization` and `Origin`, so the raw request
//! does too): clients configured alike (`authorize()` hands its request to the session's own
//! client, which follows no redirects, so the raw one is built the same way), same local
//! server, same run, interleaved request by request.
//!
//! `cargo bench --bench request` prints the median and p99 of each and their ratios.
//!
//! Arguments (after `--`):
//! - `prebuilt`: the raw request's two header values are built once and cloned into each
//!   request, as the session does with its own, instead of parsed from `&str` (validated and
//!   copied) for each request, as a plain `.header(name, "…")` call does.
//! - `build`: sends nothing; times what each side does before `send()` (the session: build,
//!   scope check, token, credentials written, request given back; raw: the builder and its
//!   two headers), in batches, and prints the nanoseconds per request of each: the session's
//!   own share of a request, without the network's noise.
//! - `only session N` or `only raw N`: sends N requests of one side alone and prints nothing.
//!   The binary run so under `valgrind --tool=callgrind` twice, with two values of N, gives the
//!   instructions one request of that side costs, whatever the machine's load (see
//!   BENCHMARKS.md §2).

use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, AUTHORIZATION, ORIGIN};

#[path = "support/mod.rs"]
mod support;

const WARMUP: usize = 2_000;
const SAMPLES: usize = 20_000;

async fn through_session(
    session: &tokensmith::s7risk::Session,
    client: &reqwest::Client,
    url: &str,
) -> Duration {
    let start = Instant::now();
    let response = session
        .authorize(client.get(url))
        .await
        .unwrap()
        .send()
        .await
        .unwrap();
    response.bytes().await.unwrap();
    start.elapsed()
}

/// What `through_session` does before `send()`, for the `build` mode.
#[inline(never)]
fn session_request(
    session: &tokensmith::s7risk::Session,
    client: &reqwest::Client,
    url: &str,
) -> reqwest::RequestBuilder {
    use futures::FutureExt;
    // The token is cached: the future is ready at its first poll.
    session
        .authorize(client.get(url))
        .now_or_never()
        .expect("a cached token is ready at once")
        .unwrap()
}

/// What `raw_get` does before `send()`, for the `build` mode.
#[inline(never)]
fn raw_request(client: &reqwest::Client, url: &str, fixed: &Fixed) -> reqwest::RequestBuilder {
    match fixed {
        Fixed::Parsed => client
            .get(url)
            .header(AUTHORIZATION, "Bearer bench-token")
            .header(ORIGIN, "https://api.example.com"),
        Fixed::Prebuilt(authorization, origin) => client
            .get(url)
            .header(AUTHORIZATION, authorization.clone())
            .header(ORIGIN, origin.clone()),
    }
}

/// The `build` mode: batches of requests built and dropped, the two sides interleaved batch by
/// batch; the median and p10..p90 of the batches, in ns per request.
fn build_only(
    session: &tokensmith::s7risk::Session,
    client: &reqwest::Client,
    url: &str,
    fixed: &Fixed,
) {
    const BATCH: usize = 1_000;
    const BATCHES: usize = 400;
    let (mut ours, mut raw) = (Vec::with_capacity(BATCHES), Vec::with_capacity(BATCHES));
    for i in 0..BATCHES + BATCHES / 10 {
        let time = |session_side: bool| {
            let start = Instant::now();
            for _ in 0..BATCH {
                let request = if session_side {
                    session_request(session, client, url)
                } else {
                    raw_request(client, url, fixed)
                };
                drop(std::hint::black_box(request));
            }
            start.elapsed().as_secs_f64() * 1e9 / BATCH as f64
        };
        let (a, b) = if i % 2 == 0 {
            let a = time(true);
            (a, time(false))
        } else {
            let b = time(false);
            (time(true), b)
        };
        // The first tenth warms up.
        if i >= BATCHES / 10 {
            ours.push(a);
            raw.push(b);
        }
    }
    let summary = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let at = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
        (at(0.5), at(0.1), at(0.9))
    };
    let ((om, o10, o90), (rm, r10, r90)) = (summary(&mut ours), summary(&mut raw));
    println!("the request up to send(), {BATCHES} interleaved batches of {BATCH}: ns per request, median [p10..p90]");
    println!(
        "session.authorize: {om:.1} [{o10:.1}..{o90:.1}] | raw reqwest: {rm:.1} [{r10:.1}..{r90:.1}] | difference {:.1}",
        om - rm
    );
}

/// The raw request's header values: parsed for each request, or built once.
#[derive(Clone)]
enum Fixed {
    Parsed,
    Prebuilt(HeaderValue, HeaderValue),
}

async fn raw_get(client: &reqwest::Client, url: &str, fixed: &Fixed) -> Duration {
    let start = Instant::now();
    let request = match fixed {
        Fixed::Parsed => client
            .get(url)
            .header(AUTHORIZATION, "Bearer bench-token")
            .header(ORIGIN, "https://api.example.com"),
        Fixed::Prebuilt(authorization, origin) => client
            .get(url)
            .header(AUTHORIZATION, authorization.clone())
            .header(ORIGIN, origin.clone()),
    };
    let response = request.send().await.unwrap();
    response.bytes().await.unwrap();
    start.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// What the command line asks (cargo adds `--bench`): the raw side's header values, whether
/// to time the requests' building only, and one side alone (`true` for the session) for N
/// requests.
fn arguments() -> (Fixed, bool, Option<(bool, usize)>) {
    let mut args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let fixed = match args.iter().position(|a| a == "prebuilt") {
        Some(at) => {
            args.remove(at);
            Fixed::Prebuilt(
                HeaderValue::from_static("Bearer bench-token"),
                HeaderValue::from_static("https://api.example.com"),
            )
        }
        None => Fixed::Parsed,
    };
    let build = match args.iter().position(|a| a == "build") {
        Some(at) => {
            args.remove(at);
            true
        }
        None => false,
    };
    let only = match &args[..] {
        [] => None,
        [only, side, n] if only == "only" => {
            let session = match side.as_str() {
                "session" => true,
                "raw" => false,
                other => panic!("`only session N` or `only raw N`, not {other:?}"),
            };
            Some((session, n.parse().expect("a number of requests")))
        }
        other => {
            panic!("`prebuilt`, `build`, `only session N`, `only raw N` or nothing, not {other:?}")
        }
    };
    (fixed, build, only)
}

fn main() {
    let (fixed, build, only) = arguments();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (base, _) = support::server().await;
        // The session's default client, rebuilt for the raw requests.
        let client = reqwest::Client::builder()
            .connect_timeout(tokensmith::DEFAULT_CONNECT_TIMEOUT)
            .timeout(tokensmith::DEFAULT_REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(tokensmith::USER_AGENT)
            .build()
            .unwrap();
        let session = tokensmith::s7risk::Session::builder()
            .base_url(&base)
            .origin("https://api.example.com")
            .user("bench@example.com", "pw")
            .build()
            .unwrap();
        session.access_token().await.unwrap();
        let url = format!("{base}/v1/alerts");
        if build {
            build_only(&session, &client, &url, &fixed);
            return;
        }
        if let Some((side, n)) = only {
            for _ in 0..n {
                if side {
                    through_session(&session, &client, &url).await;
                } else {
                    raw_get(&client, &url, &fixed).await;
                }
            }
            return;
        }

        let (mut ours, mut raw) = (Vec::with_capacity(SAMPLES), Vec::with_capacity(SAMPLES));
        for i in 0..WARMUP + SAMPLES {
            // Alternate which goes first, so neither always runs on a warmer connection.
            let (a, b) = if i % 2 == 0 {
                let a = through_session(&session, &client, &url).await;
                (a, raw_get(&client, &url, &fixed).await)
            } else {
                let b = raw_get(&client, &url, &fixed).await;
                (through_session(&session, &client, &url).await, b)
            };
            if i >= WARMUP {
                ours.push(a);
                raw.push(b);
            }
        }
        ours.sort();
        raw.sort();
        let (om, op) = (percentile(&ours, 0.5), percentile(&ours, 0.99));
        let (rm, rp) = (percentile(&raw, 0.5), percentile(&raw, 0.99));
        let values = match fixed {
            Fixed::Parsed => "header values parsed per request",
            Fixed::Prebuilt(..) => "header values prebuilt",
        };
        println!(
            "authenticated GET, {SAMPLES} interleaved pairs after {WARMUP} warm-up (raw: {values})"
        );
        println!(
            "session.authorize: median {om:?} p99 {op:?} | raw reqwest: median {rm:?} p99 {rp:?}"
        );
        println!(
            "ratio median {:.3}  p99 {:.3}",
            om.as_secs_f64() / rm.as_secs_f64(),
            op.as_secs_f64() / rp.as_secs_f64()
        );
    });
}
