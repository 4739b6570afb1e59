//! Contract tests for the generated Wikimedia Enterprise auth client: the exact requests it
//! sends and what it makes of every documented response of the seven operations.
#![cfg(feature = "accounts")]

mod common;

use common::{assert_request, single_request, Body, Expected};
use serde_json::{json, Value};
use tokensmith::accounts::{types, Client};
use tokensmith::transport::Context;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ACCESS: &str = "eyJraWQiOiJhIn0.eyJzdWIiOiJhZG1pbiIsImV4cCI6MTcwMDA4NjQwMH0.YWNjZXNz";
const ID: &str = "eyJraWQiOiJpIn0.eyJzdWIiOiJhZG1pbiJ9.aWQ";
const REFRESH: &str = "eyJjdHkiOiJKV1QifQ.cmVmcmVzaA.cmVmcmVzaC1zaWc";
const SESSION: &str = "AYABeC1zZXNzaW9uLXRva2Vu";
const PASSWORD: &str = "j8BDWYrQwDF5u4Yu";
const NEW_PASSWORD: &str = "b2BDWZrQwDF5u4Yu";
const CODE: &str = "6MadrbRF";

fn client(server: &MockServer) -> Client {
    Client::new_with_client(&server.uri(), reqwest::Client::new(), Context::new())
}

async fn mock(server: &MockServer, route: &str, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(route))
        .respond_with(response)
        .mount(server)
        .await;
}

fn expected<'a>(route: &'a str, body: Value, accept: bool) -> Expected<'a> {
    Expected {
        method: "POST",
        path: route,
        query: None,
        headers: if accept {
            &[("accept", "application/json")]
        } else {
            &[]
        },
        body: Body::Json(body),
    }
}

fn login_body() -> types::LoginRequest {
    types::LoginRequest {
        username: "admin".into(),
        password: PASSWORD.into(),
    }
}

fn refresh_body() -> types::TokenRefreshRequest {
    types::TokenRefreshRequest {
        username: "admin".into(),
        refresh_token: REFRESH.into(),
    }
}

fn revoke_body() -> types::TokenRevokeRequest {
    types::TokenRevokeRequest {
        refresh_token: REFRESH.into(),
    }
}

fn new_password_body() -> types::NewPasswordRequest {
    types::NewPasswordRequest {
        session: SESSION.into(),
        username: "admin".into(),
        new_password: NEW_PASSWORD.into(),
    }
}

fn change_password_body() -> types::ChangePasswordRequest {
    types::ChangePasswordRequest {
        access_token: ACCESS.into(),
        previous_password: PASSWORD.into(),
        proposed_password: NEW_PASSWORD.into(),
    }
}

fn forgot_body() -> types::ForgotPasswordRequest {
    types::ForgotPasswordRequest {
        username: "admin".into(),
    }
}

fn confirm_body() -> types::ForgotPasswordConfirmRequest {
    types::ForgotPasswordConfirmRequest {
        username: "admin".into(),
        password: NEW_PASSWORD.into(),
        confirmation_code: CODE.into(),
    }
}

#[tokio::test]
async fn log_in_request_and_token_set() {
    let server = MockServer::start().await;
    let reply = json!({"id_token": ID, "access_token": ACCESS, "refresh_token": REFRESH, "expires_in": 86400});
    mock(
        &server,
        "/v1/login",
        ResponseTemplate::new(200).set_body_json(reply),
    )
    .await;

    let response = client(&server).log_in(&login_body()).await.unwrap();

    assert_eq!(response.status(), 200);
    let body = response.into_inner();
    assert_eq!(body.access_token.unwrap().expose_secret(), ACCESS);
    assert_eq!(body.id_token.unwrap().expose_secret(), ID);
    assert_eq!(body.refresh_token.unwrap().expose_secret(), REFRESH);
    assert_eq!(body.expires_in, Some(86400.into()));
    assert_eq!(body.challenge_name, None);
    assert!(body.session.is_none());
    assert_request(
        &single_request(&server).await,
        &expected(
            "/v1/login",
            json!({"username": "admin", "password": PASSWORD}),
            true,
        ),
    );
}

