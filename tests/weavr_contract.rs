//! Contract tests for the generated Weavr Multi auth client: the exact requests it sends
//! (with `api-key`, the bearer token and `idempotency-ref`) and what it makes of every
//! documented response of the eight operations, `request-ref` included.
#![cfg(feature = "weavr")]

mod common;

use common::{assert_request, single_request, Body, Expected};
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION};
use serde_json::{json, Value};
use tokensmith::transport::Context;
use tokensmith::weavr::{types, Client};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const API_KEY: &str = "weavr-api-key-123";
const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMDEifQ.dG9rZW4";
const NEW_TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMDIifQ.bmV3";
const TEMP_TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJ0ZW1wIjp0cnVlfQ.dGVtcA";
const PASSWORD: &str = "Pa$$w0rd-Secret";
const NEW_PASSWORD: &str = "New-Pa$$w0rd-2";
const OTP: &str = "918273";
const REQUEST_REF: &str = "3f6b7e1c-4a2d-4b8e-9c1f-5d6e7a8b9c0d";
const BEARER: &str = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMDEifQ.dG9rZW4";

fn api_key_only(server: &MockServer) -> Client {
    let context = Context::new().with_header(
        HeaderName::from_static("api-key"),
        HeaderValue::from_static(API_KEY),
        true,
    );
    Client::new_with_client(&server.uri(), reqwest::Client::new(), context)
}

fn client(server: &MockServer) -> Client {
    let context = Context::new()
        .with_header(
            HeaderName::from_static("api-key"),
            HeaderValue::from_static(API_KEY),
            true,
        )
        .with_header(AUTHORIZATION, HeaderValue::from_static(BEARER), true);
    Client::new_with_client(&server.uri(), reqwest::Client::new(), context)
}

async fn mock(server: &MockServer, verb: &str, route: &str, response: ResponseTemplate) {
    Mock::given(method(verb))
        .and(path(route))
        .respond_with(response.insert_header("request-ref", REQUEST_REF))
        .mount(server)
        .await;
}

fn identity() -> types::IdentityId {
    types::IdentityId {
        id: "110123456789012345".into(),
        type_: types::IdentityType::Corporate,
    }
}

fn login_body() -> types::LoginRequest {
    types::LoginRequest {
        email: "user@example.com".into(),
        password: types::Password {
            value: PASSWORD.into(),
        },
    }
}

fn password_body() -> types::PasswordUpdateRequest {
    types::PasswordUpdateRequest {
        old_password: types::Password {
            value: PASSWORD.into(),
        },
        new_password: types::Password {
            value: NEW_PASSWORD.into(),
        },
    }
}

fn verify_body() -> types::VerifyRequest {
    types::VerifyRequest {
        verification_code: OTP.into(),
    }
}

const AUTHED: &[(&str, &str)] = &[("api-key", API_KEY), ("authorization", BEARER)];

#[tokio::test]
async fn login_with_password_request_and_response() {
    let server = MockServer::start().await;
    let reply = json!({
        "token": TOKEN, "tokenType": "AUTH",
        "identity": {"type": "CORPORATE", "id": "110123456789012345"},
        "credentials": {"type": "ROOT", "id": "110123456789012346"}
    });
    mock(
        &server,
        "POST",
        "/login_with_password",
        ResponseTemplate::new(200).set_body_json(reply),
    )
    .await;

    let response = api_key_only(&server)
        .login_with_password(&login_body())
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["request-ref"], REQUEST_REF);
    let body = response.into_inner();
    assert_eq!(body.token.expose_secret(), TOKEN);
    assert_eq!(body.token_type, Some(types::TokenType::Auth));
    let identity = body.identity.unwrap();
    assert_eq!(
        (identity.type_, identity.id.as_str()),
        (types::IdentityType::Corporate, "110123456789012345")
    );
    let credentials = body.credentials.unwrap();
    assert_eq!(
        (credentials.type_, credentials.id.as_str()),
        (types::CredentialType::Root, "110123456789012346")
    );
    let request = single_request(&server).await;
    assert!(
        request.headers.get("authorization").is_none(),
        "sign-in sends no bearer"
    );
    assert_request(
        &request,
        &Expected {
            method: "POST",
            path: "/login_with_password",
            query: None,
            headers: &[("api-key", API_KEY), ("accept", "application/json")],
            body: Body::Json(json!({"email": "user@example.com", "password": {"value": PASSWORD}})),
        },
    );
}

