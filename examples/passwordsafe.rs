//! BeyondTrust Password Safe: an OAuth client (or a PS-Auth key) opens a session; its cookie
//! authorises the rest of the API; sign out at the end.
//!
//! With `PASSWORDSAFE_BASE_URL` (`https://<host>/BeyondTrust/api/public/v3`) and either
//! `PASSWORDSAFE_CLIENT_ID`/`PASSWORDSAFE_CLIENT_SECRET` or
//! `PASSWORDSAFE_API_KEY`/`PASSWORDSAFE_RUNAS` (plus `PASSWORDSAFE_PASSWORD` if the
//! registration requires one) set, `cargo run --example passwordsafe` talks to that server;
//! otherwise to the built-in sandbox.

use tokensmith::passwordsafe::Session;
use tokensmith::sandbox::{demo, Sandbox};
use tokensmith::Service;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut _sandbox = None;
    let builder = Session::builder();
    let builder = match (
        env("PASSWORDSAFE_CLIENT_ID"),
        env("PASSWORDSAFE_CLIENT_SECRET"),
    ) {
        (Some(id), Some(secret)) => Some(builder.oauth(id, secret)),
        _ => match (env("PASSWORDSAFE_API_KEY"), env("PASSWORDSAFE_RUNAS")) {
            (Some(key), Some(runas)) => {
                Some(builder.ps_auth(key, runas, env("PASSWORDSAFE_PASSWORD").map(Into::into)))
            }
            _ => None,
        },
    };
    let (base, builder) = match (env("PASSWORDSAFE_BASE_URL"), builder) {
        (Some(base), Some(builder)) => (base, builder),
        _ => {
            println!("Password Safe variables not set: using the built-in sandbox");
            let sandbox = Sandbox::start().await;
            let base = sandbox.base_url(Service::PasswordSafe);
            _sandbox = Some(sandbox);
            (
                base,
                Session::builder().oauth(
                    demo::PASSWORDSAFE_CLIENT_ID,
                    demo::PASSWORDSAFE_CLIENT_SECRET,
                ),
            )
        }
    };
    let session = builder.base_url(&base).build()?;
    println!("session: {:?}", session.access_token().await?);
    let accounts = session
        .authorize(reqwest::Client::new().get(format!("{base}/ManagedAccounts")))
        .await?
        .send()
        .await?;
    println!("GET ManagedAccounts: {}", accounts.status());
    session.logout().await?;
    println!("signed out");
    Ok(())
}
