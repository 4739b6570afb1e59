//! One handle over every service's session, for the tests that treat them all alike (the fault
//! matrix, the response fuzzer): how to build one, and what its documented login answer is.

use serde_json::{json, Value};
use tokensmith::clock::ManualClock;
use tokensmith::{AccessToken, Error, RequestCounts, RetryPolicy};
use wiremock::ResponseTemplate;

use super::{jwt, START_EPOCH};

pub const PASSWORD: &str = "pw-hunter2";
pub const FIB_PRIVATE: &str = "413b285d1819a6166b0daa762bb6bef2d082cffb9a13ce041cb0fda5e2f06dc3";

/// A service, as one login flavour of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    S7risk,
    Fib,
}

pub const SERVICES: [Service; 2] = [Service::S7risk, Service::Fib];

/// Any service's session.
pub enum AnySession {
    S7risk(tokensmith::s7risk::Session),
    Fib(tokensmith::fib::Session),
}

impl AnySession {
    pub async fn access_token(&self) -> Result<AccessToken, Error> {
        match self {
            Self::S7risk(s) => s.access_token().await,
            Self::Fib(s) => s.access_token().await,
        }
    }

    pub fn request_counts(&self) -> RequestCounts {
        match self {
            Self::S7risk(s) => s.request_counts(),
            Self::Fib(s) => s.request_counts(),
        }
    }
}

impl Service {
    /// A session against `base_url` using `http` and `retry`.
    pub fn session(
        self,
        base_url: &str,
        clock: &ManualClock,
        http: reqwest::Client,
        retry: RetryPolicy,
    ) -> AnySession {
        match self {
            Self::S7risk => AnySession::S7risk(
                tokensmith::s7risk::Session::builder()
                    .base_url(base_url)
                    .origin("https://api.example.com")
                    .credentials(tokensmith::s7risk::Credentials::user(
                        "analyst@example.com",
                        PASSWORD,
                    ))
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
        }
    }

    /// The documented login answer with `token` as its access token (any JSON value, to
    /// test missing and null ones).
    pub fn success(self, token: Value) -> Value {
        match self {
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
        body["data"].as_object_mut().unwrap().remove("accessToken");
        body
    }

    /// A documented login answer carrying `token`.
    pub fn answer(self, token: &str) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_json(self.success(json!(token)))
    }
}
