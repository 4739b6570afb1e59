//! The accounts session: login, renewal by refresh token (kept, 90 uses at most), a new login
//! when it is refused or spent, the NEW_PASSWORD_REQUIRED challenge, the password flows,
//! logout by revocation, and typed errors. Time is driven by a test clock.
#![cfg(feature = "accounts")]

mod common;

use std::time::Duration;

use common::{
    assert_request, count_requests, jwt, single_request, test_clock, Body, Expected, START_EPOCH,
};
use serde_json::json;
use tokensmith::accounts::Session;
use tokensmith::clock::ManualClock;
use tokensmith::{ErrorKind, RefreshPolicy, Service, TokenOrigin};
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const DAY: u64 = 24 * 60 * 60;
const PASSWORD: &str = "pw-Horse-Battery";
const LOGIN: &str = "/v1/login";
const REFRESH: &str = "/v1/token-refresh";

fn session(server: &MockServer, clock: &ManualClock) -> Session {
    Session::builder()
        .base_url(server.uri())
        .username("Admin")
        .password(PASSWORD)
        .clock(clock.clone())
        .refresh_policy(RefreshPolicy::new().with_jitter(false))
        .build()
        .unwrap()
}

fn access(tag: &str, at: u64) -> String {
    jwt(START_EPOCH + at + DAY, &format!("access-{tag}"))
}

fn refresh_token(tag: &str) -> String {
    format!("refresh-{tag}-opaque")
}

fn tokens(tag: &str, at: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id_token": format!("id-{tag}"),
        "access_token": access(tag, at),
        "refresh_token": refresh_token(tag),
        "expires_in": DAY,
    }))
}

fn refreshed(tag: &str, at: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id_token": format!("id-{tag}"),
        "access_token": access(tag, at),
        "expires_in": DAY,
    }))
}

fn error(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"status": status, "message": message}))
}

async fn mount(server: &MockServer, route: &str, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(route))
        .respond_with(response)
        .mount(server)
        .await;
}

async fn requests_to(server: &MockServer, route: &str) -> Vec<wiremock::Request> {
    let all = server.received_requests().await.expect("recording is on");
    all.into_iter().filter(|r| r.url.path() == route).collect()
}

async fn mount_once(server: &MockServer, route: &str, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(route))
        .respond_with(response)
        .up_to_n_times(1)
        .mount(server)
        .await;
}

#[tokio::test]
async fn first_call_logs_in_with_the_lowercased_username_and_then_serves_the_cache() {
    let server = MockServer::start().await;
    mount(&server, LOGIN, tokens("one", 0)).await;
    let session = session(&server, &test_clock());
    assert!(session.username_was_lowercased());
    assert_eq!(session.username(), "admin");

    let token = session.access_token().await.unwrap();
    session.access_token().await.unwrap();

    assert_eq!(token.secret().expose_secret(), access("one", 0));
    assert_eq!(token.expires_in(), Duration::from_secs(DAY));
    assert_eq!(token.origin(), TokenOrigin::Login);
    assert_eq!(session.id_token().await.unwrap().expose_secret(), "id-one");
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    assert_request(
        &requests[0],
        &Expected {
            method: "POST",
            path: LOGIN,
            query: None,
            headers: &[("accept", "application/json")],
            body: Body::Json(json!({"username": "admin", "password": PASSWORD})),
        },
    );
}

#[tokio::test]
async fn renewal_uses_the_refresh_token_and_keeps_it() {
    let server = MockServer::start().await;
    let clock = test_clock();
    mount(&server, LOGIN, tokens("one", 0)).await;
    Mock::given(method("POST"))
        .and(path(REFRESH))
        .and(body_json(
            json!({"username": "admin", "refresh_token": refresh_token("one")}),
        ))
        .respond_with(refreshed("two", DAY - 60))
        .mount(&server)
        .await;
    let session = session(&server, &clock);
    session.access_token().await.unwrap();

    clock.advance(Duration::from_secs(DAY - 60));
    let token = session.access_token().await.unwrap();

    assert_eq!(token.secret().expose_secret(), access("two", DAY - 60));
    assert_eq!(token.origin(), TokenOrigin::Refresh);
    assert_eq!(session.id_token().await.unwrap().expose_secret(), "id-two");
    clock.advance(Duration::from_secs(DAY - 60));
    session.access_token().await.unwrap();
    assert_eq!(
        count_requests(&server, REFRESH).await,
        2,
        "the same refresh token again"
    );
    assert_eq!(count_requests(&server, LOGIN).await, 1);
    let refresh = &server.received_requests().await.unwrap()[1];
    assert_request(
        refresh,
        &Expected {
            method: "POST",
            path: REFRESH,
            query: None,
            headers: &[("accept", "application/json")],
            body: Body::Json(json!({"username": "admin", "refresh_token": refresh_token("one")})),
        },
    );
}

