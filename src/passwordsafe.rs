//! BeyondTrust Password Safe public API v3 (`https://<host>/BeyondTrust/api/public/v3`).
//!
//! A Password Safe session is a cookie. `POST Auth/SignAppin` opens it, authorised either by an
//! API key (`Authorization: PS-Auth key=…; runas=…; pwd=[…];`) or by an OAuth access token that
//! `POST Auth/connect/token` issues for an application user's client ID and secret. Every later
//! call sends the cookie back (and, for OAuth sessions, the bearer token). The server closes a
//! session after [`ACCESS_TOKEN_IDLE_LIFETIME`] without activity, so the session's expiry slides
//! forward with every call the service accepts through [`Session::api`]; an OAuth session also
//! ends when its access token does (`expires_in`). When either is near, the session signs in
//! again. [`Session::logout`] ends the session on the server.
//!
//! Every installation has its own host: there is no shared production server, so the base URL
//! (or the host) is required.
//!
//! The token that [`Session::access_token`] returns is the session cookie, as the value of a
//! `Cookie` header (`name=value`).
//!
//! # Examples
//!
//! ```no_run
//! # async fn run() -> Result<(), tokensmith::Error> {
//! use tokensmith::passwordsafe::Session;
//!
//! let session = Session::builder()
//!     .host("pws.example.com")
//!     .ps_auth(
//!         "c479a66f…c9484d",
//!         r"doe-main\johndoe",
//!         Some("un1qu3".into()),
//!     )
//!     .api_version("3.1")
//!     .build()?;
//! let cookie = session.access_token().await?;
//! # let _ = cookie;
//! // … call the Password Safe API with the session …
//! session.logout().await?;
//! # Ok(()) }
//! ```

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, COOKIE, SET_COOKIE};

pub use crate::generated::passwordsafe::{types, Client};

use crate::cache::Provider;
use crate::error::{Error, ErrorKind, Service};
use crate::expiry;
use crate::response::{ErrorBody, Failure};
use crate::retry::Replay;
use crate::secret::SecretString;
use crate::session::{self, Attach, Common, Core, Endpoint};
use crate::token::{Entry, Extra, Grant};
use crate::transport::Context;

/// The vendor's base URL template: `the-server` stands for your server or cloud instance. It is
/// never used as a default; give [`SessionBuilder::host`] or [`SessionBuilder::base_url`].
pub const DEFAULT_BASE_URL: &str = "https://the-server/BeyondTrust/api/public/v3";
/// The path of the public API v3 on every host.
pub const BASE_PATH: &str = "/BeyondTrust/api/public/v3";
/// Sessions close after this long without activity.
pub const ACCESS_TOKEN_IDLE_LIFETIME: Duration = Duration::from_secs(20 * 60);

/// What the session signs in with, as given.
#[derive(Clone, Debug)]
enum Credentials {
    OAuth {
        client_id: String,
        client_secret: SecretString,
    },
    PsAuth {
        api_key: SecretString,
        runas: String,
        password: Option<SecretString>,
    },
}

/// Builds a [`Session`].
#[derive(Debug, Default)]
#[must_use]
pub struct SessionBuilder {
    common: Common,
    credentials: Option<Credentials>,
    api_version: Option<String>,
}

impl SessionBuilder {
    session::common_builder_methods!();

    /// The host of your Password Safe server or cloud instance (`pws.example.com`, or with a
    /// port): the base URL becomes `https://<host>/BeyondTrust/api/public/v3`. Either this or
    /// [`Self::base_url`] is required.
    pub fn host(mut self, host: impl AsRef<str>) -> Self {
        self.common.base_url = Some(format!("https://{}{BASE_PATH}", host.as_ref()));
        self
    }

    /// Signs in as an application user, with its OAuth client ID and secret:
    /// `POST Auth/connect/token` for an access token, then `POST Auth/SignAppin` with
    /// `Authorization: Bearer <token>`. Either this or [`Self::ps_auth`] is required; the later
    /// call wins.
    pub fn oauth(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<SecretString>,
    ) -> Self {
        self.credentials = Some(Credentials::OAuth {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        });
        self
    }

