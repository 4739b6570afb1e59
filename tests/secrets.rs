//! No secret ever shows: every flow runs with `tracing` at TRACE into a buffer (spans written
//! out with all their fields as they close), and every
//! public value and error it produces is formatted with `{:?}` and `{}`; none of the
//! passwords, client secrets, keys or tokens may appear anywhere in the result.
#![cfg(all(
    feature = "s7risk",
    feature = "weavr",
    feature = "accounts",
    feature = "passwordsafe",
    feature = "fib"
))]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{jwt, test_clock, START_EPOCH};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PASSWORD: &str = "pw-Secret-Horse-1";
const APP_SECRET: &str = "app-Secret-Battery-2";
const FIB_PRIVATE: &str = "413b285d1819a6166b0daa762bb6bef2d082cffb9a13ce041cb0fda5e2f06dc3";
const FIB_SIGNATURE: &str = "57e7115dfb9faa9add2d2ceb321c20db8c1e7f468d2ffc122793fa61e8ed61581580faaeae83a07fe857894bb33defd61c4ba099b981020146fe8d2be00e630a";

fn access(tag: &str) -> String {
    jwt(START_EPOCH + 300, &format!("access-{tag}"))
}

fn refresh(tag: &str) -> String {
    jwt(START_EPOCH + 86_400, &format!("refresh-{tag}"))
}

const WEAVR_API_KEY: &str = "weavr-Api-Key-7";
const WEAVR_TEMP: &str = "weavr-Temporary-Token-8";
const ACCOUNTS_SESSION: &str = "accounts-Challenge-Session-9";
const ACCOUNTS_ID: &str = "accounts-Id-Token-10";
const NEW_PASSWORD: &str = "pw-New-Secret-11";
const PS_API_KEY: &str = "ps-ApiKey-Staple-3";
const PS_CLIENT_SECRET: &str = "ps-Client-Secret-4";
const PS_COOKIE: &str = "ps-Session-Cookie-5";
const PS_BEARER: &str = "ps-Bearer-Token-6";

