//! A fleet sharing one Redis token store: eight processes of 200 tasks each make one login,
//! and one refresh at expiry; a holder whose login outlasts the lease's lifetime keeps it alive
//! and still makes the fleet's one login; a holder that lost its lease stores nothing; a holder
//! killed mid-renewal is taken over after its lease; Redis stopped mid-run leaves the sessions
//! serving; nothing in Redis is a usable token or names an account.
//!
//! They use the `redis-server` CI started (`TOKENSMITH_TEST_REDIS_PORT`) or start their own
//! (Debian package `redis-server`); the test that stops Redis always starts its own. Without
//! a server they say so and pass, unless `TOKENSMITH_REQUIRE_REDIS=1` (CI sets it) makes that
//! a failure.
#![cfg(feature = "fib")]

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use std::sync::{Arc, Mutex};

use common::held::{wait_until, HeldServer};
use common::probe::{sample_tokens, Counts, Probe};
use tokensmith::sandbox::{demo, Sandbox};
use tokensmith::store::{RedisStore, SealingKey, StoreKey, TokenStore};
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

    /// The URL of database `db`: each test has its own, emptied when it starts.
    fn url(&self, db: u8) -> String {
        self.cli(db, &["FLUSHDB"]);
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn cli(&self, db: u8, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "-n", &db.to_string()])
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

/// A session of the sandbox's demo fib account at `base_url`.
fn fib_demo(base_url: impl Into<String>) -> tokensmith::fib::SessionBuilder {
    tokensmith::fib::Session::builder()
        .base_url(base_url)
        .email(demo::FIB_EMAIL)
        .private_key(demo::FIB_PRIVATE_KEY)
}

/// A sandbox, and a demo fib session on it whose store is a lazy `RedisStore` on `port` of
/// this machine (connected at first use).
async fn fib_on_lazy_store(port: u16) -> (Sandbox, tokensmith::fib::Session) {
    let store = RedisStore::lazy(&format!("redis://127.0.0.1:{port}/"), key()).unwrap();
    let sandbox = Sandbox::start().await;
    let session = fib_demo(sandbox.base_url(Service::Fib))
        .token_store(store)
        .build()
        .unwrap();
    (sandbox, session)
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
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
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

/// One replica: 200 tasks ask for a token at once, once (prints `TOKEN <token>`); or, with
/// `FLEET_EPOCH_MS`, on a manual clock standing at that time, in steps the parent sends on
/// stdin: `ROUND` (200 tasks ask; prints `DONE <token>`) and `ADVANCE <seconds>` (the clock
/// moves; prints `DONE`), until stdin closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by the fleet tests in their own processes"]
async fn fleet_worker() {
    let base = std::env::var("FLEET_BASE_URL").unwrap();
    let mut builder = fib_demo(base);
    let clock = std::env::var("FLEET_EPOCH_MS").ok().map(|ms| {
        tokensmith::clock::ManualClock::starting_at(
            std::time::UNIX_EPOCH + Duration::from_millis(ms.parse().unwrap()),
        )
    });
    if let Some(clock) = &clock {
        builder = builder.clock(clock.clone());
    }
    if let Ok(url) = std::env::var("FLEET_REDIS_URL") {
        let ttl = std::env::var("FLEET_LEASE_MS").map_or(Duration::from_secs(10), |ms| {
            Duration::from_millis(ms.parse().unwrap())
        });
        builder = builder.token_store(Probe {
            store: RedisStore::connect(&url, key())
                .await
                .unwrap()
                .lease_ttl(ttl),
            counts: Counts::default(),
            announce: std::env::var("FLEET_ANNOUNCE").is_ok(),
        });
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
        assert_eq!(tokens.len(), 1, "one token for all 200 tasks");
        tokens.pop_first().unwrap()
    };
    let Some(clock) = clock else {
        println!("TOKEN {}", ask(session.clone()).await);
        return;
    };
    println!("READY");
    loop {
        let line = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map(|_| line)
        })
        .await
        .unwrap()
        .unwrap();
        match line.trim().split_once(' ') {
            None if line.trim() == "ROUND" => println!("DONE {}", ask(session.clone()).await),
            Some(("ADVANCE", secs)) => {
                clock.advance(Duration::from_secs(secs.parse().unwrap()));
                println!("DONE");
            }
            _ if line.is_empty() => return,
            _ => panic!("unknown step {line:?}"),
        }
    }
}

