//! Intelligence Fusion Auth API (`https://auth.s7risk.com`).
//!
//! User tokens (email and password) or application tokens (client id and secret), each sent
//! with the caller's `Origin`. Tokens are RS256 JWTs that live 24 hours; there is no refresh
//! endpoint, so the session logs in again with the stored credentials before the JWT's `exp`.
//!
//! # Examples
//!
//! ```no_run
//! # async fn run() -> Result<(), tokensmith::Error> {
//! use tokensmith::s7risk::Session;
//!
//! let session = Session::builder()
//!     .origin("https://api.example.com")
//!     .user("analyst@example.com", "correct horse")
//!     .build()?;
//! let token = session.access_token().await?;
//! println!("valid for {:?}", token.expires_in());
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, ORIGIN};

pub use crate::generated::s7risk::{types, Client};

use crate::cache::Provider;
use crate::error::{Error, ErrorKind, Service};
use crate::expiry;
use crate::response::{ErrorBody, Failure};
use crate::retry::Replay;
use crate::secret::SecretString;
use crate::session::{self, Attach, Common, Core, Endpoint};
use crate::token::{Entry, Grant};
use crate::transport::Context;

/// The production server.
pub const DEFAULT_BASE_URL: &str = "https://auth.s7risk.com";
/// The documented token lifetime, used when a token's `exp` claim cannot be read.
pub const ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// What the session logs in with.
#[derive(Clone, Debug)]
enum Login {
    /// A user token: `POST /user/token`.
    User {
        email: String,
        password: SecretString,
    },
    /// An application token: `POST /application/token`.
    Application {
        client_id: String,
        secret: SecretString,
    },
}

/// Builds a [`Session`].
#[derive(Debug, Default)]
#[must_use]
pub struct SessionBuilder {
    common: Common,
    origin: Option<String>,
    login: Option<Login>,
}

impl SessionBuilder {
    session::common_builder_methods!();

    /// Your API domain, sent as the `Origin` header (required): an origin such as
    /// `https://api.example.com`, with no path.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// Logs in as a user (`POST /user/token`), with the user's email address and password.
    /// Either this or [`Self::application`] is required; the later call wins.
    pub fn user(mut self, email: impl Into<String>, password: impl Into<SecretString>) -> Self {
        self.login = Some(Login::User {
            email: email.into(),
            password: password.into(),
        });
        self
    }

    /// Logs in as an application, for machine-to-machine use (`POST /application/token`),
    /// with its client id and secret. Either this or [`Self::user`] is required; the later
    /// call wins.
    pub fn application(
        mut self,
        client_id: impl Into<String>,
        secret: impl Into<SecretString>,
    ) -> Self {
        self.login = Some(Login::Application {
            client_id: client_id.into(),
            secret: secret.into(),
        });
        self
    }

    /// Checks the configuration and builds the session. Makes no request.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Configuration`] when the origin, the base URL or the credentials are
    /// missing or malformed.
    pub fn build(self) -> Result<Session, Error> {
        const S: Service = Service::S7risk;
        let origin = session::require_plain(S, "origin", self.origin)?;
        let origin = validate_origin(&origin)?;
        let login = match self.login {
            None => return Err(Error::configuration(Some(S), "credentials are required")),
            Some(Login::User { email, password }) => Login::User {
                email: session::require_plain(S, "email", Some(email))?,
                password: session::require(S, "password", Some(password))?,
            },
            Some(Login::Application { client_id, secret }) => Login::Application {
                client_id: session::require_plain(S, "client id", Some(client_id))?,
                secret: session::require(S, "secret", Some(secret))?,
            },
        };
        let (endpoint, clock, policy) = self.common.finish(S, DEFAULT_BASE_URL)?;
        let provider = S7risk {
            endpoint: endpoint.clone(),
            origin,
            login,
        };
        Ok(Session {
            core: Arc::new(Core::new(provider, endpoint, clock, policy)),
        })
    }
}

