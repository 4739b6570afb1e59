//! The sandbox behaves like the services it stands in for, and its counters show what the
//! sessions really sent.
#![cfg(all(
    feature = "s7risk",
    feature = "weavr",
    feature = "accounts",
    feature = "passwordsafe",
    feature = "fib"
))]

use std::time::Duration;

use tokensmith::clock::ManualClock;
use tokensmith::sandbox::{demo, Sandbox};
use tokensmith::{ErrorKind, RefreshPolicy, Service};

mod common;

fn s7risk(
    sandbox: &Sandbox,
    clock: &ManualClock,
    email: &str,
    password: &str,
) -> tokensmith::s7risk::Session {
    tokensmith::s7risk::Session::builder()
        .base_url(sandbox.base_url(Service::S7risk))
        .origin(demo::S7RISK_ORIGIN)
        .user(email, password)
        .clock(clock.clone())
        .refresh_policy(RefreshPolicy::new().with_jitter(false))
        .build()
        .unwrap()
}

fn fib(sandbox: &Sandbox, clock: &ManualClock, key: &str) -> tokensmith::fib::Session {
    tokensmith::fib::Session::builder()
        .base_url(sandbox.base_url(Service::Fib))
        .email(demo::FIB_EMAIL)
        .private_key(key)
        .clock(clock.clone())
        .refresh_policy(RefreshPolicy::new().with_jitter(false))
        .build()
        .unwrap()
}

async fn sandbox(clock: &ManualClock) -> Sandbox {
    Sandbox::builder().clock(clock.clone()).start().await
}

#[tokio::test]
async fn s7risk_tokens_are_cached_and_renewed_by_a_new_login() {
    let clock = common::test_clock();
    let sandbox = sandbox(&clock).await;
    let session = s7risk(&sandbox, &clock, demo::S7RISK_EMAIL, demo::S7RISK_PASSWORD);
    let first = session.access_token().await.unwrap();
    assert_eq!(first.expires_in(), Duration::from_secs(24 * 3600));
    common::assert_all_callers_share_one_token(&session, 500).await;
    assert_eq!(sandbox.counters(Service::S7risk).logins, 1);

    clock.advance(Duration::from_secs(24 * 3600 - 30));
    let second = session.access_token().await.unwrap();
    assert_ne!(
        first.secret().expose_secret(),
        second.secret().expose_secret()
    );
    assert_eq!(sandbox.counters(Service::S7risk).logins, 2);
}

#[tokio::test]
async fn s7risk_refuses_bad_passwords_then_blocks_for_five_minutes() {
    let clock = common::test_clock();
    let sandbox = sandbox(&clock).await;
    for _ in 0..5 {
        let wrong = s7risk(&sandbox, &clock, demo::S7RISK_EMAIL, "wrong");
        let error = wrong.access_token().await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidCredentials);
        assert_eq!(error.message(), Some("Email and password do not match"));
        // The session never sends refused credentials twice.
        assert_eq!(
            wrong.access_token().await.unwrap_err().kind(),
            ErrorKind::InvalidCredentials
        );
    }
    assert_eq!(sandbox.counters(Service::S7risk).failed_logins, 5);
    let right = s7risk(&sandbox, &clock, demo::S7RISK_EMAIL, demo::S7RISK_PASSWORD);
    let error = right.access_token().await.unwrap_err();
    assert_eq!(
        error.kind(),
        ErrorKind::RateLimited {
            retry_after: Some(Duration::from_secs(300))
        }
    );
    clock.advance(Duration::from_secs(301));
    right.access_token().await.unwrap();
    assert_eq!(sandbox.counters(Service::S7risk).logins, 1);

    let expired = s7risk(
        &sandbox,
        &clock,
        demo::S7RISK_EXPIRED_EMAIL,
        demo::S7RISK_PASSWORD,
    );
    assert_eq!(
        expired.access_token().await.unwrap_err().kind(),
        ErrorKind::AccessWindowExpired
    );
}

