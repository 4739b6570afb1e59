//! weavr step-up: one challenge and one verification however many calls need them, a wrong
//! code asked again, an expired challenge never verified, a declined step-up failing every
//! waiter alike, push approval, and ACCESS_TOKEN_REQUIRED cured by the identity exchange.
#![cfg(feature = "weavr")]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{assert_request, count_requests, served, test_clock, Body, Expected};
use serde_json::json;
use tokensmith::clock::ManualClock;
use tokensmith::weavr::{
    types, Answer, Challenge, IdentityType, PushChannel, Session, StepUpMethod,
};
use tokensmith::{ErrorKind, RefreshPolicy};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const API_KEY: &str = "weavr-api-key-123";
const OTP_START: &str = "/stepup/challenges/otp/SMS";
const OTP_VERIFY: &str = "/stepup/challenges/otp/SMS/verify";

/// A protected endpoint: STEP_UP_REQUIRED until the verification (or push) went through.
#[derive(Clone, Default)]
struct Protected {
    stepped_up: Arc<AtomicBool>,
}

impl Respond for Protected {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        if self.stepped_up.load(Ordering::SeqCst) {
            ResponseTemplate::new(200)
                .set_body_json(json!({"identities": [], "count": 0, "responseCount": 0}))
        } else {
            ResponseTemplate::new(403).set_body_json(json!({"errorCode": "STEP_UP_REQUIRED"}))
        }
    }
}

/// Verifies `123456` only; remembers success in the protected endpoint.
struct Verify(Protected);

impl Respond for Verify {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        if body["verificationCode"] == "123456" {
            self.0.stepped_up.store(true, Ordering::SeqCst);
            ResponseTemplate::new(204)
        } else {
            ResponseTemplate::new(409)
                .set_body_json(json!({"errorCode": "VERIFICATION_CODE_INVALID"}))
        }
    }
}

async fn server_with_step_up() -> (MockServer, Protected) {
    let server = MockServer::start().await;
    let protected = Protected::default();
    Mock::given(method("POST"))
        .and(path("/login_with_password"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"token": "tok-1", "tokenType": "ACCESS"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/identities"))
        .respond_with(protected.clone())
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(OTP_START))
        .respond_with(ResponseTemplate::new(204).set_delay(Duration::from_millis(100)))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(OTP_VERIFY))
        .respond_with(Verify(protected.clone()))
        .mount(&server)
        .await;
    (server, protected)
}

fn builder(server: &MockServer, clock: &ManualClock) -> tokensmith::weavr::SessionBuilder {
    builder_at(&server.uri(), clock)
}

/// The test account's session builder for the service at `uri`.
fn builder_at(uri: &str, clock: &ManualClock) -> tokensmith::weavr::SessionBuilder {
    Session::builder()
        .base_url(uri)
        .api_key(API_KEY)
        .email("user@example.com")
        .password("Pa$$w0rd")
        .clock(clock.clone())
}

#[tokio::test]
async fn fifty_calls_needing_step_up_share_one_challenge_and_one_verification() {
    let (server, _) = server_with_step_up().await;
    let asked = Arc::new(AtomicU32::new(0));
    let session = builder(&server, &test_clock())
        .step_up(StepUpMethod::Sms, {
            let asked = asked.clone();
            move |challenge: Challenge| {
                let asked = asked.clone();
                async move {
                    assert_eq!(challenge, Challenge::Sms { attempt: 1 });
                    asked.fetch_add(1, Ordering::SeqCst);
                    Answer::Code("123456".into())
                }
            }
        })
        .build()
        .unwrap();

    let calls: Vec<_> = (0..50)
        .map(|_| {
            let session = session.clone();
            tokio::spawn(async move { session.api().list_identities(None, None).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().status(), 200);
    }
    common::settle().await;

    assert_eq!(count_requests(&server, OTP_START).await, 1, "one SMS");
    assert_eq!(
        count_requests(&server, OTP_VERIFY).await,
        1,
        "one verification"
    );
    assert_eq!(asked.load(Ordering::SeqCst), 1, "the user was asked once");
    assert_eq!(
        count_requests(&server, "/identities").await,
        100,
        "each call retried once"
    );
    let requests = server.received_requests().await.unwrap();
    let start = requests.iter().find(|r| r.url.path() == OTP_START).unwrap();
    assert_request(
        start,
        &Expected {
            method: "POST",
            path: OTP_START,
            query: None,
            headers: &[("api-key", API_KEY), ("authorization", "Bearer tok-1")],
            body: Body::None,
        },
    );
    let verify = requests
        .iter()
        .find(|r| r.url.path() == OTP_VERIFY)
        .unwrap();
    assert_request(
        verify,
        &Expected {
            method: "POST",
            path: OTP_VERIFY,
            query: None,
            headers: &[("api-key", API_KEY), ("authorization", "Bearer tok-1")],
            body: Body::Json(json!({"verificationCode": "123456"})),
        },
    );

    // Already stepped up: an explicit step-up sends nothing.
    session.step_up().await.unwrap();
    assert_eq!(count_requests(&server, OTP_START).await, 1);
}

#[tokio::test]
async fn a_wrong_code_is_asked_again_then_the_right_one_verifies() {
    let (server, _) = server_with_step_up().await;
    let session = builder(&server, &test_clock())
        .step_up(StepUpMethod::Sms, |challenge: Challenge| async move {
            match challenge {
                Challenge::Sms { attempt: 1 } => Answer::Code("000000".into()),
                _ => Answer::Code("123456".into()),
            }
        })
        .build()
        .unwrap();
    session.step_up().await.unwrap();
    assert_eq!(count_requests(&server, OTP_START).await, 1);
    assert_eq!(count_requests(&server, OTP_VERIFY).await, 2);

    let (server, _) = server_with_step_up().await;
    let session = builder(&server, &test_clock())
        .max_otp_attempts(2)
        .step_up(StepUpMethod::Sms, |_| async {
            Answer::Code("000000".into())
        })
        .build()
        .unwrap();
    let error = session.step_up().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Conflict);
    assert_eq!(error.code(), Some("VERIFICATION_CODE_INVALID"));
    assert_eq!(
        count_requests(&server, OTP_VERIFY).await,
        2,
        "bounded attempts"
    );
}

#[tokio::test]
async fn an_answer_after_the_challenge_expired_is_never_sent() {
    let (server, _) = server_with_step_up().await;
    let clock = test_clock();
    let session = builder(&server, &clock)
        .step_up(StepUpMethod::Sms, {
            let clock = clock.clone();
            move |_| {
                let clock = clock.clone();
                async move {
                    clock.advance(Duration::from_secs(5 * 60));
                    Answer::Code("123456".into())
                }
            }
        })
        .build()
        .unwrap();
    let error = session.step_up().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::StepUpRequired);
    assert!(error.to_string().contains("expired"), "{error}");
    assert_eq!(count_requests(&server, OTP_VERIFY).await, 0);
}

