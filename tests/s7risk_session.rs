//! The s7risk session: login, caching, re-login before the JWT expires, single flight, typed
//! errors, and no retry of refused credentials. Time is driven by a test clock.
#![cfg(feature = "s7risk")]

mod common;

use std::time::Duration;

use common::{count_requests, jwt, test_clock, START_EPOCH};
use serde_json::json;
use tokensmith::clock::ManualClock;
use tokensmith::s7risk::{Session, SessionBuilder};
use tokensmith::{ErrorKind, RefreshPolicy, Service, TokenOrigin};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ORIGIN: &str = "https://api.example.com";
const DAY: u64 = 24 * 60 * 60;

/// One of the builder's credential setters, with its arguments.
type Credentials = fn(SessionBuilder) -> SessionBuilder;

fn session(server: &MockServer, clock: &ManualClock, credentials: Credentials) -> Session {
    credentials(Session::builder().base_url(server.uri()).origin(ORIGIN))
        .clock(clock.clone())
        .refresh_policy(RefreshPolicy::new().with_jitter(false))
        .build()
        .unwrap()
}

fn user() -> Credentials {
    |builder| builder.user("analyst@example.com", "pw-hunter2")
}

fn token_response(token: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"status": "success", "data": {"accessToken": token}}))
}

async fn mount_user_login(server: &MockServer, token: &str) {
    Mock::given(method("POST"))
        .and(path("/user/token"))
        .and(header("origin", ORIGIN))
        .and(header("content-type", "application/json"))
        .and(body_json(
            json!({"email": "analyst@example.com", "password": "pw-hunter2"}),
        ))
        .respond_with(token_response(token))
        .mount(server)
        .await;
}

#[tokio::test]
async fn first_call_logs_in_and_later_calls_use_the_cache() {
    let server = MockServer::start().await;
    let clock = test_clock();
    let token = jwt(START_EPOCH + DAY, "first");
    mount_user_login(&server, &token).await;
    let session = session(&server, &clock, user());

    let first = session.access_token().await.unwrap();
    assert_eq!(first.secret().expose_secret(), token);
    assert_eq!(first.origin(), TokenOrigin::Login);
    assert_eq!(first.expires_in(), Duration::from_secs(DAY));

    clock.advance(Duration::from_secs(DAY - 61));
    let again = session.access_token().await.unwrap();
    assert_eq!(again.secret().expose_secret(), token);
    assert_eq!(count_requests(&server, "/user/token").await, 1);
    assert_eq!(session.request_counts().logins, 1);
}

#[tokio::test]
async fn past_the_refresh_margin_it_logs_in_again() {
    let server = MockServer::start().await;
    let clock = test_clock();
    let first = jwt(START_EPOCH + DAY, "first");
    let session = session(&server, &clock, user());
    mount_user_login(&server, &first).await;
    session.access_token().await.unwrap();

    // 60 s before expiry is the default margin for a 24 h token.
    clock.advance(Duration::from_secs(DAY - 60));
    server.reset().await;
    let second = jwt(START_EPOCH + 2 * DAY, "second");
    mount_user_login(&server, &second).await;
    let renewed = session.access_token().await.unwrap();
    assert_eq!(renewed.secret().expose_secret(), second);
    assert_eq!(count_requests(&server, "/user/token").await, 1);
    assert_eq!(session.request_counts().logins, 2);
}

#[tokio::test]
async fn lifetime_comes_from_the_jwt_exp_claim_falls_back_to_24_hours_and_is_capped_at_24_hours() {
    let server = MockServer::start().await;
    let clock = test_clock();
    mount_user_login(&server, &jwt(START_EPOCH + 3600, "short")).await;
    let short = session(&server, &clock, user())
        .access_token()
        .await
        .unwrap();
    assert_eq!(short.expires_in(), Duration::from_secs(3600));

    let opaque = MockServer::start().await;
    mount_user_login(&opaque, "opaque-token-without-claims").await;
    let fallback = session(&opaque, &clock, user())
        .access_token()
        .await
        .unwrap();
    assert_eq!(fallback.expires_in(), Duration::from_secs(DAY));

    // An `exp` three days out (or a local clock that lags the issuer's by two days): the
    // documented day bounds it.
    let long = MockServer::start().await;
    mount_user_login(&long, &jwt(START_EPOCH + 3 * DAY, "long")).await;
    let capped = session(&long, &clock, user()).access_token().await.unwrap();
    assert_eq!(capped.expires_in(), Duration::from_secs(DAY));
}