/// An origin is a scheme, a host and an optional port: nothing else.
fn validate_origin(origin: &str) -> Result<HeaderValue, Error> {
    let bad =
        |why: &str| Error::configuration(Some(Service::S7risk), format!("origin {origin:?} {why}"));
    let url = url::Url::parse(origin).map_err(|_| bad("is not an origin (scheme://host)"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(bad("is not an http(s) origin"));
    }
    let serialized = url.origin().ascii_serialization();
    if serialized != origin.trim_end_matches('/') || url.path() != "/" {
        return Err(bad(
            "must be only scheme://host[:port], with no path, query or user",
        ));
    }
    HeaderValue::try_from(serialized).map_err(|_| bad("is not a valid header value"))
}

/// A session with the Intelligence Fusion Auth API. Cheap to clone; clones share the token.
#[derive(Clone)]
pub struct Session {
    core: Arc<Core<S7risk>>,
}

impl Session {
    /// A builder for a session.
    pub fn builder() -> SessionBuilder {
        SessionBuilder::default()
    }

    session::common_session_methods!(Client);

    /// Ends the session: the service has no logout endpoint (its tokens cannot be revoked
    /// before they expire), so this wipes the cached (and stored) token and the next call
    /// logs in afresh. Never fails; async like every other service's `logout`.
    ///
    /// # Errors
    ///
    /// None today: the result is there so that every service's `logout` reads alike.
    pub async fn logout(&self) -> Result<(), Error> {
        self.core.forget().await;
        Ok(())
    }
}

session::session_impls!(Session);

struct S7risk {
    endpoint: Endpoint,
    origin: HeaderValue,
    login: Login,
}

impl ErrorBody for types::Error {
    fn message(&self) -> Option<String> {
        self.message.clone()
    }
}

fn classify(failure: &Failure) -> ErrorKind {
    match failure.status {
        401 if failure.message_has("access window") => ErrorKind::AccessWindowExpired,
        401 => ErrorKind::InvalidCredentials,
        _ => failure.default_kind(),
    }
}

impl Provider for S7risk {
    const SERVICE: Service = Service::S7risk;
    /// "Too many authentication attempts. Try again in 5 minutes": the documented window,
    /// kept even when a 429's body does not say it.
    const LOGIN_RATE_LIMIT_WAIT: Duration = Duration::from_secs(5 * 60);

    fn store_identity(&self) -> String {
        let who = match &self.login {
            Login::User { email, .. } => format!("user:{email}"),
            Login::Application { client_id, .. } => format!("application:{client_id}"),
        };
        format!("{}|{who}", self.origin.to_str().unwrap_or_default())
    }

    fn credentials(&self, fingerprint: &mut dyn FnMut(&[u8])) {
        match &self.login {
            Login::User { password, .. } => fingerprint(password.expose_secret().as_bytes()),
            Login::Application { secret, .. } => fingerprint(secret.expose_secret().as_bytes()),
        }
    }

    async fn login(&self, sent_wall: SystemTime) -> Result<Grant, Error> {
        let origin = self.origin.to_str().unwrap_or_default();
        let context = Context::new()
            .with_replay(Replay::Gateway)
            .with_grant(crate::telemetry::Grant::Login);
        let response = match &self.login {
            Login::User { email, password } => {
                let body = types::UserTokenRequest {
                    email: email.clone(),
                    password: password.clone(),
                };
                let login = |api: Client| async move { api.create_user_token(origin, &body).await };
                self.endpoint.call(context, &classify, login).await?
            }
            Login::Application { client_id, secret } => {
                let body = types::ApplicationTokenRequest {
                    client_id: client_id.clone(),
                    secret: secret.clone(),
                };
                let login =
                    |api: Client| async move { api.create_application_token(origin, &body).await };
                self.endpoint.call(context, &classify, login).await?
            }
        };
        let token = response.into_inner().data.access_token;
        let lifetime = expiry::lifetime(
            None,
            Some(token.expose_secret()),
            sent_wall,
            ACCESS_TOKEN_LIFETIME,
            Some(ACCESS_TOKEN_LIFETIME),
        );
        Ok(Grant::new(token, lifetime))
    }
}

impl Attach for S7risk {
    fn attach(&self, entry: &Entry, headers: &mut HeaderMap) {
        headers.insert(AUTHORIZATION, entry.bearer());
        headers.insert(ORIGIN, self.origin.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked() {
        assert_eq!(
            validate_origin("https://api.example.com").unwrap(),
            "https://api.example.com"
        );
        assert_eq!(
            validate_origin("http://localhost:8080").unwrap(),
            "http://localhost:8080"
        );
        for bad in [
            "api.example.com",
            "https://api.example.com/path",
            "ftp://x.y",
            "https://u@x.y",
            "",
        ] {
            let err = validate_origin(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Configuration, "{bad}");
        }
    }
}
