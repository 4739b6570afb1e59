//! Headers without reqwest (`headers()` and `refused()` on every session), one type for all
//! five services (`AnySession`), and `TokenSource` behind `dyn`.
#![cfg(all(
    feature = "s7risk",
    feature = "weavr",
    feature = "accounts",
    feature = "passwordsafe",
    feature = "fib"
))]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::services::{Service, SERVICES, WEAVR_API_KEY};
use common::{count_requests, test_clock};
use tokensmith::{AnySession, DynTokenSource, ErrorKind, RetryPolicy};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The documented login answer of `service`, with `tok-1`, `tok-2`, … as successive tokens.
struct Logins {
    service: Service,
    count: Arc<AtomicUsize>,
}

impl Respond for Logins {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        self.service.answer(&format!("tok-{n}"))
    }
}

async fn server_for(service: Service) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(path(service.login_path()))
        .respond_with(Logins {
            service,
            count: Arc::default(),
        })
        .mount(&server)
        .await;
    service.mount_rest(&server).await;
    server
}

fn any(service: Service, server: &MockServer) -> AnySession {
    use common::services::AnySession as Test;
    let session = service.session(
        &server.uri(),
        &test_clock(),
        reqwest::Client::builder(),
        RetryPolicy::none(),
    );
    match session {
        Test::S7risk(s) => s.into(),
        Test::Weavr(s) => s.into(),
        Test::Accounts(s) => s.into(),
        Test::Fib(s) => s.into(),
        Test::PasswordSafe(s) => s.into(),
    }
}

/// The headers as (name, value) pairs, in name order.
fn pairs(headers: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
    let mut pairs: Vec<_> = headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.to_str().unwrap().to_owned()))
        .collect();
    pairs.sort();
    pairs
}

fn expected_headers(service: Service, token: &str) -> Vec<(String, String)> {
    let bearer = ("authorization".to_owned(), format!("Bearer {token}"));
    let mut expected = match service {
        Service::S7risk => vec![
            bearer,
            ("origin".to_owned(), "https://api.example.com".to_owned()),
        ],
        Service::Weavr => vec![bearer, ("api-key".to_owned(), WEAVR_API_KEY.to_owned())],
        Service::Accounts | Service::Fib => vec![bearer],
        Service::PasswordSafeOauth => {
            vec![bearer, ("cookie".to_owned(), service.cached_secret(token))]
        }
        Service::PasswordSafeKey => vec![("cookie".to_owned(), service.cached_secret(token))],
    };
    expected.sort();
    expected
}

#[tokio::test]
async fn headers_carry_everything_each_service_needs_marked_sensitive() {
    for service in SERVICES {
        let server = server_for(service).await;
        let session = any(service, &server);
        let headers = session.headers().await.unwrap();
        assert_eq!(
            pairs(&headers),
            expected_headers(service, "tok-1"),
            "{service:?}"
        );
        for (name, value) in &headers {
            assert!(value.is_sensitive(), "{service:?}: {name} is sensitive");
        }
        // A second call is served from the cache.
        assert_eq!(session.headers().await.unwrap(), headers, "{service:?}");
        assert_eq!(
            count_requests(&server, service.login_path()).await,
            1,
            "{service:?}"
        );
    }
}

// PasswordSafeOauth is left out: its test SignAppin opens the same session cookie at every
// login, so the renewed headers equal the refused ones.
const RENEWED_BY_LOGIN: [Service; 3] = [Service::S7risk, Service::Weavr, Service::PasswordSafeKey];

#[tokio::test]
async fn a_refusal_reported_makes_the_next_headers_renew_once() {
    for service in RENEWED_BY_LOGIN {
        let server = server_for(service).await;
        let session = any(service, &server);
        let first = session.headers().await.unwrap();

        // The same refusal reported by two requests in flight with the same headers.
        session.refused(&first);
        session.refused(&first);
        let second = session.headers().await.unwrap();
        assert_eq!(
            pairs(&second),
            expected_headers(service, "tok-2"),
            "{service:?}"
        );
        assert_eq!(
            count_requests(&server, service.login_path()).await,
            2,
            "{service:?}: one renewal for both reports"
        );

        // A late report about the old token does not throw the new one away.
        session.refused(&first);
        assert_eq!(session.headers().await.unwrap(), second, "{service:?}");
        // Nor do headers that carry no token of the session's.
        session.refused(&reqwest::header::HeaderMap::new());
        assert_eq!(session.headers().await.unwrap(), second, "{service:?}");
        assert_eq!(
            count_requests(&server, service.login_path()).await,
            2,
            "{service:?}"
        );
    }
}

