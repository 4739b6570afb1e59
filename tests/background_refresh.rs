//! Renewal off the request path (`background_refresh(true)`) and `force_refresh()`: callers
//! across a renewal are served the valid token while the token endpoint holds its answer, the
//! renewal is one request, refused credentials are not resent, and weavr and Password Safe
//! (whose tokens slide) are never renewed in the background. Time past the margin is moved on a test clock; the
//! interleavings are forced by a server that answers only when released.
#![cfg(all(
    feature = "s7risk",
    feature = "weavr",
    feature = "accounts",
    feature = "passwordsafe",
    feature = "fib"
))]

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::held::{wait_until, HeldServer};
use common::{jwt, test_clock, START_EPOCH};
use serde_json::json;
use tokensmith::clock::ManualClock;
use tokensmith::s7risk::Session;
use tokensmith::{ErrorKind, RefreshPolicy};

const ORIGIN: &str = "https://api.example.com";
const DAY: u64 = 24 * 60 * 60;
/// The margin of a day-long token without jitter: 60 s before expiry.
const INTO_THE_MARGIN: Duration = Duration::from_secs(DAY - 30);

/// The `i`-th token the server hands out (from 0): all live a day from the test clock's start.
fn token(i: usize) -> String {
    jwt(START_EPOCH + DAY * (i as u64 + 1), &format!("t{i}"))
}

fn login_answer(i: usize) -> (u16, String) {
    (
        200,
        json!({"status": "success", "data": {"accessToken": token(i)}}).to_string(),
    )
}

fn session(uri: &str, clock: &ManualClock, background: bool) -> Session {
    Session::builder()
        .base_url(uri)
        .origin(ORIGIN)
        .user("analyst@example.com", "pw-hunter2")
        .clock(clock.clone())
        .refresh_policy(RefreshPolicy::new().with_jitter(false))
        .background_refresh(background)
        .build()
        .unwrap()
}

/// Every request the server saw is the user login, exactly.
fn assert_all_logins(server: &HeldServer, count: usize) {
    let requests = server.requests();
    assert_eq!(requests.len(), count, "{requests:?}");
    for request in requests {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/user/token");
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(
            body,
            json!({"email": "analyst@example.com", "password": "pw-hunter2"})
        );
    }
}

