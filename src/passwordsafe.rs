//! BeyondTrust Password Safe public API v3 (`https://<host>/BeyondTrust/api/public/v3`).
//!
//! A Password Safe session is a cookie, or, for OAuth, the access token itself. `POST
//! Auth/SignAppin` opens it, authorised either by an API key (`Authorization: PS-Auth key=…;
//! runas=…; pwd=[…];`) or by an OAuth access token that `POST Auth/connect/token` issues for an
//! application user's client ID and secret. Every later call sends the cookie back (and, for
//! OAuth sessions, the bearer token). An OAuth sign-in that sets no cookie is a session all the
//! same, carried by the bearer token alone: BeyondTrust documents that with bearer sign-in
//! "cookies are still supported" (not required), and its own Go client library accepts such a
//! sign-in (see [`Session`]). An API-key sign-in that sets no cookie fails: the cookie is that
//! session's only credential. The server closes a
//! session after [`ACCESS_TOKEN_IDLE_LIFETIME`] without activity, so the session's expiry slides
//! forward with every call the service accepts through [`Session::api`]; an OAuth session also
//! ends when its access token does (`expires_in`). When either is near, the session signs in
//! again. [`Session::logout`] ends the session on the server.
//!
//! Every installation has its own host: there is no shared production server, so the base URL
//! (or the host) is required.
//!
//! The token that [`Session::access_token`] returns is the session cookie, as the value of a
//! `Cookie` header (`name=value`), or, for an OAuth session whose sign-in set no cookie, the
//! OAuth access token (for an `Authorization: Bearer` header). [`Session::headers`] gives
//! exactly what to send either way.
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
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, COOKIE, SET_COOKIE};

pub use crate::generated::passwordsafe::{types, Client};

use crate::env::{Declaration, Declared, Variable};
use crate::error::{Error, ErrorKind, Service};
use crate::oauth2;
use crate::provider::sealed::ProviderImpl;
use crate::provider::{Ending, Tokens};
use crate::secret::SecretString;
use crate::session::require;
use crate::token::{Companions, Entry, Issued};
use crate::transport::endpoint::Endpoint;
use crate::transport::errors::{ErrorBody, Failure};
use crate::transport::Context;

/// A session with a Password Safe server. Cheap to clone; clones share the session.
pub type Session = crate::Session<PasswordSafe>;
/// Builds a [`Session`]: [`crate::SessionBuilder`]'s setters, and the service's own below.
pub type SessionBuilder = crate::SessionBuilder<PasswordSafe>;

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

mod settings {
    /// What a Password Safe builder takes beside the shared settings.
    #[derive(Debug, Default)]
    pub struct Settings {
        pub(super) credentials: Option<super::Credentials>,
        pub(super) api_version: Option<String>,
    }
}

/// What `build()` says without a base URL.
const NO_BASE_URL: &str =
    "the base URL is required (host(…) or base_url(…)): every installation has its own";

