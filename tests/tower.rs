//! `AuthLayer` around hyper's client and plain tower services: headers added, a 401 (or gRPC
//! UNAUTHENTICATED) reported and the request resent once where it can be rebuilt, idle windows
//! slid, `only_hosts` and the plain-HTTP rule.
#![cfg(feature = "tower")]

mod common;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::services::WEAVR_API_KEY;
use common::{count_requests, test_clock};
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tokensmith::tower::AuthLayer;
use tokensmith::{ErrorKind, RefreshPolicy};
use tower::{Layer, ServiceExt};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Respond, ResponseTemplate};

/// weavr's login answer with `tok-1`, `tok-2`, … as successive tokens.
#[derive(Clone, Default)]
struct Logins(Arc<AtomicUsize>);

impl Respond for Logins {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(200)
            .set_body_json(json!({"token": format!("tok-{n}"), "tokenType": "ACCESS"}))
    }
}

/// Answers with the given statuses in turn, then 200 `done`.
struct Script(Vec<u16>, AtomicUsize);

impl Respond for Script {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
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

/// Every header a request to `path` carried but `host`, as (name, value) in name order, and
/// its body, one entry per request in the order received.
async fn sent(server: &MockServer, path: &str) -> Vec<(Vec<(String, String)>, String)> {
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
                .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
                .collect();
            pairs.sort();
            (pairs, String::from_utf8(r.body.clone()).unwrap())
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

fn weavr_post(token: &str) -> (Vec<(String, String)>, String) {
    (
        pairs(&[
            ("api-key", WEAVR_API_KEY),
            ("authorization", &format!("Bearer {token}")),
            ("content-length", "7"),
            ("x-caller", "42"),
        ]),
        "payload".to_owned(),
    )
}

fn post<B>(server: &MockServer, body: B) -> Request<B> {
    Request::post(format!("{}/things", server.uri()))
        .header("x-caller", "42")
        .body(body)
        .unwrap()
}

async fn text<B>(response: Response<B>) -> String
where
    B: BodyExt,
    B::Error: std::fmt::Debug,
{
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test]
async fn hyper_client_a_401_is_reported_and_the_request_sent_again_with_the_renewed_token() {
    let server = weavr_server(vec![401]).await;
    let session = weavr_builder(&server).build().unwrap();
    let client = AuthLayer::new(session.clone())
        .layer(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());

    let response = client
        .oneshot(post(&server, Full::new(Bytes::from_static(b"payload"))))
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(text(response).await, "done");
    assert_eq!(
        sent(&server, "/things").await,
        [weavr_post("tok-1"), weavr_post("tok-2")]
    );
    assert_eq!(session.request_counts().logins, 2);
}

#[tokio::test]
async fn hyper_client_a_second_401_is_returned_without_a_third_send() {
    let server = weavr_server(vec![401, 401]).await;
    let session = weavr_builder(&server).build().unwrap();
    let client = AuthLayer::new(session)
        .layer(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    let response = client
        .oneshot(post(&server, Full::new(Bytes::from_static(b"payload"))))
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        sent(&server, "/things").await,
        [weavr_post("tok-1"), weavr_post("tok-2")]
    );
}

#[tokio::test]
async fn an_accepted_request_slides_the_idle_window() {
    let server = weavr_server(vec![]).await;
    let clock = test_clock();
    let session = weavr_builder(&server)
        .clock(clock.clone())
        .refresh_policy(RefreshPolicy::new().with_jitter(false))
        .build()
        .unwrap();
    session.access_token().await.unwrap();
    clock.advance(Duration::from_secs(200));
    let client = AuthLayer::new(session.clone())
        .layer(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    let response = client
        .oneshot(post(&server, Full::new(Bytes::from_static(b"payload"))))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(sent(&server, "/things").await, [weavr_post("tok-1")]);
    let token = session.access_token().await.unwrap();
    assert_eq!(
        token.expires_in(),
        Duration::from_secs(300),
        "the window slid from the call, 200 s after sign-in"
    );
    assert_eq!(session.request_counts().logins, 1);
}

#[tokio::test]
async fn send_once_a_body_that_cannot_be_cloned_goes_once_and_the_next_request_renews() {
    let server = weavr_server(vec![401]).await;
    let session = weavr_builder(&server).build().unwrap();
    let client = AuthLayer::new(session.clone())
        .send_once()
        .layer(Client::builder(TokioExecutor::new()).build_http::<BoxBody<Bytes, Infallible>>());
    let body = || Full::new(Bytes::from_static(b"payload")).boxed();

    let response = client.clone().oneshot(post(&server, body())).await.unwrap();
    assert_eq!(response.status(), 401, "the 401 comes back as it is");
    assert_eq!(sent(&server, "/things").await, [weavr_post("tok-1")]);

    let response = client.oneshot(post(&server, body())).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        sent(&server, "/things").await,
        [weavr_post("tok-1"), weavr_post("tok-2")]
    );
}

/// A tower service that records each request's URI and headers and answers with the next
/// of `answers` (status, `grpc-status`), then 200.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    answers: Arc<Mutex<Vec<Answer>>>,
}

/// A request's URI and its headers in name order.
type Seen = (String, Vec<(String, String)>);
/// A status, and the `grpc-status` header if any.
type Answer = (u16, Option<&'static str>);

impl Recorder {
    fn answering(answers: Vec<Answer>) -> Self {
        Self {
            answers: Arc::new(Mutex::new(answers)),
            ..Self::default()
        }
    }

    fn service(
        &self,
    ) -> impl tower::Service<
        Request<String>,
        Response = Response<String>,
        Error = Infallible,
        Future = impl Send,
    > + Clone
           + Send
           + 'static {
        let recorder = self.clone();
        tower::service_fn(move |request: Request<String>| {
            let recorder = recorder.clone();
            async move {
                let mut headers: Vec<_> = request
                    .headers()
                    .iter()
                    .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
                    .collect();
                headers.sort();
                recorder
                    .seen
                    .lock()
                    .unwrap()
                    .push((request.uri().to_string(), headers));
                let mut answers = recorder.answers.lock().unwrap();
                let (status, grpc) = if answers.is_empty() {
                    (200, None)
                } else {
                    answers.remove(0)
                };
                let mut response = Response::builder().status(status);
                if let Some(grpc) = grpc {
                    response = response.header("grpc-status", grpc);
                }
                Ok::<_, Infallible>(response.body(String::new()).unwrap())
            }
        })
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn credentials(token: &str) -> Vec<(String, String)> {
    pairs(&[
        ("api-key", WEAVR_API_KEY),
        ("authorization", &format!("Bearer {token}")),
    ])
}

#[tokio::test]
async fn grpc_unauthenticated_is_a_refusal_and_a_path_only_uri_gets_the_credentials_of_its_origin()
{
    let server = weavr_server(vec![]).await;
    let session = weavr_builder(&server)
        .credential_hosts(["grpc.example.com"])
        .build()
        .unwrap();
    // A trailers-only gRPC answer: HTTP 200, grpc-status 16 (UNAUTHENTICATED) in the headers.
    let recorder = Recorder::answering(vec![(200, Some("16")), (200, Some("0"))]);
    let service = AuthLayer::new(session.clone())
        .relative_to("https://grpc.example.com")
        .layer(recorder.service());
    // tonic's requests carry only the path; the channel adds its endpoint.
    let request = Request::post("/pkg.Accounts/List")
        .body("grpc frame".to_owned())
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.headers()["grpc-status"], "0");
    assert_eq!(
        recorder.seen(),
        [
            ("/pkg.Accounts/List".to_owned(), credentials("tok-1")),
            ("/pkg.Accounts/List".to_owned(), credentials("tok-2")),
        ]
    );
    assert_eq!(session.request_counts().logins, 2);
}

#[tokio::test]
async fn a_path_only_uri_gets_no_credentials_unless_told_its_origin_and_never_in_plain_text() {
    let server = weavr_server(vec![]).await;
    let session = weavr_builder(&server)
        .credential_hosts(["grpc.example.com"])
        .build()
        .unwrap();
    let recorder = Recorder::default();
    let request = || {
        Request::post("/pkg.Accounts/List")
            .body(String::new())
            .unwrap()
    };
    // Where a path-only request goes is the channel's business: unknown, so no credentials.
    let blind = AuthLayer::new(session.clone()).layer(recorder.service());
    blind.oneshot(request()).await.unwrap();
    // A channel to `http://` a host that is not loopback would carry them in plain text.
    let plain = AuthLayer::new(session.clone())
        .relative_to("http://grpc.example.com")
        .layer(recorder.service());
    let error = plain.oneshot(request()).await.unwrap_err();
    let error = error.downcast_ref::<tokensmith::Error>().unwrap();
    assert_eq!(error.kind(), ErrorKind::Configuration);
    // Another origin than the session's hosts: no credentials either.
    let elsewhere = AuthLayer::new(session.clone())
        .relative_to("https://other.example.com")
        .layer(recorder.service());
    elsewhere.oneshot(request()).await.unwrap();
    assert_eq!(
        recorder.seen(),
        [
            ("/pkg.Accounts/List".to_owned(), vec![]),
            ("/pkg.Accounts/List".to_owned(), vec![]),
        ]
    );
    assert_eq!(session.request_counts().logins, 0);
}

#[tokio::test]
async fn only_hosts_keeps_the_credentials_from_other_hosts() {
    let server = weavr_server(vec![]).await;
    let session = weavr_builder(&server).build().unwrap();
    let recorder = Recorder::default();
    let service = AuthLayer::new(session)
        .only_hosts(["API.example.com", "localhost:8443"])
        .layer(recorder.service());
    for uri in [
        "https://api.example.com/a",
        "https://other.example.com/b",
        "/c",
        "https://localhost:8443/d",
        "https://localhost/e",
    ] {
        let request = Request::get(uri).body(String::new()).unwrap();
        service.clone().oneshot(request).await.unwrap();
    }
    assert_eq!(
        recorder.seen(),
        [
            ("https://api.example.com/a".to_owned(), credentials("tok-1")),
            ("https://other.example.com/b".to_owned(), vec![]),
            ("/c".to_owned(), vec![]),
            ("https://localhost:8443/d".to_owned(), credentials("tok-1")),
            ("https://localhost/e".to_owned(), vec![]),
        ]
    );
    assert_eq!(count_requests(&server, "/login_with_password").await, 1);
}

/// A plain-HTTP request through the layer, from a session whose `danger_accept_plain_http` is
/// `allowed`: the answer's status or the error's kind, what the inner service saw, and the
/// logins.
async fn plain_http_through_the_layer(allowed: bool) -> (Result<u16, ErrorKind>, Vec<Seen>, u64) {
    let server = weavr_server(vec![]).await;
    let session = weavr_builder(&server)
        .credential_hosts(["api.example.com"])
        .danger_accept_plain_http(allowed)
        .build()
        .unwrap();
    let recorder = Recorder::default();
    let service = AuthLayer::new(session.clone()).layer(recorder.service());
    let request = Request::get("http://api.example.com/a")
        .body(String::new())
        .unwrap();
    let outcome = match service.oneshot(request).await {
        Ok(response) => Ok(response.status().as_u16()),
        Err(error) => Err(error.downcast_ref::<tokensmith::Error>().unwrap().kind()),
    };
    (outcome, recorder.seen(), session.request_counts().logins)
}

#[tokio::test]
async fn credentials_never_go_over_plain_http_to_another_host() {
    let (outcome, seen, logins) = plain_http_through_the_layer(false).await;
    assert_eq!(outcome, Err(ErrorKind::Configuration));
    assert_eq!(seen, []);
    assert_eq!(logins, 0);
}

/// The layer's plain-HTTP rule is the session's: allowed with `danger_accept_plain_http(true)`
/// (refused without it: `credentials_never_go_over_plain_http_to_another_host`).
#[tokio::test]
async fn danger_accept_plain_http_is_the_tower_layer_s_rule_too() {
    let (outcome, seen, logins) = plain_http_through_the_layer(true).await;
    assert_eq!(outcome, Ok(200));
    assert_eq!(
        seen,
        [("http://api.example.com/a".to_owned(), credentials("tok-1"))]
    );
    assert_eq!(logins, 1);
}

#[tokio::test]
async fn a_refused_login_is_the_error_and_nothing_is_sent() {
    let server = MockServer::start().await;
    Mock::given(path("/login_with_password"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"errorCode": "INVALID_CREDENTIALS"})),
        )
        .mount(&server)
        .await;
    let session = weavr_builder(&server)
        .credential_hosts(["api.example.com"])
        .build()
        .unwrap();
    let recorder = Recorder::default();
    let service = AuthLayer::new(session).layer(recorder.service());
    let request = Request::get("https://api.example.com/a")
        .body(String::new())
        .unwrap();
    let error = service.oneshot(request).await.unwrap_err();
    let error = error.downcast_ref::<tokensmith::Error>().unwrap();
    assert_eq!(error.kind(), ErrorKind::InvalidCredentials);
    assert_eq!(recorder.seen(), []);
}