#[tokio::test]
async fn log_in_answers_a_new_password_challenge_with_200() {
    let server = MockServer::start().await;
    let reply = json!({"challenge_name": "NEW_PASSWORD_REQUIRED", "session": SESSION});
    mock(
        &server,
        "/v1/login",
        ResponseTemplate::new(200).set_body_json(reply),
    )
    .await;

    let body = client(&server)
        .log_in(&login_body())
        .await
        .unwrap()
        .into_inner();

    assert_eq!(
        body.challenge_name,
        Some(types::ChallengeName("NEW_PASSWORD_REQUIRED".into()))
    );
    assert_eq!(body.session.unwrap().expose_secret(), SESSION);
    assert!(body.access_token.is_none() && body.refresh_token.is_none());
}

#[tokio::test]
async fn log_in_decodes_any_cognito_challenge() {
    for name in ["SMS_MFA", "SOFTWARE_TOKEN_MFA", "MFA_SETUP"] {
        let server = MockServer::start().await;
        let reply = json!({"challenge_name": name, "session": SESSION});
        mock(
            &server,
            "/v1/login",
            ResponseTemplate::new(200).set_body_json(reply),
        )
        .await;

        let body = client(&server)
            .log_in(&login_body())
            .await
            .unwrap()
            .into_inner();

        assert_eq!(
            body.challenge_name.as_deref().map(String::as_str),
            Some(name)
        );
        assert_eq!(body.session.unwrap().expose_secret(), SESSION);
        assert!(body.access_token.is_none() && body.refresh_token.is_none());
    }
}

#[tokio::test]
async fn refresh_token_request_and_response() {
    let server = MockServer::start().await;
    let reply = json!({"id_token": ID, "access_token": ACCESS, "expires_in": 86400});
    mock(
        &server,
        "/v1/token-refresh",
        ResponseTemplate::new(200).set_body_json(reply),
    )
    .await;

    let body = client(&server)
        .refresh_token(&refresh_body())
        .await
        .unwrap()
        .into_inner();

    assert_eq!(body.access_token.expose_secret(), ACCESS);
    assert_eq!(body.id_token.unwrap().expose_secret(), ID);
    assert_eq!(body.expires_in, Some(86400.into()));
    assert_request(
        &single_request(&server).await,
        &expected(
            "/v1/token-refresh",
            json!({"username": "admin", "refresh_token": REFRESH}),
            true,
        ),
    );
}

#[tokio::test]
async fn revoke_token_request_and_204() {
    let server = MockServer::start().await;
    mock(&server, "/v1/token-revoke", ResponseTemplate::new(204)).await;

    let response = client(&server).revoke_token(&revoke_body()).await.unwrap();

    assert_eq!(response.status(), 204);
    assert_request(
        &single_request(&server).await,
        &expected("/v1/token-revoke", json!({"refresh_token": REFRESH}), false),
    );
}

#[tokio::test]
async fn complete_new_password_request_and_token_set() {
    let server = MockServer::start().await;
    let reply = json!({"id_token": ID, "access_token": ACCESS, "refresh_token": REFRESH, "expires_in": 86400});
    mock(
        &server,
        "/v1/new-password-required",
        ResponseTemplate::new(200).set_body_json(reply),
    )
    .await;

    let body = client(&server)
        .complete_new_password(&new_password_body())
        .await
        .unwrap()
        .into_inner();

    assert_eq!(body.access_token.expose_secret(), ACCESS);
    assert_eq!(body.id_token.unwrap().expose_secret(), ID);
    assert_eq!(body.refresh_token.unwrap().expose_secret(), REFRESH);
    assert_eq!(body.expires_in, Some(86400.into()));
    assert_request(
        &single_request(&server).await,
        &expected(
            "/v1/new-password-required",
            json!({"session": SESSION, "username": "admin", "new_password": NEW_PASSWORD}),
            true,
        ),
    );
}

#[tokio::test]
async fn complete_new_password_answers_a_further_challenge_with_500() {
    // The service's code has no token set to give when Cognito asks another challenge.
    let server = MockServer::start().await;
    let reply = json!({"status": 500, "message": "Internal error, please try again later."});
    mock(
        &server,
        "/v1/new-password-required",
        ResponseTemplate::new(500).set_body_json(reply),
    )
    .await;

    match client(&server)
        .complete_new_password(&new_password_body())
        .await
        .unwrap_err()
    {
        progenitor_client::Error::ErrorResponse(response) => {
            assert_eq!(response.status(), 500);
            let body = response.into_inner();
            assert_eq!(body.status, Some(500));
            assert_eq!(
                body.message.as_deref(),
                Some("Internal error, please try again later.")
            );
        }
        other => panic!("expected the documented 500, got {other:?}"),
    }
    assert_request(
        &single_request(&server).await,
        &expected(
            "/v1/new-password-required",
            json!({"session": SESSION, "username": "admin", "new_password": NEW_PASSWORD}),
            true,
        ),
    );
}