#[tokio::test]
async fn a_declined_step_up_fails_every_waiter_alike_and_the_next_one_starts_afresh() {
    let (server, protected) = server_with_step_up().await;
    // The handler declines only once every waiter joined the step-up (no sleep deciding it).
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let session = builder(&server, &test_clock())
        .step_up(StepUpMethod::Sms, {
            let gate = gate.clone();
            move |_| {
                let gate = gate.clone();
                async move {
                    // Closed once the waiters joined: this and every later ask decline.
                    let _closed = gate.acquire().await;
                    Answer::Declined
                }
            }
        })
        .build()
        .unwrap();
    // Logged in first, so that a waiter's first wait is inside the step-up's flight.
    session.access_token().await.unwrap();
    let polled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let waiters: Vec<_> = (0..10)
        .map(|_| {
            let (session, polled) = (session.clone(), polled.clone());
            tokio::spawn(async move { common::counted(session.step_up(), polled).await })
        })
        .collect();
    common::held::wait_until("every waiter joined the step-up", || {
        polled.load(Ordering::SeqCst) == 10
    })
    .await;
    gate.close();
    for waiter in waiters {
        let error = waiter.await.unwrap().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::StepUpRequired);
        assert!(error.to_string().contains("declined"));
    }
    common::settle().await;
    assert_eq!(count_requests(&server, OTP_START).await, 1);
    // An api() call that needs the step-up gets the service's refusal back.
    let refused = session.api().list_identities(None, None).await.unwrap_err();
    assert_eq!(refused.status(), Some(reqwest::StatusCode::FORBIDDEN));
    assert_eq!(
        count_requests(&server, OTP_START).await,
        2,
        "a new challenge"
    );
    assert!(!protected.stepped_up.load(Ordering::SeqCst));

    // Without a handler there is nothing to ask.
    let no_handler = builder(&server, &test_clock()).build().unwrap();
    assert_eq!(
        no_handler.step_up().await.unwrap_err().kind(),
        ErrorKind::StepUpRequired
    );
}

#[tokio::test]
async fn a_push_challenge_is_approved_on_the_device() {
    let (server, protected) = server_with_step_up().await;
    Mock::given(method("POST"))
        .and(path("/stepup/challenges/push/BIOMETRIC"))
        .respond_with({
            let protected = protected.clone();
            move |_: &Request| {
                protected.stepped_up.store(true, Ordering::SeqCst);
                ResponseTemplate::new(200).set_body_json(json!({"id": "777"}))
            }
        })
        .mount(&server)
        .await;
    let session = builder(&server, &test_clock())
        .step_up(
            StepUpMethod::Push(PushChannel::Biometric),
            |challenge: Challenge| async move {
                assert_eq!(
                    challenge,
                    Challenge::Push {
                        channel: PushChannel::Biometric,
                        id: Some("777".into())
                    }
                );
                Answer::Approved
            },
        )
        .build()
        .unwrap();
    let response = session.api().list_identities(None, None).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        count_requests(&server, "/stepup/challenges/push/BIOMETRIC").await,
        1
    );
    assert_eq!(count_requests(&server, OTP_VERIFY).await, 0);
}

#[tokio::test]
async fn access_token_required_is_cured_by_the_identity_exchange() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/login_with_password"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"token": "sign-in", "tokenType": "NO_TYPE"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/identities"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "identities": [{"id": {"type": "CORPORATE", "id": "110"}}], "count": 1, "responseCount": 1
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/access_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"token": "identity-token"})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/passwords/update"))
        .respond_with(|request: &Request| {
            if request.headers["authorization"] == "Bearer identity-token" {
                ResponseTemplate::new(200).set_body_json(json!({"token": "after-update"}))
            } else {
                ResponseTemplate::new(403)
                    .set_body_json(json!({"errorCode": "ACCESS_TOKEN_REQUIRED"}))
            }
        })
        .mount(&server)
        .await;
    let body = types::PasswordUpdateRequest {
        old_password: types::Password {
            value: "Old-Pa$$1".into(),
        },
        new_password: types::Password {
            value: "New-Pa$$2".into(),
        },
    };

    // The session keeps the sign-in token (not an AUTH one); the call needs the identity's.
    let session = builder(&server, &test_clock()).build().unwrap();
    assert_eq!(served(session.access_token().await), "sign-in");
    let response = session.api().update_password(&body).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        count_requests(&server, "/access_token").await,
        1,
        "exchanged once"
    );
    let updates: Vec<_> = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == "/passwords/update")
        .collect();
    assert_eq!(updates.len(), 2, "retried once");
    assert_eq!(updates[1].headers["authorization"], "Bearer identity-token");
    assert_eq!(
        served(session.access_token().await),
        "identity-token",
        "the session keeps the identity's token"
    );

    // A session told to keep the sign-in token does not exchange it.
    let keeps = builder(&server, &test_clock())
        .identity_choice(tokensmith::weavr::IdentityChoice::SignInToken)
        .build()
        .unwrap();
    let refused = keeps.api().update_password(&body).await.unwrap_err();
    assert_eq!(refused.status(), Some(reqwest::StatusCode::FORBIDDEN));
    assert_eq!(count_requests(&server, "/access_token").await, 1);
}

