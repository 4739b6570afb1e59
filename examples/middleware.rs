//! A session in a reqwest-middleware chain, against the built-in sandbox (no network):
//! reqwest-retry outside, tokensmith's `AuthMiddleware` inside, so every retry carries the
//! token current at that moment. weavr's step-up is answered inside the chain, Password Safe's
//! session cookie rides on its requests, and `only_hosts` keeps credentials on their own host.
//!
//! Run with `cargo run --example middleware --features middleware,sandbox`.

use std::time::Duration;

use reqwest_middleware::ClientBuilder;
use reqwest_retry::{policies::ExponentialBackoff, RetryTransientMiddleware};
use tokensmith::middleware::AuthMiddleware;
use tokensmith::sandbox::{demo, Sandbox};
use tokensmith::{passwordsafe, weavr, AnySession, Service};

#[tokio::main]
pub(crate) async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sandbox = Sandbox::start().await;
    let retry = RetryTransientMiddleware::new_with_policy(
        ExponentialBackoff::builder()
            .retry_bounds(Duration::from_millis(100), Duration::from_secs(2))
            .build_with_max_retries(3),
    );

    println!("== weavr: a call that needs a step-up, answered inside the chain");
    let weavr = weavr::Session::builder()
        .base_url(sandbox.base_url(Service::Weavr))
        .api_key(demo::WEAVR_API_KEY)
        .email(demo::WEAVR_EMAIL)
        .password(demo::WEAVR_PASSWORD)
        // The sandbox's one-time password; a real application asks the user (examples/step_up.rs).
        .step_up(weavr::StepUpMethod::Sms, |_| async {
            weavr::Answer::Code(demo::WEAVR_OTP.into())
        })
        .build()?;
    // On the session's own client, which follows no redirects: a redirect comes back as the
    // answer instead of carrying the api key and the token to the host it names.
    let client = ClientBuilder::new(weavr.client())
        .with(retry)
        .with(AuthMiddleware::new(weavr.clone()))
        .build();
    let url = format!("{}/managed_accounts", sandbox.base_url(Service::Weavr));
    let response = client.get(&url).send().await?;
    let status = response.status();
    let body: serde_json::Value = response.json().await?;
    let counters = sandbox.counters(Service::Weavr);
    println!("GET /managed_accounts: {status} {body}");
    println!(
        "  {} sign-in, {} SMS challenge, {} verification",
        counters.logins, counters.challenges, counters.verifications
    );
    assert_eq!(status, 200);
    assert_eq!((counters.challenges, counters.verifications), (1, 1));

    client.get(&url).send().await?.error_for_status()?;
    println!(
        "  a second call is already stepped up: still {} challenge",
        sandbox.counters(Service::Weavr).challenges
    );

    println!("\n== passwordsafe, held as an AnySession: the session cookie on every request");
    let session: AnySession = passwordsafe::Session::builder()
        .base_url(sandbox.base_url(Service::PasswordSafe))
        .oauth(
            demo::PASSWORDSAFE_CLIENT_ID,
            demo::PASSWORDSAFE_CLIENT_SECRET,
        )
        .build()?
        .into();
    let base = sandbox.base_url(Service::PasswordSafe);
    let host = reqwest::Url::parse(&base)?
        .host_str()
        .unwrap_or_default()
        .to_owned();
    let client = ClientBuilder::new(session.client())
        .with(AuthMiddleware::new(session.clone()).only_hosts([host.as_str()]))
        .build();
    let response = client.get(format!("{base}/ManagedAccounts")).send().await?;
    let status = response.status();
    println!(
        "GET /ManagedAccounts ({} only): {status} {}",
        host,
        response.text().await?
    );
    assert_eq!(status, 200);
    session.logout().await?;
    println!(
        "signed out: {} sign-out",
        sandbox.counters(Service::PasswordSafe).logouts
    );
    Ok(())
}