#[tokio::test]
async fn fib_checks_the_signature_and_renews_by_refresh_token() {
    let clock = common::test_clock();
    let sandbox = sandbox(&clock).await;
    let session = fib(&sandbox, &clock, demo::FIB_PRIVATE_KEY);
    let first = session.access_token().await.unwrap();
    assert_eq!(first.expires_in(), Duration::from_secs(300));
    clock.advance(Duration::from_secs(290));
    let second = session.access_token().await.unwrap();
    assert_ne!(
        first.secret().expose_secret(),
        second.secret().expose_secret()
    );
    let counters = sandbox.counters(Service::Fib);
    assert_eq!((counters.logins, counters.refreshes), (1, 1));

    session.logout().await.unwrap();
    assert_eq!(sandbox.counters(Service::Fib).logouts, 1);

    // Another user's key signs the right email, but it is not this user's key.
    let other = fib(&sandbox, &clock, &"11".repeat(32));
    let error = other.access_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidCredentials);
    assert_eq!(
        error.message(),
        Some("User signature could not be verified.")
    );
}

fn fib_even(
    sandbox: &Sandbox,
    clock: &ManualClock,
    digest: Option<tokensmith::fib::Digest>,
) -> tokensmith::fib::Session {
    let builder = tokensmith::fib::Session::builder()
        .base_url(sandbox.base_url(Service::Fib))
        .email(demo::FIB_EVEN_DIGEST_EMAIL)
        .private_key(demo::FIB_PRIVATE_KEY)
        .clock(clock.clone());
    match digest {
        Some(digest) => builder.digest(digest),
        None => builder,
    }
    .build()
    .unwrap()
}

#[tokio::test]
async fn fib_verifies_the_one_digest_rule_chosen_on_the_builder() {
    use tokensmith::fib::Digest;
    for (verified, other) in [
        (None, Digest::Iroha),
        (Some(Digest::Plain), Digest::Iroha),
        (Some(Digest::Iroha), Digest::Plain),
    ] {
        let clock = common::test_clock();
        let mut builder = Sandbox::builder().clock(clock.clone());
        if let Some(digest) = verified {
            builder = builder.fib_digest(digest);
        }
        let sandbox = builder.start().await;
        let verified = verified.unwrap_or(Digest::Plain);

        // Pinned to the other rule: refused, one request.
        let error = fib_even(&sandbox, &clock, Some(other))
            .access_token()
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidCredentials, "{verified:?}");
        assert_eq!(
            error.message(),
            Some("User signature could not be verified.")
        );
        let counters = sandbox.counters(Service::Fib);
        assert_eq!((counters.logins, counters.failed_logins), (0, 1));

        // Pinned to the verified rule: one request.
        fib_even(&sandbox, &clock, Some(verified))
            .access_token()
            .await
            .unwrap();
        let counters = sandbox.counters(Service::Fib);
        assert_eq!((counters.logins, counters.failed_logins), (1, 1));

        // Not pinned: the plain digest first, Iroha's after a 422, then only the learned one.
        let session = fib_even(&sandbox, &clock, None);
        session.access_token().await.unwrap();
        let refused_first = u64::from(verified == Digest::Iroha);
        let counters = sandbox.counters(Service::Fib);
        assert_eq!(
            (counters.logins, counters.failed_logins),
            (2, 1 + refused_first),
            "{verified:?}"
        );
        clock.advance(Duration::from_secs(24 * 3600));
        session.access_token().await.unwrap();
        let counters = sandbox.counters(Service::Fib);
        assert_eq!(
            (counters.logins, counters.failed_logins),
            (3, 1 + refused_first),
            "{verified:?}: one request once learned"
        );
    }
}

fn passwordsafe(
    sandbox: &Sandbox,
    clock: &ManualClock,
) -> tokensmith::passwordsafe::SessionBuilder {
    tokensmith::passwordsafe::Session::builder()
        .base_url(sandbox.base_url(Service::PasswordSafe))
        .clock(clock.clone())
        .refresh_policy(RefreshPolicy::new().with_jitter(false))
}

