//! Wikimedia Enterprise authentication (`https://auth.enterprise.wikimedia.com`).
//!
//! A username and password log in for an access token, an id token and a refresh token. Access
//! and id tokens live 24 hours and are renewed with the refresh token (`/v1/token-refresh`),
//! which lives 90 days and serves at most 90 refreshes; after that, or when it is refused, the
//! session logs in again. An account that must set a new password first answers the login
//! with a `NEW_PASSWORD_REQUIRED` challenge: the error carries the challenge's session, which
//! [`Session::complete_new_password`] answers. No source shows the login passing on another
//! Amazon Cognito challenge; should one come, nothing could answer it: the login fails with
//! [`ErrorKind::UnsupportedChallenge`] naming the challenge ([`Error::code`]), and is not
//! tried again until `clear_failure()`.
//!
//! Each field is held to the length the service's own validation binds it to, and a value
//! outside it is a configuration error before any request is sent: usernames and login
//! passwords 1 to 255 characters, a challenge's new password 6 to 255, both passwords of a
//! password change 6 to 256, the new password of a reset 1 to 255 and its confirmation code 1
//! to 2048.
//!
//! # Examples
//!
//! ```no_run
//! # async fn run() -> Result<(), tokensmith::Error> {
//! use tokensmith::accounts::Session;
//!
//! let session = Session::builder()
//!     .username("my-account")
//!     .password("correct horse battery staple")
//!     .build()?;
//! let token = session.access_token().await?;
//! # let _ = token;
//! # Ok(()) }
//! ```

use std::time::{Duration, SystemTime};

pub use crate::generated::accounts::{types, Client};

use crate::env::{Declaration, Declared, Variable};
use crate::error::{Error, ErrorKind, Service};
use crate::expiry;
use crate::provider::sealed::ProviderImpl;
use crate::provider::{Ending, Tokens};
use crate::retry::Replay;
use crate::secret::{Replaceable, SecretString};
use crate::session::require;
use crate::token::{Companions, Issued};
use crate::transport::endpoint::Endpoint;
use crate::transport::errors::{ErrorBody, Failure};
use crate::transport::Context;

/// A session with the Wikimedia Enterprise auth API. Cheap to clone; clones share the tokens.
pub type Session = crate::Session<Accounts>;
/// Builds a [`Session`]: [`crate::SessionBuilder`]'s setters, and the service's own below.
pub type SessionBuilder = crate::SessionBuilder<Accounts>;

/// The production server.
pub const DEFAULT_BASE_URL: &str = "https://auth.enterprise.wikimedia.com";
/// The documented access and id token lifetime, used when a response gives none.
pub const ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// The documented refresh token lifetime.
pub const REFRESH_TOKEN_LIFETIME: Duration = Duration::from_secs(90 * 24 * 60 * 60);
/// How many refreshes one refresh token serves.
pub const MAX_REFRESHES: u32 = 90;

const S: Service = Service::Accounts;

// The lengths, in characters, that the service's validation allows each field (more or fewer:
// a 422), as its handlers bind their requests (`binding:"required,min=…,max=…"` in
// wikimedia-enterprise/wikimedia-enterprise, api/auth/handlers/v1/<endpoint>/<endpoint>.go at
// commit 55fdd9f30e2ab7057fd2614849e1a4fd3a5fbc00). Neither narrower, which would refuse what
// the service takes, nor wider, which would send what it refuses.
/// `username` of login, token-refresh, new-password-required, forgot-password and
/// forgot-password-confirm.
const USERNAME: Field = Field("the username", 1, 255);
/// `password` of login.
const PASSWORD: Field = Field("the password", 1, 255);
/// `password` of forgot-password-confirm (a reset's new password has no minimum there).
const RESET_PASSWORD: Field = Field("the new password", 1, 255);
/// `new_password` of new-password-required.
const NEW_PASSWORD: Field = Field("the new password", 6, 255);
/// `previous_password` and `proposed_password` of change-password.
const PREVIOUS_PASSWORD: Field = Field("the previous password", 6, 256);
const PROPOSED_PASSWORD: Field = Field("the proposed password", 6, 256);
/// `confirmation_code` of forgot-password-confirm.
const CONFIRMATION_CODE: Field = Field("the confirmation code", 1, 2048);

