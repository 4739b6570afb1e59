//! The SDK at work with no network and no account: the built-in sandbox stands in for all five
//! services on a loopback port, and sessions log in, serve their cached token, renew it
//! before expiry (by refresh token where the service has one), share one renewal among many
//! concurrent callers, refuse to resend refused credentials, call a protected resource, and log
//! out.
//!
//! Run with `cargo run --example quickstart`. Time is a manual clock shared by the sandbox and
//! the sessions, so a day passes in an instant.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokensmith::clock::ManualClock;
use tokensmith::sandbox::{demo, Sandbox};
use tokensmith::{accounts, fib, passwordsafe, s7risk, weavr, Service, TokenSource};

/// Many tasks asking at once: all get the same token.
async fn storm<S: TokenSource + Clone + 'static>(session: &S, callers: usize) -> usize {
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let session = session.clone();
            tokio::spawn(async move { session.access_token().await })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        if matches!(task.await, Ok(Ok(_))) {
            ok += 1;
        }
    }
    ok
}

#[tokio::main]
pub(crate) async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Now, in whole seconds like the tokens' claims, so that the lifetimes printed are whole.
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let clock = ManualClock::starting_at(UNIX_EPOCH + Duration::from_secs(now));
    let sandbox = Sandbox::builder().clock(clock.clone()).start().await;
    println!("sandbox: {sandbox:?}\n");

    println!("== s7risk (Intelligence Fusion): 24 h JWTs, renewed by logging in again");
    let session = s7risk::Session::builder()
        .base_url(sandbox.base_url(Service::S7risk))
        .origin(demo::S7RISK_ORIGIN)
        .user(demo::S7RISK_EMAIL, demo::S7RISK_PASSWORD)
        .clock(clock.clone())
        .build()?;
    let token = session.access_token().await?;
    println!("logged in: {token:?}");
    session.access_token().await?;
    println!(
        "second call served from the cache; logins so far: {}",
        sandbox.counters(Service::S7risk).logins
    );
    // Each stand-in serves a resource that checks what the vendor's other APIs check (here the
    // bearer): `send()` puts the session's credentials on the request and sees the answer.
    let response = session
        .send(reqwest::Client::new().get(sandbox.resource_url(Service::S7risk)))
        .await?;
    println!(
        "a protected resource, through the session: {} {}",
        response.status(),
        response.text().await?
    );
    clock.advance(Duration::from_secs(24 * 3600));
    let ok = storm(&session, 1000).await;
    println!(
        "a day later, {ok} concurrent callers shared one new login; logins so far: {}",
        sandbox.counters(Service::S7risk).logins
    );
    let wrong = s7risk::Session::builder()
        .base_url(sandbox.base_url(Service::S7risk))
        .origin(demo::S7RISK_ORIGIN)
        .user(demo::S7RISK_EMAIL, "wrong")
        .build()?;
    let error = wrong.access_token().await.unwrap_err();
    let again = wrong.access_token().await.unwrap_err();
    println!(
        "refused credentials: {error}; asked again: {} (sent once: {} failed login)",
        again.kind(),
        sandbox.counters(Service::S7risk).failed_logins
    );
    session.logout().await?;
    println!("logged out (s7risk has no endpoint: the cached token is wiped)\n");

    println!("== weavr: api-key sign-in, identity exchange, 5-minute sliding tokens, step-up");
    let session = weavr::Session::builder()
        .base_url(sandbox.base_url(Service::Weavr))
        .api_key(demo::WEAVR_API_KEY)
        .email(demo::WEAVR_EMAIL)
        .password(demo::WEAVR_PASSWORD)
        .clock(clock.clone())
        // The sandbox's one-time password; a real application asks the user (examples/step_up.rs).
        .step_up(weavr::StepUpMethod::Sms, |challenge| async move {
            println!("   the user is asked for the SMS code ({challenge:?}) and types 123456");
            weavr::Answer::Code(demo::WEAVR_OTP.into())
        })
        .build()?;
    let token = session.access_token().await?;
    println!("signed in and exchanged for the identity's access token: {token:?}");
    let needing_step_up: Vec<_> = (0..50)
        .map(|_| {
            let session = session.clone();
            tokio::spawn(async move { session.step_up().await })
        })
        .collect();
    for call in needing_step_up {
        call.await??;
    }
    let c = sandbox.counters(Service::Weavr);
    println!(
        "50 calls needing a step-up shared {} SMS challenge and {} verification",
        c.challenges, c.verifications
    );
    session.logout().await?;
    println!("logged out\n");

    println!("== accounts (Wikimedia Enterprise): refresh tokens, the new-password challenge");
    let session = accounts::Session::builder()
        .base_url(sandbox.base_url(Service::Accounts))
        .username(demo::ACCOUNTS_NEW_USERNAME)
        .password(demo::ACCOUNTS_PASSWORD)
        .clock(clock.clone())
        .build()?;
    let error = session.access_token().await.unwrap_err();
    println!("first login: {error}");
    let challenge = error
        .challenge_session()
        .expect("the challenge's session")
        .clone();
    session
        .complete_new_password(&challenge, "A-New-Passw0rd")
        .await?;
    println!("new password set; the session holds the token set");
    clock.advance(Duration::from_secs(24 * 3600));
    session.access_token().await?;
    let c = sandbox.counters(Service::Accounts);
    println!(
        "a day later the session renewed by refresh token: {} login, {} refresh",
        c.logins, c.refreshes
    );
    session.logout().await?;
    println!("logged out (refresh token revoked)\n");

    println!(
        "== passwordsafe (BeyondTrust): OAuth bearer, then a session cookie that closes when idle"
    );
    let session = passwordsafe::Session::builder()
        .base_url(sandbox.base_url(Service::PasswordSafe))
        .oauth(
            demo::PASSWORDSAFE_CLIENT_ID,
            demo::PASSWORDSAFE_CLIENT_SECRET,
        )
        .clock(clock.clone())
        .build()?;
    let token = session.access_token().await?;
    println!("signed in (client credentials, then SignAppin): {token:?}");
    let accounts: serde_json::Value = session
        .authorize(reqwest::Client::new().get(sandbox.resource_url(Service::PasswordSafe)))
        .await?
        .send()
        .await?
        .json()
        .await?;
    println!("the session cookie opens the rest of the API: {accounts}");
    session.logout().await?;
    println!(
        "signed out: {} sign-out\n",
        sandbox.counters(Service::PasswordSafe).logouts
    );

    println!("== fib: Ed25519-signed login, 5-minute tokens renewed by refresh token");
    let session = fib::Session::builder()
        .base_url(sandbox.base_url(Service::Fib))
        .email(demo::FIB_EMAIL)
        .private_key(demo::FIB_PRIVATE_KEY)
        .clock(clock.clone())
        .build()?;
    let token = session.access_token().await?;
    println!("logged in with the signed email: {token:?}");
    clock.advance(Duration::from_secs(290));
    let ok = storm(&session, 1000).await;
    let counters = sandbox.counters(Service::Fib);
    println!(
        "near expiry, {ok} concurrent callers shared one refresh: {} login, {} refresh",
        counters.logins, counters.refreshes
    );
    session.logout().await?;
    println!(
        "logged out at the service: {} logout",
        sandbox.counters(Service::Fib).logouts
    );
    Ok(())
}
