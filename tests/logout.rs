//! Ending sessions: each service's logout sends what the service documents (or nothing,
//! where it has no endpoint), wipes the cached secrets, and the next call logs in afresh.
#![cfg(all(feature = "s7risk", feature = "fib"))]

mod common;

use common::{assert_request, count_requests, jwt, test_clock, Body, Expected, START_EPOCH};
use serde_json::json;
use tokensmith::{ErrorKind, RefreshPolicy, Service};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const FIB_SESSION: &str = "/auth/api/v1/authentication-management/session";
const FIB_LOGOUT: &str = "/auth/api/v1/authentication-management/logout";

fn fib_session(server: &MockServer) -> tokensmith::fib::Session {
    tokensmith::fib::Session::builder()
        .base_url(server.uri())
        .email("alice@wonderland.space")
        .private_key(common::services::FIB_PRIVATE)
        .clock(test_clock())
        .refresh_policy(RefreshPolicy::new().with_jitter(false))
        .build()
        .unwrap()
}

async fn mount_fib_login(server: &MockServer) -> (String, String) {
    let access = jwt(START_EPOCH + 300, "access");
    let refresh = jwt(START_EPOCH + 86_400, "refresh");
    Mock::given(method("POST"))
        .and(path(FIB_SESSION))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": {"code": 200, "name": "OK"},
            "data": {"accessToken": access, "refreshToken": refresh, "expirationTime": 300}
        })))
        .mount(server)
        .await;
    (access, refresh)
}

#[tokio::test]
async fn fib_logout_ends_the_session_with_the_access_token_and_wipes_it() {
    let server = MockServer::start().await;
    let (access, _) = mount_fib_login(&server).await;
    Mock::given(method("POST"))
        .and(path(FIB_LOGOUT))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"status": {"code": 200, "name": "OK"}, "data": {}})),
        )
        .mount(&server)
        .await;
    let session = fib_session(&server);
    session.access_token().await.unwrap();

    session.logout().await.unwrap();

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    assert_request(
        &requests[1],
        &Expected {
            method: "POST",
            path: FIB_LOGOUT,
            query: None,
            headers: &[
                ("authorization", &format!("Bearer {access}")),
                ("accept", "application/json"),
            ],
            body: Body::None,
        },
    );
    assert!(
        format!("{session:?}").contains("token: None"),
        "{session:?}"
    );
    session.access_token().await.unwrap();
    assert_eq!(
        count_requests(&server, FIB_SESSION).await,
        2,
        "logged in afresh"
    );
    assert_eq!(session.request_counts().logins, 2);
}

#[tokio::test]
async fn fib_logout_without_a_token_sends_nothing() {
    let server = MockServer::start().await;
    let session = fib_session(&server);
    session.logout().await.unwrap();
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn fib_logout_refused_is_reported_and_the_cache_is_wiped_anyway() {
    let server = MockServer::start().await;
    mount_fib_login(&server).await;
    Mock::given(method("POST"))
        .and(path(FIB_LOGOUT))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "status": {"code": 401, "name": "UNAUTHORIZED", "message": "Token expired"}
        })))
        .mount(&server)
        .await;
    let session = fib_session(&server);
    session.access_token().await.unwrap();

    let error = session.logout().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::TokenRejected);
    assert_eq!(error.status(), Some(401));
    assert_eq!(error.service(), Some(Service::Fib));
    assert_eq!(error.message(), Some("Token expired"));
    assert_eq!(error.code(), Some("UNAUTHORIZED"));
    session.access_token().await.unwrap();
    assert_eq!(count_requests(&server, FIB_SESSION).await, 2);
}

#[tokio::test]
async fn s7risk_logout_is_local_and_the_next_call_logs_in_again() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/user/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"status": "success", "data": {"accessToken": jwt(START_EPOCH + 86_400, "u")}}),
        ))
        .mount(&server)
        .await;
    let session = tokensmith::s7risk::Session::builder()
        .base_url(server.uri())
        .origin("https://api.example.com")
        .user("analyst@example.com", "pw")
        .clock(test_clock())
        .build()
        .unwrap();
    session.access_token().await.unwrap();
    session.access_token().await.unwrap();
    assert_eq!(count_requests(&server, "/user/token").await, 1);

    session.logout().await.unwrap();

    assert_eq!(
        server.received_requests().await.unwrap().len(),
        1,
        "no request"
    );
    session.access_token().await.unwrap();
    assert_eq!(count_requests(&server, "/user/token").await, 2);
}

#[tokio::test]
async fn a_logout_after_refused_credentials_does_not_send_them_again() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/user/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"status": "error", "message": "Email and password do not match"}),
        ))
        .mount(&server)
        .await;
    let session = tokensmith::s7risk::Session::builder()
        .base_url(server.uri())
        .origin("https://api.example.com")
        .user("a@example.com", "wrong-pw")
        .clock(test_clock())
        .build()
        .unwrap();
    let refused = session.access_token().await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::InvalidCredentials);

    session.logout().await.unwrap();
    let again = session.access_token().await.unwrap_err();

    assert_eq!(again.kind(), ErrorKind::InvalidCredentials);
    assert_eq!(
        count_requests(&server, "/user/token").await,
        1,
        "ending the session is no reason to send refused credentials again"
    );
}

#[tokio::test]
async fn fib_logout_after_the_access_token_expired_renews_once_to_end_the_session() {
    let server = MockServer::start().await;
    let (_, refresh) = mount_fib_login(&server).await;
    let renewed = jwt(START_EPOCH + 700, "renewed");
    Mock::given(method("PATCH"))
        .and(path(FIB_SESSION))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": {"code": 200, "name": "OK"},
            "data": {"accessToken": renewed, "refreshToken": refresh, "expirationTime": 300}
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(FIB_LOGOUT))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"status": {"code": 200, "name": "OK"}, "data": {}})),
        )
        .mount(&server)
        .await;
    let clock = test_clock();
    let session = tokensmith::fib::Session::builder()
        .base_url(server.uri())
        .email("alice@wonderland.space")
        .private_key(common::services::FIB_PRIVATE)
        .clock(clock.clone())
        .build()
        .unwrap();
    session.access_token().await.unwrap();
    clock.advance(std::time::Duration::from_secs(400));

    session.logout().await.unwrap();

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3, "login, the one renewal, logout");
    assert_request(
        &requests[1],
        &Expected {
            method: "PATCH",
            path: FIB_SESSION,
            query: None,
            headers: &[("authorization", &format!("Bearer {refresh}"))],
            body: Body::None,
        },
    );
    assert_request(
        &requests[2],
        &Expected {
            method: "POST",
            path: FIB_LOGOUT,
            query: None,
            headers: &[("authorization", &format!("Bearer {renewed}"))],
            body: Body::None,
        },
    );
    session.access_token().await.unwrap();
    assert_eq!(
        count_requests(&server, FIB_SESSION).await,
        3,
        "the renewed token was not kept: the next call logs in afresh"
    );
}
