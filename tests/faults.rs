//! The fault matrix: every service's login meets every kind of broken answer and comes back
//! with its typed error, within a bounded time, without a panic, and stays usable afterwards.
//! Run with `--nocapture` to see the matrix printed.
#![cfg(all(
    feature = "s7risk",
    feature = "weavr",
    feature = "accounts",
    feature = "passwordsafe",
    feature = "fib"
))]

mod common;

use std::time::Duration;

use common::services::{AnySession, Service, FIB_PRIVATE, PASSWORD, SERVICES};
use common::{jwt, test_clock, START_EPOCH};
use serde_json::{json, Value};
use tokensmith::clock::ManualClock;
use tokensmith::{Error, ErrorKind, RetryPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::{any, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Short enough that the matrix runs quickly, long enough for a loopback answer.
const TIMEOUT: Duration = Duration::from_millis(500);
/// Every outcome must arrive well within this, retries included.
const BOUND: Duration = Duration::from_secs(10);
fn secrets() -> [String; 4] {
    [
        PASSWORD.into(),
        FIB_PRIVATE.into(),
        jwt(START_EPOCH + 300, "tok-fault"),
        jwt(START_EPOCH + 86_400, "tok-refresh"),
    ]
}

fn good_token() -> String {
    jwt(START_EPOCH + 300, "tok-good")
}

fn session(service: Service, base_url: &str, clock: &ManualClock) -> AnySession {
    let http = reqwest::Client::builder().timeout(TIMEOUT);
    let retry = RetryPolicy::default()
        .initial_backoff(Duration::from_millis(5))
        .max_backoff(Duration::from_millis(20))
        .max_elapsed(Duration::from_secs(2));
    service.session(base_url, clock, http, retry)
}

fn good(service: Service) -> ResponseTemplate {
    service.answer(&good_token())
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    ServerError,
    BadGatewayHtml,
    UnavailableRetryAfter,
    RateLimited,
    TruncatedJson,
    WrongShape,
    MissingToken,
    NullToken,
    EmptyBody,
    WrongContentType,
    Oversized,
    Timeout,
    ConnectionRefused,
    ResetMidBody,
}

const FAULTS: [Fault; 14] = [
    Fault::ServerError,
    Fault::BadGatewayHtml,
    Fault::UnavailableRetryAfter,
    Fault::RateLimited,
    Fault::TruncatedJson,
    Fault::WrongShape,
    Fault::MissingToken,
    Fault::NullToken,
    Fault::EmptyBody,
    Fault::WrongContentType,
    Fault::Oversized,
    Fault::Timeout,
    Fault::ConnectionRefused,
    Fault::ResetMidBody,
];

/// What each fault must come back as: the kind, the status, and how many logins went out.
struct Outcome {
    kind: ErrorKind,
    status: Option<u16>,
    attempts: usize,
}

impl Fault {
    fn expected(self, service: Service) -> Outcome {
        let outcome = |kind, status, attempts| Outcome {
            kind,
            status,
            attempts,
        };
        match self {
            // PS-Auth's token is its cookie: a well-formed answer without one is unexpected.
            Self::MissingToken | Self::NullToken if service == Service::PasswordSafeKey => {
                outcome(ErrorKind::UnexpectedResponse, Some(200), 1)
            }
            Self::ServerError => outcome(ErrorKind::ServerError, Some(500), 1),
            // Gateway failures are replayed for a login: nothing was said about the credentials.
            Self::BadGatewayHtml => outcome(ErrorKind::ServerError, Some(502), 3),
            // The service asks for 30 s, more than the retry budget: reported at once.
            Self::UnavailableRetryAfter => outcome(ErrorKind::ServiceUnavailable, Some(503), 1),
            Self::RateLimited => outcome(
                ErrorKind::RateLimited {
                    retry_after: Some(Duration::from_secs(60)),
                },
                Some(429),
                1,
            ),
            Self::TruncatedJson
            | Self::WrongShape
            | Self::MissingToken
            | Self::NullToken
            | Self::EmptyBody
            | Self::WrongContentType
            | Self::Oversized => outcome(ErrorKind::Decode, Some(200), 1),
            Self::Timeout => outcome(ErrorKind::Timeout, None, 1),
            // Never sent, so replayed up to the attempt limit.
            Self::ConnectionRefused => outcome(ErrorKind::Transport, None, 3),
            Self::ResetMidBody => outcome(ErrorKind::Transport, None, 1),
        }
    }

    fn response(self, service: Service) -> ResponseTemplate {
        let fault_body = service.success(json!(jwt(START_EPOCH + 300, "tok-fault")));
        match self {
            Self::ServerError => ResponseTemplate::new(500)
                .set_body_json(json!({"status": "error", "message": "Internal Server Error"})),
            Self::BadGatewayHtml => common::bad_gateway_html(),
            Self::UnavailableRetryAfter => ResponseTemplate::new(503)
                .insert_header("retry-after", "30")
                .set_body_string("Service Unavailable"),
            Self::RateLimited => ResponseTemplate::new(429)
                .insert_header("retry-after", "60")
                .set_body_json(json!({"message": "Too many requests"})),
            Self::TruncatedJson => {
                let text = fault_body.to_string();
                ResponseTemplate::new(200)
                    .set_body_raw(text[..text.len() / 2].to_owned(), "application/json")
            }
            Self::WrongShape => ResponseTemplate::new(200).set_body_json(json!([1, 2, 3])),
            Self::MissingToken => ResponseTemplate::new(200).set_body_json(service.without_token()),
            Self::NullToken => {
                ResponseTemplate::new(200).set_body_json(service.success(Value::Null))
            }
            Self::EmptyBody => ResponseTemplate::new(200),
            Self::WrongContentType => ResponseTemplate::new(200)
                .set_body_raw("<html><body>Welcome</body></html>", "text/html"),
            Self::Oversized => {
                let mut body = fault_body;
                body["data"]["padding"] = json!("x".repeat(100 * 1024));
                ResponseTemplate::new(200).set_body_json(body)
            }
            Self::Timeout => good(service).set_delay(TIMEOUT * 4),
            Self::ConnectionRefused | Self::ResetMidBody => unreachable!("not an HTTP answer"),
        }
    }
}

/// A server that answers every request with headers promising 1000 bytes, sends 10 and hangs
/// up.
async fn resetting_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"status\":",
                    )
                    .await;
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

/// An address nobody listens on.
async fn refusing_address() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

fn assert_no_secret(service: Service, fault: Fault, error: &Error) {
    let printed = format!("{error} {error:?}");
    for marker in secrets() {
        assert!(
            !printed.contains(&marker),
            "{service:?}/{fault:?}: error shows a secret: {printed}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_survives_every_fault_with_its_typed_error() {
    let mut table = vec![format!(
        "{:<18} {:<22} {:<28} {:>6} {:>8}",
        "service", "fault", "outcome", "status", "logins"
    )];
    for service in SERVICES {
        for fault in FAULTS {
            let clock = test_clock();
            let expected = fault.expected(service);
            let (server, base_url) = match fault {
                Fault::ConnectionRefused => (None, refusing_address().await),
                Fault::ResetMidBody => (None, resetting_server().await),
                _ => {
                    let server = MockServer::start().await;
                    Mock::given(path(service.login_path()))
                        .respond_with(fault.response(service))
                        .mount(&server)
                        .await;
                    service.mount_rest(&server).await;
                    let uri = server.uri();
                    (Some(server), uri)
                }
            };
            let session = session(service, &base_url, &clock);
            let error = tokio::time::timeout(BOUND, session.access_token())
                .await
                .unwrap_or_else(|_| panic!("{service:?}/{fault:?}: no outcome within {BOUND:?}"))
                .expect_err("a fault is an error");
            table.push(format!(
                "{:<18} {:<22} {:<28} {:>6} {:>8}",
                format!("{service:?}"),
                format!("{fault:?}"),
                format!("{:?}", error.kind()),
                error.status().map_or("-".into(), |s| s.to_string()),
                session.request_counts().logins,
            ));
            assert_eq!(
                error.kind(),
                expected.kind,
                "{service:?}/{fault:?}: {error}"
            );
            assert_eq!(error.status(), expected.status, "{service:?}/{fault:?}");
            assert_eq!(
                error.retry_after(),
                match fault {
                    Fault::UnavailableRetryAfter => Some(Duration::from_secs(30)),
                    Fault::RateLimited => Some(Duration::from_secs(60)),
                    _ => None,
                },
                "{service:?}/{fault:?}"
            );
            assert_no_secret(service, fault, &error);
            if matches!(fault, Fault::Oversized) {
                assert!(
                    error
                        .to_string()
                        .contains("larger than the 65536-byte limit"),
                    "{error}"
                );
            }
            if let Some(server) = server {
                let sent = common::count_requests(&server, service.login_path()).await;
                assert_eq!(
                    sent, expected.attempts,
                    "{service:?}/{fault:?}: requests sent"
                );
                // The session is still usable once the service behaves again (a rate limit
                // is waited out first, as the service asked).
                server.reset().await;
                Mock::given(path(service.login_path()))
                    .respond_with(good(service))
                    .mount(&server)
                    .await;
                service.mount_rest(&server).await;
                if matches!(fault, Fault::RateLimited) {
                    assert_eq!(
                        session.access_token().await.unwrap_err().kind(),
                        expected.kind,
                        "a rate-limited login is not retried before its time"
                    );
                    clock.advance(Duration::from_secs(61));
                }
                if error.is_transient() && !matches!(fault, Fault::RateLimited) {
                    // A 5xx, timeout or transport failure: the login backoff (at most 1 s
                    // after a first failure), or the 30 s a 503 asked for, returns the error
                    // and sends nothing.
                    for _ in 0..3 {
                        let held = session.access_token().await.unwrap_err();
                        assert_eq!(held.kind(), expected.kind, "{service:?}/{fault:?}");
                    }
                    if matches!(fault, Fault::UnavailableRetryAfter) {
                        // Well past the backoff, 1 s short of the 30 s.
                        clock.advance(Duration::from_secs(29));
                        let held = session.access_token().await.unwrap_err();
                        assert_eq!(held.retry_after(), Some(Duration::from_secs(30)));
                    }
                    assert_eq!(
                        common::count_requests(&server, service.login_path()).await,
                        0,
                        "{service:?}/{fault:?}: nothing sent within the backoff"
                    );
                    clock.advance(Duration::from_secs(1));
                }
                let token = session
                    .access_token()
                    .await
                    .unwrap_or_else(|e| panic!("{service:?}/{fault:?}: not usable again: {e}"));
                assert_eq!(
                    token.secret().expose_secret(),
                    service.cached_secret(&good_token())
                );
            }
        }
    }
    println!("{}", table.join("\n"));
}

/// An error body over the size limit is not read, but its status and `Retry-After` still are.
#[tokio::test]
async fn an_oversized_503_keeps_its_kind_and_its_retry_after() {
    let server = MockServer::start().await;
    Mock::given(path(Service::S7risk.login_path()))
        .respond_with(
            ResponseTemplate::new(503)
                .insert_header("retry-after", "60")
                .set_body_string("x".repeat(100 * 1024)),
        )
        .mount(&server)
        .await;
    let clock = test_clock();
    let session = session(Service::S7risk, &server.uri(), &clock);
    let error = session.access_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ServiceUnavailable, "{error}");
    assert_eq!(error.status(), Some(503));
    assert_eq!(error.retry_after(), Some(Duration::from_secs(60)));
    assert!(
        error
            .to_string()
            .contains("larger than the 65536-byte limit"),
        "{error}"
    );
    assert_eq!(
        common::count_requests(&server, Service::S7risk.login_path()).await,
        1
    );
}

#[tokio::test]
async fn a_login_is_replayed_after_a_gateway_failure_and_succeeds() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(any())
        .respond_with(good(Service::S7risk))
        .mount(&server)
        .await;
    let session = session(Service::S7risk, &server.uri(), &test_clock());
    let token = session.access_token().await.unwrap();
    assert_eq!(token.secret().expose_secret(), good_token());
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
    assert_eq!(session.request_counts().logins, 1, "one login, sent twice");
}

#[tokio::test]
async fn a_refused_login_is_sent_once_whatever_the_retry_policy() {
    for status in [401, 422, 423] {
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(
                ResponseTemplate::new(status).set_body_json(json!({"message": "refused"})),
            )
            .mount(&server)
            .await;
        let session = session(Service::Fib, &server.uri(), &test_clock());
        let first = session.access_token().await.unwrap_err();
        let second = session.access_token().await.unwrap_err();
        assert_eq!(first.kind(), second.kind());
        assert_eq!(
            server.received_requests().await.unwrap().len(),
            1,
            "status {status}: {first}"
        );
    }
}

#[tokio::test]
async fn a_rotating_refresh_that_left_is_never_replayed() {
    // fib's PATCH spends its refresh token: once the service may have taken it (an answer, a
    // timeout), it is not sent again, whatever the retry policy.
    for answer in [
        ResponseTemplate::new(429).insert_header("retry-after", "0"),
        ResponseTemplate::new(503),
        ResponseTemplate::new(502),
        Service::Fib
            .answer(&jwt(START_EPOCH + 600, "tok-late"))
            .set_delay(TIMEOUT * 4),
    ] {
        let server = MockServer::start().await;
        let clock = test_clock();
        Mock::given(wiremock::matchers::method("POST"))
            .respond_with(good(Service::Fib))
            .mount(&server)
            .await;
        Mock::given(wiremock::matchers::method("PATCH"))
            .respond_with(answer)
            .mount(&server)
            .await;
        let AnySession::Fib(session) = session(Service::Fib, &server.uri(), &clock) else {
            unreachable!()
        };
        session.access_token().await.unwrap();
        clock.advance(Duration::from_secs(299));
        let _ = session.access_token().await;
        let verbs: Vec<String> = server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(|r| r.method.to_string())
            .collect();
        assert_eq!(
            verbs.iter().filter(|v| *v == "PATCH").count(),
            1,
            "sent once: {verbs:?}"
        );
        assert_eq!(session.request_counts().refreshes, 1);
    }
}

/// Answers one request on `listener` like fib with tokens tagged `tag`, and says its method.
async fn answer_once(listener: tokio::net::TcpListener, tag: &str) -> String {
    let (mut socket, _) = listener.accept().await.unwrap();
    let mut buf = vec![0u8; 16 * 1024];
    let read = socket.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..read]).to_string();
    let body = Service::Fib
        .success(json!(jwt(START_EPOCH + 600, tag)))
        .to_string();
    let reply = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(reply.as_bytes()).await.unwrap();
    head.split(' ').next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_rotating_refresh_that_never_left_is_replayed() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let clock = test_clock();
    // Enough attempts that the refusals last until the listener is back, however loaded the
    // machine: the verdict does not depend on how many there were.
    let retry = RetryPolicy::default()
        .max_attempts(10_000)
        .initial_backoff(Duration::from_millis(10))
        .max_backoff(Duration::from_millis(10))
        .max_elapsed(Duration::from_secs(60));
    let AnySession::Fib(session) = Service::Fib.session(
        &format!("http://{addr}"),
        &clock,
        reqwest::Client::builder(),
        retry,
    ) else {
        unreachable!()
    };
    let login = tokio::spawn(answer_once(listener, "tok-good"));
    session.access_token().await.unwrap();
    assert_eq!(login.await.unwrap(), "POST");
    // The listener is gone: the refresh's connections are refused until it is back.
    let again = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        answer_once(
            tokio::net::TcpListener::bind(addr).await.unwrap(),
            "tok-again",
        )
        .await
    });
    clock.advance(Duration::from_secs(599));
    let token = session.access_token().await.unwrap();
    assert_eq!(
        token.secret().expose_secret(),
        jwt(START_EPOCH + 600, "tok-again")
    );
    assert_eq!(
        again.await.unwrap(),
        "PATCH",
        "the refresh, sent again once it could be"
    );
    let counts = session.request_counts();
    assert_eq!((counts.logins, counts.refreshes), (1, 1));
}