/// A step-up is started by `STEP_UP_REQUIRED` in `message`, where Weavr's own web app reads it
/// (weavr-io/onvirtual.cards a494737, `plugins/axios.ts`: `error.response.data.message ===
/// 'STEP_UP_REQUIRED'`), by the same rule the errors are read with.
#[tokio::test]
async fn step_up_required_in_message_starts_the_step_up() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/login_with_password"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"token": "tok-1", "tokenType": "ACCESS"})),
        )
        .mount(&server)
        .await;
    let verified = Arc::new(AtomicBool::new(false));
    Mock::given(method("GET"))
        .and(path("/identities"))
        .respond_with({
            let verified = verified.clone();
            move |_: &Request| {
                if verified.load(Ordering::SeqCst) {
                    ResponseTemplate::new(200)
                        .set_body_json(json!({"identities": [], "count": 0, "responseCount": 0}))
                } else {
                    ResponseTemplate::new(403)
                        .set_body_raw(r#"{"message":"STEP_UP_REQUIRED"}"#, "application/json")
                }
            }
        })
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(OTP_START))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(OTP_VERIFY))
        .respond_with(move |_: &Request| {
            verified.store(true, Ordering::SeqCst);
            ResponseTemplate::new(204)
        })
        .mount(&server)
        .await;
    let session = builder(&server, &test_clock())
        .step_up(StepUpMethod::Sms, |_| async {
            Answer::Code("123456".into())
        })
        .build()
        .unwrap();

    session.api().list_identities(None, None).await.unwrap();

    assert_eq!(count_requests(&server, OTP_START).await, 1);
    assert_eq!(count_requests(&server, OTP_VERIFY).await, 1);
    assert_eq!(
        count_requests(&server, "/identities").await,
        2,
        "retried once"
    );
}

/// The identity exchange is started by `ACCESS_TOKEN_REQUIRED` in `code`, the member of the
/// vendor's generic `Error` schema (`{code, message}`), as in `errorCode`.
#[tokio::test]
async fn access_token_required_in_code_starts_the_exchange() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/login_with_password"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"token": "sign-in", "tokenType": "NO_TYPE"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/identities"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "identities": [{"id": {"type": "CORPORATE", "id": "110"}}], "count": 1, "responseCount": 1
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/access_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"token": "identity-token"})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/passwords/update"))
        .respond_with(|request: &Request| {
            if request.headers["authorization"] == "Bearer identity-token" {
                ResponseTemplate::new(200).set_body_json(json!({"token": "after-update"}))
            } else {
                ResponseTemplate::new(403).set_body_raw(
                    r#"{"code":"ACCESS_TOKEN_REQUIRED","message":"Forbidden"}"#,
                    "application/json",
                )
            }
        })
        .mount(&server)
        .await;
    let body = types::PasswordUpdateRequest {
        old_password: types::Password {
            value: "Old-Pa$$1".into(),
        },
        new_password: types::Password {
            value: "New-Pa$$2".into(),
        },
    };
    let session = builder(&server, &test_clock()).build().unwrap();

    let response = session.api().update_password(&body).await.unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(count_requests(&server, "/access_token").await, 1);
    assert_eq!(count_requests(&server, "/passwords/update").await, 2);
}

/// `ACCESS_TOKEN_REQUIRED` is cured by exchanging for the identity the sign-in answer named,
/// without listing identities.
#[tokio::test]
async fn access_token_required_exchanges_for_the_identity_the_sign_in_named() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/login_with_password"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "token": "sign-in", "tokenType": "NO_TYPE",
            "identity": {"type": "CORPORATE", "id": "110"},
            "credentials": {"type": "ROOT", "id": "111"}
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/identities"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/access_token"))
        .and(wiremock::matchers::body_json(
            json!({"identity": {"type": "CORPORATE", "id": "110"}}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"token": "identity-token"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/passwords/update"))
        .respond_with(|request: &Request| {
            if request.headers["authorization"] == "Bearer identity-token" {
                ResponseTemplate::new(200).set_body_json(json!({"token": "after-update"}))
            } else {
                ResponseTemplate::new(403)
                    .set_body_json(json!({"errorCode": "ACCESS_TOKEN_REQUIRED"}))
            }
        })
        .mount(&server)
        .await;
    let body = types::PasswordUpdateRequest {
        old_password: types::Password {
            value: "Old-Pa$$1".into(),
        },
        new_password: types::Password {
            value: "New-Pa$$2".into(),
        },
    };
    let session = builder(&server, &test_clock()).build().unwrap();

    let response = session.api().update_password(&body).await.unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(count_requests(&server, "/identities").await, 0);
    assert_eq!(count_requests(&server, "/passwords/update").await, 2);
}

#[tokio::test]
async fn a_shared_store_carries_the_step_up_to_other_sessions() {
    let (server, _) = server_with_step_up().await;
    let store = tokensmith::store::MemoryStore::new();
    let clock = test_clock();
    let first = builder(&server, &clock)
        .token_store(store.clone())
        .step_up(StepUpMethod::Sms, |_| async {
            Answer::Code("123456".into())
        })
        .build()
        .unwrap();
    first.step_up().await.unwrap();
    let second = builder(&server, &clock)
        .token_store(store)
        .step_up(StepUpMethod::Sms, |_| async { Answer::Declined })
        .build()
        .unwrap();
    second.step_up().await.unwrap();
    assert_eq!(
        count_requests(&server, OTP_START).await,
        1,
        "the stored token was stepped up"
    );
    assert_eq!(count_requests(&server, "/login_with_password").await, 1);
}

/// The requests the server received on `route`, in order.
async fn requests_to(server: &MockServer, route: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == route)
        .collect()
}

fn otp_request(code: &str) -> Expected<'static> {
    Expected {
        method: "POST",
        path: OTP_VERIFY,
        query: None,
        headers: &[("api-key", API_KEY), ("authorization", "Bearer tok-1")],
        body: Body::Json(json!({ "verificationCode": code })),
    }
}

