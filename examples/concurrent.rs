//! Many tasks sharing one session: 10,000 concurrent calls for a token, one login; then, past
//! the refresh margin, one refresh for all of them. Runs against the built-in sandbox.
//!
//! `cargo run --example concurrent`

use std::time::{Duration, SystemTime};

use tokensmith::clock::ManualClock;
use tokensmith::sandbox::{demo, Sandbox};
use tokensmith::{fib, Service};

async fn everyone_asks(session: &fib::Session, tasks: usize) -> Result<usize, tokensmith::Error> {
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let session = session.clone();
            tokio::spawn(async move { session.access_token().await })
        })
        .collect();
    let mut secrets = std::collections::HashSet::new();
    for handle in handles {
        let token = handle.await.expect("no task panics")?;
        secrets.insert(token.secret().expose_secret().to_owned());
    }
    Ok(secrets.len())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let clock = ManualClock::starting_at(SystemTime::now());
    let sandbox = Sandbox::builder().clock(clock.clone()).start().await;
    let session = fib::Session::builder()
        .base_url(sandbox.base_url(Service::Fib))
        .email(demo::FIB_EMAIL)
        .private_key(demo::FIB_PRIVATE_KEY)
        .clock(clock.clone())
        .build()?;

    let distinct = everyone_asks(&session, 10_000).await?;
    let c = sandbox.counters(Service::Fib);
    println!(
        "10,000 tasks, {distinct} distinct token, {} login",
        c.logins
    );

    clock.advance(Duration::from_secs(290));
    let distinct = everyone_asks(&session, 10_000).await?;
    let c = sandbox.counters(Service::Fib);
    println!(
        "near expiry, 10,000 tasks, {distinct} distinct token, {} login, {} refresh",
        c.logins, c.refreshes
    );
    Ok(())
}