/// The fleet's replicas, driven step by step.
struct Fleet {
    workers: Vec<(Child, Arc<Mutex<Vec<String>>>)>,
    steps: usize,
}

impl Fleet {
    /// Sends `step` to every replica at once and waits until each has done it; returns what
    /// each printed after `DONE`.
    async fn step(&mut self, step: &str) -> Vec<String> {
        use std::io::Write;
        for (child, _) in &mut self.workers {
            let stdin = child.stdin.as_mut().unwrap();
            writeln!(stdin, "{step}").unwrap();
            stdin.flush().unwrap();
        }
        self.steps += 1;
        let done = |lines: &Mutex<Vec<String>>| {
            let lines = lines.lock().unwrap();
            let done: Vec<_> = lines.iter().filter(|l| l.starts_with("DONE")).collect();
            done.get(self.steps - 1)
                .map(|l| l.trim_start_matches("DONE").trim().to_owned())
        };
        wait_until(&format!("every replica did {step}"), || {
            self.workers.iter().all(|(_, lines)| done(lines).is_some())
        })
        .await;
        self.workers
            .iter()
            .map(|(_, lines)| done(lines).unwrap())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_replicas_make_one_login_and_one_refresh_per_expiry() {
    let Some(redis) = Redis::shared() else { return };
    // The sandbox and the replicas share one time, moved by the test: no replica can be
    // late for a lifetime, however loaded the machine.
    let epoch_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    let clock = tokensmith::clock::ManualClock::starting_at(
        std::time::UNIX_EPOCH + Duration::from_millis(epoch_ms.parse().unwrap()),
    );
    let sandbox = Sandbox::builder().clock(clock.clone()).start().await;
    let base = sandbox.base_url(Service::Fib);

    let url = redis.url(1);
    let mut fleet = Fleet {
        workers: (0..8)
            .map(|_| {
                let mut child = spawn_worker(&base, Some(&url), &[("FLEET_EPOCH_MS", &epoch_ms)]);
                let lines = read_lines(&mut child);
                (child, lines)
            })
            .collect(),
        steps: 0,
    };
    wait_until("every replica is up", || {
        fleet
            .workers
            .iter()
            .all(|(_, lines)| printed(lines, "READY"))
    })
    .await;
    let first = fleet.step("ROUND").await;
    let counters = sandbox.counters(Service::Fib);
    assert_eq!((counters.logins, counters.refreshes), (1, 0));
    assert!(first.iter().all(|t| t == &first[0]), "one token: {first:?}");

    // Past the renewal margin of fib's 300-second token, still before its expiry.
    clock.advance(Duration::from_secs(290));
    fleet.step("ADVANCE 290").await;
    let second = fleet.step("ROUND").await;
    assert!(
        second.iter().all(|t| t == &second[0]),
        "one token: {second:?}"
    );
    assert_ne!(second[0], first[0], "renewed");
    for (child, _) in &mut fleet.workers {
        drop(child.stdin.take());
    }
    let workers: Vec<_> = fleet.workers.drain(..).map(|(child, _)| child).collect();
    tokio::task::spawn_blocking(move || {
        for mut child in workers {
            assert!(child.wait().unwrap().success());
        }
    })
    .await
    .unwrap();
    let shared = sandbox.counters(Service::Fib);
    println!(
        "with the shared store: 8 processes x 200 tasks, {} login(s), {} refresh(es) over one expiry",
        shared.logins, shared.refreshes
    );
    assert_eq!((shared.logins, shared.refreshes), (1, 1));

    // Redis holds no usable token, and no key names the account.
    let keys = redis.cli(1, &["--scan"]);
    assert!(!keys.contains(demo::FIB_EMAIL), "{keys}");
    let stored_key = keys
        .lines()
        .find(|k| !k.ends_with(":lease"))
        .expect("a stored token set");
    let value = redis.cli(1, &["GET", stored_key]);
    let stored = RedisStore::connect(&url, key())
        .await
        .unwrap()
        .load(&StoreKey::new(Service::Fib, &base, demo::FIB_EMAIL))
        .await
        .unwrap()
        .expect("the fleet's token set, under the account's key");
    let refresh = stored.refresh.expect("fib's refresh token");
    for secret in [&stored.access, &refresh] {
        for part in secret.expose_secret().split('.') {
            assert!(!value.contains(part), "{part} in the clear: {value}");
        }
    }
    assert!(
        !value.contains("accessToken") && !value.contains("refresh"),
        "{value}"
    );

    // The same fleet without the store: every replica logs in for itself.
    let sandbox = Sandbox::builder().start().await;
    let base = sandbox.base_url(Service::Fib);
    let workers: Vec<_> = (0..8).map(|_| spawn_worker(&base, None, &[])).collect();
    tokio::task::spawn_blocking(move || workers.into_iter().for_each(|w| drop(wait_ok(w))))
        .await
        .unwrap();
    let alone = sandbox.counters(Service::Fib).logins;
    println!("without it: {alone} logins");
    assert_eq!(alone, 8);
}

/// An expiry far in the future for the tokens the held server issues.
const EXP: u64 = 4_000_000_000;

/// fib's login answer, the `i`-th token set the held server issues.
fn fib_login(i: usize) -> (u16, String) {
    let body = serde_json::json!({
        "status": {"code": 200, "name": "OK"},
        "data": {
            "accessToken": common::jwt(EXP, &format!("access-{i}")),
            "refreshToken": common::jwt(EXP, &format!("refresh-{i}")),
            "expirationTime": 300
        }
    });
    (200, body.to_string())
}

/// Every request the held server received was a fib login for the demo account.
fn assert_fib_logins(server: &HeldServer, count: usize) {
    let requests = server.requests();
    assert_eq!(requests.len(), count, "logins");
    for request in requests {
        assert_eq!(request.method, "POST");
        assert_eq!(
            request.path,
            "/auth/api/v1/authentication-management/session"
        );
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["email"], demo::FIB_EMAIL);
    }
}

/// The one lease key in database `db`, and its holder's token (empty when there is none).
fn lease_in(redis: &Redis, db: u8) -> (String, String) {
    let keys = redis.cli(db, &["--scan", "--pattern", "*:lease"]);
    let keys: Vec<_> = keys.lines().filter(|k| !k.is_empty()).collect();
    match keys.as_slice() {
        [] => (String::new(), String::new()),
        [key] => (
            (*key).to_owned(),
            redis.cli(db, &["GET", key]).trim().to_owned(),
        ),
        more => panic!("one lease at a time: {more:?}"),
    }
}

/// A worker process, and the lines it has printed so far.
fn spawn_worker_lines(
    base_url: &str,
    redis_url: &str,
    extra: &[(&str, &str)],
) -> (Child, Arc<Mutex<Vec<String>>>) {
    let mut child = spawn_worker(base_url, Some(redis_url), extra);
    let lines = read_lines(&mut child);
    (child, lines)
}

/// The lines `child` prints, as they come.
fn read_lines(child: &mut Child) -> Arc<Mutex<Vec<String>>> {
    use std::io::BufRead;
    let lines = Arc::new(Mutex::new(Vec::new()));
    let stdout = child.stdout.take().unwrap();
    let seen = lines.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            // The first line follows the test harness's "test … ".
            let line = match line.split_once(" ... ") {
                Some((_, printed)) => printed.to_owned(),
                None => line,
            };
            seen.lock().unwrap().push(line);
        }
    });
    lines
}

