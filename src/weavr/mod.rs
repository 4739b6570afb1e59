//! Weavr Multi API authentication (sandbox `https://sandbox.weavr.io/multi`).
//!
//! There is no public production URL: Weavr gives each customer the Live environment's URL on
//! request, so the builder needs one ([`SessionBuilder::base_url`]; [`SANDBOX_BASE_URL`] for
//! Weavr's sandbox) and has no default.
//!
//! Every call carries the embedder's `api-key`; the session signs in with the user's email and
//! password and, when an identity is configured (or the sign-in token may only be exchanged and
//! the user has exactly one identity), exchanges the sign-in token for that identity's access
//! token. Tokens live 5 minutes **from last activity**: every call the service answered with the
//! session's token (through [`Session::api`], or a step-up challenge and its verification) moves
//! the expiry forward, refusals such as a 403 `STEP_UP_REQUIRED` included (a 401 or a 5xx does
//! not), and an idle session signs in again. A login whose password has expired fails with
//! [`crate::ErrorKind::PasswordExpired`] carrying the temporary token that
//! [`Session::change_password`] takes. Wrong credentials (a 401, or the 403 the vendor documents
//! for them) fail with [`crate::ErrorKind::InvalidCredentials`] and are never sent again.
//!
//! # Examples
//!
//! ```no_run
//! # async fn run() -> Result<(), tokensmith::Error> {
//! use tokensmith::weavr::Session;
//!
//! let session = Session::builder()
//!     .base_url(tokensmith::weavr::SANDBOX_BASE_URL)
//!     .api_key("my-api-key")
//!     .email("user@example.com")
//!     .password("Pa$$w0rd")
//!     .build()?;
//! let identities = session.api().list_identities(None, None).await;
//! # let _ = identities;
//! # Ok(()) }
//! ```

mod step_up;

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};

pub use crate::generated::weavr::{types, Client};
pub use step_up::{Answer, Challenge, PushChannel, StepUp, StepUpMethod, CHALLENGE_LIFETIME};

use crate::cache::Provider;
use crate::error::{Error, ErrorKind, FieldError, Service};
use crate::response::{ErrorBody, Failure};
use crate::retry::Replay;
use crate::secret::SecretString;
use crate::session::{self, Attach, Common, Core, Endpoint};
use crate::token::{Entry, Extra, Grant};
use crate::transport::{Authorizer, Context};

/// Weavr's sandbox (no text messages; the one-time password is always `123456`).
pub const SANDBOX_BASE_URL: &str = "https://sandbox.weavr.io/multi";
/// Tokens stay valid this long after their last use.
pub const ACCESS_TOKEN_IDLE_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// How long an account stays locked after repeated failed logins, when the answer does not say.
pub const LOCKOUT: Duration = Duration::from_secs(30 * 60);

const S: Service = Service::Weavr;
/// What `build()` says without a base URL.
const NO_BASE_URL: &str = "the base URL is required (base_url(…)): Weavr gives each customer \
                           the Live URL on request; for Weavr's sandbox use \
                           weavr::SANDBOX_BASE_URL (https://sandbox.weavr.io/multi)";
const API_KEY: HeaderName = HeaderName::from_static("api-key");

/// Which identity the session's token acts for.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum IdentityChoice {
    /// The sign-in token as it is; when it may only be exchanged (`tokenType` AUTH) and the user
    /// has exactly one identity, that identity's access token.
    #[default]
    Automatic,
    /// Always the sign-in token.
    SignInToken,
    /// This identity's access token.
    Identity(IdentityId),
}

/// The kind of an identity (weavr's `IdentityType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IdentityType {
    /// A consumer (a person).
    Consumer,
    /// A corporate (a business).
    Corporate,
}

impl IdentityType {
    /// The service's name for it (`CONSUMER`, `CORPORATE`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Consumer => "CONSUMER",
            Self::Corporate => "CORPORATE",
        }
    }
}

/// An identity the session acts for: its kind and its id (weavr's `IdentityId`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct IdentityId {
    /// The kind of identity.
    pub kind: IdentityType,
    /// The identity's identifier (digits).
    pub id: String,
}

impl IdentityId {
    /// The identity of kind `kind` with identifier `id`.
    pub fn new(kind: IdentityType, id: impl Into<String>) -> Self {
        Self {
            kind,
            id: id.into(),
        }
    }