    /// Signs in with an API key, the user to run as (`domain\user` for a domain user) and,
    /// when the API registration requires it, the user's password: `POST Auth/SignAppin` with
    /// `Authorization: PS-Auth key=<api key>; runas=<user>; pwd=[<password>];`. Either this or
    /// [`Self::oauth`] is required; the later call wins.
    pub fn ps_auth(
        mut self,
        api_key: impl Into<SecretString>,
        runas: impl Into<String>,
        password: Option<SecretString>,
    ) -> Self {
        self.credentials = Some(Credentials::PsAuth {
            api_key: api_key.into(),
            runas: runas.into(),
            password,
        });
        self
    }

    /// The API version to ask for (`3.0`, `3.1` or `3.2`), sent as the `version` query
    /// parameter of the session's own calls. Without it no `version` is sent and the
    /// installation answers with its default version (no source says which).
    pub fn api_version(mut self, version: impl Into<String>) -> Self {
        self.api_version = Some(version.into());
        self
    }

    /// Checks the configuration and builds the session. Makes no request.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Configuration`] when the base URL or the credentials are missing or
    /// malformed, or the API version is not one of 3.0, 3.1, 3.2.
    pub fn build(self) -> Result<Session, Error> {
        const S: Service = Service::PasswordSafe;
        if self.common.base_url.is_none() {
            return Err(Error::configuration(
                Some(S),
                "the base URL is required (host(…) or base_url(…)): every installation has its own",
            ));
        }
        let version = match self.api_version {
            None => None,
            Some(v) => Some(types::ApiVersion::from_str(v.trim()).map_err(|_| {
                Error::configuration(
                    Some(S),
                    format!("API version {v:?} is not one of 3.0, 3.1, 3.2"),
                )
            })?),
        };
        let identity;
        let login = match self.credentials {
            None => return Err(Error::configuration(Some(S), "credentials are required")),
            Some(Credentials::OAuth {
                client_id,
                client_secret,
            }) => {
                let client_id = session::require_plain(S, "client id", Some(client_id))?;
                identity = format!("oauth:{client_id}");
                Login::OAuth(TokenRequest::new(
                    client_id,
                    session::require(S, "client secret", Some(client_secret))?,
                ))
            }
            Some(Credentials::PsAuth {
                api_key,
                runas,
                password,
            }) => {
                let api_key = session::require(S, "API key", Some(api_key))?;
                let runas = session::require_plain(S, "run-as user", Some(runas))?;
                identity = format!("ps-auth:{runas}");
                let password = password
                    .map(|p| session::require(S, "password", Some(p)))
                    .transpose()?;
                Login::PsAuth(ps_auth_header(&api_key, &runas, password.as_ref())?)
            }
        };
        let (endpoint, clock, policy) = self.common.finish(S, DEFAULT_BASE_URL)?;
        let provider = PasswordSafe {
            endpoint: endpoint.clone(),
            login,
            version,
            identity,
        };
        Ok(Session {
            core: Arc::new(Core::new(provider, endpoint, clock, policy)),
        })
    }
}