/// The 200 of `GET /identities` as Weavr's API reference page shows it (docs.weavr.io, Multi
/// API reference, "Get linked identities"; the project's `api-docs/weavr-multi-auth.txt`): a
/// bare array, byte for byte as the page prints it, where the vendor's OpenAPI document has a
/// page object. Both decode.
#[tokio::test]
async fn list_identities_as_the_reference_page_shows_it_a_bare_array() {
    let server = MockServer::start().await;
    let reply = "[\n  {\n    \"id\": {\n      \"type\": \"CONSUMER\",\n      \"id\": \"string\"\n    },\n    \"name\": \"string\"\n  }\n]";
    mock(
        &server,
        "GET",
        "/identities",
        ResponseTemplate::new(200).set_body_raw(reply, "application/json"),
    )
    .await;

    let body = client(&server)
        .list_identities(None, None)
        .await
        .unwrap()
        .into_inner();

    assert!(
        matches!(body, types::IdentitiesResponse::List(_)),
        "{body:?}"
    );
    assert_eq!(body.count(), None, "a bare array gives no total");
    let identities = body.into_identities();
    assert_eq!(identities.len(), 1);
    assert_eq!(identities[0].id.type_, types::IdentityType::Consumer);
    assert_eq!(identities[0].id.id, "string");
    assert_eq!(identities[0].name.as_deref(), Some("string"));

    // Neither shape: a typed decode failure, not a panic or an empty list.
    server.reset().await;
    mock(
        &server,
        "GET",
        "/identities",
        ResponseTemplate::new(200).set_body_raw(r#"{"identities":[]}"#, "application/json"),
    )
    .await;
    let refused = client(&server)
        .list_identities(None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            progenitor_client::Error::InvalidResponsePayload(..)
        ),
        "{refused:?}"
    );
}

#[tokio::test]
async fn list_identities_request_and_response() {
    let server = MockServer::start().await;
    let reply = json!({
        "identities": [{"id": {"type": "CONSUMER", "id": "110000000000000001"}, "name": "Jane"}],
        "count": 3, "responseCount": 1
    });
    mock(
        &server,
        "GET",
        "/identities",
        ResponseTemplate::new(200).set_body_json(reply),
    )
    .await;

    let body = client(&server)
        .list_identities(std::num::NonZeroU32::new(1), Some(2))
        .await
        .unwrap()
        .into_inner();

    let types::IdentitiesResponse::Page(page) = &body else {
        panic!("an object is a page: {body:?}");
    };
    assert_eq!((page.count, page.response_count), (3, 1));
    assert_eq!(body.count(), Some(3));
    let identities = body.identities();
    assert_eq!(identities.len(), 1);
    assert_eq!(identities[0].id.type_, types::IdentityType::Consumer);
    assert_eq!(identities[0].id.id, "110000000000000001");
    assert_eq!(identities[0].name.as_deref(), Some("Jane"));
    let request = single_request(&server).await;
    let mut headers = AUTHED.to_vec();
    headers.push(("accept", "application/json"));
    assert_request(
        &request,
        &Expected {
            method: "GET",
            path: "/identities",
            query: Some("limit=1&offset=2"),
            headers: &headers,
            body: Body::None,
        },
    );
}

