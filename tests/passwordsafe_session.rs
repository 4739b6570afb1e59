//! The Password Safe session: sign-in by API key or by OAuth token, the session cookie as the
//! cached secret, its 20-minute sliding idle expiry (capped by the OAuth token's lifetime),
//! single flight, typed errors, no retry of refused credentials, and sign-out. Time is driven
//! by a test clock.
#![cfg(feature = "passwordsafe")]

mod common;

use std::time::Duration;

use common::{assert_request, count_requests, test_clock, Body, Expected};
use serde_json::json;
use tokensmith::clock::ManualClock;
use tokensmith::passwordsafe::{Session, SessionBuilder, ACCESS_TOKEN_IDLE_LIFETIME};
use tokensmith::{ErrorKind, RefreshPolicy, Service, TokenOrigin};
use wiremock::matchers::{body_string, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TOKEN: &str = "/Auth/connect/token";
const SIGN_IN: &str = "/Auth/SignAppin";
const SIGN_OUT: &str = "/Auth/Signout";

const API_KEY: &str = "c479a66f0c9484d-api-key";
const RUNAS: &str = r"doe-main\johndoe";
const PASSWORD: &str = "un1qu3-pw";
const PS_AUTH: &str =
    r"PS-Auth key=c479a66f0c9484d-api-key; runas=doe-main\johndoe; pwd=[un1qu3-pw];";
const CLIENT_ID: &str = "6a8f3c0e-1d2b-4c5a-9e7f-0b1c2d3e4f5a";
const CLIENT_SECRET: &str = "client/secret+value";
const FORM: &str = "grant_type=client_credentials\
                    &client_id=6a8f3c0e-1d2b-4c5a-9e7f-0b1c2d3e4f5a\
                    &client_secret=client%2Fsecret%2Bvalue";
const BEARER_ONE: &str = "oauth-access-token-one";
const BEARER_TWO: &str = "oauth-access-token-two";

const MINUTE: u64 = 60;
/// The default margin for a 20-minute session: renewal 60 s before the idle timeout.
const RENEW_AT: u64 = 20 * MINUTE - 60;

/// One of the builder's credential setters, with its arguments.
type Credentials = fn(SessionBuilder) -> SessionBuilder;

fn ps_auth() -> Credentials {
    |builder| builder.ps_auth(API_KEY, RUNAS, Some(PASSWORD.into()))
}

fn oauth() -> Credentials {
    |builder| builder.oauth(CLIENT_ID, CLIENT_SECRET)
}

fn session(server: &MockServer, clock: &ManualClock, credentials: Credentials) -> Session {
    credentials(Session::builder().base_url(server.uri()))
        .api_version("3.1")
        .clock(clock.clone())
        .refresh_policy(RefreshPolicy::new().with_jitter(false))
        .build()
        .unwrap()
}

/// The value a `Cookie` header carries for session `tag`.
fn cookie(tag: &str) -> String {
    format!("ASP.NET_SessionId={tag}")
}

/// A successful SignAppin that opens session `tag`.
fn signed_in(tag: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header(
            "set-cookie",
            format!("{}; path=/; secure; HttpOnly; SameSite=Lax", cookie(tag)).as_str(),
        )
        .set_body_json(json!({
            "UserId": 12,
            "SID": "S-1-5-21-1004336348-1177238915-682003330-1104",
            "EmailAddress": "john.doe@doe-main.example",
            "UserName": RUNAS,
            "Name": "John Doe"
        }))
}

fn token(access: &str, expires_in: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": access,
        "expires_in": expires_in,
        "token_type": "Bearer",
        "scope": "publicapi"
    }))
}

async fn mount_ps_auth_sign_in(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(SIGN_IN))
        .and(header("authorization", PS_AUTH))
        .and(query_param("version", "3.1"))
        .respond_with(response)
        .mount(server)
        .await;
}

async fn mount_token(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(TOKEN))
        .and(query_param("version", "3.1"))
        .and(body_string(FORM))
        .respond_with(response)
        .mount(server)
        .await;
}

async fn mount_bearer_sign_in(server: &MockServer, bearer: &str, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(SIGN_IN))
        .and(header("authorization", format!("Bearer {bearer}").as_str()))
        .respond_with(response)
        .mount(server)
        .await;
}

/// Answers `status` to a sign-out carrying session `tag`'s cookie.
async fn mount_sign_out(server: &MockServer, tag: &str, status: u16) {
    Mock::given(method("POST"))
        .and(path(SIGN_OUT))
        .and(header("cookie", cookie(tag).as_str()))
        .respond_with(ResponseTemplate::new(status).set_body_json(json!("Unauthorized")))
        .mount(server)
        .await;
}