#[tokio::test]
async fn a_step_up_the_user_takes_four_and_a_half_minutes_to_answer_needs_no_new_sign_in() {
    // A second sign-in would show in the count of logins below.
    let (server, _) = server_with_step_up().await;
    let clock = test_clock();
    let session = builder(&server, &clock)
        .refresh_policy(RefreshPolicy::new().with_jitter(false))
        .step_up(StepUpMethod::Sms, {
            let clock = clock.clone();
            move |_| {
                let clock = clock.clone();
                async move {
                    // The user reads the SMS and types the code 4.5 minutes later.
                    clock.advance(Duration::from_secs(270));
                    Answer::Code("123456".into())
                }
            }
        })
        .build()
        .unwrap();
    session.access_token().await.unwrap();
    clock.advance(Duration::from_secs(240));

    let page = session
        .api()
        .list_identities(None, None)
        .await
        .unwrap()
        .into_inner();

    assert_eq!(page.count(), Some(0));
    assert_eq!(
        count_requests(&server, "/login_with_password").await,
        1,
        "the 403, the challenge and the verification kept the token alive"
    );
    let calls = requests_to(&server, "/identities").await;
    assert_eq!(calls.len(), 2, "sent, then retried once");
    for call in &calls {
        assert_request(
            call,
            &Expected {
                method: "GET",
                path: "/identities",
                query: None,
                headers: &[("api-key", API_KEY), ("authorization", "Bearer tok-1")],
                body: Body::None,
            },
        );
    }
    assert_request(
        &requests_to(&server, OTP_VERIFY).await[0],
        &otp_request("123456"),
    );
    // 8.5 minutes after sign-in the token has its full window ahead: the retry slid it.
    let token = session.access_token().await.unwrap();
    assert_eq!(token.secret().expose_secret(), "tok-1");
    assert_eq!(token.expires_in(), Duration::from_secs(300));
}

#[tokio::test]
async fn a_code_that_is_not_six_digits_is_asked_again_without_being_sent() {
    let (server, _) = server_with_step_up().await;
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let session = builder(&server, &test_clock())
        .step_up(StepUpMethod::Sms, {
            let asked = asked.clone();
            move |challenge: Challenge| {
                asked.lock().unwrap().push(challenge.clone());
                async move {
                    let code = match challenge {
                        Challenge::Sms { attempt: 1 } => " 12345 ",
                        Challenge::Sms { attempt: 2 } => "12a456",
                        _ => " 123456\n",
                    };
                    Answer::Code(code.into())
                }
            }
        })
        .build()
        .unwrap();

    session.step_up().await.unwrap();

    assert_eq!(
        *asked.lock().unwrap(),
        [1, 2, 3].map(|attempt| Challenge::Sms { attempt })
    );
    let verifications = requests_to(&server, OTP_VERIFY).await;
    assert_eq!(verifications.len(), 1, "only the well-formed code was sent");
    assert_request(&verifications[0], &otp_request("123456"));

    // When every attempt is malformed, nothing is sent and the step-up fails as invalid.
    let (server, _) = server_with_step_up().await;
    let session = builder(&server, &test_clock())
        .max_otp_attempts(2)
        .step_up(StepUpMethod::Sms, |_| async {
            Answer::Code("1234567".into())
        })
        .build()
        .unwrap();
    let error = session.step_up().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidRequest);
    assert_eq!(error.status(), None);
    assert!(error.to_string().contains("six digits"), "{error}");
    assert!(!error.to_string().contains("1234567"), "{error}");
    assert_eq!(count_requests(&server, OTP_VERIFY).await, 0);
}

#[tokio::test]
async fn a_verification_the_service_finds_malformed_is_a_wrong_code() {
    let (server, _) = server_with_step_up().await;
    Mock::given(method("POST"))
        .and(path(OTP_VERIFY))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "message": "Request is invalid",
            "syntaxErrors": {"invalidFields": [
                {"params": ["^[0-9]{6}$"], "fieldName": "verificationCode", "error": "REGEX"}
            ]}
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let session = builder(&server, &test_clock())
        .step_up(StepUpMethod::Sms, |challenge: Challenge| async move {
            match challenge {
                Challenge::Sms { attempt: 1 } => Answer::Code("999999".into()),
                _ => Answer::Code("123456".into()),
            }
        })
        .build()
        .unwrap();

    session.step_up().await.unwrap();

    let verifications = requests_to(&server, OTP_VERIFY).await;
    assert_eq!(verifications.len(), 2);
    assert_request(&verifications[0], &otp_request("999999"));
    assert_request(&verifications[1], &otp_request("123456"));

    // Bounded like any wrong code: the last 400 is the step-up's error.
    let (server, _) = server_with_step_up().await;
    Mock::given(method("POST"))
        .and(path(OTP_VERIFY))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(json!({"message": "Request is invalid"})),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    let session = builder(&server, &test_clock())
        .max_otp_attempts(2)
        .step_up(StepUpMethod::Sms, |_| async {
            Answer::Code("123456".into())
        })
        .build()
        .unwrap();
    let error = session.step_up().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidRequest);
    assert_eq!(error.status(), Some(400));
    assert_eq!(count_requests(&server, OTP_VERIFY).await, 2);
}

#[tokio::test]
async fn an_access_token_the_service_says_is_stepped_up_needs_no_challenge() {
    for (status, challenges) in [("STEPPED_UP", 0), ("STANDARD", 1)] {
        let (server, _) = server_with_step_up().await;
        Mock::given(method("POST"))
            .and(path("/login_with_password"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"token": "auth-1", "tokenType": "AUTH"})),
            )
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/access_token"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"token": "access-1", "status": status})),
            )
            .mount(&server)
            .await;
        let session = builder(&server, &test_clock())
            .identity(IdentityType::Corporate, "110")
            .step_up(StepUpMethod::Sms, |_| async {
                Answer::Code("123456".into())
            })
            .build()
            .unwrap();

        session.step_up().await.unwrap();

        assert_eq!(
            count_requests(&server, OTP_START).await,
            challenges,
            "{status}"
        );
        assert_eq!(count_requests(&server, OTP_VERIFY).await, challenges);
        // Either way the token is stepped up now: asking again sends nothing.
        session.step_up().await.unwrap();
        assert_eq!(count_requests(&server, OTP_START).await, challenges);
        assert_eq!(count_requests(&server, "/access_token").await, 1);
    }
}

