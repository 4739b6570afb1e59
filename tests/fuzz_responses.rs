//! Arbitrary statuses and bodies fed to every service's login handling: whatever comes back,
//! the result is a token or a typed error carrying the status, never a panic, and an error
//! never quotes more than a short excerpt of what the service sent.
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
struct Next(Arc<Mutex<(u16, Vec<u8>)>>);

impl Respond for Next {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let (status, body) = self.0.lock().unwrap().clone();
        ResponseTemplate::new(status).set_body_raw(body, "application/json")
    }
}

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
        let h = harness();
        *h.next.0.lock().unwrap() = (status, body.clone());
        let session = service.session(
            &h.server.uri(),
            &test_clock(),
            reqwest::Client::new(),
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
