//! Credentials go only where they were meant to: never over plain HTTP to another machine,
//! never through a redirect to another host, never out of a URL or a malformed header, and
//! never quoted back in an error.
#![cfg(all(
    feature = "s7risk",
    feature = "weavr",
    feature = "accounts",
    feature = "passwordsafe",
    feature = "fib"
))]

mod common;

use common::services::{AnySession, Service, PASSWORD, PS_API_KEY, WEAVR_API_KEY};
use common::test_clock;
use serde_json::json;
use tokensmith::{ErrorKind, RetryPolicy};
use wiremock::matchers::{any, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// `session.send(request)`, whatever the service.
async fn send(
    session: &AnySession,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, tokensmith::Error> {
    match session {
        AnySession::S7risk(s) => s.send(request).await,
        AnySession::Weavr(s) => s.send(request).await,
        AnySession::Accounts(s) => s.send(request).await,
        AnySession::Fib(s) => s.send(request).await,
        AnySession::PasswordSafe(s) => s.send(request).await,
    }
}

/// `session.authorize(request)`, whatever the service.
async fn authorize(
    session: &AnySession,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::RequestBuilder, tokensmith::Error> {
    match session {
        AnySession::S7risk(s) => s.authorize(request).await,
        AnySession::Weavr(s) => s.authorize(request).await,
        AnySession::Accounts(s) => s.authorize(request).await,
        AnySession::Fib(s) => s.authorize(request).await,
        AnySession::PasswordSafe(s) => s.authorize(request).await,
    }
}

/// A server that logs `service` in with `token` on every login request.
async fn login_server(service: Service, token: &str) -> MockServer {
    let server = MockServer::start().await;
    service.mount_rest(&server).await;
    Mock::given(path(service.login_path()))
        .respond_with(service.answer(token))
        .mount(&server)
        .await;
    server
}

const ALL: [Service; 6] = common::services::SERVICES;

#[tokio::test]
async fn send_and_authorize_refuse_plain_http_to_another_machine_before_any_login() {
    for service in ALL {
        let server = login_server(service, "tok-plain").await;
        let session = service.session(
            &server.uri(),
            &test_clock(),
            reqwest::Client::builder(),
            RetryPolicy::none(),
        );
        let client = reqwest::Client::new();
        for url in [
            "http://api.example.com/alerts?key=x",
            "http://10.0.0.1/alerts",
        ] {
            let err = send(&session, client.get(url)).await.unwrap_err();
            assert_eq!(
                err.kind(),
                ErrorKind::Configuration,
                "{service:?} send {url}"
            );
            assert!(!err.to_string().contains("key=x"), "{err}");
            let err = authorize(&session, client.get(url)).await.unwrap_err();
            assert_eq!(
                err.kind(),
                ErrorKind::Configuration,
                "{service:?} authorize {url}"
            );
        }
        let err = send(&session, client.get("ftp://api.example.com/x"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Configuration);
        assert_eq!(
            server.received_requests().await.unwrap().len(),
            0,
            "{service:?}: no login for a request that cannot carry the token"
        );
        // Plain http to loopback stays allowed, like a base URL (a local sandbox).
        let local = format!("{}/alerts", server.uri());
        let request = authorize(&session, client.get(&local))
            .await
            .expect("loopback http")
            .build()
            .unwrap();
        assert!(
            request.headers().contains_key("authorization")
                || request.headers().contains_key("cookie"),
            "{service:?}: {:?}",
            request.headers()
        );
    }
}

#[tokio::test]
async fn danger_accept_plain_http_lets_authorize_use_plain_http() {
    let server = login_server(Service::S7risk, "tok-danger").await;
    let session = tokensmith::s7risk::Session::builder()
        .base_url(server.uri())
        .origin("https://api.example.com")
        .user("a@example.com", PASSWORD)
        .clock(test_clock())
        .danger_accept_plain_http(true)
        .credential_hosts(["api.example.com"])
        .build()
        .unwrap();
    let request = session
        .authorize(reqwest::Client::new().get("http://api.example.com/alerts"))
        .await
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(request.headers()["authorization"], "Bearer tok-danger");
}

/// Every header the session attaches, by name, for `service`.
fn credential_headers(service: Service) -> &'static [&'static str] {
    match service {
        Service::Weavr => &["authorization", "api-key"],
        Service::PasswordSafeOauth => &["authorization", "cookie"],
        Service::PasswordSafeKey => &["cookie"],
        _ => &["authorization"],
    }
}

#[tokio::test]
async fn a_redirect_to_another_host_through_send_or_authorize_carries_no_credential() {
    for service in ALL {
        let first = login_server(service, "tok-redirected").await;
        let second = MockServer::start().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(200).set_body_string("second"))
            .mount(&second)
            .await;
        // Another host: `localhost` rather than the first server's 127.0.0.1, on its own port.
        let elsewhere = format!("{}/stolen", second.uri().replace("127.0.0.1", "localhost"));
        Mock::given(path("/resource"))
            .respond_with(ResponseTemplate::new(307).insert_header("location", elsewhere.as_str()))
            .mount(&first)
            .await;
        // The session's own client and the request's: both follow redirects.
        let session = service.session(
            &first.uri(),
            &test_clock(),
            reqwest::Client::builder(),
            RetryPolicy::none(),
        );
        let request = reqwest::Client::new().get(format!("{}/resource", first.uri()));
        let response = send(&session, request).await.unwrap();

        assert_eq!(
            response.status().as_u16(),
            307,
            "{service:?}: the redirect comes back"
        );
        assert_eq!(response.headers()["location"], elsewhere.as_str());
        // The same through authorize(), sent by the caller.
        let request = reqwest::Client::new().get(format!("{}/resource", first.uri()));
        let response = authorize(&session, request)
            .await
            .unwrap()
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 307, "{service:?}: authorize()");
        assert_eq!(
            second.received_requests().await.unwrap().len(),
            0,
            "{service:?}: the second server sees nothing"
        );
        let sent = first
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.url.path() == "/resource")
            .collect::<Vec<_>>();
        assert_eq!(
            sent.len(),
            2,
            "{service:?}: send() and authorize() reached it"
        );
        let sent = &sent[0];
        for name in credential_headers(service) {
            assert!(
                sent.headers.contains_key(*name),
                "{service:?}: the first server got {name}"
            );
        }
    }
}