#[tokio::test]
async fn a_push_approval_the_service_does_not_honour_is_forgotten_after_the_one_retry() {
    let (server, protected) = server_with_step_up().await;
    let honoured = Arc::new(AtomicBool::new(false));
    Mock::given(method("POST"))
        .and(path("/stepup/challenges/push/AUTHY"))
        .respond_with({
            let (protected, honoured) = (protected.clone(), honoured.clone());
            move |_: &Request| {
                if honoured.load(Ordering::SeqCst) {
                    protected.stepped_up.store(true, Ordering::SeqCst);
                }
                ResponseTemplate::new(200).set_body_json(json!({"id": "42"}))
            }
        })
        .mount(&server)
        .await;
    let approvals = Arc::new(AtomicU32::new(0));
    let session = builder(&server, &test_clock())
        .step_up(StepUpMethod::Push(PushChannel::Authy), {
            let approvals = approvals.clone();
            move |_| {
                approvals.fetch_add(1, Ordering::SeqCst);
                async { Answer::Approved }
            }
        })
        .build()
        .unwrap();
    const PUSH: &str = "/stepup/challenges/push/AUTHY";

    // The user approves, but the service still wants a step-up: the call fails after one
    // retry, and the next call starts a new challenge instead of trusting the approval.
    for round in 1..=2 {
        let refused = session.api().list_identities(None, None).await.unwrap_err();
        assert_eq!(refused.status(), Some(reqwest::StatusCode::FORBIDDEN));
        assert_eq!(count_requests(&server, PUSH).await, round, "round {round}");
        assert_eq!(
            count_requests(&server, "/identities").await,
            2 * round,
            "each call is retried once, never more"
        );
    }
    assert_eq!(approvals.load(Ordering::SeqCst), 2);

    // An approval the service honours is kept: later calls and step_up() send no challenge.
    honoured.store(true, Ordering::SeqCst);
    session.api().list_identities(None, None).await.unwrap();
    session.api().list_identities(None, None).await.unwrap();
    session.step_up().await.unwrap();
    assert_eq!(count_requests(&server, PUSH).await, 3);
    assert_eq!(count_requests(&server, "/identities").await, 7);
    assert_eq!(count_requests(&server, "/login_with_password").await, 1);
}

#[tokio::test]
async fn a_challenge_already_in_flight_is_answered_instead_of_restarted() {
    let (server, _) = server_with_step_up().await;
    Mock::given(method("POST"))
        .and(path(OTP_START))
        .respond_with(
            ResponseTemplate::new(409).set_body_json(json!({"errorCode": "RETRY_IN_15SEC"})),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    let asked = Arc::new(AtomicU32::new(0));
    let session = builder(&server, &test_clock())
        .step_up(StepUpMethod::Sms, {
            let asked = asked.clone();
            move |challenge: Challenge| {
                asked.fetch_add(1, Ordering::SeqCst);
                async move {
                    assert_eq!(challenge, Challenge::Sms { attempt: 1 });
                    Answer::Code("123456".into())
                }
            }
        })
        .build()
        .unwrap();

    session.step_up().await.unwrap();

    assert_eq!(
        count_requests(&server, OTP_START).await,
        1,
        "not sent again"
    );
    assert_eq!(
        asked.load(Ordering::SeqCst),
        1,
        "asked for the SMS in flight"
    );
    assert_request(
        &requests_to(&server, OTP_VERIFY).await[0],
        &otp_request("123456"),
    );
}

#[tokio::test]
async fn the_services_challenge_limits_end_the_step_up_with_their_code() {
    // One wrong code left, then the limit: the handler is asked twice, not five times.
    let (server, _) = server_with_step_up().await;
    for code in ["ONE_CHALLENGE_LIMIT_REMAINING", "CHALLENGE_LIMIT_EXCEEDED"] {
        Mock::given(method("POST"))
            .and(path(OTP_VERIFY))
            .respond_with(
                ResponseTemplate::new(409)
                    .insert_header("request-ref", "ref-limit")
                    .set_body_json(json!({ "errorCode": code })),
            )
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
    }
    let asked = Arc::new(AtomicU32::new(0));
    let session = builder(&server, &test_clock())
        .max_otp_attempts(5)
        .step_up(StepUpMethod::Sms, {
            let asked = asked.clone();
            move |_| {
                asked.fetch_add(1, Ordering::SeqCst);
                async { Answer::Code("000000".into()) }
            }
        })
        .build()
        .unwrap();
    let error = session.step_up().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Conflict);
    assert_eq!(error.status(), Some(409));
    assert_eq!(error.code(), Some("CHALLENGE_LIMIT_EXCEEDED"));
    assert_eq!(error.request_ref(), Some("ref-limit"));
    assert!(error.to_string().contains("new challenge"), "{error}");
    assert_eq!(asked.load(Ordering::SeqCst), 2);
    assert_eq!(count_requests(&server, OTP_VERIFY).await, 2);

    // No more SMS for this token: the start's own limit fails the step-up the same way.
    let (server, _) = server_with_step_up().await;
    Mock::given(method("POST"))
        .and(path(OTP_START))
        .respond_with(
            ResponseTemplate::new(409)
                .set_body_json(json!({"errorCode": "CHALLENGE_LIMIT_EXCEEDED"})),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    let session = builder(&server, &test_clock())
        .step_up(StepUpMethod::Sms, |_| async {
            Answer::Code("123456".into())
        })
        .build()
        .unwrap();
    let error = session.step_up().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Conflict);
    assert_eq!(error.code(), Some("CHALLENGE_LIMIT_EXCEEDED"));
    assert_eq!(count_requests(&server, OTP_VERIFY).await, 0);

    // A verification the service already holds is a success.
    let (server, _) = server_with_step_up().await;
    Mock::given(method("POST"))
        .and(path(OTP_VERIFY))
        .respond_with(
            ResponseTemplate::new(409).set_body_json(json!({"errorCode": "ALREADY_VERIFIED"})),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    let session = builder(&server, &test_clock())
        .step_up(StepUpMethod::Sms, |_| async {
            Answer::Code("123456".into())
        })
        .build()
        .unwrap();
    session.step_up().await.unwrap();
    session.step_up().await.unwrap();
    assert_eq!(count_requests(&server, OTP_START).await, 1);
}

#[tokio::test]
async fn a_call_to_another_multi_api_endpoint_through_send_is_stepped_up_and_slides_the_window() {
    let (server, protected) = server_with_step_up().await;
    Mock::given(method("GET"))
        .and(path("/consumers"))
        .respond_with(protected.clone())
        .mount(&server)
        .await;
    let clock = test_clock();
    let session = builder(&server, &clock)
        .refresh_policy(RefreshPolicy::new().with_jitter(false))
        .step_up(StepUpMethod::Sms, |_| async {
            Answer::Code("123456".into())
        })
        .build()
        .unwrap();
    session.access_token().await.unwrap();
    clock.advance(Duration::from_secs(200));

    let request = reqwest::Client::new()
        .get(format!("{}/consumers", server.uri()))
        .header("idempotency-ref", "caller-ref-1");
    let response = session.send(request).await.unwrap();

    assert_eq!(response.status(), 200);
    let calls: Vec<_> = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == "/consumers")
        .collect();
    assert_eq!(calls.len(), 2, "refused for a step-up, then sent once more");
    for call in &calls {
        assert_request(
            call,
            &Expected {
                method: "GET",
                path: "/consumers",
                query: None,
                headers: &[
                    ("api-key", API_KEY),
                    ("authorization", "Bearer tok-1"),
                    ("idempotency-ref", "caller-ref-1"),
                ],
                body: Body::None,
            },
        );
    }
    assert_eq!(count_requests(&server, OTP_VERIFY).await, 1);
    let token = session.access_token().await.unwrap();
    assert_eq!(
        token.expires_in(),
        Duration::from_secs(300),
        "the window slid from the call, 200 s after sign-in"
    );
    assert_eq!(count_requests(&server, "/login_with_password").await, 1);
}