#[tokio::test]
async fn a_service_session_has_headers_and_refused_too() {
    let server = server_for(Service::Weavr).await;
    let common::services::AnySession::Weavr(session) = Service::Weavr.session(
        &server.uri(),
        &test_clock(),
        reqwest::Client::builder(),
        RetryPolicy::none(),
    ) else {
        unreachable!()
    };
    let first = session.headers().await.unwrap();
    assert_eq!(pairs(&first), expected_headers(Service::Weavr, "tok-1"));
    session.refused(&first);
    let token = session.access_token().await.unwrap();
    assert_eq!(token.secret().expose_secret(), "tok-2");
    assert_eq!(session.request_counts().logins, 2);
}

#[tokio::test]
async fn any_session_names_its_service_and_hides_its_token() {
    for service in SERVICES {
        let server = server_for(service).await;
        let session = any(service, &server);
        let expected = match service {
            Service::S7risk => tokensmith::Service::S7risk,
            Service::Weavr => tokensmith::Service::Weavr,
            Service::Accounts => tokensmith::Service::Accounts,
            Service::Fib => tokensmith::Service::Fib,
            Service::PasswordSafeOauth | Service::PasswordSafeKey => {
                tokensmith::Service::PasswordSafe
            }
        };
        assert_eq!(session.service(), expected);
        let token = session.access_token().await.unwrap();
        let secret = token.secret().expose_secret().to_owned();
        let debug = format!("{session:?}");
        assert!(debug.contains(&server.uri()), "{debug}");
        assert!(!debug.contains(&secret), "{debug}");
    }
}

#[tokio::test]
async fn any_session_clones_share_one_cache() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<AnySession>();

    let server = server_for(Service::Accounts).await;
    let session = any(Service::Accounts, &server);
    let clone = session.clone();
    let a = session.access_token().await.unwrap();
    let b = tokio::spawn(async move { clone.access_token().await })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.secret().expose_secret(), "tok-1");
    assert_eq!(b.secret().expose_secret(), "tok-1");
    assert_eq!(count_requests(&server, "/v1/login").await, 1);
}