#[tokio::test]
async fn base_urls_with_a_username_or_password_are_refused_without_quoting_them() {
    for url in [
        "https://user:hunter2secret@api.example.com",
        "https://user@api.example.com",
        "https://:hunter2secret@api.example.com",
        "https://user:hunter2secret@[::1",
    ] {
        let err = tokensmith::weavr::Session::builder()
            .base_url(url)
            .api_key(WEAVR_API_KEY)
            .email("user@example.com")
            .password(PASSWORD)
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Configuration, "{url}");
        let shown = format!("{err} {err:?}");
        if url.ends_with(".com") {
            assert!(shown.contains("username or password"), "{shown}");
        }
        assert!(!shown.contains("hunter2secret"), "{shown}");
    }
}

#[tokio::test]
async fn a_ps_auth_password_with_a_closing_bracket_is_refused_at_build() {
    let build = |password: &str| {
        tokensmith::passwordsafe::Session::builder()
            .base_url("https://ps.example.com/BeyondTrust/api/public/v3")
            .ps_auth(PS_API_KEY, "svc-reader", Some(password.into()))
            .build()
    };
    let err = build("pass]word; runas=admin").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration);
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("`]`"), "{shown}");
    assert!(!shown.contains("pass]word"), "{shown}");
    build("pass[word").expect("an opening bracket is harmless");
}

#[tokio::test]
async fn a_json_error_body_is_never_quoted_beyond_its_message() {
    for (body, message) in [
        (json!({"token": "eyJsecret-in-json", "n": 1}), None),
        (json!(["eyJsecret-in-json"]), None),
        (json!(12345), None),
        (json!(""), None),
        (
            json!({"message": "try later", "token": "eyJsecret-in-json"}),
            Some("try later"),
        ),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/user/token"))
            .respond_with(ResponseTemplate::new(500).set_body_json(&body))
            .mount(&server)
            .await;
        let session = Service::S7risk.session(
            &server.uri(),
            &test_clock(),
            reqwest::Client::builder(),
            RetryPolicy::none(),
        );
        let err = session.access_token().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ServerError, "{body}");
        assert_eq!(err.status(), Some(500));
        assert_eq!(err.message(), message, "{body}");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("eyJsecret"), "{shown}");
        assert!(!shown.contains("12345"), "{shown}");
    }
    // A body that is not JSON is still quoted, briefly: it is all there is to go on.
    let server = MockServer::start().await;
    Mock::given(path("/user/token"))
        .respond_with(ResponseTemplate::new(500).set_body_string("upstream down"))
        .mount(&server)
        .await;
    let session = Service::S7risk.session(
        &server.uri(),
        &test_clock(),
        reqwest::Client::builder(),
        RetryPolicy::none(),
    );
    let err = session.access_token().await.unwrap_err();
    assert_eq!(err.message(), Some("upstream down"));
}

