//! `AuthMiddleware` in a reqwest-middleware chain: credentials attached, a 401 renewed and
//! resent once, a streamed body sent once, weavr's step-up answered and its idle window slid,
//! `only_hosts`, and composition with reqwest-retry and reqwest-tracing.
#![cfg(feature = "middleware")]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::services::{Service, WEAVR_API_KEY};
use common::{count_requests, test_clock};
use reqwest_middleware::ClientBuilder;
use reqwest_retry::{policies::ExponentialBackoff, RetryTransientMiddleware};
use reqwest_tracing::TracingMiddleware;
use serde_json::json;
use tokensmith::middleware::AuthMiddleware;
use tokensmith::weavr::{Answer, StepUpMethod};
use tokensmith::{AnySession, ErrorKind, RefreshPolicy, RetryPolicy};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// weavr's login answer with `tok-1`, `tok-2`, … as successive tokens.
#[derive(Clone, Default)]
struct Logins(Arc<AtomicUsize>);

impl Respond for Logins {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(200)
            .set_body_json(json!({"token": format!("tok-{n}"), "tokenType": "ACCESS"}))
    }
}

/// Answers with the given statuses in turn, then 200 `done`.
struct Script(Vec<u16>, AtomicUsize);

impl Respond for Script {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.1.fetch_add(1, Ordering::SeqCst);
        match self.0.get(n) {
            Some(&status) => ResponseTemplate::new(status).set_body_string("no"),
            None => ResponseTemplate::new(200).set_body_string("done"),
        }
    }
}

async fn weavr_server(things: Vec<u16>) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/login_with_password"))
        .respond_with(Logins::default())
        .mount(&server)
        .await;
    Mock::given(path("/things"))
        .respond_with(Script(things, AtomicUsize::new(0)))
        .mount(&server)
        .await;
    server
}

fn weavr_builder(server: &MockServer) -> tokensmith::weavr::SessionBuilder {
    tokensmith::weavr::Session::builder()
        .base_url(server.uri())
        .api_key(WEAVR_API_KEY)
        .email("user@example.com")
        .password("Pa$$w0rd")
        .clock(test_clock())
}

/// Every header a request to `path` carried but `host`, as (name, value) in name order, one
/// list per request in the order received.
async fn headers_sent(server: &MockServer, path: &str) -> Vec<Vec<(String, String)>> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == path)
        .map(|r| {
            let mut pairs: Vec<_> = r
                .headers
                .iter()
                .filter(|(name, _)| name.as_str() != "host")
                .map(|(name, value)| (name.as_str().to_owned(), value.to_str().unwrap().to_owned()))
                .collect();
            pairs.sort();
            pairs
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<_> = list
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    pairs.sort();
    pairs
}

fn weavr_get(token: &str) -> Vec<(String, String)> {
    pairs(&[
        ("accept", "*/*"),
        ("api-key", WEAVR_API_KEY),
        ("authorization", &format!("Bearer {token}")),
        ("x-caller", "42"),
    ])
}

#[tokio::test]
async fn retry_outside_auth_inside_the_retried_request_carries_the_renewed_token() {
    // tok-1 refused; the resend with tok-2 meets a 503; reqwest-retry sends again, through
    // the auth middleware, with tok-2.
    let server = weavr_server(vec![401, 503]).await;
    let session = weavr_builder(&server).build().unwrap();
    let backoff = ExponentialBackoff::builder()
        .retry_bounds(Duration::from_millis(1), Duration::from_millis(1))
        .build_with_max_retries(2);
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(TracingMiddleware::default())
        .with(RetryTransientMiddleware::new_with_policy(backoff))
        .with(AuthMiddleware::new(session.clone()))
        .build();

    let response = client
        .get(format!("{}/things", server.uri()))
        .header("x-caller", "42")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "done");
    assert_eq!(
        headers_sent(&server, "/things").await,
        [weavr_get("tok-1"), weavr_get("tok-2"), weavr_get("tok-2")]
    );
    assert_eq!(session.request_counts().logins, 2, "renewed once");
}

