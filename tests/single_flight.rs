//! The single flight under real concurrency: callers released together on a multi-thread
//! runtime, with the interleavings forced by a token endpoint that holds its answer until the
//! test lets it go, and a hook that tells when every caller is inside the flight (its first
//! `Pending`: the flight's driver is waiting for the answer, the others for the driver).
//! Each test fails against a flight that lets callers start flights of their own.
//!
//! What `src/cache/flight.rs` guarantees, and these tests hold it to:
//! - every caller that joins while a flight is in the air gets that flight's outcome, error
//!   included, from its one request;
//! - a caller that comes after the flight ended starts a new one, which first takes the token
//!   the last one left (no request);
//! - the outcome is not kept: an error is not served to later callers by the flight (the
//!   login backoff after a transient failure does that, see the last test);
//! - the renewal runs in a task of the session's: when the caller that started it is
//!   cancelled, or every caller gives up (a timeout), its request runs on, nobody sends it
//!   again, and its outcome (a token, a refusal) is what the next callers get.
#![cfg(feature = "fib")]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::held::{wait_until, HeldServer};
use common::test_clock;
use tokensmith::clock::ManualClock;
use tokensmith::sandbox::demo;
use tokensmith::{ErrorKind, RetryPolicy};

const LOGIN_PATH: &str = "/auth/api/v1/authentication-management/session";
const EXP: u64 = 4_000_000_000;
const CALLERS: usize = 64;

/// fib's login answer, the `i`-th one tagged `access-i`.
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

fn unavailable(_: usize) -> (u16, String) {
    (
        503,
        r#"{"status":{"code":503,"name":"Service Unavailable"}}"#.to_owned(),
    )
}

/// A fib session without retries, so that every login is exactly one request.
fn session(server: &HeldServer, clock: &ManualClock) -> tokensmith::fib::Session {
    tokensmith::fib::Session::builder()
        .base_url(server.uri())
        .email(demo::FIB_EMAIL)
        .private_key(demo::FIB_PRIVATE_KEY)
        .retry_policy(RetryPolicy::none())
        .clock(clock.clone())
        .build()
        .unwrap()
}

/// Every request the server received was fib's login for the demo account.
fn assert_logins(server: &HeldServer, expected: usize) {
    let requests = server.requests();
    assert_eq!(requests.len(), expected, "{requests:?}");
    for request in &requests {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, LOGIN_PATH);
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["email"], demo::FIB_EMAIL);
    }
}