#[tokio::test]
async fn application_credentials_use_the_application_endpoint() {
    let server = MockServer::start().await;
    let clock = test_clock();
    let token = jwt(START_EPOCH + DAY, "app");
    Mock::given(method("POST"))
        .and(path("/application/token"))
        .and(header("origin", ORIGIN))
        .and(body_json(
            json!({"clientId": "client-1", "secret": "app-secret"}),
        ))
        .respond_with(token_response(&token))
        .mount(&server)
        .await;
    let session = session(&server, &clock, |builder| {
        builder.application("client-1", "app-secret")
    });
    assert_eq!(
        session
            .access_token()
            .await
            .unwrap()
            .secret()
            .expose_secret(),
        token
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_callers_at_expiry_share_one_login() {
    let server = MockServer::start().await;
    let clock = test_clock();
    let token = jwt(START_EPOCH + DAY, "shared");
    Mock::given(method("POST"))
        .and(path("/user/token"))
        .respond_with(token_response(&token).set_delay(Duration::from_millis(50)))
        .mount(&server)
        .await;
    let session = session(&server, &clock, user());

    assert_eq!(
        common::assert_all_callers_share_one_token(&session, 1000).await,
        token
    );
    assert_eq!(count_requests(&server, "/user/token").await, 1);
}

#[tokio::test]
async fn a_cancelled_waiter_does_not_stall_the_others() {
    let server = MockServer::start().await;
    let clock = test_clock();
    let token = jwt(START_EPOCH + DAY, "after-cancel");
    Mock::given(method("POST"))
        .and(path("/user/token"))
        .respond_with(token_response(&token).set_delay(Duration::from_millis(200)))
        .mount(&server)
        .await;
    let session = session(&server, &clock, user());

    assert_eq!(
        common::assert_cancelled_waiter_does_not_stall(&session).await,
        token
    );
    // The aborted login was taken over by one waiter: two requests at most, never eleven.
    assert!(count_requests(&server, "/user/token").await <= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_sent_once_and_never_again() {
    let server = MockServer::start().await;
    let clock = test_clock();
    Mock::given(method("POST"))
        .and(path("/user/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"status": "error", "message": "Email and password do not match"}),
        ))
        .mount(&server)
        .await;
    let session = session(&server, &clock, user());

    let calls = (0..100).map(|_| {
        let session = session.clone();
        tokio::spawn(async move { session.access_token().await })
    });
    for result in futures::future::join_all(calls).await {
        let err = result.unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidCredentials);
    }
    common::settle().await;
    clock.advance(Duration::from_secs(3600));
    let later = session.access_token().await.unwrap_err();
    assert_eq!(later.kind(), ErrorKind::InvalidCredentials);
    assert_eq!(count_requests(&server, "/user/token").await, 1);

    // Only an explicit reset lets the credentials be tried again.
    session.clear_failure();
    session.access_token().await.unwrap_err();
    assert_eq!(count_requests(&server, "/user/token").await, 2);
}

async fn login_error(status: u16, body: ResponseTemplate) -> tokensmith::Error {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/user/token"))
        .respond_with(body)
        .mount(&server)
        .await;
    let _ = status;
    session(&server, &test_clock(), user())
        .access_token()
        .await
        .unwrap_err()
}

fn provider_error(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"status": "error", "message": message}))
}

#[tokio::test]
async fn every_documented_error_maps_to_its_kind() {
    let cases = [
        (
            401,
            "Email and password do not match",
            ErrorKind::InvalidCredentials,
        ),
        (
            401,
            "User access window has expired",
            ErrorKind::AccessWindowExpired,
        ),
        (
            422,
            "Missing password request body parameter",
            ErrorKind::InvalidRequest,
        ),
        (
            429,
            "Too many authentication attempts. Try again in 5 minutes",
            ErrorKind::RateLimited {
                retry_after: Some(Duration::from_secs(300)),
            },
        ),
    ];
    for (status, message, kind) in cases {
        let err = login_error(status, provider_error(status, message)).await;
        assert_eq!(err.kind(), kind, "{status} {message}");
        assert_eq!(err.status(), Some(status));
        assert_eq!(err.message(), Some(message));
        assert_eq!(err.service(), Some(Service::S7risk));
        let shown = err.to_string();
        assert!(
            shown.contains(message) && shown.contains(&status.to_string()),
            "{shown}"
        );
    }
}