#[tokio::test]
async fn a_second_401_is_returned_without_a_third_send() {
    let server = weavr_server(vec![401, 401]).await;
    let session = weavr_builder(&server).build().unwrap();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(AuthMiddleware::new(session.clone()))
        .build();
    let response = client
        .get(format!("{}/things", server.uri()))
        .header("x-caller", "42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        headers_sent(&server, "/things").await,
        [weavr_get("tok-1"), weavr_get("tok-2")]
    );
}

#[tokio::test]
async fn a_streamed_body_is_sent_once_and_the_next_request_renews_first() {
    let server = weavr_server(vec![401]).await;
    let session = weavr_builder(&server).build().unwrap();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(AuthMiddleware::new(session.clone()))
        .build();
    let stream = futures::stream::once(async { Ok::<_, std::io::Error>(b"payload".to_vec()) });
    let response = client
        .post(format!("{}/things", server.uri()))
        .header("x-caller", "42")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "the 401 comes back as it is");
    let requests = server.received_requests().await.unwrap();
    let posts: Vec<_> = requests
        .iter()
        .filter(|r| r.url.path() == "/things")
        .collect();
    assert_eq!(posts.len(), 1, "sent once");
    assert_eq!(posts[0].body, b"payload");
    assert_eq!(posts[0].headers["authorization"], "Bearer tok-1");

    let response = client
        .get(format!("{}/things", server.uri()))
        .header("x-caller", "42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        headers_sent(&server, "/things").await[1],
        weavr_get("tok-2")
    );
    assert_eq!(session.request_counts().logins, 2);
}

/// A protected endpoint: STEP_UP_REQUIRED until the verification went through.
#[derive(Clone, Default)]
struct Protected(Arc<AtomicBool>);

impl Respond for Protected {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        if self.0.load(Ordering::SeqCst) {
            ResponseTemplate::new(200).set_body_string("consumer")
        } else {
            ResponseTemplate::new(403).set_body_json(json!({"errorCode": "STEP_UP_REQUIRED"}))
        }
    }
}

struct Verify(Protected);

impl Respond for Verify {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        if body == json!({"verificationCode": "123456"}) {
            (self.0).0.store(true, Ordering::SeqCst);
            ResponseTemplate::new(204)
        } else {
            ResponseTemplate::new(409)
                .set_body_json(json!({"errorCode": "VERIFICATION_CODE_INVALID"}))
        }
    }
}

#[tokio::test]
async fn weavr_step_up_is_answered_and_the_idle_window_slides() {
    let server = weavr_server(vec![]).await;
    let protected = Protected::default();
    Mock::given(method("GET"))
        .and(path("/consumers"))
        .respond_with(protected.clone())
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/stepup/challenges/otp/SMS"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/stepup/challenges/otp/SMS/verify"))
        .respond_with(Verify(protected))
        .mount(&server)
        .await;
    let clock = test_clock();
    let session = weavr_builder(&server)
        .clock(clock.clone())
        .refresh_policy(RefreshPolicy::new().with_jitter(false))
        .step_up(StepUpMethod::Sms, |_| async {
            Answer::Code("123456".into())
        })
        .build()
        .unwrap();
    session.access_token().await.unwrap();
    clock.advance(Duration::from_secs(200));
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(AuthMiddleware::new(session.clone()))
        .build();

    let response = client
        .get(format!("{}/consumers", server.uri()))
        .header("x-caller", "42")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "consumer");
    assert_eq!(
        headers_sent(&server, "/consumers").await,
        [weavr_get("tok-1"), weavr_get("tok-1")],
        "refused for a step-up, then sent once more"
    );
    assert_eq!(
        count_requests(&server, "/stepup/challenges/otp/SMS/verify").await,
        1
    );
    let token = session.access_token().await.unwrap();
    assert_eq!(
        token.expires_in(),
        Duration::from_secs(300),
        "the window slid from the call, 200 s after sign-in"
    );
    assert_eq!(session.request_counts().logins, 1);
}