#[tokio::test]
async fn a_refresh_token_serves_90_refreshes_then_the_session_logs_in() {
    // Ten-minute access tokens: 90 refreshes take 15 hours, far inside the refresh token's 90
    // days, so only the use limit can end it.
    const LIFETIME: u64 = 600;
    const { assert!(91 * LIFETIME < 90 * DAY) };
    let opaque = |access: &str, refresh: Option<&str>| {
        let mut body = json!({"id_token": "id-x", "access_token": access, "expires_in": LIFETIME});
        if let Some(refresh) = refresh {
            body["refresh_token"] = json!(refresh);
        }
        ResponseTemplate::new(200).set_body_json(body)
    };
    let server = MockServer::start().await;
    let clock = test_clock();
    mount_once(&server, LOGIN, opaque("access-login-1", Some("refresh-1"))).await;
    mount_once(&server, LOGIN, opaque("access-login-2", Some("refresh-2"))).await;
    let refreshes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    Mock::given(method("POST"))
        .and(path(REFRESH))
        .respond_with({
            let refreshes = refreshes.clone();
            move |_: &wiremock::Request| {
                let n = refreshes.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                opaque(&format!("access-refresh-{n}"), None)
            }
        })
        .mount(&server)
        .await;
    let session = session(&server, &clock);
    session.access_token().await.unwrap();

    for n in 1..=90 {
        clock.advance(Duration::from_secs(LIFETIME));
        let token = session.access_token().await.unwrap();
        assert_eq!(token.origin(), TokenOrigin::Refresh, "renewal {n}");
        assert_eq!(
            token.secret().expose_secret(),
            format!("access-refresh-{n}")
        );
    }
    clock.advance(Duration::from_secs(LIFETIME));
    let token = session.access_token().await.unwrap();

    assert_eq!(
        token.origin(),
        TokenOrigin::Login,
        "the 91st renewal logs in"
    );
    assert_eq!(token.secret().expose_secret(), "access-login-2");
    assert_eq!(
        count_requests(&server, REFRESH).await,
        90,
        "no 91st refresh"
    );
    assert_eq!(count_requests(&server, LOGIN).await, 2);
    let requests = server.received_requests().await.unwrap();
    for refresh in requests.iter().filter(|r| r.url.path() == REFRESH) {
        assert_request(
            refresh,
            &Expected {
                method: "POST",
                path: REFRESH,
                query: None,
                headers: &[("accept", "application/json")],
                body: Body::Json(json!({"username": "admin", "refresh_token": "refresh-1"})),
            },
        );
    }
    // The new refresh token starts afresh.
    clock.advance(Duration::from_secs(LIFETIME));
    let token = session.access_token().await.unwrap();
    assert_eq!(token.secret().expose_secret(), "access-refresh-91");
    let last = server.received_requests().await.unwrap().pop().unwrap();
    assert_request(
        &last,
        &Expected {
            method: "POST",
            path: REFRESH,
            query: None,
            headers: &[("accept", "application/json")],
            body: Body::Json(json!({"username": "admin", "refresh_token": "refresh-2"})),
        },
    );
}

#[tokio::test]
async fn a_spent_or_refused_refresh_token_leads_to_a_new_login() {
    for (status, message) in [
        (429, "Refresh tokens limit has been exceeded."),
        (403, "Refresh tokens limit has been exceeded."),
        (403, "Forbidden"),
        (401, "Unauthorized."),
    ] {
        let server = MockServer::start().await;
        let clock = test_clock();
        mount_once(&server, LOGIN, tokens("one", 0)).await;
        mount(&server, LOGIN, tokens("two", DAY)).await;
        mount(&server, REFRESH, error(status, message)).await;
        let session = session(&server, &clock);
        session.access_token().await.unwrap();
        clock.advance(Duration::from_secs(DAY));

        let token = session.access_token().await.unwrap();

        assert_eq!(
            token.secret().expose_secret(),
            access("two", DAY),
            "{status}"
        );
        assert_eq!(count_requests(&server, REFRESH).await, 1, "{status}");
        assert_eq!(count_requests(&server, LOGIN).await, 2, "{status}");
    }
}

