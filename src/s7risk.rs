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

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, ORIGIN};

pub use crate::generated::s7risk::{types, Client};

use crate::env::{Declaration, Declared, Variable};
use crate::error::{Error, ErrorKind, Service};
use crate::expiry;
use crate::provider::sealed::ProviderImpl;
use crate::secret::SecretString;
use crate::session::require;
use crate::token::{Entry, Issued};
use crate::transport::endpoint::Endpoint;
use crate::transport::errors::{ErrorBody, Failure};
use crate::transport::Context;

/// The production server.
pub const DEFAULT_BASE_URL: &str = "https://auth.s7risk.com";
/// The documented token lifetime, used when a token's `exp` claim cannot be read.
pub const ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// A session with the Intelligence Fusion Auth API. Cheap to clone; clones share the token.
pub type Session = crate::Session<S7risk>;
/// Builds a [`Session`]: [`crate::SessionBuilder`]'s setters, and the service's own below.
pub type SessionBuilder = crate::SessionBuilder<S7risk>;

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

mod settings {
    /// What an s7risk builder takes beside the shared settings.
    #[derive(Debug, Default)]
    pub struct Settings {
        pub(super) origin: Option<String>,
        pub(super) login: Option<super::Login>,
    }
}

impl SessionBuilder {
    /// Your API domain, sent as the `Origin` header (required): an origin such as
    /// `https://api.example.com`, with no path.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.own.origin = Some(origin.into());
        self
    }

    /// Logs in as a user (`POST /user/token`), with the user's email address and password.
    /// Either this or [`Self::application`] is required; the later call wins.
    pub fn user(mut self, email: impl Into<String>, password: impl Into<SecretString>) -> Self {
        self.own.login = Some(Login::User {
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
        self.own.login = Some(Login::Application {
            client_id: client_id.into(),
            secret: secret.into(),
        });
        self
    }
}

/// An origin is a scheme, a host and an optional port: nothing else.
fn validate_origin(origin: &str) -> Result<HeaderValue, Error> {
    // The text is never quoted: a misplaced `user:password@` or query would be printed.
    let bad = |why: &str| Error::configuration(Some(Service::S7risk), format!("the origin {why}"));
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

/// The Intelligence Fusion Auth API, as a [`crate::Provider`]: sessions with it are
/// [`Session`]s. There is no logout endpoint (its tokens cannot be revoked before they expire):
/// `logout()` wipes the cached (and stored) token, and the next call logs in afresh.
pub struct S7risk {
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

// The environment variables (`SessionBuilder::from_env`; `crate::env`).
const ORIGIN_VAR: Variable = Variable::text("S7RISK_ORIGIN")
    .checked("an origin (scheme://host[:port], with no path)", |origin| {
        validate_origin(origin).is_ok()
    });
const EMAIL_VAR: Variable = Variable::text("S7RISK_EMAIL");
const PASSWORD_VAR: Variable = Variable::secret("S7RISK_PASSWORD");
const CLIENT_ID_VAR: Variable = Variable::text("S7RISK_CLIENT_ID");
const SECRET_VAR: Variable = Variable::secret("S7RISK_SECRET");

impl crate::Provider for S7risk {
    type Client = Client;
}

impl crate::env::FromEnv for S7risk {
    const ENV: Declaration<Self> = Declaration {
        base_url: "S7RISK_BASE_URL",
        base_url_hint: None,
        shared: &[ORIGIN_VAR],
        profiles: &[
            Declared {
                name: "s7risk-user",
                about: "Intelligence Fusion, as a user",
                kind: "a user",
                variables: &[EMAIL_VAR, PASSWORD_VAR],
                apply: |builder, values| {
                    builder
                        .origin(values.text(&ORIGIN_VAR))
                        .user(values.text(&EMAIL_VAR), values.secret(&PASSWORD_VAR))
                },
            },
            Declared {
                name: "s7risk-app",
                about: "Intelligence Fusion, as an application",
                kind: "an application",
                variables: &[CLIENT_ID_VAR, SECRET_VAR],
                apply: |builder, values| {
                    builder
                        .origin(values.text(&ORIGIN_VAR))
                        .application(values.text(&CLIENT_ID_VAR), values.secret(&SECRET_VAR))
                },
            },
        ],
    };
}

impl ProviderImpl for S7risk {
    const SERVICE: Service = Service::S7risk;
    const BASE_URL: Result<&'static str, &'static str> = Ok(DEFAULT_BASE_URL);
    /// The Incidents API (developer.intelligencefusion.co.uk/incidents.html), which takes the
    /// Auth API's tokens as its bearer.
    const OTHER_API_HOSTS: &'static [&'static str] = &["api.intelligencefusion.co.uk"];
    /// "Too many authentication attempts. Try again in 5 minutes": the documented window,
    /// kept even when a 429's body does not say it.
    const LOGIN_RATE_LIMIT_WAIT: Duration = Duration::from_secs(5 * 60);

    type Settings = settings::Settings;

    fn build(settings: settings::Settings, endpoint: &Endpoint) -> Result<Self, Error> {
        const S: Service = Service::S7risk;
        let origin = require(S, "origin", settings.origin)?;
        let origin = validate_origin(&origin)?;
        let login = match settings.login {
            None => return Err(Error::configuration(Some(S), "credentials are required")),
            Some(Login::User { email, password }) => Login::User {
                email: require(S, "email", Some(email))?,
                password: require(S, "password", Some(password))?,
            },
            Some(Login::Application { client_id, secret }) => Login::Application {
                client_id: require(S, "client id", Some(client_id))?,
                secret: require(S, "secret", Some(secret))?,
            },
        };
        Ok(Self {
            endpoint: endpoint.clone(),
            origin,
            login,
        })
    }

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

    async fn login(&self, sent_wall: SystemTime) -> Result<Issued, Error> {
        let origin = self.origin.to_str().unwrap_or_default();
        let context = Context::new();
        let response = match &self.login {
            Login::User { email, password } => {
                let body = types::UserTokenRequest {
                    email: email.clone(),
                    password: password.clone(),
                };
                let login = |api: Client| async move { api.create_user_token(origin, &body).await };
                self.endpoint.log_in(context, &classify, login).await?
            }
            Login::Application { client_id, secret } => {
                let body = types::ApplicationTokenRequest {
                    client_id: client_id.clone(),
                    secret: secret.clone(),
                };
                let login =
                    |api: Client| async move { api.create_application_token(origin, &body).await };
                self.endpoint.log_in(context, &classify, login).await?
            }
        };
        let token = response.into_inner().data.access_token;
        let lifetime = expiry::capped(None, &token, sent_wall, ACCESS_TOKEN_LIFETIME);
        Ok(Issued::new(token, lifetime))
    }

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
