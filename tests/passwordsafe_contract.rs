//! Contract tests for the generated BeyondTrust Password Safe authentication client: the exact
//! requests it sends and what it makes of every documented response.
#![cfg(feature = "passwordsafe")]

mod common;

use common::{assert_request, single_request, Body, Expected};
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION, COOKIE};
use serde_json::json;
use tokensmith::passwordsafe::{types, Client};
use tokensmith::transport::Context;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "/Auth/connect/token";
const SIGN_IN: &str = "/Auth/SignAppin";
const SIGN_OUT: &str = "/Auth/Signout";

const CLIENT_ID: &str = "6a8f3c0e-1d2b-4c5a-9e7f-0b1c2d3e4f5a";
const CLIENT_SECRET: &str = "s3cr3t/client+secret=";
const ACCESS: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzY29wZSI6WyJwdWJsaWNhcGkiXX0.c2lnbmF0dXJl";
const PS_AUTH: &str = r"PS-Auth key=c479a66f0c9484d; runas=doe-main\johndoe; pwd=[un1qu3];";
const SET_COOKIE: &str =
    "ASP.NET_SessionId=x1bq0nhk4sm2yhj5tgfvdmqe; path=/; secure; HttpOnly; SameSite=Lax";
const SESSION_COOKIE: &str = "ASP.NET_SessionId=x1bq0nhk4sm2yhj5tgfvdmqe";

fn client_with(server: &MockServer, headers: &[(HeaderName, &str)]) -> Client {
    let ctx = headers.iter().fold(Context::new(), |ctx, (name, value)| {
        ctx.with_header(name.clone(), HeaderValue::from_str(value).unwrap(), true)
    });
    Client::new_with_client(&server.uri(), reqwest::Client::new(), ctx)
}

fn client(server: &MockServer) -> Client {
    client_with(server, &[])
}

fn ps_auth_client(server: &MockServer) -> Client {
    client_with(server, &[(AUTHORIZATION, PS_AUTH)])
}

fn cookie_client(server: &MockServer) -> Client {
    client_with(server, &[(COOKIE, SESSION_COOKIE)])
}

fn token_body() -> tokensmith::passwordsafe::TokenRequest {
    tokensmith::passwordsafe::TokenRequest::new(CLIENT_ID, CLIENT_SECRET)
}

async fn mock(server: &MockServer, route: &str, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(route))
        .respond_with(response)
        .mount(server)
        .await;
}

fn user_json() -> serde_json::Value {
    json!({
        "UserId": 12,
        "SID": "S-1-5-21-1004336348-1177238915-682003330-1104",
        "EmailAddress": "john.doe@doe-main.example",
        "UserName": r"doe-main\johndoe",
        "Name": "John Doe"
    })
}

#[tokio::test]
async fn create_access_token_request_and_response() {
    let server = MockServer::start().await;
    let reply = json!({
        "access_token": ACCESS,
        "expires_in": 3600,
        "token_type": "Bearer",
        "scope": "publicapi"
    });
    mock(
        &server,
        TOKEN,
        ResponseTemplate::new(200).set_body_json(reply),
    )
    .await;

    let response = client(&server)
        .create_access_token(None, &token_body())
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    let body = response.into_inner();
    assert_eq!(body.access_token.expose_secret(), ACCESS);
    assert_eq!(body.expires_in, 3600);
    assert_eq!(body.token_type, "Bearer");
    assert_eq!(body.scope.as_deref(), Some("publicapi"));
    let request = single_request(&server).await;
    assert_request(
        &request,
        &Expected {
            method: "POST",
            path: TOKEN,
            query: None,
            headers: &[("accept", "application/json")],
            // Percent-encoded, in the documented order.
            body: Body::Form(
                "grant_type=client_credentials\
                 &client_id=6a8f3c0e-1d2b-4c5a-9e7f-0b1c2d3e4f5a\
                 &client_secret=s3cr3t%2Fclient%2Bsecret%3D",
            ),
        },
    );
    assert!(
        request.headers.get("authorization").is_none(),
        "the credentials travel in the form only"
    );
}