    /// As the generated client sends it.
    fn to_api(&self) -> types::IdentityId {
        types::IdentityId {
            id: self.id.clone(),
            type_: match self.kind {
                IdentityType::Consumer => types::IdentityType::Consumer,
                IdentityType::Corporate => types::IdentityType::Corporate,
            },
        }
    }
}

/// Builds a [`Session`].
#[derive(Default, Debug)]
#[must_use]
pub struct SessionBuilder {
    common: Common,
    api_key: Option<SecretString>,
    email: Option<String>,
    password: Option<SecretString>,
    identity: IdentityChoice,
    step_up: Option<(StepUpMethod, Arc<dyn StepUp>)>,
    max_otp_attempts: Option<u32>,
}

impl std::fmt::Debug for dyn StepUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StepUp")
    }
}

impl SessionBuilder {
    session::common_builder_methods!();

    /// The API key of the embedder's API client, sent as `api-key` on every call (required).
    pub fn api_key(mut self, api_key: impl Into<SecretString>) -> Self {
        self.api_key = Some(api_key.into());
        self
    }

    /// The user's email (required).
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// The user's password (required).
    pub fn password(mut self, password: impl Into<SecretString>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Act for this identity: the session exchanges its sign-in token for the identity's
    /// access token (`/access_token`).
    pub fn identity(mut self, kind: IdentityType, id: impl Into<String>) -> Self {
        self.identity = IdentityChoice::Identity(IdentityId::new(kind, id));
        self
    }

    /// Which identity to act for (default [`IdentityChoice::Automatic`]).
    pub fn identity_choice(mut self, choice: IdentityChoice) -> Self {
        self.identity = choice;
        self
    }

    /// Steps tokens up with `method`, asking `handler` for the one-time password or the
    /// push approval, whenever a call answers `STEP_UP_REQUIRED` or [`Session::step_up`] is
    /// called. Without a handler a step-up fails with [`ErrorKind::StepUpRequired`].
    pub fn step_up(mut self, method: StepUpMethod, handler: impl StepUp) -> Self {
        self.step_up = Some((method, Arc::new(handler)));
        self
    }

    /// How many codes the handler may give for one SMS challenge before it fails (default 3).
    /// A code that is not six digits counts but is not sent. The service limits wrong codes
    /// too: its `CHALLENGE_LIMIT_EXCEEDED` ends the step-up whatever is left of this.
    pub fn max_otp_attempts(mut self, attempts: u32) -> Self {
        self.max_otp_attempts = Some(attempts);
        self
    }

    /// Checks the configuration and builds the session. Makes no request. The base URL is
    /// required: without one this is a [`ErrorKind::Configuration`] error saying that Weavr
    /// gives each customer the Live URL on request (and naming [`SANDBOX_BASE_URL`]).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Configuration`] when the base URL, the API key, the email or the password
    /// is missing or malformed.
    pub fn build(self) -> Result<Session, Error> {
        let api_key = session::require(S, "API key", self.api_key)?;
        let mut api_key = HeaderValue::try_from(api_key.expose_secret()).map_err(|_| {
            Error::configuration(Some(S), "the API key is not a valid header value")
        })?;
        api_key.set_sensitive(true);
        let email = session::require_plain(S, "email", self.email)?;
        let password = session::require(S, "password", self.password)?;
        let Some(base_url) = self.common.base_url.clone() else {
            return Err(Error::configuration(Some(S), NO_BASE_URL));
        };
        let (endpoint, clock, policy) = self.common.finish(S, &base_url)?;
        let provider = Weavr {
            endpoint: endpoint.clone(),
            api_key,
            email,
            password: RwLock::new(password),
            identity: self.identity,
        };
        let (method, handler) = match self.step_up {
            Some((method, handler)) => (method, Some(handler)),
            None => (StepUpMethod::Sms, None),
        };
        let attempts = self.max_otp_attempts.unwrap_or(3);
        let mut coordinator = None;
        let core = Arc::new_cyclic(|weak| {
            let step_up = Arc::new(step_up::Coordinator::new(
                weak.clone(),
                handler,
                method,
                attempts,
            ));
            coordinator = Some(step_up.clone());
            let mut core = Core::new(provider, endpoint, clock, policy);
            core.forbidden = Some(step_up);
            core
        });
        Ok(Session {
            core,
            step_up: coordinator.expect("set by new_cyclic"),
        })
    }
}

/// A session with the Weavr Multi API. Cheap to clone; clones share the token.
#[derive(Clone)]
pub struct Session {
    core: Arc<Core<Weavr>>,
    step_up: Arc<step_up::Coordinator>,
}

impl Session {
    /// A builder for a session.
    pub fn builder() -> SessionBuilder {
        SessionBuilder::default()
    }