#[tokio::test]
async fn only_hosts_keeps_the_credentials_from_other_hosts() {
    let ours = weavr_server(vec![]).await;
    let theirs = weavr_server(vec![]).await;
    let session: AnySession = weavr_builder(&ours).build().unwrap().into();
    let port = ours.address().port();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(AuthMiddleware::new(session.clone()).only_hosts([format!("127.0.0.1:{port}")]))
        .build();
    for server in [&ours, &theirs] {
        let response = client
            .get(format!("{}/things", server.uri()))
            .header("x-caller", "42")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(headers_sent(&ours, "/things").await, [weavr_get("tok-1")]);
    assert_eq!(
        headers_sent(&theirs, "/things").await,
        [pairs(&[("accept", "*/*"), ("x-caller", "42")])],
        "no credentials to another port"
    );
    assert_eq!(count_requests(&theirs, "/login_with_password").await, 0);

    // A name matches that name only; a bare host matches every port.
    let by_name = ClientBuilder::new(reqwest::Client::new())
        .with(AuthMiddleware::new(session.clone()).only_hosts(["LOCALHOST", "not a host/"]))
        .build();
    by_name
        .get(format!("{}/things", theirs.uri()))
        .header("x-caller", "42")
        .send()
        .await
        .unwrap();
    let any_port = ClientBuilder::new(reqwest::Client::new())
        .with(AuthMiddleware::new(session).only_hosts(["127.0.0.1"]))
        .build();
    any_port
        .get(format!("{}/things", theirs.uri()))
        .header("x-caller", "42")
        .send()
        .await
        .unwrap();
    assert_eq!(
        headers_sent(&theirs, "/things").await[1..],
        [
            pairs(&[("accept", "*/*"), ("x-caller", "42")]),
            weavr_get("tok-1")
        ]
    );
}

#[tokio::test]
async fn credentials_never_go_over_plain_http_to_another_host() {
    let server = weavr_server(vec![]).await;
    let session = weavr_builder(&server).build().unwrap();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(AuthMiddleware::new(session.clone()).only_hosts(["api.example.invalid"]))
        .build();
    // Refused before anything is sent: the name does not even need to resolve.
    let error = client
        .get("http://api.example.invalid/things")
        .send()
        .await
        .unwrap_err();
    let reqwest_middleware::Error::Middleware(error) = error else {
        panic!("expected the middleware's error, got {error:?}")
    };
    let error = error.downcast::<tokensmith::Error>().unwrap();
    assert_eq!(error.kind(), ErrorKind::Configuration);
    assert_eq!(error.service(), Some(tokensmith::Service::Weavr));
    assert_eq!(session.request_counts().logins, 0);
}

#[tokio::test]
async fn a_refused_login_fails_the_request_before_it_is_sent() {
    let server = MockServer::start().await;
    Mock::given(path(Service::S7risk.login_path()))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"status": "error", "message": "Invalid credentials"})),
        )
        .mount(&server)
        .await;
    let common::services::AnySession::S7risk(session) = Service::S7risk.session(
        &server.uri(),
        &test_clock(),
        reqwest::Client::builder(),
        RetryPolicy::none(),
    ) else {
        unreachable!()
    };
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(AuthMiddleware::new(session))
        .build();
    let error = client
        .get(format!("{}/things", server.uri()))
        .send()
        .await
        .unwrap_err();
    let reqwest_middleware::Error::Middleware(error) = error else {
        panic!("expected the middleware's error, got {error:?}")
    };
    let error = error.downcast::<tokensmith::Error>().unwrap();
    assert_eq!(error.kind(), ErrorKind::InvalidCredentials);
    assert_eq!(count_requests(&server, "/things").await, 0);
}

#[tokio::test]
async fn its_debug_shows_no_secret() {
    let server = weavr_server(vec![]).await;
    let session = weavr_builder(&server).build().unwrap();
    session.access_token().await.unwrap();
    let middleware = AuthMiddleware::new(session).only_hosts(["api.weavr.example"]);
    let debug = format!("{middleware:?}");
    assert!(debug.contains("api.weavr.example"), "{debug}");
    assert!(!debug.contains("tok-1"), "{debug}");
    assert!(!debug.contains(WEAVR_API_KEY), "{debug}");
}
