//! Contract tests for the generated Fraud Intelligence Blockchain auth client: the exact requests
//! it sends and what it makes of every documented response. Values are the vendor's examples.
#![cfg(feature = "fib")]

mod common;

use common::{assert_request, single_request, Body, Expected};
use reqwest::header::{HeaderValue, AUTHORIZATION};
use serde_json::json;
use tokensmith::fib::{types, Client};
use tokensmith::transport::Context;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SESSION: &str = "/auth/api/v1/authentication-management/session";
const LOGOUT: &str = "/auth/api/v1/authentication-management/logout";

const EMAIL: &str = "alice@mail.com";
const SIGNATURE: &str = "0b458f758eeca3d7a2a64de0648c9b7dccaee146202257cd8ebaeb4690aa48b464108111d8cf0e7f3b0ace1b51dcda89e76d372233514f324e00d64c6b899c0e";
const AUTH_PUBLIC_KEY: &str = "8a53d297bc406c63396967388ecc2ebc8abd701d195a43bbb4751ac5a86eac1b";

/// Alice's tokens from the vendor's log-in example.
const ACCESS: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSJ9.eyJhY2MiOiJhbGljZUB3b25kZXJsYW5kIiwic3ViIjoiYWxpY2VAbWFpbC5jb20iLCJyb2xlIjoiUk9MRV9QRUVSIiwiZXhwIjoxNzAzMTg3NDEyLCJqdGkiOiIwNjgzM2FlZi03ZDljLTQ2MTUtYTU4YS02YjYxZWZkM2FhNjEifQ.HvrukWtcA7nz5rbxWiklJOjnv4X7jaAQ7piJaxqlW5rvUv52rClqYYHSn9F-P4u6pKNlJSpiiiH0GnynXsL7CQ";
const REFRESH: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZUBtYWlsLmNvbSIsImFjanRpIjoiMDY4MzNhZWYtN2Q5Yy00NjE1LWE1OGEtNmI2MWVmZDNhYTYxIiwiZXhwIjoxNzAzMjczNTEyLCJqdGkiOiJhY2NkYWUzNS00ODA1LTQ5NmQtYTBiZC02Y2Y4OGI3OTBkYjkifQ.rCrbFnF5axwixq4wwURZdu_DFwFlOil9RFYkmqlLYVPoU1UpN8PlWC8Kg7QBvA-eJYVzb8yKgQ0GiIAITe3ADA";
/// The pair from the vendor's refresh example.
const NEW_ACCESS: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSJ9.eyJhY2MiOiJib2JAYWRtaW4iLCJzdWIiOiJib2JAbWFpbC5jb20iLCJyb2xlIjoiUk9MRV9BRE1JTiIsImV4cCI6MTcwMzI2MTU3NCwianRpIjoiOGUxNzgzZDgtNGE1Yi00ZGQ0LWI3OGQtYjUwNTY1NDAwNTAzIn0.BUqeWAnkqtE6oKc-ztDwaQ36om9trZTNKR8vwelMqr4m67y3td-cVu9lOY7WTY09tTMoVQQ-rbuEFcmxCY17BA";
const NEW_REFRESH: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSJ9.eyJzdWIiOiJib2JAbWFpbC5jb20iLCJhY2p0aSI6IjhlMTc4M2Q4LTRhNWItNGRkNC1iNzhkLWI1MDU2NTQwMDUwMyIsImV4cCI6MTcwMzM0NzY3NCwianRpIjoiYTZmYmQ5ZjktZThkZC00YzBmLWJhNDYtNDlkMDE5MDg2MjZhIn0.LUBHyyqMMRpQ81jsd08Ip5Yft7IeWtwYWO-PSffhhVHEsWDgtZykbsE-RLRh8Xi9KUljkqibdCc7qJlMZLeHBg";

fn client(server: &MockServer) -> Client {
    Client::new_with_client(&server.uri(), reqwest::Client::new(), Context::new())
}

