//! A `ManualClock` drives every wait a session makes, not only its expiry: the retry budget and
//! a `Retry-After` wait, the wait for another session's renewal lease, the step-up handler's
//! bound, and the background renewal's timer. Time moves only by `ManualClock::advance`; the
//! clock is watched (every wait the session asks of it is logged, with its length), so that
//! each step advances exactly as far as the session waits, and a wait on any other timer shows
//! as a wait that never comes.
#![cfg(all(feature = "s7risk", feature = "weavr"))]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::held::{wait_until, HeldServer};
use common::{assert_request, jwt, test_clock, Body, Expected, START_EPOCH};
use serde_json::json;
use tokensmith::clock::{Clock, ManualClock, Sleep};
use tokensmith::store::MemoryStore;
use tokensmith::weavr::{Answer, StepUpMethod};
use tokensmith::{ErrorKind, RefreshPolicy, RetryPolicy, Service};
use tokio::sync::mpsc;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ORIGIN: &str = "https://api.example.com";
const EMAIL: &str = "analyst@example.com";
const PASSWORD: &str = "pw-hunter2";

/// A wait a session asked of its clock: when (how far the clock had moved) and how long.
type Wait = (Duration, Duration);

/// A `ManualClock` that logs every wait asked of it.
#[derive(Debug, Clone)]
struct Watched {
    clock: ManualClock,
    origin: Instant,
    waits: mpsc::UnboundedSender<Wait>,
}

impl Watched {
    fn at(&self) -> Duration {
        self.clock.now() - self.origin
    }
}

impl Clock for Watched {
    fn now(&self) -> Instant {
        self.clock.now()
    }

    fn system_now(&self) -> SystemTime {
        self.clock.system_now()
    }

    // The wait is asked of the clock before it is logged: the test advances once it sees the
    // log, and the wait must end where the session asked, not past that advance.
    fn sleep(&self, duration: Duration) -> Sleep {
        let at = self.at();
        let wait = self.clock.sleep(duration);
        let _ = self.waits.send((at, duration));
        wait
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        let (at, left) = (
            self.at(),
            deadline.saturating_duration_since(self.clock.now()),
        );
        let wait = self.clock.sleep_until(deadline);
        let _ = self.waits.send((at, left));
        wait
    }
}

/// The waits a [`Watched`] clock was asked for, in order.
struct Waits(mpsc::UnboundedReceiver<Wait>);

impl Waits {
    /// The next wait the session asks for. The bound is a deadlock guard, not a verdict: a
    /// session that waits on another timer never asks.
    async fn next(&mut self) -> Wait {
        tokio::time::timeout(Duration::from_secs(30), self.0.recv())
            .await
            .expect("the session waits on its clock")
            .expect("the clock is alive")
    }

    /// The waits asked for so far and not yet taken.
    fn taken_now(&mut self) -> Vec<Wait> {
        std::iter::from_fn(|| self.0.try_recv().ok()).collect()
    }
}

/// `task`'s outcome, which the clock's advance let go. The bound fails a wait that tokio's
/// timer would end instead: every wait these tests end that way is 30 s or more.
async fn soon<T>(task: tokio::task::JoinHandle<T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the advance ended the wait")
        .unwrap()
}

/// Waits until `condition` holds, which the clock's advance brings about (failing after 10 s,
/// less than any wait tokio's timer would end instead).
async fn until(what: &str, condition: impl Fn() -> bool) {
    let checking = async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), checking)
        .await
        .unwrap_or_else(|_| panic!("never happened: {what}"));
}

fn watched() -> (Watched, ManualClock, Waits) {
    let clock = test_clock();
    let (waits, log) = mpsc::unbounded_channel();
    (
        Watched {
            clock: clock.clone(),
            origin: clock.now(),
            waits,
        },
        clock,
        Waits(log),
    )
}

fn s7risk(base_url: &str, clock: &Watched) -> tokensmith::s7risk::SessionBuilder {
    tokensmith::s7risk::Session::builder()
        .base_url(base_url)
        .origin(ORIGIN)
        .user(EMAIL, PASSWORD)
        .clock(clock.clone())
        .refresh_policy(RefreshPolicy::new().with_jitter(false))
}

/// A caller of `access_token()` in a task of its own, to be let go by the clock.
fn spawn_access_token(
    session: &tokensmith::s7risk::Session,
) -> tokio::task::JoinHandle<Result<tokensmith::AccessToken, tokensmith::Error>> {
    let session = session.clone();
    tokio::spawn(async move { session.access_token().await })
}

fn login_body() -> serde_json::Value {
    json!({"email": EMAIL, "password": PASSWORD})
}

fn login_answer(token: &str) -> String {
    json!({"status": "success", "data": {"accessToken": token}}).to_string()
}

/// Every request the held server saw is the s7risk user login, exactly.
fn assert_logins(server: &HeldServer, count: usize) {
    let requests = server.requests();
    assert_eq!(requests.len(), count, "{requests:?}");
    for request in requests {
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("POST", "/user/token")
        );
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body, login_body());
    }
}

