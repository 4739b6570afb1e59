//! [`Session`]: one type for every service, its shared methods written once. Each service's
//! module names its session (`tokensmith::weavr::Session` is `Session<weavr::Weavr>`) and adds
//! its own methods.
//!
//! The parts: `builder` (the shared setters and `build()`), `engine` (the cache, the endpoint
//! and the service joined, behind every path), `any` ([`AnySession`], any service's session
//! behind one type).

mod any;
mod builder;
mod engine;

use std::sync::Arc;

pub use any::{AnySession, DynTokenSource};
pub(crate) use builder::require;
pub use builder::SessionBuilder;
pub(crate) use engine::Engine;

use crate::error::{Error, Service};
use crate::provider::{Provider, Tokens};
use crate::token::AccessToken;
use crate::transport::endpoint::Endpoint;

/// A session with service `P`: it logs in on first use, serves the cached token until it is
/// due, renews it (one request however many tasks ask), and puts it on requests. Cheap to clone
/// (clones share the token); `Send + Sync`.
///
/// Each service's module names its session (`tokensmith::s7risk::Session`, …); make one with
/// its `Session::builder()`.
pub struct Session<P: Provider> {
    engine: Arc<Engine>,
    provider: Arc<P>,
}

impl<P: Provider> Clone for Session<P> {
    fn clone(&self) -> Self {
        Self {
            engine: self.engine.clone(),
            provider: self.provider.clone(),
        }
    }
}

impl<P: Provider> Session<P> {
    /// A builder for a session with this service.
    pub fn builder() -> SessionBuilder<P> {
        SessionBuilder::default()
    }

    pub(crate) fn from_engine(engine: Arc<Engine>, provider: Arc<P>) -> Self {
        Self { engine, provider }
    }

    /// The service's own state, for its own methods.
    pub(crate) fn provider(&self) -> &P {
        &self.provider
    }

    /// What its own methods may do with the session's tokens.
    pub(crate) fn tokens(&self) -> &Tokens {
        self.engine.tokens()
    }

