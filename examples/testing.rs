//! Testing your own application against the sandbox, the way its tests would: `load` is the
//! application's code (it calls one of fib's APIs through its session and decides what to
//! show); the tests below make the auth service fail on cue and move time with a
//! `ManualClock` shared by the sandbox and the session, so that a 30-second outage takes no
//! time at all.
//!
//! `cargo run --example testing --features sandbox` walks through it;
//! `cargo test --example testing --features sandbox` runs its tests (so does
//! `cargo test --all-features`).

use std::time::Duration;

use tokensmith::fib;

/// What the application shows.
#[derive(Debug, PartialEq, Eq)]
pub enum Screen {
    /// The data: here, whom the service says the token belongs to.
    Data(String),
    /// The service is down, busy or unreachable: try again, after this long when it said.
    TryLater(Option<Duration>),
    /// The service refused the credentials: the configuration needs fixing.
    Reconfigure,
}

/// The application's code under test: one call to the service's API through the session.
pub async fn load(session: &fib::Session, url: &str) -> Result<Screen, Box<dyn std::error::Error>> {
    match session.send(reqwest::Client::new().get(url)).await {
        Ok(response) if response.status().is_success() => {
            let body: serde_json::Value = response.json().await?;
            let subject = body["subject"].as_str().unwrap_or_default();
            Ok(Screen::Data(subject.to_owned()))
        }
        // The API itself failed (the credentials were fine).
        Ok(response) if response.status().is_server_error() => Ok(Screen::TryLater(None)),
        Ok(response) => Err(format!("unexpected answer: {}", response.status()).into()),
        Err(error) if error.is_credentials_refused() => Ok(Screen::Reconfigure),
        Err(error) if error.is_transient() => Ok(Screen::TryLater(error.retry_after())),
        Err(error) => Err(error.into()),
    }
}

/// The walk-through `cargo run --example testing` prints, and its test runs.
async fn walkthrough() -> Result<(), Box<dyn std::error::Error>> {
    use tokensmith::clock::ManualClock;
    use tokensmith::sandbox::{demo, Fault, Sandbox};
    use tokensmith::Service;

    let clock = ManualClock::new();
    let sandbox = Sandbox::builder().clock(clock.clone()).start().await;
    let session = fib::Session::builder()
        .base_url(sandbox.base_url(Service::Fib))
        .email(demo::FIB_EMAIL)
        .private_key(demo::FIB_PRIVATE_KEY)
        .clock(clock.clone())
        .build()?;
    let url = sandbox.resource_url(Service::Fib);

    let thirty = Duration::from_secs(30);
    sandbox.fail(
        Service::Fib,
        Fault::outage().retry_after(thirty).for_duration(thirty),
    );
    let screen = load(&session, &url).await?;
    println!("the auth service is down and asks for 30 s: {screen:?}");
    assert_eq!(screen, Screen::TryLater(Some(thirty)));

    clock.advance(thirty);
    let screen = load(&session, &url).await?;
    println!("30 s later on the shared clock: {screen:?}");
    assert_eq!(screen, Screen::Data(demo::FIB_EMAIL.to_owned()));
    let counters = sandbox.counters(Service::Fib);
    println!(
        "the sandbox saw {} fault answered and {} login",
        counters.faults, counters.logins
    );
    assert_eq!((counters.faults, counters.logins), (1, 1));
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    walkthrough().await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokensmith::clock::ManualClock;
    use tokensmith::sandbox::{demo, Fault, Operation, Sandbox};
    use tokensmith::{fib, Service};

    use super::{load, Screen};

    /// A sandbox and a session of its demo fib user, on one manual clock.
    async fn setup() -> (Sandbox, ManualClock, fib::Session, String) {
        let clock = ManualClock::new();
        let sandbox = Sandbox::builder().clock(clock.clone()).start().await;
        let session = fib::Session::builder()
            .base_url(sandbox.base_url(Service::Fib))
            .email(demo::FIB_EMAIL)
            .private_key(demo::FIB_PRIVATE_KEY)
            .clock(clock.clone())
            .build()
            .unwrap();
        let url = sandbox.resource_url(Service::Fib);
        (sandbox, clock, session, url)
    }

    fn data() -> Screen {
        Screen::Data(demo::FIB_EMAIL.to_owned())
    }

    #[tokio::test]
    async fn the_walkthrough_runs() {
        super::walkthrough().await.unwrap();
    }

    #[tokio::test]
    async fn a_brief_outage_is_retried_and_the_user_sees_nothing() {
        let (sandbox, _clock, session, url) = setup().await;
        sandbox.fail(Service::Fib, Fault::outage().on(Operation::Login).times(1));
        assert_eq!(load(&session, &url).await.unwrap(), data());
        let counters = sandbox.counters(Service::Fib);
        assert_eq!((counters.faults, counters.logins), (1, 1));
    }

    #[tokio::test]
    async fn while_the_auth_service_is_down_it_says_try_later_then_recovers() {
        let (sandbox, clock, session, url) = setup().await;
        sandbox.fail(Service::Fib, Fault::outage().on(Operation::Login));
        assert_eq!(load(&session, &url).await.unwrap(), Screen::TryLater(None));
        // The login was sent three times (the default retry policy), then given up.
        assert_eq!(sandbox.counters(Service::Fib).faults, 3);
        sandbox.clear_faults(Service::Fib);
        // The session waits at most a second before it logs in again.
        clock.advance(Duration::from_secs(1));
        assert_eq!(load(&session, &url).await.unwrap(), data());
    }

    #[tokio::test]
    async fn when_the_api_is_down_it_says_try_later() {
        let (sandbox, _clock, session, url) = setup().await;
        sandbox.fail(Service::Fib, Fault::outage().on(Operation::Resource));
        assert_eq!(load(&session, &url).await.unwrap(), Screen::TryLater(None));
        assert_eq!(sandbox.counters(Service::Fib).faults, 3, "a GET is retried");
        sandbox.clear_faults(Service::Fib);
        assert_eq!(load(&session, &url).await.unwrap(), data());
    }

    #[tokio::test]
    async fn a_failed_refresh_goes_unnoticed_while_the_token_is_valid() {
        let (sandbox, clock, session, url) = setup().await;
        assert_eq!(load(&session, &url).await.unwrap(), data());
        sandbox.fail(Service::Fib, Fault::outage().on(Operation::Refresh));
        // fib's tokens live 5 minutes; the session renews them ahead of time.
        clock.advance(Duration::from_secs(280));
        assert_eq!(load(&session, &url).await.unwrap(), data());
        assert_eq!(
            sandbox.counters(Service::Fib).faults,
            1,
            "the refresh failed"
        );
    }

    #[tokio::test]
    async fn a_revocation_costs_one_login_and_the_user_sees_nothing() {
        let (sandbox, _clock, session, url) = setup().await;
        assert_eq!(load(&session, &url).await.unwrap(), data());
        sandbox.fail(Service::Fib, Fault::revocation());
        assert_eq!(load(&session, &url).await.unwrap(), data());
        assert_eq!(sandbox.counters(Service::Fib).logins, 2);
    }

    #[tokio::test]
    async fn a_rate_limit_says_how_long_to_wait() {
        let (sandbox, _clock, session, url) = setup().await;
        sandbox.fail(Service::Fib, Fault::rate_limit().on(Operation::Login));
        assert_eq!(
            load(&session, &url).await.unwrap(),
            Screen::TryLater(Some(Duration::from_secs(60)))
        );
    }
}
