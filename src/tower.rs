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
//! The credentials go only where the session's may (its base URL's origin, the vendor's
//! documented hosts, the builder's `credential_hosts`, or [`AuthLayer::only_hosts`]), never
//! over plain HTTP to a host that is not a loopback address (unless the session allows it):
//! requests elsewhere pass through untouched. A request whose URI has no scheme or host
//! (tonic's carry only a path: the channel adds its endpoint) cannot be judged, so it gets no
//! credentials unless the layer is told where such requests go
//! ([`AuthLayer::relative_to`]). tonic's bodies cannot be cloned: a tonic channel would take
//! `AuthLayer::new(session).relative_to("https://…").send_once()`. That fit is read from
//! tonic's types; the tests use hyper's client and plain tower services, not tonic.
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

use crate::session::AnySession;
use crate::transport::adapter::Adapter;
use crate::transport::exchange::Sender;
use crate::transport::rules::Verdict;

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

/// What a mode ([`Resend`], [`SendOnce`]) keeps of a request to send again after a refusal.
/// Sealed: the two modes are the only ones.
pub trait Mode<B>: sealed::Sealed + 'static {
    /// A copy of `request` to resend, or none.
    fn spare(request: &Request<B>) -> Option<Request<B>>;
}

impl<B: Clone> Mode<B> for Resend {
    fn spare(request: &Request<B>) -> Option<Request<B>> {
        copy(request)
    }
}

impl<B> Mode<B> for SendOnce {
    fn spare(_: &Request<B>) -> Option<Request<B>> {
        None
    }
}

mod sealed {
    /// Keeps [`super::Mode`] to this module's two modes.
    pub trait Sealed {}
    impl Sealed for super::Resend {}
    impl Sealed for super::SendOnce {}
}

/// A [`tower_layer::Layer`] that authorizes requests with a session (any service's `Session`,
/// or an [`AnySession`]) and reports the answers to it. See the [module](self) documentation.
pub struct AuthLayer<M = Resend> {
    adapter: Adapter,
    /// Where a request URI without scheme and host goes: `(scheme, host, port)`.
    relative: Option<Arc<(String, String, Option<u16>)>>,
    mode: PhantomData<fn() -> M>,
}

impl<M> Clone for AuthLayer<M> {
    fn clone(&self) -> Self {
        Self {
            adapter: self.adapter.clone(),
            relative: self.relative.clone(),
            mode: PhantomData,
        }
    }
}

impl<M> std::fmt::Debug for AuthLayer<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.adapter
            .debug(f, "AuthLayer")
            .field("relative_to", &self.relative)
            .field("mode", &std::any::type_name::<M>())
            .finish()
    }
}

impl AuthLayer {
    /// A layer for `session` (any service's `Session`, or an [`AnySession`]) that resends a
    /// refused request once (bodies must be `Clone`; see [`Self::send_once`]), putting the
    /// credentials on requests to the hosts the session's credentials are for (see the
    /// [module](self) documentation).
    pub fn new(session: impl Into<AnySession>) -> Self {
        Self {
            adapter: Adapter::new(session.into()),
            relative: None,
            mode: PhantomData,
        }
    }

    /// Sends each request once, for bodies that cannot be cloned (tonic's, streams): a
    /// refusal is reported, the answer returned as it is, and the next request renews first.
    pub fn send_once(self) -> AuthLayer<SendOnce> {
        AuthLayer {
            adapter: self.adapter,
            relative: self.relative,
            mode: PhantomData,
        }
    }
}

impl<M> AuthLayer<M> {
    /// Puts the credentials only on requests to these hosts, in place of the session's own
    /// list; others pass through untouched. Entries are as for
    /// `middleware::AuthMiddleware::only_hosts`: a host (any port), `host:port` (that port; a
    /// URI without a port has its scheme's default), or `*.domain`, names matched
    /// case-insensitively and exactly.
    pub fn only_hosts(mut self, hosts: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        self.adapter.only_hosts(hosts);
        self
    }

    /// Where requests whose URI has no scheme or host go (a tonic channel's endpoint, say:
    /// `https://grpc.example.com`): they are judged as requests to that origin, and get the
    /// credentials only when it is one the credentials are for, and never over plain HTTP to a
    /// host that is not loopback. Without it (or with an `origin` that is not an
    /// `scheme://host[:port]`), such requests get no credentials.
    pub fn relative_to(mut self, origin: &str) -> Self {
        self.relative = url::Url::parse(origin).ok().and_then(|url| {
            let host = url.host_str()?.to_owned();
            Some(Arc::new((url.scheme().to_owned(), host, url.port())))
        });
        self
    }

