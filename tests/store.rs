//! Token stores: sessions sharing a store share one login per expiry; a file store keeps
//! nothing readable; a broken store degrades to per-session behaviour, never to an outage.
#![cfg(all(feature = "s7risk", feature = "fib"))]

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::held::{wait_until, HeldServer};
use common::probe::{sample_tokens, Counts, Probe};
use tokensmith::clock::ManualClock;
use tokensmith::sandbox::{demo, Sandbox};
use tokensmith::store::{FileStore, MemoryStore, SealingKey, StoreKey, TokenStore};
use tokensmith::{RefreshPolicy, SecretString, Service, TokenOrigin};

fn s7risk(
    sandbox: &Sandbox,
    clock: &ManualClock,
    store: impl TokenStore,
) -> tokensmith::s7risk::Session {
    tokensmith::s7risk::Session::builder()
        .base_url(sandbox.base_url(Service::S7risk))
        .origin(demo::S7RISK_ORIGIN)
        .user(demo::S7RISK_EMAIL, demo::S7RISK_PASSWORD)
        .clock(clock.clone())
        .refresh_policy(RefreshPolicy::new().with_jitter(false))
        .token_store(store)
        .build()
        .unwrap()
}

fn fib(sandbox: &Sandbox, clock: &ManualClock, store: impl TokenStore) -> tokensmith::fib::Session {
    tokensmith::fib::Session::builder()
        .base_url(sandbox.base_url(Service::Fib))
        .email(demo::FIB_EMAIL)
        .private_key(demo::FIB_PRIVATE_KEY)
        .clock(clock.clone())
        .refresh_policy(RefreshPolicy::new().with_jitter(false))
        .token_store(store)
        .build()
        .unwrap()
}

fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tokensmith-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("tokens.json")
}

#[tokio::test]
async fn sessions_sharing_a_memory_store_share_one_login() {
    let clock = common::test_clock();
    let sandbox = Sandbox::builder().clock(clock.clone()).start().await;
    let store = MemoryStore::new();
    let first = s7risk(&sandbox, &clock, store.clone());
    let second = s7risk(&sandbox, &clock, store.clone());
    let a = first.access_token().await.unwrap();
    let b = second.access_token().await.unwrap();
    assert_eq!(a.secret().expose_secret(), b.secret().expose_secret());
    assert_eq!(b.origin(), TokenOrigin::Store);
    assert_eq!(sandbox.counters(Service::S7risk).logins, 1);

    // Past the margin, one of them logs in again and the other takes that token.
    clock.advance(Duration::from_secs(24 * 3600 - 30));
    let c = first.access_token().await.unwrap();
    let d = second.access_token().await.unwrap();
    assert_eq!(c.secret().expose_secret(), d.secret().expose_secret());
    assert_eq!(sandbox.counters(Service::S7risk).logins, 2);

    second.logout().await.unwrap();
    let key = StoreKey::new(
        Service::S7risk,
        &sandbox.base_url(Service::S7risk),
        &format!("{}|user:{}", demo::S7RISK_ORIGIN, demo::S7RISK_EMAIL),
    );
    assert!(
        store.load(&key).await.unwrap().is_none(),
        "logout empties the store"
    );
}

