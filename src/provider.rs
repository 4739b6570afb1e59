//! What a service supplies to the one mechanism behind every session, and what that mechanism
//! offers a service in return.
//!
//! A service is one type (`s7risk::S7risk`, `weavr::Weavr`, …) that implements the sealed
//! [`sealed::ProviderImpl`]: how to log in, refresh and log out, how to put its credentials on a
//! request, how to cure a refusal it knows the cure of, and its constants (lifetimes, holds). It
//! never touches the cache, the store or the clock: its own calls go through the
//! [`Endpoint`] it was built with, and what it needs of the session's tokens (the current one,
//! a token set a completed challenge brought) through [`Tokens`].

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderMap, AUTHORIZATION};

use crate::cache::{Cache, Constants, ErasedProvider};
use crate::error::{Error, ErrorKind, Service};
use crate::secret::SecretString;
use crate::token::{AccessToken, Entry, Issued};
use crate::transport::endpoint::Endpoint;
use crate::transport::exchange::Authorizer;

/// A service a [`crate::Session`] talks to: one type per service module
/// ([`crate::s7risk::S7risk`], [`crate::weavr::Weavr`], [`crate::accounts::Accounts`],
/// [`crate::passwordsafe::PasswordSafe`], [`crate::fib::Fib`]). Sealed: the crate's services are
/// the only ones.
pub trait Provider: sealed::ProviderImpl {
    /// The service's generated client, as [`crate::Session::api`] returns it.
    type Client: crate::generated::Api;
}

pub(crate) mod sealed {
    use super::*;

    /// What a service does differently. Every method but the constants, [`Self::build`] and
    /// [`Self::login`] has a default that suits a plain bearer-token service.
    pub trait ProviderImpl: Send + Sync + Sized + 'static {
        /// Which service this is.
        const SERVICE: Service;
        /// The production base URL, or (`Err`) why the builder must be given one.
        const BASE_URL: Result<&'static str, &'static str>;
        /// The hosts the vendor documents for the service's other APIs, which take the same
        /// credentials: in the session's scope when its base URL is [`Self::BASE_URL`]'s host.
        const OTHER_API_HOSTS: &'static [&'static str] = &[];
        /// The lifetime slides forward from each successful authenticated call.
        const SLIDING: Option<Duration> = None;
        /// A refresh token may be used at most this many times.
        const MAX_REFRESH_USES: Option<u32> = None;
        /// The `operationId`s that end the session whose token they carry (a sign-out): called
        /// through `api()`, their success wipes the cached token instead of counting as
        /// activity.
        const ENDS_SESSION: &'static [&'static str] = &[];
        /// How long logins are held back after a 429 that does not say how long to wait.
        const LOGIN_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
        /// How long a login challenge (a new password required, a password expired) stays
        /// usable: until then every call is answered with it.
        const LOGIN_CHALLENGE_LIFETIME: Duration = Duration::from_secs(3 * 60);
        /// A sign-out that fails for any reason but a refused session leaves the session open
        /// (it may still be, at the service) instead of ending it locally.
        const KEEPS_SESSION_ON_FAILED_LOGOUT: bool = false;
        /// Whether [`Self::cure`] may cure a 403.
        const CURES_FORBIDDEN: bool = false;

        /// What the service's builder takes beside the settings every builder has.
        type Settings: Default + std::fmt::Debug + Send;

        /// The service, from its settings (checked: a missing or malformed one is a
        /// configuration error) and the endpoint its own calls go through.
        fn build(settings: Self::Settings, endpoint: &Endpoint) -> Result<Self, Error>;

        /// Who logs in (an email, a client id; never a secret), to key a shared token store.
        fn store_identity(&self) -> String;

        /// Gives `fingerprint` the credentials a login sends now (a password, a key; each part
        /// a call), so that a refusal the account's store keeps holds back only logins with the
        /// same credentials: a session given corrected ones logs in. Nothing is kept of them
        /// but a 16-bit fingerprint, sealed in the store with the refusal. The default gives
        /// nothing: every login of the account counts as sending the same credentials.
        fn credentials(&self, _fingerprint: &mut dyn FnMut(&[u8])) {}

        /// Logs in with the stored credentials. `sent_wall` is the wall clock when it was sent.
        fn login(
            &self,
            sent_wall: SystemTime,
        ) -> impl Future<Output = Result<Issued, Error>> + Send;

        /// Renews with a refresh token. Only called when the entry holds a usable one.
        fn refresh(
            &self,
            _refresh_token: &SecretString,
            _sent_wall: SystemTime,
        ) -> impl Future<Output = Result<Issued, Error>> + Send {
            async {
                Err(Error::configuration(
                    Some(Self::SERVICE),
                    "this service has no refresh",
                ))
            }
        }

        /// Adds the token (and whatever else the service needs, like `api-key`) to `headers`.
        fn attach(&self, entry: &Entry, headers: &mut HeaderMap) {
            headers.insert(AUTHORIZATION, entry.bearer());
        }

        /// Whether `headers` carry `entry`'s token.
        fn carries(&self, entry: &Entry, headers: &HeaderMap) -> bool {
            headers
                .get(AUTHORIZATION)
                .is_some_and(|value| *value == entry.bearer())
        }

        /// Cures the 403 whose body is `body` (only asked when [`Self::CURES_FORBIDDEN`]); true
        /// when the request is worth sending again.
        fn cure<'a>(
            &'a self,
            _tokens: &'a Tokens,
            _body: &'a [u8],
        ) -> impl Future<Output = bool> + Send + 'a {
            async { false }
        }

        /// The resend after a cure, carrying `used`, was refused again with `body`.
        fn uncured(&self, _tokens: &Tokens, _body: &[u8], _used: &HeaderMap) {}

        /// Ends at the service the session `ending` describes (the local token sets are the
        /// engine's business). The default: the service has no sign-out.
        fn log_out<'a>(
            &'a self,
            _tokens: &'a Tokens,
            _ending: &'a Ending,
        ) -> impl Future<Output = Result<(), Error>> + Send + 'a {
            async { Ok(()) }
        }
    }
}

