//! What the command prints, and the exit code each failure earns.

use std::process::ExitCode;

use tokensmith::{AccessToken, AnySession, Error, ErrorKind, TokenOrigin};

use super::args::{Command, Request};

/// What went wrong, and the exit code it earns.
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) message: String,
    /// The message is clap's, complete with its usage line.
    pub(crate) from_clap: bool,
}

impl Failure {
    /// A usage or configuration error (exit code 2).
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: message.into(),
            from_clap: false,
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        let code = match error.kind() {
            ErrorKind::Configuration => 2,
            _ if error.is_credentials_refused() => 3,
            ErrorKind::RateLimited { .. } | ErrorKind::AccountLocked { .. } => 4,
            _ => 5,
        };
        Self {
            code,
            message: error.to_string(),
            from_clap: false,
        }
    }
}

/// What `token`, `header` or `info` prints for `token`, a token of `session`.
pub(crate) async fn render(
    request: &Request,
    session: &AnySession,
    token: &AccessToken,
) -> Result<String, Failure> {
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

/// Prints the outcome (the output on stdout, a failure on stderr) and gives its exit code.
pub(crate) fn finish(outcome: Result<String, Failure>) -> ExitCode {
    match outcome {
        Ok(output) => {
            if !output.is_empty() {
                println!("{output}");
            }
            ExitCode::SUCCESS
        }
        Err(failure) => {
            if failure.from_clap {
                // clap's own message, with its usage line and a pointer to --help.
                eprint!("{}", failure.message);
            } else if failure.code == 2 {
                eprintln!(
                    "tokensmith: {}\n\nFor more information, try 'tokensmith --help'.",
                    failure.message
                );
            } else {
                eprintln!("tokensmith: {}", failure.message);
            }
            ExitCode::from(failure.code)
        }
    }
}
