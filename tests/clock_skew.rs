//! README's "Expiry": a JWT's `exp` is read against the local wall clock, so a clock that lags
//! the issuer's would stretch a token's life. What bounds the stretch, service by service: fib's
//! and accounts' documented lifetimes, Password Safe's `expires_in`, a JWT's own `iat`; and the
//! one case nothing bounds (a Password Safe answer whose `expires_in` counts as absent, with a JWT
//! that has no `iat`), which the README states.
//!
//! The issuer's clock stands at `START_EPOCH`; the local clock lags it by an hour.
#![cfg(all(feature = "fib", feature = "accounts", feature = "passwordsafe"))]

mod common;

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use common::{count_requests, START_EPOCH};
use serde_json::json;
use tokensmith::clock::ManualClock;
use tokensmith::{accounts, fib, passwordsafe, RefreshPolicy};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const HOUR: u64 = 3600;
const MINUTE: u64 = 60;

/// A local clock an hour behind the issuer's.
fn lagging_clock() -> ManualClock {
    ManualClock::starting_at(SystemTime::UNIX_EPOCH + Duration::from_secs(START_EPOCH - HOUR))
}

/// An unsigned JWT with these claims.
fn jwt(claims: serde_json::Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
        b64.encode(claims.to_string())
    )
}

#[tokio::test]
async fn a_lagging_clock_cannot_stretch_a_fib_token_past_its_documented_five_minutes() {
    let server = MockServer::start().await;
    // An access token for 5 minutes, its `expirationTime` given as the time it ends (the
    // docs also call it an "exact time"): both read on the local clock, an hour behind.
    Mock::given(method("POST"))
        .and(path("/auth/api/v1/authentication-management/session"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": {"code": 200, "name": "OK"},
            "data": {
                "accessToken": jwt(json!({"sub": "alice", "exp": START_EPOCH + 300})),
                "refreshToken": jwt(json!({"sub": "alice", "exp": START_EPOCH + 86_400})),
                "expirationTime": START_EPOCH + 300,
            }
        })))
        .mount(&server)
        .await;
    let session = fib::Session::builder()
        .base_url(server.uri())
        .email("alice@wonderland.space")
        .private_key(tokensmith::sandbox::demo::FIB_PRIVATE_KEY)
        .clock(lagging_clock())
        .build()
        .unwrap();
    let token = session.access_token().await.unwrap();
    assert_eq!(token.expires_in(), fib::ACCESS_TOKEN_LIFETIME);
    assert_eq!(fib::ACCESS_TOKEN_LIFETIME, Duration::from_secs(300));
}

#[tokio::test]
async fn a_lagging_clock_cannot_stretch_an_accounts_token_past_its_documented_day() {
    let server = MockServer::start().await;
    // A token set without `expires_in` (the field is optional): the JWT's `exp` alone.
    Mock::given(method("POST"))
        .and(path("/v1/login"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": jwt(json!({"sub": "ada", "exp": START_EPOCH + 86_400})),
            "id_token": "id-token",
            "refresh_token": "refresh-token",
        })))
        .mount(&server)
        .await;
    let session = accounts::Session::builder()
        .base_url(server.uri())
        .username("ada")
        .password("correct horse")
        .clock(lagging_clock())
        .build()
        .unwrap();
    let token = session.access_token().await.unwrap();
    assert_eq!(token.expires_in(), accounts::ACCESS_TOKEN_LIFETIME);
    assert_eq!(accounts::ACCESS_TOKEN_LIFETIME, Duration::from_secs(86_400));
}

const TOKEN: &str = "/Auth/connect/token";