impl Endpoint {
    /// One request of a login (a service's login may take several: a token, then a sign-in)
    /// through [`Endpoint::call`], with what every login needs without asking: its span
    /// (`tokensmith.grant = login`), its replay class (sent again only after a gateway's
    /// failure, never after a refusal), and a 401 read as refused credentials (never sent
    /// again) unless `classify` reads it otherwise.
    pub(crate) async fn log_in<C, T, E, Op, Fut>(
        &self,
        context: crate::transport::Context,
        classify: crate::transport::errors::Classify<'_>,
        operation: Op,
    ) -> Result<T, Error>
    where
        C: crate::generated::Api,
        E: crate::transport::errors::ErrorBody,
        Op: FnOnce(C) -> Fut,
        Fut: Future<Output = Result<T, progenitor_client::Error<E>>>,
    {
        let context = context
            .with_replay(crate::retry::Replay::Gateway)
            .with_grant(crate::telemetry::Grant::Login);
        let classify = |failure: &crate::transport::errors::Failure| match classify(failure) {
            ErrorKind::TokenRejected if failure.status == 401 => ErrorKind::InvalidCredentials,
            kind => kind,
        };
        self.call(context, &classify, operation).await
    }
}

/// The session a logout ends: its token set, and whether its access token is still valid (when
/// it is not, the set is there for its refresh token).
pub struct Ending {
    pub(crate) entry: Arc<Entry>,
    pub(crate) valid: bool,
}

/// What the engine offers a service beside its endpoint: the few operations on the session's
/// tokens that a service's own methods and cures need.
#[derive(Clone)]
pub struct Tokens {
    cache: Arc<Cache>,
    /// The session as the HTTP layer sees it, for calls made with its token outside `api()`.
    session: Weak<dyn Authorizer>,
    /// The service itself, for work that outlives one call (weavr's step-up task).
    provider: Weak<dyn std::any::Any + Send + Sync>,
}

