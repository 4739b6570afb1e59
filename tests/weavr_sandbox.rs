//! The weavr stand-in answers as the vendor documents: wrong credentials with 403 (no body).

mod common;

use tokensmith::clock::ManualClock;
use tokensmith::sandbox::{demo, Sandbox};
use tokensmith::weavr::Session;
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
