//! README's "Bounds on the numbers a service sends", sentence by sentence: numbers no service
//! should send, sent anyway. A lifetime out of range counts as absent (the documented lifetime
//! applies), and a wait the service asks for is capped at 24 hours. None of them panics, on
//! the call that received them or on any later one.
#![cfg(all(
    feature = "s7risk",
    feature = "weavr",
    feature = "accounts",
    feature = "passwordsafe",
    feature = "fib"
))]

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::services::{Service, SERVICES};
use common::{count_requests, test_clock, START_EPOCH};
use serde_json::json;
use tokensmith::{ErrorKind, RetryPolicy};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// An unsigned JWT with exactly these claims (written as JSON text, so that numbers beyond
/// what `serde_json` would print stay as they are).
fn jwt_with(claims: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
        b64.encode(claims)
    )
}

/// A login answer body, as raw JSON text, for the service.
fn raw(status: u16, body: String) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body, "application/json")
}

async fn s7risk_login_with(access_token: &str) -> tokensmith::AccessToken {
    let server = MockServer::start().await;
    let clock = test_clock();
    Mock::given(method("POST"))
        .and(path("/user/token"))
        .respond_with(Service::S7risk.answer(access_token))
        .mount(&server)
        .await;
    let session = Service::S7risk.session(
        &server.uri(),
        &clock,
        reqwest::Client::builder(),
        RetryPolicy::none(),
    );
    let token = session.access_token().await.expect("a token");
    // The same session answers again, from its cache: nothing was left to panic later.
    let again = session.access_token().await.expect("the cached token");
    assert_eq!(again.secret().expose_secret(), access_token);
    assert_eq!(count_requests(&server, "/user/token").await, 1);
    token
}