#[tokio::test]
async fn passwordsafe_sessions_open_by_oauth_or_key_and_close() {
    let clock = common::test_clock();
    let sandbox = sandbox(&clock).await;
    let oauth = passwordsafe(&sandbox, &clock)
        .oauth(
            demo::PASSWORDSAFE_CLIENT_ID,
            demo::PASSWORDSAFE_CLIENT_SECRET,
        )
        .build()
        .unwrap();
    let token = oauth.access_token().await.unwrap();
    assert!(token
        .secret()
        .expose_secret()
        .starts_with("ASP.NET_SessionId="));
    assert_eq!(token.expires_in(), Duration::from_secs(20 * 60));
    let accounts: serde_json::Value = oauth
        .authorize(reqwest::Client::new().get(format!(
            "{}/ManagedAccounts",
            sandbox.base_url(Service::PasswordSafe)
        )))
        .await
        .unwrap()
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(accounts[0]["AccountName"], "sa", "the cookie opens the API");
    oauth.logout().await.unwrap();
    assert_eq!(sandbox.counters(Service::PasswordSafe).logouts, 1);

    let key = passwordsafe(&sandbox, &clock)
        .ps_auth(
            demo::PASSWORDSAFE_API_KEY,
            demo::PASSWORDSAFE_RUNAS,
            Some(demo::PASSWORDSAFE_PASSWORD.into()),
        )
        .api_version("3.2")
        .build()
        .unwrap();
    key.access_token().await.unwrap();
    assert_eq!(sandbox.counters(Service::PasswordSafe).logins, 2);

    let wrong = passwordsafe(&sandbox, &clock)
        .ps_auth(
            demo::PASSWORDSAFE_API_KEY,
            demo::PASSWORDSAFE_RUNAS,
            Some("x".into()),
        )
        .build()
        .unwrap();
    assert_eq!(
        wrong.access_token().await.unwrap_err().kind(),
        ErrorKind::InvalidCredentials
    );
    let old = passwordsafe(&sandbox, &clock)
        .oauth(
            demo::PASSWORDSAFE_CLIENT_ID,
            demo::PASSWORDSAFE_CLIENT_SECRET,
        )
        .api_version("3.0")
        .build()
        .unwrap();
    assert_eq!(
        old.access_token().await.unwrap_err().kind(),
        ErrorKind::ApiVersionDisabled
    );
}

/// A stand-in whose OAuth sign-ins set no cookie (as BeyondTrust's Go client's test server
/// answers): the bearer alone carries the session, its idle close and its sign-out.
#[tokio::test]
async fn passwordsafe_oauth_sessions_without_a_cookie_are_carried_by_the_bearer() {
    let clock = common::test_clock();
    let sandbox = Sandbox::builder()
        .clock(clock.clone())
        .passwordsafe_oauth_session_cookie(false)
        .start()
        .await;
    let url = format!(
        "{}/ManagedAccounts",
        sandbox.base_url(Service::PasswordSafe)
    );
    let with_bearer = |bearer: &str| reqwest::Client::new().get(&url).bearer_auth(bearer);
    let session = passwordsafe(&sandbox, &clock)
        .oauth(
            demo::PASSWORDSAFE_CLIENT_ID,
            demo::PASSWORDSAFE_CLIENT_SECRET,
        )
        .build()
        .unwrap();

    let token = session.access_token().await.unwrap();
    let bearer = token.secret().expose_secret().to_owned();
    assert!(!bearer.contains('='), "not a cookie: the access token");
    let headers = session.headers().await.unwrap();
    assert!(headers.get("cookie").is_none(), "{headers:?}");
    let response = session
        .send(reqwest::Client::new().get(&url))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let accounts: serde_json::Value = response.json().await.unwrap();
    assert_eq!(accounts[0]["AccountName"], "sa", "the bearer opens the API");
    let status = |response: reqwest::Response| response.status().as_u16();
    assert_eq!(
        status(reqwest::Client::new().get(&url).send().await.unwrap()),
        401
    );

    // Idle for 20 minutes, the session closes, though the token lives on.
    clock.advance(Duration::from_secs(20 * 60));
    assert_eq!(status(with_bearer(&bearer).send().await.unwrap()), 401);

    // A new sign-in, signed out with its bearer: the bearer no longer opens anything.
    let again = session.force_refresh().await.unwrap();
    let bearer = again.secret().expose_secret().to_owned();
    assert_eq!(status(with_bearer(&bearer).send().await.unwrap()), 200);
    session.logout().await.unwrap();
    assert_eq!(sandbox.counters(Service::PasswordSafe).logouts, 1);
    assert_eq!(status(with_bearer(&bearer).send().await.unwrap()), 401);
    assert_eq!(sandbox.counters(Service::PasswordSafe).logins, 2);

    // API-key sign-ins still set their cookie.
    let key = passwordsafe(&sandbox, &clock)
        .ps_auth(
            demo::PASSWORDSAFE_API_KEY,
            demo::PASSWORDSAFE_RUNAS,
            Some(demo::PASSWORDSAFE_PASSWORD.into()),
        )
        .build()
        .unwrap();
    let cookie = key.access_token().await.unwrap();
    assert!(cookie
        .secret()
        .expose_secret()
        .starts_with("ASP.NET_SessionId="));
}