/// A field as errors name it, and the fewest and most characters the service takes in it.
struct Field(&'static str, usize, usize);

impl Field {
    /// Refuses, before sending, a value the service would answer with a 422 (whose message
    /// names no field). The value itself is never quoted.
    fn check(&self, value: &str) -> Result<(), Error> {
        let Self(what, min, max) = *self;
        if (min..=max).contains(&value.chars().count()) {
            return Ok(());
        }
        Err(Error::configuration(
            Some(S),
            format!("{what} must be {min} to {max} characters, as the service requires"),
        ))
    }

    /// A secret the caller gave, [`Self::check`]ed.
    fn secret(&self, value: impl Into<SecretString>) -> Result<SecretString, Error> {
        let value = value.into();
        self.check(value.expose_secret())?;
        Ok(value)
    }
}

mod settings {
    use crate::secret::SecretString;

    /// What an accounts builder takes beside the shared settings.
    #[derive(Debug, Default)]
    pub struct Settings {
        pub(super) username: Option<String>,
        pub(super) password: Option<SecretString>,
    }
}

impl SessionBuilder {
    /// The account's username (required; the service's own word, where the other services
    /// log in with an email). The service's usernames are lowercase: one with capitals is
    /// lowercased, and [`Session::username_was_lowercased`] says so.
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.own.username = Some(username.into());
        self
    }

    /// The account's password (required).
    pub fn password(mut self, password: impl Into<SecretString>) -> Self {
        self.own.password = Some(password.into());
        self
    }
}

impl Session {
    /// The username the session logs in with (lowercase).
    pub fn username(&self) -> &str {
        &self.provider().username
    }

    /// Whether the configured username had capitals and was lowercased.
    pub fn username_was_lowercased(&self) -> bool {
        self.provider().lowercased
    }

    /// A valid id token (OpenID Connect, describing the user), renewed with the access token.
    ///
    /// # Errors
    ///
    /// Whatever renewing the tokens fails with; [`ErrorKind::UnexpectedResponse`] when the
    /// service issued no id token.
    pub async fn id_token(&self) -> Result<SecretString, Error> {
        let token = self.access_token().await?;
        token.entry().extra.id_token.clone().ok_or_else(|| {
            Error::new(ErrorKind::UnexpectedResponse)
                .with_service(S)
                .with_message("the service issued no id token")
        })
    }

    /// Answers a `NEW_PASSWORD_REQUIRED` challenge: `challenge_session` is the one the login's
    /// [`ErrorKind::NewPasswordRequired`] error carried ([`Error::challenge_session`]). On
    /// success the session holds the new token set, logs in with the new password from then
    /// on, and returns the access token. The new password must be 6 to 255 characters (else a
    /// [`ErrorKind::Configuration`] error, and nothing is sent).
    ///
    /// The service answers only a token set: should Amazon Cognito ask for a further challenge,
    /// it answers 500 ([`ErrorKind::ServerError`]), as it does for any failure. The session's
    /// password is then left as it was, since whether the service took the new one is unknown.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Configuration`] for a new password of the wrong length (nothing is sent);
    /// the service's refusal (an expired challenge session, a password the policy refuses, …);
    /// [`ErrorKind::ServerError`] for a further challenge.
    pub async fn complete_new_password(
        &self,
        challenge_session: &SecretString,
        new_password: impl Into<SecretString>,
    ) -> Result<crate::AccessToken, Error> {
        let new_password = NEW_PASSWORD.secret(new_password)?;
        // new-password-required binds `session` with `min=1` and no maximum.
        if challenge_session.expose_secret().is_empty() {
            return Err(Error::configuration(
                Some(S),
                "the challenge session is empty, which the service refuses",
            ));
        }
        let provider = self.provider();
        let sent = self.tokens().sent();
        let body = types::NewPasswordRequest {
            session: challenge_session.clone(),
            username: provider.username.clone(),
            new_password: new_password.clone(),
        };
        let complete = |api: Client| async move { api.complete_new_password(&body).await };
        let response = self
            .endpoint()
            .call(
                Context::new().with_grant(crate::telemetry::Grant::NewPassword),
                &classify_login,
                complete,
            )
            .await?;
        let tokens = response.into_inner();
        provider.password.replace(new_password);
        let access = tokens.access_token;
        let grant = grant(
            access,
            tokens.refresh_token,
            tokens.id_token,
            tokens.expires_in,
            sent.wall,
        );
        self.tokens().install(grant, sent).await
    }