    session::common_session_methods!(Client);

    /// Steps the current token up now (one challenge, shared with every call that needs the
    /// same), with the method and handler given to the builder. Returns at once when the
    /// token is already stepped up.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::StepUpRequired`] when there is no handler, the user declines, the codes run
    /// out or the service ends the challenge; [`ErrorKind::StepUpTimeout`] when the handler
    /// gives no answer within the challenge's lifetime; whatever getting a valid token fails
    /// with.
    pub async fn step_up(&self) -> Result<(), Error> {
        self.step_up.step_up().await
    }

    /// A context with only the `api-key` (for calls made with a token of your own).
    fn context_with(&self, token: Option<&SecretString>) -> Context {
        let provider = &self.core.provider;
        let mut context = Context::new().with_header(API_KEY, provider.api_key.clone(), true);
        if let Some(token) = token {
            context = context.with_header(AUTHORIZATION, session::bearer(token), true);
        }
        context
    }

    /// Changes an expired password (`POST /passwords/update`; the vendor calls it updating),
    /// with the temporary token the failed login carried
    /// ([`Error::temporary_token`] of an [`ErrorKind::PasswordExpired`] error). On success the
    /// session holds the token the service answers and logs in with the new password from then
    /// on.
    ///
    /// # Errors
    ///
    /// The service's refusal (a wrong old password, a new one the policy refuses, an expired
    /// temporary token, …); the session keeps the old password then.
    pub async fn change_password(
        &self,
        temporary_token: &SecretString,
        old_password: impl Into<SecretString>,
        new_password: impl Into<SecretString>,
    ) -> Result<(), Error> {
        let new_password = new_password.into();
        let clock = &self.core.cache.clock;
        let sent_at = clock.now();
        let body = types::PasswordUpdateRequest {
            old_password: types::Password {
                value: old_password.into(),
            },
            new_password: types::Password {
                value: new_password.clone(),
            },
        };
        let context = self
            .context_with(Some(temporary_token))
            .with_grant(crate::telemetry::Grant::PasswordChange);
        let update = |api: Client| async move { api.update_password(&body).await };
        let response = self
            .core
            .endpoint
            .call(context, &classify_api, update)
            .await?;
        self.core.provider.set_password(new_password);
        match response.into_inner().token {
            Some(token) => {
                let grant = self.core.provider.grant(token).await?;
                self.core.cache.install(grant, sent_at).await;
            }
            None => self.core.cache.clear_failure(),
        }
        Ok(())
    }

    /// Ends the session (`POST /logout`, which answers 200 or 204) and wipes the cached token,
    /// so that the next call signs in afresh. The cache is wiped whatever the service answers.
    ///
    /// # Errors
    ///
    /// The logout's failure; the cached token is wiped all the same.
    pub async fn logout(&self) -> Result<(), Error> {
        let current = self.core.cache.current_or_stored().await;
        self.core.forget().await;
        let Some(entry) = current else {
            return Ok(());
        };
        // 200 {url} or 204: the generated client answers both as success.
        let log_out = |api: Client| async move { api.log_out().await };
        let context = self
            .context_with(Some(&entry.secret))
            .with_grant(crate::telemetry::Grant::Logout);
        self.core
            .endpoint
            .call(context, &classify_api, log_out)
            .await?;
        Ok(())
    }
}

session::session_impls!(Session);

pub(crate) struct Weavr {
    endpoint: Endpoint,
    api_key: HeaderValue,
    email: String,
    // Replaced when the password is updated through the session.
    password: RwLock<SecretString>,
    identity: IdentityChoice,
}

impl ErrorBody for types::ErrorResponse {
    fn message(&self) -> Option<String> {
        self.message.clone()
    }

    fn code(&self) -> Option<String> {
        self.error_code.clone().or_else(|| self.code.clone())
    }

    fn field_errors(&self) -> Vec<FieldError> {
        self.syntax_errors
            .iter()
            .flat_map(|s| &s.invalid_fields)
            .map(|f| {
                FieldError::new(
                    f.field_name.clone().unwrap_or_default(),
                    f.error.map(|e| e.to_string()).unwrap_or_default(),
                    f.params.clone(),
                )
            })
            .collect()
    }