#[tokio::test]
async fn a_file_store_carries_tokens_between_runs_sealed_and_private() {
    let clock = common::test_clock();
    let sandbox = Sandbox::builder().clock(clock.clone()).start().await;
    let path = temp_path("file");
    let (key, hex) = SealingKey::generate();

    // The store counts the time since a save on the sessions' clock (the machine's by
    // default), which this test moves by hand.
    let run_one = fib(
        &sandbox,
        &clock,
        FileStore::new(&path, key).clock(clock.clone()),
    );
    let token = run_one.access_token().await.unwrap();
    drop(run_one);

    let text = std::fs::read_to_string(&path).unwrap();
    let opened = FileStore::new(&path, SealingKey::from_hex(&hex).unwrap());
    let stored = opened
        .load(&StoreKey::new(
            Service::Fib,
            &sandbox.base_url(Service::Fib),
            demo::FIB_EMAIL,
        ))
        .await
        .unwrap()
        .expect("the token set, under its key");
    assert_eq!(
        stored.access.expose_secret(),
        token.secret().expose_secret()
    );
    let refresh = stored.refresh.expect("fib's refresh token");
    assert_none_in_clear(&text, &[&stored.access, &refresh]);
    assert!(!text.contains(demo::FIB_EMAIL), "no email in key names");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // A second run within the lifetime makes no request at all.
    let key = SealingKey::from_hex(&hex).unwrap();
    let run_two = fib(
        &sandbox,
        &clock,
        FileStore::new(&path, key.clone()).clock(clock.clone()),
    );
    let again = run_two.access_token().await.unwrap();
    assert_eq!(
        again.secret().expose_secret(),
        token.secret().expose_secret()
    );
    assert_eq!(again.origin(), TokenOrigin::Store);
    let counters = sandbox.counters(Service::Fib);
    assert_eq!((counters.logins, counters.refreshes), (1, 0));

    // A third run past the margin refreshes with the stored refresh token.
    clock.advance(Duration::from_secs(290));
    let run_three = fib(
        &sandbox,
        &clock,
        FileStore::new(&path, key).clock(clock.clone()),
    );
    let renewed = run_three.access_token().await.unwrap();
    assert_eq!(renewed.origin(), TokenOrigin::Refresh);
    let counters = sandbox.counters(Service::Fib);
    assert_eq!((counters.logins, counters.refreshes), (1, 1));
}

#[tokio::test]
async fn a_broken_or_foreign_store_is_bypassed() {
    let clock = common::test_clock();
    let sandbox = Sandbox::builder().clock(clock.clone()).start().await;
    let path = temp_path("broken");
    let (key, _) = SealingKey::generate();
    fib(&sandbox, &clock, FileStore::new(&path, key))
        .access_token()
        .await
        .unwrap();

    // Another key cannot open it: the session logs in on its own (and overwrites the entry).
    let (other, _) = SealingKey::generate();
    fib(&sandbox, &clock, FileStore::new(&path, other))
        .access_token()
        .await
        .unwrap();
    assert_eq!(sandbox.counters(Service::Fib).logins, 2);

    // A store that cannot be written at all.
    let nowhere = path
        .parent()
        .unwrap()
        .join("missing-dir")
        .join("tokens.json");
    let (key, _) = SealingKey::generate();
    let session = fib(&sandbox, &clock, FileStore::new(&nowhere, key));
    session.access_token().await.unwrap();
    session.access_token().await.unwrap();
    assert_eq!(sandbox.counters(Service::Fib).logins, 3);

    // A file that is not a store.
    std::fs::write(&path, b"not json").unwrap();
    let (key, _) = SealingKey::generate();
    fib(&sandbox, &clock, FileStore::new(&path, key))
        .access_token()
        .await
        .unwrap();
    assert_eq!(sandbox.counters(Service::Fib).logins, 4);
}

/// Neither `secrets` nor any part of them (a JWT's header, claims or signature) is in `text`.
fn assert_none_in_clear(text: &str, secrets: &[&SecretString]) {
    for secret in secrets {
        for part in secret.expose_secret().split('.') {
            assert!(part.len() >= 8, "a JWT part: {part}");
            assert!(!text.contains(part), "{part} in the clear: {text}");
        }
    }
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

fn fib_at(base: &str, store: impl TokenStore) -> tokensmith::fib::Session {
    tokensmith::fib::Session::builder()
        .base_url(base)
        .email(demo::FIB_EMAIL)
        .private_key(demo::FIB_PRIVATE_KEY)
        .token_store(store)
        .build()
        .unwrap()
}

/// The one login the held server received was fib's, for the demo account.
fn assert_one_fib_login(server: &HeldServer) {
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "one login for both sessions");
    assert_eq!(requests[0].method, "POST");
    assert_eq!(
        requests[0].path,
        "/auth/api/v1/authentication-management/session"
    );
    let body: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["email"], demo::FIB_EMAIL);
}