    /// Changes the account's password (`/v1/change-password`, with a valid access token); the
    /// session logs in with the new one from then on. Both passwords must be 6 to 256
    /// characters, as the service checks them there (else a [`ErrorKind::Configuration`]
    /// error, and nothing is sent): a previous password shorter than 6 cannot be changed this
    /// way, only reset ([`Self::forgot_password`]).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Configuration`] for a password of the wrong length; whatever getting a
    /// valid access token fails with; the service's refusal of the change, after which the
    /// session keeps the old password.
    pub async fn change_password(
        &self,
        previous: impl Into<SecretString>,
        proposed: impl Into<SecretString>,
    ) -> Result<(), Error> {
        let previous = PREVIOUS_PASSWORD.secret(previous)?;
        let proposed = PROPOSED_PASSWORD.secret(proposed)?;
        let token = self.access_token().await?;
        let body = types::ChangePasswordRequest {
            access_token: token.secret().clone(),
            previous_password: previous,
            proposed_password: proposed.clone(),
        };
        let change = |api: Client| async move { api.change_password(&body).await };
        self.provider()
            .call(crate::telemetry::Grant::PasswordChange, change)
            .await?;
        self.provider().password.replace(proposed);
        Ok(())
    }

    /// Asks the service to send the user a confirmation code for a new password
    /// ([`Self::confirm_forgot_password`] uses it).
    ///
    /// # Errors
    ///
    /// The service's refusal, or a transport failure.
    pub async fn forgot_password(&self) -> Result<(), Error> {
        let body = types::ForgotPasswordRequest {
            username: self.username().to_owned(),
        };
        let forgot = |api: Client| async move { api.forgot_password(&body).await };
        self.provider()
            .call(crate::telemetry::Grant::PasswordReset, forgot)
            .await?;
        Ok(())
    }

    /// Sets a new password with the confirmation code [`Self::forgot_password`] had sent; the
    /// session logs in with it from then on (a refused login is forgotten). The password must
    /// be 1 to 255 characters and the code 1 to 2048, as the service checks them there (else a
    /// [`ErrorKind::Configuration`] error, and nothing is sent).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Configuration`] for a password or code of the wrong length; the service's
    /// refusal (a wrong or expired code, a password the policy refuses, …), after which the
    /// session keeps the old password.
    pub async fn confirm_forgot_password(
        &self,
        confirmation_code: impl Into<SecretString>,
        new_password: impl Into<SecretString>,
    ) -> Result<(), Error> {
        let body = types::ForgotPasswordConfirmRequest {
            username: self.username().to_owned(),
            password: RESET_PASSWORD.secret(new_password)?,
            confirmation_code: CONFIRMATION_CODE.secret(confirmation_code)?,
        };
        let new_password = body.password.clone();
        let confirm = |api: Client| async move { api.confirm_forgot_password(&body).await };
        self.provider()
            .call(crate::telemetry::Grant::PasswordResetConfirm, confirm)
            .await?;
        self.provider().password.replace(new_password);
        self.tokens().clear_failure();
        Ok(())
    }
}

/// The Wikimedia Enterprise auth API, as a [`crate::Provider`]: sessions with it are
/// [`Session`]s. `logout()` revokes the refresh token (`/v1/token-revoke`, which also ends every
/// access token issued from it) and wipes the cached tokens whatever the service answers; its
/// error is the revocation's failure.
pub struct Accounts {
    endpoint: Endpoint,
    username: String,
    /// The configured username had capitals and was lowercased.
    lowercased: bool,
    // Replaced when the password changes through the session.
    password: Replaceable,
}

impl Accounts {
    /// One of the account's own calls beside login and refresh: no headers of its own, and
    /// its failures read the default way.
    async fn call<T, Op, Fut>(
        &self,
        grant: crate::telemetry::Grant,
        operation: Op,
    ) -> Result<T, Error>
    where
        Op: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, progenitor_client::Error<types::Error>>>,
    {
        self.endpoint
            .call(
                Context::new().with_grant(grant),
                &Failure::default_kind,
                operation,
            )
            .await
    }
}

// No field errors: the service answers a 422 with "Internal error, please try again later."
// and names no field.
impl ErrorBody for types::Error {
    fn message(&self) -> Option<String> {
        self.message.clone()
    }
}

fn classify_login(failure: &Failure) -> ErrorKind {
    match failure.status {
        401 => ErrorKind::InvalidCredentials,
        // The service's current code answers input it fails to validate, and its own failures,
        // with 422 "Internal error, please try again later." (../shared/API-NOTES.md): its
        // own "try again later", a failure of the service's, not a refusal of the login.
        422 if failure.message_has("try again later") => ErrorKind::ServerError,
        _ => failure.default_kind(),
    }
}