fn bearer_client(server: &MockServer, token: &str) -> Client {
    let value = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    let ctx = Context::new().with_header(AUTHORIZATION, value, true);
    Client::new_with_client(&server.uri(), reqwest::Client::new(), ctx)
}

fn login_body() -> types::LoginRequest {
    types::LoginRequest {
        email: EMAIL.into(),
        signature: SIGNATURE.into(),
        auth_public_key_hex: AUTH_PUBLIC_KEY.into(),
    }
}

async fn mock(server: &MockServer, verb: &str, route: &str, response: ResponseTemplate) {
    Mock::given(method(verb))
        .and(path(route))
        .respond_with(response)
        .mount(server)
        .await;
}

#[tokio::test]
async fn log_in_request_and_response() {
    let server = MockServer::start().await;
    let reply = json!({
        "status": {"code": 200, "name": "OK", "message": "User authorization has been successful."},
        "data": {"accessToken": ACCESS, "refreshToken": REFRESH, "expirationTime": 300}
    });
    mock(
        &server,
        "POST",
        SESSION,
        ResponseTemplate::new(200).set_body_json(reply),
    )
    .await;

    let response = client(&server).log_in(&login_body()).await.unwrap();

    assert_eq!(response.status(), 200);
    let body = response.into_inner();
    assert_eq!(body.status.code, 200);
    assert_eq!(body.status.name, "OK");
    assert_eq!(
        body.status.message.as_deref(),
        Some("User authorization has been successful.")
    );
    assert_eq!(body.data.access_token.expose_secret(), ACCESS);
    assert_eq!(body.data.refresh_token.expose_secret(), REFRESH);
    assert_eq!(body.data.expiration_time, 300);
    let request = single_request(&server).await;
    assert_request(
        &request,
        &Expected {
            method: "POST",
            path: SESSION,
            query: None,
            headers: &[("accept", "application/json")],
            body: Body::Json(json!({
                "email": EMAIL,
                "signature": SIGNATURE,
                "authPublicKeyHex": AUTH_PUBLIC_KEY
            })),
        },
    );
    assert!(
        request.headers.get("authorization").is_none(),
        "log-in takes no bearer token"
    );
}

#[tokio::test]
async fn refresh_tokens_request_and_response() {
    let server = MockServer::start().await;
    // The API specification's example: no `message` in the status.
    let reply = json!({
        "status": {"code": 200, "name": "OK"},
        "data": {"accessToken": NEW_ACCESS, "refreshToken": NEW_REFRESH, "expirationTime": 300}
    });
    mock(
        &server,
        "PATCH",
        SESSION,
        ResponseTemplate::new(200).set_body_json(reply),
    )
    .await;

    let response = bearer_client(&server, REFRESH)
        .refresh_tokens()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    let body = response.into_inner();
    assert_eq!(body.status.code, 200);
    assert_eq!(body.status.name, "OK");
    assert_eq!(body.status.message, None);
    assert_eq!(body.data.access_token.expose_secret(), NEW_ACCESS);
    assert_eq!(body.data.refresh_token.expose_secret(), NEW_REFRESH);
    assert_eq!(body.data.expiration_time, 300);
    let bearer = format!("Bearer {REFRESH}");
    assert_request(
        &single_request(&server).await,
        &Expected {
            method: "PATCH",
            path: SESSION,
            query: None,
            headers: &[("accept", "application/json"), ("authorization", &bearer)],
            body: Body::None,
        },
    );
}

#[tokio::test]
async fn log_out_request_and_response() {
    let server = MockServer::start().await;
    let reply = json!({"status": {"code": 200, "name": "OK"}, "data": {}});
    mock(
        &server,
        "POST",
        LOGOUT,
        ResponseTemplate::new(200).set_body_json(reply),
    )
    .await;

    let response = bearer_client(&server, ACCESS).log_out().await.unwrap();

    assert_eq!(response.status(), 200);
    let body = response.into_inner();
    assert_eq!(body.status.code, 200);
    assert_eq!(body.status.name, "OK");
    assert_eq!(body.status.message, None);
    assert!(body.data.is_empty());
    let bearer = format!("Bearer {ACCESS}");
    assert_request(
        &single_request(&server).await,
        &Expected {
            method: "POST",
            path: LOGOUT,
            query: None,
            headers: &[("accept", "application/json"), ("authorization", &bearer)],
            body: Body::None,
        },
    );
}

