//! Arbitrary statuses and bodies fed to every service's login handling: whatever comes back,
//! the result is a token or a typed error carrying the status, never a panic, and an error
//! never quotes more than a short excerpt of what the service sent. Extreme numbers (huge,
//! negative, fractional, non-numeric, dates in the years 1900 and 9999) in the retry headers,
//! the JWT claims and the lifetime fields give a lifetime of at most a year and a wait of at
//! most a day, on the call that received them and on the next.
#![cfg(all(
    feature = "s7risk",
    feature = "weavr",
    feature = "accounts",
    feature = "passwordsafe",
    feature = "fib"
))]

mod common;

use std::sync::{Arc, Mutex, OnceLock};

use common::services::{Service, SERVICES};
use common::test_clock;
use proptest::prelude::*;
use serde_json::{json, Value};
use tokensmith::{ErrorKind, RetryPolicy};
use wiremock::matchers::any as any_request;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// What the server answers next: set by each case before it logs in.
#[derive(Clone, Default)]
struct Next(
    Arc<Mutex<(u16, Vec<u8>)>>,
    Arc<Mutex<Vec<(&'static str, String)>>>,
);

impl Next {
    fn set(&self, status: u16, body: Vec<u8>, headers: Vec<(&'static str, String)>) {
        *self.0.lock().unwrap() = (status, body);
        *self.1.lock().unwrap() = headers;
    }
}

impl Respond for Next {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let (status, body) = self.0.lock().unwrap().clone();
        let mut answer = ResponseTemplate::new(status).set_body_raw(body, "application/json");
        for (name, value) in self.1.lock().unwrap().iter() {
            answer = answer.insert_header(*name, value.as_str());
        }
        answer
    }
}

/// The two properties share one server: a case holds this while it sets and reads it.
static SERIAL: Mutex<()> = Mutex::new(());

struct Harness {
    runtime: tokio::runtime::Runtime,
    server: MockServer,
    next: Next,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let next = Next::default();
        let server = runtime.block_on(async {
            let server = MockServer::start().await;
            Mock::given(any_request())
                .respond_with(next.clone())
                .mount(&server)
                .await;
            server
        });
        Harness {
            runtime,
            server,
            next,
        }
    })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-zA-Z]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Bodies from pure noise to nearly right.
fn body(service: Service) -> impl Strategy<Value = Vec<u8>> {
    let valid = service.success(json!("tok-fuzz")).to_string().into_bytes();
    let truncate = {
        let valid = valid.clone();
        (0..valid.len()).prop_map(move |n| valid[..n].to_vec())
    };
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..600),
        truncate,
        json_value().prop_map(move |v| service.success(v).to_string().into_bytes()),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        Just(valid),
    ]
}

/// Every string of six or more characters in a JSON body (what could be a token).
fn string_leaves(body: &[u8]) -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(s) if s.chars().count() >= 6 => out.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            Value::Object(map) => map.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        walk(&value, &mut out);
    }
    out
}