    /// Where its own methods send.
    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.engine.endpoint
    }

    /// The service this session talks to.
    pub fn service(&self) -> Service {
        P::SERVICE
    }

    /// The HTTP client this session sends through: the one its builder was given, or the
    /// default, and in either case following no redirects. Build other stacks on it (a
    /// `reqwest_middleware::ClientBuilder` for [`crate::middleware`]), so that no redirect
    /// carries the session's credentials to another host.
    pub fn client(&self) -> reqwest::Client {
        self.engine.endpoint.http.clone()
    }

    /// A valid access token: the cached one, or one obtained by a single shared login or
    /// refresh however many tasks ask at once.
    ///
    /// # Errors
    ///
    /// When no valid token can be had: the login's or refresh's failure (refused
    /// credentials, a rate limit, a lock-out, a transport failure, …). A refused login is
    /// answered with its error, without a request, until [`Self::clear_failure`].
    #[inline]
    pub fn access_token(
        &self,
    ) -> impl std::future::Future<Output = Result<AccessToken, Error>> + Send + '_ {
        self.engine.cache().access_token()
    }

    /// Adds the current credentials (renewed first when due) to a request for one of the
    /// vendor's other APIs that take the same token.
    ///
    /// The request must go where the session's credentials may go (see
    /// [`SessionBuilder::credential_hosts`]): to another host, or over plain `http` to a host
    /// that is not loopback (without `danger_accept_plain_http`), it is refused with
    /// [`crate::ErrorKind::Configuration`] before any login. The builder given back sends
    /// through a client that follows no redirects, like [`Self::send`], not the one that
    /// built the request: a redirect comes back as the response, and the session's
    /// credentials never reach the host it points to.
    ///
    /// # Errors
    ///
    /// What [`Self::access_token`] fails with; [`crate::ErrorKind::Configuration`] when
    /// the request cannot be built or must not carry the credentials.
    #[inline]
    pub fn authorize(
        &self,
        request: reqwest::RequestBuilder,
    ) -> impl std::future::Future<Output = Result<reqwest::RequestBuilder, Error>> + Send + '_ {
        self.engine.authorize_request(request)
    }

    /// Sends `request`, for one of the vendor's other APIs, with this session's credentials,
    /// the way [`Self::api`] sends its own: renewed when due; on a 401 renewed once and
    /// sent once more (when the request can be cloned); for weavr, a `STEP_UP_REQUIRED` or
    /// `ACCESS_TOKEN_REQUIRED` answered once and the request sent once more (so a request is
    /// sent at most three times: a token renewed after a 401 may need the step-up); and
    /// counted as activity where sessions expire when idle. Unlike [`Self::authorize`], the
    /// session sees the
    /// answer. The response is the service's, whatever its status; the error is for a
    /// request that could not be sent or credentials that could not be had.
    ///
    /// The request must go where the session's credentials may go, as for
    /// [`Self::authorize`]. It goes out through a client that follows no redirects, whatever
    /// client built it (the builder's client only builds it): a redirect comes back as the
    /// response, `3xx` and `Location` included, and the session's credentials never reach the
    /// host it points to.
    ///
    /// # Errors
    ///
    /// What [`Self::access_token`] fails with; [`crate::ErrorKind::Configuration`] when
    /// the request cannot be built or must not carry the credentials;
    /// [`crate::ErrorKind::Timeout`] or [`crate::ErrorKind::Transport`] when it cannot be
    /// sent.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, Error> {
        self.engine.send(request).await
    }

    /// Everything a request to the service's API needs, for an HTTP stack other than
    /// reqwest (hyper, tonic, a `tower` service; see [`crate::tower`] and
    /// [`crate::middleware`] for ready-made layers): the current token (renewed first when
    /// due) and the headers the service wants beside it. Every value is marked sensitive,
    /// so that `http` and hyper print it as `Sensitive` and never index it in HTTP/2
    /// header compression. Send them only where the session's credentials may go.
    ///
    /// When the service answers 401 to a request carrying these headers, pass them to
    /// [`Self::refused`]: the next call renews first.
    ///
    /// # Errors
    /// The token could not be had (the login or refresh failed).
    pub async fn headers(&self) -> Result<http::HeaderMap, Error> {
        self.engine.headers().await
    }

    /// Reports that the service answered 401 to a request carrying `headers` (from
    /// [`Self::headers`]): the token they carry is no longer served, and the next
    /// [`Self::headers`] or [`Self::access_token`] renews first. Only the token still
    /// cached counts: reporting an older one, or the same one twice, renews at most once,
    /// as [`Self::send`] does. Resending the request, once, is the caller's choice.
    pub fn refused(&self, headers: &http::HeaderMap) {
        crate::transport::exchange::Authorizer::refused(&*self.engine, headers);
    }

    /// The service's generated client ([`crate::s7risk::Client`], …), with this session's
    /// credentials put on every request (renewed when due; on a 401 renewed once and the
    /// request retried once).
    pub fn api(&self) -> P::Client {
        <P::Client as crate::generated::Api>::with_context(
            &self.engine.endpoint.base_url,
            self.engine.endpoint.http.clone(),
            self.engine.api_context(),
        )
    }

    /// Renews now, whatever the cached token's expiry: for an application that learned
    /// the token was revoked. The token cached when called is no longer served; the
    /// renewal (a refresh where there is a refresh token, else a login) is the session's
    /// one flight, so many callers at once send one request, and all get its token.
    ///
    /// # Errors
    ///
    /// What [`Self::access_token`] fails with. A refused login is answered with its error,
    /// without a request, until [`Self::clear_failure`].
    pub async fn force_refresh(&self) -> Result<AccessToken, Error> {
        self.engine.cache().force_refresh().await
    }

    /// Forgets a refused login (credentials refused, account locked, rate limited), which
    /// the session otherwise never retries, so that the next call logs in again.
    pub fn clear_failure(&self) {
        self.engine.cache().clear_failure();
    }

    /// How many logins and refreshes this session has sent.
    pub fn request_counts(&self) -> crate::RequestCounts {
        use std::sync::atomic::Ordering::Relaxed;
        let counters = &self.engine.cache().counters;
        crate::RequestCounts {
            logins: counters.logins.load(Relaxed),
            refreshes: counters.refreshes.load(Relaxed),
        }
    }

    /// Ends the session: at the service where it has a sign-out (see the service's module),
    /// and the cached (and stored) token sets are wiped, so that the next call logs in afresh.
    ///
    /// # Errors
    ///
    /// The sign-out's failure (see the service's module for what is kept then).
    pub async fn logout(&self) -> Result<(), Error> {
        self.engine.logout().await
    }
}

impl<P: Provider> crate::TokenSource for Session<P> {
    #[inline]
    fn access_token(&self) -> impl std::future::Future<Output = Result<AccessToken, Error>> + Send {
        self.engine.cache().access_token()
    }
}

impl<P: Provider> From<Session<P>> for AnySession {
    fn from(session: Session<P>) -> Self {
        AnySession::new(session.engine)
    }
}

impl<P: Provider> std::fmt::Debug for Session<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        engine_debug(&self.engine, f)
    }
}

/// What a session's `Debug` shows: its service, base URL and token (expiry only, never the
/// secret).
fn engine_debug(engine: &Engine, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.debug_struct("Session")
        .field("service", &engine.service())
        .field("base_url", &engine.endpoint.base_url)
        .field("token", &engine.current().map(AccessToken::new))
        .finish_non_exhaustive()
}