impl SessionBuilder {
    /// The host of your Password Safe server or cloud instance (`pws.example.com`, or with a
    /// port): the base URL becomes `https://<host>/BeyondTrust/api/public/v3`. Either this or
    /// [`Self::base_url`] is required.
    pub fn host(self, host: impl AsRef<str>) -> Self {
        self.base_url(format!("https://{}{BASE_PATH}", host.as_ref()))
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
        self.own.credentials = Some(Credentials::OAuth {
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
        self.own.credentials = Some(Credentials::PsAuth {
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
        self.own.api_version = Some(version.into());
        self
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
    let mut parts: Vec<&[u8]> = vec![
        b"PS-Auth key=",
        api_key.expose_secret().as_bytes(),
        b"; runas=",
        runas.as_bytes(),
        b";",
    ];
    if let Some(password) = password {
        // `]` ends the `pwd=[…]` part: the server would read a shorter password and the rest
        // as more of the header.
        if password.expose_secret().contains(']') {
            return Err(bad(
                "password (it holds a `]`, which would end its `pwd=[…]` part)",
            ));
        }
        parts.extend([
            b" pwd=[".as_slice(),
            password.expose_secret().as_bytes(),
            b"];",
        ]);
    }
    // Assembled in memory that is zeroized when the header's last copy is dropped.
    crate::header::sensitive(&parts).map_err(|_| bad("API key, run-as user or password"))
}

/// The client-credentials request of `POST Auth/connect/token` (the generated client's
/// `create_access_token` takes it).
#[doc(hidden)]
pub use crate::oauth2::ClientCredentials as TokenRequest;

/// How the session signs in, checked at build time.
enum Login {
    OAuth(TokenRequest),
    PsAuth(HeaderValue),
}

/// BeyondTrust Password Safe, as a [`crate::Provider`]: sessions with it are [`Session`]s.
///
/// # What the session's secret is
///
/// - API key (PS-Auth): the cookies `Auth/SignAppin` set, as a `Cookie` header value; every
///   call sends them. A sign-in that sets none fails with
///   [`ErrorKind::UnexpectedResponse`]: there would be nothing to authenticate later calls.
/// - OAuth, sign-in that set cookies: the cookies, as above; every call sends them and
///   `Authorization: Bearer <access token>`.
/// - OAuth, sign-in that set no cookie (as the test server of BeyondTrust's own Go client,
///   go-client-library-passwordsafe `api/authentication/authentication_test.go`, answers): the
///   OAuth access token; every call sends `Authorization: Bearer <access token>` and no
///   `Cookie`. `Session::access_token` then returns the access token, `headers`,
///   `send`, `api` and `logout` send the bearer alone, and
///   `refused` recognises it. Such a session lives as long as the access token, and
///   slides like one with a cookie (the server's idle close is assumed to apply to it too).
///
/// `logout()` ends the session on the server (`POST Auth/Signout` with what the session's calls
/// carry, its cookie or its bearer alone: the vendor calls it signing out) and drops it, so that the next call signs in again; it does
/// nothing when no session is open. A 401 means the server had already closed the session: it
/// is dropped and the error ([`ErrorKind::TokenRejected`]) returned. After any other failure
/// the session is kept (it may still be open; call again, or let it close after 20 idle
/// minutes).
pub struct PasswordSafe {
    endpoint: Endpoint,
    login: Login,
    version: Option<types::ApiVersion>,
    /// Who signs in (the OAuth client or the run-as user), to key a shared token store.
    identity: String,
}

impl ErrorBody for types::OAuthError {
    fn message(&self) -> Option<String> {
        oauth2::error_message(self.error.as_deref(), self.error_description.as_deref())
    }

    fn code(&self) -> Option<String> {
        self.error.clone()
    }
}

impl ErrorBody for types::ApiError {
    /// The body is undocumented: a JSON string is the message, or an object's member under
    /// one of the usual names (ASP.NET's `Message` among them).
    fn message(&self) -> Option<String> {
        crate::transport::errors::message_from_json(&self.0)
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

/// What a successful `Auth/SignAppin` gave.
struct SignedIn {
    /// The cookies it set, as a `Cookie` header value; none for some OAuth sign-ins.
    cookie: Option<SecretString>,
    status: u16,
}

impl PasswordSafe {
    async fn sign_in(
        &self,
        authorization: HeaderValue,
        sent_wall: SystemTime,
    ) -> Result<SignedIn, Error> {
        let context = Context::new().with_header(AUTHORIZATION, authorization, true);
        let version = self.version;
        let sign_in = |api: Client| async move { api.sign_app_in(version).await };
        let response = self
            .endpoint
            .log_in(context, &classify_api, sign_in)
            .await?;
        Ok(SignedIn {
            cookie: session_cookie(response.headers(), sent_wall).map(SecretString::from),
            status: response.status().as_u16(),
        })
    }
}

/// Whether `entry` is an OAuth session whose sign-in set no cookie: its secret is then the
/// bearer token itself (see [`PasswordSafe`]). A cookie (`name=value`) is never equal to the
/// token.
fn bearer_only(entry: &Entry) -> bool {
    entry
        .extra
        .bearer
        .as_ref()
        .is_some_and(|bearer| bearer.expose_secret() == entry.secret.expose_secret())
}

// The environment variables (`SessionBuilder::from_env`; `crate::env`).
const CLIENT_ID_VAR: Variable = Variable::text("PASSWORDSAFE_CLIENT_ID");
const CLIENT_SECRET_VAR: Variable = Variable::secret("PASSWORDSAFE_CLIENT_SECRET");
const API_KEY_VAR: Variable = Variable::secret("PASSWORDSAFE_API_KEY");
const RUNAS_VAR: Variable = Variable::text("PASSWORDSAFE_RUNAS");
const PASSWORD_VAR: Variable = Variable::secret("PASSWORDSAFE_PASSWORD").optional();

impl crate::Provider for PasswordSafe {
    type Client = Client;
}

impl crate::env::FromEnv for PasswordSafe {
    const ENV: Declaration<Self> = Declaration {
        base_url: "PASSWORDSAFE_BASE_URL",
        base_url_hint: Some("https://<host>/BeyondTrust/api/public/v3"),
        shared: &[],
        profiles: &[
            Declared {
                name: "passwordsafe-oauth",
                about: "BeyondTrust Password Safe, with an OAuth client",
                kind: "an OAuth client",
                variables: &[CLIENT_ID_VAR, CLIENT_SECRET_VAR],
                apply: |builder, values| {
                    builder.oauth(
                        values.text(&CLIENT_ID_VAR),
                        values.secret(&CLIENT_SECRET_VAR),
                    )
                },
            },
            Declared {
                name: "passwordsafe-key",
                about: "BeyondTrust Password Safe, with an API key (PS-Auth)",
                kind: "an API key",
                variables: &[API_KEY_VAR, RUNAS_VAR, PASSWORD_VAR],
                apply: |builder, values| {
                    builder.ps_auth(
                        values.secret(&API_KEY_VAR),
                        values.text(&RUNAS_VAR),
                        values.optional_secret(&PASSWORD_VAR),
                    )
                },
            },
        ],
    };
}

impl ProviderImpl for PasswordSafe {
    const SERVICE: Service = Service::PasswordSafe;
    const BASE_URL: Result<&'static str, &'static str> = Err(NO_BASE_URL);
    const SLIDING: Option<Duration> = Some(ACCESS_TOKEN_IDLE_LIFETIME);
    const ENDS_SESSION: &'static [&'static str] = &["sign_out"];
    const KEEPS_SESSION_ON_FAILED_LOGOUT: bool = true;

    type Settings = settings::Settings;

    fn build(settings: settings::Settings, endpoint: &Endpoint) -> Result<Self, Error> {
        const S: Service = Service::PasswordSafe;
        let version = match settings.api_version {
            None => None,
            Some(v) => Some(types::ApiVersion::from_str(v.trim()).map_err(|_| {
                Error::configuration(
                    Some(S),
                    format!("API version {v:?} is not one of 3.0, 3.1, 3.2"),
                )
            })?),
        };
        let identity;
        let login = match settings.credentials {
            None => return Err(Error::configuration(Some(S), "credentials are required")),
            Some(Credentials::OAuth {
                client_id,
                client_secret,
            }) => {
                let client_id = require(S, "client id", Some(client_id))?;
                identity = format!("oauth:{client_id}");
                Login::OAuth(TokenRequest::new(
                    client_id,
                    require(S, "client secret", Some(client_secret))?,
                ))
            }
            Some(Credentials::PsAuth {
                api_key,
                runas,
                password,
            }) => {
                let api_key = require(S, "API key", Some(api_key))?;
                let runas = require(S, "run-as user", Some(runas))?;
                identity = format!("ps-auth:{runas}");
                let password = password
                    .map(|p| require(S, "password", Some(p)))
                    .transpose()?;
                Login::PsAuth(ps_auth_header(&api_key, &runas, password.as_ref())?)
            }
        };
        Ok(Self {
            endpoint: endpoint.clone(),
            login,
            version,
            identity,
        })
    }

    fn store_identity(&self) -> String {
        self.identity.clone()
    }

    fn credentials(&self, fingerprint: &mut dyn FnMut(&[u8])) {
        match &self.login {
            Login::OAuth(form) => fingerprint(form.client_secret().expose_secret().as_bytes()),
            // The api key, the run-as user and their password, as the header carries them.
            Login::PsAuth(header) => fingerprint(header.as_bytes()),
        }
    }

    async fn login(&self, sent_wall: SystemTime) -> Result<Issued, Error> {
        match &self.login {
            Login::PsAuth(header) => {
                let signed_in = self.sign_in(header.clone(), sent_wall).await?;
                // The cookie is an API-key session's only credential.
                let cookie = signed_in.cookie.ok_or_else(|| {
                    Error::new(ErrorKind::UnexpectedResponse)
                        .with_service(Self::SERVICE)
                        .with_status(signed_in.status)
                        .with_message("Auth/SignAppin succeeded but set no session cookie")
                })?;
                Ok(Issued::new(cookie, ACCESS_TOKEN_IDLE_LIFETIME))
            }
            Login::OAuth(form) => {
                let version = self.version;
                let token =
                    |api: Client| async move { api.create_access_token(version, form).await };
                let token = self
                    .endpoint
                    .log_in(Context::new(), &oauth2::classify_token, token)
                    .await?
                    .into_inner();
                // The session cannot outlive the token that opened it.
                let token_lifetime = oauth2::lifetime(
                    Some(&token.expires_in),
                    &token.access_token,
                    sent_wall,
                    ACCESS_TOKEN_IDLE_LIFETIME,
                );
                let bearer = token.access_token;
                let authorization = crate::header::bearer(&bearer).map_err(|_| {
                    Error::new(ErrorKind::Decode)
                        .with_service(Service::PasswordSafe)
                        .with_message("the OAuth token cannot be sent in an HTTP header")
                })?;
                let signed_in = self.sign_in(authorization, sent_wall).await?;
                // Without a cookie the bearer alone carries the session: it is the secret.
                let secret = signed_in.cookie.unwrap_or_else(|| bearer.clone());
                Ok(
                    Issued::new(secret, ACCESS_TOKEN_IDLE_LIFETIME.min(token_lifetime))
                        .with_max_lifetime(token_lifetime)
                        .with_extra(Companions {
                            bearer: Some(bearer),
                            ..Companions::default()
                        }),
                )
            }
        }
    }

    fn attach(&self, entry: &Entry, headers: &mut HeaderMap) {
        if bearer_only(entry) {
            headers.insert(AUTHORIZATION, entry.bearer());
            return;
        }
        if let Ok(cookie) = crate::header::secret(&entry.secret) {
            headers.insert(COOKIE, cookie);
        }
        if let Some(bearer) = &entry.extra.bearer {
            if let Ok(bearer) = crate::header::bearer(bearer) {
                headers.insert(AUTHORIZATION, bearer);
            }
        }
    }

    fn carries(&self, entry: &Entry, headers: &HeaderMap) -> bool {
        if bearer_only(entry) {
            return headers
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|token| token == entry.secret.expose_secret());
        }
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

    /// `POST Auth/Signout` with the session's cookie (and bearer).
    async fn log_out(&self, _tokens: &Tokens, ending: &Ending) -> Result<(), Error> {
        let mut headers = HeaderMap::new();
        self.attach(&ending.entry, &mut headers);
        let context = headers
            .into_iter()
            .filter_map(|(name, value)| Some((name?, value)))
            .fold(Context::new(), |ctx, (name, value)| {
                ctx.with_header(name, value, true)
            })
            .with_grant(crate::telemetry::Grant::Logout);
        let version = self.version;
        let sign_out = |api: Client| async move { api.sign_out(version).await };
        self.endpoint.call(context, &classify_api, sign_out).await?;
        Ok(())
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