/// Two sessions of one account, each given one of `stores`, are released together while the
/// token endpoint holds its answer: the answer is let go only once one login is in flight and
/// the other session was refused the lease (or, with a store that does not coordinate, once
/// both logged in). One login serves both.
async fn two_sessions_log_in_once<S: TokenStore>(stores: [S; 2]) {
    let server = HeldServer::start(fib_login).await;
    let counts = Counts::default();
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let tasks = stores.map(|store| {
        let session = fib_at(
            &server.uri(),
            Probe {
                store,
                counts: counts.clone(),
                announce: false,
            },
        );
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            let token = session.access_token().await.unwrap();
            token.secret().expose_secret().to_owned()
        })
    });
    wait_until("one session logs in while the other waits", || {
        let logins = server.requests().len();
        logins >= 2 || (logins == 1 && counts.refused.load(Ordering::SeqCst) >= 1)
    })
    .await;
    server.release_all();
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(task.await.unwrap());
    }
    assert_one_fib_login(&server);
    let issued = common::jwt(EXP, "access-0");
    assert_eq!(tokens, [issued.clone(), issued]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_on_clones_of_one_memory_store_log_in_once_at_the_same_time() {
    let store = MemoryStore::new();
    two_sessions_log_in_once([store.clone(), store]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_file_stores_on_one_path_log_in_once_at_the_same_time() {
    let path = temp_path("two-stores");
    let (key, _) = SealingKey::generate();
    // Each behind an `Arc`, as an application shares a store between its own components.
    two_sessions_log_in_once([
        Arc::new(FileStore::new(&path, key.clone())),
        Arc::new(FileStore::new(&path, key)),
    ])
    .await;
}

const WORKER_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// One process of `file_stores_in_two_processes_log_in_once`: a session on the file store,
/// announcing the leases it is granted or refused, then the token it got.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by file_stores_in_two_processes_log_in_once in its own processes"]
async fn file_store_worker() {
    let path = std::env::var("STORE_WORKER_PATH").unwrap();
    let base = std::env::var("STORE_WORKER_BASE").unwrap();
    let key = SealingKey::from_hex(&SecretString::new(WORKER_KEY)).unwrap();
    let store = Probe {
        store: FileStore::new(path, key),
        counts: Counts::default(),
        announce: true,
    };
    let token = fib_at(&base, store).access_token().await.unwrap();
    println!("TOKEN {}", token.secret().expose_secret());
}

/// A worker process, and the lines it has printed so far.
fn spawn_file_worker(base: &str, path: &std::path::Path) -> (Child, Arc<Mutex<Vec<String>>>) {
    use std::io::BufRead;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "file_store_worker",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("STORE_WORKER_PATH", path)
        .env("STORE_WORKER_BASE", base)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let stdout = child.stdout.take().unwrap();
    let seen = lines.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            seen.lock().unwrap().push(line);
        }
    });
    (child, lines)
}

