//! What all five sessions share: configuration, the HTTP endpoint, and the core that joins the
//! token cache to the generated clients.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};

use crate::cache::{Cache, Provider};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Service};
use crate::expiry::RefreshPolicy;
use crate::response::Probe;
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
    pub(crate) http: Option<reqwest::Client>,
    pub(crate) clock: Option<Arc<dyn Clock>>,
    pub(crate) refresh: RefreshPolicy,
    pub(crate) allow_plain_http: bool,
    pub(crate) retry: RetryPolicy,
    pub(crate) max_body: Option<usize>,
    pub(crate) store: Option<Arc<dyn TokenStore>>,
}

/// Where a session sends its requests, and with what.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) http: reqwest::Client,
    pub(crate) base_url: String,
    pub(crate) retry: RetryPolicy,
    pub(crate) max_body: usize,
    pub(crate) store: Option<Arc<dyn TokenStore>>,
}

impl Endpoint {
    /// A generated client for one internal call, with a probe recording the response.
    pub(crate) fn client<C>(
        &self,
        new: fn(&str, reqwest::Client, Context) -> C,
        context: Context,
    ) -> (C, Arc<Probe>) {
        let probe = Arc::new(Probe::default());
        let client = new(
            &self.base_url,
            self.http.clone(),
            self.context(context).with_probe(probe.clone()),
        );
        (client, probe)
    }

    /// `context` with this endpoint's retry policy and body cap.
    pub(crate) fn context(&self, context: Context) -> Context {
        context.with_limits(&self.retry, self.max_body)
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
                format!("base URL {base_url:?} is not a URL: {e}"),
            )
        })?;
        let loopback = match parsed.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        match parsed.scheme() {
            "https" => {}
            "http" if loopback || self.allow_plain_http => {}
            "http" => {
                return Err(Error::configuration(
                    Some(service),
                    format!(
                        "base URL {base_url:?} is plain HTTP: credentials would travel unencrypted \
                         (allowed only for loopback addresses, or with danger_accept_plain_http)"
                    ),
                ))
            }
            other => {
                return Err(Error::configuration(
                    Some(service),
                    format!("base URL {base_url:?} has scheme {other:?}; https is required"),
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
            Some(http) => http,
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
        };
        Ok((endpoint, clock, self.refresh))
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
fn split<P: Provider>(
    request: reqwest::RequestBuilder,
) -> Result<(reqwest::Client, reqwest::Request), Error> {
    let (client, request) = request.build_split();
    let request = request.map_err(|e| {
        Error::configuration(Some(P::SERVICE), "the request could not be built")
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
    pub(crate) cache: Cache<P>,
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
        let mut cache = Cache::new(provider, clock, policy);
        if let Some(store) = endpoint.store.clone() {
            cache = cache.with_store(store, key);
        }
        Self {
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
    pub(crate) async fn send(
        self: &Arc<Self>,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Error> {
        let (client, mut request) = split::<P>(request)?;
        let context = Context::new()
            .with_authorizer(self.clone())
            .with_retry(self.endpoint.retry.clone());
        // Not `prepare`: that strips progenitor's `api-version`, which the caller's API may use.
        Authorizer::authorize(self.as_ref(), request.headers_mut()).await?;
        context.execute(&client, request, "").await.map_err(|e| {
            let kind = if e.is_timeout() {
                crate::error::ErrorKind::Timeout
            } else {
                crate::error::ErrorKind::Transport
            };
            Error::new(kind)
                .with_service(P::SERVICE)
                .with_source(e.without_url())
        })
    }

    pub(crate) async fn authorize_request(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, Error> {
        let token = self.cache.access_token().await?;
        // Into the request's own headers: a map of ours merged in would cost an allocation.
        let (client, mut request) = split::<P>(request)?;
        self.cache
            .provider
            .attach(token.entry(), request.headers_mut());
        Ok(reqwest::RequestBuilder::from_parts(client, request))
    }
}

impl<P: Attach> Authorizer for Core<P> {
    fn authorize<'a>(
        &'a self,
        headers: &'a mut HeaderMap,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Error>> + Send + 'a>> {
        Box::pin(async move {
            let token = self.cache.access_token().await?;
            self.cache.provider.attach(token.entry(), headers);
            Ok(())
        })
    }

    fn accepted(&self, headers: &HeaderMap, sent_at: Instant) {
        if P::SLIDING.is_none() {
            return;
        }
        if let Some(entry) = self.cache.current() {
            if self.cache.provider.carries(&entry, headers) {
                entry.slide(sent_at);
            }
        }
    }

    fn refused(&self, headers: &HeaderMap) {
        if let Some(entry) = self.cache.current() {
            if self.cache.provider.carries(&entry, headers) {
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
                .is_some_and(|entry| self.cache.provider.carries(&entry, used));
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
        /// `https`, or plain `http` to a loopback address (a local sandbox).
        pub fn base_url(mut self, url: impl Into<String>) -> Self {
            self.common.base_url = Some(url.into());
            self
        }

        /// The HTTP client to use. The default has a 10 s connect and 30 s request timeout,
        /// follows no redirects, and names this crate in its `User-Agent`.
        pub fn http_client(mut self, client: reqwest::Client) -> Self {
            self.common.http = Some(client);
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
        pub fn access_token(
            &self,
        ) -> impl std::future::Future<Output = Result<crate::AccessToken, crate::Error>> + Send + '_
        {
            self.core.cache.access_token()
        }

        /// Adds the current credentials (renewed first when due) to a request for one of the
        /// vendor's other APIs that take the same token.
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
        pub async fn send(
            &self,
            request: reqwest::RequestBuilder,
        ) -> Result<reqwest::Response, crate::Error> {
            self.core.send(request).await
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
