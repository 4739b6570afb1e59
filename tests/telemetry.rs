//! Spans and metrics of the requests a session sends on its own behalf: one span per attempt,
//! named and attributed by OpenTelemetry's HTTP client conventions, none for a cached token;
//! counters and a duration histogram through the `metrics` facade (feature `metrics`).
#![cfg(all(feature = "accounts", feature = "weavr"))]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{jwt, test_clock, START_EPOCH};
use serde_json::json;
use tokensmith::accounts::Session;
use tokensmith::clock::ManualClock;
use tokensmith::{ErrorKind, RefreshPolicy, RetryPolicy};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const DAY: u64 = 24 * 60 * 60;
const LOGIN: &str = "/v1/login";
const REFRESH: &str = "/v1/token-refresh";

/// A span as it was when it closed: its name and every field recorded on it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Captured {
    name: &'static str,
    level: tracing::Level,
    fields: BTreeMap<String, String>,
}

#[derive(Default)]
struct Seen {
    spans: Vec<Captured>,
    /// Open spans: their index in `spans` (ids are reused once a span closes).
    open: HashMap<u64, usize>,
    events: Vec<BTreeMap<String, String>>,
}

/// A `tracing` layer that records every span's name and fields, and every event's fields.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Seen>>);

impl Capture {
    fn spans(&self) -> Vec<Captured> {
        self.0.lock().unwrap().spans.clone()
    }