fn weavr(sandbox: &Sandbox, clock: &ManualClock, email: &str) -> tokensmith::weavr::Session {
    tokensmith::weavr::Session::builder()
        .base_url(sandbox.base_url(Service::Weavr))
        .api_key(demo::WEAVR_API_KEY)
        .email(email)
        .password(demo::WEAVR_PASSWORD)
        .clock(clock.clone())
        .refresh_policy(RefreshPolicy::new().with_jitter(false))
        .build()
        .unwrap()
}

#[tokio::test]
async fn weavr_signs_in_exchanges_steps_up_and_updates_expired_passwords() {
    use tokensmith::weavr::types;
    let clock = common::test_clock();
    let sandbox = sandbox(&clock).await;
    let session = weavr(&sandbox, &clock, demo::WEAVR_EMAIL);
    session.access_token().await.unwrap();
    let accounts_url = format!("{}/managed_accounts", sandbox.base_url(Service::Weavr));
    let get = || async {
        session
            .authorize(reqwest::Client::new().get(&accounts_url))
            .await
            .unwrap()
            .send()
            .await
            .unwrap()
    };
    let refused = get().await;
    assert_eq!(refused.status(), 403);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(
        body["errorCode"], "STEP_UP_REQUIRED",
        "the exchanged token is an access token"
    );

    session
        .api()
        .start_otp_challenge(types::OtpChannel::Sms, None)
        .await
        .unwrap();
    let wrong = session
        .api()
        .verify_otp_challenge(
            types::OtpChannel::Sms,
            None,
            &types::VerifyRequest {
                verification_code: "000000".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(wrong.status(), Some(reqwest::StatusCode::CONFLICT));
    session
        .api()
        .verify_otp_challenge(
            types::OtpChannel::Sms,
            None,
            &types::VerifyRequest {
                verification_code: demo::WEAVR_OTP.into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(get().await.status(), 200);
    let counters = sandbox.counters(Service::Weavr);
    assert_eq!(
        (counters.logins, counters.challenges, counters.verifications),
        (1, 1, 1)
    );

    let expired = weavr(&sandbox, &clock, demo::WEAVR_EXPIRED_EMAIL);
    let error = expired.access_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PasswordExpired);
    let temporary = error.temporary_token().unwrap().clone();
    expired
        .change_password(&temporary, demo::WEAVR_PASSWORD, "Brand-New-Pa55!")
        .await
        .unwrap();
    expired.access_token().await.unwrap();

    for _ in 0..5 {
        let wrong = tokensmith::weavr::Session::builder()
            .base_url(sandbox.base_url(Service::Weavr))
            .api_key(demo::WEAVR_API_KEY)
            .email(demo::WEAVR_EMAIL)
            .password("Wrong-Pa55word")
            .build()
            .unwrap();
        assert_eq!(
            wrong.access_token().await.unwrap_err().kind(),
            ErrorKind::InvalidCredentials
        );
    }
    let locked = weavr(&sandbox, &clock, demo::WEAVR_EMAIL);
    assert_eq!(
        locked.access_token().await.unwrap_err().kind(),
        ErrorKind::AccountLocked {
            retry_after: Some(Duration::from_secs(30 * 60))
        }
    );
    session.logout().await.unwrap();
    assert_eq!(sandbox.counters(Service::Weavr).logouts, 1);
}

#[tokio::test]
async fn accounts_refresh_until_spent_then_log_in_and_complete_new_passwords() {
    let clock = common::test_clock();
    let sandbox = Sandbox::builder()
        .clock(clock.clone())
        .accounts_max_refreshes(2)
        .start()
        .await;
    let session = tokensmith::accounts::Session::builder()
        .base_url(sandbox.base_url(Service::Accounts))
        .username(demo::ACCOUNTS_USERNAME)
        .password(demo::ACCOUNTS_PASSWORD)
        .clock(clock.clone())
        .refresh_policy(RefreshPolicy::new().with_jitter(false))
        .build()
        .unwrap();
    session.access_token().await.unwrap();
    for _ in 0..3 {
        clock.advance(Duration::from_secs(24 * 3600));
        session.access_token().await.unwrap();
    }
    let counters = sandbox.counters(Service::Accounts);
    assert_eq!(
        (counters.logins, counters.refreshes),
        (2, 2),
        "two refreshes, then 429, then a new login"
    );
    session.logout().await.unwrap();
    assert_eq!(sandbox.counters(Service::Accounts).logouts, 1);

    let newcomer = tokensmith::accounts::Session::builder()
        .base_url(sandbox.base_url(Service::Accounts))
        .username(demo::ACCOUNTS_NEW_USERNAME)
        .password(demo::ACCOUNTS_PASSWORD)
        .clock(clock.clone())
        .build()
        .unwrap();
    let error = newcomer.access_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NewPasswordRequired);
    newcomer
        .complete_new_password(error.challenge_session().unwrap(), "Chosen-Passw0rd")
        .await
        .unwrap();
    newcomer.id_token().await.unwrap();
    newcomer.forgot_password().await.unwrap();
    newcomer
        .confirm_forgot_password(demo::ACCOUNTS_CONFIRMATION_CODE, "Reset-Passw0rd")
        .await
        .unwrap();
}

fn accounts_client(sandbox: &Sandbox) -> tokensmith::accounts::Client {
    tokensmith::accounts::Client::new_with_client(
        &sandbox.base_url(Service::Accounts),
        reqwest::Client::new(),
        tokensmith::transport::Context::new(),
    )
}

/// `/v1/change-password` with `access_token`: the one sandbox call that checks an access token.
async fn change_password_status(sandbox: &Sandbox, access_token: &str) -> u16 {
    let body = tokensmith::accounts::types::ChangePasswordRequest {
        access_token: access_token.into(),
        previous_password: demo::ACCOUNTS_PASSWORD.into(),
        proposed_password: demo::ACCOUNTS_PASSWORD.into(),
    };
    match accounts_client(sandbox).change_password(&body).await {
        Ok(response) => response.status().as_u16(),
        Err(error) => error.status().expect("an answer").as_u16(),
    }
}

#[tokio::test]
async fn accounts_revocation_also_ends_the_access_tokens_the_refresh_token_issued() {
    let clock = common::test_clock();
    let sandbox = sandbox(&clock).await;
    let session = tokensmith::accounts::Session::builder()
        .base_url(sandbox.base_url(Service::Accounts))
        .username(demo::ACCOUNTS_USERNAME)
        .password(demo::ACCOUNTS_PASSWORD)
        .clock(clock.clone())
        .refresh_policy(RefreshPolicy::new().with_jitter(false))
        .build()
        .unwrap();
    let from_login = session.access_token().await.unwrap();
    clock.advance(Duration::from_secs(24 * 3600 - 30));
    let from_refresh = session.access_token().await.unwrap();
    assert_eq!(sandbox.counters(Service::Accounts).refreshes, 1);
    let older = from_login.secret().expose_secret();
    let newer = from_refresh.secret().expose_secret();
    assert_ne!(older, newer);
    // Both live (the login's for 30 s more).
    assert_eq!(change_password_status(&sandbox, older).await, 204);
    assert_eq!(change_password_status(&sandbox, newer).await, 204);
    let other = tokensmith::accounts::Session::builder()
        .base_url(sandbox.base_url(Service::Accounts))
        .username(demo::ACCOUNTS_USERNAME)
        .password(demo::ACCOUNTS_PASSWORD)
        .clock(clock.clone())
        .build()
        .unwrap();
    let unrelated = other.access_token().await.unwrap();

    session.logout().await.unwrap();

    assert_eq!(sandbox.counters(Service::Accounts).logouts, 1);
    assert_eq!(
        change_password_status(&sandbox, older).await,
        401,
        "the login's access token died with its refresh token"
    );
    assert_eq!(
        change_password_status(&sandbox, newer).await,
        401,
        "so did the one a refresh issued"
    );
    assert_eq!(
        change_password_status(&sandbox, unrelated.secret().expose_secret()).await,
        204,
        "another login's tokens live on"
    );
}

async fn accounts_post(sandbox: &Sandbox, route: &str, body: serde_json::Value) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!(
            "{}/v1/{route}",
            sandbox.base_url(Service::Accounts)
        ))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn accounts_answers_invalid_input_with_the_service_s_422_message() {
    let clock = common::test_clock();
    let sandbox = sandbox(&clock).await;
    let internal = r#"{"message":"Internal error, please try again later.","status":422}"#;
    let long = "x".repeat(256);
    for (route, body) in [
        (
            "token-refresh",
            serde_json::json!({"username": demo::ACCOUNTS_USERNAME}),
        ),
        (
            "login",
            serde_json::json!({"username": long, "password": demo::ACCOUNTS_PASSWORD}),
        ),
        (
            "login",
            serde_json::json!({"username": demo::ACCOUNTS_USERNAME, "password": long}),
        ),
        (
            "new-password-required",
            serde_json::json!({"session": "s", "username": demo::ACCOUNTS_NEW_USERNAME, "new_password": "5char"}),
        ),
    ] {
        let (status, text) = accounts_post(&sandbox, route, body.clone()).await;
        assert_eq!(status, 422, "{route} {body}");
        let got: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            got,
            serde_json::from_str::<serde_json::Value>(internal).unwrap()
        );
    }
    assert_eq!(sandbox.counters(Service::Accounts).failed_logins, 0);
}

