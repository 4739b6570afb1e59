//! What all five sessions share: configuration, the HTTP endpoint, and the core that joins the
//! token cache to the generated clients.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};

use crate::cache::{Cache, Provider};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Service};
use crate::expiry::RefreshPolicy;
use crate::response::{map_api_error, Classify, ErrorBody, Probe};
use crate::retry::RetryPolicy;
use crate::secret::SecretString;
use crate::store::{StoreKey, TokenStore};
use crate::token::Entry;
use crate::transport::{Authorizer, Context};

/// The default timeout for connecting to a service.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default timeout for a whole request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The `User-Agent` sent by the default HTTP client.
pub const USER_AGENT: &str = concat!("tokensmith/", env!("CARGO_PKG_VERSION"));

/// Settings every session builder has.
#[derive(Debug, Default)]
pub(crate) struct Common {
    pub(crate) base_url: Option<String>,
    pub(crate) http: Option<crate::HttpClientSource>,
    pub(crate) clock: Option<Arc<dyn Clock>>,
    pub(crate) refresh: RefreshPolicy,
    pub(crate) allow_plain_http: bool,
    pub(crate) retry: RetryPolicy,
    pub(crate) max_body: Option<usize>,
    pub(crate) store: Option<Arc<dyn TokenStore>>,
    pub(crate) background_refresh: bool,
}

/// Where a session sends its requests, and with what.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// The session's client; it follows no redirects (see `crate::HttpClient`), so the
    /// caller's requests given to `send()` and `authorize()` go out through it too, whatever
    /// client built them.
    pub(crate) http: reqwest::Client,
    pub(crate) base_url: String,
    pub(crate) retry: RetryPolicy,
    pub(crate) max_body: usize,
    pub(crate) store: Option<Arc<dyn TokenStore>>,
    /// Plain `http` to a host that is not loopback was allowed (`danger_accept_plain_http`).
    pub(crate) allow_plain_http: bool,
    /// The session's clock: the retry loop and the error mapping read the time from it, and
    /// the retry loop waits on it.
    pub(crate) clock: Arc<dyn Clock>,
    /// Renewals run in a task of the session's own while the token is valid.
    pub(crate) background_refresh: bool,
}

/// A generated client, as [`Endpoint::call`] builds one.
pub(crate) trait Api: Sized {
    /// The service it calls.
    const SERVICE: Service;
    /// The client for `base_url`, sending with `http` and `context`.
    fn with_context(base_url: &str, http: reqwest::Client, context: Context) -> Self;
}

impl Endpoint {
    /// Calls one generated operation on the session's own behalf (a login, a refresh, a
    /// password change): a client with `context` (plus this endpoint's limits, clock and a
    /// probe recording the answer), `operation` on it, and a failure mapped by `classify` into
    /// the crate's [`Error`]. Every adapter's own calls take this one path; they hold only what
    /// their service does differently (the body, the headers, the replay class, the
    /// classification).
    pub(crate) async fn call<C, T, E, Op, Fut>(
        &self,
        context: Context,
        classify: Classify<'_>,
        operation: Op,
    ) -> Result<T, Error>
    where
        C: Api,
        E: ErrorBody,
        Op: FnOnce(C) -> Fut,
        Fut: Future<Output = Result<T, progenitor_client::Error<E>>>,
    {
        let sent_wall = self.clock.system_now();
        let probe = Arc::new(Probe::default());
        let context = self.context(context).with_service(C::SERVICE);
        let metered = crate::telemetry::Metered::start(context.tag(), self.clock.as_ref());
        let client = C::with_context(
            &self.base_url,
            self.http.clone(),
            context.with_probe(probe.clone()),
        );
        let result = match operation(client).await {
            Ok(response) => Ok(response),
            Err(e) => Err(map_api_error(C::SERVICE, e, &probe, sent_wall, classify).await),
        };
        metered.finish(self.clock.as_ref(), result.as_ref().err().map(Error::kind));
        result
    }

    /// `context` with this endpoint's retry policy, body cap and clock.
    pub(crate) fn context(&self, context: Context) -> Context {
        context
            .with_limits(&self.retry, self.max_body)
            .with_clock(self.clock.clone())
    }
}