#[tokio::test]
async fn a_jwt_exp_of_1e300_counts_as_absent() {
    let token = s7risk_login_with(&jwt_with(r#"{"sub":"a","exp":1e300}"#)).await;
    assert_eq!(token.expires_in(), DAY, "s7risk's documented 24 hours");
}

#[tokio::test]
async fn a_jwt_exp_in_year_9999_counts_as_absent() {
    // 9999-12-31T23:59:59Z: representable, but no token is issued for 8,000 years.
    let token = s7risk_login_with(&jwt_with(r#"{"sub":"a","exp":253402300799}"#)).await;
    assert_eq!(token.expires_in(), DAY);
}

#[tokio::test]
async fn a_jwt_exp_before_1970_counts_as_absent() {
    let token = s7risk_login_with(&jwt_with(r#"{"sub":"a","exp":-2208988800}"#)).await;
    // A negative exp is no time at all: the documented lifetime applies.
    assert_eq!(token.expires_in(), DAY);
}

#[tokio::test]
async fn a_jwt_iat_of_1e20_is_ignored() {
    let exp = START_EPOCH + 600;
    let token = s7risk_login_with(&jwt_with(&format!(
        r#"{{"sub":"a","iat":1e20,"exp":{exp}}}"#
    )))
    .await;
    assert_eq!(
        token.expires_in(),
        Duration::from_secs(600),
        "exp still counts"
    );
}

#[tokio::test]
async fn a_jwt_nbf_of_1e300_changes_nothing() {
    let exp = START_EPOCH + 600;
    let token = s7risk_login_with(&jwt_with(&format!(
        r#"{{"sub":"a","nbf":1e300,"iat":{START_EPOCH},"exp":{exp}}}"#
    )))
    .await;
    assert_eq!(token.expires_in(), Duration::from_secs(600));
}

async fn accounts_login_with_expires_in(expires_in: &str) -> Result<Duration, tokensmith::Error> {
    let server = MockServer::start().await;
    let clock = test_clock();
    Mock::given(method("POST"))
        .and(path("/v1/login"))
        .respond_with(raw(
            200,
            format!(
                r#"{{"access_token":"tok-a","id_token":"id-token","refresh_token":"tok-r","expires_in":{expires_in}}}"#
            ),
        ))
        .mount(&server)
        .await;
    let session = Service::Accounts.session(
        &server.uri(),
        &clock,
        reqwest::Client::builder(),
        RetryPolicy::none(),
    );
    let token = session.access_token().await?;
    assert_eq!(token.secret().expose_secret(), "tok-a");
    session.access_token().await.expect("the cached token");
    Ok(token.expires_in())
}

#[tokio::test]
async fn an_expires_in_out_of_range_counts_as_absent() {
    for value in [
        "9223372036854775807",  // i64::MAX
        "18446744073709551615", // u64::MAX
        "1e300",
        "-1",
        "-9223372036854775808",
        "31622400000", // a thousand years
        "31536001",    // 365 days and a second
    ] {
        assert_eq!(
            accounts_login_with_expires_in(value).await.unwrap(),
            DAY,
            "expires_in {value}: accounts' documented 24 hours"
        );
    }
    assert_eq!(
        accounts_login_with_expires_in("3600").await.unwrap(),
        Duration::from_secs(3600),
        "a lifetime in range is taken as given"
    );
    // 365 days is still in range (the bound itself is `expiry`'s unit tests'), and then capped
    // at accounts' documented day like any lifetime longer than it.
    assert_eq!(
        accounts_login_with_expires_in("31536000").await.unwrap(),
        DAY,
        "365 days is in range, capped at the documented day"
    );
    assert_eq!(
        accounts_login_with_expires_in("86401").await.unwrap(),
        DAY,
        "a second past the day is capped"
    );
    assert_eq!(
        accounts_login_with_expires_in("3600.5").await.unwrap(),
        Duration::from_millis(3_600_500),
        "a fraction of a second counts"
    );
    assert_eq!(
        accounts_login_with_expires_in("null").await.unwrap(),
        DAY,
        "null in an optional field is absent"
    );
    // Not a number at all: a malformed answer, a typed error.
    for value in ["\"3600\"", "true", "{}", "1e400"] {
        let err = accounts_login_with_expires_in(value).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode, "expires_in {value}");
        assert_eq!(err.status(), Some(200));
    }
}

#[tokio::test]
async fn a_fib_expiration_time_out_of_range_counts_as_absent() {
    for value in [
        "9223372036854775807",
        "18446744073709551615",
        "1e300",
        "-5",
        "253402300799000",
    ] {
        let server = MockServer::start().await;
        let clock = test_clock();
        let mut body = Service::Fib.success(json!("tok-fib"));
        body["data"]["expirationTime"] = json!(0);
        let body = body.to_string().replace(
            r#""expirationTime":0"#,
            &format!(r#""expirationTime":{value}"#),
        );
        Mock::given(method("POST"))
            .and(path(Service::Fib.login_path()))
            .respond_with(raw(200, body))
            .mount(&server)
            .await;
        let session = Service::Fib.session(
            &server.uri(),
            &clock,
            reqwest::Client::builder(),
            RetryPolicy::none(),
        );
        let token = session.access_token().await.expect("a token");
        assert_eq!(
            token.expires_in(),
            Duration::from_secs(300),
            "expirationTime {value}: fib's documented 5 minutes"
        );
    }
}

/// A rate-limited s7risk login answered with `header: value`.
async fn rate_limited_with(service: Service, header: &str, value: &str, message: &str) {
    let server = MockServer::start().await;
    let clock = test_clock();
    Mock::given(path(service.login_path()))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header(header, value)
                .set_body_json(json!({"message": message})),
        )
        .mount(&server)
        .await;
    let session = service.session(
        &server.uri(),
        &clock,
        reqwest::Client::builder(),
        RetryPolicy::none(),
    );
    let err = session.access_token().await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::RateLimited {
            retry_after: Some(DAY)
        },
        "{service:?} {header}: {value}: capped at 24 hours"
    );
    let again = session.access_token().await.unwrap_err();
    assert_eq!(again.kind(), err.kind());
    assert_eq!(count_requests(&server, service.login_path()).await, 1);
    clock.advance(DAY);
    session.access_token().await.unwrap_err();
    assert_eq!(
        count_requests(&server, service.login_path()).await,
        2,
        "{service:?}: the capped wait ends"
    );
}

#[tokio::test]
async fn a_retry_after_of_u64_max_is_capped_at_a_day() {
    for service in SERVICES {
        rate_limited_with(service, "retry-after", "18446744073709551615", "slow down").await;
    }
}

#[tokio::test]
async fn a_retry_after_date_in_year_9999_is_capped_at_a_day() {
    rate_limited_with(
        Service::S7risk,
        "retry-after",
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "slow down",
    )
    .await;
}

#[tokio::test]
async fn an_x_ratelimit_reset_of_1e25_is_capped_at_a_day() {
    for service in SERVICES {
        rate_limited_with(service, "x-ratelimit-reset", "1e25", "slow down").await;
    }
}

#[tokio::test]
async fn a_try_again_in_text_beyond_a_day_is_capped_at_a_day() {
    for text in [
        "Too many authentication attempts. Try again in 18446744073709551615 hours",
        "Too many authentication attempts. Try again in 5000000000000000000 minutes",
        "Too many authentication attempts. Try again in 100000 seconds",
    ] {
        rate_limited_with(Service::S7risk, "x-unrelated", "1", text).await;
    }
}

#[tokio::test]
async fn a_password_safe_expires_in_out_of_range_counts_as_absent() {
    for value in ["18446744073709551615", "1e300", "-1"] {
        let server = MockServer::start().await;
        let service = Service::PasswordSafeOauth;
        service.mount_rest(&server).await;
        let body = service
            .success(json!("tok-ps"))
            .to_string()
            .replace(r#""expires_in":3600"#, &format!(r#""expires_in":{value}"#));
        Mock::given(path(service.login_path()))
            .respond_with(raw(200, body))
            .mount(&server)
            .await;
        let session = service.session(
            &server.uri(),
            &test_clock(),
            reqwest::Client::builder(),
            RetryPolicy::none(),
        );
        let token = session.access_token().await.expect("a session");
        assert_eq!(
            token.expires_in(),
            tokensmith::passwordsafe::ACCESS_TOKEN_IDLE_LIFETIME,
            "expires_in {value}: the session's documented 20 minutes"
        );
    }
}