/// A weavr session logged in against `server`, whose `/identities` answers `answer`.
async fn weavr_identities(answer: ResponseTemplate) -> (MockServer, tokensmith::weavr::Session) {
    let server = login_server(Service::Weavr, "tok-api").await;
    Mock::given(path("/identities"))
        .respond_with(answer)
        .mount(&server)
        .await;
    let session = tokensmith::weavr::Session::builder()
        .base_url(server.uri())
        .api_key(WEAVR_API_KEY)
        .email("user@example.com")
        .password(PASSWORD)
        .clock(test_clock())
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    (server, session)
}

/// An application function: `?` turns the generated client's error into ours.
async fn identities(session: &tokensmith::weavr::Session) -> Result<usize, tokensmith::Error> {
    let page = session.api().list_identities(None, None).await?;
    Ok(page.into_inner().identities().len())
}

#[tokio::test]
async fn api_errors_convert_with_question_mark_without_quoting_bodies_or_headers() {
    let cases = [
        (
            ResponseTemplate::new(429)
                .insert_header("retry-after", "7")
                .insert_header("x-secret-header", "eyJheader-secret")
                .set_body_json(json!({"errorCode": "eyJbody-secret", "message": "eyJbody-secret"})),
            ErrorKind::RateLimited {
                retry_after: Some(std::time::Duration::from_secs(7)),
            },
            Some(429),
            Some(7),
        ),
        (
            // Longer than the retry budget: reported at once, with the wait it asked for.
            ResponseTemplate::new(503)
                .insert_header("retry-after", "60")
                .set_body_json(json!({"errorCode": "eyJbody-secret", "message": "eyJbody-secret"})),
            ErrorKind::ServiceUnavailable,
            Some(503),
            Some(60),
        ),
        (
            ResponseTemplate::new(409).set_body_json(json!({"errorCode": "eyJbody-secret"})),
            ErrorKind::Conflict,
            Some(409),
            None,
        ),
        (
            ResponseTemplate::new(418).set_body_string("eyJbody-secret teapot"),
            ErrorKind::UnexpectedResponse,
            Some(418),
            None,
        ),
        (
            ResponseTemplate::new(200).set_body_string(r#"{"identities": "eyJbody-secret"}"#),
            ErrorKind::Decode,
            None,
            None,
        ),
    ];
    for (answer, kind, status, retry_after) in cases {
        let (_server, session) = weavr_identities(answer).await;
        let err = identities(&session).await.unwrap_err();
        assert_eq!(err.kind(), kind);
        assert_eq!(err.status(), status, "{kind:?}");
        assert_eq!(
            err.retry_after(),
            retry_after.map(std::time::Duration::from_secs),
            "{kind:?}"
        );
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("eyJ"), "{shown}");
    }
    // The request that never went: the session could not log in.
    let server = MockServer::start().await;
    Mock::given(path(Service::Weavr.login_path()))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"message": "bad"})))
        .mount(&server)
        .await;
    let session = tokensmith::weavr::Session::builder()
        .base_url(server.uri())
        .api_key(WEAVR_API_KEY)
        .email("user@example.com")
        .password(PASSWORD)
        .clock(test_clock())
        .build()
        .unwrap();
    let err = identities(&session).await.unwrap_err();
    assert!(err.to_string().contains("credentials refused"), "{err}");
}

#[tokio::test]
async fn every_other_api_error_converts_too_without_its_url() {
    // Port 1 on loopback: nothing listens, the connection is refused.
    let refused = reqwest::Client::new()
        .get("http://127.0.0.1:1/secret-path?key=eyJquery-secret")
        .send()
        .await
        .unwrap_err();
    let err = tokensmith::Error::from(progenitor_client::Error::<()>::CommunicationError(refused));
    assert_eq!(err.kind(), ErrorKind::Transport);
    assert_eq!(err.status(), None);
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains("eyJ") && !shown.contains("secret-path"),
        "{shown}"
    );

    let err = tokensmith::Error::from(progenitor_client::Error::<()>::InvalidRequest(
        "limit must be at least 1".into(),
    ));
    assert_eq!(err.kind(), ErrorKind::Configuration);
    assert_eq!(err.message(), Some("limit must be at least 1"));
}
