//! Contract tests for the generated Intelligence Fusion Auth API client: the exact requests it
//! sends and what it makes of every documented response.
#![cfg(feature = "s7risk")]

mod common;

use common::{assert_request, single_request, Body, Expected};
use serde_json::json;
use tokensmith::s7risk::{types, Client};
use tokensmith::transport::Context;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ORIGIN: &str = "https://api.example.com";
const JWT: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJleHAiOjE3MDAwODY0MDB9.c2ln";

fn client(server: &MockServer) -> Client {
    Client::new_with_client(&server.uri(), reqwest::Client::new(), Context::new())
}

fn user_body() -> types::UserTokenRequest {
    types::UserTokenRequest {
        email: "user@example.com".into(),
        password: "hunter2-pw".into(),
    }
}

fn app_body() -> types::ApplicationTokenRequest {
    types::ApplicationTokenRequest {
        client_id: "client-123".into(),
        secret: "app-secret-9".into(),
    }
}

async fn mock(server: &MockServer, route: &str, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(route))
        .respond_with(response)
        .mount(server)
        .await;
}

fn success() -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"status": "success", "data": {"accessToken": JWT}}))
}

fn error(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"status": "error", "message": message}))
}

#[tokio::test]
async fn user_token_request_and_response() {
    let server = MockServer::start().await;
    mock(&server, "/user/token", success()).await;

    let response = client(&server)
        .create_user_token(ORIGIN, &user_body())
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    let body = response.into_inner();
    assert_eq!(body.status, "success");
    assert_eq!(body.data.access_token.expose_secret(), JWT);
    assert_request(
        &single_request(&server).await,
        &Expected {
            method: "POST",
            path: "/user/token",
            query: None,
            headers: &[("origin", ORIGIN), ("accept", "application/json")],
            body: Body::Json(json!({"email": "user@example.com", "password": "hunter2-pw"})),
        },
    );
}

#[tokio::test]
async fn application_token_request_and_response() {
    let server = MockServer::start().await;
    mock(&server, "/application/token", success()).await;

    let response = client(&server)
        .create_application_token(ORIGIN, &app_body())
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(response.into_inner().data.access_token.expose_secret(), JWT);
    assert_request(
        &single_request(&server).await,
        &Expected {
            method: "POST",
            path: "/application/token",
            query: None,
            headers: &[("origin", ORIGIN), ("accept", "application/json")],
            body: Body::Json(json!({"clientId": "client-123", "secret": "app-secret-9"})),
        },
    );
}

async fn user_token_error(status: u16, message: &str) {
    let server = MockServer::start().await;
    mock(&server, "/user/token", error(status, message)).await;
    let err = client(&server)
        .create_user_token(ORIGIN, &user_body())
        .await
        .unwrap_err();
    assert_provider_error(err, status, message);
}

async fn application_token_error(status: u16, message: &str) {
    let server = MockServer::start().await;
    mock(&server, "/application/token", error(status, message)).await;
    let err = client(&server)
        .create_application_token(ORIGIN, &app_body())
        .await
        .unwrap_err();
    assert_provider_error(err, status, message);
}

fn assert_provider_error(err: progenitor_client::Error<types::Error>, status: u16, message: &str) {
    match err {
        progenitor_client::Error::ErrorResponse(response) => {
            assert_eq!(response.status(), status);
            let body = response.into_inner();
            assert_eq!(body.status.as_deref(), Some("error"));
            assert_eq!(body.message.as_deref(), Some(message));
        }
        other => panic!("expected a documented error response, got {other:?}"),
    }
}

#[tokio::test]
async fn user_token_401_credentials_do_not_match() {
    user_token_error(401, "Email and password do not match").await;
}

#[tokio::test]
async fn user_token_401_access_window_expired() {
    user_token_error(401, "User access window has expired").await;
}

#[tokio::test]
async fn user_token_422_missing_field() {
    user_token_error(422, "Missing password request body parameter").await;
}

#[tokio::test]
async fn user_token_429_too_many_attempts() {
    user_token_error(
        429,
        "Too many authentication attempts. Try again in 5 minutes",
    )
    .await;
}

#[tokio::test]
async fn application_token_401_credentials_do_not_match() {
    application_token_error(401, "Client ID and secret do not match").await;
}

#[tokio::test]
async fn application_token_422_missing_field() {
    application_token_error(422, "Missing client ID body parameter").await;
}

#[tokio::test]
async fn error_body_that_is_not_json_is_kept_as_bytes() {
    // The error body's shape is undocumented: a plain-text body must survive for the layer above.
    let server = MockServer::start().await;
    mock(
        &server,
        "/user/token",
        ResponseTemplate::new(401).set_body_string("Unauthorized"),
    )
    .await;
    let err = client(&server)
        .create_user_token(ORIGIN, &user_body())
        .await
        .unwrap_err();
    match err {
        progenitor_client::Error::InvalidResponsePayload(bytes, _) => {
            assert_eq!(&bytes[..], b"Unauthorized")
        }
        other => panic!("expected InvalidResponsePayload, got {other:?}"),
    }
}

#[tokio::test]
async fn undocumented_502_html_is_an_unexpected_response() {
    let server = MockServer::start().await;
    mock(&server, "/application/token", common::bad_gateway_html()).await;
    let err = client(&server)
        .create_application_token(ORIGIN, &app_body())
        .await
        .unwrap_err();
    match err {
        progenitor_client::Error::UnexpectedResponse(response) => {
            assert_eq!(response.status(), 502);
            assert!(response.text().await.unwrap().contains("502 Bad Gateway"));
        }
        other => panic!("expected UnexpectedResponse, got {other:?}"),
    }
}

#[test]
fn debug_of_secret_bearing_types_prints_no_secret() {
    let printed = format!(
        "{:?} {:?} {:?}",
        user_body(),
        app_body(),
        types::TokenData {
            access_token: JWT.into()
        }
    );
    for secret in ["hunter2-pw", "app-secret-9", JWT] {
        assert!(!printed.contains(secret), "{secret} leaked in {printed}");
    }
    assert!(
        printed.contains("user@example.com"),
        "non-secret fields still print"
    );
}