/// The worker printed `line` (after the test harness's "test … " on the first line).
fn printed(lines: &Mutex<Vec<String>>, line: &str) -> bool {
    lines.lock().unwrap().iter().any(|l| l.ends_with(line))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_stores_in_two_processes_log_in_once() {
    let server = HeldServer::start(fib_login).await;
    let path = temp_path("processes");
    let (first, first_lines) = spawn_file_worker(&server.uri(), &path);
    wait_until("the first process holds the lease and logs in", || {
        printed(&first_lines, "LEASE granted") && server.requests().len() == 1
    })
    .await;
    let (second, second_lines) = spawn_file_worker(&server.uri(), &path);
    wait_until(
        "the second process waits for the lease (or logs in too)",
        || printed(&second_lines, "LEASE refused") || server.requests().len() >= 2,
    )
    .await;
    server.release_all();
    for mut child in [first, second] {
        let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        assert!(status.success());
    }
    assert_one_fib_login(&server);
    let token = format!("TOKEN {}", common::jwt(EXP, "access-0"));
    for lines in [first_lines, second_lines] {
        wait_until("the worker's output is read", || printed(&lines, &token)).await;
    }
}

/// `remover` removes one account's entry while `saver` saves another's, released together,
/// round after round: the removed entry never comes back.
async fn a_logout_racing_a_save_stays_a_logout<S: TokenStore + Clone>(remover: S, saver: S) {
    let gone = StoreKey::new(Service::Fib, "https://fib.example", "gone@example.com");
    let kept = StoreKey::new(Service::Fib, "https://fib.example", "kept@example.com");
    let tokens = sample_tokens("access-token");
    for round in 0..40 {
        remover.save(&gone, &tokens).await.unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let remove = {
            let (store, key, barrier) = (remover.clone(), gone.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.remove(&key).await.unwrap();
            })
        };
        let save = {
            let (store, key, tokens, barrier) =
                (saver.clone(), kept.clone(), tokens.clone(), barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                store.save(&key, &tokens).await.unwrap();
            })
        };
        remove.await.unwrap();
        save.await.unwrap();
        assert!(
            saver.load(&gone).await.unwrap().is_none(),
            "round {round}: the removed entry came back"
        );
        assert!(
            remover.load(&kept).await.unwrap().is_some(),
            "round {round}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_racing_another_key_s_save_stays_a_logout() {
    let path = temp_path("logout-race");
    let (key, _) = SealingKey::generate();
    a_logout_racing_a_save_stays_a_logout(
        Arc::new(FileStore::new(&path, key.clone())),
        Arc::new(FileStore::new(&path, key)),
    )
    .await;
    let memory = MemoryStore::new();
    a_logout_racing_a_save_stays_a_logout(memory.clone(), memory).await;
}

#[tokio::test]
async fn two_weavr_programmes_whose_users_share_an_email_never_share_a_token_set() {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    for (api_key, token) in [("programme-a-key", "tok-a"), ("programme-b-key", "tok-b")] {
        Mock::given(method("POST"))
            .and(path("/login_with_password"))
            .and(header("api-key", api_key))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "token": token, "tokenType": "ACCESS",
                "identity": {"type": "CORPORATE", "id": "110"},
                "credentials": {"type": "ROOT", "id": "111"}
            })))
            .mount(&server)
            .await;
    }
    let path = temp_path("weavr-programmes");
    let (key, _) = SealingKey::generate();
    let store = Arc::new(FileStore::new(&path, key));
    let session = |api_key: &str| {
        tokensmith::weavr::Session::builder()
            .base_url(server.uri())
            .api_key(api_key)
            .email("shared@example.com")
            .password("pw")
            .token_store(store.clone())
            .build()
            .unwrap()
    };
    let a = session("programme-a-key").access_token().await.unwrap();
    let b = session("programme-b-key").access_token().await.unwrap();
    assert_eq!(a.secret().expose_secret(), "tok-a");
    assert_eq!(b.secret().expose_secret(), "tok-b");
    assert_eq!(b.origin(), TokenOrigin::Login, "not programme a's token");
    let requests = server.received_requests().await.unwrap();
    let keys: Vec<_> = requests
        .iter()
        .map(|r| r.headers.get("api-key").unwrap().to_str().unwrap())
        .collect();
    assert_eq!(keys, ["programme-a-key", "programme-b-key"]);

    // Each programme's session finds its own set again.
    let again = session("programme-a-key").access_token().await.unwrap();
    assert_eq!(again.secret().expose_secret(), "tok-a");
    assert_eq!(again.origin(), TokenOrigin::Store);
    assert_eq!(server.received_requests().await.unwrap().len(), 2);

    let text = std::fs::read_to_string(&path).unwrap();
    for clear in ["shared@example.com", "programme-a-key", "programme-b-key"] {
        assert!(!text.contains(clear), "{clear} in {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_store_lease_is_free_as_soon_as_its_holder_is_killed() {
    let server = HeldServer::start(fib_login).await;
    let path = temp_path("killed-holder");
    let (mut holder, holder_lines) = spawn_file_worker(&server.uri(), &path);
    wait_until("the holder holds the lease and logs in", || {
        printed(&holder_lines, "LEASE granted") && server.requests().len() == 1
    })
    .await;
    holder.kill().unwrap();
    holder.wait().unwrap();

    // No expiry to wait out: the OS dropped the dead holder's lock.
    let (next, next_lines) = spawn_file_worker(&server.uri(), &path);
    wait_until("the next process asks for the lease", || {
        next_lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("LEASE "))
    })
    .await;
    let first = next_lines
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains("LEASE "))
        .cloned()
        .unwrap();
    assert!(first.ends_with("LEASE granted"), "{first}");
    server.release_all();
    let status = tokio::task::spawn_blocking(move || {
        let mut next = next;
        next.wait().unwrap()
    })
    .await
    .unwrap();
    assert!(status.success());
    assert_eq!(server.requests().len(), 2, "the next process logged in");
    let token = format!("TOKEN {}", common::jwt(EXP, "access-1"));
    wait_until("the worker's output is read", || {
        printed(&next_lines, &token)
    })
    .await;
}

