//! Fraud Intelligence Blockchain: a login signed with your Authorization key, 5-minute tokens
//! renewed with the refresh token, logout. The session signs the plain BLAKE2b-256 digest of
//! the email first and Iroha's once if that is refused (see `tokensmith::fib::Digest`); set
//! `FIB_DIGEST=plain` or `FIB_DIGEST=iroha` to pin the rule your backend verifies.
//!
//! With `FIB_EMAIL` and `FIB_PRIVATE_KEY` set, `cargo run --example fib` talks to
//! `https://backend.fraudintelligencelimited.com`; otherwise to the built-in sandbox (which
//! knows the vendor's test user).

use tokensmith::fib::{Digest, Session};
use tokensmith::sandbox::{demo, Sandbox};
use tokensmith::Service;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut _sandbox = None;
    let builder = match (env("FIB_EMAIL"), env("FIB_PRIVATE_KEY")) {
        (Some(email), Some(key)) => Session::builder().email(email).private_key(key),
        _ => {
            println!("FIB_EMAIL/FIB_PRIVATE_KEY not set: using the built-in sandbox");
            let sandbox = Sandbox::start().await;
            let builder = Session::builder()
                .base_url(sandbox.base_url(Service::Fib))
                .email(demo::FIB_EMAIL)
                .private_key(demo::FIB_PRIVATE_KEY);
            _sandbox = Some(sandbox);
            builder
        }
    };
    let builder = match env("FIB_DIGEST").as_deref() {
        None => builder,
        Some("plain") => builder.digest(Digest::Plain),
        Some("iroha") => builder.digest(Digest::Iroha),
        Some(other) => return Err(format!("FIB_DIGEST must be plain or iroha, not {other}").into()),
    };
    let session = builder.build()?;
    let token = session.access_token().await?;
    println!("access token: {token:?}");
    session.logout().await?;
    println!("logged out");
    Ok(())
}
