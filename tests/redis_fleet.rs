//! A fleet sharing one Redis token store: eight processes of 200 tasks each make one login,
//! and one refresh at expiry; a holder killed mid-renewal is taken over after its lease; Redis
//! stopped mid-run leaves the sessions serving; nothing in Redis is a usable token.
//!
//! They use the `redis-server` CI started (`TOKENSMITH_TEST_REDIS_PORT`) or start their own
//! (Debian package `redis-server`); the test that stops Redis always starts its own. Without
//! a server they say so and pass, unless `TOKENSMITH_REQUIRE_REDIS=1` (CI sets it) makes that
//! a failure.
#![cfg(feature = "fib")]

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokensmith::sandbox::{demo, Sandbox};
use tokensmith::store::{RedisStore, SealingKey};
use tokensmith::{SecretString, Service};

const KEY_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// A redis-server on a free port, stopped when dropped.
struct Redis {
    child: Option<Child>,
    port: u16,
}

impl Redis {
    /// The server CI started (`TOKENSMITH_TEST_REDIS_PORT`), or one of our own.
    fn shared() -> Option<Self> {
        match std::env::var("TOKENSMITH_TEST_REDIS_PORT") {
            Ok(port) => Some(Self {
                child: None,
                port: port.parse().expect("a port number"),
            }),
            Err(_) => Self::start(),
        }
    }

    /// A server of our own, which the test may stop.
    fn start() -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(_) => {
                let required = std::env::var("TOKENSMITH_REQUIRE_REDIS").is_ok_and(|v| v == "1");
                assert!(
                    !required,
                    "redis-server is required (TOKENSMITH_REQUIRE_REDIS=1) but cannot start"
                );
                eprintln!("redis-server not installed: skipping (apt-get install redis-server)");
                return None;
            }
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self {
            child: Some(child),
            port,
        })
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn key() -> SealingKey {
    SealingKey::from_hex(&SecretString::new(KEY_HEX)).unwrap()
}

/// Runs this test binary's `fleet_worker` in a new process.
fn spawn_worker(base_url: &str, redis_url: Option<&str>, extra: &[(&str, &str)]) -> Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "fleet_worker",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("FLEET_BASE_URL", base_url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(url) = redis_url {
        command.env("FLEET_REDIS_URL", url);
    }
    for (k, v) in extra {
        command.env(k, v);
    }
    command.spawn().expect("the worker starts")
}