#[tokio::test]
async fn create_access_token_request_and_response() {
    let server = MockServer::start().await;
    let reply = json!({
        "token": NEW_TOKEN,
        "identity": {"type": "CORPORATE", "id": "110123456789012345"},
        "credentials": {"type": "USER", "id": "7"},
        "status": "STEPPED_UP"
    });
    mock(
        &server,
        "POST",
        "/access_token",
        ResponseTemplate::new(200).set_body_json(reply),
    )
    .await;

    let body = client(&server)
        .create_access_token(&types::AccessTokenRequest {
            identity: identity(),
            client_assertion: None,
            token: None,
        })
        .await
        .unwrap()
        .into_inner();

    assert_eq!(body.token.expose_secret(), NEW_TOKEN);
    assert_eq!(body.status, Some(types::TokenStatus::SteppedUp));
    assert_eq!(body.credentials.unwrap().type_, types::CredentialType::User);
    assert_eq!(body.identity.unwrap().id, "110123456789012345");
    let mut headers = AUTHED.to_vec();
    headers.push(("accept", "application/json"));
    assert_request(
        &single_request(&server).await,
        &Expected {
            method: "POST",
            path: "/access_token",
            query: None,
            headers: &headers,
            body: Body::Json(
                json!({"identity": {"type": "CORPORATE", "id": "110123456789012345"}}),
            ),
        },
    );
}

#[tokio::test]
async fn a_delegated_api_client_exchanges_with_the_api_key_alone_and_its_secrets_stay_hidden() {
    const ASSERTION: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJkZWxlZ2F0ZWQifQ.c2lnbmVk";
    const ONE_TIME: &str = "otk-4f1c2e9a7b";
    let server = MockServer::start().await;
    let reply = json!({"token": NEW_TOKEN, "status": "STANDARD"});
    mock(
        &server,
        "POST",
        "/access_token",
        ResponseTemplate::new(200).set_body_json(reply),
    )
    .await;
    let request = types::AccessTokenRequest {
        identity: identity(),
        client_assertion: Some(ASSERTION.into()),
        token: Some(ONE_TIME.into()),
    };
    let printed = format!("{request:?}");
    assert!(
        !printed.contains(ASSERTION) && !printed.contains(ONE_TIME),
        "{printed}"
    );

    let body = api_key_only(&server)
        .create_access_token(&request)
        .await
        .unwrap()
        .into_inner();

    assert_eq!(body.token.expose_secret(), NEW_TOKEN);
    let sent = single_request(&server).await;
    assert!(sent.headers.get("authorization").is_none(), "no bearer");
    assert_request(
        &sent,
        &Expected {
            method: "POST",
            path: "/access_token",
            query: None,
            headers: &[
                ("api-key", API_KEY),
                ("content-type", "application/json"),
                ("accept", "application/json"),
            ],
            body: Body::Json(json!({
                "identity": {"type": "CORPORATE", "id": "110123456789012345"},
                "clientAssertion": ASSERTION,
                "token": ONE_TIME,
            })),
        },
    );
}

#[tokio::test]
async fn a_delegated_api_client_lists_identities_with_the_api_key_alone() {
    let server = MockServer::start().await;
    let reply = json!({"identities": [], "count": 0, "responseCount": 0});
    mock(
        &server,
        "GET",
        "/identities",
        ResponseTemplate::new(200).set_body_json(reply),
    )
    .await;

    let body = api_key_only(&server)
        .list_identities(None, None)
        .await
        .unwrap()
        .into_inner();

    assert_eq!((body.count(), body.identities().len()), (Some(0), 0));
    let sent = single_request(&server).await;
    assert!(sent.headers.get("authorization").is_none(), "no bearer");
    assert_request(
        &sent,
        &Expected {
            method: "GET",
            path: "/identities",
            query: None,
            headers: &[("api-key", API_KEY), ("accept", "application/json")],
            body: Body::None,
        },
    );
}

#[tokio::test]
async fn start_otp_challenge_request_and_204() {
    let server = MockServer::start().await;
    mock(
        &server,
        "POST",
        "/stepup/challenges/otp/SMS",
        ResponseTemplate::new(204),
    )
    .await;

    let response = client(&server)
        .start_otp_challenge(types::OtpChannel::Sms, Some("ref-1"))
        .await
        .unwrap();

    assert_eq!(response.status(), 204);
    let mut headers = AUTHED.to_vec();
    headers.push(("idempotency-ref", "ref-1"));
    assert_request(
        &single_request(&server).await,
        &Expected {
            method: "POST",
            path: "/stepup/challenges/otp/SMS",
            query: None,
            headers: &headers,
            body: Body::None,
        },
    );
}