/// Every secret the flows below use or receive.
fn secrets() -> Vec<String> {
    let mut all = vec![
        WEAVR_API_KEY.to_owned(),
        WEAVR_TEMP.to_owned(),
        ACCOUNTS_SESSION.to_owned(),
        ACCOUNTS_ID.to_owned(),
        NEW_PASSWORD.to_owned(),
        PS_API_KEY.to_owned(),
        PS_CLIENT_SECRET.to_owned(),
        PS_COOKIE.to_owned(),
        PS_BEARER.to_owned(),
        PASSWORD.to_owned(),
        APP_SECRET.to_owned(),
        FIB_PRIVATE.to_owned(),
        FIB_SIGNATURE.to_owned(),
    ];
    for tag in ["one", "two", "three"] {
        all.push(access(tag));
        all.push(refresh(tag));
    }
    all
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
    type Writer = Buffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Collects every formatted value of a flow.
#[derive(Default)]
struct Shown(Vec<String>);

impl Shown {
    fn show<T: std::fmt::Debug>(&mut self, value: &T) {
        self.0.push(format!("{value:?} {value:#?}"));
    }

    fn show_result<T: std::fmt::Debug>(&mut self, result: &Result<T, tokensmith::Error>) {
        match result {
            Ok(value) => self.show(value),
            Err(error) => self.0.push(format!(
                "{error} {error:?} {:?} {:?} {:?}",
                error.message(),
                error.kind(),
                std::error::Error::source(error).map(|s| s.to_string())
            )),
        }
    }
}

async fn s7risk_flows(shown: &mut Shown) {
    use tokensmith::s7risk::Session;
    let server = MockServer::start().await;
    let clock = test_clock();
    Mock::given(method("POST"))
        .and(path("/user/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"status": "success", "data": {"accessToken": jwt(START_EPOCH + 86_400, "access-one")}}),
        ))
        .mount(&server)
        .await;
    // The application login answers a token in the wrong place: a decode error whose input
    // must not be quoted.
    Mock::given(method("POST"))
        .and(path("/application/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [access("two")]})))
        .mount(&server)
        .await;
    let builder = Session::builder()
        .base_url(server.uri())
        .origin("https://api.example.com")
        .user("analyst@example.com", PASSWORD)
        .clock(clock.clone());
    shown.show(&builder);
    let session = builder.build().unwrap();
    shown.show_result(&session.access_token().await);
    shown.show(&session);
    let request = session
        .authorize(reqwest::Client::new().get(format!("{}/anything", server.uri())))
        .await;
    shown.show_result(&request);
    // The session's own sending: a 401 from the vendor's other API renews once and resends.
    Mock::given(method("GET"))
        .and(path("/alerts"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"message": "expired"})))
        .mount(&server)
        .await;
    let sent = session
        .send(reqwest::Client::new().get(format!("{}/alerts", server.uri())))
        .await;
    shown.show_result(&sent);
    clock.advance(Duration::from_secs(86_400));
    shown.show_result(&session.access_token().await);

    let app = Session::builder()
        .base_url(server.uri())
        .origin("https://api.example.com")
        .application("client-1", APP_SECRET)
        .clock(clock.clone())
        .build()
        .unwrap();
    shown.show_result(&app.access_token().await);
    shown.show(&app);
}

async fn fib_flows(shown: &mut Shown) {
    use tokensmith::fib::Session;
    const SESSION: &str = "/auth/api/v1/authentication-management/session";
    let server = MockServer::start().await;
    let clock = test_clock();
    let tokens = |tag: &str| {
        ResponseTemplate::new(200).set_body_json(json!({
            "status": {"code": 200, "name": "OK"},
            "data": {"accessToken": access(tag), "refreshToken": refresh(tag), "expirationTime": 300}
        }))
    };
    Mock::given(method("POST"))
        .and(path(SESSION))
        .respond_with(tokens("one"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(SESSION))
        .respond_with(tokens("two"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    // The second refresh is refused; the session logs in again, and that login is refused.
    Mock::given(method("PATCH"))
        .and(path(SESSION))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "status": {"code": 401, "name": "UNAUTHORIZED", "message": "Invalid token"}
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(SESSION))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "status": {"code": 422, "name": "UNPROCESSABLE_ENTITY", "message": "Invalid signature"}
        })))
        .mount(&server)
        .await;
    let builder = Session::builder()
        .base_url(server.uri())
        .email("alice@wonderland.space")
        .private_key(FIB_PRIVATE)
        .clock(clock.clone());
    shown.show(&builder);
    let session = builder.build().unwrap();
    for _ in 0..3 {
        shown.show_result(&session.access_token().await);
        shown.show(&session);
        clock.advance(Duration::from_secs(299));
    }
    let counts = session.request_counts();
    assert_eq!(
        (counts.logins, counts.refreshes),
        (2, 2),
        "login, refresh, refused refresh, refused login"
    );
}