/// Runs `make(i)` for `n` tasks at once on the multi-thread runtime, released together.
async fn together<F, T>(n: usize, make: impl Fn(usize) -> F) -> Vec<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let barrier = barrier.clone();
            let call = make(i);
            tokio::spawn(async move {
                barrier.wait().await;
                call.await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

/// The token `session` serves, once it is `expected` (the background renewal lands on its own
/// time; each call meanwhile is served the old one).
async fn served_eventually(session: &Session, expected: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let token = session.access_token().await.unwrap();
        if token.secret().expose_secret() == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the renewed token never landed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn callers_across_a_renewal_are_served_the_valid_token_while_the_endpoint_holds() {
    let server = HeldServer::start(login_answer).await;
    let clock = test_clock();
    let session = session(&server.uri(), &clock, true);
    server.release(1);
    let first = session.access_token().await.unwrap();
    assert_eq!(first.secret().expose_secret(), token(0));

    clock.advance(INTO_THE_MARGIN);
    // A deadlock guard: a caller that waited for the held renewal would never return.
    let served = tokio::time::timeout(
        Duration::from_secs(60),
        together(32, |_| {
            let session = session.clone();
            async move { session.access_token().await }
        }),
    )
    .await
    .expect("a caller waited for the held renewal");
    // Every caller has its answer, and the server still holds the renewal's: none waited.
    for token in served {
        assert_eq!(token.unwrap().secret().expose_secret(), self::token(0));
    }
    wait_until("the background renewal is sent", || {
        server.requests().len() == 2
    })
    .await;
    assert_all_logins(&server, 2);

    server.release(2);
    served_eventually(&session, &token(1)).await;
    assert_all_logins(&server, 2);
    assert_eq!(session.request_counts().logins, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_background_refresh_callers_at_the_margin_wait_for_the_renewal() {
    let server = HeldServer::start(login_answer).await;
    let clock = test_clock();
    let session = session(&server.uri(), &clock, false);
    server.release(1);
    session.access_token().await.unwrap();

    clock.advance(INTO_THE_MARGIN);
    let waiting = {
        let session = session.clone();
        tokio::spawn(async move { session.access_token().await })
    };
    wait_until("the renewal is sent", || server.requests().len() == 2).await;
    assert!(
        !waiting.is_finished(),
        "a blocking caller waits for the held renewal"
    );
    server.release(2);
    let renewed = waiting.await.unwrap().unwrap();
    assert_eq!(renewed.secret().expose_secret(), token(1));
    assert_all_logins(&server, 2);
}

/// Runs `call` and counts it in `entered` once it has been polled (it has joined the flight).
async fn counted<T>(entered: Arc<AtomicUsize>, call: impl Future<Output = T>) -> T {
    let mut call = std::pin::pin!(call);
    let mut counted = false;
    std::future::poll_fn(|cx| {
        let poll = call.as_mut().poll(cx);
        if !counted {
            counted = true;
            entered.fetch_add(1, Ordering::SeqCst);
        }
        poll
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn force_refresh_from_16_callers_at_once_sends_one_request() {
    for background in [false, true] {
        let server = HeldServer::start(login_answer).await;
        let clock = test_clock();
        let session = session(&server.uri(), &clock, background);
        server.release(1);
        session.access_token().await.unwrap();

        let entered = Arc::new(AtomicUsize::new(0));
        let calls = {
            let session = session.clone();
            let entered = entered.clone();
            tokio::spawn(async move {
                together(16, |_| {
                    let session = session.clone();
                    let entered = entered.clone();
                    async move { counted(entered, session.force_refresh()).await }
                })
                .await
            })
        };
        wait_until("all 16 callers are in the renewal", || {
            entered.load(Ordering::SeqCst) == 16 && server.requests().len() == 2
        })
        .await;
        server.release_all();
        for renewed in calls.await.unwrap() {
            assert_eq!(renewed.unwrap().secret().expose_secret(), token(1));
        }
        let cached = session.access_token().await.unwrap();
        assert_eq!(cached.secret().expose_secret(), token(1));
        assert_all_logins(&server, 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn force_refresh_stops_serving_the_revoked_token_at_once() {
    let server = HeldServer::start(login_answer).await;
    let clock = test_clock();
    let session = session(&server.uri(), &clock, true);
    server.release(1);
    session.access_token().await.unwrap();

    let forced = {
        let session = session.clone();
        tokio::spawn(async move { session.force_refresh().await })
    };
    wait_until("the forced renewal is sent", || {
        server.requests().len() == 2
    })
    .await;
    // Even in background mode, the revoked token is not served while its successor is held.
    let entered = Arc::new(AtomicUsize::new(0));
    let waiting = {
        let session = session.clone();
        let entered = entered.clone();
        tokio::spawn(async move { counted(entered, session.access_token()).await })
    };
    wait_until("the caller asked", || entered.load(Ordering::SeqCst) == 1).await;
    assert!(!waiting.is_finished(), "the caller waits for the renewal");
    server.release_all();
    assert_eq!(
        forced.await.unwrap().unwrap().secret().expose_secret(),
        token(1)
    );
    assert_eq!(
        waiting.await.unwrap().unwrap().secret().expose_secret(),
        token(1)
    );
    assert_all_logins(&server, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_credentials_in_background_mode_are_not_resent() {
    let server = HeldServer::start(|i| match i {
        0 => login_answer(0),
        _ => (
            401,
            json!({"status": "error", "message": "Email and password do not match"}).to_string(),
        ),
    })
    .await;
    let clock = test_clock();
    let session = session(&server.uri(), &clock, true);
    server.release(1);
    session.access_token().await.unwrap();

    clock.advance(INTO_THE_MARGIN);
    let served = session.access_token().await.unwrap();
    assert_eq!(served.secret().expose_secret(), token(0));
    wait_until("the background renewal is sent", || {
        server.requests().len() == 2
    })
    .await;
    server.release_all();

    // Past expiry, callers learn of the refusal (joining the background flight, or from the
    // refusal it left); the credentials are not sent again, whatever the time.
    clock.advance(Duration::from_secs(60));
    let refused = together(16, |_| {
        let session = session.clone();
        async move { session.access_token().await }
    })
    .await;
    for result in refused {
        assert_eq!(result.unwrap_err().kind(), ErrorKind::InvalidCredentials);
    }
    clock.advance(Duration::from_secs(3600));
    let later = session.force_refresh().await.unwrap_err();
    assert_eq!(later.kind(), ErrorKind::InvalidCredentials);
    assert_eq!(
        session.access_token().await.unwrap_err().kind(),
        ErrorKind::InvalidCredentials
    );
    assert_all_logins(&server, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_runtime_at_build_the_task_starts_at_the_first_call() {
    // Built outside any runtime: building needs none.
    let clock = test_clock();
    let server = HeldServer::start(login_answer).await;
    let session = {
        let (uri, clock) = (server.uri(), clock.clone());
        std::thread::spawn(move || {
            assert!(tokio::runtime::Handle::try_current().is_err());
            session(&uri, &clock, true)
        })
        .join()
        .unwrap()
    };
    server.release(1);
    session.access_token().await.unwrap();
    clock.advance(INTO_THE_MARGIN);
    let served = tokio::time::timeout(Duration::from_secs(60), session.access_token())
        .await
        .expect("the caller waited for the held renewal")
        .unwrap();
    assert_eq!(served.secret().expose_secret(), token(0));
    wait_until("the background renewal is sent", || {
        server.requests().len() == 2
    })
    .await;
    server.release_all();
    served_eventually(&session, &token(1)).await;
    assert_all_logins(&server, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weavr_is_never_renewed_in_the_background() {
    use common::services::{Service as Svc, WEAVR_API_KEY};
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer};

    let server = MockServer::start().await;
    let clock = test_clock();
    for (tag, limit) in [("weavr-1", 1), ("weavr-2", 1)] {
        Mock::given(method("POST"))
            .and(path("/login_with_password"))
            .and(header("api-key", WEAVR_API_KEY))
            .respond_with(Svc::Weavr.answer(tag))
            .up_to_n_times(limit)
            .with_priority(if tag == "weavr-1" { 1 } else { 2 })
            .mount(&server)
            .await;
    }
    let session = tokensmith::weavr::Session::builder()
        .base_url(server.uri())
        .api_key(WEAVR_API_KEY)
        .email("user@example.com")
        .password(common::services::PASSWORD)
        .clock(clock.clone())
        .refresh_policy(RefreshPolicy::new().with_jitter(false))
        .background_refresh(true)
        .build()
        .unwrap();
    let first = session.access_token().await.unwrap();
    assert_eq!(first.secret().expose_secret(), "weavr-1");

    // Inside the margin of the 5-minute idle window (30 s): a background session would serve
    // weavr-1 and log in behind the caller's back. weavr's due token is renewed by the caller,
    // as without the option: a login is the caller's own doing, never a task's.
    clock.advance(Duration::from_secs(5 * 60 - 10));
    let renewed = session.access_token().await.unwrap();
    assert_eq!(renewed.secret().expose_secret(), "weavr-2");
    let logins = server.received_requests().await.unwrap();
    assert_eq!(logins.len(), 2);
    assert!(logins
        .iter()
        .all(|r| r.url.path() == "/login_with_password"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwordsafe_is_never_renewed_in_the_background() {
    use common::services::{Service as Svc, PASSWORD, PS_API_KEY};
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer};

    let server = MockServer::start().await;
    let clock = test_clock();
    for (tag, priority) in [("ps-1", 1), ("ps-2", 2)] {
        Mock::given(method("POST"))
            .and(path("/Auth/SignAppin"))
            .respond_with(Svc::PasswordSafeKey.answer(tag))
            .up_to_n_times(1)
            .with_priority(priority)
            .mount(&server)
            .await;
    }
    let session = tokensmith::passwordsafe::Session::builder()
        .base_url(server.uri())
        .ps_auth(PS_API_KEY, "svc-reader", Some(PASSWORD.into()))
        .clock(clock.clone())
        .refresh_policy(RefreshPolicy::new().with_jitter(false))
        .background_refresh(true)
        .build()
        .unwrap();
    let first = session.access_token().await.unwrap();
    assert_eq!(
        first.secret().expose_secret(),
        Svc::PasswordSafeKey.cached_secret("ps-1")
    );

    // Inside the margin of the 20-minute idle window (60 s): a background session would serve
    // ps-1 and sign in behind the caller's back, keeping an idle session open. The due session
    // is renewed by the caller, as without the option.
    clock.advance(Duration::from_secs(20 * 60 - 10));
    let renewed = session.access_token().await.unwrap();
    assert_eq!(
        renewed.secret().expose_secret(),
        Svc::PasswordSafeKey.cached_secret("ps-2")
    );
    let sign_ins = server.received_requests().await.unwrap();
    assert_eq!(sign_ins.len(), 2);
    assert!(sign_ins.iter().all(|r| r.url.path() == "/Auth/SignAppin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_caller_whose_token_expired_joins_the_background_renewal() {
    let server = HeldServer::start(login_answer).await;
    let clock = test_clock();
    let session = session(&server.uri(), &clock, true);
    server.release(1);
    session.access_token().await.unwrap();

    clock.advance(INTO_THE_MARGIN);
    session.access_token().await.unwrap();
    wait_until("the background renewal is sent", || {
        server.requests().len() == 2
    })
    .await;
    // The token expires while the task's renewal is held: callers now need the new token,
    // and wait for that same flight instead of sending their own.
    clock.advance(Duration::from_secs(60));
    let entered = Arc::new(AtomicUsize::new(0));
    let waiting: Vec<_> = (0..8)
        .map(|_| {
            let session = session.clone();
            let entered = entered.clone();
            tokio::spawn(async move { counted(entered, session.access_token()).await })
        })
        .collect();
    wait_until("the callers asked", || entered.load(Ordering::SeqCst) == 8).await;
    server.release(2);
    for caller in waiting {
        let token = tokio::time::timeout(Duration::from_secs(60), caller)
            .await
            .expect("a caller sent a renewal of its own, which the server holds")
            .unwrap()
            .unwrap();
        assert_eq!(token.secret().expose_secret(), self::token(1));
    }
    assert_all_logins(&server, 2);
}