/// `PS-Auth key=<key>; runas=<user>; pwd=[<password>];`, marked sensitive.
fn ps_auth_header(
    api_key: &SecretString,
    runas: &str,
    password: Option<&SecretString>,
) -> Result<HeaderValue, Error> {
    let bad = |what: &str| {
        Error::configuration(
            Some(Service::PasswordSafe),
            format!("the {what} cannot be sent in a PS-Auth header"),
        )
    };
    // `;` separates the header's parts; the key and the user cannot hold one.
    if api_key.expose_secret().contains(';')
        || api_key.expose_secret().trim() != api_key.expose_secret()
    {
        return Err(bad("API key"));
    }
    if runas.contains(';') {
        return Err(bad("run-as user"));
    }
    let mut text = format!("PS-Auth key={}; runas={runas};", api_key.expose_secret());
    if let Some(password) = password {
        // `]` ends the `pwd=[…]` part: the server would read a shorter password and the rest
        // as more of the header.
        if password.expose_secret().contains(']') {
            return Err(bad(
                "password (it holds a `]`, which would end its `pwd=[…]` part)",
            ));
        }
        text.push_str(&format!(" pwd=[{}];", password.expose_secret()));
    }
    let mut value =
        HeaderValue::try_from(text).map_err(|_| bad("API key, run-as user or password"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// A session with a Password Safe server. Cheap to clone; clones share the session.
#[derive(Clone)]
pub struct Session {
    core: Arc<Core<PasswordSafe>>,
}

impl Session {
    /// A builder for a session.
    pub fn builder() -> SessionBuilder {
        SessionBuilder::default()
    }

    session::common_session_methods!(Client);

    /// Ends the session on the server (`POST Auth/Signout` with the session cookie: the vendor
    /// calls it signing out) and drops it, so that the next call signs in again. Does nothing
    /// when no session is open.
    ///
    /// A 401 means the server had already closed the session: it is dropped and the error
    /// ([`ErrorKind::TokenRejected`]) returned. After any other failure the session is kept
    /// (it may still be open; call again, or let it close after 20 idle minutes).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TokenRejected`] when the server had already closed the session (it is
    /// dropped all the same); any other failure of the sign-out (the session is kept).
    pub async fn logout(&self) -> Result<(), Error> {
        let cache = &self.core.cache;
        let Some(entry) = cache.current_or_stored().await else {
            self.core.forget().await;
            return Ok(());
        };
        let mut headers = HeaderMap::new();
        self.core.provider.attach(&entry, &mut headers);
        let context = headers
            .into_iter()
            .filter_map(|(name, value)| Some((name?, value)))
            .fold(Context::new(), |ctx, (name, value)| {
                ctx.with_header(name, value, true)
            })
            .with_grant(crate::telemetry::Grant::Logout);
        let version = self.core.provider.version;
        let sign_out = |api: Client| async move { api.sign_out(version).await };
        match self
            .core
            .endpoint
            .call(context, &classify_api, sign_out)
            .await
        {
            Ok(_) => {
                self.core.forget().await;
                Ok(())
            }
            Err(error) => {
                if error.kind() == ErrorKind::TokenRejected {
                    self.core.forget().await;
                }
                Err(error)
            }
        }
    }
}

session::session_impls!(Session);

/// The client-credentials request of `POST Auth/connect/token`, serialized as the form the
/// service documents, in its order: `grant_type=client_credentials&client_id=…&client_secret=…`.
/// (The OpenAPI document describes it; the generated type would have put the fields in
/// alphabetical order.)
// Public only because the generated client's `token` operation takes it (the OpenAPI
// document maps the form to it); not part of the documented API.
#[doc(hidden)]
#[derive(Clone, Debug, serde::Serialize)]
pub struct TokenRequest {
    grant_type: GrantType,
    client_id: String,
    client_secret: SecretString,
}

/// The only grant the token endpoint takes.
#[derive(Clone, Copy, Debug, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum GrantType {
    ClientCredentials,
}

impl TokenRequest {
    /// A client-credentials request for `client_id` and `client_secret`.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<SecretString>) -> Self {
        Self {
            grant_type: GrantType::ClientCredentials,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        }
    }
}

/// How the session signs in, checked at build time.
enum Login {
    OAuth(TokenRequest),
    PsAuth(HeaderValue),
}

struct PasswordSafe {
    endpoint: Endpoint,
    login: Login,
    version: Option<types::ApiVersion>,
    /// Who signs in (the OAuth client or the run-as user), to key a shared token store.
    identity: String,
}

impl ErrorBody for types::OAuthError {
    fn message(&self) -> Option<String> {
        self.error_description
            .clone()
            .or_else(|| self.error.clone())
    }

    fn code(&self) -> Option<String> {
        self.error.clone()
    }
}

impl ErrorBody for types::ApiError {
    /// The body is undocumented: a JSON string is the message, or an object's member under
    /// one of the usual names (ASP.NET's `Message` among them).
    fn message(&self) -> Option<String> {
        crate::response::message_from_json(&self.0)
    }
}

fn classify_token(failure: &Failure) -> ErrorKind {
    // RFC 6749 lets a server answer `invalid_client` with 400 as well as 401.
    let refused = matches!(
        failure.code.as_deref(),
        Some("invalid_client" | "unauthorized_client")
    );
    match failure.status {
        400 | 401 if refused => ErrorKind::InvalidCredentials,
        401 => ErrorKind::InvalidCredentials,
        _ => failure.default_kind(),
    }
}

fn classify_sign_in(failure: &Failure) -> ErrorKind {
    match failure.status {
        401 => ErrorKind::InvalidCredentials,
        _ => classify_api(failure),
    }
}

fn classify_api(failure: &Failure) -> ErrorKind {
    match failure.status {
        403 => ErrorKind::LicenceInvalid,
        410 => ErrorKind::ApiVersionDisabled,
        _ => failure.default_kind(),
    }
}

/// The `name=value` pairs of the cookies a response sets, joined as a `Cookie` header value.
/// Cookies that are being deleted (empty value, `Max-Age` of zero or less, `Expires` in the
/// past) are left out.
fn session_cookie(headers: &HeaderMap, now: SystemTime) -> Option<String> {
    let pairs: Vec<&str> = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|cookie| {
            let mut parts = cookie.split(';');
            let pair = parts.next()?.trim();
            let (name, value) = pair.split_once('=')?;
            if name.trim().is_empty() || value.trim().is_empty() {
                return None;
            }
            let deleted = parts.any(|attribute| {
                let (key, value) = attribute.split_once('=').unwrap_or((attribute, ""));
                let value = value.trim();
                match key.trim().to_ascii_lowercase().as_str() {
                    "max-age" => value.parse::<i64>().is_ok_and(|age| age <= 0),
                    "expires" => httpdate::parse_http_date(value).is_ok_and(|at| at <= now),
                    _ => false,
                }
            });
            (!deleted).then_some(pair)
        })
        .collect();
    (!pairs.is_empty()).then(|| pairs.join("; "))
}