/// `CALLERS` callers of `access_token()`, released together by a barrier; returns their
/// tasks and the count of those inside the flight.
fn release_callers(
    session: &tokensmith::fib::Session,
) -> (
    Vec<tokio::task::JoinHandle<Result<tokensmith::AccessToken, tokensmith::Error>>>,
    Arc<AtomicUsize>,
) {
    let pending = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(CALLERS));
    let tasks = (0..CALLERS)
        .map(|_| {
            let (session, barrier, pending) = (session.clone(), barrier.clone(), pending.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                common::counted(session.access_token(), pending).await
            })
        })
        .collect();
    (tasks, pending)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn callers_released_together_against_a_transient_failure_get_one_error_from_one_request() {
    let server = HeldServer::start(unavailable).await;
    let session = session(&server, &test_clock());
    let (tasks, pending) = release_callers(&session);
    // Every caller is inside the flight before the answer goes: a flight that let callers
    // start their own would have sent one login each by now.
    wait_until("every caller waits inside the flight", || {
        pending.load(Ordering::SeqCst) == CALLERS && !server.requests().is_empty()
    })
    .await;
    server.release_all();
    for task in tasks {
        let error = task.await.unwrap().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ServiceUnavailable, "{error}");
        assert_eq!(error.status(), Some(503));
    }
    assert_logins(&server, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn callers_arriving_as_the_flight_completes_get_its_token_without_another_request() {
    // Round after round, a flight is held in the air; then its answer is let go at the very
    // moment a crowd of callers is released (the test is one more party of their barrier):
    // some join the flight, some come as it ends, some after. Whichever, one request.
    // A flight that lets a caller start its own is caught here at once; the narrowest window
    // (a caller that found the token due just before the flight stored the new one, and
    // locks the flight just after it ended: `renew` re-checks the cached token for it) is
    // only hit by chance, as nothing outside the crate can hold a caller there.
    for round in 0..8 {
        let server = HeldServer::start(fib_login).await;
        let session = session(&server, &test_clock());
        let first = tokio::spawn({
            let session = session.clone();
            async move { session.access_token().await }
        });
        wait_until("the flight is in the air", || server.requests().len() == 1).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(CALLERS + 1));
        let tasks: Vec<_> = (0..CALLERS)
            .map(|_| {
                let (session, barrier) = (session.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    session.access_token().await
                })
            })
            .collect();
        barrier.wait().await;
        server.release_all();
        let issued = common::jwt(EXP, "access-0");
        for task in std::iter::once(first).chain(tasks) {
            let token = task.await.unwrap().unwrap();
            assert_eq!(token.secret().expose_secret(), issued, "round {round}");
        }
        assert_logins(&server, 1);
        assert_eq!(session.request_counts().logins, 1, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flights_driver_cancelled_mid_request_leaves_its_request_running_for_all() {
    let server = HeldServer::start(fib_login).await;
    let session = session(&server, &test_clock());
    let driver = tokio::spawn({
        let session = session.clone();
        async move { session.access_token().await }
    });
    wait_until("the driver's login is in flight", || {
        server.requests().len() == 1
    })
    .await;
    let pending = Arc::new(AtomicUsize::new(0));
    let waiters: Vec<_> = (0..10)
        .map(|_| {
            let (session, pending) = (session.clone(), pending.clone());
            tokio::spawn(async move { common::counted(session.access_token(), pending).await })
        })
        .collect();
    wait_until("every waiter joined the flight", || {
        pending.load(Ordering::SeqCst) == 10
    })
    .await;
    driver.abort();
    assert!(driver.await.unwrap_err().is_cancelled());
    // The login goes on in the session's task: its answer is every waiter's token.
    server.release_all();
    let issued = common::jwt(EXP, "access-0");
    for waiter in waiters {
        let token = waiter.await.unwrap().unwrap();
        assert_eq!(token.secret().expose_secret(), issued);
    }
    assert_logins(&server, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_transient_login_failure_logins_back_off_and_return_the_error() {
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let server = HeldServer::start({
        let failing = failing.clone();
        move |i| {
            if failing.load(Ordering::SeqCst) {
                unavailable(i)
            } else {
                fib_login(i)
            }
        }
    })
    .await;
    server.release_all();
    let clock = test_clock();
    let session = session(&server, &clock);
    let first = session.access_token().await.unwrap_err();
    assert_eq!(first.kind(), ErrorKind::ServiceUnavailable);
    assert_logins(&server, 1);

    // The first backoff is between 0.5 s and 1 s: calls inside it send nothing and get the
    // error that started it.
    clock.advance(Duration::from_millis(499));
    for _ in 0..CALLERS {
        let error = session.access_token().await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ServiceUnavailable);
        assert_eq!(error.status(), Some(503));
    }
    assert_logins(&server, 1);

    // After it, one login; it fails again, and the backoff doubles (1 s to 2 s).
    clock.advance(Duration::from_millis(501));
    session.access_token().await.unwrap_err();
    assert_logins(&server, 2);
    clock.advance(Duration::from_millis(999));
    session.access_token().await.unwrap_err();
    assert_logins(&server, 2);
    clock.advance(Duration::from_millis(1001));
    failing.store(false, Ordering::SeqCst);
    let token = session.access_token().await.unwrap();
    assert_eq!(token.secret().expose_secret(), common::jwt(EXP, "access-2"));
    assert_logins(&server, 3);
}

fn refused(_: usize) -> (u16, String) {
    (
        401,
        r#"{"status":{"code":401,"name":"Unauthorized","message":"invalid signature"}}"#.to_owned(),
    )
}

/// Waves of `callers` callers, released together, each giving up after 100 ms of a login the
/// server holds: every one of them times out.
async fn waves_that_give_up(session: &tokensmith::fib::Session, waves: usize, callers: usize) {
    for wave in 0..waves {
        let barrier = Arc::new(tokio::sync::Barrier::new(callers));
        let tasks: Vec<_> = (0..callers)
            .map(|_| {
                let (session, barrier) = (session.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    tokio::time::timeout(Duration::from_millis(100), session.access_token()).await
                })
            })
            .collect();
        for task in tasks {
            assert!(
                task.await.unwrap().is_err(),
                "wave {wave}: the login is held"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_that_give_up_during_a_slow_login_leave_it_to_finish_once() {
    let server = HeldServer::start(fib_login).await;
    let session = session(&server, &test_clock());
    // Ten callers in two waves give up while the one login is in the air: it runs on, in a
    // task of the session's, and nobody sends it again.
    waves_that_give_up(&session, 2, 5).await;
    assert_logins(&server, 1);
    server.release_all();
    let token = session.access_token().await.unwrap();
    assert_eq!(token.secret().expose_secret(), common::jwt(EXP, "access-0"));
    assert_logins(&server, 1);
    assert_eq!(session.request_counts().logins, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_whose_callers_gave_up_is_sent_once_and_its_refusal_kept() {
    let server = HeldServer::start(refused).await;
    let session = session(&server, &test_clock());
    waves_that_give_up(&session, 2, 5).await;
    server.release_all();
    // Whether the refusal is already recorded or the flight still in the air, every later call
    // gets it without a request.
    for _ in 0..3 {
        let error = session.access_token().await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidCredentials, "{error}");
        assert_eq!(error.status(), Some(401));
    }
    assert_logins(&server, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_that_give_up_during_a_slow_refresh_leave_it_to_finish_once() {
    // The login (`access-0`) is answered at once; the refresh by PATCH (`access-1`) is held
    // until the test opens the server.
    let server = HeldServer::start_routed(
        |request, _| fib_login(usize::from(request.method == "PATCH")),
        |request| request.method == "PATCH",
    )
    .await;
    let clock = test_clock();
    let session = session(&server, &clock);
    session.access_token().await.unwrap();
    // The 5-minute token has expired: the next call refreshes it, with the refresh token.
    clock.advance(Duration::from_secs(300));
    waves_that_give_up(&session, 2, 5).await;
    wait_until("the refresh is in the air", || server.requests().len() == 2).await;
    let requests = server.requests();
    let sent: Vec<_> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(sent, [("POST", LOGIN_PATH), ("PATCH", LOGIN_PATH)]);
    let bearer = format!("Bearer {}", common::jwt(EXP, "refresh-0"));
    assert_eq!(requests[1].header("authorization"), Some(bearer.as_str()));
    server.open();
    let token = session.access_token().await.unwrap();
    assert_eq!(token.secret().expose_secret(), common::jwt(EXP, "access-1"));
    assert_eq!(server.requests().len(), 2, "the refresh was sent once");
    let counts = session.request_counts();
    assert_eq!((counts.logins, counts.refreshes), (1, 1));
}