fn case() -> impl Strategy<Value = (Service, u16, Vec<u8>)> {
    (0..SERVICES.len(), 200u16..600).prop_flat_map(|(i, status)| {
        let service = SERVICES[i];
        (Just(service), Just(status), body(service))
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 400,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_answer_is_a_token_or_a_typed_error((service, status, body) in case()) {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let h = harness();
        h.next.set(status, body.clone(), Vec::new());
        let session = service.session(
            &h.server.uri(),
            &test_clock(),
            reqwest::Client::builder(),
            RetryPolicy::none(),
        );
        let result = h.runtime.block_on(session.access_token());
        match result {
            Ok(token) => {
                prop_assert!((200..300).contains(&status), "a token from a {status}");
                let sent: Value = serde_json::from_slice(&body).expect("a token came from JSON");
                prop_assert_eq!(
                    Some(token.secret().expose_secret().to_owned()),
                    service.token_in(&sent)
                );
            }
            Err(error) => {
                let shown = format!("{error} {error:?}");
                prop_assert_ne!(error.kind(), ErrorKind::Configuration, "{}", shown);
                if !matches!(error.kind(), ErrorKind::Transport | ErrorKind::Timeout) {
                    prop_assert_eq!(error.status(), Some(status), "{}", shown);
                }
                if (200..300).contains(&status) {
                    // A success-status body may hold a token: nothing of it is kept (an error
                    // may say, in its own words, what was wrong with it).
                    for secret in string_leaves(&body) {
                        prop_assert!(!shown.contains(&secret), "{} shows {}", shown, secret);
                    }
                } else if let Some(message) = error.message() {
                    prop_assert!(message.chars().count() <= 201, "{}", shown);
                }
            }
        }
    }
}

/// Numbers no service should send, as JSON text: huge, negative, fractional, not numbers at
/// all, and the years 1900 and 9999 as epoch seconds and milliseconds.
const EXTREME_JSON: &[&str] = &[
    "1e300",
    "-1e300",
    "1e25",
    "1e20",
    "18446744073709551615",
    "9223372036854775807",
    "-9223372036854775808",
    "-1",
    "0",
    "1e-300",
    "0.5",
    "1700000600.25",
    "-2208988800",
    "-2208988800000",
    "253402300799",
    "253402300799000",
    "\"1700000600\"",
    "\"soon\"",
    "null",
    "true",
    "[]",
];

/// The same as header values, with HTTP dates and what only a header can carry.
const EXTREME_HEADER: &[&str] = &[
    "18446744073709551615",
    "99999999999999999999999999",
    "1e300",
    "1e25",
    "-1",
    "-0",
    "0.5",
    "NaN",
    "inf",
    "-2208988800",
    "253402300799",
    "253402300799000",
    "Mon, 01 Jan 1900 00:00:00 GMT",
    "Fri, 31 Dec 9999 23:59:59 GMT",
    "Thu, 01 Jan 1970 00:00:00 GMT",
    "soon",
    "120",
];

/// An unsigned JWT whose claims are these JSON texts.
fn jwt_claims(exp: &str, iat: Option<&str>, nbf: Option<&str>) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims = format!(r#"{{"sub":"fuzz","exp":{exp}"#);
    if let Some(iat) = iat {
        claims.push_str(&format!(r#","iat":{iat}"#));
    }
    if let Some(nbf) = nbf {
        claims.push_str(&format!(r#","nbf":{nbf}"#));
    }
    claims.push('}');
    format!(
        "{}.{}.c2ln",
        b64.encode(r#"{"alg":"RS256"}"#),
        b64.encode(claims)
    )
}

/// A documented login answer whose access (and fib refresh) token is a JWT with extreme
/// claims, and whose lifetime field (accounts and OAuth `expires_in`, fib `expirationTime`)
/// holds an extreme number.
fn extreme_body(service: Service, token: &str, refresh: &str, lifetime: &str) -> Vec<u8> {
    let mut body = service.success(json!(token));
    let mut text = body.to_string();
    for (field, documented) in [
        ("expires_in", 86_400),
        ("expires_in", 3600),
        ("expirationTime", 300),
    ] {
        text = text.replace(
            &format!(r#""{field}":{documented}"#),
            &format!(r#""{field}":{lifetime}"#),
        );
    }
    if service == Service::Fib {
        body = serde_json::from_str(&text).unwrap_or(body);
        if body.is_object() {
            body["data"]["refreshToken"] = json!(refresh);
            return body.to_string().into_bytes();
        }
    }
    text.into_bytes()
}

fn pick(values: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    prop::sample::select(values)
}

#[derive(Debug, Clone)]
struct Extreme {
    service: Service,
    status: u16,
    exp: &'static str,
    iat: Option<&'static str>,
    nbf: Option<&'static str>,
    refresh_exp: &'static str,
    lifetime: &'static str,
    retry_after: Option<&'static str>,
    reset: Option<&'static str>,
}

fn extreme() -> impl Strategy<Value = Extreme> {
    (
        (
            0..SERVICES.len(),
            prop::sample::select(&[200u16, 200, 200, 423, 429, 503][..]),
            pick(EXTREME_JSON),
            prop::option::of(pick(EXTREME_JSON)),
            prop::option::of(pick(EXTREME_JSON)),
        ),
        (
            pick(EXTREME_JSON),
            pick(EXTREME_JSON),
            prop::option::of(pick(EXTREME_HEADER)),
            prop::option::of(pick(EXTREME_HEADER)),
        ),
    )
        .prop_map(
            |((i, status, exp, iat, nbf), (refresh_exp, lifetime, retry_after, reset))| Extreme {
                service: SERVICES[i],
                status,
                exp,
                iat,
                nbf,
                refresh_exp,
                lifetime,
                retry_after,
                reset,
            },
        )
}

/// The longest lifetime a session takes from an answer, and the longest wait.
const YEAR: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 60 * 60);
const DAY: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn extreme_numbers_in_headers_and_claims_never_panic(case in extreme()) {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let h = harness();
        let token = jwt_claims(case.exp, case.iat, case.nbf);
        let refresh = jwt_claims(case.refresh_exp, None, None);
        let body = if case.status == 200 {
            extreme_body(case.service, &token, &refresh, case.lifetime)
        } else {
            json!({"message": format!("Try again in {} minutes", case.lifetime)})
                .to_string()
                .into_bytes()
        };
        let mut headers = Vec::new();
        if let Some(v) = case.retry_after {
            headers.push(("retry-after", v.to_owned()));
        }
        if let Some(v) = case.reset {
            headers.push(("x-ratelimit-reset", v.to_owned()));
        }
        h.next.set(case.status, body, headers);
        let clock = test_clock();
        let session = case.service.session(
            &h.server.uri(),
            &clock,
            reqwest::Client::builder(),
            RetryPolicy::none(),
        );
        for call in ["first", "second"] {
            match h.runtime.block_on(session.access_token()) {
                Ok(token) => {
                    prop_assert_eq!(case.status, 200);
                    prop_assert!(token.expires_in() <= YEAR, "{} call: {:?}", call, token);
                }
                Err(error) => {
                    prop_assert_ne!(error.kind(), ErrorKind::Configuration, "{}", error);
                    if let Some(wait) = error.retry_after() {
                        prop_assert!(wait <= DAY, "{} call: {:?}", call, error);
                    }
                }
            }
            // Whatever was cached or blocked, time moving on is no panic either.
            clock.advance(DAY);
        }
    }
}