#[tokio::test]
async fn complete_new_password_without_an_access_token_is_not_a_token_set() {
    let server = MockServer::start().await;
    let reply = json!({"challenge_name": "MFA_SETUP", "session": SESSION});
    mock(
        &server,
        "/v1/new-password-required",
        ResponseTemplate::new(200).set_body_json(reply),
    )
    .await;

    match client(&server)
        .complete_new_password(&new_password_body())
        .await
        .unwrap_err()
    {
        progenitor_client::Error::InvalidResponsePayload(bytes, _) => {
            assert!(String::from_utf8_lossy(&bytes).contains("MFA_SETUP"))
        }
        other => panic!("expected InvalidResponsePayload, got {other:?}"),
    }
}

#[tokio::test]
async fn forgot_password_takes_an_email_as_the_username() {
    let server = MockServer::start().await;
    mock(&server, "/v1/forgot-password", ResponseTemplate::new(204)).await;

    let response = client(&server)
        .forgot_password(&types::ForgotPasswordRequest {
            username: "admin@example.org".into(),
        })
        .await
        .unwrap();

    assert_eq!(response.status(), 204);
    assert_request(
        &single_request(&server).await,
        &expected(
            "/v1/forgot-password",
            json!({"username": "admin@example.org"}),
            false,
        ),
    );
}

#[tokio::test]
async fn change_password_request_and_204() {
    let server = MockServer::start().await;
    mock(&server, "/v1/change-password", ResponseTemplate::new(204)).await;

    let response = client(&server)
        .change_password(&change_password_body())
        .await
        .unwrap();

    assert_eq!(response.status(), 204);
    assert_request(
        &single_request(&server).await,
        &expected(
            "/v1/change-password",
            json!({"access_token": ACCESS, "previous_password": PASSWORD, "proposed_password": NEW_PASSWORD}),
            false,
        ),
    );
}

#[tokio::test]
async fn forgot_password_request_and_204() {
    let server = MockServer::start().await;
    mock(&server, "/v1/forgot-password", ResponseTemplate::new(204)).await;

    let response = client(&server)
        .forgot_password(&forgot_body())
        .await
        .unwrap();

    assert_eq!(response.status(), 204);
    assert_request(
        &single_request(&server).await,
        &expected("/v1/forgot-password", json!({"username": "admin"}), false),
    );
}

#[tokio::test]
async fn confirm_forgot_password_request_and_204() {
    let server = MockServer::start().await;
    mock(
        &server,
        "/v1/forgot-password-confirm",
        ResponseTemplate::new(204),
    )
    .await;

    let response = client(&server)
        .confirm_forgot_password(&confirm_body())
        .await
        .unwrap();

    assert_eq!(response.status(), 204);
    assert_request(
        &single_request(&server).await,
        &expected(
            "/v1/forgot-password-confirm",
            json!({"username": "admin", "password": NEW_PASSWORD, "confirmation_code": CODE}),
            false,
        ),
    );
}

/// Every operation, called with its documented body, returning only the error side.
async fn call(server: &MockServer, route: &str) -> progenitor_client::Error<types::Error> {
    let api = client(server);
    match route {
        "/v1/login" => api.log_in(&login_body()).await.map(|_| ()),
        "/v1/token-refresh" => api.refresh_token(&refresh_body()).await.map(|_| ()),
        "/v1/token-revoke" => api.revoke_token(&revoke_body()).await.map(|_| ()),
        "/v1/new-password-required" => api
            .complete_new_password(&new_password_body())
            .await
            .map(|_| ()),
        "/v1/change-password" => api
            .change_password(&change_password_body())
            .await
            .map(|_| ()),
        "/v1/forgot-password" => api.forgot_password(&forgot_body()).await.map(|_| ()),
        "/v1/forgot-password-confirm" => api
            .confirm_forgot_password(&confirm_body())
            .await
            .map(|_| ()),
        other => panic!("no operation at {other}"),
    }
    .expect_err("an error status")
}