#[tokio::test]
async fn verify_otp_challenge_request_and_204() {
    let server = MockServer::start().await;
    mock(
        &server,
        "POST",
        "/stepup/challenges/otp/SMS/verify",
        ResponseTemplate::new(204),
    )
    .await;

    let response = client(&server)
        .verify_otp_challenge(types::OtpChannel::Sms, None, &verify_body())
        .await
        .unwrap();

    assert_eq!(response.status(), 204);
    let request = single_request(&server).await;
    assert!(request.headers.get("idempotency-ref").is_none());
    assert_request(
        &request,
        &Expected {
            method: "POST",
            path: "/stepup/challenges/otp/SMS/verify",
            query: None,
            headers: AUTHED,
            body: Body::Json(json!({"verificationCode": OTP})),
        },
    );
}

#[tokio::test]
async fn start_push_challenge_request_and_response() {
    let server = MockServer::start().await;
    mock(
        &server,
        "POST",
        "/stepup/challenges/push/BIOMETRIC",
        ResponseTemplate::new(200).set_body_json(json!({"id": "1234567890"})),
    )
    .await;

    let body = client(&server)
        .start_push_challenge(types::PushChannel::Biometric, None)
        .await
        .unwrap()
        .into_inner();

    assert_eq!(body.id.as_deref(), Some("1234567890"));
    let mut headers = AUTHED.to_vec();
    headers.push(("accept", "application/json"));
    assert_request(
        &single_request(&server).await,
        &Expected {
            method: "POST",
            path: "/stepup/challenges/push/BIOMETRIC",
            query: None,
            headers: &headers,
            body: Body::None,
        },
    );
}

#[tokio::test]
async fn log_out_request_and_response() {
    let server = MockServer::start().await;
    mock(
        &server,
        "POST",
        "/logout",
        ResponseTemplate::new(200).set_body_json(json!({"url": "https://idp.example.com/logout"})),
    )
    .await;

    let body = client(&server).log_out().await.unwrap().into_inner();

    assert_eq!(body.url.as_deref(), Some("https://idp.example.com/logout"));
    let mut headers = AUTHED.to_vec();
    headers.push(("accept", "application/json"));
    assert_request(
        &single_request(&server).await,
        &Expected {
            method: "POST",
            path: "/logout",
            query: None,
            headers: &headers,
            body: Body::None,
        },
    );
}

#[tokio::test]
async fn log_out_answered_204_is_a_success_without_a_url() {
    // The vendor documents 200 {url} or 204; build.rs puts the bodiless 204 back as a success.
    let server = MockServer::start().await;
    mock(
        &server,
        "POST",
        "/logout",
        ResponseTemplate::new(204).insert_header("request-ref", REQUEST_REF),
    )
    .await;

    let response = client(&server).log_out().await.unwrap();

    assert_eq!(response.status(), 204);
    assert_eq!(response.headers()["request-ref"], REQUEST_REF);
    assert_eq!(response.into_inner().url, None);
    let mut headers = AUTHED.to_vec();
    headers.push(("accept", "application/json"));
    assert_request(
        &single_request(&server).await,
        &Expected {
            method: "POST",
            path: "/logout",
            query: None,
            headers: &headers,
            body: Body::None,
        },
    );
}

#[tokio::test]
async fn update_password_request_and_response() {
    let server = MockServer::start().await;
    let reply = json!({
        "passwordInfo": {"identityId": {"type": "CONSUMER", "id": "5"}, "expiryDate": 0},
        "token": NEW_TOKEN
    });
    mock(
        &server,
        "POST",
        "/passwords/update",
        ResponseTemplate::new(200).set_body_json(reply),
    )
    .await;

    let body = client(&server)
        .update_password(&password_body())
        .await
        .unwrap()
        .into_inner();

    assert_eq!(body.token.unwrap().expose_secret(), NEW_TOKEN);
    let info = body.password_info.unwrap();
    assert_eq!(info.expiry_date, Some(0));
    assert_eq!(info.identity_id.type_, types::IdentityType::Consumer);
    let mut headers = AUTHED.to_vec();
    headers.push(("accept", "application/json"));
    assert_request(
        &single_request(&server).await,
        &Expected {
            method: "POST",
            path: "/passwords/update",
            query: None,
            headers: &headers,
            body: Body::Json(
                json!({"oldPassword": {"value": PASSWORD}, "newPassword": {"value": NEW_PASSWORD}}),
            ),
        },
    );
}

