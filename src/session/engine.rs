//! The engine behind every session: the token cache, the endpoint, and the service, joined.
//! Compiled once for all services (the service is behind `dyn`), so that every session path
//! (`access_token`, `send`, `api()`, the middleware, the tower layer) runs the same code.

use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use reqwest::header::HeaderMap;

use crate::cache::{Cache, Owned, TokenFuture};
use crate::clock::Clock;
use crate::error::{Error, ErrorKind, Service};
use crate::expiry::RefreshPolicy;
use crate::provider::{traits_of, Ending, Erased, Provider, Tokens};
use crate::store::{StoreKey, TokenStore};
use crate::token::{AccessToken, Entry};
use crate::transport::endpoint::Endpoint;
use crate::transport::exchange::{Authorizer, BoxFuture};
use crate::transport::Context;

/// A session's shared state: every clone of a session holds one `Arc` of it.
pub(crate) struct Engine {
    provider: Arc<dyn Erased>,
    /// The session's cache: dropped with the engine, which closes it (its renewal in the air
    /// and its background task stop).
    cache: Owned,
    tokens: Tokens,
    pub(crate) endpoint: Endpoint,
    /// The service's constants the request path reads.
    sliding: bool,
    ends_session: &'static [&'static str],
    cures_forbidden: bool,
    keeps_session_on_failed_logout: bool,
}

/// How the engine keeps its tokens, as the builder was told.
pub(crate) struct Keeping {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) policy: RefreshPolicy,
    pub(crate) store: Option<Arc<dyn TokenStore>>,
    pub(crate) background_refresh: bool,
}

impl Engine {
    pub(crate) fn new<P: Provider>(
        provider: Arc<P>,
        endpoint: Endpoint,
        keeping: Keeping,
    ) -> Arc<Self> {
        let key = StoreKey::new(P::SERVICE, &endpoint.base_url, &provider.store_identity());
        let cache = Cache::owned(
            provider.clone(),
            traits_of::<P>(),
            keeping.clock,
            keeping.policy,
            |mut cache| {
                if let Some(store) = keeping.store {
                    cache = cache.with_store(store, key);
                }
                if keeping.background_refresh {
                    cache = cache.with_background_refresh();
                }
                cache
            },
        );
        let weak_provider: std::sync::Weak<dyn std::any::Any + Send + Sync> =
            Arc::downgrade(&provider) as _;
        Arc::new_cyclic(|weak: &std::sync::Weak<Self>| {
            let session: std::sync::Weak<dyn Authorizer> = weak.clone();
            Self {
                provider,
                tokens: Tokens::new(cache.share(), session, weak_provider),
                cache,
                endpoint,
                sliding: P::SLIDING.is_some(),
                ends_session: P::ENDS_SESSION,
                cures_forbidden: P::CURES_FORBIDDEN,
                keeps_session_on_failed_logout: P::KEEPS_SESSION_ON_FAILED_LOGOUT,
            }
        })
    }

    pub(crate) fn cache(&self) -> &Cache {
        &self.cache
    }

    /// What services are offered of the session's tokens.
    pub(crate) fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// The service this session talks to.
    pub(crate) fn service(&self) -> Service {
        self.endpoint.service
    }

    /// Sends a request of the caller's with the session's credentials (see `Session::send`).
    pub(crate) async fn send(
        self: &Arc<Self>,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Error> {
        let auth: Arc<dyn Authorizer> = self.clone();
        self.endpoint.send(auth, request).await
    }

    /// A request of the caller's with the session's credentials on it (see
    /// `Session::authorize`).
    ///
    /// The request is built and checked against the scope when called (a check: no login), so
    /// that the future holds it once instead of each layer's future moving the builder down;
    /// the token comes from the cache's own future, not the boxed one of
    /// `Authorizer::authorize`; and the credentials go into the request's own headers (a map
    /// of ours merged in would cost an allocation).
    pub(crate) fn authorize_request(
        &self,
        request: reqwest::RequestBuilder,
    ) -> AuthorizeRequest<'_> {
        AuthorizeRequest {
            engine: self,
            // Built where the future keeps it: the build's result is not moved again.
            request: Some(request.build_split().1),
            token: self.cache().access_token(),
        }
    }

    /// What a request to the service needs (see `Session::headers`), every value marked
    /// sensitive.
    pub(crate) async fn headers(&self) -> Result<HeaderMap, Error> {
        let mut headers = HeaderMap::new();
        self.authorize_headers(&mut headers).await?;
        // An `Origin` is no secret, but the map goes to stacks that log headers: one rule for all.
        for value in headers.values_mut() {
            value.set_sensitive(true);
        }
        Ok(headers)
    }

    async fn authorize_headers(&self, headers: &mut HeaderMap) -> Result<(), Error> {
        let token = self.cache().access_token().await?;
        self.provider.attach(token.entry(), headers);
        Ok(())
    }

    /// The context of the session's `api()` clients: every request authorized by the session.
    pub(crate) fn api_context(self: &Arc<Self>) -> Context {
        self.endpoint
            .context(Context::new().with_authorizer(self.clone()))
    }

