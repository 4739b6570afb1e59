//! The weavr stand-in answers as the vendor documents: wrong credentials with 403, a second
//! SMS challenge within 15 seconds with 409 `RETRY_IN_15SEC` (the first stays valid), and
//! wrong codes with `VERIFICATION_CODE_INVALID`, then `ONE_CHALLENGE_LIMIT_REMAINING`, then
//! `CHALLENGE_LIMIT_EXCEEDED`; and the session copes with each.
#![cfg(feature = "weavr")]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokensmith::clock::ManualClock;
use tokensmith::sandbox::{demo, Sandbox};
use tokensmith::weavr::{types, Answer, Challenge, Session, StepUpMethod};
use tokensmith::{ErrorKind, RefreshPolicy, Service};

async fn sandbox(clock: &ManualClock) -> Sandbox {
    Sandbox::builder().clock(clock.clone()).start().await
}

fn builder(sandbox: &Sandbox, clock: &ManualClock) -> tokensmith::weavr::SessionBuilder {
    Session::builder()
        .base_url(sandbox.base_url(Service::Weavr))
        .api_key(demo::WEAVR_API_KEY)
        .email(demo::WEAVR_EMAIL)
        .password(demo::WEAVR_PASSWORD)
        .clock(clock.clone())
        .refresh_policy(RefreshPolicy::new().with_jitter(false))
}

/// The `errorCode` and status of a refused call through the generated client.
fn refusal<T: std::fmt::Debug>(
    result: Result<T, progenitor_client::Error<types::ErrorResponse>>,
) -> (u16, Option<String>) {
    match result.unwrap_err() {
        progenitor_client::Error::ErrorResponse(response) => {
            let status = response.status().as_u16();
            (status, response.into_inner().error_code)
        }
        other => panic!("not a documented refusal: {other:?}"),
    }
}

async fn start(session: &Session) -> Result<(), (u16, Option<String>)> {
    match session
        .api()
        .start_otp_challenge(types::OtpChannel::Sms, None)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => Err(refusal::<()>(Err(e))),
    }
}

async fn verify(session: &Session, code: &str) -> Result<(), (u16, Option<String>)> {
    let body = types::VerifyRequest {
        verification_code: code.into(),
    };
    match session
        .api()
        .verify_otp_challenge(types::OtpChannel::Sms, None, &body)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => Err(refusal::<()>(Err(e))),
    }
}

fn conflict(code: &str) -> Result<(), (u16, Option<String>)> {
    Err((409, Some(code.to_owned())))
}