/// The documented error body for `status` on `route`.
fn error_body(route: &str, status: u16) -> Value {
    match status {
        400 => json!({"message": "Request is invalid", "syntaxErrors": {"invalidFields": [
            {"params": ["8", "30"], "fieldName": "password.value", "error": "SIZE"}
        ]}}),
        403 => json!({"errorCode": "STEP_UP_REQUIRED"}),
        404 if route == "/identities" => json!({}),
        404 => json!({"errorCode": "TOKEN_NOT_FOUND"}),
        405 => json!({"code": "METHOD_NOT_ALLOWED", "message": "Channel not enabled"}),
        409 if route == "/login_with_password" => json!({"token": TEMP_TOKEN}),
        409 => json!({"errorCode": "VERIFICATION_CODE_INVALID"}),
        410 => json!({"errorCode": "TOKEN_EXPIRED"}),
        500 => json!({"message": "Internal Server Error"}),
        _ => json!({}),
    }
}

async fn call(server: &MockServer, route: &str) -> progenitor_client::Error<types::ErrorResponse> {
    let api = client(server);
    match route {
        "/login_with_password" => api.login_with_password(&login_body()).await.map(|_| ()),
        "/identities" => api.list_identities(None, None).await.map(|_| ()),
        "/access_token" => api
            .create_access_token(&types::AccessTokenRequest {
                identity: identity(),
                client_assertion: None,
                token: None,
            })
            .await
            .map(|_| ()),
        "/stepup/challenges/otp/SMS" => api
            .start_otp_challenge(types::OtpChannel::Sms, None)
            .await
            .map(|_| ()),
        "/stepup/challenges/otp/SMS/verify" => api
            .verify_otp_challenge(types::OtpChannel::Sms, None, &verify_body())
            .await
            .map(|_| ()),
        "/stepup/challenges/push/AUTHY" => api
            .start_push_challenge(types::PushChannel::Authy, None)
            .await
            .map(|_| ()),
        "/logout" => api.log_out().await.map(|_| ()),
        "/passwords/update" => api.update_password(&password_body()).await.map(|_| ()),
        other => panic!("no operation at {other}"),
    }
    .expect_err("an error status")
}

/// Every documented error status of every operation.
const DOCUMENTED: &[(&str, &str, &[u16])] = &[
    (
        "POST",
        "/login_with_password",
        &[400, 401, 403, 404, 409, 410, 423, 429, 500, 503],
    ),
    ("GET", "/identities", &[400, 401, 403, 404, 409, 500, 503]),
    (
        "POST",
        "/access_token",
        &[400, 401, 403, 423, 429, 500, 503],
    ),
    (
        "POST",
        "/stepup/challenges/otp/SMS",
        &[400, 401, 403, 405, 409, 429, 500, 503],
    ),
    (
        "POST",
        "/stepup/challenges/otp/SMS/verify",
        &[400, 401, 403, 409, 429, 500, 503],
    ),
    (
        "POST",
        "/stepup/challenges/push/AUTHY",
        &[400, 401, 403, 405, 409, 429, 500, 503],
    ),
    ("POST", "/logout", &[400, 401, 429, 500, 503]),
    (
        "POST",
        "/passwords/update",
        &[400, 401, 403, 404, 409, 410, 429, 500, 503],
    ),
];