#[tokio::test]
async fn any_session_authorizes_sends_and_logs_out() {
    let server = server_for(Service::S7risk).await;
    // The first token is refused by the caller's API, the second accepted.
    Mock::given(method("GET"))
        .and(path("/rest/things"))
        .and(wiremock::matchers::header("authorization", "Bearer tok-1"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/things"))
        .and(wiremock::matchers::header("authorization", "Bearer tok-2"))
        .respond_with(ResponseTemplate::new(200).set_body_string("things"))
        .mount(&server)
        .await;
    let session = any(Service::S7risk, &server);
    let url = format!("{}/rest/things", server.uri());

    let built = session
        .authorize(reqwest::Client::new().get(&url))
        .await
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(
        pairs(built.headers()),
        expected_headers(Service::S7risk, "tok-1")
    );

    let response = session
        .send(reqwest::Client::new().get(&url))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "things");
    let sent: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/rest/things")
        .map(|r| r.headers["authorization"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        sent,
        ["Bearer tok-1", "Bearer tok-2"],
        "renewed once, resent once"
    );

    // s7risk has no logout endpoint: the token is wiped and the next call logs in.
    session.logout().await.unwrap();
    let token = session.access_token().await.unwrap();
    assert_eq!(token.secret().expose_secret(), "tok-3");
    assert_eq!(count_requests(&server, "/user/token").await, 3);
}

#[tokio::test]
async fn any_session_reports_the_services_errors() {
    let server = MockServer::start().await;
    Mock::given(path("/user/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            serde_json::json!({"status": "error", "message": "Invalid credentials"}),
        ))
        .mount(&server)
        .await;
    let session = any(Service::S7risk, &server);
    let error = session.headers().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidCredentials);
    assert_eq!(error.service(), Some(tokensmith::Service::S7risk));
    // Refused credentials are never resent.
    assert_eq!(
        session.access_token().await.unwrap_err().kind(),
        ErrorKind::InvalidCredentials
    );
    assert_eq!(count_requests(&server, "/user/token").await, 1);
}

#[tokio::test]
async fn token_sources_of_different_services_live_behind_one_dyn_type() {
    let s7risk = server_for(Service::S7risk).await;
    let fib = server_for(Service::Fib).await;
    let weavr = server_for(Service::Weavr).await;
    let common::services::AnySession::Fib(fib_session) = Service::Fib.session(
        &fib.uri(),
        &test_clock(),
        reqwest::Client::builder(),
        RetryPolicy::none(),
    ) else {
        unreachable!()
    };
    let sources: Vec<Arc<dyn DynTokenSource>> = vec![
        Arc::new(any(Service::S7risk, &s7risk)),
        Arc::new(fib_session),
    ];
    let boxed: Box<dyn DynTokenSource> = Box::new(any(Service::Weavr, &weavr));
    for source in &sources {
        let token = source.access_token().await.unwrap();
        assert_eq!(token.secret().expose_secret(), "tok-1");
    }
    // Shared across tasks.
    let shared = sources[0].clone();
    let token = tokio::spawn(async move { shared.access_token().await })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(token.secret().expose_secret(), "tok-1");
    assert_eq!(
        boxed.access_token().await.unwrap().secret().expose_secret(),
        "tok-1"
    );
    assert_eq!(count_requests(&s7risk, "/user/token").await, 1);
    assert_eq!(count_requests(&fib, Service::Fib.login_path()).await, 1);
    assert_eq!(count_requests(&weavr, "/login_with_password").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_requests_refused_together_renew_once() {
    let server = server_for(Service::S7risk).await;
    let session = any(Service::S7risk, &server);
    let first = session.headers().await.unwrap();
    let callers = 16;
    let barrier = Arc::new(tokio::sync::Barrier::new(callers));
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (session, first, barrier) = (session.clone(), first.clone(), barrier.clone());
            tokio::spawn(async move {
                // Every caller's request was answered 401 to the same headers.
                barrier.wait().await;
                session.refused(&first);
                session.headers().await.unwrap()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(
            pairs(&task.await.unwrap()),
            expected_headers(Service::S7risk, "tok-2")
        );
    }
    assert_eq!(
        count_requests(&server, "/user/token").await,
        2,
        "one renewal"
    );
}

/// The (method, path, JSON body) of every request the server received, in order.
async fn requests(server: &MockServer) -> Vec<(String, String, serde_json::Value)> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.method.to_string(),
                r.url.path().to_owned(),
                serde_json::from_slice(&r.body).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn force_refresh_renews_now_with_a_login_where_there_is_no_refresh_token() {
    let server = server_for(Service::S7risk).await;
    let session = any(Service::S7risk, &server);
    assert_eq!(common::served(session.access_token().await), "tok-1");

    // The cached token has a day to live: only the forced renewal sends anything.
    let renewed = session.force_refresh().await.unwrap();
    assert_eq!(renewed.secret().expose_secret(), "tok-2");
    let login = (
        "POST".to_owned(),
        "/user/token".to_owned(),
        serde_json::json!({"email": "analyst@example.com", "password": common::services::PASSWORD}),
    );
    assert_eq!(requests(&server).await, [login.clone(), login]);

    // The renewed token is the one served from then on, without another request.
    assert_eq!(common::served(session.access_token().await), "tok-2");
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn force_refresh_uses_the_refresh_token_where_there_is_one() {
    let server = server_for(Service::Accounts).await;
    Mock::given(method("POST"))
        .and(path("/v1/token-refresh"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "tok-refreshed",
            "id_token": "id-token-2",
            "expires_in": 86400,
        })))
        .mount(&server)
        .await;
    let session = any(Service::Accounts, &server);
    assert_eq!(common::served(session.access_token().await), "tok-1");

    let renewed = session.force_refresh().await.unwrap();
    assert_eq!(renewed.secret().expose_secret(), "tok-refreshed");
    assert_eq!(
        requests(&server).await,
        [
            (
                "POST".to_owned(),
                "/v1/login".to_owned(),
                serde_json::json!({"username": "admin", "password": common::services::PASSWORD}),
            ),
            (
                "POST".to_owned(),
                "/v1/token-refresh".to_owned(),
                serde_json::json!({"username": "admin", "refresh_token": "tok-refresh"}),
            ),
        ]
    );
    assert_eq!(
        common::served(session.access_token().await),
        "tok-refreshed"
    );
    assert_eq!(requests(&server).await.len(), 2);
}
