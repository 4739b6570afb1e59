//! Weavr Multi API authentication (sandbox `https://sandbox.weavr.io/multi`).
//!
//! There is no public production URL: Weavr gives each customer the Live environment's URL on
//! request, so the builder needs one ([`SessionBuilder::base_url`]; [`SANDBOX_BASE_URL`] for
//! Weavr's sandbox) and has no default.
//!
//! Every call carries the embedder's `api-key`; the session signs in with the user's email and
//! password and, when an identity is configured (or the sign-in token may only be exchanged: then
//! the identity the sign-in answer names, or, if it names none, the user's only one), exchanges
//! the sign-in token for that identity's access token. Tokens live 5 minutes **from last activity**: every call the service answered with the
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

mod errors;
mod identity;
mod step_up;

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};

pub use crate::generated::weavr::{types, Client};
pub use identity::{IdentityChoice, IdentityId, IdentityType};
pub use step_up::{Answer, Challenge, PushChannel, StepUp, StepUpMethod, CHALLENGE_LIFETIME};

pub(crate) use errors::{classify_api, error_code};
use errors::{classify_exchange, classify_login};

use crate::env::{Declaration, Declared, Variable};
use crate::error::{Error, Service};
use crate::provider::sealed::ProviderImpl;
use crate::provider::{Ending, Tokens};
use crate::retry::Replay;
use crate::secret::{Replaceable, SecretString};
use crate::session::require;
use crate::token::{Companions, Entry, Issued};
use crate::transport::endpoint::Endpoint;
use crate::transport::exchange::Authorizer;
use crate::transport::Context;

/// Weavr's sandbox (no text messages; the one-time password is always `123456`).
pub const SANDBOX_BASE_URL: &str = "https://sandbox.weavr.io/multi";
/// Tokens stay valid this long after their last use.
pub const ACCESS_TOKEN_IDLE_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// How long an account stays locked after repeated failed logins, when the answer does not say.
pub const LOCKOUT: Duration = Duration::from_secs(30 * 60);

/// A session with the Weavr Multi API. Cheap to clone; clones share the token.
pub type Session = crate::Session<Weavr>;
/// Builds a [`Session`]: [`crate::SessionBuilder`]'s setters, and the service's own below.
pub type SessionBuilder = crate::SessionBuilder<Weavr>;

const S: Service = Service::Weavr;
/// What `build()` says without a base URL.
const NO_BASE_URL: &str = "the base URL is required (base_url(…)): Weavr gives each customer \
                           the Live URL on request; for Weavr's sandbox use \
                           weavr::SANDBOX_BASE_URL (https://sandbox.weavr.io/multi)";
const API_KEY: HeaderName = HeaderName::from_static("api-key");

mod settings {
    use super::*;

    /// What a weavr builder takes beside the shared settings.
    #[derive(Default, Debug)]
    pub struct Settings {
        pub(super) api_key: Option<SecretString>,
        pub(super) email: Option<String>,
        pub(super) password: Option<SecretString>,
        pub(super) identity: IdentityChoice,
        pub(super) step_up: Option<(StepUpMethod, Arc<dyn StepUp>)>,
        pub(super) max_otp_attempts: Option<u32>,
    }
}

impl std::fmt::Debug for dyn StepUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StepUp")
    }
}

impl SessionBuilder {
    /// The API key of the embedder's API client, sent as `api-key` on every call (required).
    pub fn api_key(mut self, api_key: impl Into<SecretString>) -> Self {
        self.own.api_key = Some(api_key.into());
        self
    }