    /// The session the layer authorizes with.
    pub fn session(&self) -> &AnySession {
        self.adapter.session()
    }

    /// What the rule says of a request to `uri`.
    fn judge(&self, uri: &http::Uri) -> Verdict {
        match (uri.scheme_str(), uri.host(), &self.relative) {
            (None, None, Some(relative)) => {
                let (scheme, host, port) = &**relative;
                self.adapter.scope().judge(Some(scheme), Some(host), *port)
            }
            (scheme, host, _) => self.adapter.scope().judge(scheme, host, uri.port_u16()),
        }
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

/// What an [`AuthService`] call returns.
type ResponseFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

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

/// A copy of `request` to send again: its head and a clone of its body.
fn copy<B: Clone>(request: &Request<B>) -> Option<Request<B>> {
    let mut copy = Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    Some(copy)
}

/// What the layer needs of the service it wraps, besides answering `http::Response`s: one
/// bound, for the impls and `call` alike.
pub trait Downstream<B>:
    tower_service::Service<Request<B>, Future: Send, Error: Into<BoxError>> + Send
{
}

impl<T, B> Downstream<B> for T where
    T: tower_service::Service<Request<B>, Future: Send, Error: Into<BoxError>> + Send
{
}

/// The inner service as [`exchange`] sends through it.
struct Inner<S, B> {
    service: S,
    /// The service was made ready by `poll_ready` for the first send.
    ready: bool,
    spare: fn(&Request<B>) -> Option<Request<B>>,
}

impl<S, B: Send, R: Send> Sender for Inner<S, B>
where
    S: Downstream<B> + tower_service::Service<Request<B>, Response = Response<R>>,
{
    type Request = Request<B>;
    type Response = Response<R>;
    type Error = BoxError;

    fn headers(request: &Request<B>) -> &HeaderMap {
        request.headers()
    }

    fn headers_mut(request: &mut Request<B>) -> &mut HeaderMap {
        request.headers_mut()
    }

    fn spare(&self, request: &Request<B>) -> Option<Request<B>> {
        (self.spare)(request)
    }

    fn status(response: &Response<R>) -> u16 {
        effective_status(response.status(), response.headers())
    }

    async fn send(&mut self, request: Request<B>) -> Result<Response<R>, BoxError> {
        if !std::mem::replace(&mut self.ready, false) {
            std::future::poll_fn(|cx| self.service.poll_ready(cx))
                .await
                .map_err(Into::into)?;
        }
        self.service.call(request).await.map_err(Into::into)
    }

    /// A body of any type cannot be read here: no 403 is cured (weavr's step-up is the
    /// session's `step_up()` or its `send()`).
    async fn read(
        &mut self,
        response: Response<R>,
        _cap: Option<usize>,
    ) -> Result<(Response<R>, Option<bytes::Bytes>), BoxError> {
        Ok((response, None))
    }
}

/// What every mode does: the host rule, then the credentials and the one exchange.
async fn call<S, B, R, M>(
    layer: AuthLayer<M>,
    service: S,
    request: Request<B>,
) -> Result<Response<R>, BoxError>
where
    S: Downstream<B> + tower_service::Service<Request<B>, Response = Response<R>>,
    B: Send,
    R: Send,
    M: Mode<B>,
{
    let mut inner = Inner {
        service,
        ready: true,
        spare: M::spare,
    };
    let admitted = layer
        .adapter
        .admit(layer.judge(request.uri()), request.uri().host());
    let fail = |error: crate::Error| -> BoxError { error.into() };
    layer
        .adapter
        .send(admitted, request, &mut inner, fail)
        .await
}

/// The ready inner service for this call, leaving a clone in its place (tower's advice for
/// services whose futures outlive `call`'s borrow).
fn take_ready<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    std::mem::replace(inner, clone)
}

impl<S, B, R, M> tower_service::Service<Request<B>> for AuthService<S, M>
where
    S: Downstream<B> + tower_service::Service<Request<B>, Response = Response<R>>,
    S: Clone + 'static,
    B: Send + 'static,
    R: Send + 'static,
    M: Mode<B>,
{
    type Response = Response<R>;
    type Error = BoxError;
    type Future = ResponseFuture<Response<R>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let inner = take_ready(&mut self.inner);
        Box::pin(call(self.layer.clone(), inner, request))
    }
}