/// The three operations, so that every error case is one line.
#[derive(Clone, Copy)]
enum Op {
    LogIn,
    RefreshTokens,
    LogOut,
}

impl Op {
    async fn call(
        self,
        server: &MockServer,
        response: ResponseTemplate,
    ) -> progenitor_client::Error<types::ErrorResponse> {
        match self {
            Op::LogIn => {
                mock(server, "POST", SESSION, response).await;
                client(server).log_in(&login_body()).await.unwrap_err()
            }
            Op::RefreshTokens => {
                mock(server, "PATCH", SESSION, response).await;
                bearer_client(server, REFRESH)
                    .refresh_tokens()
                    .await
                    .unwrap_err()
            }
            Op::LogOut => {
                mock(server, "POST", LOGOUT, response).await;
                bearer_client(server, ACCESS).log_out().await.unwrap_err()
            }
        }
    }
}

/// `op` answered with `status` and the envelope `{status: {code, name, message}}` must come back
/// as a documented error carrying all three.
async fn provider_error(op: Op, status: u16, name: &str, message: &str) {
    let server = MockServer::start().await;
    let reply = ResponseTemplate::new(status)
        .set_body_json(json!({"status": {"code": status, "name": name, "message": message}}));
    match op.call(&server, reply).await {
        progenitor_client::Error::ErrorResponse(response) => {
            assert_eq!(response.status(), status);
            let body = response.into_inner();
            let envelope = body.status.expect("the status envelope is decoded");
            assert_eq!(envelope.code, i32::from(status));
            assert_eq!(envelope.name, name);
            assert_eq!(envelope.message.as_deref(), Some(message));
            assert_eq!(body.data, None);
        }
        other => panic!("expected a documented error response, got {other:?}"),
    }
}

#[tokio::test]
async fn log_in_400_bad_request() {
    provider_error(Op::LogIn, 400, "BAD_REQUEST", "Bad request.").await;
}

#[tokio::test]
async fn log_in_404_user_not_found() {
    provider_error(Op::LogIn, 404, "NOT_FOUND", "User has not been found.").await;
}

#[tokio::test]
async fn log_in_422_signature_not_verified() {
    provider_error(
        Op::LogIn,
        422,
        "UNPROCESSABLE_ENTITY",
        "User signature could not be verified.",
    )
    .await;
}

#[tokio::test]
async fn log_in_500_internal_server_error() {
    provider_error(
        Op::LogIn,
        500,
        "INTERNAL_SERVER_ERROR",
        "Internal server error.",
    )
    .await;
}

#[tokio::test]
async fn refresh_tokens_400_bad_request() {
    provider_error(Op::RefreshTokens, 400, "BAD_REQUEST", "Bad request.").await;
}

#[tokio::test]
async fn refresh_tokens_401_refresh_token_not_valid() {
    provider_error(
        Op::RefreshTokens,
        401,
        "UNAUTHORIZED",
        "Refresh token is not valid.",
    )
    .await;
}

#[tokio::test]
async fn refresh_tokens_404_user_not_found() {
    provider_error(
        Op::RefreshTokens,
        404,
        "NOT_FOUND",
        "User has not been found.",
    )
    .await;
}

#[tokio::test]
async fn refresh_tokens_422_unprocessable_content() {
    provider_error(
        Op::RefreshTokens,
        422,
        "UNPROCESSABLE_ENTITY",
        "Unprocessable content.",
    )
    .await;
}

#[tokio::test]
async fn refresh_tokens_500_internal_server_error() {
    provider_error(
        Op::RefreshTokens,
        500,
        "INTERNAL_SERVER_ERROR",
        "Internal server error.",
    )
    .await;
}