/// [`Tokens`] held weakly, by work that must not keep a dropped session alive (a step-up that
/// waits minutes for its user).
#[derive(Clone)]
pub struct WeakTokens {
    cache: Weak<Cache>,
    session: Weak<dyn Authorizer>,
    provider: Weak<dyn std::any::Any + Send + Sync>,
}

impl WeakTokens {
    /// The session's tokens, while the session lives.
    pub(crate) fn upgrade(&self) -> Option<Tokens> {
        Some(Tokens {
            cache: self.cache.upgrade()?,
            session: self.session.clone(),
            provider: self.provider.clone(),
        })
    }
}

/// When a request was sent, on both of the session's clocks.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    pub(crate) at: Instant,
    pub(crate) wall: SystemTime,
}

impl Tokens {
    pub(crate) fn new(
        cache: Arc<Cache>,
        session: Weak<dyn Authorizer>,
        provider: Weak<dyn std::any::Any + Send + Sync>,
    ) -> Self {
        Self {
            cache,
            session,
            provider,
        }
    }

    /// These tokens, held weakly.
    pub(crate) fn downgrade(&self) -> WeakTokens {
        WeakTokens {
            cache: Arc::downgrade(&self.cache),
            session: self.session.clone(),
            provider: self.provider.clone(),
        }
    }

    /// The service, while the session lives, for work that outlives one call.
    pub(crate) fn provider<P: Send + Sync + 'static>(&self) -> Option<Arc<P>> {
        self.provider.upgrade()?.downcast::<P>().ok()
    }

    /// A valid access token (renewed first when due).
    pub(crate) async fn access_token(&self) -> Result<AccessToken, Error> {
        self.cache.access_token().await
    }

    /// The entry cached now, valid or not.
    pub(crate) fn current(&self) -> Option<Arc<Entry>> {
        self.cache.current()
    }

    /// Now, on the session's monotonic clock.
    pub(crate) fn now(&self) -> Instant {
        self.cache.clock.now()
    }

    /// Waits until `deadline` on the session's clock (a `ManualClock` moves it in tests).
    pub(crate) async fn sleep_until(&self, deadline: Instant) {
        self.cache.clock.sleep_until(deadline).await;
    }

    /// Resolves when the session is dropped: work of its own stops there.
    pub(crate) fn on_close(&self) -> impl Future<Output = ()> + Send + 'static {
        self.cache.on_close()
    }

    /// Now, on the session's clocks: stamp a request with it before sending.
    pub(crate) fn sent(&self) -> Sent {
        Sent {
            at: self.cache.clock.now(),
            wall: self.cache.clock.system_now(),
        }
    }

    /// Takes a token set obtained outside a renewal (a completed login challenge, a password
    /// update): it replaces whatever was cached, lifts a held login, and is stored.
    ///
    /// # Errors
    /// [`ErrorKind::Decode`] for a token set that cannot be put on a request (see
    /// [`attachable`]); nothing is installed then.
    pub(crate) async fn install(&self, grant: Issued, sent: Sent) -> Result<AccessToken, Error> {
        let service = self.cache.service();
        let grant = attachable(service, Ok(grant))?;
        Ok(self.cache.install(grant, sent.at).await)
    }

    /// Exchanges the token `used` for another (weavr's identity access token) through the
    /// session's one flight, under the fleet's renewal lease: calls that need it together make
    /// one exchange, saved fenced like a renewal.
    pub(crate) async fn exchange(
        &self,
        used: AccessToken,
        obtain: crate::cache::Exchange,
    ) -> Result<AccessToken, Error> {
        self.cache.exchange(used, obtain).await
    }

    /// Forgets a refused login: the credentials changed.
    pub(crate) fn clear_failure(&self) {
        self.cache.clear_failure();
    }

    /// Records that the token `secret` was stepped up, here and in the store.
    pub(crate) async fn mark_stepped_up(&self, secret: &SecretString) {
        self.cache.mark_stepped_up(secret).await;
    }

    /// The session, told of every answer to a call that carries one of its tokens outside
    /// `api()` (a 401 retires the token, other answers slide its lifetime).
    pub(crate) fn observer(&self) -> Option<Arc<dyn Authorizer>> {
        self.session.upgrade()
    }
}