/// The password fields at the bounds the service's handlers bind them to (api/auth/handlers/v1
/// in wikimedia-enterprise/wikimedia-enterprise): change-password 6 to 256 characters for both,
/// forgot-password-confirm 1 to 255 for the password and 1 to 2048 for the code.
#[tokio::test]
async fn accounts_password_fields_have_the_service_s_own_bounds() {
    let clock = common::test_clock();
    let sandbox = sandbox(&clock).await;
    let session = tokensmith::accounts::Session::builder()
        .base_url(sandbox.base_url(Service::Accounts))
        .username(demo::ACCOUNTS_USERNAME)
        .password(demo::ACCOUNTS_PASSWORD)
        .clock(clock.clone())
        .build()
        .unwrap();
    let token = session.access_token().await.unwrap();
    let access = token.secret().expose_secret();
    let longest = "é".repeat(256);
    let change = |previous: &str, proposed: &str| {
        serde_json::json!({
            "access_token": access, "previous_password": previous, "proposed_password": proposed,
        })
    };
    for (body, status) in [
        (change(demo::ACCOUNTS_PASSWORD, &"é".repeat(257)), 422),
        (change(demo::ACCOUNTS_PASSWORD, "5char"), 422),
        (change(demo::ACCOUNTS_PASSWORD, &longest), 204),
        (change(&longest, "6chars"), 204),
        (change("6chars", "5char"), 422),
    ] {
        let (got, _) = accounts_post(&sandbox, "change-password", body.clone()).await;
        assert_eq!(got, status, "{body}");
    }
    let confirm = |password: &str, code: String| {
        serde_json::json!({
            "username": demo::ACCOUNTS_USERNAME, "password": password, "confirmation_code": code,
        })
    };
    for (body, status) in [
        (confirm("p", "6".repeat(2049)), 422),
        (confirm("", demo::ACCOUNTS_CONFIRMATION_CODE.into()), 422),
        (confirm("p", demo::ACCOUNTS_CONFIRMATION_CODE.into()), 204),
    ] {
        let (got, _) = accounts_post(&sandbox, "forgot-password-confirm", body.clone()).await;
        assert_eq!(got, status, "{body}");
    }
}