#[tokio::test]
async fn create_access_token_without_scope_still_decodes() {
    let server = MockServer::start().await;
    let reply = json!({"access_token": ACCESS, "expires_in": 600, "token_type": "Bearer"});
    mock(
        &server,
        TOKEN,
        ResponseTemplate::new(200).set_body_json(reply),
    )
    .await;

    let body = client(&server)
        .create_access_token(None, &token_body())
        .await
        .unwrap()
        .into_inner();

    assert_eq!(body.expires_in, 600);
    assert_eq!(body.scope, None);
}

#[tokio::test]
async fn sign_app_in_with_ps_auth_request_and_response() {
    let server = MockServer::start().await;
    mock(
        &server,
        SIGN_IN,
        ResponseTemplate::new(200)
            .insert_header("set-cookie", SET_COOKIE)
            .set_body_json(user_json()),
    )
    .await;

    let response = ps_auth_client(&server)
        .sign_app_in(Some(types::ApiVersion::X31))
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("set-cookie").unwrap(),
        SET_COOKIE,
        "the session cookie reaches the caller"
    );
    let user = response.into_inner();
    assert_eq!(user.user_id, 12);
    assert_eq!(
        user.sid.as_deref(),
        Some("S-1-5-21-1004336348-1177238915-682003330-1104")
    );
    assert_eq!(
        user.email_address.as_deref(),
        Some("john.doe@doe-main.example")
    );
    assert_eq!(user.user_name.as_deref(), Some(r"doe-main\johndoe"));
    assert_eq!(user.name.as_deref(), Some("John Doe"));
    assert_request(
        &single_request(&server).await,
        &Expected {
            method: "POST",
            path: SIGN_IN,
            query: Some("version=3.1"),
            headers: &[("accept", "application/json"), ("authorization", PS_AUTH)],
            body: Body::None,
        },
    );
}

#[tokio::test]
async fn sign_app_in_with_bearer_request_and_partial_user() {
    let server = MockServer::start().await;
    // An application user: no SID, null email.
    let reply = json!({"UserId": 7, "SID": null, "EmailAddress": null, "UserName": "app-user"});
    mock(
        &server,
        SIGN_IN,
        ResponseTemplate::new(200)
            .insert_header("set-cookie", SET_COOKIE)
            .set_body_json(reply),
    )
    .await;
    let bearer = format!("Bearer {ACCESS}");

    let user = client_with(&server, &[(AUTHORIZATION, &bearer)])
        .sign_app_in(None)
        .await
        .unwrap()
        .into_inner();

    assert_eq!(user.user_id, 7);
    assert_eq!(user.sid, None);
    assert_eq!(user.email_address, None);
    assert_eq!(user.user_name.as_deref(), Some("app-user"));
    assert_eq!(user.name, None);
    assert_request(
        &single_request(&server).await,
        &Expected {
            method: "POST",
            path: SIGN_IN,
            query: None,
            headers: &[("accept", "application/json"), ("authorization", &bearer)],
            body: Body::None,
        },
    );
}

#[tokio::test]
async fn sign_out_request_and_response() {
    let server = MockServer::start().await;
    mock(&server, SIGN_OUT, ResponseTemplate::new(200)).await;

    let response = cookie_client(&server)
        .sign_out(Some(types::ApiVersion::X32))
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    let () = response.into_inner();
    let request = single_request(&server).await;
    assert_request(
        &request,
        &Expected {
            method: "POST",
            path: SIGN_OUT,
            query: Some("version=3.2"),
            headers: &[("accept", "application/json"), ("cookie", SESSION_COOKIE)],
            body: Body::None,
        },
    );
    assert!(request.headers.get("authorization").is_none());
}

fn oauth_error(status: u16, error: &str, description: Option<&str>) -> ResponseTemplate {
    let mut body = json!({"error": error});
    if let Some(description) = description {
        body["error_description"] = json!(description);
    }
    ResponseTemplate::new(status).set_body_json(body)
}

