//! Wikimedia Enterprise: log in, get the access and id tokens, revoke on the way out.
//!
//! With `ACCOUNTS_USERNAME` and `ACCOUNTS_PASSWORD` set, `cargo run --example accounts` talks
//! to `https://auth.enterprise.wikimedia.com`; otherwise to the built-in sandbox.

use tokensmith::accounts::Session;
use tokensmith::sandbox::{demo, Sandbox};
use tokensmith::Service;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut _sandbox = None;
    let builder = match (env("ACCOUNTS_USERNAME"), env("ACCOUNTS_PASSWORD")) {
        (Some(username), Some(password)) => {
            Session::builder().username(username).password(password)
        }
        _ => {
            println!("ACCOUNTS_USERNAME/ACCOUNTS_PASSWORD not set: using the built-in sandbox");
            let sandbox = Sandbox::start().await;
            let builder = Session::builder()
                .base_url(sandbox.base_url(Service::Accounts))
                .username(demo::ACCOUNTS_USERNAME)
                .password(demo::ACCOUNTS_PASSWORD);
            _sandbox = Some(sandbox);
            builder
        }
    };
    let session = builder.build()?;
    match session.access_token().await {
        Ok(token) => println!("access token: {token:?}"),
        Err(error) if error.kind() == tokensmith::ErrorKind::NewPasswordRequired => {
            println!("this account must set a new password first: Session::complete_new_password");
            return Ok(());
        }
        Err(error) => return Err(error.into()),
    }
    let id_token = session.id_token().await?;
    println!("id token: {id_token:?}");
    session.logout().await?;
    println!("refresh token revoked");
    Ok(())
}