#[tokio::test]
async fn a_403_on_refresh_leads_to_a_fresh_login_and_the_spent_token_is_not_sent_again() {
    let server = MockServer::start().await;
    let clock = test_clock();
    mount_once(&server, LOGIN, tokens("one", 0)).await;
    mount(&server, LOGIN, tokens("two", DAY)).await;
    Mock::given(method("POST"))
        .and(path(REFRESH))
        .and(body_json(
            json!({"username": "admin", "refresh_token": refresh_token("one")}),
        ))
        .respond_with(error(403, "Refresh tokens limit has been exceeded."))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(REFRESH))
        .and(body_json(
            json!({"username": "admin", "refresh_token": refresh_token("two")}),
        ))
        .respond_with(refreshed("three", 2 * DAY))
        .mount(&server)
        .await;
    let session = session(&server, &clock);
    session.access_token().await.unwrap();

    clock.advance(Duration::from_secs(DAY));
    let token = session.access_token().await.unwrap();

    assert_eq!(token.secret().expose_secret(), access("two", DAY));
    assert_eq!(token.origin(), TokenOrigin::Login);
    let requests = server.received_requests().await.unwrap();
    let paths: Vec<_> = requests.iter().map(|r| r.url.path()).collect();
    assert_eq!(paths, [LOGIN, REFRESH, LOGIN]);
    assert_request(
        &requests[1],
        &Expected {
            method: "POST",
            path: REFRESH,
            query: None,
            headers: &[("accept", "application/json")],
            body: Body::Json(json!({"username": "admin", "refresh_token": refresh_token("one")})),
        },
    );
    assert_request(
        &requests[2],
        &Expected {
            method: "POST",
            path: LOGIN,
            query: None,
            headers: &[("accept", "application/json")],
            body: Body::Json(json!({"username": "admin", "password": PASSWORD})),
        },
    );

    clock.advance(Duration::from_secs(DAY));
    let token = session.access_token().await.unwrap();
    assert_eq!(token.secret().expose_secret(), access("three", 2 * DAY));
    assert_eq!(token.origin(), TokenOrigin::Refresh);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 4);
    assert_request(
        &requests[3],
        &Expected {
            method: "POST",
            path: REFRESH,
            query: None,
            headers: &[("accept", "application/json")],
            body: Body::Json(json!({"username": "admin", "refresh_token": refresh_token("two")})),
        },
    );
}

#[tokio::test]
async fn refresh_errors_map_to_their_kinds() {
    for (status, message, kind) in [
        (
            429,
            "Refresh tokens limit has been exceeded.",
            ErrorKind::RefreshLimitExceeded,
        ),
        (
            403,
            "Refresh tokens limit has been exceeded.",
            ErrorKind::RefreshLimitExceeded,
        ),
        (401, "Unauthorized.", ErrorKind::TokenRejected),
        (
            422,
            "Key: 'Model.RefreshToken' Error",
            ErrorKind::InvalidRequest,
        ),
        (
            500,
            "Internal error, please try again later.",
            ErrorKind::ServerError,
        ),
    ] {
        let server = MockServer::start().await;
        mount(&server, REFRESH, error(status, message)).await;
        // The kinds as the session sees them: through a session whose login succeeds and
        // whose refresh fails, with the old token expired so nothing can be served.
        let clock = test_clock();
        mount_once(&server, LOGIN, tokens("one", 0)).await;
        mount(
            &server,
            LOGIN,
            error(401, "Incorrect username or password."),
        )
        .await;
        let session = session(&server, &clock);
        session.access_token().await.unwrap();
        clock.advance(Duration::from_secs(DAY + 1));
        let error = session.access_token().await.unwrap_err();
        if matches!(
            kind,
            ErrorKind::RefreshLimitExceeded | ErrorKind::TokenRejected
        ) {
            // Refused refresh tokens lead to a login, refused here.
            assert_eq!(error.kind(), ErrorKind::InvalidCredentials, "{status}");
        } else {
            assert_eq!(error.kind(), kind, "{status}");
            assert_eq!(error.status(), Some(status));
            assert_eq!(error.message(), Some(message));
            assert_eq!(error.service(), Some(Service::Accounts));
        }
    }
}

#[tokio::test]
async fn login_errors_map_to_their_kinds_and_refused_credentials_are_sent_once() {
    for (status, message, kind) in [
        (
            401,
            "Incorrect username or password.",
            ErrorKind::InvalidCredentials,
        ),
        (
            422,
            "Key: 'Model.Password' Error:Field validation",
            ErrorKind::InvalidRequest,
        ),
        (
            500,
            "Internal error, please try again later.",
            ErrorKind::ServerError,
        ),
    ] {
        let server = MockServer::start().await;
        mount(&server, LOGIN, error(status, message)).await;
        let clock = test_clock();
        let session = session(&server, &clock);
        let first = session.access_token().await.unwrap_err();
        assert_eq!(first.kind(), kind);
        assert_eq!(first.status(), Some(status));
        assert_eq!(first.message(), Some(message));
        assert_eq!(first.service(), Some(Service::Accounts));
        // At once, nothing is sent: a refused login is never sent again, and a server
        // error waits out its backoff (at most 1 s after the first).
        let second = session.access_token().await.unwrap_err();
        assert_eq!(second.kind(), kind);
        assert_eq!(count_requests(&server, LOGIN).await, 1, "{status}");
        clock.advance(Duration::from_secs(1));
        let third = session.access_token().await.unwrap_err();
        let expected_logins = if kind == ErrorKind::ServerError { 2 } else { 1 };
        assert_eq!(third.kind(), kind);
        assert_eq!(
            count_requests(&server, LOGIN).await,
            expected_logins,
            "{status}"
        );
    }
    let server = MockServer::start().await;
    mount(&server, LOGIN, common::bad_gateway_html()).await;
    let session = Session::builder()
        .base_url(server.uri())
        .username("admin")
        .password(PASSWORD)
        .retry_policy(tokensmith::RetryPolicy::none())
        .build()
        .unwrap();
    let error = session.access_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ServerError);
    assert_eq!(error.status(), Some(502));
}