#[tokio::test]
async fn a_file_written_by_an_earlier_version_loses_its_plaintext_names_on_the_next_write() {
    let path = temp_path("version-1");
    let old_name = format!("tokensmith:fib:https://fib.example:{}", demo::FIB_EMAIL);
    std::fs::write(
        &path,
        serde_json::json!({"version": 1, "entries": {old_name.clone(): "c2VhbGVk"}}).to_string(),
    )
    .unwrap();
    let (key, _) = SealingKey::generate();
    let store = FileStore::new(&path, key);
    let account = StoreKey::new(Service::Fib, "https://fib.example", demo::FIB_EMAIL);
    assert!(
        store.load(&account).await.unwrap().is_none(),
        "not looked up"
    );
    store
        .save(&account, &sample_tokens("access-token"))
        .await
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(demo::FIB_EMAIL), "{text}");
    let file: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(file["version"], 2);
    assert_eq!(file["entries"].as_object().unwrap().len(), 1);
    let stored = store.load(&account).await.unwrap().unwrap();
    assert_eq!(stored.access.expose_secret(), "access-token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writers_lock_held_for_good_makes_the_file_store_fail_and_the_session_serve_alone() {
    let clock = common::test_clock();
    let sandbox = Sandbox::builder().clock(clock.clone()).start().await;
    let path = temp_path("held-lock");
    // Another writer (a process stopped with Ctrl-Z) holds the writers' lock for good.
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path.parent().unwrap().join(".tokens.json.lock"))
        .unwrap();
    lock.lock().unwrap();
    let (key, _) = SealingKey::generate();
    let store = FileStore::new(&path, key).lock_wait(Duration::from_millis(100));
    let session = fib(&sandbox, &clock, store);
    // A deadlock guard, not a verdict: an unbounded wait for the lock never returns.
    let token = tokio::time::timeout(Duration::from_secs(60), session.access_token())
        .await
        .expect("the wait for the lock is bounded")
        .unwrap();
    assert_eq!(token.origin(), TokenOrigin::Login);
    assert!(!path.exists(), "nothing written");
    let again = session.access_token().await.unwrap();
    assert_eq!(
        again.secret().expose_secret(),
        token.secret().expose_secret()
    );
    assert_eq!(sandbox.counters(Service::Fib).logins, 1);
    drop(lock);
}

fn fib_refused(_: usize) -> (u16, String) {
    let body = serde_json::json!({
        "status": {"code": 401, "name": "Unauthorized", "message": "invalid signature"}
    });
    (401, body.to_string())
}