#[tokio::test]
async fn log_out_400_bad_request() {
    provider_error(Op::LogOut, 400, "BAD_REQUEST", "Bad request.").await;
}

#[tokio::test]
async fn log_out_401_access_token_not_valid() {
    provider_error(
        Op::LogOut,
        401,
        "UNAUTHORIZED",
        "Access token is not valid.",
    )
    .await;
}

#[tokio::test]
async fn log_out_404_user_not_found() {
    provider_error(Op::LogOut, 404, "NOT_FOUND", "User has not been found.").await;
}

#[tokio::test]
async fn log_out_422_signature_not_verified() {
    provider_error(
        Op::LogOut,
        422,
        "UNPROCESSABLE_ENTITY",
        "User signature could not be verified.",
    )
    .await;
}

#[tokio::test]
async fn log_out_500_internal_server_error() {
    provider_error(
        Op::LogOut,
        500,
        "INTERNAL_SERVER_ERROR",
        "Internal server error.",
    )
    .await;
}

#[tokio::test]
async fn error_envelope_without_message_but_with_data_decodes() {
    // The error body is undocumented: the envelope of the API specification pages (no message)
    // with some detail in `data` must still decode.
    let server = MockServer::start().await;
    let reply = ResponseTemplate::new(400).set_body_json(json!({
        "status": {"code": 400, "name": "BAD_REQUEST"},
        "data": {"email": "must not be blank"}
    }));
    match Op::LogIn.call(&server, reply).await {
        progenitor_client::Error::ErrorResponse(response) => {
            assert_eq!(response.status(), 400);
            let body = response.into_inner();
            let envelope = body.status.expect("the status envelope is decoded");
            assert_eq!(envelope.code, 400);
            assert_eq!(envelope.name, "BAD_REQUEST");
            assert_eq!(envelope.message, None);
            assert_eq!(body.data, Some(json!({"email": "must not be blank"})));
        }
        other => panic!("expected a documented error response, got {other:?}"),
    }
}

#[tokio::test]
async fn error_body_that_is_not_json_is_kept_as_bytes() {
    // The error body's shape is undocumented: a plain-text body must survive for the layer above.
    let server = MockServer::start().await;
    let reply = ResponseTemplate::new(401).set_body_string("Unauthorized");
    match Op::RefreshTokens.call(&server, reply).await {
        progenitor_client::Error::InvalidResponsePayload(bytes, _) => {
            assert_eq!(&bytes[..], b"Unauthorized")
        }
        other => panic!("expected InvalidResponsePayload, got {other:?}"),
    }
}

#[tokio::test]
async fn undocumented_502_html_is_an_unexpected_response() {
    let server = MockServer::start().await;
    match Op::LogOut.call(&server, common::bad_gateway_html()).await {
        progenitor_client::Error::UnexpectedResponse(response) => {
            assert_eq!(response.status(), 502);
            assert!(response.text().await.unwrap().contains("502 Bad Gateway"));
        }
        other => panic!("expected UnexpectedResponse, got {other:?}"),
    }
}

#[test]
fn debug_of_secret_bearing_types_prints_no_secret() {
    let tokens = types::SessionTokens {
        access_token: ACCESS.into(),
        refresh_token: REFRESH.into(),
        expiration_time: 300.into(),
    };
    let response = types::SessionResponse {
        status: types::ResponseStatus {
            code: 200,
            name: "OK".into(),
            message: None,
        },
        data: tokens.clone(),
    };
    let printed = format!("{:?} {:?} {:?}", login_body(), tokens, response);
    for secret in [SIGNATURE, ACCESS, REFRESH] {
        assert!(!printed.contains(secret), "{secret} leaked in {printed}");
    }
    for public in [EMAIL, AUTH_PUBLIC_KEY, "expiration_time: 300"] {
        assert!(
            printed.contains(public),
            "non-secret {public} still prints in {printed}"
        );
    }
}