#[tokio::test]
async fn a_new_password_challenge_is_an_error_carrying_its_session_and_can_be_completed() {
    let server = MockServer::start().await;
    mount(
        &server,
        LOGIN,
        ResponseTemplate::new(200).set_body_json(
            json!({"challenge_name": "NEW_PASSWORD_REQUIRED", "session": "challenge-session-1"}),
        ),
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/v1/new-password-required"))
        .and(body_json(json!({
            "session": "challenge-session-1", "username": "admin", "new_password": "new-Pw-2"
        })))
        .respond_with(tokens("new", 0))
        .mount(&server)
        .await;
    let session = session(&server, &test_clock());

    let error = session.access_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NewPasswordRequired);
    assert_eq!(error.code(), Some("NEW_PASSWORD_REQUIRED"));
    let challenge = error.challenge_session().unwrap().clone();
    assert_eq!(challenge.expose_secret(), "challenge-session-1");
    assert!(!format!("{error} {error:?}").contains("challenge-session-1"));
    assert_eq!(
        session.access_token().await.unwrap_err().kind(),
        ErrorKind::NewPasswordRequired,
        "not sent again"
    );
    assert_eq!(count_requests(&server, LOGIN).await, 1);

    let token = session
        .complete_new_password(&challenge, "new-Pw-2")
        .await
        .unwrap();
    assert_eq!(token.secret().expose_secret(), access("new", 0));
    assert_eq!(
        session
            .access_token()
            .await
            .unwrap()
            .secret()
            .expose_secret(),
        access("new", 0)
    );
    assert_eq!(
        count_requests(&server, LOGIN).await,
        1,
        "the completion logged in"
    );
}

#[tokio::test]
async fn password_flows_send_what_the_service_documents_and_later_logins_use_the_new_one() {
    let server = MockServer::start().await;
    let clock = test_clock();
    Mock::given(method("POST"))
        .and(path(LOGIN))
        .and(body_json(
            json!({"username": "admin", "password": PASSWORD}),
        ))
        .respond_with(tokens("one", 0))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(LOGIN))
        .and(body_json(
            json!({"username": "admin", "password": "changed-Pw-3"}),
        ))
        .respond_with(tokens("two", DAY))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(LOGIN))
        .and(body_json(
            json!({"username": "admin", "password": "reset-Pw-4"}),
        ))
        .respond_with(tokens("three", 2 * DAY))
        .mount(&server)
        .await;
    mount(&server, "/v1/change-password", ResponseTemplate::new(204)).await;
    mount(&server, "/v1/forgot-password", ResponseTemplate::new(204)).await;
    mount(
        &server,
        "/v1/forgot-password-confirm",
        ResponseTemplate::new(204),
    )
    .await;
    mount(&server, REFRESH, error(401, "Unauthorized.")).await;
    let session = session(&server, &clock);

    session
        .change_password(PASSWORD, "changed-Pw-3")
        .await
        .unwrap();
    let change = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.url.path() == "/v1/change-password")
        .unwrap();
    assert_request(
        &change,
        &Expected {
            method: "POST",
            path: "/v1/change-password",
            query: None,
            headers: &[],
            body: Body::Json(json!({
                "access_token": access("one", 0),
                "previous_password": PASSWORD,
                "proposed_password": "changed-Pw-3",
            })),
        },
    );
    clock.advance(Duration::from_secs(DAY));
    assert_eq!(
        session
            .access_token()
            .await
            .unwrap()
            .secret()
            .expose_secret(),
        access("two", DAY),
        "the next login used the changed password"
    );

    session.forgot_password().await.unwrap();
    session
        .confirm_forgot_password("6MadrbRF", "reset-Pw-4")
        .await
        .unwrap();
    let requests = server.received_requests().await.unwrap();
    let find = |p: &str| requests.iter().find(|r| r.url.path() == p).unwrap().clone();
    assert_request(
        &find("/v1/forgot-password"),
        &Expected {
            method: "POST",
            path: "/v1/forgot-password",
            query: None,
            headers: &[],
            body: Body::Json(json!({"username": "admin"})),
        },
    );
    assert_request(
        &find("/v1/forgot-password-confirm"),
        &Expected {
            method: "POST",
            path: "/v1/forgot-password-confirm",
            query: None,
            headers: &[],
            body: Body::Json(json!({
                "username": "admin", "password": "reset-Pw-4", "confirmation_code": "6MadrbRF"
            })),
        },
    );
    clock.advance(Duration::from_secs(DAY));
    assert_eq!(
        session
            .access_token()
            .await
            .unwrap()
            .secret()
            .expose_secret(),
        access("three", 2 * DAY)
    );
}

