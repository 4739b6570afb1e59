//! Intelligence Fusion: a user token for your API domain, then a request authorised with it.
//!
//! With `S7RISK_ORIGIN`, `S7RISK_EMAIL` and `S7RISK_PASSWORD` set, `cargo run --example
//! s7risk` talks to `https://auth.s7risk.com`; otherwise to the built-in sandbox.

use tokensmith::s7risk::Session;
use tokensmith::sandbox::{demo, Sandbox};
use tokensmith::Service;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut _sandbox = None;
    let builder = match (
        env("S7RISK_ORIGIN"),
        env("S7RISK_EMAIL"),
        env("S7RISK_PASSWORD"),
    ) {
        (Some(origin), Some(email), Some(password)) => {
            Session::builder().origin(origin).user(email, password)
        }
        _ => {
            println!("S7RISK_ORIGIN/S7RISK_EMAIL/S7RISK_PASSWORD not set: using the sandbox");
            let sandbox = Sandbox::start().await;
            let builder = Session::builder()
                .base_url(sandbox.base_url(Service::S7risk))
                .origin(demo::S7RISK_ORIGIN)
                .user(demo::S7RISK_EMAIL, demo::S7RISK_PASSWORD);
            _sandbox = Some(sandbox);
            builder
        }
    };
    let session = builder.build()?;
    let token = session.access_token().await?;
    println!("token: {token:?}");
    let request = session
        .authorize(reqwest::Client::new().get("https://api.example.com/v1/alerts"))
        .await?
        .build()?;
    println!("authorised request headers: {:?}", request.headers());
    Ok(())
}