/// Every request the mock server saw is the s7risk user login, exactly.
async fn assert_mock_logins(server: &MockServer, count: usize) {
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), count);
    for request in &requests {
        assert_request(
            request,
            &Expected {
                method: "POST",
                path: "/user/token",
                query: None,
                headers: &[("origin", ORIGIN), ("content-type", "application/json")],
                body: Body::Json(login_body()),
            },
        );
    }
}

/// Retries within 60 s on the session's clock; the jitter (at most 1 s) never outweighs the
/// `Retry-After` these tests send.
fn retry_within_a_minute() -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(3)
        .initial_backoff(Duration::from_secs(1))
        .max_backoff(Duration::from_secs(1))
        .max_elapsed(Duration::from_secs(60))
}

fn unavailable(retry_after: &str) -> ResponseTemplate {
    ResponseTemplate::new(503).insert_header("retry-after", retry_after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_wait_ends_when_the_clock_passes_it() {
    let server = MockServer::start().await;
    let token = jwt(START_EPOCH + 86_400, "after-the-wait");
    Mock::given(path("/user/token"))
        .respond_with(unavailable("30"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/user/token"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(login_answer(&token), "application/json"),
        )
        .mount(&server)
        .await;
    let (clock, manual, mut waits) = watched();
    let session = s7risk(&server.uri(), &clock)
        .retry_policy(retry_within_a_minute())
        .build()
        .unwrap();
    let caller = spawn_access_token(&session);

    assert_eq!(
        waits.next().await,
        (Duration::ZERO, Duration::from_secs(30)),
        "as the 503 asked"
    );
    manual.advance(Duration::from_secs(30));
    let served = soon(caller).await.unwrap();
    assert_eq!(served.secret().expose_secret(), token);
    // Counted from the first attempt, 30 s ago on the clock.
    assert_eq!(served.expires_in(), Duration::from_secs(86_400 - 30));
    assert_mock_logins(&server, 2).await;
    assert_eq!(session.request_counts().logins, 1);
    assert_eq!(waits.taken_now(), []);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_counts_the_time_waited_on_the_clock() {
    let server = MockServer::start().await;
    Mock::given(path("/user/token"))
        .respond_with(unavailable("30"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    // An HTTP date 31 s after the clock's wall time once it has moved 30 s (`START_EPOCH` +
    // 61 s): 61 s in all, past the budget of 60 s, so the failure is returned at once.
    Mock::given(path("/user/token"))
        .respond_with(unavailable("Tue, 14 Nov 2023 22:14:21 GMT"))
        .mount(&server)
        .await;
    let (clock, manual, mut waits) = watched();
    let session = s7risk(&server.uri(), &clock)
        .retry_policy(retry_within_a_minute())
        .build()
        .unwrap();
    let caller = spawn_access_token(&session);

    assert_eq!(
        waits.next().await,
        (Duration::ZERO, Duration::from_secs(30))
    );
    manual.advance(Duration::from_secs(30));
    let error = soon(caller).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ServiceUnavailable, "{error}");
    assert_eq!(error.status(), Some(503));
    assert_eq!(error.service(), Some(Service::S7risk));
    assert_mock_logins(&server, 2).await;
    assert_eq!(waits.taken_now(), [], "no third attempt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_for_another_sessions_lease_ends_at_its_limit_on_the_clock() {
    let server =
        HeldServer::start(|i| (200, login_answer(&jwt(START_EPOCH + 600, &format!("t{i}"))))).await;
    let (clock, manual, mut waits) = watched();
    let store = MemoryStore::new();
    let holder = s7risk(&server.uri(), &clock)
        .token_store(store.clone())
        .build()
        .unwrap();
    let waiter = s7risk(&server.uri(), &clock)
        .token_store(store)
        .build()
        .unwrap();

    // The holder takes the lease and its login is in flight, held.
    let holding = tokio::spawn({
        let holder = holder.clone();
        async move { holder.access_token().await }
    });
    wait_until("the holder's login is sent", || {
        server.requests().len() == 1
    })
    .await;
    let waiting = tokio::spawn({
        let waiter = waiter.clone();
        async move { waiter.access_token().await }
    });
    // The waiter finds the lease held and looks again after pauses that double up to 400 ms.
    // Tokio's timer may end some of them before the clock moves (they are that short): the
    // clock has not moved then, and the limit of 60 s is counted on it.
    let mut asked = vec![waits.next().await];
    assert_eq!(asked[0], (Duration::ZERO, Duration::from_millis(25)));
    // 60 s on the clock since it began waiting is not past the limit: it pauses again.
    manual.advance(Duration::from_secs(60));
    while asked.last().unwrap().0 < Duration::from_secs(60) {
        asked.push(waits.next().await);
    }
    // Past it (any pause ends within 400 ms), the waiter renews alone.
    manual.advance(Duration::from_millis(400));
    until("the waiter's own login is sent", || {
        server.requests().len() == 2
    })
    .await;
    asked.extend(waits.taken_now());
    let doubling: Vec<_> = (0..asked.len())
        .map(|i| Duration::from_millis(25 << i.min(4)))
        .collect();
    assert_eq!(
        asked.iter().map(|wait| wait.1).collect::<Vec<_>>(),
        doubling,
        "{asked:?}"
    );
    assert!(
        asked
            .iter()
            .all(|wait| [Duration::ZERO, Duration::from_secs(60)].contains(&wait.0)),
        "no pause once past the limit: {asked:?}"
    );

    server.release_all();
    let (held, own) = (
        holding.await.unwrap().unwrap(),
        waiting.await.unwrap().unwrap(),
    );
    assert_eq!(held.secret().expose_secret(), jwt(START_EPOCH + 600, "t0"));
    assert_eq!(own.secret().expose_secret(), jwt(START_EPOCH + 600, "t1"));
    assert_logins(&server, 2);
    assert_eq!(waiter.request_counts().logins, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_up_handler_that_never_answers_is_bounded_by_the_clock() {
    const OTP_START: &str = "/stepup/challenges/otp/SMS";
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/login_with_password"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"token": "tok-1", "tokenType": "ACCESS"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(OTP_START))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let (clock, manual, mut waits) = watched();
    let asked = Arc::new(tokio::sync::Notify::new());
    let session = tokensmith::weavr::Session::builder()
        .base_url(server.uri())
        .api_key("weavr-api-key-123")
        .email("user@example.com")
        .password("Pa$$w0rd")
        .clock(clock)
        .step_up(StepUpMethod::Sms, {
            let asked = asked.clone();
            move |_| {
                let asked = asked.clone();
                async move {
                    asked.notify_one();
                    std::future::pending::<Answer>().await
                }
            }
        })
        .build()
        .unwrap();
    let stepping_up = tokio::spawn({
        let session = session.clone();
        async move { session.step_up().await }
    });

    // The challenge lives 5 minutes from when it was sent: the handler is given that long.
    assert_eq!(
        waits.next().await,
        (Duration::ZERO, Duration::from_secs(5 * 60))
    );
    asked.notified().await;
    manual.advance(Duration::from_secs(5 * 60));
    let error = soon(stepping_up).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::StepUpTimeout);
    assert_eq!(error.service(), Some(Service::Weavr));

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_request(
        &requests[0],
        &Expected {
            method: "POST",
            path: "/login_with_password",
            query: None,
            headers: &[("api-key", "weavr-api-key-123")],
            body: Body::Json(
                json!({"email": "user@example.com", "password": {"value": "Pa$$w0rd"}}),
            ),
        },
    );
    assert_request(
        &requests[1],
        &Expected {
            method: "POST",
            path: OTP_START,
            query: None,
            headers: &[
                ("api-key", "weavr-api-key-123"),
                ("authorization", "Bearer tok-1"),
            ],
            body: Body::None,
        },
    );
    assert_eq!(waits.taken_now(), []);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_renewal_fires_when_the_clock_reaches_the_margin() {
    // Logins at 0 s, 1141 s and 1681 s on the clock; the first token lives 1200 s, the others
    // 600 s. Each falls due 60 s before it expires.
    const EXPIRES: [u64; 3] = [1200, 1741, 2281];
    let token = |i: usize| jwt(START_EPOCH + EXPIRES[i], &format!("t{i}"));
    let server = HeldServer::start(move |i| (200, login_answer(&token(i.min(2))))).await;
    server.release(1);
    let (clock, manual, mut waits) = watched();
    let session = s7risk(&server.uri(), &clock)
        .background_refresh(true)
        .build()
        .unwrap();
    assert_eq!(common::served(session.access_token().await), token(0));

    // Into the first token's margin: the caller is served it, and the task renews (whether
    // its timer or the caller woke it first). The renewal's answer is held until the caller
    // was served, which a renewal that lands first would otherwise beat.
    manual.advance(Duration::from_secs(1141));
    assert_eq!(common::served(session.access_token().await), token(0));
    wait_until("the first renewal is sent", || server.requests().len() == 2).await;
    server.release_all();
    // The task then waits on the clock until the new token falls due, 540 s on.
    // (Before it, the task may have waited for the first token to fall due, at 1140 s.)
    let due = (Duration::from_secs(1141), Duration::from_secs(540));
    loop {
        let wait = waits.next().await;
        if wait == due {
            break;
        }
        assert!(
            wait.0 + wait.1 == Duration::from_secs(1140)
                || wait == (Duration::from_secs(1141), Duration::ZERO),
            "{wait:?}"
        );
    }

    // No caller: the clock alone makes the task renew.
    manual.advance(Duration::from_secs(540));
    until("the task's own renewal is sent", || {
        server.requests().len() == 3
    })
    .await;
    let served = loop {
        let served = session.access_token().await.unwrap();
        if served.secret().expose_secret() == token(2) {
            break served;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(served.expires_in(), Duration::from_secs(600));
    assert_logins(&server, 3);
    assert_eq!(session.request_counts().logins, 3);
}