#[tokio::test]
async fn logout_revokes_the_refresh_token_and_wipes_the_session() {
    let server = MockServer::start().await;
    mount(&server, LOGIN, tokens("one", 0)).await;
    mount(&server, "/v1/token-revoke", ResponseTemplate::new(204)).await;
    let session = session(&server, &test_clock());
    session.access_token().await.unwrap();

    session.logout().await.unwrap();

    let revoke = server.received_requests().await.unwrap()[1].clone();
    assert_request(
        &revoke,
        &Expected {
            method: "POST",
            path: "/v1/token-revoke",
            query: None,
            headers: &[],
            body: Body::Json(json!({"refresh_token": refresh_token("one")})),
        },
    );
    session.access_token().await.unwrap();
    assert_eq!(count_requests(&server, LOGIN).await, 2, "logged in afresh");
    let server = MockServer::start().await;
    session_without_token_logs_out_quietly(&server).await;
}

async fn session_without_token_logs_out_quietly(server: &MockServer) {
    let session = session(server, &test_clock());
    session.logout().await.unwrap();
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn many_concurrent_callers_share_one_login_and_a_cancelled_one_stalls_none() {
    let server = MockServer::start().await;
    mount(
        &server,
        LOGIN,
        tokens("one", 0).set_delay(Duration::from_millis(200)),
    )
    .await;
    let session = session(&server, &test_clock());
    common::assert_all_callers_share_one_token(&session, 1000).await;
    assert_eq!(count_requests(&server, LOGIN).await, 1);

    let server = MockServer::start().await;
    mount(
        &server,
        LOGIN,
        tokens("two", 0).set_delay(Duration::from_millis(300)),
    )
    .await;
    let session = self::session(&server, &test_clock());
    common::assert_cancelled_waiter_does_not_stall(&session).await;
}

#[tokio::test]
async fn a_401_on_an_api_call_renews_once_and_retries_once() {
    let server = MockServer::start().await;
    mount_once(&server, LOGIN, tokens("one", 0)).await;
    mount(&server, LOGIN, tokens("two", 0)).await;
    mount(&server, REFRESH, error(401, "Unauthorized.")).await;
    mount_once(&server, "/v1/forgot-password", error(401, "expired")).await;
    mount(&server, "/v1/forgot-password", ResponseTemplate::new(204)).await;
    let session = session(&server, &test_clock());
    session.access_token().await.unwrap();

    let response = session
        .api()
        .forgot_password(&tokensmith::accounts::types::ForgotPasswordRequest {
            username: "admin".into(),
        })
        .await
        .unwrap();

    assert_eq!(response.status(), 204);
    let calls: Vec<_> = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == "/v1/forgot-password")
        .collect();
    assert_eq!(calls.len(), 2, "retried once");
    assert_eq!(
        common::header(&calls[1], "authorization"),
        format!("Bearer {}", access("two", 0)),
        "with the renewed token"
    );
}

#[tokio::test]
async fn nothing_prints_a_secret() {
    let server = MockServer::start().await;
    mount(&server, LOGIN, tokens("one", 0)).await;
    let builder = Session::builder()
        .base_url(server.uri())
        .username("admin")
        .password(PASSWORD);
    let builder_printed = format!("{builder:?}");
    let session = builder.build().unwrap();
    let token = session.access_token().await.unwrap();
    let printed = format!("{builder_printed} {session:?} {token:?}");
    for secret in [
        PASSWORD.to_owned(),
        access("one", 0),
        refresh_token("one"),
        "id-one".into(),
    ] {
        assert!(!printed.contains(&secret), "{secret} in {printed}");
    }
    assert!(
        Session::builder().username("a").build().is_err(),
        "a password is required"
    );
    assert!(Session::builder().password("p").build().is_err());
}