    /// Ends the session: at the service where it has a sign-out, and locally in every case but
    /// one (a service whose failed sign-out leaves the session open keeps it then).
    pub(crate) async fn logout(&self) -> Result<(), Error> {
        let ending = self.ending().await;
        if !self.keeps_session_on_failed_logout {
            self.forget().await;
        }
        let outcome = match &ending {
            Some(ending) => self.provider.log_out(&self.tokens, ending).await,
            None => Ok(()),
        };
        if self.keeps_session_on_failed_logout {
            match &outcome {
                Err(error) if error.kind() != ErrorKind::TokenRejected => {}
                _ => self.forget().await,
            }
        }
        outcome
    }

    /// The session a logout ends: the valid token set cached, else the one stored (a logout in a
    /// new process ends the session a previous one started), else a cached set whose access
    /// token expired but whose refresh token still holds the session open at the service.
    async fn ending(&self) -> Option<Ending> {
        let cache = self.cache();
        if let Some(entry) = cache.current_or_stored().await {
            return Some(Ending { entry, valid: true });
        }
        let now = cache.clock.now();
        cache
            .current()
            .filter(|entry| entry.refresh_usable(now, None))
            .map(|entry| Ending {
                entry,
                valid: false,
            })
    }

    /// Ends the session locally: the cached and stored token sets are gone.
    pub(crate) async fn forget(&self) {
        self.cache().wipe();
        self.cache().forget_stored().await;
    }

    /// The token set cached now, if any.
    pub(crate) fn current(&self) -> Option<Arc<Entry>> {
        self.cache().current()
    }

    /// A valid access token.
    pub(crate) async fn access_token(&self) -> Result<AccessToken, Error> {
        self.cache().access_token().await
    }
}

/// The future of [`Engine::authorize_request`]: the request as the caller's builder built it,
/// and the cache's token future, side by side.
///
/// Written by hand rather than as an `async` block: the block kept the request twice (the
/// captured `Result` and the request taken out of it), a 600-byte future moved whole into the
/// caller's, and moved the request out and back in on its way. Here the request stays where
/// the build put it until it leaves in the answer, and the credentials are written into it
/// there: every copy of a 264-byte request is a `memcpy` that raw reqwest does not make.
pub(crate) struct AuthorizeRequest<'a> {
    engine: &'a Engine,
    /// `None` once the future has completed.
    request: Option<Result<reqwest::Request, reqwest::Error>>,
    token: TokenFuture<'a>,
}

impl std::future::Future for AuthorizeRequest<'_> {
    type Output = Result<reqwest::RequestBuilder, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // The scope's rule, before the token is asked for: no login for a request that may not
        // carry it. Checked at every poll (the rule reads only the request's URL): a poll that
        // waits on a renewal is the rare one.
        let refused = match &this.request {
            Some(Ok(request)) => this.engine.endpoint.check(request).err(),
            Some(Err(_)) => match this.request.take() {
                Some(Err(error)) => Some(this.engine.endpoint.unbuilt(error)),
                _ => unreachable!("matched above"),
            },
            None => panic!("`authorize()` polled after it completed"),
        };
        if let Some(error) = refused {
            this.request = None;
            return Poll::Ready(Err(error));
        }
        let token = match Pin::new(&mut this.token).poll(cx) {
            Poll::Ready(Ok(token)) => token,
            Poll::Ready(Err(error)) => {
                this.request = None;
                return Poll::Ready(Err(error));
            }
            Poll::Pending => return Poll::Pending,
        };
        // Written where the request lies, then moved once, into the answer.
        let Some(Ok(request)) = &mut this.request else {
            unreachable!("checked above");
        };
        this.engine
            .provider
            .attach(token.entry(), request.headers_mut());
        match this.request.take() {
            Some(Ok(request)) => Poll::Ready(Ok(this.engine.endpoint.direct(request))),
            _ => unreachable!("checked above"),
        }
    }
}

impl Authorizer for Engine {
    fn authorize<'a>(&'a self, headers: &'a mut HeaderMap) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.authorize_headers(headers))
    }

    fn refused(&self, used: &HeaderMap) {
        if let Some(entry) = self.cache().current() {
            if self.provider.carries(&entry, used) {
                self.cache().invalidate(&entry.secret);
            }
        }
    }

    fn accepted(&self, used: &HeaderMap, sent_at: Instant) {
        if !self.sliding {
            return;
        }
        if let Some(entry) = self.cache().current() {
            if self.provider.carries(&entry, used) {
                entry.slide(sent_at);
            }
        }
    }

    fn now(&self) -> Instant {
        self.cache().clock.now()
    }

    fn cures_forbidden(&self) -> bool {
        self.cures_forbidden
    }

    fn cure<'a>(&'a self, body: &'a [u8]) -> BoxFuture<'a, bool> {
        self.provider.cure(&self.tokens, body)
    }

    fn uncured(&self, body: &[u8], used: &HeaderMap) {
        self.provider.uncured(&self.tokens, body, used);
    }

    fn ends_session(&self, operation_id: &str) -> bool {
        self.ends_session.contains(&operation_id)
    }

    fn ended<'a>(&'a self, used: &'a HeaderMap) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let ours = self
                .cache()
                .current()
                .is_some_and(|entry| self.provider.carries(&entry, used));
            if ours {
                self.forget().await;
            }
        })
    }
}