#[tokio::test]
async fn every_documented_error_of_every_operation_comes_back_typed_with_its_request_ref() {
    let mut checked = 0;
    for (verb, route, statuses) in DOCUMENTED {
        for &status in *statuses {
            let server = MockServer::start().await;
            let body = error_body(route, status);
            let mut response = ResponseTemplate::new(status).set_body_json(&body);
            if status == 429 {
                response = response
                    .insert_header("x-ratelimit-limit", "20, 10;w=60")
                    .insert_header("x-ratelimit-reset", "30");
            }
            mock(&server, verb, route, response).await;
            match call(&server, route).await {
                progenitor_client::Error::ErrorResponse(response) => {
                    assert_eq!(response.status(), status, "{route}");
                    assert_eq!(
                        response.headers()["request-ref"],
                        REQUEST_REF,
                        "{route} {status}"
                    );
                    if status == 429 {
                        assert_eq!(response.headers()["x-ratelimit-reset"], "30");
                    }
                    let got = response.into_inner();
                    assert_eq!(
                        got.message.as_deref(),
                        body["message"].as_str(),
                        "{route} {status}"
                    );
                    assert_eq!(
                        got.error_code.as_deref(),
                        body["errorCode"].as_str(),
                        "{route} {status}"
                    );
                    assert_eq!(
                        got.code.as_deref(),
                        body["code"].as_str(),
                        "{route} {status}"
                    );
                    assert_eq!(
                        got.token
                            .as_ref()
                            .map(|t| t.expose_secret().to_owned())
                            .as_deref(),
                        body["token"].as_str(),
                        "{route} {status}"
                    );
                    if status == 400 {
                        let field = &got.syntax_errors.unwrap().invalid_fields[0];
                        assert_eq!(field.field_name.as_deref(), Some("password.value"));
                        assert_eq!(field.error, Some(types::FieldRule::Size));
                        assert_eq!(field.params, vec!["8".to_owned(), "30".to_owned()]);
                    }
                }
                other => panic!("{route} {status}: expected a documented error, got {other:?}"),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 61, "every documented status was checked");
}

#[tokio::test]
async fn an_error_status_with_no_body_keeps_its_status() {
    // 423 and 401 document no body; an empty one is kept as bytes with the status known to the
    // caller's probe, not lost.
    let server = MockServer::start().await;
    mock(
        &server,
        "POST",
        "/login_with_password",
        ResponseTemplate::new(423),
    )
    .await;
    match call(&server, "/login_with_password").await {
        progenitor_client::Error::InvalidResponsePayload(bytes, _) => assert!(bytes.is_empty()),
        other => panic!("expected InvalidResponsePayload, got {other:?}"),
    }
}

#[tokio::test]
async fn undocumented_502_html_is_an_unexpected_response() {
    let server = MockServer::start().await;
    mock(&server, "POST", "/access_token", common::bad_gateway_html()).await;
    match call(&server, "/access_token").await {
        progenitor_client::Error::UnexpectedResponse(response) => {
            assert_eq!(response.status(), 502);
            assert!(response.text().await.unwrap().contains("502 Bad Gateway"));
        }
        other => panic!("expected UnexpectedResponse, got {other:?}"),
    }
}

#[test]
fn debug_of_secret_bearing_types_prints_no_secret() {
    let values = format!(
        "{:?} {:?} {:?} {:?} {:?} {:?}",
        login_body(),
        password_body(),
        verify_body(),
        types::LoginResponse {
            credentials: None,
            identity: None,
            token: TOKEN.into(),
            token_type: Some(types::TokenType::Auth),
        },
        types::AccessTokenResponse {
            credentials: None,
            identity: Some(identity()),
            status: None,
            token: NEW_TOKEN.into(),
        },
        types::ErrorResponse {
            code: None,
            error_code: None,
            message: None,
            syntax_errors: None,
            token: Some(TEMP_TOKEN.into()),
        },
    );
    for secret in [TOKEN, NEW_TOKEN, TEMP_TOKEN, PASSWORD, NEW_PASSWORD, OTP] {
        assert!(!values.contains(secret), "{secret} leaked in {values}");
    }
    assert!(values.contains("user@example.com") && values.contains("110123456789012345"));
}