#[tokio::test]
async fn a_redirect_is_an_error_and_the_credentials_go_nowhere_else() {
    let elsewhere = MockServer::start().await;
    for service in SERVICES {
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(
                ResponseTemplate::new(307)
                    .insert_header("location", format!("{}/steal", elsewhere.uri()).as_str()),
            )
            .mount(&server)
            .await;
        let session = service.session(
            &server.uri(),
            &test_clock(),
            // A builder that would follow redirects: the session turns them off.
            reqwest::Client::builder(),
            RetryPolicy::none(),
        );
        let error = session.access_token().await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::UnexpectedResponse, "{service:?}");
        assert_eq!(error.status(), Some(307), "{service:?}");
        if service == Service::S7risk {
            // And with the session's own default HTTP client.
            let default_client = tokensmith::s7risk::Session::builder()
                .base_url(server.uri())
                .origin("https://api.example.com")
                .user("a@b.c", PASSWORD)
                .build()
                .unwrap();
            let error = default_client.access_token().await.unwrap_err();
            assert_eq!(error.status(), Some(307));
            // And with a shared client built from a builder that would follow redirects.
            let shared = tokensmith::HttpClient::build(reqwest::Client::builder()).unwrap();
            let error = tokensmith::s7risk::Session::builder()
                .base_url(server.uri())
                .origin("https://api.example.com")
                .user("a@b.c", PASSWORD)
                .http_client(shared)
                .build()
                .unwrap()
                .access_token()
                .await
                .unwrap_err();
            assert_eq!(error.kind(), ErrorKind::UnexpectedResponse);
            assert_eq!(error.status(), Some(307));
        }
    }
    assert!(
        elsewhere.received_requests().await.unwrap().is_empty(),
        "no credentials were re-sent to the redirect target"
    );
}