impl PasswordSafe {
    async fn sign_in(
        &self,
        authorization: HeaderValue,
        sent_wall: SystemTime,
    ) -> Result<SecretString, Error> {
        let context = Context::new()
            .with_header(AUTHORIZATION, authorization, true)
            .with_replay(Replay::Gateway)
            .with_grant(crate::telemetry::Grant::Login);
        let version = self.version;
        let sign_in = |api: Client| async move { api.sign_app_in(version).await };
        let response = self
            .endpoint
            .call(context, &classify_sign_in, sign_in)
            .await?;
        session_cookie(response.headers(), sent_wall)
            .map(SecretString::from)
            .ok_or_else(|| {
                Error::new(ErrorKind::UnexpectedResponse)
                    .with_service(Self::SERVICE)
                    .with_status(response.status().as_u16())
                    .with_message("Auth/SignAppin succeeded but set no session cookie")
            })
    }
}

impl Provider for PasswordSafe {
    const SERVICE: Service = Service::PasswordSafe;
    const SLIDING: Option<Duration> = Some(ACCESS_TOKEN_IDLE_LIFETIME);
    const ENDS_SESSION: &'static [&'static str] = &["sign_out"];

    fn store_identity(&self) -> String {
        self.identity.clone()
    }

    fn credentials(&self, fingerprint: &mut dyn FnMut(&[u8])) {
        match &self.login {
            Login::OAuth(form) => fingerprint(form.client_secret.expose_secret().as_bytes()),
            // The api key, the run-as user and their password, as the header carries them.
            Login::PsAuth(header) => fingerprint(header.as_bytes()),
        }
    }

    async fn login(&self, sent_wall: SystemTime) -> Result<Grant, Error> {
        match &self.login {
            Login::PsAuth(header) => Ok(Grant::new(
                self.sign_in(header.clone(), sent_wall).await?,
                ACCESS_TOKEN_IDLE_LIFETIME,
            )),
            Login::OAuth(form) => {
                let context = Context::new()
                    .with_replay(Replay::Gateway)
                    .with_grant(crate::telemetry::Grant::Login);
                let version = self.version;
                let token =
                    |api: Client| async move { api.create_access_token(version, form).await };
                let token = self
                    .endpoint
                    .call(context, &classify_token, token)
                    .await?
                    .into_inner();
                // The session cannot outlive the token that opened it.
                let token_lifetime = expiry::lifetime(
                    token.expires_in.as_f64().and_then(expiry::seconds),
                    Some(token.access_token.expose_secret()),
                    sent_wall,
                    ACCESS_TOKEN_IDLE_LIFETIME,
                    None,
                );
                let bearer = token.access_token;
                let cookie = self.sign_in(session::bearer(&bearer), sent_wall).await?;
                Ok(
                    Grant::new(cookie, ACCESS_TOKEN_IDLE_LIFETIME.min(token_lifetime))
                        .with_max_lifetime(token_lifetime)
                        .with_extra(Extra {
                            bearer: Some(bearer),
                            ..Extra::default()
                        }),
                )
            }
        }
    }
}