/// A handler that never answers: every call waiting for the step-up fails with a typed error
/// once the challenge's 5 minutes are over (tokio's paused clock, no real wait), and the
/// next step-up starts a new challenge.
#[tokio::test]
async fn a_handler_that_never_answers_fails_every_waiter_after_the_challenges_lifetime() {
    let (server, protected) = server_with_step_up().await;
    let asked = Arc::new(AtomicU32::new(0));
    let first_ask = Arc::new(tokio::sync::Notify::new());
    let session = builder(&server, &test_clock())
        .step_up(StepUpMethod::Sms, {
            let (asked, first_ask) = (asked.clone(), first_ask.clone());
            move |_| {
                let (asked, first_ask) = (asked.clone(), first_ask.clone());
                async move {
                    if asked.fetch_add(1, Ordering::SeqCst) == 0 {
                        first_ask.notify_one();
                        std::future::pending::<()>().await;
                    }
                    Answer::Code("123456".into())
                }
            }
        })
        .build()
        .unwrap();
    let waiters: Vec<_> = (0..10)
        .map(|_| {
            let session = session.clone();
            tokio::spawn(async move { session.step_up().await })
        })
        .collect();
    // The SMS went out and the handler holds its answer; from now on only tokio's timer
    // moves time (every request of this step-up has been answered).
    first_ask.notified().await;
    tokio::time::pause();
    let paused_at = tokio::time::Instant::now();
    for waiter in waiters {
        let error = waiter.await.unwrap().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::StepUpTimeout);
        assert_eq!(error.service(), Some(tokensmith::Service::Weavr));
    }
    let waited = paused_at.elapsed();
    assert!(
        waited > Duration::from_secs(4 * 60 + 50) && waited < Duration::from_secs(5 * 60 + 1),
        "bounded by the challenge's lifetime (tokio rounds timers up to the ms): {waited:?}"
    );
    tokio::time::resume();
    assert_eq!(
        asked.load(Ordering::SeqCst),
        1,
        "one challenge for all waiters"
    );
    assert_eq!(count_requests(&server, OTP_START).await, 1);
    assert_eq!(count_requests(&server, OTP_VERIFY).await, 0);

    // A later call starts a new challenge, which the handler now answers.
    session.step_up().await.unwrap();
    assert_eq!(asked.load(Ordering::SeqCst), 2);
    assert_eq!(
        count_requests(&server, OTP_START).await,
        2,
        "a new challenge"
    );
    assert_eq!(count_requests(&server, OTP_VERIFY).await, 1);
    assert!(protected.stepped_up.load(Ordering::SeqCst));
}

