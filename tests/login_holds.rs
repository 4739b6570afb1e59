//! README's table "What a failed login holds back", for the two rows whose length is not the
//! service's to say: a 423 lock-out that names no duration holds logins back until
//! `clear_failure()`, however long one waits; a 429 that names no window holds them back for
//! this SDK's default of 60 s. Time is a manual clock's.
#![cfg(feature = "fib")]

mod common;

use std::time::Duration;

use common::{count_requests, jwt, test_clock, START_EPOCH};
use serde_json::json;
use tokensmith::clock::ManualClock;
use tokensmith::{fib, ErrorKind, RetryPolicy};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SESSION: &str = "/auth/api/v1/authentication-management/session";

/// A fib server whose first login is answered `first`, and every later one with a token.
async fn server(first: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(SESSION))
        .respond_with(first)
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(SESSION))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": {"code": 200, "name": "OK"},
            "data": {
                "accessToken": jwt(START_EPOCH + 10 * 86_400, "access"),
                "refreshToken": jwt(START_EPOCH + 10 * 86_400, "refresh"),
                "expirationTime": 300,
            }
        })))
        .with_priority(2)
        .mount(&server)
        .await;
    server
}

fn session(server: &MockServer, clock: &ManualClock) -> fib::Session {
    fib::Session::builder()
        .base_url(server.uri())
        .email("alice@wonderland.space")
        .private_key(tokensmith::sandbox::demo::FIB_PRIVATE_KEY)
        .digest(fib::Digest::Plain)
        .retry_policy(RetryPolicy::none())
        .clock(clock.clone())
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_lock_out_that_names_no_duration_holds_logins_until_clear_failure() {
    let server = server(ResponseTemplate::new(423)).await;
    let clock = test_clock();
    let session = session(&server, &clock);
    let locked = session.access_token().await.unwrap_err();
    assert_eq!(
        locked.kind(),
        ErrorKind::AccountLocked { retry_after: None }
    );
    // README's Errors: waiting may cure a lock-out (here, the owner's clear_failure()).
    assert!(locked.is_transient() && !locked.is_credentials_refused());
    // A year later, and after a logout, the same error without a request.
    clock.advance(Duration::from_secs(365 * 86_400));
    session.logout().await.unwrap();
    let again = session.access_token().await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::AccountLocked { retry_after: None });
    assert_eq!(count_requests(&server, SESSION).await, 1);

    session.clear_failure();
    session.access_token().await.unwrap();
    assert_eq!(count_requests(&server, SESSION).await, 2);
}

#[tokio::test]
async fn a_rate_limit_that_names_no_window_holds_logins_for_60_s() {
    let server = server(ResponseTemplate::new(429)).await;
    let clock = test_clock();
    let session = session(&server, &clock);
    let limited = session.access_token().await.unwrap_err();
    assert_eq!(limited.kind(), ErrorKind::RateLimited { retry_after: None });
    assert!(limited.is_transient() && !limited.is_credentials_refused());

    clock.advance(Duration::from_secs(60) - Duration::from_nanos(1));
    let held = session.access_token().await.unwrap_err();
    assert_eq!(held.kind(), ErrorKind::RateLimited { retry_after: None });
    assert_eq!(count_requests(&server, SESSION).await, 1);

    clock.advance(Duration::from_nanos(1));
    session.access_token().await.unwrap();
    assert_eq!(count_requests(&server, SESSION).await, 2);
}

#[tokio::test]
async fn clear_failure_lifts_a_rate_limit_s_hold_at_once() {
    let server = server(ResponseTemplate::new(429).insert_header("retry-after", "3600")).await;
    let clock = test_clock();
    let session = session(&server, &clock);
    let limited = session.access_token().await.unwrap_err();
    assert_eq!(
        limited.kind(),
        ErrorKind::RateLimited {
            retry_after: Some(Duration::from_secs(3600))
        }
    );
    session.clear_failure();
    session.access_token().await.unwrap();
    assert_eq!(count_requests(&server, SESSION).await, 2);
}
