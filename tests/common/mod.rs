//! Helpers shared by the contract tests: exact assertions on what went out.
#![allow(dead_code)]

use wiremock::Request;

pub mod held;
pub mod probe;
#[cfg(all(
    feature = "s7risk",
    feature = "weavr",
    feature = "accounts",
    feature = "passwordsafe",
    feature = "fib"
))]
pub mod sandboxed;
#[cfg(all(
    feature = "s7risk",
    feature = "weavr",
    feature = "accounts",
    feature = "passwordsafe",
    feature = "fib"
))]
pub mod services;

/// The one request the mock server received (fails when there were none or several).
pub async fn single_request(server: &wiremock::MockServer) -> Request {
    let mut requests = server.received_requests().await.expect("recording is on");
    assert_eq!(
        requests.len(),
        1,
        "expected exactly one request, got {requests:?}"
    );
    requests.remove(0)
}

/// What a request must look like: every listed header must be present with that value, no
/// `api-version` header may be sent, and the body must be exactly the given one.
pub struct Expected<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: Body<'a>,
}

/// The exact body of a request.
pub enum Body<'a> {
    None,
    Json(serde_json::Value),
    Form(&'a str),
}

pub fn assert_request(request: &Request, expected: &Expected<'_>) {
    assert_eq!(request.method.as_str(), expected.method, "method");
    assert_eq!(request.url.path(), expected.path, "path");
    assert_eq!(request.url.query(), expected.query, "query");
    for (name, value) in expected.headers {
        let got: Vec<_> = request.headers.get_all(*name).iter().collect();
        assert_eq!(got.len(), 1, "header {name} sent {} times", got.len());
        assert_eq!(got[0].to_str().unwrap(), *value, "header {name}");
    }
    assert!(
        request.headers.get("api-version").is_none(),
        "progenitor's api-version header must be stripped"
    );
    match &expected.body {
        Body::None => {
            assert!(
                request.body.is_empty(),
                "expected no body, got {:?}",
                request.body
            );
            assert!(
                request.headers.get("content-type").is_none(),
                "no content type without a body"
            );
        }
        Body::Json(json) => {
            assert_eq!(
                header(request, "content-type"),
                "application/json",
                "content type"
            );
            let got: serde_json::Value =
                serde_json::from_slice(&request.body).expect("request body is JSON");
            assert_eq!(&got, json, "JSON body");
        }
        Body::Form(form) => {
            assert_eq!(
                header(request, "content-type"),
                "application/x-www-form-urlencoded",
                "content type"
            );
            assert_eq!(
                std::str::from_utf8(&request.body).unwrap(),
                *form,
                "form body"
            );
        }
    }
}

pub fn header<'r>(request: &'r Request, name: &str) -> &'r str {
    request
        .headers
        .get(name)
        .unwrap_or_else(|| panic!("header {name} missing"))
        .to_str()
        .unwrap()
}

/// A 502 with an HTML page, as a proxy in front of any of the services would answer.
pub fn bad_gateway_html() -> wiremock::ResponseTemplate {
    wiremock::ResponseTemplate::new(502)
        .insert_header("content-type", "text/html")
        .set_body_string("<html><body><h1>502 Bad Gateway</h1></body></html>")
}

/// The wall-clock time every session test starts at (2023-11-14T22:13:20Z).
pub const START_EPOCH: u64 = 1_700_000_000;

/// A test clock standing at [`START_EPOCH`].
pub fn test_clock() -> tokensmith::clock::ManualClock {
    tokensmith::clock::ManualClock::starting_at(
        std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(START_EPOCH),
    )
}

/// An unsigned JWT whose `exp` claim is `exp` (seconds since the epoch), tagged so that two
/// tokens differ.
pub fn jwt(exp: u64, tag: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
        b64.encode(format!(r#"{{"sub":"{tag}","exp":{exp}}}"#))
    )
}

/// Requests the server received whose path is `path`.
pub async fn count_requests(server: &wiremock::MockServer, path: &str) -> usize {
    let requests = server.received_requests().await.expect("recording is on");
    requests.iter().filter(|r| r.url.path() == path).count()
}

/// Runs `callers` concurrent `access_token()` calls and checks that all got the same token.
/// Returns that token's secret.
pub async fn assert_all_callers_share_one_token<S>(session: &S, callers: usize) -> String
where
    S: tokensmith::TokenSource + Clone + 'static,
{
    let calls = (0..callers).map(|_| {
        let session = session.clone();
        tokio::spawn(async move { session.access_token().await })
    });
    let mut secrets = std::collections::BTreeSet::new();
    for result in futures::future::join_all(calls).await {
        let token = result
            .expect("no panic")
            .expect("every caller gets a token");
        secrets.insert(token.secret().expose_secret().to_owned());
    }
    assert_eq!(secrets.len(), 1, "every caller got the same token");
    settle().await;
    secrets.into_iter().next().unwrap()
}

/// Yields once, so the test task starts its next steps with a fresh tokio budget. Joining a
/// thousand tasks can spend it all; wiremock's `MockServer` then blocks on a tokio lock when
/// dropped, and a spent budget makes that spin forever.
pub async fn settle() {
    tokio::task::yield_now().await;
}

/// Polls `inner`, counting in `polled` once its first poll is over: from then on the caller
/// is inside the single flight (driving it, or waiting for its outcome), or already done.
/// Tests wait on this count instead of sleeping for callers to arrive.
pub async fn counted<F: std::future::Future>(
    inner: F,
    polled: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> F::Output {
    let mut inner = std::pin::pin!(inner);
    let mut first = true;
    std::future::poll_fn(|cx| {
        let poll = inner.as_mut().poll(cx);
        if std::mem::take(&mut first) {
            polled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        poll
    })
    .await
}

/// Starts a renewal, cancels the caller that started it once ten others joined it, and checks
/// that the others still get one token. The renewal response must be delayed (200 ms or more)
/// by the mock, so that the cancellation lands mid-flight; the order (driver in flight,
/// waiters joined, driver cancelled) is waited for, not slept for.
pub async fn assert_cancelled_waiter_does_not_stall<S>(session: &S) -> String
where
    S: tokensmith::TokenSource + Clone + 'static,
{
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;
    let polled = Arc::new(AtomicUsize::new(0));
    let leader = tokio::spawn({
        let (session, polled) = (session.clone(), polled.clone());
        async move { counted(session.access_token(), polled).await }
    });
    held::wait_until("the leader started the renewal", || {
        polled.load(Ordering::SeqCst) == 1
    })
    .await;
    let waiters: Vec<_> = (0..10)
        .map(|_| {
            let (session, polled) = (session.clone(), polled.clone());
            tokio::spawn(async move { counted(session.access_token(), polled).await })
        })
        .collect();
    held::wait_until("the waiters joined the renewal", || {
        polled.load(Ordering::SeqCst) == 11
    })
    .await;
    leader.abort();
    let mut secrets = std::collections::BTreeSet::new();
    for waiter in waiters {
        // A deadlock guard, not a timing verdict: a stalled flight never ends.
        let got = tokio::time::timeout(Duration::from_secs(60), waiter).await;
        let token = got.expect("no stall").expect("no panic").expect("a token");
        secrets.insert(token.secret().expose_secret().to_owned());
    }
    assert_eq!(secrets.len(), 1);
    settle().await;
    secrets.into_iter().next().unwrap()
}

/// The secret of the token a call served (the call must have succeeded).
pub fn served(token: Result<tokensmith::AccessToken, tokensmith::Error>) -> String {
    token.unwrap().secret().expose_secret().to_owned()
}