/// How a call reaches the protected resource: the typed client, or `send()` with a request of
/// the application's own.
#[derive(Clone, Copy, Debug)]
enum Via {
    Api,
    Send,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_cancelled_during_its_step_up_leaves_the_one_challenge_to_the_next_call() {
    for via in [Via::Api, Via::Send] {
        cancelled_during_step_up(via).await;
    }
}

/// A call through `via` is cancelled while the user reads the SMS; the next call, through
/// `via` too, is answered by the same challenge.
async fn cancelled_during_step_up(via: Via) {
    let (server, _) = server_with_step_up().await;
    let asked = Arc::new(AtomicU32::new(0));
    let (answer, gate) = tokio::sync::watch::channel(false);
    let session = builder(&server, &test_clock())
        .step_up(StepUpMethod::Sms, {
            let asked = asked.clone();
            move |challenge: Challenge| {
                let (asked, mut gate) = (asked.clone(), gate.clone());
                async move {
                    assert_eq!(challenge, Challenge::Sms { attempt: 1 });
                    asked.fetch_add(1, Ordering::SeqCst);
                    // The user takes their time: the code comes when the test says.
                    let _ = gate.wait_for(|given| *given).await;
                    Answer::Code("123456".into())
                }
            }
        })
        .build()
        .unwrap();
    let url = format!("{}/identities", server.uri());
    let call = |session: &Session| {
        let (session, url) = (session.clone(), url.clone());
        tokio::spawn(async move {
            match via {
                Via::Api => session
                    .api()
                    .list_identities(None, None)
                    .await
                    .map(|answer| answer.status().as_u16())
                    .map_err(|error| error.to_string()),
                Via::Send => session
                    .send(reqwest::Client::new().get(&url))
                    .await
                    .map(|answer| answer.status().as_u16())
                    .map_err(|error| error.to_string()),
            }
        })
    };
    let first = call(&session);
    common::held::wait_until("the user is asked for the code", || {
        asked.load(Ordering::SeqCst) == 1
    })
    .await;
    // The caller gives up while the user reads the SMS.
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    let second = call(&session);
    let mut identities = 0;
    while identities < 2 {
        identities = count_requests(&server, "/identities").await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    answer.send_replace(true);
    assert_eq!(second.await.unwrap(), Ok(200), "{via:?}");
    assert_eq!(
        count_requests(&server, OTP_START).await,
        1,
        "one SMS ({via:?})"
    );
    assert_eq!(count_requests(&server, OTP_VERIFY).await, 1, "{via:?}");
    assert_eq!(
        asked.load(Ordering::SeqCst),
        1,
        "the user was asked once ({via:?})"
    );
    let verify = requests_to(&server, OTP_VERIFY).await;
    assert_request(&verify[0], &otp_request("123456"));
}

/// Counts, in `.0`, the handler futures dropped (answered or not).
struct Dropped(Arc<AtomicU32>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_up_waiting_for_its_user_ends_when_the_session_is_dropped() {
    let (server, _) = server_with_step_up().await;
    let asked = Arc::new(AtomicU32::new(0));
    let dropped = Arc::new(AtomicU32::new(0));
    let session = builder(&server, &test_clock())
        .step_up(StepUpMethod::Sms, {
            let (asked, dropped) = (asked.clone(), dropped.clone());
            move |_: Challenge| {
                let (asked, dropped) = (asked.clone(), Dropped(dropped.clone()));
                async move {
                    let _dropped = dropped;
                    asked.fetch_add(1, Ordering::SeqCst);
                    std::future::pending::<Answer>().await
                }
            }
        })
        .build()
        .unwrap();
    let call = tokio::spawn({
        let session = session.clone();
        async move { session.api().list_identities(None, None).await }
    });
    common::held::wait_until("the user is asked for the code", || {
        asked.load(Ordering::SeqCst) == 1
    })
    .await;
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    tokio::task::yield_now().await;
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        0,
        "the challenge went with its call"
    );
    // Nobody is left to step up for: the challenge's task ends, and with it the wait.
    drop(session);
    common::held::wait_until("the challenge's task ended", || {
        dropped.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(count_requests(&server, OTP_START).await, 1);
    assert_eq!(count_requests(&server, OTP_VERIFY).await, 0);
}

/// The service of the ACCESS_TOKEN_REQUIRED tests: a sign-in token, one identity, its access
/// token, and an endpoint that takes only that.
fn identity_exchange_service(request: &common::held::Recorded, _: usize) -> (u16, String) {
    let answer = |status, body: serde_json::Value| (status, body.to_string());
    match request.path.as_str() {
        "/login_with_password" => answer(200, json!({"token": "sign-in", "tokenType": "NO_TYPE"})),
        identities if identities.starts_with("/identities") => answer(
            200,
            json!({
                "identities": [{"id": {"type": "CORPORATE", "id": "110"}}],
                "count": 1, "responseCount": 1
            }),
        ),
        "/access_token" => answer(200, json!({"token": "identity-token"})),
        _ if request.header("authorization") == Some("Bearer identity-token") => {
            answer(200, json!({"consumers": []}))
        }
        _ => answer(403, json!({"errorCode": "ACCESS_TOKEN_REQUIRED"})),
    }
}

/// A `MemoryStore` that counts the saves made under a renewal lease (fenced) and without.
#[derive(Debug, Default)]
struct Fencing {
    inner: tokensmith::store::MemoryStore,
    fenced: AtomicU32,
    unfenced: AtomicU32,
}

impl tokensmith::store::TokenStore for Fencing {
    fn lease<'a>(
        &'a self,
        key: &'a tokensmith::store::StoreKey,
    ) -> tokensmith::store::StoreFuture<'a, Option<tokensmith::store::Lease>> {
        self.inner.lease(key)
    }
    fn load<'a>(
        &'a self,
        key: &'a tokensmith::store::StoreKey,
    ) -> tokensmith::store::StoreFuture<'a, Option<tokensmith::store::StoredTokens>> {
        self.inner.load(key)
    }
    fn save<'a>(
        &'a self,
        key: &'a tokensmith::store::StoreKey,
        tokens: &'a tokensmith::store::StoredTokens,
    ) -> tokensmith::store::StoreFuture<'a, ()> {
        self.unfenced.fetch_add(1, Ordering::SeqCst);
        self.inner.save(key, tokens)
    }
    fn save_leased<'a>(
        &'a self,
        key: &'a tokensmith::store::StoreKey,
        tokens: &'a tokensmith::store::StoredTokens,
        _lease: &'a tokensmith::store::Lease,
    ) -> tokensmith::store::StoreFuture<'a, ()> {
        self.fenced.fetch_add(1, Ordering::SeqCst);
        self.inner.save(key, tokens)
    }
    fn remove<'a>(
        &'a self,
        key: &'a tokensmith::store::StoreKey,
    ) -> tokensmith::store::StoreFuture<'a, ()> {
        self.inner.remove(key)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_refused_together_for_an_access_token_share_one_fenced_exchange() {
    const CALLS: usize = 8;
    // Every call refused for the sign-in token is held until all of them were.
    let server = common::held::HeldServer::start_routed(identity_exchange_service, |request| {
        request.path == "/consumers" && request.header("authorization") == Some("Bearer sign-in")
    })
    .await;
    let store = Arc::new(Fencing::default());
    let session = builder_at(&server.uri(), &test_clock())
        .token_store(store.clone())
        .build()
        .unwrap();
    assert_eq!(served(session.access_token().await), "sign-in");
    let barrier = Arc::new(tokio::sync::Barrier::new(CALLS));
    let calls: Vec<_> = (0..CALLS)
        .map(|_| {
            let (session, barrier, uri) = (session.clone(), barrier.clone(), server.uri());
            tokio::spawn(async move {
                barrier.wait().await;
                let request = reqwest::Client::new().get(format!("{uri}/consumers"));
                session.send(request).await
            })
        })
        .collect();
    common::held::wait_until("every call is sent with the sign-in token", || {
        server.count("/consumers") == CALLS
    })
    .await;
    server.open();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().status(), 200);
    }
    assert_eq!(server.count("/access_token"), 1, "one exchange");
    assert_eq!(server.count("/identities"), 1);
    let requests = server.requests();
    let exchange = requests.iter().find(|r| r.path == "/access_token").unwrap();
    assert_eq!(exchange.method, "POST");
    assert_eq!(exchange.header("authorization"), Some("Bearer sign-in"));
    let body: serde_json::Value = serde_json::from_slice(&exchange.body).unwrap();
    assert_eq!(
        body,
        json!({"identity": {"type": "CORPORATE", "id": "110"}})
    );
    let retries: Vec<_> = requests
        .iter()
        .filter(|r| r.path == "/consumers")
        .skip(CALLS)
        .collect();
    assert_eq!(retries.len(), CALLS, "each call sent once more");
    for retry in retries {
        assert_eq!(retry.header("authorization"), Some("Bearer identity-token"));
    }
    assert_eq!(served(session.access_token().await), "identity-token");
    // The login's set and the exchanged one, each saved under the renewal lease.
    assert_eq!(store.unfenced.load(Ordering::SeqCst), 0, "an unfenced save");
    assert_eq!(store.fenced.load(Ordering::SeqCst), 2);
}

