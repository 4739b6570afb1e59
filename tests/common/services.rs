//! One handle over every service's session, for the tests that treat them all alike (the fault
//! matrix, the response fuzzer): how to build one, and what its documented login answer is.

use serde_json::{json, Value};
use tokensmith::clock::ManualClock;
use tokensmith::{AccessToken, Error, RequestCounts, RetryPolicy};
use wiremock::ResponseTemplate;

use super::{jwt, START_EPOCH};

pub const PASSWORD: &str = "pw-hunter2";
pub const FIB_PRIVATE: &str = "413b285d1819a6166b0daa762bb6bef2d082cffb9a13ce041cb0fda5e2f06dc3";

pub const PS_API_KEY: &str = "ps-key-0123456789";
pub const PS_CLIENT_SECRET: &str = "ps-client-secret-42";
/// The session cookie SignAppin opens for OAuth sessions in these tests.
pub const PS_OAUTH_SESSION: &str = "oauth-session-7";

/// A service, as one login flavour of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    S7risk,
    Weavr,
    Accounts,
    Fib,
    PasswordSafeOauth,
    PasswordSafeKey,
}

pub const SERVICES: [Service; 6] = [
    Service::S7risk,
    Service::Weavr,
    Service::Accounts,
    Service::Fib,
    Service::PasswordSafeOauth,
    Service::PasswordSafeKey,
];

pub const WEAVR_API_KEY: &str = "weavr-api-key-77";

/// Any service's session.
pub enum AnySession {
    S7risk(tokensmith::s7risk::Session),
    Weavr(tokensmith::weavr::Session),
    Accounts(tokensmith::accounts::Session),
    Fib(tokensmith::fib::Session),
    PasswordSafe(tokensmith::passwordsafe::Session),
}

impl AnySession {
    pub async fn access_token(&self) -> Result<AccessToken, Error> {
        match self {
            Self::S7risk(s) => s.access_token().await,
            Self::Weavr(s) => s.access_token().await,
            Self::Accounts(s) => s.access_token().await,
            Self::Fib(s) => s.access_token().await,
            Self::PasswordSafe(s) => s.access_token().await,
        }
    }

    pub fn request_counts(&self) -> RequestCounts {
        match self {
            Self::S7risk(s) => s.request_counts(),
            Self::Weavr(s) => s.request_counts(),
            Self::Accounts(s) => s.request_counts(),
            Self::Fib(s) => s.request_counts(),
            Self::PasswordSafe(s) => s.request_counts(),
        }
    }
}

fn ps_cookie(value: &str) -> String {
    format!("ASP.NET_SessionId={value}")
}

fn ps_signed_in(session: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header(
            "set-cookie",
            format!("{}; path=/; secure; HttpOnly", ps_cookie(session)).as_str(),
        )
        .set_body_json(json!({"UserId": 12, "UserName": "svc-reader"}))
}

impl Service {
    /// A session against `base_url` using `http` and `retry`.
    pub fn session(
        self,
        base_url: &str,
        clock: &ManualClock,
        http: reqwest::ClientBuilder,
        retry: RetryPolicy,
    ) -> AnySession {
        match self {
            Self::S7risk => AnySession::S7risk(
                tokensmith::s7risk::Session::builder()
                    .base_url(base_url)
                    .origin("https://api.example.com")
                    .user("analyst@example.com", PASSWORD)
                    .http_client(http)
                    .retry_policy(retry)
                    .clock(clock.clone())
                    .build()
                    .unwrap(),
            ),
            Self::Weavr => AnySession::Weavr(
                tokensmith::weavr::Session::builder()
                    .base_url(base_url)
                    .api_key(WEAVR_API_KEY)
                    .email("user@example.com")
                    .password(PASSWORD)
                    .http_client(http)
                    .retry_policy(retry)
                    .clock(clock.clone())
                    .build()
                    .unwrap(),
            ),
            Self::Accounts => AnySession::Accounts(
                tokensmith::accounts::Session::builder()
                    .base_url(base_url)
                    .username("admin")
                    .password(PASSWORD)
                    .http_client(http)
                    .retry_policy(retry)
                    .clock(clock.clone())
                    .build()
                    .unwrap(),
            ),
            Self::Fib => AnySession::Fib(
                tokensmith::fib::Session::builder()
                    .base_url(base_url)
                    .email("alice@wonderland.space")
                    .private_key(FIB_PRIVATE)
                    .http_client(http)
                    .retry_policy(retry)
                    .clock(clock.clone())
                    .build()
                    .unwrap(),
            ),
            Self::PasswordSafeOauth | Self::PasswordSafeKey => {
                let builder = tokensmith::passwordsafe::Session::builder().base_url(base_url);
                let builder = if self == Self::PasswordSafeOauth {
                    builder.oauth("client-1", PS_CLIENT_SECRET)
                } else {
                    builder.ps_auth(PS_API_KEY, "svc-reader", Some(PASSWORD.into()))
                };
                AnySession::PasswordSafe(
                    builder
                        .http_client(http)
                        .retry_policy(retry)
                        .clock(clock.clone())
                        .build()
                        .unwrap(),
                )
            }
        }
    }