async fn weavr_flows(shown: &mut Shown) {
    use tokensmith::weavr::{IdentityType, Session};
    let server = MockServer::start().await;
    let clock = test_clock();
    // First sign-in: password expired; after the update, sign-ins succeed (AUTH token,
    // exchanged for the identity's access token).
    Mock::given(method("POST"))
        .and(path("/login_with_password"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({"token": WEAVR_TEMP})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/login_with_password"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"token": access("one"), "tokenType": "AUTH"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/passwords/update"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"token": access("two")})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/access_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"token": access("three")})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/identities"))
        .respond_with(
            ResponseTemplate::new(403).set_body_json(json!({"errorCode": "STEP_UP_REQUIRED"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/logout"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let builder = Session::builder()
        .base_url(server.uri())
        .api_key(WEAVR_API_KEY)
        .email("user@example.com")
        .password(PASSWORD)
        .identity(IdentityType::Corporate, "110")
        .clock(clock.clone());
    shown.show(&builder);
    let session = builder.build().unwrap();
    let expired = session.access_token().await;
    shown.show_result(&expired);
    let temporary = expired.unwrap_err().temporary_token().unwrap().clone();
    shown.show_result(
        &session
            .change_password(&temporary, PASSWORD, NEW_PASSWORD)
            .await,
    );
    shown.show(&session);
    let call = session.api().list_identities(None, None).await;
    shown.0.push(format!("{call:?}"));
    clock.advance(Duration::from_secs(301));
    shown.show_result(&session.access_token().await);
    shown.show_result(&session.logout().await);
}

async fn accounts_flows(shown: &mut Shown) {
    use tokensmith::accounts::Session;
    let server = MockServer::start().await;
    let clock = test_clock();
    Mock::given(method("POST"))
        .and(path("/v1/login"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"challenge_name": "NEW_PASSWORD_REQUIRED", "session": ACCOUNTS_SESSION}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/new-password-required"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": access("one"), "id_token": ACCOUNTS_ID,
            "refresh_token": refresh("one"), "expires_in": 300
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/token-refresh"))
        .respond_with(ResponseTemplate::new(429).set_body_json(
            json!({"status": 429, "message": "Refresh tokens limit has been exceeded."}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/change-password"))
        .respond_with(
            ResponseTemplate::new(422).set_body_json(json!({"status": 422, "message": "bad"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/token-revoke"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let builder = Session::builder()
        .base_url(server.uri())
        .username("admin")
        .password(PASSWORD)
        .clock(clock.clone());
    shown.show(&builder);
    let session = builder.build().unwrap();
    let challenged = session.access_token().await;
    shown.show_result(&challenged);
    let challenge = challenged.unwrap_err().challenge_session().unwrap().clone();
    shown.show_result(
        &session
            .complete_new_password(&challenge, NEW_PASSWORD)
            .await,
    );
    shown.show_result(&session.id_token().await);
    shown.show_result(&session.change_password(NEW_PASSWORD, PASSWORD).await);
    clock.advance(Duration::from_secs(290));
    shown.show_result(&session.access_token().await);
    shown.show(&session);
    shown.show_result(&session.logout().await);
}

async fn passwordsafe_flows(shown: &mut Shown) {
    use tokensmith::passwordsafe::Session;
    let server = MockServer::start().await;
    let clock = test_clock();
    Mock::given(method("POST"))
        .and(path("/Auth/connect/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": PS_BEARER, "expires_in": 3600, "token_type": "Bearer", "scope": "publicapi"
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/Auth/SignAppin"))
        .and(wiremock::matchers::header(
            "authorization",
            format!("Bearer {PS_BEARER}").as_str(),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header(
                    "set-cookie",
                    format!("ASP.NET_SessionId={PS_COOKIE}; path=/").as_str(),
                )
                .set_body_json(json!({"UserId": 1})),
        )
        .mount(&server)
        .await;
    // PS-Auth with a password is refused.
    Mock::given(method("POST"))
        .and(path("/Auth/SignAppin"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!("Unauthorized")))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/Auth/Signout"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let builder = Session::builder()
        .base_url(server.uri())
        .oauth("client-1", PS_CLIENT_SECRET)
        .clock(clock.clone());
    shown.show(&builder);
    let session = builder.build().unwrap();
    shown.show_result(&session.access_token().await);
    shown.show(&session);
    let sent = session
        .send(reqwest::Client::new().get(format!("{}/ManagedAccounts", server.uri())))
        .await;
    shown.show_result(&sent);
    let signed_out = session.api().sign_out(None).await;
    shown.0.push(format!("{signed_out:?}"));
    shown.show_result(&session.logout().await);

    let builder = Session::builder()
        .base_url(server.uri())
        .ps_auth(PS_API_KEY, "svc-reader", Some(PASSWORD.into()))
        .clock(clock.clone());
    shown.show(&builder);
    let session = builder.build().unwrap();
    shown.show_result(&session.access_token().await);
    shown.show_result(&session.access_token().await);
    shown.show(&session);
}

#[tokio::test]
async fn no_flow_shows_a_secret_in_logs_values_or_errors() {
    let logs = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        // Every span is written out when it closes, with every field recorded on it.
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut shown = Shown::default();
    s7risk_flows(&mut shown).await;
    fib_flows(&mut shown).await;
    passwordsafe_flows(&mut shown).await;
    weavr_flows(&mut shown).await;
    accounts_flows(&mut shown).await;

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("logged in"), "the logs were captured: {logs}");
    assert!(logs.contains("token refreshed"), "{logs}");
    assert!(logs.contains("login failed"), "{logs}");
    assert!(logs.contains("session ended"), "{logs}");
    for span in [
        r#"tokensmith.grant="login""#,
        r#"tokensmith.grant="refresh""#,
        r#"tokensmith.grant="exchange""#,
        r#"tokensmith.grant="logout""#,
        r#"tokensmith.grant="new_password""#,
        r#"tokensmith.grant="password_change""#,
        r#"error.type="401""#,
    ] {
        assert!(logs.contains(span), "the spans were captured: {span}");
    }
    let shown = shown.0.join("\n");
    assert!(shown.contains("[redacted]"), "{shown}");
    for secret in secrets() {
        assert!(
            !logs.contains(&secret),
            "a log line shows {secret}:\n{logs}"
        );
        assert!(!shown.contains(&secret), "a value shows {secret}:\n{shown}");
    }
}
