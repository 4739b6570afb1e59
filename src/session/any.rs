//! One handle for any service's session, and a form of [`TokenSource`] usable behind `dyn`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::HeaderMap;

use super::engine::Engine;
use crate::error::{Error, Service};
use crate::token::AccessToken;
use crate::transport::exchange::Authorizer;
use crate::TokenSource;

/// Any service's session, for code that holds "some auth service" without naming which: made
/// with `From` (or `.into()`) from every service's `Session`, cheap to clone (clones share the
/// session's token cache), and `Send + Sync`.
///
/// Service-specific calls (weavr's `step_up`, accounts' `complete_new_password`, the
/// generated `api()` clients) stay on the service's own `Session`; keep a clone of it for
/// those.
///
/// ```no_run
/// # async fn run() -> Result<(), tokensmith::Error> {
/// use tokensmith::{s7risk, AnySession, Service};
///
/// let session: AnySession = s7risk::Session::builder()
///     .origin("https://app.example.com")
///     .user("analyst@example.com", "password")
///     .build()?
///     .into();
/// assert_eq!(session.service(), Service::S7risk);
/// let headers = session.headers().await?; // `authorization` and `origin`
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AnySession {
    engine: Arc<Engine>,
}

impl AnySession {
    pub(crate) fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }

    /// The session as the request path sees it (what `api()` and `send()` use).
    #[cfg_attr(not(any(feature = "middleware", feature = "tower")), allow(dead_code))]
    pub(crate) fn authorizer(&self) -> Arc<dyn Authorizer> {
        self.engine.clone()
    }

    /// The engine, for the adapters (the scope of its credentials).
    #[cfg_attr(not(any(feature = "middleware", feature = "tower")), allow(dead_code))]
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The service this session talks to.
    pub fn service(&self) -> Service {
        self.engine.service()
    }

    /// The HTTP client this session sends through, following no redirects (the service's
    /// `Session::client`).
    pub fn client(&self) -> reqwest::Client {
        self.engine.endpoint.http.clone()
    }

    /// A valid access token: the cached one, or one obtained by a single shared login or
    /// refresh however many tasks ask at once.
    ///
    /// # Errors
    /// The token could not be had (the login or refresh failed).
    pub async fn access_token(&self) -> Result<AccessToken, Error> {
        self.engine.access_token().await
    }

    /// Renews now, whatever the cached token's expiry, the way the service's
    /// `Session::force_refresh` does: for an application that learned the token was revoked.
    /// The token cached when called is no longer served; the renewal (a refresh where the
    /// service gave a refresh token, else a login) is the session's one flight, so many callers
    /// at once send one request, and all get its token.
    ///
    /// # Errors
    /// The renewal failed (what [`Self::access_token`] fails with). A refused login is
    /// answered with its error, without a request, until the service's
    /// `Session::clear_failure`.
    pub async fn force_refresh(&self) -> Result<AccessToken, Error> {
        self.engine.cache().force_refresh().await
    }

    /// Everything a request to the service's API needs, every value marked sensitive: the
    /// service's `Session::headers` (for example [`crate::weavr::Session::headers`]).
    ///
    /// # Errors
    /// The token could not be had (the login or refresh failed).
    pub async fn headers(&self) -> Result<HeaderMap, Error> {
        self.engine.headers().await
    }

    /// Reports that the service answered 401 to a request carrying `headers`: the next call
    /// renews first, once (the service's `Session::refused`).
    pub fn refused(&self, headers: &HeaderMap) {
        Authorizer::refused(&*self.engine, headers);
    }

    /// Adds the current credentials (renewed first when due) to a request for one of the
    /// vendor's other APIs (the service's `Session::authorize`).
    ///
    /// # Errors
    /// The token could not be had, or the request could not be built.
    pub async fn authorize(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, Error> {
        self.engine.authorize_request(request).await
    }

    /// Sends `request` with this session's credentials and lets the session see the answer:
    /// on a 401 renewed once and sent once more, counted as activity where sessions expire
    /// when idle, and weavr's step-up answered (the service's `Session::send`).
    ///
    /// # Errors
    /// The request could not be built or sent, or the credentials could not be had.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, Error> {
        self.engine.send(request).await
    }

    /// Ends the session the way the service's `Session::logout` does (at the service where
    /// it has a logout; the cached and stored tokens are wiped in every case).
    ///
    /// # Errors
    /// The service's `logout` failed.
    pub async fn logout(&self) -> Result<(), Error> {
        self.engine.logout().await
    }
}

impl std::fmt::Debug for AnySession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        super::engine_debug(&self.engine, f)
    }
}

impl TokenSource for AnySession {
    fn access_token(&self) -> impl Future<Output = Result<AccessToken, Error>> + Send {
        self.engine.cache().access_token()
    }
}

/// [`TokenSource`] in a form usable behind `dyn`, for code that stores "something that hands
/// out tokens" as `Box<dyn DynTokenSource>` or `Arc<dyn DynTokenSource>`. Every
/// [`TokenSource`] (every service's `Session`, [`AnySession`]) is one; the future is boxed.
///
/// Import one of the two traits in a scope, not both: a type implementing both would
/// otherwise have two `access_token` methods to choose from.
///
/// ```no_run
/// # async fn run() -> Result<(), tokensmith::Error> {
/// use std::sync::Arc;
/// use tokensmith::{fib, DynTokenSource};
///
/// let source: Arc<dyn DynTokenSource> = Arc::new(
///     fib::Session::builder()
///         .email("alice@example.com")
///         .private_key("413b285d1819a6166b0daa762bb6bef2d082cffb9a13ce041cb0fda5e2f06dc3")
///         .build()?,
/// );
/// let token = source.access_token().await?;
/// # Ok(()) }
/// ```
pub trait DynTokenSource: Send + Sync {
    /// A valid access token, renewed first when it is due.
    fn access_token(&self)
        -> Pin<Box<dyn Future<Output = Result<AccessToken, Error>> + Send + '_>>;
}

impl<T: TokenSource> DynTokenSource for T {
    fn access_token(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<AccessToken, Error>> + Send + '_>> {
        Box::pin(TokenSource::access_token(self))
    }
}
