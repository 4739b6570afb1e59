//! README's "HTTP defaults", row by row: the default client's timeouts and `User-Agent`, what a
//! client of the application's keeps and drops, the body limit and `max_response_bytes`, and the
//! rule for request URLs beside the one for base URLs.
//!
//! Timeouts are timed on Tokio's paused clock: a server that never answers (or never completes
//! the connection) leaves the runtime idle, so the clock jumps to the next timer, and the time
//! the session took is exactly the timeout that fired.
#![cfg(feature = "s7risk")]

mod common;

use std::net::TcpListener;
use std::time::Duration;

use serde_json::json;
use tokensmith::{s7risk, ErrorKind, RetryPolicy};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::{jwt, test_clock, START_EPOCH};

/// A session of an s7risk user at `base_url`, sending each request once.
fn builder(base_url: &str) -> s7risk::SessionBuilder {
    s7risk::Session::builder()
        .base_url(base_url)
        .origin("https://app.example.com")
        .user("analyst@example.com", "correct horse")
        .clock(test_clock())
        .retry_policy(RetryPolicy::none())
}

/// The documented login answer with a day-long JWT.
fn logged_in() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(
        json!({"status": "success", "data": {"accessToken": jwt(START_EPOCH + 86_400, "a")}}),
    )
}

async fn login_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/user/token"))
        .respond_with(logged_in())
        .mount(&server)
        .await;
    server
}

/// The `User-Agent` headers of the requests `server` received.
async fn user_agents(server: &MockServer) -> Vec<Option<String>> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            r.headers
                .get("user-agent")
                .map(|v| v.to_str().unwrap().to_owned())
        })
        .collect()
}

#[tokio::test]
async fn the_default_client_names_the_crate_and_its_version_in_its_user_agent() {
    let server = login_server().await;
    builder(&server.uri())
        .build()
        .unwrap()
        .access_token()
        .await
        .unwrap();
    let expected = format!("tokensmith/{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(tokensmith::USER_AGENT, expected);
    assert_eq!(user_agents(&server).await, [Some(expected)]);
}

#[tokio::test]
async fn a_client_of_yours_keeps_its_own_user_agent_and_without_one_sends_none() {
    let server = login_server().await;
    builder(&server.uri())
        .http_client(reqwest::Client::builder().user_agent("reporting/2.1"))
        .build()
        .unwrap()
        .access_token()
        .await
        .unwrap();
    builder(&server.uri())
        .http_client(reqwest::Client::builder())
        .build()
        .unwrap()
        .access_token()
        .await
        .unwrap();
    assert_eq!(
        user_agents(&server).await,
        [Some("reporting/2.1".to_owned()), None]
    );
}

#[tokio::test]
async fn a_client_of_yours_sends_through_its_proxy() {
    // A plain-HTTP proxy sees the absolute URL of each request it forwards; this one answers
    // itself. The base URL names a port nothing listens on: only the proxy can answer.
    let proxy = login_server().await;
    let unused = TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", unused.local_addr().unwrap());
    drop(unused);
    let session = builder(&nowhere)
        .http_client(reqwest::Client::builder().proxy(reqwest::Proxy::http(proxy.uri()).unwrap()))
        .build()
        .unwrap();
    session.access_token().await.unwrap();
    let requests = proxy.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].url.path(), "/user/token");
}

/// A listener that takes connections and never answers: its connections are held open.
fn silent_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    format!("http://{address}")
}