/// One of the Password Safe API's other endpoints, as a session's `send` calls it.
const ACCOUNTS: &str = "/ManagedAccounts";

/// Answers `status` to `GET ManagedAccounts` carrying session `tag`'s cookie.
async fn mount_call(server: &MockServer, tag: &str, status: u16) {
    Mock::given(method("GET"))
        .and(path(ACCOUNTS))
        .and(header("cookie", cookie(tag).as_str()))
        .respond_with(ResponseTemplate::new(status).set_body_json(json!([])))
        .mount(server)
        .await;
}

/// `GET ManagedAccounts` through the session: its answer's status.
async fn call(server: &MockServer, session: &Session) -> u16 {
    let request = reqwest::Client::new().get(format!("{}{ACCOUNTS}", server.uri()));
    session.send(request).await.unwrap().status().as_u16()
}

async fn requests_to(server: &MockServer, route: &str) -> Vec<Request> {
    let all = server.received_requests().await.expect("recording is on");
    all.into_iter().filter(|r| r.url.path() == route).collect()
}

#[tokio::test]
async fn ps_auth_sign_in_sends_the_key_and_caches_the_session_cookie() {
    let server = MockServer::start().await;
    let clock = test_clock();
    mount_ps_auth_sign_in(&server, signed_in("one")).await;
    let session = session(&server, &clock, ps_auth());

    let first = session.access_token().await.unwrap();
    assert_eq!(first.secret().expose_secret(), cookie("one"));
    assert_eq!(first.origin(), TokenOrigin::Login);
    assert_eq!(first.expires_in(), ACCESS_TOKEN_IDLE_LIFETIME);
    assert_request(
        &requests_to(&server, SIGN_IN).await[0],
        &Expected {
            method: "POST",
            path: SIGN_IN,
            query: Some("version=3.1"),
            headers: &[("accept", "application/json"), ("authorization", PS_AUTH)],
            body: Body::None,
        },
    );

    clock.advance(Duration::from_secs(RENEW_AT - 1));
    let again = session.access_token().await.unwrap();
    assert_eq!(again.secret().expose_secret(), cookie("one"));
    assert_eq!(count_requests(&server, SIGN_IN).await, 1);
    assert_eq!(session.request_counts().logins, 1);
}

#[tokio::test]
async fn without_a_password_or_version_the_header_has_no_pwd_and_the_url_no_query() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(SIGN_IN))
        .respond_with(signed_in("plain"))
        .mount(&server)
        .await;
    let session = Session::builder()
        .base_url(server.uri())
        .ps_auth(API_KEY, "svc-account", None)
        .build()
        .unwrap();

    session.access_token().await.unwrap();
    assert_request(
        &requests_to(&server, SIGN_IN).await[0],
        &Expected {
            method: "POST",
            path: SIGN_IN,
            query: None,
            headers: &[(
                "authorization",
                "PS-Auth key=c479a66f0c9484d-api-key; runas=svc-account;",
            )],
            body: Body::None,
        },
    );
}

#[tokio::test]
async fn oauth_gets_a_token_then_signs_in_with_it() {
    let server = MockServer::start().await;
    let clock = test_clock();
    mount_token(&server, token(BEARER_ONE, 3600)).await;
    mount_bearer_sign_in(&server, BEARER_ONE, signed_in("oauth")).await;
    let session = session(&server, &clock, oauth());

    let first = session.access_token().await.unwrap();
    assert_eq!(first.secret().expose_secret(), cookie("oauth"));
    assert_eq!(first.expires_in(), ACCESS_TOKEN_IDLE_LIFETIME);
    assert_request(
        &requests_to(&server, TOKEN).await[0],
        &Expected {
            method: "POST",
            path: TOKEN,
            query: Some("version=3.1"),
            headers: &[("accept", "application/json")],
            body: Body::Form(FORM),
        },
    );
    let bearer = format!("Bearer {BEARER_ONE}");
    assert_request(
        &requests_to(&server, SIGN_IN).await[0],
        &Expected {
            method: "POST",
            path: SIGN_IN,
            query: Some("version=3.1"),
            headers: &[("accept", "application/json"), ("authorization", &bearer)],
            body: Body::None,
        },
    );
    session.access_token().await.unwrap();
    assert_eq!(count_requests(&server, TOKEN).await, 1);
    assert_eq!(count_requests(&server, SIGN_IN).await, 1);
}

#[tokio::test]
async fn a_short_oauth_token_shortens_the_session() {
    let server = MockServer::start().await;
    let clock = test_clock();
    mount_token(&server, token(BEARER_ONE, 600)).await;
    mount_bearer_sign_in(&server, BEARER_ONE, signed_in("short")).await;
    let token = session(&server, &clock, oauth())
        .access_token()
        .await
        .unwrap();
    assert_eq!(token.expires_in(), Duration::from_secs(600));
}