impl Attach for PasswordSafe {
    fn attach(&self, entry: &Entry, headers: &mut HeaderMap) {
        if let Ok(mut cookie) = HeaderValue::try_from(entry.secret.expose_secret()) {
            cookie.set_sensitive(true);
            headers.insert(COOKIE, cookie);
        }
        if let Some(bearer) = &entry.extra.bearer {
            headers.insert(AUTHORIZATION, session::bearer(bearer));
        }
    }

    fn carries(&self, entry: &Entry, headers: &HeaderMap) -> bool {
        let sent: Vec<&str> = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .map(str::trim)
            .collect();
        entry
            .secret
            .expose_secret()
            .split(';')
            .map(str::trim)
            .all(|pair| sent.contains(&pair))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(set_cookies: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for cookie in set_cookies {
            headers.append(SET_COOKIE, HeaderValue::from_str(cookie).unwrap());
        }
        headers
    }

    #[test]
    fn the_session_cookie_is_every_live_cookie_set() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let set = headers(&[
            "ASP.NET_SessionId=abc123; path=/; secure; HttpOnly; SameSite=Lax",
            "lb=node-2; Path=/",
            "old=; expires=Thu, 01 Jan 1970 00:00:00 GMT",
            "gone=x; Max-Age=0",
            "past=y; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
            "malformed",
        ]);
        assert_eq!(
            session_cookie(&set, now).as_deref(),
            Some("ASP.NET_SessionId=abc123; lb=node-2")
        );
        assert_eq!(session_cookie(&headers(&[]), now), None);
        assert_eq!(session_cookie(&headers(&["gone=x; Max-Age=0"]), now), None);
    }

    #[test]
    fn the_ps_auth_header_has_pwd_only_with_a_password() {
        let key = SecretString::from("k3y");
        let with = ps_auth_header(&key, r"doe-main\johndoe", Some(&"pw".into())).unwrap();
        assert_eq!(with, r"PS-Auth key=k3y; runas=doe-main\johndoe; pwd=[pw];");
        assert!(with.is_sensitive());
        let without = ps_auth_header(&key, "svc", None).unwrap();
        assert_eq!(without, "PS-Auth key=k3y; runas=svc;");
        for (key, runas) in [("a;b", "svc"), ("k3y", "a;b"), ("k3y\n", "svc")] {
            let err = ps_auth_header(&key.into(), runas, None).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Configuration);
            assert!(!err.to_string().contains(key), "{err}");
        }
    }
}