/// Two sessions of one account, each given one of `stores`, released together while the
/// service holds its answer to the one login they send: it refuses the credentials. Neither
/// sends another login, then or later, and a third session on `third` (another process's, or
/// the next run's) sends none either: the refusal is the account's.
async fn a_refused_login_is_sent_once_for_every_session<S: TokenStore>(
    stores: [S; 2],
    third: S,
) -> StoreKey {
    let server = HeldServer::start(fib_refused).await;
    let counts = Counts::default();
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let sessions = stores.map(|store| {
        fib_at(
            &server.uri(),
            Probe {
                store,
                counts: counts.clone(),
                announce: false,
            },
        )
    });
    let tasks: Vec<_> = sessions
        .iter()
        .map(|session| {
            let (session, barrier) = (session.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                session.access_token().await.unwrap_err()
            })
        })
        .collect();
    wait_until("one session logs in while the other waits", || {
        let logins = server.requests().len();
        logins >= 2 || (logins == 1 && counts.refused.load(Ordering::SeqCst) >= 1)
    })
    .await;
    server.release_all();
    for task in tasks {
        let error = task.await.unwrap();
        assert_eq!(
            error.kind(),
            tokensmith::ErrorKind::InvalidCredentials,
            "{error}"
        );
        assert_eq!(error.status(), Some(401));
    }
    for session in &sessions {
        let again = session.access_token().await.unwrap_err();
        assert_eq!(again.kind(), tokensmith::ErrorKind::InvalidCredentials);
    }
    let later = fib_at(&server.uri(), third)
        .access_token()
        .await
        .unwrap_err();
    assert_eq!(later.kind(), tokensmith::ErrorKind::InvalidCredentials);
    assert_eq!(later.status(), Some(401));
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "one refused login in all");
    assert_eq!(
        requests[0].path,
        "/auth/api/v1/authentication-management/session"
    );
    StoreKey::new(Service::Fib, &server.uri(), demo::FIB_EMAIL)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_is_sent_once_for_every_session_on_a_memory_store() {
    let store = MemoryStore::new();
    a_refused_login_is_sent_once_for_every_session([store.clone(), store.clone()], store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_is_sent_once_for_every_session_on_a_file_store_and_the_next_run() {
    let path = temp_path("refused");
    let (key, _) = SealingKey::generate();
    let store = || FileStore::new(&path, key.clone());
    a_refused_login_is_sent_once_for_every_session([store(), store()], store()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_is_sent_once_for_every_session_on_a_redis_store() {
    let Ok(port) = std::env::var("TOKENSMITH_TEST_REDIS_PORT") else {
        let required = std::env::var("TOKENSMITH_REQUIRE_REDIS").is_ok_and(|v| v == "1");
        assert!(!required, "TOKENSMITH_TEST_REDIS_PORT is required");
        eprintln!("no TOKENSMITH_TEST_REDIS_PORT: skipped");
        return;
    };
    // A database of its own, emptied first.
    let url = format!("redis://127.0.0.1:{port}/12");
    let (key, _) = SealingKey::generate();
    let connect = || tokensmith::store::RedisStore::connect(&url, key.clone());
    let first = connect().await.unwrap();
    let stores = [first, connect().await.unwrap()];
    let third = connect().await.unwrap();
    let account = a_refused_login_is_sent_once_for_every_session(stores, third).await;
    // A refusal for good stays in Redis until a session clears it.
    connect()
        .await
        .unwrap()
        .remove_refusal(&account)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_given_corrected_credentials_is_not_held_back_by_the_account_s_refusal() {
    let server = HeldServer::start(|i| if i == 0 { fib_refused(i) } else { fib_login(i) }).await;
    server.release_all();
    let store = MemoryStore::new();
    let error = fib_at(&server.uri(), store.clone())
        .access_token()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), tokensmith::ErrorKind::InvalidCredentials);
    // The same key pair again, in another session: held back, no login.
    let again = fib_at(&server.uri(), store.clone())
        .access_token()
        .await
        .unwrap_err();
    assert_eq!(again.kind(), tokensmith::ErrorKind::InvalidCredentials);
    assert_eq!(server.requests().len(), 1);
    // The account's user fixed their key: that login goes out.
    let corrected = tokensmith::fib::Session::builder()
        .base_url(server.uri())
        .email(demo::FIB_EMAIL)
        .private_key("11".repeat(32))
        .token_store(store)
        .build()
        .unwrap();
    let token = corrected.access_token().await.unwrap();
    assert_eq!(token.secret().expose_secret(), common::jwt(EXP, "access-1"));
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let bodies: Vec<serde_json::Value> = requests
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(bodies[0]["authPublicKeyHex"], demo::FIB_PUBLIC_KEY);
    assert_ne!(bodies[1]["authPublicKeyHex"], demo::FIB_PUBLIC_KEY);
}