    /// The user's email (required).
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.own.email = Some(email.into());
        self
    }

    /// The user's password (required).
    pub fn password(mut self, password: impl Into<SecretString>) -> Self {
        self.own.password = Some(password.into());
        self
    }

    /// Act for this identity: the session exchanges its sign-in token for the identity's
    /// access token (`/access_token`).
    pub fn identity(mut self, kind: IdentityType, id: impl Into<String>) -> Self {
        self.own.identity = IdentityChoice::Identity(IdentityId::new(kind, id));
        self
    }

    /// Which identity to act for (default [`IdentityChoice::Automatic`]).
    pub fn identity_choice(mut self, choice: IdentityChoice) -> Self {
        self.own.identity = choice;
        self
    }

    /// Steps tokens up with `method`, asking `handler` for the one-time password or the
    /// push approval, whenever a call answers `STEP_UP_REQUIRED` or [`Session::step_up`] is
    /// called. Without a handler a step-up fails with [`crate::ErrorKind::StepUpRequired`].
    pub fn step_up(mut self, method: StepUpMethod, handler: impl StepUp) -> Self {
        self.own.step_up = Some((method, Arc::new(handler)));
        self
    }

    /// How many codes the handler may give for one SMS challenge before it fails (default 3).
    /// A code that is not six digits counts but is not sent. The service limits wrong codes
    /// too: its `CHALLENGE_LIMIT_EXCEEDED` ends the step-up whatever is left of this.
    pub fn max_otp_attempts(mut self, attempts: u32) -> Self {
        self.own.max_otp_attempts = Some(attempts);
        self
    }
}

impl Session {
    /// Steps the current token up now (one challenge, shared with every call that needs the
    /// same), with the method and handler given to the builder. Returns at once when the
    /// token is already stepped up.
    ///
    /// # Errors
    ///
    /// [`crate::ErrorKind::StepUpRequired`] when there is no handler, the user declines, the codes run
    /// out or the service ends the challenge; [`crate::ErrorKind::StepUpTimeout`] when the handler
    /// gives no answer within the challenge's lifetime; whatever getting a valid token fails
    /// with.
    pub async fn step_up(&self) -> Result<(), Error> {
        self.provider().step_up.step_up(self.tokens()).await
    }

    /// Changes an expired password (`POST /passwords/update`; the vendor calls it updating),
    /// with the temporary token the failed login carried
    /// ([`Error::temporary_token`] of an [`crate::ErrorKind::PasswordExpired`] error). On success the
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
        let provider = self.provider();
        let sent = self.tokens().sent();
        let body = types::PasswordUpdateRequest {
            old_password: types::Password {
                value: old_password.into(),
            },
            new_password: types::Password {
                value: new_password.clone(),
            },
        };
        let context = provider
            .context(Some(temporary_token), Replay::Unsent)?
            .with_grant(crate::telemetry::Grant::PasswordChange);
        let update = |api: Client| async move { api.update_password(&body).await };
        let response = self.endpoint().call(context, &classify_api, update).await?;
        provider.password.replace(new_password);
        match response.into_inner().token {
            Some(token) => {
                let grant = provider.grant(token).await?;
                self.tokens().install(grant, sent).await?;
            }
            None => self.tokens().clear_failure(),
        }
        Ok(())
    }
}

/// The Weavr Multi API, as a [`crate::Provider`]: sessions with it are [`Session`]s.
/// `logout()` ends the session at the service (`POST /logout`, which answers 200 or 204) and
/// wipes the cached token whatever the service answers; its error is the logout's failure.
pub struct Weavr {
    endpoint: Endpoint,
    api_key: HeaderValue,
    email: String,
    // Replaced when the password is updated through the session.
    password: Replaceable,
    identity: IdentityChoice,
    step_up: step_up::Coordinator,
    /// The identity the last sign-in answer named, for [`IdentityChoice::Automatic`].
    signed_in_as: RwLock<Option<types::IdentityId>>,
}

impl Weavr {
    /// The context of calls made with the session's own token outside [`Session::api`] (the
    /// step-up's): `session` hears of every answer, so that they slide the token's lifetime
    /// and a 401 retires it.
    fn observed_context(
        &self,
        token: &SecretString,
        replay: Replay,
        session: Option<Arc<dyn Authorizer>>,
    ) -> Result<Context, Error> {
        let context = self.context(Some(token), replay)?;
        Ok(match session {
            Some(session) => context.with_observer(session),
            None => context,
        })
    }

    /// One of the API's own calls, as `grant`: the api key beside it, and `token` (when
    /// given) as its bearer.
    async fn call<T, E, Op, Fut>(
        &self,
        grant: crate::telemetry::Grant,
        token: Option<&SecretString>,
        replay: Replay,
        classify: crate::transport::errors::Classify<'_>,
        operation: Op,
    ) -> Result<T, Error>
    where
        E: crate::transport::errors::ErrorBody,
        Op: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, progenitor_client::Error<E>>>,
    {
        let context = self.context(token, replay)?.with_grant(grant);
        self.endpoint.call(context, classify, operation).await
    }