async fn token_error(status: u16, error: &str, description: Option<&str>) {
    let server = MockServer::start().await;
    mock(&server, TOKEN, oauth_error(status, error, description)).await;
    let err = client(&server)
        .create_access_token(None, &token_body())
        .await
        .unwrap_err();
    match err {
        progenitor_client::Error::ErrorResponse(response) => {
            assert_eq!(response.status(), status);
            let body = response.into_inner();
            assert_eq!(body.error.as_deref(), Some(error));
            assert_eq!(body.error_description.as_deref(), description);
            assert_eq!(body.error_uri, None);
        }
        other => panic!("expected a documented error response, got {other:?}"),
    }
}

#[tokio::test]
async fn create_access_token_400_unsupported_grant_type() {
    token_error(400, "unsupported_grant_type", None).await;
}

#[tokio::test]
async fn create_access_token_400_invalid_request() {
    token_error(
        400,
        "invalid_request",
        Some("The client_secret parameter is missing."),
    )
    .await;
}

#[tokio::test]
async fn create_access_token_401_invalid_client() {
    token_error(401, "invalid_client", None).await;
}

/// Calls `route` with the right credentials and checks that the documented error `status`
/// comes back typed, carrying the provider's body.
async fn api_error(route: &str, status: u16, body: serde_json::Value) {
    let server = MockServer::start().await;
    mock(
        &server,
        route,
        ResponseTemplate::new(status).set_body_json(body.clone()),
    )
    .await;
    let err = match route {
        SIGN_IN => ps_auth_client(&server).sign_app_in(None).await.unwrap_err(),
        _ => cookie_client(&server)
            .sign_out(None)
            .await
            .map(|_| ())
            .unwrap_err(),
    };
    match err {
        progenitor_client::Error::ErrorResponse(response) => {
            assert_eq!(response.status(), status);
            assert_eq!(response.into_inner().0, body);
        }
        other => panic!("expected a documented error response, got {other:?}"),
    }
}

#[tokio::test]
async fn sign_app_in_401_credentials_refused() {
    api_error(SIGN_IN, 401, json!("Unauthorized")).await;
}

#[tokio::test]
async fn sign_app_in_401_with_an_object_body() {
    api_error(
        SIGN_IN,
        401,
        json!({"Message": "Authorization has been denied for this request."}),
    )
    .await;
}

#[tokio::test]
async fn sign_app_in_403_licence_not_valid() {
    api_error(SIGN_IN, 403, json!("Access forbidden")).await;
}

#[tokio::test]
async fn sign_app_in_410_api_version_disabled() {
    api_error(SIGN_IN, 410, json!("API version has been disabled")).await;
}

#[tokio::test]
async fn sign_out_401_no_session() {
    api_error(SIGN_OUT, 401, json!("Unauthorized")).await;
}

#[tokio::test]
async fn error_body_that_is_not_json_is_kept_as_bytes() {
    // No error body is documented: a plain-text one must survive for the layer above.
    let server = MockServer::start().await;
    mock(
        &server,
        SIGN_IN,
        ResponseTemplate::new(401).set_body_string("Unauthorized: bad API key"),
    )
    .await;
    let err = ps_auth_client(&server).sign_app_in(None).await.unwrap_err();
    match err {
        progenitor_client::Error::InvalidResponsePayload(bytes, _) => {
            assert_eq!(&bytes[..], b"Unauthorized: bad API key")
        }
        other => panic!("expected InvalidResponsePayload, got {other:?}"),
    }
}

#[tokio::test]
async fn undocumented_502_html_is_an_unexpected_response() {
    let server = MockServer::start().await;
    mock(&server, SIGN_IN, common::bad_gateway_html()).await;
    let err = ps_auth_client(&server).sign_app_in(None).await.unwrap_err();
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
    let response = types::TokenResponse {
        access_token: ACCESS.into(),
        expires_in: 3600.into(),
        token_type: "Bearer".into(),
        scope: Some("publicapi".into()),
    };
    let printed = format!("{:?} {:?}", token_body(), response);
    for secret in [CLIENT_SECRET, ACCESS] {
        assert!(!printed.contains(secret), "{secret} leaked in {printed}");
    }
    assert!(printed.contains(CLIENT_ID), "non-secret fields still print");
    assert!(
        printed.contains("publicapi"),
        "non-secret fields still print"
    );
}