#[tokio::test]
async fn a_200_with_neither_tokens_nor_a_challenge_is_a_decode_error_quoting_nothing() {
    let server = MockServer::start().await;
    mount(
        &server,
        LOGIN,
        ResponseTemplate::new(200).set_body_json(json!({
            "access_token": null, "id_token": "id-secret-xyz", "refresh_token": "refresh-secret-xyz"
        })),
    )
    .await;
    let error = session(&server, &test_clock())
        .access_token()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Decode);
    assert_eq!(error.status(), Some(200));
    assert_eq!(
        error.message(),
        Some("the login answered neither tokens nor a challenge")
    );
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("secret-xyz"), "{shown}");
}

#[tokio::test]
async fn a_login_answering_another_challenge_is_a_typed_error_naming_it() {
    for name in ["SMS_MFA", "SOFTWARE_TOKEN_MFA"] {
        let server = MockServer::start().await;
        mount(
            &server,
            LOGIN,
            ResponseTemplate::new(200)
                .set_body_json(json!({"challenge_name": name, "session": "mfa-session-secret-1"})),
        )
        .await;
        let session = session(&server, &test_clock());

        let error = session.access_token().await.unwrap_err();

        assert_eq!(error.kind(), ErrorKind::UnsupportedChallenge, "{name}");
        assert_eq!(error.service(), Some(Service::Accounts));
        assert_eq!(error.status(), Some(200));
        assert_eq!(error.code(), Some(name));
        let expected =
            format!("login answered with challenge {name}, which this SDK does not support");
        assert_eq!(error.message(), Some(expected.as_str()));
        assert!(
            error.challenge_session().is_none(),
            "nothing could answer it"
        );
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains("mfa-session-secret-1"), "{shown}");
        assert!(!shown.contains(PASSWORD), "{shown}");
        assert_request(
            &single_request(&server).await,
            &Expected {
                method: "POST",
                path: LOGIN,
                query: None,
                headers: &[("accept", "application/json")],
                body: Body::Json(json!({"username": "admin", "password": PASSWORD})),
            },
        );
        let again = session.access_token().await.unwrap_err();
        assert_eq!(again.kind(), ErrorKind::UnsupportedChallenge);
        assert_eq!(
            count_requests(&server, LOGIN).await,
            1,
            "the login is not sent again: it would start the same challenge (another SMS)"
        );
    }
}

#[tokio::test]
async fn a_challenge_name_that_is_not_a_name_is_not_quoted() {
    let server = MockServer::start().await;
    mount(
        &server,
        LOGIN,
        ResponseTemplate::new(200).set_body_json(
            json!({"challenge_name": "eyJhbGciOi.secret-looking", "session": "s-1"}),
        ),
    )
    .await;
    let error = session(&server, &test_clock())
        .access_token()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UnsupportedChallenge);
    assert_eq!(error.status(), Some(200));
    assert_eq!(error.code(), None);
    assert_eq!(
        error.message(),
        Some("login answered with a challenge this SDK does not support")
    );
    assert!(!format!("{error} {error:?}").contains("secret-looking"));
}

#[tokio::test]
async fn a_500_completing_the_new_password_is_a_server_error_and_the_password_is_unchanged() {
    // The service answers only a token set; a further Cognito challenge is a 500 like any
    // failure, so whether it took the new password is unknown.
    let server = MockServer::start().await;
    let clock = test_clock();
    Mock::given(method("POST"))
        .and(path(LOGIN))
        .and(body_json(
            json!({"username": "admin", "password": PASSWORD}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"challenge_name": "NEW_PASSWORD_REQUIRED", "session": "challenge-session-1"}),
        ))
        .mount(&server)
        .await;
    mount(
        &server,
        "/v1/new-password-required",
        error(500, "Internal error, please try again later."),
    )
    .await;
    let session = session(&server, &clock);
    let challenge = session
        .access_token()
        .await
        .unwrap_err()
        .challenge_session()
        .unwrap()
        .clone();

    let error = session
        .complete_new_password(&challenge, "new-Pw-2")
        .await
        .unwrap_err();

    assert_eq!(error.kind(), ErrorKind::ServerError);
    assert_eq!(error.service(), Some(Service::Accounts));
    assert_eq!(error.status(), Some(500));
    assert_eq!(
        error.message(),
        Some("Internal error, please try again later.")
    );
    let shown = format!("{error} {error:?}");
    for secret in ["challenge-session-1", "new-Pw-2"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    assert_request(
        &requests[1],
        &Expected {
            method: "POST",
            path: "/v1/new-password-required",
            query: None,
            headers: &[("accept", "application/json")],
            body: Body::Json(json!({
                "session": "challenge-session-1", "username": "admin", "new_password": "new-Pw-2"
            })),
        },
    );
    // Once the challenge has lapsed, the next login still sends the old password.
    clock.advance(Duration::from_secs(181));
    let again = session.access_token().await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::NewPasswordRequired);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3);
    assert_request(
        &requests[2],
        &Expected {
            method: "POST",
            path: LOGIN,
            query: None,
            headers: &[("content-type", "application/json")],
            body: Body::Json(json!({"username": "admin", "password": PASSWORD})),
        },
    );
}