    /// The context of the session's own calls: the `api-key`, and `token` as the bearer when
    /// given.
    fn context(&self, token: Option<&SecretString>, replay: Replay) -> Result<Context, Error> {
        let mut context = Context::new()
            .with_header(API_KEY, self.api_key.clone(), true)
            .with_replay(replay);
        if let Some(token) = token {
            let bearer = crate::header::bearer(token).map_err(|_| {
                Error::configuration(Some(S), "the token cannot be sent in an HTTP header")
            })?;
            context = context.with_header(AUTHORIZATION, bearer, true);
        }
        Ok(context)
    }

    /// The token the session keeps, from a sign-in token: exchanged for the chosen identity's
    /// access token where one is chosen.
    async fn grant(&self, token: SecretString) -> Result<Issued, Error> {
        self.grant_typed(token, None).await
    }

    /// The identity the last sign-in answer named.
    fn signed_in_as(&self) -> Option<types::IdentityId> {
        self.signed_in_as
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The identity to act for when none is chosen: the one the sign-in named (the login
    /// answer's `identity`, which Weavr's own web app acts for as it is), else the user's only
    /// one, which costs an `/identities` request.
    async fn automatic_identity(
        &self,
        token: &SecretString,
    ) -> Result<Option<types::IdentityId>, Error> {
        match self.signed_in_as() {
            Some(identity) => Ok(Some(identity)),
            None => self.only_identity(token).await,
        }
    }

    async fn grant_typed(
        &self,
        token: SecretString,
        token_type: Option<types::TokenType>,
    ) -> Result<Issued, Error> {
        let identity = match &self.identity {
            IdentityChoice::SignInToken => None,
            IdentityChoice::Identity(identity) => Some(identity.to_api()),
            IdentityChoice::Automatic if token_type == Some(types::TokenType::Auth) => {
                self.automatic_identity(&token).await?
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
    /// named by the sign-in, or the user's only one).
    async fn exchange_for_identity(&self, token: &SecretString) -> Result<Option<Issued>, Error> {
        let identity = match &self.identity {
            IdentityChoice::Identity(identity) => Some(identity.to_api()),
            IdentityChoice::Automatic => self.automatic_identity(token).await?,
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
        let list = |api: Client| async move {
            api.list_identities(std::num::NonZeroU32::new(2), None)
                .await
        };
        let grant = crate::telemetry::Grant::Identities;
        let mut identities = self
            .call(grant, Some(token), Replay::Transient, &classify_api, list)
            .await?
            .into_inner()
            .into_identities();
        Ok((identities.len() == 1).then(|| identities.remove(0).id))
    }

    async fn exchange(
        &self,
        token: &SecretString,
        identity: types::IdentityId,
    ) -> Result<(SecretString, bool), Error> {
        let body = types::AccessTokenRequest {
            identity,
            client_assertion: None,
            token: None,
        };
        let exchange = |api: Client| async move { api.create_access_token(&body).await };
        let grant = crate::telemetry::Grant::Exchange;
        let response = self
            .call(
                grant,
                Some(token),
                Replay::Gateway,
                &classify_exchange,
                exchange,
            )
            .await?
            .into_inner();
        let stepped_up = response.status == Some(types::TokenStatus::SteppedUp);
        Ok((response.token, stepped_up))
    }
}

/// The token the session keeps: it lives [`ACCESS_TOKEN_IDLE_LIFETIME`] from last use.
fn idle_grant(access: SecretString, stepped_up: bool) -> Issued {
    Issued::new(access, ACCESS_TOKEN_IDLE_LIFETIME).with_extra(Companions {
        stepped_up,
        ..Companions::default()
    })
}

// The environment variables (`SessionBuilder::from_env`; `crate::env`).
const API_KEY_VAR: Variable = Variable::secret("WEAVR_API_KEY");
const EMAIL_VAR: Variable = Variable::text("WEAVR_EMAIL");
const PASSWORD_VAR: Variable = Variable::secret("WEAVR_PASSWORD");

impl crate::Provider for Weavr {
    type Client = Client;
}

impl crate::env::FromEnv for Weavr {
    const ENV: Declaration<Self> = Declaration {
        base_url: "WEAVR_BASE_URL",
        base_url_hint: Some(
            "Weavr gives each customer its Live URL on request; its sandbox is \
             https://sandbox.weavr.io/multi",
        ),
        shared: &[],
        profiles: &[Declared {
            name: "weavr",
            about: "Weavr Multi API",
            kind: "a user",
            variables: &[API_KEY_VAR, EMAIL_VAR, PASSWORD_VAR],
            apply: |builder, values| {
                builder
                    .api_key(values.secret(&API_KEY_VAR))
                    .email(values.text(&EMAIL_VAR))
                    .password(values.secret(&PASSWORD_VAR))
            },
        }],
    };
}

impl ProviderImpl for Weavr {
    const SERVICE: Service = S;
    const BASE_URL: Result<&'static str, &'static str> = Err(NO_BASE_URL);
    const SLIDING: Option<Duration> = Some(ACCESS_TOKEN_IDLE_LIFETIME);
    const ENDS_SESSION: &'static [&'static str] = &["log_out"];
    /// A password-expired login's temporary token lives like any other: 5 minutes.
    const LOGIN_CHALLENGE_LIFETIME: Duration = ACCESS_TOKEN_IDLE_LIFETIME;
    const CURES_FORBIDDEN: bool = true;

    type Settings = settings::Settings;

    fn build(settings: settings::Settings, endpoint: &Endpoint) -> Result<Self, Error> {
        let api_key = require(S, "API key", settings.api_key)?;
        let api_key = crate::header::secret(&api_key).map_err(|_| {
            Error::configuration(Some(S), "the API key is not a valid header value")
        })?;
        let email = require(S, "email", settings.email)?;
        let password = require(S, "password", settings.password)?;
        let (method, handler) = match settings.step_up {
            Some((method, handler)) => (method, Some(handler)),
            None => (StepUpMethod::Sms, None),
        };
        let attempts = settings.max_otp_attempts.unwrap_or(3);
        Ok(Self {
            endpoint: endpoint.clone(),
            api_key,
            email,
            password: Replaceable::new(password),
            identity: settings.identity,
            step_up: step_up::Coordinator::new(handler, method, attempts),
            signed_in_as: RwLock::new(None),
        })
    }

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
        fingerprint(self.password.get().expose_secret().as_bytes());
    }

    async fn login(&self, _sent_wall: SystemTime) -> Result<Issued, Error> {
        let body = types::LoginRequest {
            email: self.email.clone(),
            password: types::Password {
                value: self.password.get(),
            },
        };
        let login = |api: Client| async move { api.login_with_password(&body).await };
        let grant = crate::telemetry::Grant::Login;
        let response = self
            .call(grant, None, Replay::Gateway, &classify_login, login)
            .await?
            .into_inner();
        *self.signed_in_as.write().unwrap_or_else(|p| p.into_inner()) = response.identity;
        self.grant_typed(response.token, response.token_type).await
    }

    fn attach(&self, entry: &Entry, headers: &mut HeaderMap) {
        headers.insert(AUTHORIZATION, entry.bearer());
        headers.insert(API_KEY, self.api_key.clone());
    }

    fn cure<'a>(
        &'a self,
        tokens: &'a Tokens,
        body: &'a [u8],
    ) -> impl std::future::Future<Output = bool> + Send + 'a {
        self.step_up.cure(tokens, body)
    }

    fn uncured(&self, tokens: &Tokens, body: &[u8], used: &HeaderMap) {
        self.step_up.uncured(self, tokens, body, used);
    }

    /// `POST /logout` with the token (200 `{url}` or 204, both answered as success by the
    /// generated client).
    async fn log_out(&self, _tokens: &Tokens, ending: &Ending) -> Result<(), Error> {
        if !ending.valid {
            return Ok(());
        }
        let log_out = |api: Client| async move { api.log_out().await };
        let (grant, token) = (crate::telemetry::Grant::Logout, &ending.entry.secret);
        self.call(grant, Some(token), Replay::Unsent, &classify_api, log_out)
            .await?;
        Ok(())
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