/// A service's methods behind `dyn`, as the engine holds it: compiled once for every service
/// rather than once per service.
pub(crate) trait Erased: ErasedProvider {
    fn attach(&self, entry: &Entry, headers: &mut HeaderMap);
    fn carries(&self, entry: &Entry, headers: &HeaderMap) -> bool;
    fn cure<'a>(
        &'a self,
        tokens: &'a Tokens,
        body: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>>;
    fn uncured(&self, tokens: &Tokens, body: &[u8], used: &HeaderMap);
    fn log_out<'a>(
        &'a self,
        tokens: &'a Tokens,
        ending: &'a Ending,
    ) -> Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'a>>;
}

impl<P: Provider> Erased for P {
    fn attach(&self, entry: &Entry, headers: &mut HeaderMap) {
        sealed::ProviderImpl::attach(self, entry, headers);
    }

    fn carries(&self, entry: &Entry, headers: &HeaderMap) -> bool {
        sealed::ProviderImpl::carries(self, entry, headers)
    }

    fn cure<'a>(
        &'a self,
        tokens: &'a Tokens,
        body: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(sealed::ProviderImpl::cure(self, tokens, body))
    }

    fn uncured(&self, tokens: &Tokens, body: &[u8], used: &HeaderMap) {
        sealed::ProviderImpl::uncured(self, tokens, body, used);
    }

    fn log_out<'a>(
        &'a self,
        tokens: &'a Tokens,
        ending: &'a Ending,
    ) -> Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'a>> {
        Box::pin(sealed::ProviderImpl::log_out(self, tokens, ending))
    }
}

impl<P: Provider> ErasedProvider for P {
    fn credentials_dyn(&self, fingerprint: &mut dyn FnMut(&[u8])) {
        sealed::ProviderImpl::credentials(self, fingerprint);
    }

    fn login_boxed(&self, sent_wall: SystemTime) -> crate::cache::IssuedFuture<'_> {
        Box::pin(async move { attachable(P::SERVICE, self.login(sent_wall).await) })
    }

    fn refresh_boxed<'a>(
        &'a self,
        refresh_token: &'a SecretString,
        sent_wall: SystemTime,
    ) -> crate::cache::IssuedFuture<'a> {
        Box::pin(
            async move { attachable(P::SERVICE, self.refresh(refresh_token, sent_wall).await) },
        )
    }
}

/// A token set the session can put on a request: a token with a byte no header value can hold
/// (a line break, a control character) would go out as something else, be refused, and never
/// be recognised as the refused one. It is a malformed answer, not a token to keep.
pub(crate) fn attachable(service: Service, grant: Result<Issued, Error>) -> Result<Issued, Error> {
    let grant = grant?;
    let fits = |secret: &SecretString| crate::header::secret(secret).is_ok();
    let all_fit = fits(&grant.access)
        && [
            &grant.refresh,
            &grant.extra.id_token,
            &grant.extra.cookie,
            &grant.extra.bearer,
        ]
        .into_iter()
        .flatten()
        .all(fits);
    if all_fit {
        Ok(grant)
    } else {
        Err(Error::new(ErrorKind::Decode)
            .with_service(service)
            .with_message("the service issued a token that cannot be sent in an HTTP header"))
    }
}

/// `P`'s constants, as the cache reads them.
pub(crate) fn traits_of<P: Provider>() -> Constants {
    Constants {
        service: P::SERVICE,
        sliding: P::SLIDING,
        max_refresh_uses: P::MAX_REFRESH_USES,
        holds: crate::cache::Holds {
            challenge: P::LOGIN_CHALLENGE_LIFETIME,
            rate_limit: P::LOGIN_RATE_LIMIT_WAIT,
        },
    }
}