#[tokio::test(start_paused = true)]
async fn the_default_client_gives_up_on_an_answer_after_30_s() {
    let session = builder(&silent_server()).build().unwrap();
    let started = tokio::time::Instant::now();
    let error = session.access_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert_eq!(started.elapsed(), Duration::from_secs(30));
    assert_eq!(tokensmith::DEFAULT_REQUEST_TIMEOUT, Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn a_client_of_yours_has_its_own_timeout_and_without_one_none() {
    let url = silent_server();
    let timed = builder(&url)
        .http_client(reqwest::Client::builder().timeout(Duration::from_secs(5)))
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();
    let error = timed.access_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert_eq!(started.elapsed(), Duration::from_secs(5));

    let untimed = builder(&url)
        .http_client(reqwest::Client::builder())
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();
    tokio::select! {
        result = untimed.access_token() => panic!("a client without a timeout gave up: {result:?}"),
        () = tokio::time::sleep(Duration::from_secs(3600)) => {}
    }
    assert_eq!(started.elapsed(), Duration::from_secs(3600));
}

/// A listener whose queue of connections waiting to be accepted holds one, and which accepts
/// none: once it is full, a further connection is never completed (the kernel drops its SYN).
fn unaccepting_listener() -> tokio::net::TcpListener {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    socket.listen(0).unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_default_client_gives_up_connecting_after_10_s() {
    let listener = unaccepting_listener();
    let address = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    // Fill the queue: connections that complete until one does not (Linux queues the backlog
    // plus one). Each attempt is bounded, on the paused clock, by a timer of its own.
    loop {
        match tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::TcpStream::connect(address),
        )
        .await
        {
            Ok(Ok(stream)) => queued.push(stream),
            Ok(Err(e)) => panic!("connect failed: {e}"),
            Err(_) => break,
        }
        assert!(queued.len() < 16, "the listener's queue never filled");
    }
    let session = builder(&format!("http://{address}")).build().unwrap();
    let started = tokio::time::Instant::now();
    let error = session.access_token().await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(10), "{error}");
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert_eq!(tokensmith::DEFAULT_CONNECT_TIMEOUT, Duration::from_secs(10));
}

/// A login answer whose JSON is padded with spaces to exactly `len` bytes.
fn login_of_length(len: usize) -> ResponseTemplate {
    let body =
        json!({"status": "success", "data": {"accessToken": jwt(START_EPOCH + 86_400, "a")}})
            .to_string();
    let padded = format!("{body}{}", " ".repeat(len - body.len()));
    assert_eq!(padded.len(), len);
    ResponseTemplate::new(200).set_body_raw(padded, "application/json")
}

#[tokio::test]
async fn a_body_over_64_kib_is_an_error_and_max_response_bytes_moves_the_limit() {
    const LIMIT: usize = 64 * 1024;
    assert_eq!(tokensmith::transport::DEFAULT_MAX_RESPONSE_BYTES, LIMIT);
    for (len, max, accepted) in [
        (LIMIT, None, true),
        (LIMIT + 1, None, false),
        (LIMIT + 1, Some(LIMIT + 1), true),
        (1000, Some(999), false),
    ] {
        let server = MockServer::start().await;
        Mock::given(path("/user/token"))
            .respond_with(login_of_length(len))
            .mount(&server)
            .await;
        let mut builder = builder(&server.uri());
        if let Some(max) = max {
            builder = builder.max_response_bytes(max);
        }
        let result = builder.build().unwrap().access_token().await;
        match (accepted, result) {
            (true, Ok(_)) => {}
            (false, Err(error)) => {
                assert_eq!(error.kind(), ErrorKind::Decode, "{len} bytes: {error}");
                assert_eq!(error.status(), Some(200));
            }
            (_, other) => panic!("{len} bytes, limit {max:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_request_url_may_carry_a_query_fragment_or_user_that_a_base_url_may_not() {
    let server = login_server().await;
    Mock::given(path("/v1/incidents"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let session = builder(&server.uri()).build().unwrap();
    let host = server.uri().trim_start_matches("http://").to_owned();
    for url in [
        format!("http://{host}/v1/incidents?page=2"),
        format!("http://{host}/v1/incidents#top"),
        format!("http://reader@{host}/v1/incidents"),
    ] {
        let response = session.send(session.client().get(&url)).await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
    }
    let sent: Vec<_> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/v1/incidents")
        .map(|r| r.url.query().map(str::to_owned))
        .collect();
    assert_eq!(sent, [Some("page=2".to_owned()), None, None]);
    for base in [
        format!("http://{host}/?page=2"),
        format!("http://{host}/#top"),
        format!("http://reader@{host}/"),
    ] {
        let error = s7risk::Session::builder()
            .base_url(&base)
            .origin("https://app.example.com")
            .user("analyst@example.com", "correct horse")
            .build()
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Configuration, "{base}");
    }
}

#[tokio::test]
async fn a_client_of_yours_follows_no_redirect_whatever_its_builder_says() {
    let elsewhere = MockServer::start().await;
    let server = MockServer::start().await;
    Mock::given(path("/user/token"))
        .respond_with(ResponseTemplate::new(307).insert_header(
            "location",
            format!("{}/user/token", elsewhere.uri()).as_str(),
        ))
        .mount(&server)
        .await;
    let session = builder(&server.uri())
        .http_client(reqwest::Client::builder().redirect(reqwest::redirect::Policy::limited(10)))
        .build()
        .unwrap();
    let error = session.access_token().await.unwrap_err();
    assert_eq!(error.status(), Some(307), "{error}");
    assert!(elsewhere.received_requests().await.unwrap().is_empty());
}