#[tokio::test]
async fn wrong_credentials_are_refused_with_403_and_not_sent_again() {
    let clock = common::test_clock();
    let sandbox = sandbox(&clock).await;
    let raw = reqwest::Client::new()
        .post(format!(
            "{}/login_with_password",
            sandbox.base_url(Service::Weavr)
        ))
        .header("api-key", demo::WEAVR_API_KEY)
        .json(&serde_json::json!({"email": demo::WEAVR_EMAIL, "password": {"value": "Wrong-1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 403);
    assert!(raw.headers().contains_key("request-ref"));
    assert!(
        raw.bytes().await.unwrap().is_empty(),
        "no body, as documented"
    );

    let session = builder(&sandbox, &clock)
        .password("Wrong-2")
        .build()
        .unwrap();
    let error = session.access_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidCredentials);
    assert_eq!(error.status(), Some(403));
    assert_eq!(
        session.access_token().await.unwrap_err().kind(),
        ErrorKind::InvalidCredentials
    );
    assert_eq!(sandbox.counters(Service::Weavr).failed_logins, 2);
}

#[tokio::test]
async fn a_challenge_in_flight_is_not_reset_and_wrong_codes_are_limited() {
    let clock = common::test_clock();
    let sandbox = sandbox(&clock).await;
    let session = builder(&sandbox, &clock).build().unwrap();

    assert_eq!(start(&session).await, Ok(()));
    assert_eq!(start(&session).await, conflict("RETRY_IN_15SEC"));
    assert_eq!(
        verify(&session, "000000").await,
        conflict("VERIFICATION_CODE_INVALID")
    );
    clock.advance(Duration::from_secs(15));
    // A new SMS after 15 s; the wrong codes given so far still count.
    assert_eq!(start(&session).await, Ok(()));
    assert_eq!(
        verify(&session, "000000").await,
        conflict("ONE_CHALLENGE_LIMIT_REMAINING")
    );
    let (status, _) = verify(&session, "12345").await.unwrap_err();
    assert_eq!(status, 400, "not six digits: refused unread, not counted");
    assert_eq!(
        verify(&session, "000000").await,
        conflict("CHALLENGE_LIMIT_EXCEEDED")
    );
    assert_eq!(
        verify(&session, demo::WEAVR_OTP).await,
        conflict("STATE_INVALID"),
        "the challenge is closed"
    );
    // A new challenge starts afresh.
    assert_eq!(start(&session).await, Ok(()));
    assert_eq!(verify(&session, demo::WEAVR_OTP).await, Ok(()));
    let counters = sandbox.counters(Service::Weavr);
    assert_eq!((counters.challenges, counters.verifications), (3, 1));
}

#[tokio::test]
async fn the_session_answers_a_challenge_in_flight_and_stops_at_the_limit() {
    let clock = common::test_clock();
    let sandbox = sandbox(&clock).await;

    // Declined, then asked again at once: the SMS already sent is answered, not resent.
    let asked = Arc::new(AtomicU32::new(0));
    let session = builder(&sandbox, &clock)
        .step_up(StepUpMethod::Sms, {
            let asked = asked.clone();
            move |challenge: Challenge| {
                let first = asked.fetch_add(1, Ordering::SeqCst) == 0;
                async move {
                    assert_eq!(challenge, Challenge::Sms { attempt: 1 });
                    if first {
                        Answer::Declined
                    } else {
                        Answer::Code(demo::WEAVR_OTP.into())
                    }
                }
            }
        })
        .build()
        .unwrap();
    let declined = session.step_up().await.unwrap_err();
    assert_eq!(declined.kind(), ErrorKind::StepUpRequired);
    session.step_up().await.unwrap();
    let counters = sandbox.counters(Service::Weavr);
    assert_eq!((counters.challenges, counters.verifications), (1, 1));

    // Wrong codes until the service's limit: the step-up ends there with its code.
    let asked = Arc::new(AtomicU32::new(0));
    let session = builder(&sandbox, &clock)
        .max_otp_attempts(10)
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
    assert_eq!(error.code(), Some("CHALLENGE_LIMIT_EXCEEDED"));
    assert!(error.request_ref().is_some());
    assert_eq!(asked.load(Ordering::SeqCst), 3);
    assert_eq!(sandbox.counters(Service::Weavr).verifications, 1);
}

/// The stand-in answers `/identities` in either shape Weavr documents (the page object of its
/// OpenAPI document, or the bare array of its API reference page), and a session reads both.
#[tokio::test]
async fn identities_come_as_the_openapi_object_or_the_reference_page_s_array() {
    for array in [false, true] {
        let clock = common::test_clock();
        let sandbox = Sandbox::builder()
            .clock(clock.clone())
            .weavr_identities_as_array(array)
            .start()
            .await;
        let session = builder(&sandbox, &clock).build().unwrap();
        let token = session.access_token().await.unwrap();

        let raw: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/identities", sandbox.base_url(Service::Weavr)))
            .header("api-key", demo::WEAVR_API_KEY)
            .bearer_auth(token.secret().expose_secret())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(raw.is_array(), array, "{raw}");

        let answer = session
            .api()
            .list_identities(None, None)
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.count(), (!array).then_some(1), "array: {array}");
        let identities = answer.identities();
        assert_eq!(identities.len(), 1);
        assert_eq!(identities[0].id.id, demo::WEAVR_IDENTITY_ID);
        assert_eq!(identities[0].id.type_, types::IdentityType::Corporate);
        assert_eq!(identities[0].name.as_deref(), Some("Demo Ltd"));
    }
}

/// The stand-in's sign-in names the user's identity, so a session exchanges for it at once:
/// the counters show an exchange per sign-in and no identity list.
#[tokio::test]
async fn each_sign_in_is_exchanged_for_its_identity_without_listing_identities() {
    let clock = common::test_clock();
    let sandbox = sandbox(&clock).await;
    let session = builder(&sandbox, &clock).build().unwrap();

    session.access_token().await.unwrap();
    clock.advance(Duration::from_secs(300));
    session.access_token().await.unwrap();

    let counters = sandbox.counters(Service::Weavr);
    assert_eq!(
        (counters.logins, counters.exchanges, counters.identity_lists),
        (2, 2, 0)
    );
    assert_eq!(session.request_counts().logins, 2);
    // The token acts for the identity: a call that needs an identity's token is refused only
    // for want of a step-up.
    let accounts = format!("{}/managed_accounts", sandbox.base_url(Service::Weavr));
    let refused = session
        .send(reqwest::Client::new().get(accounts))
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["errorCode"], "STEP_UP_REQUIRED");
    assert_eq!(sandbox.counters(Service::Weavr).identity_lists, 0);
}