fn classify_refresh(failure: &Failure) -> ErrorKind {
    match failure.status {
        // 90 refreshes spent (the vendor's own description says 403 for the same message).
        429 | 403 if failure.message_has("limit") => ErrorKind::RefreshLimitExceeded,
        // The request carries nothing but the username and the refresh token: a refusal can
        // only be the token's, and a new login is the cure (never the same token again).
        403 => ErrorKind::TokenRejected,
        _ => failure.default_kind(),
    }
}

/// The one challenge this SDK answers ([`Session::complete_new_password`]).
const NEW_PASSWORD_REQUIRED: &str = "NEW_PASSWORD_REQUIRED";

/// The challenge a 200 names, if it names one.
fn challenge(name: Option<&types::ChallengeName>) -> Option<&str> {
    name.map(|n| n.as_str()).filter(|n| !n.is_empty())
}

/// A challenge this SDK cannot answer (`SMS_MFA`, `SOFTWARE_TOKEN_MFA`, …), as a typed error.
/// The name comes from a success body, which may hold anything: it is quoted only when it looks
/// like a Cognito challenge name. The challenge's session is never kept.
fn unsupported_challenge(during: &str, name: &str, status: u16) -> Error {
    let is_a_name = name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    let error = Error::new(ErrorKind::UnsupportedChallenge)
        .with_service(S)
        .with_status(status);
    if is_a_name {
        error.with_code(Some(name.to_owned())).with_message(format!(
            "{during} answered with challenge {name}, which this SDK does not support"
        ))
    } else {
        error.with_message(format!(
            "{during} answered with a challenge this SDK does not support"
        ))
    }
}

fn grant(
    access: SecretString,
    refresh: Option<SecretString>,
    id_token: Option<SecretString>,
    expires_in: Option<crate::clock::Seconds>,
    sent_wall: SystemTime,
) -> Issued {
    let expires_in = expires_in
        .and_then(|s| s.as_f64())
        .and_then(expiry::seconds);
    // Capped at the documented 24 hours: without `expires_in`, the JWT's `exp` is read on the
    // local clock, which may lag the service's.
    let lifetime = expiry::capped(expires_in, &access, sent_wall, ACCESS_TOKEN_LIFETIME);
    let refresh_lifetime = refresh.as_ref().map(|_| REFRESH_TOKEN_LIFETIME);
    Issued::new(access, lifetime)
        .with_refresh(refresh, refresh_lifetime)
        .with_extra(Companions {
            id_token,
            ..Companions::default()
        })
}

// The environment variables (`SessionBuilder::from_env`; `crate::env`).
const USERNAME_VAR: Variable = Variable::text("ACCOUNTS_USERNAME");
const PASSWORD_VAR: Variable = Variable::secret("ACCOUNTS_PASSWORD");

impl crate::Provider for Accounts {
    type Client = Client;
}

impl crate::env::FromEnv for Accounts {
    const ENV: Declaration<Self> = Declaration {
        base_url: "ACCOUNTS_BASE_URL",
        base_url_hint: None,
        shared: &[],
        profiles: &[Declared {
            name: "accounts",
            about: "Wikimedia Enterprise",
            kind: "an account",
            variables: &[USERNAME_VAR, PASSWORD_VAR],
            apply: |builder, values| {
                builder
                    .username(values.text(&USERNAME_VAR))
                    .password(values.secret(&PASSWORD_VAR))
            },
        }],
    };
}