    fn temporary_token(&self) -> Option<SecretString> {
        self.token.clone()
    }
}

/// What a 403 means, by its `errorCode`.
fn forbidden(failure: &Failure) -> ErrorKind {
    match failure.code.as_deref() {
        Some("STEP_UP_REQUIRED") => ErrorKind::StepUpRequired,
        Some("ACCESS_TOKEN_REQUIRED") => ErrorKind::AccessTokenRequired,
        _ => ErrorKind::Forbidden,
    }
}

fn locked(failure: &Failure) -> ErrorKind {
    ErrorKind::AccountLocked {
        retry_after: failure.retry_after().or(Some(LOCKOUT)),
    }
}

fn classify_login(failure: &Failure) -> ErrorKind {
    match failure.status {
        // 403 on sign-in: "the authentication credentials are not found or are incorrect"
        // (documented without a body); 401: "your credentials are invalid".
        401 | 403 => ErrorKind::InvalidCredentials,
        409 => ErrorKind::PasswordExpired,
        410 => ErrorKind::TokenRejected,
        423 => locked(failure),
        _ => failure.default_kind(),
    }
}

/// The identity exchange (`/access_token`) says nothing of the password, which the sign-in
/// before it just accepted: a 401 refuses the sign-in token (a fresh sign-in is the cure), a
/// 403 ("the auth token is not specified or is incorrect", or not allowed to act for that
/// identity) forbids the exchange. Neither may block the credentials.
fn classify_exchange(failure: &Failure) -> ErrorKind {
    match failure.status {
        401 => ErrorKind::TokenRejected,
        _ => classify_api(failure),
    }
}

pub(crate) fn classify_api(failure: &Failure) -> ErrorKind {
    match failure.status {
        403 => forbidden(failure),
        // TOKEN_EXPIRED
        410 => ErrorKind::TokenRejected,
        423 => locked(failure),
        _ => failure.default_kind(),
    }
}

impl Weavr {
    fn password(&self) -> SecretString {
        self.password
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_password(&self, password: SecretString) {
        *self.password.write().unwrap_or_else(|p| p.into_inner()) = password;
    }

    /// The context of calls made with the session's own token outside [`Session::api`] (the
    /// step-up's): `session` hears of every answer, so that they slide the token's lifetime
    /// and a 401 retires it.
    fn observed_context(
        &self,
        token: &SecretString,
        replay: Replay,
        session: Arc<dyn Authorizer>,
    ) -> Context {
        self.context(Some(token), replay).with_observer(session)
    }

    fn context(&self, token: Option<&SecretString>, replay: Replay) -> Context {
        let mut context = Context::new()
            .with_header(API_KEY, self.api_key.clone(), true)
            .with_replay(replay);
        if let Some(token) = token {
            context = context.with_header(AUTHORIZATION, session::bearer(token), true);
        }
        context
    }

    /// The token the session keeps, from a sign-in token: exchanged for the chosen identity's
    /// access token where one is chosen.
    async fn grant(&self, token: SecretString) -> Result<Grant, Error> {
        self.grant_typed(token, None).await
    }

    async fn grant_typed(
        &self,
        token: SecretString,
        token_type: Option<types::TokenType>,
    ) -> Result<Grant, Error> {
        let identity = match &self.identity {
            IdentityChoice::SignInToken => None,
            IdentityChoice::Identity(identity) => Some(identity.to_api()),
            IdentityChoice::Automatic if token_type == Some(types::TokenType::Auth) => {
                self.only_identity(&token).await?
            }
            IdentityChoice::Automatic => None,
        };
        let (access, stepped_up) = match identity {
            Some(identity) => self.exchange(&token, identity).await?,
            None => (token, false),
        };
        Ok(idle_grant(access, stepped_up))
    }

    /// The identity's access token for `token`, when the session knows the identity (chosen,
    /// or the user's only one).
    async fn exchange_for_identity(&self, token: &SecretString) -> Result<Option<Grant>, Error> {
        let identity = match &self.identity {
            IdentityChoice::Identity(identity) => Some(identity.to_api()),
            IdentityChoice::Automatic => self.only_identity(token).await?,
            IdentityChoice::SignInToken => None,
        };
        let Some(identity) = identity else {
            return Ok(None);
        };
        let (access, stepped_up) = self.exchange(token, identity).await?;
        Ok(Some(idle_grant(access, stepped_up)))
    }

    /// The user's identity when there is exactly one.
    async fn only_identity(
        &self,
        token: &SecretString,
    ) -> Result<Option<types::IdentityId>, Error> {
        let context = self
            .context(Some(token), Replay::Transient)
            .with_grant(crate::telemetry::Grant::Identities);
        let list = |api: Client| async move {
            api.list_identities(std::num::NonZeroU32::new(2), None)
                .await
        };
        let mut identities = self
            .endpoint
            .call(context, &classify_api, list)
            .await?
            .into_inner()
            .identities;
        Ok((identities.len() == 1).then(|| identities.remove(0).id))
    }

    async fn exchange(
        &self,
        token: &SecretString,
        identity: types::IdentityId,
    ) -> Result<(SecretString, bool), Error> {
        let context = self
            .context(Some(token), Replay::Gateway)
            .with_grant(crate::telemetry::Grant::Exchange);
        let body = types::AccessTokenRequest {
            identity,
            client_assertion: None,
            token: None,
        };
        let exchange = |api: Client| async move { api.create_access_token(&body).await };
        let response = self
            .endpoint
            .call(context, &classify_exchange, exchange)
            .await?
            .into_inner();
        let stepped_up = response.status == Some(types::TokenStatus::SteppedUp);
        Ok((response.token, stepped_up))
    }
}

/// The token the session keeps: it lives [`ACCESS_TOKEN_IDLE_LIFETIME`] from last use.
fn idle_grant(access: SecretString, stepped_up: bool) -> Grant {
    Grant::new(access, ACCESS_TOKEN_IDLE_LIFETIME).with_extra(Extra {
        stepped_up,
        ..Extra::default()
    })
}

impl Provider for Weavr {
    const SERVICE: Service = S;
    const SLIDING: Option<Duration> = Some(ACCESS_TOKEN_IDLE_LIFETIME);
    const ENDS_SESSION: &'static [&'static str] = &["log_out"];
    /// A password-expired login's temporary token lives like any other: 5 minutes.
    const LOGIN_CHALLENGE_LIFETIME: Duration = ACCESS_TOKEN_IDLE_LIFETIME;