const LENGTH_ERROR: fn(&str, usize) -> String = |what, min| bounds_error(what, min, 255);

fn bounds_error(what: &str, min: usize, max: usize) -> String {
    format!("{what} must be {min} to {max} characters, as the service requires")
}

#[test]
fn usernames_and_passwords_outside_1_to_255_characters_are_refused_at_build_time() {
    let build = |username: &str, password: &str| {
        Session::builder()
            .username(username)
            .password(password)
            .build()
    };
    let long = "é".repeat(256);
    for (username, password, what) in [
        (long.as_str(), PASSWORD, "the username"),
        ("admin", long.as_str(), "the password"),
    ] {
        let err = build(username, password).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Configuration);
        assert_eq!(err.service(), Some(Service::Accounts));
        assert_eq!(err.message(), Some(LENGTH_ERROR(what, 1).as_str()));
    }
    // 255 characters (510 bytes) is within the limit: characters are counted, not bytes.
    let longest = "é".repeat(255);
    assert!(build(&longest, &longest).is_ok());
}

#[tokio::test]
async fn out_of_range_passwords_are_refused_before_any_request() {
    let server = MockServer::start().await;
    mount(&server, LOGIN, tokens("1", 0)).await;
    let session = session(&server, &test_clock());
    let challenge = tokensmith::SecretString::new("challenge-session-1");

    let short = session
        .complete_new_password(&challenge, "5char")
        .await
        .unwrap_err();
    assert_eq!(short.kind(), ErrorKind::Configuration);
    assert_eq!(
        short.message(),
        Some(LENGTH_ERROR("the new password", 6).as_str())
    );
    assert!(!format!("{short} {short:?}").contains("5char"));

    let long = "x".repeat(256);
    let proposed = session
        .change_password(PASSWORD, "x".repeat(257))
        .await
        .unwrap_err();
    assert_eq!(proposed.kind(), ErrorKind::Configuration);
    assert_eq!(
        proposed.message(),
        Some(bounds_error("the proposed password", 6, 256).as_str())
    );
    let previous = session.change_password("", "new-Pw-2").await.unwrap_err();
    assert_eq!(
        previous.message(),
        Some(bounds_error("the previous password", 6, 256).as_str())
    );
    let confirm = session
        .confirm_forgot_password("6MadrbRF", long.as_str())
        .await
        .unwrap_err();
    assert_eq!(
        confirm.message(),
        Some(LENGTH_ERROR("the new password", 1).as_str())
    );

    assert_eq!(
        server.received_requests().await.unwrap().len(),
        0,
        "not even a login"
    );
    // In range, the same calls do go out.
    session
        .complete_new_password(&challenge, "6chars")
        .await
        .unwrap_err();
    assert_eq!(
        count_requests(&server, "/v1/new-password-required").await,
        1
    );
}

#[tokio::test]
async fn a_422_carries_the_service_s_message_and_names_no_field() {
    let server = MockServer::start().await;
    let message = "Internal error, please try again later.";
    mount(&server, LOGIN, error(422, message)).await;

    let error = session(&server, &test_clock())
        .access_token()
        .await
        .unwrap_err();

    // A login's "try again later" is the service's failure (see the next test).
    assert_eq!(error.kind(), ErrorKind::ServerError);
    assert_eq!(error.status(), Some(422));
    assert_eq!(error.message(), Some(message));
    assert!(error.field_errors().is_empty());
}