impl Common {
    /// Validates the settings; `default_url` is the service's production server.
    pub(crate) fn finish(
        self,
        service: Service,
        default_url: &str,
    ) -> Result<(Endpoint, Arc<dyn Clock>, RefreshPolicy), Error> {
        let base_url = self.base_url.unwrap_or_else(|| default_url.to_owned());
        let parsed = url::Url::parse(&base_url).map_err(|e| {
            Error::configuration(
                Some(service),
                // Text that does not parse may still hold a password before an `@`.
                if base_url.contains('@') {
                    format!("the base URL is not a URL: {e}")
                } else {
                    format!("base URL {base_url:?} is not a URL: {e}")
                },
            )
        })?;
        // Refused before any message below quotes the URL: it would print the password.
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(Error::configuration(
                Some(service),
                "the base URL carries a username or password: credentials go in the builder's \
                 setters, never in a URL (it would be logged, and sent to whatever it points to)",
            ));
        }
        match check_scheme(&parsed, self.allow_plain_http) {
            Ok(()) => {}
            Err(Refused::PlainHttp) => {
                return Err(Error::configuration(
                    Some(service),
                    format!(
                        "base URL {base_url:?} is plain HTTP: credentials would travel unencrypted \
                         (allowed only for loopback addresses, or with danger_accept_plain_http)"
                    ),
                ))
            }
            Err(Refused::Scheme) => {
                return Err(Error::configuration(
                    Some(service),
                    format!(
                        "base URL {base_url:?} has scheme {:?}; https is required",
                        parsed.scheme()
                    ),
                ))
            }
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(Error::configuration(
                Some(service),
                format!("base URL {base_url:?} must not have a query or fragment"),
            ));
        }
        let http = match self.http {
            Some(source) => source.into_client(service)?,
            None => default_http_client(service)?,
        };
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let endpoint = Endpoint {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            retry: self.retry,
            max_body: self
                .max_body
                .unwrap_or(crate::transport::DEFAULT_MAX_RESPONSE_BYTES),
            store: self.store,
            allow_plain_http: self.allow_plain_http,
            clock: clock.clone(),
            background_refresh: self.background_refresh,
        };
        Ok((endpoint, clock, self.refresh))
    }
}

/// Why a URL may not carry credentials.
enum Refused {
    /// Plain `http` to a host that is not loopback.
    PlainHttp,
    /// Neither `http` nor `https`.
    Scheme,
}

/// Whether credentials may travel to `url`: `https`, or plain `http` to a loopback address
/// (or anywhere, when `allow_plain_http`).
fn check_scheme(url: &url::Url, allow_plain_http: bool) -> Result<(), Refused> {
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback || allow_plain_http => Ok(()),
        "http" => Err(Refused::PlainHttp),
        _ => Err(Refused::Scheme),
    }
}

impl Endpoint {
    /// Refuses to put credentials on a request of the caller's to `url` that would carry them
    /// unencrypted, by the same rule as base URLs. The URL is not quoted: its query may hold
    /// anything.
    pub(crate) fn check_request_url(&self, service: Service, url: &url::Url) -> Result<(), Error> {
        match check_scheme(url, self.allow_plain_http) {
            Ok(()) => Ok(()),
            Err(Refused::PlainHttp) => Err(Error::configuration(
                Some(service),
                "the request's URL is plain HTTP to a host that is not loopback: the session \
                 does not put its credentials on it (danger_accept_plain_http allows it)",
            )),
            Err(Refused::Scheme) => Err(Error::configuration(
                Some(service),
                format!(
                    "the request's URL has scheme {:?}: the session puts its credentials only \
                     on https (or loopback http) requests",
                    url.scheme()
                ),
            )),
        }
    }
}

fn default_http_client(service: Service) -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .connect_timeout(DEFAULT_CONNECT_TIMEOUT)
        .timeout(DEFAULT_REQUEST_TIMEOUT)
        // A redirect on an auth endpoint would re-send credentials somewhere unvetted.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT)
        .build()
        .map_err(|e| {
            Error::configuration(Some(service), "cannot build the HTTP client").with_source(e)
        })
}

