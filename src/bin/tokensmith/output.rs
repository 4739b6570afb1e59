//! What the command prints for a token.

use tokensmith::{AccessToken, AnySession, TokenOrigin};

use super::args::{Command, Request};
use super::exit::Exit;

/// What `token`, `header` or `info` prints for `token`, a token of `session`.
pub(crate) async fn render(
    request: &Request,
    session: &AnySession,
    token: &AccessToken,
) -> Result<String, Exit> {
    let secret = token.secret().expose_secret();
    Ok(match request.command {
        Command::Token => secret.to_owned(),
        // A session carried by a cookie (Password Safe's) is its cookie, unless its OAuth
        // sign-in set none: then the bearer alone, which is what its calls carry (see
        // `passwordsafe::Session`).
        Command::Header if session.headers().await?.contains_key("cookie") => {
            format!("Cookie: {secret}")
        }
        Command::Header => format!("Authorization: Bearer {secret}"),
        Command::Info => {
            let source = match token.origin() {
                TokenOrigin::Login => "login",
                TokenOrigin::Refresh => "refresh",
                // Taken from --cache (TokenOrigin is non-exhaustive: anything new is a cache).
                _ => "cache",
            };
            let expires_at = token.expires_at_system();
            serde_json::json!({
                "provider": request.profile.name(),
                "expires_at": humantime::format_rfc3339_seconds(expires_at).to_string(),
                "seconds_left": token.expires_in().as_secs(),
                "source": source,
            })
            .to_string()
        }
        // `run` logs out before asking for a token.
        Command::Logout => String::new(),
    })
}