/// Each field at the service's own bounds, as its handlers bind them (wikimedia-enterprise/
/// wikimedia-enterprise, api/auth/handlers/v1/{changepassword,forgotpasswordconfirm,
/// newpasswordrequired}/*.go at 55fdd9f30e2ab7057fd2614849e1a4fd3a5fbc00): change-password
/// `previous_password` and `proposed_password` `min=6,max=256`; forgot-password-confirm
/// `password` `min=1,max=255` and `confirmation_code` `min=1,max=2048`; new-password-required
/// `session` `min=1`. At a bound the request goes out, byte for byte, and the handlers' success
/// (`gcx.Status(http.StatusNoContent)`: 204, no body) is a success; one past it nothing is
/// sent.
#[tokio::test]
async fn each_field_is_held_to_the_bounds_the_service_binds_it_to() {
    let server = MockServer::start().await;
    mount(&server, LOGIN, tokens("1", 0)).await;
    mount(&server, "/v1/change-password", ResponseTemplate::new(204)).await;
    mount(
        &server,
        "/v1/forgot-password-confirm",
        ResponseTemplate::new(204),
    )
    .await;
    let session = session(&server, &test_clock());
    let configuration = |result: Result<(), tokensmith::Error>| {
        let error = result.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Configuration);
        error.message().unwrap().to_owned()
    };

    // change-password: 6 to 256 for both, which the 1-to-255 rule got wrong at both ends.
    let (six, longest) = ("6chars", "é".repeat(256));
    session
        .change_password(six, longest.as_str())
        .await
        .unwrap();
    session
        .change_password(longest.as_str(), six)
        .await
        .unwrap();
    let changes = requests_to(&server, "/v1/change-password").await;
    assert_eq!(changes.len(), 2);
    let access_token = access("1", 0);
    assert_request(
        &changes[0],
        &Expected {
            method: "POST",
            path: "/v1/change-password",
            query: None,
            headers: &[("content-type", "application/json")],
            body: Body::Json(json!({
                "access_token": access_token,
                "previous_password": six,
                "proposed_password": longest,
            })),
        },
    );
    for (previous, proposed, what) in [
        ("5char", "6chars", "the previous password"),
        ("6chars", "5char", "the proposed password"),
        ("6chars", &"é".repeat(257)[..], "the proposed password"),
        (&"é".repeat(257)[..], "6chars", "the previous password"),
    ] {
        assert_eq!(
            configuration(session.change_password(previous, proposed).await),
            bounds_error(what, 6, 256)
        );
    }
    assert_eq!(requests_to(&server, "/v1/change-password").await.len(), 2);

    // forgot-password-confirm: a 1-character password and a 2048-character code go out.
    let code = "7".repeat(2048);
    session
        .confirm_forgot_password(code.as_str(), "p")
        .await
        .unwrap();
    assert_request(
        &requests_to(&server, "/v1/forgot-password-confirm").await[0],
        &Expected {
            method: "POST",
            path: "/v1/forgot-password-confirm",
            query: None,
            headers: &[("content-type", "application/json")],
            body: Body::Json(json!({
                "username": "admin", "password": "p", "confirmation_code": code,
            })),
        },
    );
    for (code, password, message) in [
        (
            "7".repeat(2049),
            "p",
            bounds_error("the confirmation code", 1, 2048),
        ),
        (
            String::new(),
            "p",
            bounds_error("the confirmation code", 1, 2048),
        ),
        (
            "654321".to_owned(),
            "",
            bounds_error("the new password", 1, 255),
        ),
    ] {
        assert_eq!(
            configuration(session.confirm_forgot_password(code, password).await),
            message
        );
    }
    assert_eq!(
        requests_to(&server, "/v1/forgot-password-confirm")
            .await
            .len(),
        1
    );

    // new-password-required: the session must not be empty.
    let empty = tokensmith::SecretString::new("");
    let error = session
        .complete_new_password(&empty, "new-Pw-2")
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Configuration);
    assert_eq!(
        error.message(),
        Some("the challenge session is empty, which the service refuses")
    );
    assert_eq!(
        count_requests(&server, "/v1/new-password-required").await,
        0
    );
}

#[tokio::test]
async fn a_login_answered_please_try_again_later_backs_off_and_is_sent_again_after() {
    // The service's current code answers input it cannot validate, and its own failures, with
    // a 422 (or 500) "Internal error, please try again later." (../shared/API-NOTES.md): the
    // service's own "try again later", not a refusal of the credentials.
    let server = MockServer::start().await;
    let clock = test_clock();
    mount_once(
        &server,
        LOGIN,
        error(422, "Internal error, please try again later."),
    )
    .await;
    mount(&server, LOGIN, tokens("one", 0)).await;
    let session = session(&server, &clock);

    let failed = session.access_token().await.unwrap_err();
    assert_eq!(failed.kind(), ErrorKind::ServerError, "{failed}");
    assert!(failed.is_transient());
    assert_eq!(failed.status(), Some(422));
    assert_eq!(
        failed.message(),
        Some("Internal error, please try again later.")
    );
    // Within the first backoff (half to all of 1 s), no login.
    let held = session.access_token().await.unwrap_err();
    assert_eq!(held.kind(), ErrorKind::ServerError);
    assert_eq!(count_requests(&server, LOGIN).await, 1);

    clock.advance(Duration::from_secs(1));
    let token = session.access_token().await.unwrap();
    assert_eq!(token.secret().expose_secret(), access("one", 0));
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_request(
            request,
            &Expected {
                method: "POST",
                path: LOGIN,
                query: None,
                headers: &[("accept", "application/json")],
                body: Body::Json(json!({"username": "admin", "password": PASSWORD})),
            },
        );
    }
}
