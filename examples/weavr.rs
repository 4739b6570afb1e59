//! Weavr: sign in, act for your identity, list identities through the generated client.
//!
//! With `WEAVR_API_KEY`, `WEAVR_EMAIL` and `WEAVR_PASSWORD` set (and `WEAVR_BASE_URL`,
//! default Weavr's sandbox), `cargo run --example weavr` talks to Weavr; otherwise to the
//! built-in sandbox. See `step_up.rs` for step-up.

use tokensmith::sandbox::{demo, Sandbox};
use tokensmith::weavr::Session;
use tokensmith::Service;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut _sandbox = None;
    let builder = match (
        env("WEAVR_API_KEY"),
        env("WEAVR_EMAIL"),
        env("WEAVR_PASSWORD"),
    ) {
        (Some(key), Some(email), Some(password)) => Session::builder()
            .base_url(
                env("WEAVR_BASE_URL").unwrap_or_else(|| tokensmith::weavr::SANDBOX_BASE_URL.into()),
            )
            .api_key(key)
            .email(email)
            .password(password),
        _ => {
            println!(
                "WEAVR_API_KEY/WEAVR_EMAIL/WEAVR_PASSWORD not set: using the built-in sandbox"
            );
            let sandbox = Sandbox::start().await;
            let builder = Session::builder()
                .base_url(sandbox.base_url(Service::Weavr))
                .api_key(demo::WEAVR_API_KEY)
                .email(demo::WEAVR_EMAIL)
                .password(demo::WEAVR_PASSWORD);
            _sandbox = Some(sandbox);
            builder
        }
    };
    let session = builder.build()?;
    println!("token: {:?}", session.access_token().await?);
    let identities = session
        .api()
        .list_identities(None, None)
        .await?
        .into_inner();
    for identity in identities.into_identities() {
        println!(
            "identity {:?} {} {:?}",
            identity.id.type_, identity.id.id, identity.name
        );
    }
    session.logout().await?;
    Ok(())
}