#[tokio::test]
async fn application_errors_map_to_their_kinds() {
    for (status, message, kind) in [
        (
            401,
            "Client ID and secret do not match",
            ErrorKind::InvalidCredentials,
        ),
        (
            422,
            "Missing client ID body parameter",
            ErrorKind::InvalidRequest,
        ),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/application/token"))
            .respond_with(provider_error(status, message))
            .mount(&server)
            .await;
        let session = session(&server, &test_clock(), |builder| {
            builder.application("c", "s3cret-x")
        });
        let err = session.access_token().await.unwrap_err();
        assert_eq!(
            (err.kind(), err.status(), err.message()),
            (kind, Some(status), Some(message))
        );
    }
}

#[tokio::test]
async fn a_text_error_body_keeps_its_status_and_text() {
    let err = login_error(
        401,
        ResponseTemplate::new(401).set_body_string("Unauthorized"),
    )
    .await;
    assert_eq!(err.kind(), ErrorKind::InvalidCredentials);
    assert_eq!(err.status(), Some(401));
    assert_eq!(err.message(), Some("Unauthorized"));
}

#[tokio::test]
async fn rate_limit_honours_retry_after_and_is_waited_out() {
    let server = MockServer::start().await;
    let clock = test_clock();
    Mock::given(method("POST"))
        .and(path("/user/token"))
        .respond_with(
            provider_error(429, "Too many authentication attempts")
                .insert_header("retry-after", "120"),
        )
        .mount(&server)
        .await;
    let session = session(&server, &clock, user());
    let err = session.access_token().await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::RateLimited {
            retry_after: Some(Duration::from_secs(120))
        }
    );
    session.access_token().await.unwrap_err();
    assert_eq!(
        count_requests(&server, "/user/token").await,
        1,
        "no login inside the window"
    );
    clock.advance(Duration::from_secs(121));
    session.access_token().await.unwrap_err();
    assert_eq!(
        count_requests(&server, "/user/token").await,
        2,
        "one login after it"
    );
}

#[tokio::test]
async fn an_error_body_of_another_json_shape_still_gives_its_message() {
    // The error body is undocumented: a message under `error` is the provider's message too.
    for (status, message, kind) in [
        (
            401,
            "User access window has expired",
            ErrorKind::AccessWindowExpired,
        ),
        (
            429,
            "Too many authentication attempts. Try again in 5 minutes",
            ErrorKind::RateLimited {
                retry_after: Some(Duration::from_secs(300)),
            },
        ),
    ] {
        let body = ResponseTemplate::new(status).set_body_json(json!({"error": message}));
        let err = login_error(status, body).await;
        assert_eq!(
            (err.kind(), err.status(), err.message()),
            (kind, Some(status), Some(message))
        );
    }
}

#[tokio::test]
async fn a_429_that_says_nothing_holds_logins_back_for_the_documented_five_minutes() {
    let server = MockServer::start().await;
    let clock = test_clock();
    Mock::given(method("POST"))
        .and(path("/user/token"))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({"status": "error"})))
        .mount(&server)
        .await;
    let session = session(&server, &clock, user());
    let err = session.access_token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited { retry_after: None });
    clock.advance(Duration::from_secs(299));
    let held = session.access_token().await.unwrap_err();
    assert_eq!(held.kind(), ErrorKind::RateLimited { retry_after: None });
    assert_eq!(
        count_requests(&server, "/user/token").await,
        1,
        "no login inside the documented window"
    );
    clock.advance(Duration::from_secs(2));
    session.access_token().await.unwrap_err();
    assert_eq!(
        count_requests(&server, "/user/token").await,
        2,
        "one login after it"
    );
}

#[tokio::test]
async fn undocumented_502_html_is_a_server_error_with_an_excerpt() {
    let err = login_error(502, common::bad_gateway_html()).await;
    assert_eq!(err.kind(), ErrorKind::ServerError);
    assert_eq!(err.status(), Some(502));
    assert!(err.message().unwrap().contains("502 Bad Gateway"));
}

#[tokio::test]
async fn a_success_of_the_wrong_shape_is_a_decode_error_that_quotes_nothing() {
    let err = login_error(
        200,
        ResponseTemplate::new(200)
            .set_body_json(json!({"status": "success", "data": {"token": "leaky-secret"}})),
    )
    .await;
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert_eq!(err.status(), Some(200));
    assert!(!format!("{err} {err:?}").contains("leaky-secret"));
}