impl ProviderImpl for Accounts {
    const SERVICE: Service = S;
    const BASE_URL: Result<&'static str, &'static str> = Ok(DEFAULT_BASE_URL);
    /// The Metadata, Snapshot, On-demand and Realtime APIs, which take the auth API's access
    /// token as their bearer (enterprise.wikimedia.com/docs/api/, the OpenAPI description of
    /// every Wikimedia Enterprise API).
    const OTHER_API_HOSTS: &'static [&'static str] = &[
        "api.enterprise.wikimedia.com",
        "realtime.enterprise.wikimedia.com",
    ];
    const MAX_REFRESH_USES: Option<u32> = Some(MAX_REFRESHES);

    type Settings = settings::Settings;

    fn build(settings: settings::Settings, endpoint: &Endpoint) -> Result<Self, Error> {
        let given = require(S, "username", settings.username)?;
        let username = given.to_lowercase();
        let lowercased = username != given;
        if lowercased {
            // Logins with capitals fail with the same 401 as a wrong password.
            tracing::warn!(service = %S, "the username was lowercased, as the service requires");
        }
        let password = require(S, "password", settings.password)?;
        USERNAME.check(&username)?;
        PASSWORD.check(password.expose_secret())?;
        Ok(Self {
            endpoint: endpoint.clone(),
            username,
            lowercased,
            password: Replaceable::new(password),
        })
    }

    /// `/v1/token-revoke` with the refresh token of the session it ends.
    async fn log_out(&self, _tokens: &Tokens, ending: &Ending) -> Result<(), Error> {
        let Some(refresh_token) = ending.entry.refresh_token().cloned() else {
            return Ok(());
        };
        let body = types::TokenRevokeRequest { refresh_token };
        let revoke = |api: Client| async move { api.revoke_token(&body).await };
        self.call(crate::telemetry::Grant::Logout, revoke).await?;
        Ok(())
    }

    fn store_identity(&self) -> String {
        self.username.clone()
    }

    fn credentials(&self, fingerprint: &mut dyn FnMut(&[u8])) {
        // Read at each login: a password reset or change replaces it.
        fingerprint(self.password.get().expose_secret().as_bytes());
    }

    async fn login(&self, sent_wall: SystemTime) -> Result<Issued, Error> {
        let body = types::LoginRequest {
            username: self.username.clone(),
            password: self.password.get(),
        };
        let log_in = |api: Client| async move { api.log_in(&body).await };
        let response = self
            .endpoint
            .log_in(Context::new(), &classify_login, log_in)
            .await?;
        let status = response.status().as_u16();
        let tokens = response.into_inner();
        if let Some(challenge) = challenge(tokens.challenge_name.as_ref()) {
            if challenge != NEW_PASSWORD_REQUIRED {
                // Its session is dropped: nothing in this SDK could answer it.
                return Err(unsupported_challenge("login", challenge, status));
            }
            let error = Error::new(ErrorKind::NewPasswordRequired)
                .with_service(S)
                .with_status(status)
                .with_code(Some(challenge.to_owned()))
                .with_message(
                    "the account must set a new password first (Session::complete_new_password)",
                );
            return Err(match tokens.session {
                Some(session) => error.with_challenge_session(session),
                None => error,
            });
        }
        match tokens.access_token {
            Some(access) => Ok(grant(
                access,
                tokens.refresh_token,
                tokens.id_token,
                tokens.expires_in,
                sent_wall,
            )),
            None => Err(Error::new(ErrorKind::Decode)
                .with_service(S)
                .with_status(status)
                .with_message("the login answered neither tokens nor a challenge")),
        }
    }

    async fn refresh(
        &self,
        refresh_token: &SecretString,
        sent_wall: SystemTime,
    ) -> Result<Issued, Error> {
        let body = types::TokenRefreshRequest {
            username: self.username.clone(),
            refresh_token: refresh_token.clone(),
        };
        // Not after a 429: here it means the refresh token is spent, which no wait cures.
        let context = Context::new()
            .with_replay(Replay::Gateway)
            .with_grant(crate::telemetry::Grant::Refresh);
        let refresh = |api: Client| async move { api.refresh_token(&body).await };
        let tokens = self
            .endpoint
            .call(context, &classify_refresh, refresh)
            .await?
            .into_inner();
        // No new refresh token: the cache keeps the old one and counts its use.
        Ok(grant(
            tokens.access_token,
            None,
            tokens.id_token,
            tokens.expires_in,
            sent_wall,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(status: u16, message: &str) -> Failure {
        Failure {
            status,
            message: Some(message.into()),
            code: None,
            headers: Default::default(),
            documented: true,
            now: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn refresh_failures_are_told_apart() {
        let spent = "Refresh tokens limit has been exceeded.";
        assert_eq!(
            classify_refresh(&failure(429, spent)),
            ErrorKind::RefreshLimitExceeded
        );
        assert_eq!(
            classify_refresh(&failure(403, spent)),
            ErrorKind::RefreshLimitExceeded,
            "the vendor's own description says 403"
        );
        assert_eq!(
            classify_refresh(&failure(401, "Unauthorized.")),
            ErrorKind::TokenRejected
        );
        assert_eq!(
            classify_refresh(&failure(403, "Forbidden")),
            ErrorKind::TokenRejected,
            "a refused refresh token, whatever the wording"
        );
        assert_eq!(
            classify_refresh(&failure(429, "Too many requests")),
            ErrorKind::RateLimited { retry_after: None }
        );
        assert_eq!(
            classify_login(&failure(401, "Incorrect username or password.")),
            ErrorKind::InvalidCredentials
        );
    }
}