#[tokio::test]
async fn accounts_forgot_password_takes_the_username_or_the_email() {
    let clock = common::test_clock();
    let sandbox = sandbox(&clock).await;
    for known in [demo::ACCOUNTS_USERNAME, demo::ACCOUNTS_EMAIL] {
        let (status, text) = accounts_post(
            &sandbox,
            "forgot-password",
            serde_json::json!({"username": known}),
        )
        .await;
        assert_eq!((status, text.as_str()), (204, ""), "{known}");
    }
    let (status, text) = accounts_post(
        &sandbox,
        "forgot-password",
        serde_json::json!({"username": "nobody@accounts.example"}),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        serde_json::json!({"status": 401, "message": "User not found."})
    );
}

fn fib_client(sandbox: &Sandbox, bearer: Option<&str>) -> tokensmith::fib::Client {
    let mut context = tokensmith::transport::Context::new();
    if let Some(token) = bearer {
        let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
        context = context.with_header(reqwest::header::AUTHORIZATION, value, true);
    }
    tokensmith::fib::Client::new_with_client(
        &sandbox.base_url(Service::Fib),
        reqwest::Client::new(),
        context,
    )
}

/// The demo user's signature (the vendor's test vector: alice's email, the demo key).
const FIB_SIGNATURE: &str = "57e7115dfb9faa9add2d2ceb321c20db8c1e7f468d2ffc122793fa61e8ed61581580faaeae83a07fe857894bb33defd61c4ba099b981020146fe8d2be00e630a";

