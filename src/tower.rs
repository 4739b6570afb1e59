//! A session as a [`tower`](https://docs.rs/tower) layer (cargo feature `tower`), for stacks
//! built on `http::Request<B>`: hyper's client, anything `tower`.
//!
//! [`AuthLayer`] adds the session's headers (see `Session::headers`) to every request and
//! tells the session what the service answered: a 401 (or, for gRPC, a `grpc-status: 16`
//! UNAUTHENTICATED in the response headers) reports the refusal through `refused`, and any
//! answer but a 401, a 410 or a 5xx counts as activity where sessions expire when idle. On such
//! a refusal the request is sent once more with renewed credentials, when it can be rebuilt:
//! by default the body type must be `Clone` (`http_body_util::Full`, `Empty`, `String`, …);
//! for bodies that cannot be cloned (tonic's, streams) use [`AuthLayer::send_once`], which
//! sends each request once and leaves the renewal to the next.
//!
//! tonic's requests carry only a path (the channel adds its endpoint), and its bodies cannot
//! be cloned: a tonic channel would take `AuthLayer::new(session).send_once()` without
//! `only_hosts`. That fit is read from tonic's types; the tests use hyper's client and plain
//! tower services, not tonic.
//!
//! weavr's step-up is not answered here (a 403 body of any type is not read): call
//! `weavr::Session::step_up` first, or use the session's `send()` or the `middleware` feature.
//!
//! ```no_run
//! # async fn run(session: tokensmith::passwordsafe::Session) -> Result<(), tower::BoxError> {
//! use http_body_util::Full;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tokensmith::tower::AuthLayer;
//!
//! let client = ServiceBuilder::new()
//!     .layer(AuthLayer::new(session))
//!     .service(Client::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>());
//! let request = http::Request::get("https://pws.example.com/BeyondTrust/api/public/v3/ManagedAccounts")
//!     .body(Full::default())?;
//! let response = client.oneshot(request).await?;
//! # let _ = response;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, Request, Response};

use crate::any_session::AnySession;
use crate::error::Error;
use crate::hosts::{secure_enough, HostPattern};
use crate::transport::{report, Authorizer};

/// The error of an [`AuthService`]: the inner service's error, or a [`crate::Error`] (the
/// credentials could not be had, or must not go where the request goes), boxed as tower's
/// `BoxError` is; `downcast_ref::<tokensmith::Error>()` tells them apart.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// On a refused request, send it once more with renewed credentials (the body must be
/// `Clone`). The default of [`AuthLayer`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Resend;

/// Send each request once, whatever the answer (for bodies that cannot be cloned); a refusal
/// makes the next request renew first. See [`AuthLayer::send_once`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SendOnce;

/// A [`tower_layer::Layer`] that authorizes requests with a session (any service's `Session`,
/// or an [`AnySession`]) and reports the answers to it. See the [module](self) documentation.
pub struct AuthLayer<M = Resend> {
    session: AnySession,
    auth: Arc<dyn Authorizer>,
    hosts: Option<Arc<[HostPattern]>>,
    mode: PhantomData<fn() -> M>,
}

impl<M> Clone for AuthLayer<M> {
    fn clone(&self) -> Self {
        Self {
            session: self.session.clone(),
            auth: self.auth.clone(),
            hosts: self.hosts.clone(),
            mode: PhantomData,
        }
    }
}

impl<M> std::fmt::Debug for AuthLayer<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthLayer")
            .field("session", &self.session)
            .field("only_hosts", &self.hosts)
            .field("mode", &std::any::type_name::<M>())
            .finish()
    }
}

impl AuthLayer {
    /// A layer for `session` (any service's `Session`, or an [`AnySession`]) that resends a
    /// refused request once (bodies must be `Clone`; see [`Self::send_once`]), putting the
    /// credentials on requests to every host, but never over plain HTTP to a host other than a
    /// loopback address. A request whose URI has no scheme or host (tonic's carry only a path;
    /// the channel adds its endpoint) gets them, and its channel's endpoint decides the
    /// transport.
    pub fn new(session: impl Into<AnySession>) -> Self {
        let session = session.into();
        Self {
            auth: session.authorizer(),
            session,
            hosts: None,
            mode: PhantomData,
        }
    }

    /// Sends each request once, for bodies that cannot be cloned (tonic's, streams): a
    /// refusal is reported, the answer returned as it is, and the next request renews first.
    pub fn send_once(self) -> AuthLayer<SendOnce> {
        AuthLayer {
            session: self.session,
            auth: self.auth,
            hosts: self.hosts,
            mode: PhantomData,
        }
    }
}

impl<M> AuthLayer<M> {
    /// Puts the credentials only on requests to these hosts; others pass through untouched
    /// (a request with no host in its URI matches none). Entries are as for
    /// `middleware::AuthMiddleware::only_hosts`: a host (any port), or `host:port` (that port;
    /// a URI without a port has its scheme's default), names matched case-insensitively and
    /// exactly.
    pub fn only_hosts<I, S>(mut self, hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.hosts = Some(HostPattern::list(hosts));
        self
    }