    /// The path of the request that logs in: faults are injected there.
    pub fn login_path(self) -> &'static str {
        match self {
            Self::S7risk => "/user/token",
            Self::Weavr => "/login_with_password",
            Self::Accounts => "/v1/login",
            Self::Fib => "/auth/api/v1/authentication-management/session",
            Self::PasswordSafeOauth => "/Auth/connect/token",
            Self::PasswordSafeKey => "/Auth/SignAppin",
        }
    }

    /// Good answers for the requests a login makes after the first (OAuth: SignAppin).
    pub async fn mount_rest(self, server: &wiremock::MockServer) {
        if self == Self::PasswordSafeOauth {
            wiremock::Mock::given(wiremock::matchers::path("/Auth/SignAppin"))
                .respond_with(ps_signed_in(PS_OAUTH_SESSION))
                .mount(server)
                .await;
        }
    }

    /// What the session caches after a login whose first answer was `answer(token)`.
    pub fn cached_secret(self, token: &str) -> String {
        match self {
            Self::S7risk | Self::Weavr | Self::Accounts | Self::Fib => token.to_owned(),
            Self::PasswordSafeOauth => ps_cookie(PS_OAUTH_SESSION),
            Self::PasswordSafeKey => ps_cookie(token),
        }
    }

    /// The token a first login answer with this JSON body carries, if any (PS-Auth: its
    /// token travels in a cookie, never in the body).
    pub fn token_in(self, body: &Value) -> Option<String> {
        match self {
            Self::S7risk | Self::Fib => body["data"]["accessToken"].as_str().map(str::to_owned),
            Self::Weavr => body["token"].as_str().map(str::to_owned),
            Self::Accounts => body["access_token"].as_str().map(str::to_owned),
            Self::PasswordSafeOauth => body["access_token"].as_str().map(str::to_owned),
            Self::PasswordSafeKey => None,
        }
    }

    /// The JSON body of the documented login answer with `token` as its access token (any
    /// JSON value, to test missing and null ones). PS-Auth's answer is the user; its token is
    /// the cookie [`Self::answer`] sets.
    pub fn success(self, token: Value) -> Value {
        match self {
            Self::Weavr => json!({"token": token, "tokenType": "ACCESS"}),
            Self::Accounts => json!({
                "access_token": token,
                "id_token": "id-token",
                "refresh_token": "tok-refresh",
                "expires_in": 86400,
            }),
            Self::PasswordSafeOauth => json!({
                "access_token": token,
                "expires_in": 3600,
                "token_type": "Bearer",
                "scope": "publicapi",
            }),
            Self::PasswordSafeKey => json!({"UserId": 12, "UserName": "svc-reader", "Name": token}),
            Self::S7risk => json!({"status": "success", "data": {"accessToken": token}}),
            Self::Fib => json!({
                "status": {"code": 200, "name": "OK"},
                "data": {
                    "accessToken": token,
                    "refreshToken": jwt(START_EPOCH + 86_400, "tok-refresh"),
                    "expirationTime": 300,
                }
            }),
        }
    }

    /// The documented login answer, with the access token field removed.
    pub fn without_token(self) -> Value {
        let mut body = self.success(Value::Null);
        match self {
            Self::S7risk | Self::Fib => {
                body["data"].as_object_mut().unwrap().remove("accessToken");
            }
            Self::PasswordSafeOauth | Self::Accounts => {
                body.as_object_mut().unwrap().remove("access_token");
            }
            Self::Weavr => {
                body.as_object_mut().unwrap().remove("token");
            }
            Self::PasswordSafeKey => {
                body.as_object_mut().unwrap().remove("Name");
            }
        }
        body
    }

    /// A documented login answer carrying `token`.
    pub fn answer(self, token: &str) -> ResponseTemplate {
        match self {
            Self::PasswordSafeKey => ps_signed_in(token),
            _ => ResponseTemplate::new(200).set_body_json(self.success(json!(token))),
        }
    }
}