async fn documented_error(route: &str, status: u16, message: &str) {
    let server = MockServer::start().await;
    mock(
        &server,
        route,
        ResponseTemplate::new(status).set_body_json(json!({"status": status, "message": message})),
    )
    .await;
    match call(&server, route).await {
        progenitor_client::Error::ErrorResponse(response) => {
            assert_eq!(response.status(), status, "{route}");
            let body = response.into_inner();
            assert_eq!(body.status, Some(i64::from(status)), "{route}");
            assert_eq!(body.message.as_deref(), Some(message), "{route}");
        }
        other => panic!("{route} {status}: expected a documented error, got {other:?}"),
    }
}

const ROUTES: [&str; 7] = [
    "/v1/login",
    "/v1/token-refresh",
    "/v1/token-revoke",
    "/v1/new-password-required",
    "/v1/change-password",
    "/v1/forgot-password",
    "/v1/forgot-password-confirm",
];

#[tokio::test]
async fn every_operation_401_with_the_service_s_message() {
    for route in ROUTES {
        let message = match route {
            "/v1/login" => "Incorrect username or password.",
            "/v1/forgot-password" => "User not found.",
            _ => "Unauthorized.",
        };
        documented_error(route, 401, message).await;
    }
}

#[tokio::test]
async fn every_operation_422_unprocessable() {
    for route in ROUTES {
        documented_error(route, 422, "Internal error, please try again later.").await;
    }
}

#[tokio::test]
async fn every_operation_500_internal_error() {
    for route in ROUTES {
        documented_error(route, 500, "Internal error, please try again later.").await;
    }
}

#[tokio::test]
async fn token_refresh_429_limit_exceeded() {
    documented_error(
        "/v1/token-refresh",
        429,
        "Refresh tokens limit has been exceeded.",
    )
    .await;
}

#[tokio::test]
async fn token_refresh_403_forbidden() {
    // The status the vendor's own description gives for a spent refresh token.
    documented_error(
        "/v1/token-refresh",
        403,
        "Refresh tokens limit has been exceeded.",
    )
    .await;
}

#[tokio::test]
async fn a_429_elsewhere_is_undocumented() {
    let server = MockServer::start().await;
    mock(
        &server,
        "/v1/login",
        ResponseTemplate::new(429).set_body_json(json!({"status": 429, "message": "slow down"})),
    )
    .await;
    match call(&server, "/v1/login").await {
        progenitor_client::Error::UnexpectedResponse(response) => {
            assert_eq!(response.status(), 429)
        }
        other => panic!("expected UnexpectedResponse, got {other:?}"),
    }
}

#[tokio::test]
async fn undocumented_502_html_is_an_unexpected_response() {
    let server = MockServer::start().await;
    mock(&server, "/v1/login", common::bad_gateway_html()).await;
    match call(&server, "/v1/login").await {
        progenitor_client::Error::UnexpectedResponse(response) => {
            assert_eq!(response.status(), 502);
            assert!(response.text().await.unwrap().contains("502 Bad Gateway"));
        }
        other => panic!("expected UnexpectedResponse, got {other:?}"),
    }
}

#[test]
fn debug_of_secret_bearing_types_prints_no_secret() {
    let responses = (
        types::LoginResponse {
            access_token: Some(ACCESS.into()),
            challenge_name: None,
            expires_in: Some(86400.into()),
            id_token: Some(ID.into()),
            refresh_token: Some(REFRESH.into()),
            session: Some(SESSION.into()),
        },
        types::TokenRefreshResponse {
            access_token: ACCESS.into(),
            expires_in: None,
            id_token: Some(ID.into()),
        },
        types::NewPasswordResponse {
            access_token: ACCESS.into(),
            expires_in: None,
            id_token: None,
            refresh_token: Some(REFRESH.into()),
        },
    );
    let printed = format!(
        "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {responses:?}",
        login_body(),
        refresh_body(),
        revoke_body(),
        new_password_body(),
        change_password_body(),
        forgot_body(),
        confirm_body(),
    );
    for secret in [ACCESS, ID, REFRESH, SESSION, PASSWORD, NEW_PASSWORD, CODE] {
        assert!(!printed.contains(secret), "{secret} leaked in {printed}");
    }
    assert!(printed.contains("admin"), "non-secret fields still print");
    assert!(printed.contains("86400"));
}