/// Rejects an empty credential at build time rather than at the first login.
pub(crate) fn require(
    service: Service,
    name: &str,
    value: Option<SecretString>,
) -> Result<SecretString, Error> {
    match value {
        Some(v) if !v.expose_secret().trim().is_empty() => Ok(v),
        Some(_) => Err(Error::configuration(
            Some(service),
            format!("{name} is empty"),
        )),
        None => Err(Error::configuration(
            Some(service),
            format!("{name} is required"),
        )),
    }
}

/// Same as [`require`], for values that are not secret.
pub(crate) fn require_plain(
    service: Service,
    name: &str,
    value: Option<String>,
) -> Result<String, Error> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v),
        Some(_) => Err(Error::configuration(
            Some(service),
            format!("{name} is empty"),
        )),
        None => Err(Error::configuration(
            Some(service),
            format!("{name} is required"),
        )),
    }
}

/// Bytes that are zeroized when the last [`bytes::Bytes`] sharing them is dropped.
struct ZeroizingBytes(zeroize::Zeroizing<Vec<u8>>);

impl AsRef<[u8]> for ZeroizingBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// A bearer `Authorization` value, marked sensitive. Its bytes are shared by every clone (a
/// clone costs a reference count) and zeroized when the last one is dropped.
pub(crate) fn bearer(token: &SecretString) -> HeaderValue {
    let secret = token.expose_secret();
    let mut text = zeroize::Zeroizing::new(Vec::with_capacity(7 + secret.len()));
    text.extend_from_slice(b"Bearer ");
    text.extend_from_slice(secret.as_bytes());
    let mut value = HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(ZeroizingBytes(text)))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid-token"));
    value.set_sensitive(true);
    value
}

/// How a service puts a cached token on a request.
pub(crate) trait Attach: Provider {
    /// Adds the token (and whatever else the service needs, like `api-key`) to `headers`.
    fn attach(&self, entry: &Entry, headers: &mut HeaderMap) {
        headers.insert(AUTHORIZATION, entry.bearer());
    }

    /// Whether `headers` carry `entry`'s token.
    fn carries(&self, entry: &Entry, headers: &HeaderMap) -> bool {
        headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| t == entry.secret.expose_secret())
    }
}

/// A caller's request builder as its client and the request, or the reason it cannot be built.
fn split(
    service: Service,
    request: reqwest::RequestBuilder,
) -> Result<(reqwest::Client, reqwest::Request), Error> {
    let (client, request) = request.build_split();
    let request = request.map_err(|e| {
        Error::configuration(Some(service), "the request could not be built")
            .with_source(e.without_url())
    })?;
    Ok((client, request))
}

/// Cures a 403 where the service says how (weavr: step up, or exchange for an access token).
pub(crate) trait Forbidden: Send + Sync + 'static {
    /// Cures the refusal described by `body`; true when the request is worth sending again.
    fn cure<'a>(
        &'a self,
        body: &'a [u8],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>>;

    /// The retry after a cure, sent with the credentials in `used`, was refused again with
    /// `body`: the cure did not take.
    fn uncured(&self, _body: &[u8], _used: &HeaderMap) {}
}

/// A session's shared state: the cache and the endpoint its `api()` clients use.
pub(crate) struct Core<P> {
    /// What the service does differently; the cache holds it too.
    pub(crate) provider: Arc<P>,
    /// The session's cache; its tasks (a renewal in the air, the background renewal) stop
    /// when this is dropped.
    pub(crate) cache: crate::cache::Owned,
    pub(crate) endpoint: Endpoint,
    pub(crate) forbidden: Option<Arc<dyn Forbidden>>,
}

impl<P: Attach> Core<P> {
    pub(crate) fn new(
        provider: P,
        endpoint: Endpoint,
        clock: Arc<dyn Clock>,
        policy: RefreshPolicy,
    ) -> Self {
        let key = StoreKey::new(P::SERVICE, &endpoint.base_url, &provider.store_identity());
        let provider = Arc::new(provider);
        let cache = Cache::owned(provider.clone(), clock, policy, |mut cache| {
            if let Some(store) = endpoint.store.clone() {
                cache = cache.with_store(store, key);
            }
            if endpoint.background_refresh {
                cache = cache.with_background_refresh();
            }
            cache
        });
        Self {
            provider,
            cache,
            endpoint,
            forbidden: None,
        }
    }