/// The worker printed `line` (after the test harness's "test … " on the first line).
fn printed(lines: &Mutex<Vec<String>>, line: &str) -> bool {
    lines.lock().unwrap().iter().any(|l| l.ends_with(line))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_killed_mid_renewal_is_taken_over_after_its_lease() {
    let Some(redis) = Redis::shared() else { return };
    let server = HeldServer::start(fib_login).await;
    let url = redis.url(2);
    let extra = [("FLEET_LEASE_MS", "1000"), ("FLEET_ANNOUNCE", "1")];
    let (mut holder, _) = spawn_worker_lines(&server.uri(), &url, &extra);
    // The holder has taken the lease and its login is in flight (held): kill it.
    wait_until("the holder logs in", || server.requests().len() == 1).await;
    let (lease_key, crashed) = lease_in(&redis, 2);
    assert!(!crashed.is_empty(), "the holder's lease is in Redis");
    holder.kill().unwrap();
    holder.wait().unwrap();

    let (taker, taker_lines) = spawn_worker_lines(&server.uri(), &url, &extra);
    wait_until("the next replica asks for the lease", || {
        printed(&taker_lines, "LEASE refused") || server.requests().len() > 1
    })
    .await;
    // While the crashed holder's lease lives, the next replica waits; once it is gone, it
    // takes the lease and logs in.
    wait_until("the crashed holder's lease is taken over", || {
        let logins = server.requests().len();
        let (_, holder) = lease_in(&redis, 2);
        assert!(
            logins == 1 || holder != crashed,
            "a second login while the crashed holder's lease lived"
        );
        logins == 2 && !holder.is_empty()
    })
    .await;
    let (taken, taker_holds) = lease_in(&redis, 2);
    assert_eq!(taken, lease_key);
    assert_ne!(taker_holds, crashed, "a new holder");
    server.release_all();
    tokio::task::spawn_blocking(move || wait_ok(taker))
        .await
        .unwrap();
    assert!(printed(
        &taker_lines,
        &format!("TOKEN {}", common::jwt(EXP, "access-1"))
    ));
    assert_fib_logins(&server, 2);
    assert_eq!(lease_in(&redis, 2).1, "", "released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_whose_login_outlasts_the_lease_keeps_it_and_the_fleet_logs_in_once() {
    let Some(redis) = Redis::shared() else { return };
    let server = HeldServer::start(fib_login).await;
    let url = redis.url(3);
    let ttl = Duration::from_secs(3);
    let counts = Counts::default();
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let mut replicas = Vec::new();
    for _ in 0..2 {
        // Each replica with its own connection, as in its own process.
        let store = RedisStore::connect(&url, key())
            .await
            .unwrap()
            .lease_ttl(ttl);
        let session = fib_demo(server.uri())
            .token_store(Probe {
                store,
                counts: counts.clone(),
                announce: false,
            })
            .build()
            .unwrap();
        let barrier = barrier.clone();
        replicas.push(tokio::spawn(async move {
            barrier.wait().await;
            let token = session.access_token().await.unwrap();
            token.secret().expose_secret().to_owned()
        }));
    }
    wait_until("one replica logs in while the other waits", || {
        let logins = server.requests().len();
        logins >= 2 || (logins == 1 && counts.refused.load(Ordering::SeqCst) >= 1)
    })
    .await;
    let (_, holder) = lease_in(&redis, 3);
    assert!(!holder.is_empty(), "the lease is in Redis");
    // The login stays in flight for at least twice the lease's lifetime, and until the lease
    // was seen extended twice (a loaded machine only makes this wait longer): all along the
    // lease stays its holder's and the other replica keeps waiting.
    let (lease_key, _) = lease_in(&redis, 3);
    let held_since = Instant::now();
    let mut extended = 0;
    let mut last_left = i64::MAX;
    wait_until("the lease outlives its lifetime, extended", || {
        assert_eq!(server.requests().len(), 1, "the waiting replica logged in");
        let seen = redis.cli(
            3,
            &[
                "EVAL",
                "return {redis.call('GET', KEYS[1]) or '', redis.call('PTTL', KEYS[1])}",
                "1",
                &lease_key,
            ],
        );
        let mut seen = seen.lines();
        let (now_holding, left) = (seen.next().unwrap_or_default(), seen.next());
        assert_eq!(now_holding, holder, "the lease changed hands");
        let left: i64 = left.unwrap().trim().parse().unwrap();
        if left > last_left {
            extended += 1;
        }
        last_left = left;
        held_since.elapsed() >= ttl * 2 && extended >= 2
    })
    .await;
    server.release_all();
    let mut tokens = Vec::new();
    for replica in replicas {
        tokens.push(replica.await.unwrap());
    }
    let issued = common::jwt(EXP, "access-0");
    assert_eq!(tokens, [issued.clone(), issued.clone()]);
    assert_fib_logins(&server, 1);
    let stored = RedisStore::connect(&url, key())
        .await
        .unwrap()
        .load(&StoreKey::new(Service::Fib, &server.uri(), demo::FIB_EMAIL))
        .await
        .unwrap()
        .expect("the login's token set");
    assert_eq!(stored.access.expose_secret(), issued, "the newest set");
    assert_eq!(lease_in(&redis, 3).1, "", "released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_lost_its_lease_stores_nothing() {
    let Some(redis) = Redis::shared() else { return };
    let url = redis.url(4);
    let stalled = RedisStore::connect(&url, key()).await.unwrap();
    let taker = RedisStore::connect(&url, key()).await.unwrap();
    let account = StoreKey::new(Service::Fib, "https://fib.example", "fenced@example.com");

    let lost = stalled.lease(&account).await.unwrap().expect("granted");
    assert!(taker.lease(&account).await.unwrap().is_none(), "held");
    let (lease_key, _) = lease_in(&redis, 4);
    let left: u64 = redis.cli(4, &["PTTL", &lease_key]).trim().parse().unwrap();
    assert!(
        (9_000..=10_000).contains(&left),
        "the default lease lives 10 s: {left} ms left"
    );
    // The holder stalls past its lease (a pause, a partition): the lease is gone, as its
    // expiry would remove it, and the next replica takes it and stores a newer set.
    redis.cli(4, &["DEL", &lease_key]);
    let taken = taker.lease(&account).await.unwrap().expect("free again");
    taker
        .save_leased(&account, &sample_tokens("newer"), &taken)
        .await
        .unwrap();

    let refused = stalled
        .save_leased(&account, &sample_tokens("older"), &lost)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("not stored"), "{refused}");
    let stored = stalled.load(&account).await.unwrap().unwrap();
    assert_eq!(
        stored.access.expose_secret(),
        "newer",
        "the newest set wins"
    );

    // Releasing a lost lease leaves the new holder's alone.
    stalled.release(&account, &lost).await.unwrap();
    assert_eq!(lease_in(&redis, 4).1, taken.token());
    taker.release(&account, &taken).await.unwrap();
    assert_eq!(lease_in(&redis, 4).1, "");
    // Nothing names the account.
    assert!(!redis.cli(4, &["--scan"]).contains("fenced@"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_keep_serving_when_redis_stops() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let clock = common::test_clock();
    let sandbox = Sandbox::builder().clock(clock.clone()).start().await;
    let store = RedisStore::connect(&redis.url(0), key()).await.unwrap();
    let session = fib_demo(sandbox.base_url(Service::Fib))
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
    let (sandbox, session) = fib_on_lazy_store(port).await;
    session.access_token().await.unwrap();
    session.access_token().await.unwrap();
    assert_eq!(
        sandbox.counters(Service::Fib).logins,
        1,
        "per-process caching still works"
    );
    assert!(RedisStore::lazy("not a url", key()).is_err());
    // A lease that could not outlive its own keep-alive's period is raised to 30 ms.
    let floor = RedisStore::lazy("redis://127.0.0.1:1/", key())
        .unwrap()
        .lease_ttl(Duration::ZERO);
    assert!(
        format!("{floor:?}").contains("lease_ttl: 30ms"),
        "{floor:?}"
    );
}

/// A Redis that takes connections and never answers (a hung server, a black-holed route) holds
/// a session up only for the store's timeouts: it then serves on its own. The outer bound is a
/// deadlock guard, not a speed verdict: without the timeouts the call never returns. (How many
/// operations pay the timeouts is `cache::tests`' business: one per renewal, then none for
/// 30 s.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_never_answers_costs_its_timeouts_and_the_session_serves_on_its_own() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = Arc::new(Mutex::new(Vec::new()));
    let holder = tokio::spawn({
        let held = held.clone();
        async move {
            while let Ok((socket, _)) = listener.accept().await {
                held.lock().unwrap().push(socket);
            }
        }
    });
    let (sandbox, session) = fib_on_lazy_store(port).await;
    let started = Instant::now();
    let token = tokio::time::timeout(Duration::from_secs(60), session.access_token())
        .await
        .expect("the store's timeouts end the wait")
        .unwrap();
    println!("served after {:?}", started.elapsed());
    assert_eq!(token.origin(), tokensmith::TokenOrigin::Login);
    assert_eq!(sandbox.counters(Service::Fib).logins, 1);
    assert!(!held.lock().unwrap().is_empty(), "the store did connect");
    holder.abort();
}

/// README: "the lease ... lives 10 s (`lease_ttl(…)` changes it)". The lease's own expiry in
/// Redis, read back with PTTL: at most 10 s, and not the moment or two this test takes less.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_lives_10_s_by_default_and_lease_ttl_changes_it() {
    let Some(redis) = Redis::shared() else { return };
    let url = redis.url(6);
    let account = StoreKey::new(Service::Fib, "https://fib.example", "ttl@example.com");
    let pttl = |key: &str| -> u64 {
        let text = redis.cli(6, &["PTTL", key]);
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("PTTL {key}: {text}"))
    };
    let store = RedisStore::connect(&url, key()).await.unwrap();
    let lease = store.lease(&account).await.unwrap().expect("granted");
    let (lease_key, holder) = lease_in(&redis, 6);
    assert_eq!(holder, lease.token());
    let left = pttl(&lease_key);
    assert!((5_000..=10_000).contains(&left), "{left} ms");
    store.release(&account, &lease).await.unwrap();

    let store = store.lease_ttl(Duration::from_secs(600));
    let lease = store.lease(&account).await.unwrap().expect("granted");
    let left = pttl(&lease_in(&redis, 6).0);
    assert!((595_000..=600_000).contains(&left), "{left} ms");
    store.release(&account, &lease).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_dropped_without_release_is_given_back_at_once() {
    let Some(redis) = Redis::shared() else { return };
    let url = redis.url(5);
    // A lifetime far beyond the wait below: only giving it back can free it in time.
    let store = RedisStore::connect(&url, key())
        .await
        .unwrap()
        .lease_ttl(Duration::from_secs(600));
    let account = StoreKey::new(Service::Fib, "https://fib.example", "dropped@example.com");
    let lease = store.lease(&account).await.unwrap().expect("granted");
    let (_, holder) = lease_in(&redis, 5);
    assert_eq!(holder, lease.token());
    // A renewal cancelled with its lease (every caller gave up): no release() call.
    drop(lease);
    wait_until("the dropped lease is given back", || {
        lease_in(&redis, 5).1.is_empty()
    })
    .await;
    assert!(store.lease(&account).await.unwrap().is_some());
}

/// `tokensmith:fib:{TAG}` with TAG 32 lowercase hex characters: TAG.
fn entry_tag(key: &str) -> &str {
    let tag = key
        .strip_prefix("tokensmith:fib:{")
        .and_then(|rest| rest.strip_suffix('}'))
        .unwrap_or_else(|| panic!("not an entry's key: {key}"));
    assert!(
        tag.len() == 32
            && tag
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{key}"
    );
    tag
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_account_has_its_own_entry_and_its_lease_shares_the_entry_s_hash_tag() {
    let Some(redis) = Redis::shared() else { return };
    let url = redis.url(11);
    let store = RedisStore::connect(&url, key()).await.unwrap();
    let a = StoreKey::new(Service::Fib, "https://fib.example", "a@example.com");
    let b = StoreKey::new(Service::Fib, "https://fib.example", "b@example.com");
    store.save(&a, &sample_tokens("access-a")).await.unwrap();
    store.save(&b, &sample_tokens("access-b")).await.unwrap();
    let lease = store.lease(&a).await.unwrap().expect("granted");

    let (lease_key, holder) = lease_in(&redis, 11);
    assert_eq!(holder, lease.token());
    let a_entry = lease_key
        .strip_suffix(":lease")
        .unwrap_or_else(|| panic!("{lease_key}"));
    let a_tag = entry_tag(a_entry);
    let mut keys: Vec<String> = redis
        .cli(11, &["--scan"])
        .lines()
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect();
    keys.sort();
    let entries: Vec<&String> = keys.iter().filter(|k| !k.ends_with(":lease")).collect();
    assert_eq!(keys.len(), 3, "two entries and one lease: {keys:?}");
    assert_eq!(entries.len(), 2, "{keys:?}");
    let b_entry = entries
        .iter()
        .find(|k| k.as_str() != a_entry)
        .unwrap_or_else(|| panic!("a's entry is not among {keys:?}"));
    assert!(entries.iter().any(|k| k.as_str() == a_entry), "{keys:?}");
    assert_ne!(entry_tag(b_entry), a_tag);

    assert_eq!(
        store
            .load(&a)
            .await
            .unwrap()
            .unwrap()
            .access
            .expose_secret(),
        "access-a"
    );
    assert_eq!(
        store
            .load(&b)
            .await
            .unwrap()
            .unwrap()
            .access
            .expose_secret(),
        "access-b"
    );
    store.release(&a, &lease).await.unwrap();
    assert_eq!(lease_in(&redis, 11).1, "", "released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_a_redis_that_drops_every_connection_tries_twice_then_fails() {
    // Accepts, then closes at once: every attempt fails before its handshake. `connect` waits
    // for its first connection, so no reconnection runs behind it to blur the count.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    let error = RedisStore::connect(&format!("redis://127.0.0.1:{port}/"), key())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), tokensmith::ErrorKind::Configuration);
    assert_eq!(
        error.to_string(),
        "configuration error: Redis token store: cannot connect: Io"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "one try and one retry");
}

/// README: a Redis that takes connections and never answers costs an operation its 2 s
/// connection timeout twice and the 100–200 ms wait before the second try (with a 1 s connection
/// timeout it reads 2.15 s). Counted on Tokio's paused clock
/// (it moves only when every task waits), so the figure is the timeouts' own, whatever the
/// machine's load; every operation pays it (the session's 30 s bypass is what spares the next
/// ones, `cache::tests`).
#[tokio::test(start_paused = true)]
async fn a_redis_that_never_answers_costs_an_operation_its_2_s_connection_timeout_twice() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let store = RedisStore::lazy(&format!("redis://127.0.0.1:{port}/0"), key()).unwrap();
    let account = StoreKey::new(Service::Fib, "https://fib.example", "never@example.com");
    for attempt in 0..2 {
        let started = tokio::time::Instant::now();
        let error = store.load(&account).await.unwrap_err();
        let waited = started.elapsed();
        assert_eq!(error.kind(), tokensmith::ErrorKind::Configuration);
        assert_eq!(error.message(), Some("Redis token store: GET: Io"));
        let timeouts = Duration::from_secs(4);
        assert!(
            waited >= timeouts + Duration::from_millis(100)
                && waited <= timeouts + Duration::from_millis(200),
            "attempt {attempt}: {waited:?}"
        );
    }
    holder.abort();
}