/// A resource that refuses the first token it sees (revoked), then asks each new token for a
/// step-up until the verification went through.
struct RevokedThenStepUp {
    protected: Protected,
    seen: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Respond for RevokedThenStepUp {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let bearer = request.headers["authorization"]
            .to_str()
            .unwrap()
            .to_owned();
        self.seen.lock().unwrap().push(bearer.clone());
        if bearer == "Bearer tok-1" {
            return ResponseTemplate::new(401);
        }
        self.protected.respond(request)
    }
}

#[tokio::test]
async fn a_token_renewed_after_a_401_is_stepped_up_when_its_resend_asks_for_it() {
    let server = MockServer::start().await;
    let protected = Protected::default();
    let logins = Arc::new(AtomicU32::new(0));
    Mock::given(method("POST"))
        .and(path("/login_with_password"))
        .respond_with({
            let logins = logins.clone();
            move |_: &Request| {
                let n = logins.fetch_add(1, Ordering::SeqCst) + 1;
                ResponseTemplate::new(200)
                    .set_body_json(json!({"token": format!("tok-{n}"), "tokenType": "ACCESS"}))
            }
        })
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(OTP_START))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(OTP_VERIFY))
        .respond_with(Verify(protected.clone()))
        .mount(&server)
        .await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    Mock::given(method("GET"))
        .and(path("/managed_accounts"))
        .respond_with(RevokedThenStepUp {
            protected,
            seen: seen.clone(),
        })
        .mount(&server)
        .await;
    let session = builder(&server, &test_clock())
        .step_up(StepUpMethod::Sms, |_: Challenge| async {
            Answer::Code("123456".into())
        })
        .build()
        .unwrap();
    let response = session
        .send(reqwest::Client::new().get(format!("{}/managed_accounts", server.uri())))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        *seen.lock().unwrap(),
        ["Bearer tok-1", "Bearer tok-2", "Bearer tok-2"],
        "refused, renewed and asked for a step-up, stepped up: three sends"
    );
    assert_eq!(logins.load(Ordering::SeqCst), 2);
    assert_eq!(count_requests(&server, OTP_START).await, 1);
    assert_eq!(count_requests(&server, OTP_VERIFY).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_cancelled_during_the_exchange_leave_it_to_finish_once() {
    // The exchange for the identity's token is held until the test opens the server.
    let server = common::held::HeldServer::start_routed(identity_exchange_service, |request| {
        request.path == "/access_token"
    })
    .await;
    let session = builder_at(&server.uri(), &test_clock()).build().unwrap();
    session.access_token().await.unwrap();
    let call = |session: &Session| {
        let (session, uri) = (session.clone(), server.uri());
        async move {
            let request = reqwest::Client::new().get(format!("{uri}/consumers"));
            session.send(request).await
        }
    };
    // Two waves of calls refused for an access token are cancelled while the one exchange is
    // held: it runs on, in a task of the session's, and nobody sends it again.
    for wave in 1..=2 {
        let calls: Vec<_> = (0..5).map(|_| tokio::spawn(call(&session))).collect();
        common::held::wait_until(
            "the wave was refused and the exchange is in the air",
            || server.count("/consumers") == 5 * wave && server.count("/access_token") == 1,
        )
        .await;
        for call in calls {
            call.abort();
            assert!(call.await.unwrap_err().is_cancelled(), "wave {wave}");
        }
    }
    assert_eq!(server.count("/access_token"), 1);
    server.open();
    assert_eq!(call(&session).await.unwrap().status(), 200);
    assert_eq!(server.count("/access_token"), 1, "one exchange");
    assert_eq!(server.count("/identities"), 1);
    assert_eq!(served(session.access_token().await), "identity-token");
}