    /// Ends the session locally: the cached and stored token sets are gone.
    pub(crate) async fn forget(&self) {
        self.cache.wipe();
        self.cache.forget_stored().await;
    }

    /// Sends a request of the caller's through the same path as `api()`'s own: credentials
    /// attached (renewed when due), the answer reported (a sliding lifetime slides, a 401
    /// renews once and the request goes once more, a curable 403 is cured), and the caller's
    /// retry policy. The body is not capped: it is the caller's API's answer, not ours.
    ///
    /// It goes out through the session's client ([`Endpoint::http`]), which follows no
    /// redirects, not the one that built it: a client that follows them would carry the
    /// session's headers to wherever a `Location` points (reqwest strips `Authorization` and
    /// `Cookie` on a change of host, but not weavr's `api-key`). A redirect comes back as the
    /// response.
    pub(crate) async fn send(
        self: &Arc<Self>,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Error> {
        let authorizer: Arc<dyn Authorizer> = self.clone();
        self.endpoint.send(P::SERVICE, authorizer, request).await
    }

    /// What a request to the service needs (see the sessions' `headers()`), every value marked
    /// sensitive.
    pub(crate) async fn headers(&self) -> Result<HeaderMap, Error> {
        authorized_headers(self).await
    }

    /// The service this session talks to.
    pub(crate) fn service(&self) -> Service {
        P::SERVICE
    }

    pub(crate) async fn authorize_request(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, Error> {
        self.endpoint
            .authorize_request(P::SERVICE, self, request)
            .await
    }
}

// The work of `Core`'s methods that does not depend on the service, compiled once: through
// `Authorizer`, the one way a session's credentials go on a request.

impl Endpoint {
    /// [`Core::send`].
    async fn send(
        &self,
        service: Service,
        authorizer: Arc<dyn Authorizer>,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Error> {
        // Not `prepare`: that strips progenitor's `api-version`, which the caller's API may use.
        let request = self.authorized(service, &*authorizer, request).await?;
        let context = Context::new()
            .with_authorizer(authorizer)
            .with_retry(self.retry.clone())
            .with_clock(self.clock.clone());
        context.execute(&self.http, request, "").await.map_err(|e| {
            let kind = if e.is_timeout() {
                crate::error::ErrorKind::Timeout
            } else {
                crate::error::ErrorKind::Transport
            };
            Error::new(kind)
                .with_service(service)
                .with_source(e.without_url())
        })
    }

    /// [`Core::authorize_request`].
    async fn authorize_request(
        &self,
        service: Service,
        authorizer: &dyn Authorizer,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, Error> {
        let request = self.authorized(service, authorizer, request).await?;
        // With the session's headers on, the request goes out through a client that follows
        // no redirects, for the same reason as in `send`.
        Ok(reqwest::RequestBuilder::from_parts(
            self.http.clone(),
            request,
        ))
    }

    /// The caller's request, to this endpoint's host, with the session's credentials in its own
    /// headers (a map of ours merged in would cost an allocation).
    async fn authorized(
        &self,
        service: Service,
        authorizer: &dyn Authorizer,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Request, Error> {
        let (_, mut request) = split(service, request)?;
        self.check_request_url(service, request.url())?;
        authorizer.authorize(request.headers_mut()).await?;
        Ok(request)
    }
}

/// [`Core::headers`].
async fn authorized_headers(authorizer: &dyn Authorizer) -> Result<HeaderMap, Error> {
    let mut headers = HeaderMap::new();
    authorizer.authorize(&mut headers).await?;
    // An `Origin` is no secret, but the map goes to stacks that log headers: one rule for all.
    for value in headers.values_mut() {
        value.set_sensitive(true);
    }
    Ok(headers)
}

impl<P: Attach> Authorizer for Core<P> {
    fn authorize<'a>(
        &'a self,
        headers: &'a mut HeaderMap,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Error>> + Send + 'a>> {
        Box::pin(async move {
            let token = self.cache.access_token().await?;
            self.provider.attach(token.entry(), headers);
            Ok(())
        })
    }

    fn accepted(&self, headers: &HeaderMap, sent_at: Instant) {
        if P::SLIDING.is_none() {
            return;
        }
        if let Some(entry) = self.cache.current() {
            if self.provider.carries(&entry, headers) {
                entry.slide(sent_at);
            }
        }
    }

    fn refused(&self, headers: &HeaderMap) {
        if let Some(entry) = self.cache.current() {
            if self.provider.carries(&entry, headers) {
                self.cache.invalidate(&entry.secret);
            }
        }
    }

    fn now(&self) -> Instant {
        self.cache.clock.now()
    }

    fn handles_forbidden(&self) -> bool {
        self.forbidden.is_some()
    }

    fn forbidden<'a>(
        &'a self,
        body: &'a [u8],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
        match &self.forbidden {
            Some(forbidden) => forbidden.cure(body),
            None => Box::pin(async { false }),
        }
    }

    fn ends_session(&self, operation_id: &str) -> bool {
        P::ENDS_SESSION.contains(&operation_id)
    }

    fn ended<'a>(
        &'a self,
        used: &'a HeaderMap,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let ours = self
                .cache
                .current()
                .is_some_and(|entry| self.provider.carries(&entry, used));
            if ours {
                self.forget().await;
            }
        })
    }

    fn uncured(&self, body: &[u8], used: &HeaderMap) {
        if let Some(forbidden) = &self.forbidden {
            forbidden.uncured(body, used);
        }
    }
}

/// The builder setters every service shares.
macro_rules! common_builder_methods {
    () => {
        /// The service's base URL. Defaults to the production server where the service has a
        /// public one (weavr and Password Safe have none: there it is required). Must be
        /// `https`, or plain `http` to a loopback address (a local sandbox), and carry no
        /// username or password.
        pub fn base_url(mut self, url: impl Into<String>) -> Self {
            self.common.base_url = Some(url.into());
            self
        }

        /// The HTTP client (proxy, TLS roots, timeouts, `User-Agent`): a
        /// `reqwest::ClientBuilder` that the session builds at [`Self::build`], or a
        /// [`crate::HttpClient`] shared with other sessions. Redirects are off whatever the
        /// builder says (see [`crate::HttpClient`]): a redirect is an error (from `send()` and
        /// `authorize()`, the `3xx` response). Only the builder's settings apply: the default
        /// client's timeouts and `User-Agent` are not added to them.
        ///
        /// Without it, the session's client has a 10 s connect and 30 s request timeout,
        /// follows no redirects, and names this crate in its `User-Agent`.
        pub fn http_client(mut self, client: impl Into<crate::HttpClientSource>) -> Self {
            self.common.http = Some(client.into());
            self
        }

        /// The clock that times expiry (default: the system clocks). Tests pass a
        /// [`crate::clock::ManualClock`] to move time without sleeping.
        pub fn clock(mut self, clock: impl crate::clock::Clock) -> Self {
            self.common.clock = Some(std::sync::Arc::new(clock));
            self
        }

        /// When to renew ahead of expiry (default: [`crate::RefreshPolicy::default`]).
        pub fn refresh_policy(mut self, policy: crate::RefreshPolicy) -> Self {
            self.common.refresh = policy;
            self
        }

        /// How failed requests are retried (default: [`crate::RetryPolicy::default`]). Refused
        /// or rate-limited logins are never retried, whatever the policy.
        pub fn retry_policy(mut self, policy: crate::RetryPolicy) -> Self {
            self.common.retry = policy;
            self
        }

        /// The most bytes of a response body the session reads (default:
        /// [`crate::transport::DEFAULT_MAX_RESPONSE_BYTES`]); a longer body fails the call
        /// without being read.
        pub fn max_response_bytes(mut self, bytes: usize) -> Self {
            self.common.max_body = Some(bytes);
            self
        }

        /// Keeps the token set in `store` too, so that sessions sharing the store (in this
        /// process, or others) share one login per expiry. See [`crate::store`].
        pub fn token_store(mut self, store: impl crate::store::TokenStore) -> Self {
            self.common.store = Some(std::sync::Arc::new(store));
            self
        }

        /// Renews off the request path (default: off). While a valid token is cached, no
        /// call waits on the network: the renewal due at the refresh margin runs in a task of
        /// the session's own, and callers are served the still-valid token until the new one
        /// lands. The task is spawned on the tokio runtime of the first call (`build()` needs
        /// none; without a runtime the session renews in the caller's task, as by default),
        /// and ends when the last clone of the session is dropped. Its renewals are the
        /// session's one flight, taken under a token store's lease, and never resend refused
        /// credentials. Services whose tokens slide from last use (weavr, Password Safe) are
        /// never renewed in the background: a renewal there would be a new login that keeps
        /// an idle session alive, so for them this option changes nothing.
        pub fn background_refresh(mut self, enabled: bool) -> Self {
            self.common.background_refresh = enabled;
            self
        }

        /// Allows a plain-`http` base URL to a non-loopback host. Credentials then travel
        /// unencrypted: only for test networks.
        pub fn danger_accept_plain_http(mut self, accept: bool) -> Self {
            self.common.allow_plain_http = accept;
            self
        }
    };
}

/// The session methods every service shares, for a `Session { core: Arc<Core<P>> }`.
macro_rules! common_session_methods {
    ($client:ty) => {
        /// A valid access token: the cached one, or one obtained by a single shared login or
        /// refresh however many tasks ask at once.
        ///
        /// # Errors
        ///
        /// When no valid token can be had: the login's or refresh's failure (refused
        /// credentials, a rate limit, a lock-out, a transport failure, …). A refused login is
        /// answered with its error, without a request, until [`Self::clear_failure`].
        pub fn access_token(
            &self,
        ) -> impl std::future::Future<Output = Result<crate::AccessToken, crate::Error>> + Send + '_
        {
            self.core.cache.access_token()
        }

        /// Adds the current credentials (renewed first when due) to a request for one of the
        /// vendor's other APIs that take the same token.
        ///
        /// A request to a plain `http` URL whose host is not loopback is refused with
        /// [`crate::ErrorKind::Configuration`] (unless the session was built with
        /// `danger_accept_plain_http`), before any login. The builder given back sends
        /// through a client that follows no redirects, like [`Self::send`], not the one that
        /// built the request: a redirect comes back as the response, and the session's
        /// credentials never reach the host it points to.
        /// # Errors
        ///
        /// What [`Self::access_token`] fails with; [`crate::ErrorKind::Configuration`] when
        /// the request cannot be built.
        pub async fn authorize(
            &self,
            request: reqwest::RequestBuilder,
        ) -> Result<reqwest::RequestBuilder, crate::Error> {
            self.core.authorize_request(request).await
        }

        /// Sends `request`, for one of the vendor's other APIs, with this session's credentials,
        /// the way [`Self::api`] sends its own: renewed when due; on a 401 renewed once and
        /// sent once more (when the request can be cloned); counted as activity where sessions
        /// expire when idle; and, for weavr, a `STEP_UP_REQUIRED` or `ACCESS_TOKEN_REQUIRED`
        /// answered before the one retry. Unlike [`Self::authorize`], the session sees the
        /// answer. The response is the service's, whatever its status; the error is for a
        /// request that could not be sent or credentials that could not be had.
        ///
        /// URLs are held to the rule of base URLs: a plain `http` one whose host is not
        /// loopback is refused with [`crate::ErrorKind::Configuration`] (unless the session
        /// was built with `danger_accept_plain_http`). The request goes out through a client
        /// that follows no redirects, whatever client built it (the builder's client only
        /// builds it; the session's own one when it is the default, else a shared default
        /// one): a redirect comes back as the response, `3xx` and `Location` included, and
        /// the session's credentials never reach the host it points to.
        /// # Errors
        ///
        /// What [`Self::access_token`] fails with; [`crate::ErrorKind::Configuration`] when
        /// the request cannot be built; [`crate::ErrorKind::Timeout`] or
        /// [`crate::ErrorKind::Transport`] when it cannot be sent.
        pub async fn send(
            &self,
            request: reqwest::RequestBuilder,
        ) -> Result<reqwest::Response, crate::Error> {
            self.core.send(request).await
        }

        /// Everything a request to the service's API needs, for an HTTP stack other than
        /// reqwest (hyper, tonic, a `tower` service; see [`crate::tower`] and
        /// [`crate::middleware`] for ready-made layers): the current token (renewed first when
        /// due) and the headers the service wants beside it. Every value is marked sensitive,
        /// so that `http` and hyper print it as `Sensitive` and never index it in HTTP/2
        /// header compression.
        ///
        /// When the service answers 401 to a request carrying these headers, pass them to
        /// [`Self::refused`]: the next call renews first.
        ///
        /// # Errors
        /// The token could not be had (the login or refresh failed).
        pub async fn headers(&self) -> Result<http::HeaderMap, crate::Error> {
            self.core.headers().await
        }

        /// Reports that the service answered 401 to a request carrying `headers` (from
        /// [`Self::headers`]): the token they carry is no longer served, and the next
        /// [`Self::headers`] or [`Self::access_token`] renews first. Only the token still
        /// cached counts: reporting an older one, or the same one twice, renews at most once,
        /// as [`Self::send`] does. Resending the request, once, is the caller's choice.
        pub fn refused(&self, headers: &http::HeaderMap) {
            crate::transport::Authorizer::refused(self.core.as_ref(), headers);
        }

        /// The generated client, with this session's credentials put on every request (renewed
        /// when due; on a 401 renewed once and the request retried once).
        pub fn api(&self) -> $client {
            let context = self
                .core
                .endpoint
                .context(crate::transport::Context::new().with_authorizer(self.core.clone()));
            <$client>::new_with_client(
                &self.core.endpoint.base_url,
                self.core.endpoint.http.clone(),
                context,
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
        pub async fn force_refresh(&self) -> Result<crate::AccessToken, crate::Error> {
            self.core.cache.force_refresh().await
        }

        /// Forgets a refused login (credentials refused, account locked, rate limited), which
        /// the session otherwise never retries, so that the next call logs in again.
        pub fn clear_failure(&self) {
            self.core.cache.clear_failure();
        }

        /// How many logins and refreshes this session has sent.
        pub fn request_counts(&self) -> crate::RequestCounts {
            use std::sync::atomic::Ordering::Relaxed;
            crate::RequestCounts {
                logins: self.core.cache.counters.logins.load(Relaxed),
                refreshes: self.core.cache.counters.refreshes.load(Relaxed),
            }
        }
    };
}

/// `TokenSource` and `Debug` for a service's `Session`.
macro_rules! session_impls {
    ($session:ty) => {
        impl crate::TokenSource for $session {
            fn access_token(
                &self,
            ) -> impl std::future::Future<Output = Result<crate::AccessToken, crate::Error>> + Send
            {
                self.core.cache.access_token()
            }
        }

        impl From<$session> for crate::AnySession {
            fn from(session: $session) -> Self {
                crate::AnySession::new(session)
            }
        }

        impl crate::any_session::Erased for $session {
            fn service(&self) -> crate::Service {
                self.core.service()
            }

            fn authorizer(&self) -> std::sync::Arc<dyn crate::transport::Authorizer> {
                self.core.clone()
            }

            fn access_token(&self) -> crate::any_session::BoxFuture<'_, crate::AccessToken> {
                Box::pin(self.core.cache.access_token())
            }

            fn headers(&self) -> crate::any_session::BoxFuture<'_, http::HeaderMap> {
                Box::pin(self.core.headers())
            }

            fn force_refresh(&self) -> crate::any_session::BoxFuture<'_, crate::AccessToken> {
                Box::pin(self.core.cache.force_refresh())
            }

            fn refused(&self, headers: &http::HeaderMap) {
                Self::refused(self, headers);
            }

            fn authorize(
                &self,
                request: reqwest::RequestBuilder,
            ) -> crate::any_session::BoxFuture<'_, reqwest::RequestBuilder> {
                Box::pin(self.core.authorize_request(request))
            }

            fn send(
                &self,
                request: reqwest::RequestBuilder,
            ) -> crate::any_session::BoxFuture<'_, reqwest::Response> {
                Box::pin(self.core.send(request))
            }

            fn logout(&self) -> crate::any_session::BoxFuture<'_, ()> {
                Box::pin(Self::logout(self))
            }

            fn debug(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(self, f)
            }
        }

        impl std::fmt::Debug for $session {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($session))
                    .field("base_url", &self.core.endpoint.base_url)
                    .field(
                        "token",
                        &self.core.cache.current().map(crate::AccessToken::new),
                    )
                    .finish_non_exhaustive()
            }
        }
    };
}

pub(crate) use {common_builder_methods, common_session_methods, session_impls};