#[tokio::test]
async fn a_401_from_an_api_call_renews_once_and_retries_once() {
    let server = MockServer::start().await;
    let clock = test_clock();
    let first = jwt(START_EPOCH + DAY, "first");
    let second = jwt(START_EPOCH + DAY, "second");
    // Logins hand out `first`, then `second`.
    Mock::given(method("POST"))
        .and(path("/user/token"))
        .respond_with(token_response(&first))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/user/token"))
        .respond_with(token_response(&second))
        .mount(&server)
        .await;
    // The authenticated call refuses `first` and accepts `second`.
    Mock::given(method("POST"))
        .and(path("/application/token"))
        .and(header("authorization", format!("Bearer {first}").as_str()))
        .respond_with(provider_error(401, "jwt expired"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/application/token"))
        .and(header("authorization", format!("Bearer {second}").as_str()))
        .respond_with(token_response("downstream-result"))
        .mount(&server)
        .await;
    let session = session(&server, &clock, user());
    let body = tokensmith::s7risk::types::ApplicationTokenRequest {
        client_id: "c".into(),
        secret: "s".into(),
    };
    let response = session
        .api()
        .create_application_token(ORIGIN, &body)
        .await
        .unwrap();
    assert_eq!(
        response.into_inner().data.access_token.expose_secret(),
        "downstream-result"
    );
    assert_eq!(count_requests(&server, "/user/token").await, 2);
    assert_eq!(count_requests(&server, "/application/token").await, 2);

    // A second refusal is returned, not looped on.
    server.reset().await;
    Mock::given(method("POST"))
        .and(path("/user/token"))
        .respond_with(token_response(&jwt(START_EPOCH + DAY, "third")))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/application/token"))
        .respond_with(provider_error(401, "jwt expired"))
        .mount(&server)
        .await;
    let err = session
        .api()
        .create_application_token(ORIGIN, &body)
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(401));
    assert_eq!(count_requests(&server, "/application/token").await, 2);
    assert_eq!(count_requests(&server, "/user/token").await, 1);
}

#[tokio::test]
async fn authorize_adds_the_bearer_and_origin_to_any_request() {
    let server = MockServer::start().await;
    let clock = test_clock();
    let token = jwt(START_EPOCH + DAY, "any");
    mount_user_login(&server, &token).await;
    let session = session(&server, &clock, user());
    let request = session
        .authorize(reqwest::Client::new().get(format!("{}/v1/alerts", server.uri())))
        .await
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(
        request.headers()["authorization"],
        format!("Bearer {token}").as_str()
    );
    assert!(request.headers()["authorization"].is_sensitive());
    assert_eq!(request.headers()["origin"], ORIGIN);
}

#[test]
fn bad_configuration_is_refused_at_build_time() {
    let build = |origin: &str, base: &str, credentials: Credentials| {
        credentials(Session::builder().origin(origin).base_url(base)).build()
    };
    let good = "https://auth.s7risk.com";
    for (origin, base, credentials) in [
        ("api.example.com", good, user()),
        ("https://api.example.com/x", good, user()),
        (ORIGIN, "not a url", user()),
        (ORIGIN, "http://auth.example.com", user()),
        (ORIGIN, good, |b: SessionBuilder| b.user("", "pw")),
        (ORIGIN, good, |b: SessionBuilder| b.user("a@b.c", "")),
        (ORIGIN, good, |b: SessionBuilder| b.application("id", " ")),
    ] {
        let err = build(origin, base, credentials).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::Configuration,
            "{origin} {base}: {err}"
        );
    }
    assert!(
        Session::builder().origin(ORIGIN).build().is_err(),
        "credentials are required"
    );
    assert!(
        build(ORIGIN, "http://127.0.0.1:8080", user()).is_ok(),
        "loopback http is a sandbox"
    );
}

#[tokio::test]
async fn nothing_prints_a_secret() {
    let server = MockServer::start().await;
    let token = jwt(START_EPOCH + DAY, "secret-token");
    mount_user_login(&server, &token).await;
    let session = session(&server, &test_clock(), user());
    let access = session.access_token().await.unwrap();
    let printed = format!("{session:?} {access:?} {:?}", user());
    for secret in [token.as_str(), "pw-hunter2"] {
        assert!(!printed.contains(secret), "leaked in {printed}");
    }
}