    /// The session the layer authorizes with.
    pub fn session(&self) -> &AnySession {
        &self.session
    }
}

impl<S, M> tower_layer::Layer<S> for AuthLayer<M> {
    type Service = AuthService<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`AuthLayer`] makes of an inner service.
pub struct AuthService<S, M = Resend> {
    inner: S,
    layer: AuthLayer<M>,
}

impl<S: Clone, M> Clone for AuthService<S, M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: std::fmt::Debug, M> std::fmt::Debug for AuthService<S, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

/// Whether a request to `uri` gets the credentials, or the reason it must not be sent.
fn wants_credentials(
    hosts: Option<&[HostPattern]>,
    session: &AnySession,
    uri: &http::Uri,
) -> Result<bool, Error> {
    let host = uri.host();
    if let Some(hosts) = hosts {
        let port = uri.port_u16().or(match uri.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        });
        let Some(host) = host else {
            return Ok(false);
        };
        if !hosts.iter().any(|pattern| pattern.matches(host, port)) {
            return Ok(false);
        }
    }
    if let (Some(scheme), Some(host)) = (uri.scheme_str(), host) {
        if !secure_enough(scheme, host) {
            return Err(Error::configuration(
                Some(session.service()),
                "refusing to send credentials over plain HTTP to a host other than a loopback address",
            ));
        }
    }
    Ok(true)
}

/// The status the session hears of: a gRPC UNAUTHENTICATED (`grpc-status: 16` in the headers
/// of a trailers-only answer) is a 401 in gRPC's words.
fn effective_status(status: http::StatusCode, headers: &HeaderMap) -> u16 {
    if headers
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == b"16")
    {
        401
    } else {
        status.as_u16()
    }
}

/// Sends `request` (credentials already on it), reports the answer, and on a refusal sends
/// `spare` once with renewed credentials.
async fn run<S, B, R>(
    auth: Arc<dyn Authorizer>,
    mut inner: S,
    request: Request<B>,
    spare: Option<Request<B>>,
) -> Result<Response<R>, BoxError>
where
    S: tower_service::Service<Request<B>, Response = Response<R>>,
    S::Error: Into<BoxError>,
{
    let used = request.headers().clone();
    let sent_at = auth.now();
    let response = inner.call(request).await.map_err(Into::into)?;
    let status = effective_status(response.status(), response.headers());
    report(auth.as_ref(), status, &used, sent_at);
    let Some(mut retry) = spare.filter(|_| status == 401) else {
        return Ok(response);
    };
    if auth.authorize(retry.headers_mut()).await.is_err() {
        return Ok(response);
    }
    drop(response);
    std::future::poll_fn(|cx| inner.poll_ready(cx))
        .await
        .map_err(Into::into)?;
    let used = retry.headers().clone();
    let sent_at = auth.now();
    let response = inner.call(retry).await.map_err(Into::into)?;
    let status = effective_status(response.status(), response.headers());
    report(auth.as_ref(), status, &used, sent_at);
    Ok(response)
}

/// What both modes do before [`run`]: the host rules, then the credentials.
async fn authorized<B>(
    layer: &AuthLayer<impl Sized>,
    mut request: Request<B>,
) -> Result<(Request<B>, bool), BoxError> {
    if !wants_credentials(layer.hosts.as_deref(), &layer.session, request.uri())? {
        return Ok((request, false));
    }
    layer.auth.authorize(request.headers_mut()).await?;
    Ok((request, true))
}

/// A copy of `request` to send again: its head and a clone of its body.
fn copy<B: Clone>(request: &Request<B>) -> Request<B> {
    let mut copy = Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    copy
}

/// The ready inner service for this call, leaving a clone in its place (tower's advice for
/// services whose futures outlive `call`'s borrow).
fn take_ready<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    std::mem::replace(inner, clone)
}

impl<S, B, R> tower_service::Service<Request<B>> for AuthService<S, Resend>
where
    S: tower_service::Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Clone + Send + 'static,
    R: Send + 'static,
{
    type Response = Response<R>;
    type Error = BoxError;
    type Future = BoxFuture<Response<R>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let mut inner = take_ready(&mut self.inner);
        let layer = self.layer.clone();
        Box::pin(async move {
            let (request, wanted) = authorized(&layer, request).await?;
            if !wanted {
                return inner.call(request).await.map_err(Into::into);
            }
            let spare = copy(&request);
            run(layer.auth, inner, request, Some(spare)).await
        })
    }
}

impl<S, B, R> tower_service::Service<Request<B>> for AuthService<S, SendOnce>
where
    S: tower_service::Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Send + 'static,
    R: Send + 'static,
{
    type Response = Response<R>;
    type Error = BoxError;
    type Future = BoxFuture<Response<R>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let mut inner = take_ready(&mut self.inner);
        let layer = self.layer.clone();
        Box::pin(async move {
            let (request, wanted) = authorized(&layer, request).await?;
            if !wanted {
                return inner.call(request).await.map_err(Into::into);
            }
            run(layer.auth, inner, request, None).await
        })
    }
}