fn wait_ok(child: Child) -> String {
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "worker failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// One replica: 200 tasks ask for a token; then, just before it expires, 200 ask again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by the fleet tests in their own processes"]
async fn fleet_worker() {
    let base = std::env::var("FLEET_BASE_URL").unwrap();
    let mut builder = tokensmith::fib::Session::builder()
        .base_url(base)
        .email(demo::FIB_EMAIL)
        .private_key(demo::FIB_PRIVATE_KEY);
    if let Ok(url) = std::env::var("FLEET_REDIS_URL") {
        let ttl = std::env::var("FLEET_LEASE_MS").map_or(Duration::from_secs(10), |ms| {
            Duration::from_millis(ms.parse().unwrap())
        });
        builder = builder.token_store(
            RedisStore::connect(&url, key())
                .await
                .unwrap()
                .lease_ttl(ttl),
        );
    }
    let session = builder.build().unwrap();
    let ask = |session: tokensmith::fib::Session| async move {
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let session = session.clone();
                tokio::spawn(async move { session.access_token().await })
            })
            .collect();
        let mut tokens = std::collections::BTreeSet::new();
        for task in tasks {
            tokens.insert(
                task.await
                    .unwrap()
                    .unwrap()
                    .secret()
                    .expose_secret()
                    .to_owned(),
            );
        }
        tokens
    };
    let first = ask(session.clone()).await;
    assert_eq!(first.len(), 1);
    if std::env::var("FLEET_ONE_ROUND").is_ok() {
        return;
    }
    let token = session.access_token().await.unwrap();
    tokio::time::sleep(
        token
            .expires_in()
            .saturating_sub(Duration::from_millis(150)),
    )
    .await;
    let second = ask(session.clone()).await;
    assert_eq!(second.len(), 1);
    println!("FLEET first={} second={}", first.len(), second.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_replicas_make_one_login_and_one_refresh_per_expiry() {
    let Some(redis) = Redis::shared() else { return };
    let sandbox = Sandbox::builder()
        // Long enough for all eight processes to start within the first lifetime.
        .fib_access_lifetime(Duration::from_secs(8))
        .start()
        .await;
    let base = sandbox.base_url(Service::Fib);

    let url = redis.url();
    let workers: Vec<_> = (0..8)
        .map(|_| spawn_worker(&base, Some(&url), &[]))
        .collect();
    let outputs: Vec<_> =
        tokio::task::spawn_blocking(move || workers.into_iter().map(wait_ok).collect())
            .await
            .unwrap();
    assert_eq!(outputs.len(), 8);
    let shared = sandbox.counters(Service::Fib);
    println!(
        "with the shared store: 8 processes x 200 tasks, {} login(s), {} refresh(es) over one expiry",
        shared.logins, shared.refreshes
    );
    assert_eq!((shared.logins, shared.refreshes), (1, 1));

    // The values in Redis hold no usable token.
    let keys = redis.cli(&["--scan"]);
    let stored_key = keys
        .lines()
        .find(|k| !k.ends_with(":lease"))
        .expect("a stored token set");
    let value = redis.cli(&["GET", stored_key]);
    assert!(!value.contains("eyJ"), "no JWT in the clear: {value}");
    assert!(
        !value.contains("accessToken") && !value.contains("refresh"),
        "{value}"
    );

    // The same fleet without the store: every replica logs in for itself.
    let sandbox = Sandbox::builder().start().await;
    let base = sandbox.base_url(Service::Fib);
    let workers: Vec<_> = (0..8)
        .map(|_| spawn_worker(&base, None, &[("FLEET_ONE_ROUND", "1")]))
        .collect();
    tokio::task::spawn_blocking(move || workers.into_iter().for_each(|w| drop(wait_ok(w))))
        .await
        .unwrap();
    let alone = sandbox.counters(Service::Fib).logins;
    println!("without it: {alone} logins");
    assert_eq!(alone, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_killed_mid_renewal_is_taken_over_after_its_lease() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let Some(redis) = Redis::shared() else { return };
    let server = MockServer::start().await;
    let tokens = serde_json::json!({
        "status": {"code": 200, "name": "OK"},
        "data": {
            "accessToken": common::jwt(4_000_000_000, "a"),
            "refreshToken": common::jwt(4_000_000_000, "r"),
            "expirationTime": 300
        }
    });
    Mock::given(method("POST"))
        .and(path("/auth/api/v1/authentication-management/session"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(tokens)
                .set_delay(Duration::from_millis(1500)),
        )
        .mount(&server)
        .await;
    let url = redis.url();
    let extra = [("FLEET_ONE_ROUND", "1"), ("FLEET_LEASE_MS", "1000")];
    let mut holder = spawn_worker(&server.uri(), Some(&url), &extra);
    // The holder has taken the lease and is waiting for its slow login: kill it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.received_requests().await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the holder never logged in");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    holder.kill().unwrap();
    holder.wait().unwrap();
    let started = Instant::now();
    let taker = spawn_worker(&server.uri(), Some(&url), &extra);
    tokio::task::spawn_blocking(move || wait_ok(taker))
        .await
        .unwrap();
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        2,
        "the second replica logged in"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "it logged in itself"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_keep_serving_when_redis_stops() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let clock = common::test_clock();
    let sandbox = Sandbox::builder().clock(clock.clone()).start().await;
    let store = RedisStore::connect(&redis.url(), key()).await.unwrap();
    let session = tokensmith::fib::Session::builder()
        .base_url(sandbox.base_url(Service::Fib))
        .email(demo::FIB_EMAIL)
        .private_key(demo::FIB_PRIVATE_KEY)
        .clock(clock.clone())
        .token_store(store)
        .build()
        .unwrap();
    session.access_token().await.unwrap();

    redis.stop();

    session.access_token().await.unwrap();
    clock.advance(Duration::from_secs(290));
    let renewed = session.access_token().await.unwrap();
    assert_eq!(renewed.origin(), tokensmith::TokenOrigin::Refresh);
    clock.advance(Duration::from_secs(24 * 3600));
    session.access_token().await.unwrap();
    let counters = sandbox.counters(Service::Fib);
    assert_eq!(
        (counters.logins, counters.refreshes),
        (2, 1),
        "per-process behaviour"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_starts_and_serves_while_redis_is_down() {
    // Nothing listens on this port: a lazy store connects on first use, and fails then.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = RedisStore::lazy(&format!("redis://127.0.0.1:{port}/"), key()).unwrap();
    let sandbox = Sandbox::start().await;
    let session = tokensmith::fib::Session::builder()
        .base_url(sandbox.base_url(Service::Fib))
        .email(demo::FIB_EMAIL)
        .private_key(demo::FIB_PRIVATE_KEY)
        .token_store(store)
        .build()
        .unwrap();
    session.access_token().await.unwrap();
    session.access_token().await.unwrap();
    assert_eq!(
        sandbox.counters(Service::Fib).logins,
        1,
        "per-process caching still works"
    );
    assert!(RedisStore::lazy("not a url", key()).is_err());
}
