//! Sessions of the sandbox's demo accounts, on a manual clock, without jitter and without
//! retries (so that every request a test counts was sent once), for the fault and resource
//! tests.

use tokensmith::clock::ManualClock;
use tokensmith::sandbox::{demo, Sandbox};
use tokensmith::{RefreshPolicy, RetryPolicy, Service};

/// A sandbox on a test clock (see [`super::test_clock`]), and that clock.
pub async fn start() -> (Sandbox, ManualClock) {
    let clock = super::test_clock();
    let sandbox = Sandbox::builder().clock(clock.clone()).start().await;
    (sandbox, clock)
}

pub fn s7risk(sandbox: &Sandbox, clock: &ManualClock) -> tokensmith::s7risk::SessionBuilder {
    tokensmith::s7risk::Session::builder()
        .base_url(sandbox.base_url(Service::S7risk))
        .origin(demo::S7RISK_ORIGIN)
        .user(demo::S7RISK_EMAIL, demo::S7RISK_PASSWORD)
        .clock(clock.clone())
        .refresh_policy(RefreshPolicy::new().with_jitter(false))
        .retry_policy(RetryPolicy::none())
}

pub fn weavr(sandbox: &Sandbox, clock: &ManualClock) -> tokensmith::weavr::SessionBuilder {
    tokensmith::weavr::Session::builder()
        .base_url(sandbox.base_url(Service::Weavr))
        .api_key(demo::WEAVR_API_KEY)
        .email(demo::WEAVR_EMAIL)
        .password(demo::WEAVR_PASSWORD)
        .clock(clock.clone())
        .refresh_policy(RefreshPolicy::new().with_jitter(false))
        .retry_policy(RetryPolicy::none())
}

pub fn accounts(sandbox: &Sandbox, clock: &ManualClock) -> tokensmith::accounts::SessionBuilder {
    tokensmith::accounts::Session::builder()
        .base_url(sandbox.base_url(Service::Accounts))
        .username(demo::ACCOUNTS_USERNAME)
        .password(demo::ACCOUNTS_PASSWORD)
        .clock(clock.clone())
        .refresh_policy(RefreshPolicy::new().with_jitter(false))
        .retry_policy(RetryPolicy::none())
}

/// Password Safe with the demo OAuth client.
pub fn passwordsafe(
    sandbox: &Sandbox,
    clock: &ManualClock,
) -> tokensmith::passwordsafe::SessionBuilder {
    tokensmith::passwordsafe::Session::builder()
        .base_url(sandbox.base_url(Service::PasswordSafe))
        .oauth(
            demo::PASSWORDSAFE_CLIENT_ID,
            demo::PASSWORDSAFE_CLIENT_SECRET,
        )
        .clock(clock.clone())
        .refresh_policy(RefreshPolicy::new().with_jitter(false))
        .retry_policy(RetryPolicy::none())
}

pub fn fib(sandbox: &Sandbox, clock: &ManualClock) -> tokensmith::fib::SessionBuilder {
    tokensmith::fib::Session::builder()
        .base_url(sandbox.base_url(Service::Fib))
        .email(demo::FIB_EMAIL)
        .private_key(demo::FIB_PRIVATE_KEY)
        .clock(clock.clone())
        .refresh_policy(RefreshPolicy::new().with_jitter(false))
        .retry_policy(RetryPolicy::none())
}

/// A session of `service`'s demo account (Password Safe: the OAuth client).
pub fn any(sandbox: &Sandbox, clock: &ManualClock, service: Service) -> tokensmith::AnySession {
    match service {
        Service::S7risk => s7risk(sandbox, clock).build().unwrap().into(),
        Service::Weavr => weavr(sandbox, clock).build().unwrap().into(),
        Service::Accounts => accounts(sandbox, clock).build().unwrap().into(),
        Service::PasswordSafe => passwordsafe(sandbox, clock).build().unwrap().into(),
        Service::Fib => fib(sandbox, clock).build().unwrap().into(),
        other => panic!("no demo session for {other}"),
    }
}

/// The five services.
pub const SERVICES: [Service; 5] = [
    Service::S7risk,
    Service::Weavr,
    Service::Accounts,
    Service::PasswordSafe,
    Service::Fib,
];