    fn store_identity(&self) -> String {
        // The api key names the programme, whose users may share an email with another's: its
        // fingerprint (never the key) keeps their token sets apart.
        let programme = fingerprint(self.api_key.as_bytes());
        match &self.identity {
            IdentityChoice::Identity(identity) => {
                format!(
                    "{programme}|{}|{}:{}",
                    self.email,
                    identity.kind.as_str(),
                    identity.id
                )
            }
            _ => format!("{programme}|{}", self.email),
        }
    }

    fn credentials(&self, fingerprint: &mut dyn FnMut(&[u8])) {
        // Read at each login: a password update replaces it.
        fingerprint(self.password().expose_secret().as_bytes());
    }

    async fn login(&self, _sent_wall: SystemTime) -> Result<Grant, Error> {
        let body = types::LoginRequest {
            email: self.email.clone(),
            password: types::Password {
                value: self.password(),
            },
        };
        let context = self
            .context(None, Replay::Gateway)
            .with_grant(crate::telemetry::Grant::Login);
        let login = |api: Client| async move { api.login_with_password(&body).await };
        let response = self
            .endpoint
            .call(context, &classify_login, login)
            .await?
            .into_inner();
        self.grant_typed(response.token, response.token_type).await
    }
}

impl Attach for Weavr {
    fn attach(&self, entry: &Entry, headers: &mut HeaderMap) {
        headers.insert(AUTHORIZATION, entry.bearer());
        headers.insert(API_KEY, self.api_key.clone());
    }
}

/// A fingerprint of a secret that picks an account (the api key, which names the programme), for
/// a [`crate::store::StoreKey`]: BLAKE2b-128 of it, domain-separated; the secret itself is never
/// part of a key.
fn fingerprint(secret: &[u8]) -> String {
    let digest = blake2b_simd::Params::new()
        .hash_length(16)
        .to_state()
        .update(b"tokensmith store identity\0")
        .update(secret)
        .finalize();
    hex::encode(digest.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::fingerprint;

    #[test]
    fn api_key_fingerprints_are_distinct_hashes_that_hide_the_key() {
        assert_ne!(fingerprint(b"key-a"), fingerprint(b"key-b"));
        // BLAKE2b-128 of the domain prefix and the key, computed independently (b2sum -l 128).
        assert_eq!(fingerprint(b"key-a"), "4020dd54b6a5119a8e46ace941df1e5c");
        assert!(!fingerprint(b"key-a").contains("key-a"));
    }
}