#[tokio::test]
async fn past_the_idle_margin_it_signs_in_again() {
    let server = MockServer::start().await;
    let clock = test_clock();
    Mock::given(method("POST"))
        .and(path(SIGN_IN))
        .respond_with(signed_in("one"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_ps_auth_sign_in(&server, signed_in("two")).await;
    let session = session(&server, &clock, ps_auth());
    session.access_token().await.unwrap();

    clock.advance(Duration::from_secs(RENEW_AT));
    let renewed = session.access_token().await.unwrap();
    assert_eq!(renewed.secret().expose_secret(), cookie("two"));
    assert_eq!(renewed.origin(), TokenOrigin::Login);
    assert_eq!(count_requests(&server, SIGN_IN).await, 2);
    assert_eq!(session.request_counts().logins, 2);
}

#[tokio::test]
async fn accepted_calls_slide_the_idle_expiry() {
    let server = MockServer::start().await;
    let clock = test_clock();
    mount_ps_auth_sign_in(&server, signed_in("one")).await;
    mount_call(&server, "one", 200).await;
    let session = session(&server, &clock, ps_auth());
    session.access_token().await.unwrap();

    clock.advance(Duration::from_secs(10 * MINUTE));
    assert_eq!(call(&server, &session).await, 200);
    // Idle since minute 10: the session lives until minute 30.
    clock.advance(Duration::from_secs(RENEW_AT - 1));
    let token = session.access_token().await.unwrap();
    assert_eq!(token.secret().expose_secret(), cookie("one"));
    assert_eq!(token.expires_in(), Duration::from_secs(61));
    assert_eq!(count_requests(&server, SIGN_IN).await, 1);
}

#[tokio::test]
async fn an_oauth_session_never_slides_past_its_token() {
    let server = MockServer::start().await;
    let clock = test_clock();
    Mock::given(method("POST"))
        .and(path(TOKEN))
        .respond_with(token(BEARER_ONE, 25 * MINUTE))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_token(&server, token(BEARER_TWO, 25 * MINUTE)).await;
    mount_bearer_sign_in(&server, BEARER_ONE, signed_in("one")).await;
    mount_bearer_sign_in(&server, BEARER_TWO, signed_in("two")).await;
    mount_call(&server, "one", 200).await;
    let session = session(&server, &clock, oauth());
    session.access_token().await.unwrap();

    clock.advance(Duration::from_secs(10 * MINUTE));
    assert_eq!(call(&server, &session).await, 200);
    let slid = session.access_token().await.unwrap();
    assert_eq!(
        slid.expires_in(),
        Duration::from_secs(15 * MINUTE),
        "capped at the token's 25 minutes, not 10 + 20"
    );
    clock.advance(Duration::from_secs(14 * MINUTE));
    let renewed = session.access_token().await.unwrap();
    assert_eq!(renewed.secret().expose_secret(), cookie("two"));
    assert_eq!(count_requests(&server, TOKEN).await, 2);
}

#[tokio::test]
async fn api_calls_carry_the_cookie_and_the_bearer_of_an_oauth_session() {
    let server = MockServer::start().await;
    let clock = test_clock();
    mount_token(&server, token(BEARER_ONE, 3600)).await;
    mount_bearer_sign_in(&server, BEARER_ONE, signed_in("oauth")).await;
    mount_sign_out(&server, "oauth", 200).await;
    let session = session(&server, &clock, oauth());

    session.api().sign_out(None).await.unwrap();
    let bearer = format!("Bearer {BEARER_ONE}");
    assert_request(
        &requests_to(&server, SIGN_OUT).await[0],
        &Expected {
            method: "POST",
            path: SIGN_OUT,
            query: None,
            headers: &[("cookie", &cookie("oauth")), ("authorization", &bearer)],
            body: Body::None,
        },
    );
}

#[tokio::test]
async fn a_sign_out_through_api_ends_the_session_instead_of_sliding_it() {
    let server = MockServer::start().await;
    let clock = test_clock();
    Mock::given(method("POST"))
        .and(path(SIGN_IN))
        .respond_with(signed_in("one"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_ps_auth_sign_in(&server, signed_in("two")).await;
    mount_sign_out(&server, "one", 200).await;
    let session = session(&server, &clock, ps_auth());
    session.access_token().await.unwrap();

    session.api().sign_out(None).await.unwrap();

    let next = session.access_token().await.unwrap();
    assert_eq!(next.secret().expose_secret(), cookie("two"));
    assert_eq!(next.origin(), TokenOrigin::Login);
    assert_eq!(count_requests(&server, SIGN_IN).await, 2);
}

#[tokio::test]
async fn api_calls_of_an_api_key_session_carry_only_the_cookie() {
    let server = MockServer::start().await;
    let clock = test_clock();
    mount_ps_auth_sign_in(&server, signed_in("one")).await;
    mount_sign_out(&server, "one", 200).await;
    let session = session(&server, &clock, ps_auth());

    session.api().sign_out(None).await.unwrap();
    let call = &requests_to(&server, SIGN_OUT).await[0];
    assert_eq!(call.headers["cookie"], cookie("one").as_str());
    assert!(
        call.headers.get("authorization").is_none(),
        "the API key is sent to SignAppin only"
    );
}

#[tokio::test]
async fn a_401_from_a_sent_call_signs_in_again_and_retries_once() {
    let server = MockServer::start().await;
    let clock = test_clock();
    Mock::given(method("POST"))
        .and(path(SIGN_IN))
        .respond_with(signed_in("one"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_ps_auth_sign_in(&server, signed_in("two")).await;
    mount_call(&server, "one", 401).await;
    mount_call(&server, "two", 200).await;
    let session = session(&server, &clock, ps_auth());

    assert_eq!(call(&server, &session).await, 200);
    assert_eq!(count_requests(&server, SIGN_IN).await, 2);
    assert_eq!(count_requests(&server, ACCOUNTS).await, 2);
    assert_eq!(
        session
            .access_token()
            .await
            .unwrap()
            .secret()
            .expose_secret(),
        cookie("two")
    );

    // A second refusal is returned, not looped on.
    server.reset().await;
    mount_ps_auth_sign_in(&server, signed_in("three")).await;
    mount_call(&server, "two", 401).await;
    mount_call(&server, "three", 401).await;
    assert_eq!(call(&server, &session).await, 401);
    assert_eq!(count_requests(&server, ACCOUNTS).await, 2);
    assert_eq!(count_requests(&server, SIGN_IN).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_callers_share_one_sign_in() {
    let server = MockServer::start().await;
    let clock = test_clock();
    mount_token(
        &server,
        token(BEARER_ONE, 3600).set_delay(Duration::from_millis(50)),
    )
    .await;
    mount_bearer_sign_in(&server, BEARER_ONE, signed_in("shared")).await;
    let session = session(&server, &clock, oauth());

    assert_eq!(
        common::assert_all_callers_share_one_token(&session, 1000).await,
        cookie("shared")
    );
    assert_eq!(count_requests(&server, TOKEN).await, 1);
    assert_eq!(count_requests(&server, SIGN_IN).await, 1);
}

#[tokio::test]
async fn a_cancelled_waiter_does_not_stall_the_others() {
    let server = MockServer::start().await;
    let clock = test_clock();
    mount_ps_auth_sign_in(
        &server,
        signed_in("after-cancel").set_delay(Duration::from_millis(200)),
    )
    .await;
    let session = session(&server, &clock, ps_auth());

    assert_eq!(
        common::assert_cancelled_waiter_does_not_stall(&session).await,
        cookie("after-cancel")
    );
    // The aborted sign-in was taken over by one waiter: two requests at most, never eleven.
    assert!(count_requests(&server, SIGN_IN).await <= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_sent_once_and_never_again() {
    let server = MockServer::start().await;
    let clock = test_clock();
    mount_ps_auth_sign_in(
        &server,
        ResponseTemplate::new(401).set_body_json(json!("Unauthorized")),
    )
    .await;
    let session = session(&server, &clock, ps_auth());

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
    assert_eq!(count_requests(&server, SIGN_IN).await, 1);

    // Only an explicit reset lets the credentials be tried again.
    session.clear_failure();
    session.access_token().await.unwrap_err();
    assert_eq!(count_requests(&server, SIGN_IN).await, 2);
}

#[tokio::test]
async fn a_refused_client_secret_is_not_retried_either() {
    let server = MockServer::start().await;
    let clock = test_clock();
    mount_token(
        &server,
        ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"})),
    )
    .await;
    let session = session(&server, &clock, oauth());
    for _ in 0..3 {
        let err = session.access_token().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidCredentials);
        assert_eq!(err.code(), Some("invalid_client"));
    }
    assert_eq!(count_requests(&server, TOKEN).await, 1);
    assert_eq!(count_requests(&server, SIGN_IN).await, 0);
}

async fn sign_in_error(response: ResponseTemplate) -> tokensmith::Error {
    let server = MockServer::start().await;
    mount_ps_auth_sign_in(&server, response).await;
    session(&server, &test_clock(), ps_auth())
        .access_token()
        .await
        .unwrap_err()
}

async fn token_error(response: ResponseTemplate) -> tokensmith::Error {
    let server = MockServer::start().await;
    mount_token(&server, response).await;
    session(&server, &test_clock(), oauth())
        .access_token()
        .await
        .unwrap_err()
}

#[tokio::test]
async fn every_documented_sign_in_error_maps_to_its_kind() {
    let cases = [
        (401, "Unauthorized", ErrorKind::InvalidCredentials),
        (403, "Access forbidden", ErrorKind::LicenceInvalid),
        (
            410,
            "API version has been disabled",
            ErrorKind::ApiVersionDisabled,
        ),
    ];
    for (status, message, kind) in cases {
        let err = sign_in_error(ResponseTemplate::new(status).set_body_json(json!(message))).await;
        assert_eq!(err.kind(), kind, "{status} {message}");
        assert_eq!(err.status(), Some(status));
        assert_eq!(err.message(), Some(message));
        assert_eq!(err.service(), Some(Service::PasswordSafe));
        let shown = err.to_string();
        assert!(
            shown.contains(message) && shown.contains(&status.to_string()),
            "{shown}"
        );
    }
}

#[tokio::test]
async fn sign_in_error_bodies_are_read_whatever_their_shape() {
    let object = sign_in_error(
        ResponseTemplate::new(403)
            .set_body_json(json!({"Message": "The Password Safe license is not valid."})),
    )
    .await;
    assert_eq!(object.kind(), ErrorKind::LicenceInvalid);
    assert_eq!(
        object.message(),
        Some("The Password Safe license is not valid.")
    );

    let text = sign_in_error(ResponseTemplate::new(401).set_body_string("Invalid API key")).await;
    assert_eq!(text.kind(), ErrorKind::InvalidCredentials);
    assert_eq!(text.status(), Some(401));
    assert_eq!(text.message(), Some("Invalid API key"));

    let empty = sign_in_error(ResponseTemplate::new(410)).await;
    assert_eq!(empty.kind(), ErrorKind::ApiVersionDisabled);
    assert_eq!(empty.message(), None);
}

#[tokio::test]
async fn every_documented_token_error_maps_to_its_kind() {
    let cases = [
        (
            400,
            json!({"error": "unsupported_grant_type"}),
            ErrorKind::InvalidRequest,
            "unsupported_grant_type",
            "unsupported_grant_type",
        ),
        (
            400,
            json!({"error": "invalid_request", "error_description": "client_id is missing"}),
            ErrorKind::InvalidRequest,
            "invalid_request",
            "client_id is missing",
        ),
        (
            400,
            json!({"error": "invalid_client"}),
            ErrorKind::InvalidCredentials,
            "invalid_client",
            "invalid_client",
        ),
        (
            401,
            json!({"error": "invalid_client", "error_description": "Unknown client"}),
            ErrorKind::InvalidCredentials,
            "invalid_client",
            "Unknown client",
        ),
    ];
    for (status, body, kind, code, message) in cases {
        let err = token_error(ResponseTemplate::new(status).set_body_json(body)).await;
        assert_eq!(
            (err.kind(), err.status(), err.code(), err.message()),
            (kind, Some(status), Some(code), Some(message))
        );
        assert_eq!(err.service(), Some(Service::PasswordSafe));
    }
}

#[tokio::test]
async fn a_licence_error_is_not_blocked_like_refused_credentials() {
    let server = MockServer::start().await;
    let clock = test_clock();
    mount_ps_auth_sign_in(
        &server,
        ResponseTemplate::new(403).set_body_json(json!("Access forbidden")),
    )
    .await;
    let session = session(&server, &clock, ps_auth());
    session.access_token().await.unwrap_err();
    session.access_token().await.unwrap_err();
    assert_eq!(
        count_requests(&server, SIGN_IN).await,
        2,
        "a fixed licence lets the next call in"
    );
}

/// An API-key sign-in that sets no cookie has nothing to carry the session: an error. The
/// answer is the one BeyondTrust's Go client records for an API-key sign-in (see
/// [`go_answer`]; `TestSignAppinWithApiKey`).
#[tokio::test]
async fn a_ps_auth_sign_in_without_a_session_cookie_is_an_unexpected_response() {
    for response in [
        ResponseTemplate::new(200).set_body_json(json!({"UserId": 12})),
        go_answer(GO_SIGN_IN),
    ] {
        let err = sign_in_error(response).await;
        assert_eq!(err.kind(), ErrorKind::UnexpectedResponse);
        assert_eq!(err.status(), Some(200));
        assert_eq!(
            err.message(),
            Some("Auth/SignAppin succeeded but set no session cookie")
        );
    }
}

/// BeyondTrust's own Go client library's recorded answers, byte for byte
/// (BeyondTrust/go-client-library-passwordsafe e1a4c56,
/// `api/authentication/authentication_test.go`, `TestGetPasswordSafeAuthentication`): a token,
/// then a sign-in that sets no cookie, which its client accepts.
const GO_TOKEN: &str = r#"{"access_token": "fake_token", "expires_in": 600, "token_type": "Bearer", "scope": "publicapi"}"#;
const GO_SIGN_IN: &str = r#"{"UserId":1, "EmailAddress":"test@beyondtrust.com"}"#;
const GO_BEARER: &str = "Bearer fake_token";

/// A 200 as that test's server sends it: it sets no header, so Go's net/http sniffs the body
/// and labels it `text/plain; charset=utf-8`.
fn go_answer(body: &'static str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body, "text/plain; charset=utf-8")
}

/// The Go client's answers, for the session built by [`session`] with [`oauth`].
async fn cookieless_server() -> MockServer {
    let server = MockServer::start().await;
    mount_token(&server, go_answer(GO_TOKEN)).await;
    mount_bearer_sign_in(&server, "fake_token", go_answer(GO_SIGN_IN)).await;
    server
}

/// Answers `status` to `GET ManagedAccounts` carrying `bearer` (and any cookie).
async fn mount_bearer_call(server: &MockServer, bearer: &str, status: u16) {
    Mock::given(method("GET"))
        .and(path(ACCOUNTS))
        .and(header("authorization", bearer))
        .respond_with(ResponseTemplate::new(status).set_body_json(json!([])))
        .mount(server)
        .await;
}

/// BeyondTrust documents that with bearer sign-in "cookies are still supported" (the bearer
/// alone authenticates), and its Go client accepts a sign-in that sets none: the session is
/// the bearer. `access_token` returns it, `headers`, `authorize` and `send` carry it alone.
#[tokio::test]
async fn an_oauth_sign_in_that_sets_no_cookie_is_a_session_carried_by_its_bearer() {
    let server = cookieless_server().await;
    mount_bearer_call(&server, GO_BEARER, 200).await;
    let clock = test_clock();
    let session = session(&server, &clock, oauth());

    let token = session.access_token().await.unwrap();
    assert_eq!(token.secret().expose_secret(), "fake_token");
    assert_eq!(
        token.expires_in(),
        Duration::from_secs(600),
        "the token's own"
    );
    assert_request(
        &requests_to(&server, SIGN_IN).await[0],
        &Expected {
            method: "POST",
            path: SIGN_IN,
            query: Some("version=3.1"),
            headers: &[("authorization", GO_BEARER)],
            body: Body::None,
        },
    );

    let headers = session.headers().await.unwrap();
    assert_eq!(headers.len(), 1, "{headers:?}");
    assert_eq!(headers["authorization"], GO_BEARER);
    assert!(headers["authorization"].is_sensitive());

    let authorized = session
        .authorize(reqwest::Client::new().get(format!("{}{ACCOUNTS}", server.uri())))
        .await
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(authorized.headers()["authorization"], GO_BEARER);
    assert!(authorized.headers().get("cookie").is_none());

    assert_eq!(call(&server, &session).await, 200);
    let sent = &requests_to(&server, ACCOUNTS).await[0];
    assert_eq!(header_of(sent, "authorization"), GO_BEARER);
    assert!(sent.headers.get("cookie").is_none(), "no cookie to send");
    assert_eq!(count_requests(&server, TOKEN).await, 1);
    assert_eq!(count_requests(&server, SIGN_IN).await, 1);
}

fn header_of<'a>(request: &'a Request, name: &str) -> &'a str {
    request.headers[name].to_str().unwrap()
}

/// A 401 to a call carrying the bearer alone retires it: `send` signs in again and retries
/// once; `refused` makes the next call sign in again, and an older bearer reported later does
/// not retire the new one.
#[tokio::test]
async fn a_cookieless_session_is_renewed_when_its_bearer_is_refused() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN))
        .respond_with(go_answer(GO_TOKEN))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_token(&server, token(BEARER_TWO, 600)).await;
    mount_bearer_sign_in(&server, "fake_token", go_answer(GO_SIGN_IN)).await;
    mount_bearer_sign_in(&server, BEARER_TWO, go_answer(GO_SIGN_IN)).await;
    mount_bearer_call(&server, GO_BEARER, 401).await;
    mount_bearer_call(&server, &format!("Bearer {BEARER_TWO}"), 200).await;
    let session = session(&server, &test_clock(), oauth());

    let stale = session.headers().await.unwrap();
    assert_eq!(call(&server, &session).await, 200);
    assert_eq!(count_requests(&server, ACCOUNTS).await, 2, "retried once");
    assert_eq!(count_requests(&server, TOKEN).await, 2);
    let current = session.access_token().await.unwrap();
    assert_eq!(current.secret().expose_secret(), BEARER_TWO);

    session.refused(&stale);
    assert_eq!(
        session
            .access_token()
            .await
            .unwrap()
            .secret()
            .expose_secret(),
        BEARER_TWO,
        "an older bearer's refusal retires nothing"
    );
    let headers = session.headers().await.unwrap();
    session.refused(&headers);
    session.access_token().await.unwrap();
    assert_eq!(count_requests(&server, TOKEN).await, 3, "a new sign-in");
    assert_eq!(count_requests(&server, SIGN_IN).await, 3);
}

/// Signing out a cookieless session sends its bearer alone, and drops it; so does a sign-out
/// through `api()`.
#[tokio::test]
async fn a_cookieless_session_signs_out_with_its_bearer() {
    let server = cookieless_server().await;
    Mock::given(method("POST"))
        .and(path(SIGN_OUT))
        .and(header("authorization", GO_BEARER))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let session = session(&server, &test_clock(), oauth());
    session.access_token().await.unwrap();

    session.logout().await.unwrap();
    assert_request(
        &requests_to(&server, SIGN_OUT).await[0],
        &Expected {
            method: "POST",
            path: SIGN_OUT,
            query: Some("version=3.1"),
            headers: &[("accept", "application/json"), ("authorization", GO_BEARER)],
            body: Body::None,
        },
    );
    assert!(requests_to(&server, SIGN_OUT).await[0]
        .headers
        .get("cookie")
        .is_none());
    session.access_token().await.unwrap();
    assert_eq!(
        count_requests(&server, SIGN_IN).await,
        2,
        "signed in afresh"
    );

    session.api().sign_out(None).await.unwrap();
    let second = &requests_to(&server, SIGN_OUT).await[1];
    assert_eq!(header_of(second, "authorization"), GO_BEARER);
    assert!(second.headers.get("cookie").is_none());
    session.access_token().await.unwrap();
    assert_eq!(
        count_requests(&server, SIGN_IN).await,
        3,
        "the sign-out through api() ended the session"
    );
}

#[tokio::test]
async fn undocumented_502_html_is_a_server_error_with_an_excerpt() {
    let err = sign_in_error(common::bad_gateway_html()).await;
    assert_eq!(err.kind(), ErrorKind::ServerError);
    assert_eq!(err.status(), Some(502));
    assert!(err.message().unwrap().contains("502 Bad Gateway"));
}

#[tokio::test]
async fn sign_out_ends_the_session_and_the_next_call_signs_in_again() {
    let server = MockServer::start().await;
    let clock = test_clock();
    mount_token(&server, token(BEARER_ONE, 3600)).await;
    mount_bearer_sign_in(&server, BEARER_ONE, signed_in("one")).await;
    mount_sign_out(&server, "one", 200).await;
    let session = session(&server, &clock, oauth());

    session.logout().await.unwrap();
    assert_eq!(
        count_requests(&server, SIGN_OUT).await,
        0,
        "no session, nothing to end"
    );
    session.access_token().await.unwrap();
    session.logout().await.unwrap();
    let bearer = format!("Bearer {BEARER_ONE}");
    assert_request(
        &requests_to(&server, SIGN_OUT).await[0],
        &Expected {
            method: "POST",
            path: SIGN_OUT,
            query: Some("version=3.1"),
            headers: &[
                ("accept", "application/json"),
                ("cookie", &cookie("one")),
                ("authorization", &bearer),
            ],
            body: Body::None,
        },
    );
    session.logout().await.unwrap();
    assert_eq!(
        count_requests(&server, SIGN_OUT).await,
        1,
        "signed out once"
    );
    session.access_token().await.unwrap();
    assert_eq!(count_requests(&server, SIGN_IN).await, 2);
}

#[tokio::test]
async fn sign_out_of_a_session_the_server_closed_is_token_rejected_and_drops_it() {
    let server = MockServer::start().await;
    let clock = test_clock();
    mount_ps_auth_sign_in(&server, signed_in("one")).await;
    mount_sign_out(&server, "one", 401).await;
    let session = session(&server, &clock, ps_auth());
    session.access_token().await.unwrap();

    let err = session.logout().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TokenRejected);
    assert_eq!(err.status(), Some(401));
    assert_eq!(err.message(), Some("Unauthorized"));
    session.access_token().await.unwrap();
    assert_eq!(count_requests(&server, SIGN_IN).await, 2);
}

#[tokio::test]
async fn a_failed_sign_out_keeps_the_session() {
    let server = MockServer::start().await;
    let clock = test_clock();
    mount_ps_auth_sign_in(&server, signed_in("one")).await;
    Mock::given(method("POST"))
        .and(path(SIGN_OUT))
        .respond_with(common::bad_gateway_html())
        .mount(&server)
        .await;
    let session = session(&server, &clock, ps_auth());
    session.access_token().await.unwrap();

    let err = session.logout().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ServerError);
    assert_eq!(
        session
            .access_token()
            .await
            .unwrap()
            .secret()
            .expose_secret(),
        cookie("one")
    );
    assert_eq!(count_requests(&server, SIGN_IN).await, 1);
}

#[tokio::test]
async fn authorize_adds_the_cookie_and_bearer_to_any_request() {
    let server = MockServer::start().await;
    let clock = test_clock();
    mount_token(&server, token(BEARER_ONE, 3600)).await;
    mount_bearer_sign_in(&server, BEARER_ONE, signed_in("any")).await;
    let session = session(&server, &clock, oauth());
    let request = session
        .authorize(reqwest::Client::new().get(format!("{}/ManagedAccounts", server.uri())))
        .await
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(request.headers()["cookie"], cookie("any").as_str());
    assert!(request.headers()["cookie"].is_sensitive());
    assert_eq!(
        request.headers()["authorization"],
        format!("Bearer {BEARER_ONE}").as_str()
    );
    assert!(request.headers()["authorization"].is_sensitive());
}

#[test]
fn bad_configuration_is_refused_at_build_time() {
    let good = "https://pws.example.com/BeyondTrust/api/public/v3";
    let build = |base: Option<&str>, credentials: Option<Credentials>, version: Option<&str>| {
        let mut builder = Session::builder();
        if let Some(base) = base {
            builder = builder.base_url(base);
        }
        if let Some(credentials) = credentials {
            builder = credentials(builder);
        }
        if let Some(version) = version {
            builder = builder.api_version(version);
        }
        builder.build()
    };
    for (base, credentials, version) in [
        (None, Some(ps_auth()), None),
        (Some(good), None, None),
        (Some("not a url"), Some(ps_auth()), None),
        (Some("http://pws.example.com"), Some(ps_auth()), None),
        (Some(good), Some(ps_auth()), Some("4.0")),
        (
            Some(good),
            Some(|b: SessionBuilder| b.ps_auth("", RUNAS, None)),
            None,
        ),
        (
            Some(good),
            Some(|b: SessionBuilder| b.ps_auth(API_KEY, " ", None)),
            None,
        ),
        (
            Some(good),
            Some(|b: SessionBuilder| b.ps_auth(API_KEY, RUNAS, Some("".into()))),
            None,
        ),
        (
            Some(good),
            Some(|b: SessionBuilder| b.ps_auth("key;runas=admin", RUNAS, None)),
            None,
        ),
        (
            Some(good),
            Some(|b: SessionBuilder| b.oauth("", CLIENT_SECRET)),
            None,
        ),
        (
            Some(good),
            Some(|b: SessionBuilder| b.oauth(CLIENT_ID, "")),
            None,
        ),
    ] {
        let err = build(base, credentials, version).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Configuration, "{base:?}: {err}");
    }
    assert!(build(Some(good), Some(oauth()), Some("3.2")).is_ok());
    assert!(
        build(Some("http://127.0.0.1:8080"), Some(ps_auth()), None).is_ok(),
        "loopback http is a sandbox"
    );
    let session = ps_auth()(Session::builder().host("pws.example.com:8443"))
        .build()
        .unwrap();
    assert!(
        format!("{session:?}").contains("https://pws.example.com:8443/BeyondTrust/api/public/v3"),
        "host() makes the documented base URL"
    );
}

#[tokio::test]
async fn nothing_prints_a_secret() {
    let server = MockServer::start().await;
    let clock = test_clock();
    mount_token(&server, token(BEARER_ONE, 3600)).await;
    mount_bearer_sign_in(&server, BEARER_ONE, signed_in("cookie-value-secret")).await;
    let session = session(&server, &clock, oauth());
    let access = session.access_token().await.unwrap();
    let builder = ps_auth()(Session::builder().base_url(server.uri()));
    let printed = format!(
        "{session:?} {access:?} {:?} {builder:?}",
        oauth()(Session::builder()),
    );
    for secret in [
        API_KEY,
        PASSWORD,
        CLIENT_SECRET,
        BEARER_ONE,
        "cookie-value-secret",
    ] {
        assert!(!printed.contains(secret), "{secret} leaked in {printed}");
    }
    assert!(printed.contains(RUNAS.split('\\').next_back().unwrap()));
}