    fn events(&self) -> usize {
        self.0.lock().unwrap().events.len()
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let mut seen = self.0.lock().unwrap();
        let index = seen.spans.len();
        seen.spans.push(Captured {
            name: attrs.metadata().name(),
            level: *attrs.metadata().level(),
            fields,
        });
        seen.open.insert(id.into_u64(), index);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut seen = self.0.lock().unwrap();
        if let Some(&index) = seen.open.get(&id.into_u64()) {
            values.record(&mut Fields(&mut seen.spans[index].fields));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().events.push(fields);
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        self.0.lock().unwrap().open.remove(&id.into_u64());
    }
}

/// Captures this thread's spans and events until the guard is dropped.
fn capture() -> (Capture, tracing::subscriber::DefaultGuard) {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    (capture, tracing::subscriber::set_default(subscriber))
}

fn session(server: &MockServer, clock: &ManualClock) -> Session {
    Session::builder()
        .base_url(server.uri())
        .username("Admin")
        .password("pw-Horse-Battery")
        .clock(clock.clone())
        .refresh_policy(RefreshPolicy::new().with_jitter(false))
        .retry_policy(RetryPolicy::default().initial_backoff(Duration::ZERO))
        .build()
        .unwrap()
}

fn tokens(tag: &str, at: u64, refresh: bool) -> ResponseTemplate {
    let mut body = json!({
        "id_token": format!("id-{tag}"),
        "access_token": jwt(START_EPOCH + at + DAY, &format!("access-{tag}")),
        "expires_in": DAY,
    });
    if refresh {
        body["refresh_token"] = json!(format!("refresh-{tag}-opaque"));
    }
    ResponseTemplate::new(200).set_body_json(body)
}

async fn mount(server: &MockServer, route: &str, response: ResponseTemplate, times: u64) {
    Mock::given(method("POST"))
        .and(path(route))
        .respond_with(response)
        .up_to_n_times(times)
        .mount(server)
        .await;
}

/// The fields every span of a POST to `route` on `server` carries.
fn post(server: &MockServer, route: &str, grant: &str) -> BTreeMap<String, String> {
    let port = server.address().port().to_string();
    [
        ("otel.name", "POST"),
        ("otel.kind", "client"),
        ("http.request.method", "POST"),
        ("server.address", "127.0.0.1"),
        ("server.port", &port),
        ("url.scheme", "http"),
        ("url.path", route),
        ("tokensmith.service", "accounts"),
        ("tokensmith.grant", grant),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn with(mut fields: BTreeMap<String, String>, more: &[(&str, &str)]) -> BTreeMap<String, String> {
    for (k, v) in more {
        fields.insert((*k).to_owned(), (*v).to_owned());
    }
    fields
}

fn span(fields: BTreeMap<String, String>) -> Captured {
    Captured {
        name: "POST",
        level: tracing::Level::INFO,
        fields,
    }
}

#[tokio::test]
async fn a_login_and_a_refresh_each_get_one_client_span() {
    let server = MockServer::start().await;
    let clock = test_clock();
    mount(&server, LOGIN, tokens("one", 0, true), 1).await;
    mount(&server, REFRESH, tokens("two", DAY - 60, false), 1).await;
    let session = session(&server, &clock);
    let (capture, _guard) = capture();

    session.access_token().await.unwrap();
    clock.advance(Duration::from_secs(DAY - 60));
    session.access_token().await.unwrap();

    assert_eq!(
        capture.spans(),
        vec![
            span(with(
                post(&server, LOGIN, "login"),
                &[("http.response.status_code", "200")]
            )),
            span(with(
                post(&server, REFRESH, "refresh"),
                &[("http.response.status_code", "200")]
            )),
        ]
    );
}

#[tokio::test]
async fn a_refused_login_s_span_carries_its_status_as_the_error_type() {
    let server = MockServer::start().await;
    let clock = test_clock();
    let refused = ResponseTemplate::new(401)
        .set_body_json(json!({"status": 401, "message": "Incorrect username or password."}));
    mount(&server, LOGIN, refused, 1).await;
    let session = session(&server, &clock);
    let (capture, _guard) = capture();

    let error = session.access_token().await.unwrap_err();

    assert_eq!(error.kind(), ErrorKind::InvalidCredentials);
    assert_eq!(
        capture.spans(),
        vec![span(with(
            post(&server, LOGIN, "login"),
            &[
                ("http.response.status_code", "401"),
                ("error.type", "401"),
                ("otel.status_code", "ERROR"),
            ]
        ))]
    );
}

#[tokio::test]
async fn each_attempt_gets_a_span_and_resends_are_counted() {
    let server = MockServer::start().await;
    let clock = test_clock();
    mount(&server, LOGIN, ResponseTemplate::new(503), 1).await;
    mount(&server, LOGIN, tokens("one", 0, true), 1).await;
    let session = session(&server, &clock);
    let (capture, _guard) = capture();

    session.access_token().await.unwrap();

    assert_eq!(
        capture.spans(),
        vec![
            span(with(
                post(&server, LOGIN, "login"),
                &[
                    ("http.response.status_code", "503"),
                    ("error.type", "503"),
                    ("otel.status_code", "ERROR"),
                ]
            )),
            span(with(
                post(&server, LOGIN, "login"),
                &[
                    ("http.response.status_code", "200"),
                    ("http.request.resend_count", "1"),
                ]
            )),
        ]
    );
}

/// An accounts session on 127.0.0.1:`port` without retries, each login one attempt.
fn session_at(port: u16) -> tokensmith::accounts::SessionBuilder {
    Session::builder()
        .base_url(format!("http://127.0.0.1:{port}"))
        .username("Admin")
        .password("pw-Horse-Battery")
        .clock(test_clock())
        .retry_policy(RetryPolicy::none())
}

/// The span of a login to 127.0.0.1:`port` that failed with `error_type` (without a status: a
/// test that got one adds it).
fn failed_login_span(port: u16, error_type: &str) -> BTreeMap<String, String> {
    let port = port.to_string();
    [
        ("otel.name", "POST"),
        ("otel.kind", "client"),
        ("http.request.method", "POST"),
        ("server.address", "127.0.0.1"),
        ("server.port", &port),
        ("url.scheme", "http"),
        ("url.path", LOGIN),
        ("tokensmith.service", "accounts"),
        ("tokensmith.grant", "login"),
        ("error.type", error_type),
        ("otel.status_code", "ERROR"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// A server on 127.0.0.1 that reads each request and answers it with `answer` (raw bytes;
/// then closes), or, for `None`, keeps the connection open and never answers.
async fn raw_server(answer: Option<&'static [u8]>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = [0_u8; 4096];
            let _ = stream.read(&mut request).await;
            match answer {
                Some(bytes) => {
                    let _ = stream.write_all(bytes).await;
                    let _ = stream.shutdown().await;
                }
                None => held.push(stream),
            }
        }
    });
    port
}

/// The span of a login that got no answer in time (`timeout`, no status), an answer whose body
/// broke off (`body`, after the status) or one that is not HTTP (`_OTHER`): the failure's kind,
/// and the error a transient one.
#[tokio::test]
async fn an_answer_that_never_comes_or_breaks_off_is_typed_timeout_or_body() {
    let broken: &'static [u8] = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
        content-length: 400\r\n\r\n{\"access_token\": \"a";
    let cases = [
        (None, "timeout", ErrorKind::Timeout, None),
        (Some(broken), "body", ErrorKind::Transport, Some("200")),
        // Not HTTP at all: neither of the kinds above.
        (
            Some(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"),
            "_OTHER",
            ErrorKind::Transport,
            None,
        ),
    ];
    for (answer, kind, error_kind, status) in cases {
        let port = raw_server(answer).await;
        let session = session_at(port)
            .http_client(reqwest::Client::builder().timeout(Duration::from_millis(300)))
            .build()
            .unwrap();
        let (capture, _guard) = capture();

        let error = session.access_token().await.unwrap_err();

        assert_eq!(error.kind(), error_kind, "{kind}");
        assert!(error.is_transient(), "{kind}");
        let mut expected = failed_login_span(port, kind);
        if let Some(status) = status {
            expected.insert("http.response.status_code".to_owned(), status.to_owned());
        }
        assert_eq!(capture.spans(), vec![span(expected)], "{kind}");
    }
}

#[tokio::test]
async fn a_connection_that_fails_is_typed_without_a_status() {
    // A port nothing listens on: bound, then let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let session = session_at(port).build().unwrap();
    let (capture, _guard) = capture();

    let error = session.access_token().await.unwrap_err();

    assert_eq!(error.kind(), ErrorKind::Transport);
    let expected = failed_login_span(port, "connect");
    assert_eq!(capture.spans(), vec![span(expected)]);
}

#[tokio::test]
async fn a_cached_token_emits_no_span_and_no_event() {
    let server = MockServer::start().await;
    let clock = test_clock();
    mount(&server, LOGIN, tokens("one", 0, true), 1).await;
    let session = session(&server, &clock);
    let (capture, _guard) = capture();
    let first = session.access_token().await.unwrap();
    let (spans, events) = (capture.spans().len(), capture.events());
    assert_eq!(spans, 1, "the login was captured");

    for _ in 0..3 {
        let cached = session.access_token().await.unwrap();
        assert_eq!(
            cached.secret().expose_secret(),
            first.secret().expose_secret()
        );
    }
    session.headers().await.unwrap();

    assert_eq!(capture.spans().len(), spans, "{:?}", capture.spans());
    assert_eq!(capture.events(), events);
}

#[tokio::test]
async fn a_weavr_step_up_gets_a_challenge_span_and_a_verify_span_and_api_calls_none() {
    use tokensmith::weavr::{Answer, StepUpMethod};
    let server = MockServer::start().await;
    let login =
        ResponseTemplate::new(200).set_body_json(json!({"token": "tok-1", "tokenType": "ACCESS"}));
    mount(&server, "/login_with_password", login, 1).await;
    mount(
        &server,
        "/stepup/challenges/otp/SMS",
        ResponseTemplate::new(204),
        1,
    )
    .await;
    mount(
        &server,
        "/stepup/challenges/otp/SMS/verify",
        ResponseTemplate::new(204),
        1,
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/identities"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"identities": [], "count": 0, "responseCount": 0})),
        )
        .mount(&server)
        .await;
    let session = tokensmith::weavr::Session::builder()
        .base_url(server.uri())
        .api_key("weavr-api-key-123")
        .email("user@example.com")
        .password("Pa$$w0rd")
        .clock(test_clock())
        .step_up(StepUpMethod::Sms, |_| async {
            Answer::Code("123456".into())
        })
        .build()
        .unwrap();
    let (capture, _guard) = capture();

    session.step_up().await.unwrap();
    session.api().list_identities(None, None).await.unwrap();

    let weavr = |route: &str, grant: &str, status: &str| {
        let mut fields = post(&server, route, grant);
        fields.insert("tokensmith.service".into(), "weavr".into());
        fields.insert("http.response.status_code".into(), status.into());
        span(fields)
    };
    assert_eq!(
        capture.spans(),
        vec![
            weavr("/login_with_password", "login", "200"),
            weavr("/stepup/challenges/otp/SMS", "step_up_challenge", "204"),
            weavr("/stepup/challenges/otp/SMS/verify", "step_up_verify", "204"),
        ],
        "one span per request of the session's own, none for api() calls"
    );
}

#[tokio::test]
async fn weavr_s_identity_lookup_and_exchange_get_spans_without_the_query_and_send_gets_none() {
    let server = MockServer::start().await;
    let login =
        ResponseTemplate::new(200).set_body_json(json!({"token": "auth-1", "tokenType": "AUTH"}));
    mount(&server, "/login_with_password", login, 1).await;
    let one = json!({"identities": [{"id": {"type": "CONSUMER", "id": "900"}, "name": "n"}], "count": 1, "responseCount": 1});
    Mock::given(method("GET"))
        .and(path("/identities"))
        .respond_with(ResponseTemplate::new(200).set_body_json(one))
        .mount(&server)
        .await;
    let exchanged = ResponseTemplate::new(200).set_body_json(json!({"token": "access-1"}));
    mount(&server, "/access_token", exchanged, 1).await;
    let session = tokensmith::weavr::Session::builder()
        .base_url(server.uri())
        .api_key("weavr-api-key-123")
        .email("user@example.com")
        .password("Pa$$w0rd")
        .clock(test_clock())
        .build()
        .unwrap();
    let (capture, _guard) = capture();

    let token = session.access_token().await.unwrap();
    let sent = session
        .send(reqwest::Client::new().get(format!("{}/identities?limit=5", server.uri())))
        .await
        .unwrap();

    assert_eq!(token.secret().expose_secret(), "access-1");
    assert_eq!(sent.status(), 200);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(
        requests[1].url.query(),
        Some("limit=2"),
        "the lookup had a query"
    );
    let weavr = |name: &'static str, route: &str, grant: &str| {
        let mut fields = post(&server, route, grant);
        fields.insert("tokensmith.service".into(), "weavr".into());
        fields.insert("http.response.status_code".into(), "200".into());
        fields.insert("otel.name".into(), name.into());
        fields.insert("http.request.method".into(), name.into());
        Captured {
            name,
            level: tracing::Level::INFO,
            fields,
        }
    };
    assert_eq!(
        capture.spans(),
        vec![
            weavr("POST", "/login_with_password", "login"),
            weavr("GET", "/identities", "identities"),
            weavr("POST", "/access_token", "exchange"),
        ],
        "no query in any span, and no span for send()"
    );
}

#[cfg(feature = "metrics")]
mod metered {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    /// Answers `template` a quarter of a second later by the test clock.
    struct Slow(ManualClock, ResponseTemplate);

    impl wiremock::Respond for Slow {
        fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
            self.0.advance(Duration::from_millis(250));
            self.1.clone()
        }
    }

    async fn mount_slow(
        server: &MockServer,
        clock: &ManualClock,
        route: &str,
        answer: ResponseTemplate,
    ) {
        Mock::given(method("POST"))
            .and(path(route))
            .respond_with(Slow(clock.clone(), answer))
            .up_to_n_times(1)
            .mount(server)
            .await;
    }

    /// Every metric recorded, as `kind name{labels} value` lines, sorted.
    fn lines(recorder: &DebuggingRecorder) -> Vec<String> {
        let mut lines: Vec<String> = recorder
            .snapshotter()
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let (kind, key) = key.into_parts();
                let labels: Vec<String> = key
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                let value = match value {
                    DebugValue::Counter(n) => n.to_string(),
                    DebugValue::Gauge(g) => g.to_string(),
                    DebugValue::Histogram(h) => format!("{h:?}"),
                };
                format!("{kind:?} {}{{{}}} {value}", key.name(), labels.join(","))
            })
            .collect();
        lines.sort();
        lines
    }

    #[test]
    fn a_login_and_a_refresh_are_counted_and_timed() {
        let recorder = DebuggingRecorder::new();
        metrics::with_local_recorder(&recorder, || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let server = MockServer::start().await;
                let clock = test_clock();
                // The first login is answered 503, then sent again: one request of two attempts.
                mount_slow(&server, &clock, LOGIN, ResponseTemplate::new(503)).await;
                mount_slow(&server, &clock, LOGIN, tokens("one", 0, true)).await;
                mount_slow(&server, &clock, REFRESH, tokens("two", DAY - 60, false)).await;
                let refused = ResponseTemplate::new(401)
                    .set_body_json(json!({"status": 401, "message": "Incorrect password."}));
                mount_slow(&server, &clock, LOGIN, refused).await;
                let session = session(&server, &clock);
                session.access_token().await.unwrap();
                // Cached: not a request, not counted.
                session.access_token().await.unwrap();
                clock.advance(Duration::from_secs(DAY - 60));
                session.access_token().await.unwrap();

                let other = super::session(&server, &clock);
                let error = other.access_token().await.unwrap_err();
                assert_eq!(error.kind(), ErrorKind::InvalidCredentials);
            });
        });

        // Each answer takes 250 ms by the test clock; the retried login, both attempts.
        assert_eq!(
            lines(&recorder),
            vec![
                "Counter tokensmith_token_requests_total{service=accounts,grant=login,outcome=invalid_credentials} 1",
                "Counter tokensmith_token_requests_total{service=accounts,grant=login,outcome=success} 1",
                "Counter tokensmith_token_requests_total{service=accounts,grant=refresh,outcome=success} 1",
                "Histogram tokensmith_token_request_duration_seconds{service=accounts,grant=login} [0.5, 0.25]",
                "Histogram tokensmith_token_request_duration_seconds{service=accounts,grant=refresh} [0.25]",
            ]
        );
    }
}