#[tokio::test]
async fn a_step_up_refusal_passes_through_unanswered() {
    let server = weavr_server(vec![]).await;
    let session = weavr_builder(&server)
        .credential_hosts(["api.example.com"])
        .build()
        .unwrap();
    let recorder = Recorder::answering(vec![(403, None)]);
    let service = AuthLayer::new(session).layer(recorder.service());
    let request = Request::get("https://api.example.com/managed_accounts")
        .body(String::new())
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(
        recorder.seen(),
        [(
            "https://api.example.com/managed_accounts".to_owned(),
            credentials("tok-1")
        )]
    );
    let requests = server.received_requests().await.unwrap();
    let paths: Vec<_> = requests.iter().map(|r| r.url.path()).collect();
    assert_eq!(paths, ["/login_with_password"], "no step-up challenge");
}

#[tokio::test]
async fn its_debug_shows_no_secret() {
    let server = weavr_server(vec![]).await;
    let session = weavr_builder(&server).build().unwrap();
    session.access_token().await.unwrap();
    let layer = AuthLayer::new(session).only_hosts(["api.weavr.example"]);
    let service = layer
        .clone()
        .send_once()
        .layer(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    for debug in [format!("{layer:?}"), format!("{service:?}")] {
        assert!(debug.contains("api.weavr.example"), "{debug}");
        assert!(!debug.contains("tok-1"), "{debug}");
        assert!(!debug.contains(WEAVR_API_KEY), "{debug}");
    }
}