fn fib_login(signature: &str) -> tokensmith::fib::types::LoginRequest {
    tokensmith::fib::types::LoginRequest {
        email: demo::FIB_EMAIL.into(),
        signature: signature.into(),
        auth_public_key_hex: demo::FIB_PUBLIC_KEY.into(),
    }
}

#[tokio::test]
async fn fib_refuses_a_wrong_signature_with_the_user_s_own_public_key() {
    // Sent without a session: the builder itself refuses a signature that does not verify.
    let clock = common::test_clock();
    let sandbox = sandbox(&clock).await;
    // Well-formed, made with the user's own key, but over another email; and the right one
    // with a byte changed.
    let another_email = "c7126087ca5b91fe0466dee18cdcf9a084c03458691a77da84c5d05a869e1285af9082f915e6546f529363035329e6f9ea94c4098e92c633eb095e351ebbc30c";
    let mut flipped = FIB_SIGNATURE.to_owned();
    flipped.replace_range(126.., "0b");
    for (n, wrong) in [another_email, flipped.as_str()].into_iter().enumerate() {
        let error = fib_client(&sandbox, None)
            .log_in(&fib_login(wrong))
            .await
            .unwrap_err();
        match error {
            progenitor_client::Error::ErrorResponse(response) => {
                assert_eq!(response.status(), 422);
                let status = response.into_inner().status.unwrap();
                assert_eq!(status.code, 422);
                assert_eq!(status.name, "UNPROCESSABLE_ENTITY");
                assert_eq!(
                    status.message.as_deref(),
                    Some("User signature could not be verified.")
                );
            }
            other => panic!("expected the documented 422, got {other:?}"),
        }
        assert_eq!(sandbox.counters(Service::Fib).failed_logins, n as u64 + 1);
    }
    assert_eq!(sandbox.counters(Service::Fib).logins, 0);
    fib_client(&sandbox, None)
        .log_in(&fib_login(FIB_SIGNATURE))
        .await
        .expect("the right signature signs in");
}

#[tokio::test]
async fn fib_logout_also_revokes_the_refresh_token_issued_with_the_access_token() {
    let clock = common::test_clock();
    let sandbox = sandbox(&clock).await;
    let sign_in = || async {
        fib_client(&sandbox, None)
            .log_in(&fib_login(FIB_SIGNATURE))
            .await
            .unwrap()
            .into_inner()
            .data
    };
    let ours = sign_in().await;
    let others = sign_in().await;

    fib_client(&sandbox, Some(ours.access_token.expose_secret()))
        .log_out()
        .await
        .unwrap();

    assert_eq!(sandbox.counters(Service::Fib).logouts, 1);
    let refused = fib_client(&sandbox, Some(ours.refresh_token.expose_secret()))
        .refresh_tokens()
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(reqwest::StatusCode::UNAUTHORIZED));
    fib_client(&sandbox, Some(others.refresh_token.expose_secret()))
        .refresh_tokens()
        .await
        .expect("another session's refresh token still works");
    assert_eq!(sandbox.counters(Service::Fib).refreshes, 1);
}
