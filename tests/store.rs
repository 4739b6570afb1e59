//! Token stores: sessions sharing a store share one login per expiry; a file store keeps
//! nothing readable; a broken store degrades to per-session behaviour, never to an outage.
#![cfg(all(feature = "s7risk", feature = "fib"))]

mod common;

use std::time::Duration;

use tokensmith::clock::ManualClock;
use tokensmith::sandbox::{demo, Sandbox};
use tokensmith::store::{FileStore, MemoryStore, SealingKey, StoreKey, TokenStore};
use tokensmith::{RefreshPolicy, Service, TokenOrigin};

fn s7risk(
    sandbox: &Sandbox,
    clock: &ManualClock,
    store: impl TokenStore,
) -> tokensmith::s7risk::Session {
    tokensmith::s7risk::Session::builder()
        .base_url(sandbox.base_url(Service::S7risk))
        .origin(demo::S7RISK_ORIGIN)
        .credentials(tokensmith::s7risk::Credentials::user(
            demo::S7RISK_EMAIL,
            demo::S7RISK_PASSWORD,
        ))
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

    let run_one = fib(&sandbox, &clock, FileStore::new(&path, key));
    let token = run_one.access_token().await.unwrap();
    drop(run_one);

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains(token.secret().expose_secret()),
        "sealed: {text}"
    );
    assert!(!text.contains("eyJ"), "no JWT part in the clear: {text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // A second run within the lifetime makes no request at all.
    let key = SealingKey::from_hex(&hex).unwrap();
    let run_two = fib(&sandbox, &clock, FileStore::new(&path, key.clone()));
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
    let run_three = fib(&sandbox, &clock, FileStore::new(&path, key));
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