/// A Password Safe server whose OAuth token answer is `expires_in` (raw JSON) and `claims`, and
/// whose SignAppin opens a session with a cookie; `/ManagedAccounts` accepts the session.
async fn password_safe(expires_in: &str, claims: serde_json::Value) -> MockServer {
    let server = MockServer::start().await;
    let body = format!(
        r#"{{"access_token":"{}","expires_in":{expires_in},"token_type":"Bearer"}}"#,
        jwt(claims)
    );
    Mock::given(method("POST"))
        .and(path(TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/Auth/SignAppin"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("set-cookie", "ASP.NET_SessionId=one; path=/; HttpOnly")
                .set_body_json(json!({"UserId": 12, "UserName": "svc-reader"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/ManagedAccounts"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    server
}

fn password_safe_session(server: &MockServer, clock: &ManualClock) -> passwordsafe::Session {
    passwordsafe::Session::builder()
        .base_url(server.uri())
        .oauth("client-1", "client-secret")
        .clock(clock.clone())
        .refresh_policy(RefreshPolicy::new().with_jitter(false))
        .build()
        .unwrap()
}

/// Signs in at minute 0, makes an accepted call at minute 18 (the idle window slides to minute
/// 38, renewed from minute 37), and asks for the token at minute 36, past the OAuth token's real
/// 30 minutes: how many token requests that took.
async fn token_requests_after_sliding_past_half_an_hour(server: &MockServer) -> usize {
    let clock = lagging_clock();
    let session = password_safe_session(server, &clock);
    session.access_token().await.unwrap();
    clock.advance(Duration::from_secs(18 * MINUTE));
    let url = format!("{}/ManagedAccounts", server.uri());
    let response = session.send(session.client().get(&url)).await.unwrap();
    assert_eq!(response.status(), 200);
    clock.advance(Duration::from_secs(18 * MINUTE));
    session.access_token().await.unwrap();
    count_requests(server, TOKEN).await
}

#[tokio::test]
async fn password_safe_s_expires_in_bounds_its_token_whatever_the_clock() {
    // The JWT says an hour on the issuer's clock (two on the lagging one); `expires_in` says 10
    // minutes, and no clock is read for it.
    let server = password_safe("600", json!({"sub": "client-1", "exp": START_EPOCH + HOUR})).await;
    let clock = lagging_clock();
    let token = password_safe_session(&server, &clock)
        .access_token()
        .await
        .unwrap();
    assert_eq!(token.expires_in(), Duration::from_secs(600));
}

#[tokio::test]
async fn a_password_safe_jwt_with_iat_is_not_stretched_by_a_lagging_clock() {
    // `expires_in` out of range counts as absent; the JWT's `exp − iat` is 30 minutes.
    let server = password_safe(
        "-1",
        json!({"sub": "client-1", "iat": START_EPOCH, "exp": START_EPOCH + 30 * MINUTE}),
    )
    .await;
    assert_eq!(
        token_requests_after_sliding_past_half_an_hour(&server).await,
        2,
        "past the token's 30 minutes the session signs in again"
    );
}

#[tokio::test]
async fn a_password_safe_jwt_without_iat_or_usable_expires_in_is_read_on_the_local_clock_alone() {
    // The case the README names: nothing bounds the local reading of `exp`, and the session
    // slides on past the token's real expiry (still within its 20-minute idle windows).
    let server = password_safe(
        "-1",
        json!({"sub": "client-1", "exp": START_EPOCH + 30 * MINUTE}),
    )
    .await;
    assert_eq!(
        token_requests_after_sliding_past_half_an_hour(&server).await,
        1,
        "an hour behind, the token looks good for 90 minutes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_is_counted_from_when_the_login_was_sent_not_when_it_was_answered() {
    use common::held::{wait_until, HeldServer};

    // A 10-minute token whose answer takes 10 s (on the session's clock) to come back.
    let server = HeldServer::start(|_| {
        (
            200,
            json!({"access_token": "opaque", "id_token": "id", "refresh_token": "r", "expires_in": 600})
                .to_string(),
        )
    })
    .await;
    let clock = common::test_clock();
    let session = accounts::Session::builder()
        .base_url(server.uri())
        .username("ada")
        .password("correct horse")
        .clock(clock.clone())
        .build()
        .unwrap();
    let login = tokio::spawn({
        let session = session.clone();
        async move { session.access_token().await }
    });
    wait_until("the login was sent", || server.requests().len() == 1).await;
    clock.advance(Duration::from_secs(10));
    server.release(1);
    let token = login.await.unwrap().unwrap();
    assert_eq!(token.expires_in(), Duration::from_secs(590));
}
