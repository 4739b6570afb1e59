//! The one mechanism behind every session: a cached token, renewed ahead of expiry by a
//! single shared flight, with the refresh-or-login decision and failure handling in one place.
//! Each service supplies only its differences through [`ErasedProvider`].
//!
//! The parts, each readable alone:
//! - [`current`]: the in-memory slot holding the current token, and each thread's handle to
//!   it (the hot path);
//! - [`flight`]: the single flight that renewals share, run in a task of the session's own so
//!   that a caller who gives up cancels nothing;
//! - [`fleet`]: the shared [`TokenStore`](crate::store::TokenStore) and its renewal lease;
//! - [`refusals`]: logins that must not be sent again (yet);
//! - [`background`]: renewal in a task of the session's own (`background_refresh`);
//! - [`stored`]: what the cache keeps of a grant, here and in the account's store;
//! - [`exchange`]: weavr's identity exchange, flown like a renewal;
//! - this file: the policy that joins them. Is the token fresh → join or start the flight →
//!   renew (refresh, else log in) → keep the new token, here and in the store.
//!
//! A session holds its cache through [`Owned`]; the cache's tasks (a flight in the air, the
//! background renewal) hold it for as long as they run, and stop when the session is dropped.

mod background;
mod current;
mod exchange;
mod fleet;
pub(crate) mod flight;
mod provider;
mod refusals;
mod stored;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::clock::Clock;
use crate::error::{Error, ErrorKind};
use crate::expiry::RefreshPolicy;
use crate::store::{StoreKey, TokenStore};
use crate::token::{AccessToken, Entry, TokenOrigin};

use background::Background;
use current::Current;
pub(crate) use exchange::Exchange;
use fleet::{Fleet, Leased};
use flight::SingleFlight;
pub(crate) use provider::{Constants, ErasedProvider, IssuedFuture};
pub(crate) use refusals::Holds;
use refusals::Refusals;

/// What `access_token()` returns: at its first poll the cached token if it is fresh (no
/// future state beyond a reference), else the shared renewal, boxed so that the future stays
/// two words instead of a whole HTTP exchange's state.
pub(crate) enum TokenFuture<'a> {
    Start(&'a Cache),
    Renew(std::pin::Pin<Box<dyn Future<Output = Result<AccessToken, Error>> + Send + 'a>>),
}

impl Future for TokenFuture<'_> {
    type Output = Result<AccessToken, Error>;

    #[inline(always)]
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.get_mut();
        if let Self::Start(cache) = *this {
            if let Some(token) = cache.fresh() {
                return std::task::Poll::Ready(Ok(token));
            }
            if let Some(token) = cache.served_while_due() {
                return std::task::Poll::Ready(Ok(token));
            }
            *this = Self::Renew(cache.boxed_renewal());
        }
        match this {
            Self::Renew(renewal) => renewal.as_mut().poll(cx),
            Self::Start(_) => unreachable!("replaced above"),
        }
    }
}

/// Counts of the token requests a cache has sent, for tests and diagnostics.
#[derive(Debug, Default)]
pub(crate) struct RequestCounters {
    pub(crate) logins: AtomicU64,
    pub(crate) refreshes: AtomicU64,
}

/// A session's hold on its cache, dereferencing to it. The cache's own tasks hold the cache
/// as long as they run; dropping this (with the last clone of the session) stops them.
pub(crate) struct Owned(Arc<Cache>);

impl std::ops::Deref for Owned {
    type Target = Cache;

    #[inline]
    fn deref(&self) -> &Cache {
        &self.0
    }
}

impl Owned {
    /// The cache itself, for handles that must not close it when dropped.
    pub(crate) fn share(&self) -> Arc<Cache> {
        self.0.clone()
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A cache gone is closed too, however it went: nothing waits on it for good.
impl Drop for Cache {
    fn drop(&mut self) {
        self.closed.close();
    }
}

pub(crate) struct Cache {
    /// Where this cache lives: the flights it starts hold it while they run.
    me: Weak<Cache>,
    provider: Arc<dyn ErasedProvider>,
    traits: Constants,
    pub(crate) clock: Arc<dyn Clock>,
    /// `clock` is the system clock (see `fresh`).
    system_clock: bool,
    /// The origin of the entries' instants.
    base: Instant,
    policy: RefreshPolicy,
    current: Current,
    flight: SingleFlight<(), Result<AccessToken, Error>>,
    /// Set when the session is dropped: the flight in the air stops there. Shared, so that a
    /// wait on it outlives the cache (`on_close`).
    closed: Arc<Closed>,
    refusals: Refusals,
    pub(crate) counters: RequestCounters,
    /// Boxed: most sessions have no store, and every idle session would carry its bytes.
    fleet: Option<Box<Fleet>>,
    /// Renewal in a task of the session's own, when asked for (and the service allows it).
    background: Option<Background>,
}

/// The session's end, as the work it started waits for it. A flag and a `Notify` rather than a
/// `watch` channel, whose shared state (328 bytes) every idle session would carry.
#[derive(Default)]
struct Closed {
    flag: AtomicBool,
    notify: Notify,
}

impl Closed {
    fn close(&self) {
        self.flag.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Ends once `close` has run, however the two interleave: the waiter registers before it
    /// reads the flag, so a `close` between the two still wakes it.
    async fn wait(&self) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        loop {
            notified.as_mut().enable();
            if self.flag.load(Ordering::Acquire) {
                return;
            }
            notified.as_mut().await;
            notified.set(self.notify.notified());
        }
    }
}

/// How long to wait before trying again after an early renewal failed while the token is
/// still valid: a quarter of the time left, between 1 s and 30 s.
fn retry_delay(time_left: Duration) -> Duration {
    (time_left / 4).clamp(Duration::from_secs(1), Duration::from_secs(30))
}

/// A refresh that failed because of the refresh token itself: logging in again is the cure.
fn refresh_refused(error: &Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::TokenRejected | ErrorKind::RefreshLimitExceeded | ErrorKind::InvalidCredentials
    )
}

impl Cache {
    /// The renewal, built out of line: its state is kilobytes, and built inline in
    /// `TokenFuture::poll` it gave the cached path a 14.7 KB stack frame (three stack-probe
    /// writes on every call), although only a caller that renews ever builds it.
    #[cold]
    #[inline(never)]
    fn boxed_renewal(
        &self,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<AccessToken, Error>> + Send + '_>> {
        Box::pin(self.renewal())
    }

    /// The cache of a session whose service is `provider`, made by `configure` from the
    /// plain one (a store, background renewal), and held by the session.
    pub(crate) fn owned(
        provider: Arc<dyn ErasedProvider>,
        traits: Constants,
        clock: Arc<dyn Clock>,
        policy: RefreshPolicy,
        configure: impl FnOnce(Self) -> Self,
    ) -> Owned {
        Owned(Arc::new_cyclic(|me| {
            configure(Self::new(me.clone(), provider, traits, clock, policy))
        }))
    }

    fn new(
        me: Weak<Self>,
        provider: Arc<dyn ErasedProvider>,
        traits: Constants,
        clock: Arc<dyn Clock>,
        policy: RefreshPolicy,
    ) -> Self {
        let base = clock.now();
        Self {
            me,
            system_clock: clock.is_system_clock(),
            provider,
            traits,
            clock,
            base,
            policy,
            current: Current::new(),
            flight: SingleFlight::new(),
            closed: Arc::default(),
            refusals: Refusals::new(),
            counters: RequestCounters::default(),
            fleet: None,
            background: None,
        }
    }

    /// Renews in a task of its own while the token is valid (see [`background`]), which
    /// holds the cache weakly.
    pub(crate) fn with_background_refresh(mut self) -> Self {
        self.background = Background::new(self.me.clone(), self.traits);
        self
    }

    /// The session is gone: the flight in the air and the background task stop.
    fn close(&self) {
        self.closed.close();
        if let Some(background) = &self.background {
            background.close();
        }
    }

    /// Keeps the token set in `store` under `key` as well.
    pub(crate) fn with_store(mut self, store: Arc<dyn TokenStore>, key: StoreKey) -> Self {
        self.fleet = Some(Box::new(Fleet::new(
            self.traits.service,
            store,
            key,
            self.clock.clone(),
        )));
        self
    }

    /// A valid token: the cached one, or one shared renewal.
    // `#[inline]` here and on `fresh`: the cache is not generic, so without it the hot path
    // would call into this crate (hot_path bench: 0.90 to 0.98 of the baseline with it, as
    // before the cache lost its type parameter; 1.01 to 1.11 without).
    #[inline]
    pub(crate) fn access_token(&self) -> TokenFuture<'_> {
        TokenFuture::Start(self)
    }

    /// The cached token when it is fresh: the hot path.
    #[inline(always)]
    fn fresh(&self) -> Option<AccessToken> {
        // The session's one time read that does not go through `Clock`: with the system
        // clock, the hot path calls `Instant::now()` itself, because the indirect call costs a
        // few ns of a path that is ~30 ns in all. Any other clock (a `ManualClock`) is asked.
        let now = if self.system_clock {
            Instant::now()
        } else {
            self.clock.now()
        };
        self.current.fresh(now)
    }

    /// In background mode, a token that is due but valid, served while the task renews it
    /// (the task is started here, at the first call that is not served from the cache). `None`
    /// otherwise: the caller renews (no valid token, no runtime to run the task on, or the
    /// default mode).
    fn served_while_due(&self) -> Option<AccessToken> {
        let background = self.background.as_ref()?;
        if !background.ensure_running() {
            return None;
        }
        let token = self.current.valid(self.clock.now())?;
        background.nudge();
        Some(token)
    }

    /// Renews now, whatever the cached token's expiry, for an application that learned it was
    /// revoked: the token cached when called is no longer served, and the renewal is the one
    /// flight (joined by everyone asking meanwhile, force or not).
    pub(crate) async fn force_refresh(&self) -> Result<AccessToken, Error> {
        if let Some(entry) = self.current.get() {
            self.current.expire(&entry);
            tracing::info!(service = %self.traits.service, "renewal forced; the cached token is no longer served");
        }
        self.renewal().await
    }

    /// Not fresh: join the renewal in the air, or start one. The renewal runs to its end in a
    /// task of its own whatever happens to its callers, unless the session is dropped.
    async fn renewal(&self) -> Result<AccessToken, Error> {
        self.flight
            .join(&(), || {
                self.flown(|cache| async move { cache.renew().await })
            })
            .await
    }

    /// A wait that ends when the session is dropped (or already was): work a session starts
    /// on its own (a step-up) stops there. It holds nothing of the cache.
    pub(crate) fn on_close(&self) -> impl Future<Output = ()> + Send + 'static {
        let closed = self.closed.clone();
        async move { closed.wait().await }
    }

    /// `work` as a flight runs it: with the cache held for as long as it runs, and stopped
    /// when the session is dropped (nobody is left to serve).
    fn flown<W, Fut>(
        &self,
        work: W,
    ) -> impl Future<Output = Result<AccessToken, Error>> + Send + 'static
    where
        W: FnOnce(Arc<Self>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<AccessToken, Error>> + Send,
    {
        let cache = self.me.upgrade();
        let service = self.traits.service;
        let gone = move || Error::configuration(Some(service), "the session was dropped");
        async move {
            let Some(cache) = cache else {
                return Err(gone());
            };
            let closed = cache.closed.clone();
            tokio::select! {
                outcome = work(cache.clone()) => outcome,
                () = closed.wait() => Err(gone()),
            }
        }
    }

    /// The flight's work: a token another flight or session just left, or a renewal of ours
    /// (under the fleet's lease, when there is a store).
    async fn renew(&self) -> Result<AccessToken, Error> {
        // A flight that just ended may have left a fresh token behind.
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let Some(fleet) = &self.fleet else {
            return self.renew_now().await;
        };
        // So may another session, in the shared store.
        if let Some(token) = self.adopt_stored().await {
            return Ok(token);
        }
        // In a shared store, one session renews for all: the others wait for its token set.
        match fleet.lease(|| self.adopt_stored()).await {
            Leased::Token(token) => Ok(token),
            Leased::Alone => self.renew_now().await,
            Leased::Granted(lease) => {
                // The renewal's saves are fenced by the lease: a holder that lost it writes
                // nothing.
                let outcome = crate::store::under_lease(Some(&lease), self.renew_now()).await;
                fleet.release(&lease).await;
                outcome
            }
        }
    }

    /// Renews with the refresh token when there is a usable one (logging in when the service
    /// refuses it), else logs in. A failure while the current token is still valid keeps
    /// serving it, and backs off before the next attempt.
    async fn renew_now(&self) -> Result<AccessToken, Error> {
        let current = self.current.get();
        let now = self.clock.now();
        let refresh = current
            .as_ref()
            .filter(|e| e.refresh_usable(now, self.traits.max_refresh_uses));
        let outcome = match refresh {
            Some(entry) => match self.refresh_with(entry).await {
                Ok(token) => Ok(token),
                Err(e) if refresh_refused(&e) => {
                    tracing::info!(service = %self.traits.service, error = %e, "refresh token refused, logging in again");
                    self.login().await
                }
                Err(e) => Err(e),
            },
            None => self.login().await,
        };
        let error = match outcome {
            Ok(token) => return Ok(token),
            Err(error) => error,
        };
        let now = self.clock.now();
        match current.filter(|e| e.is_valid(now)) {
            Some(entry) => {
                let left = entry.expires_at().saturating_duration_since(now);
                self.current
                    .postpone_renewal(&entry, now, retry_delay(left));
                tracing::warn!(service = %self.traits.service, %error, "early renewal failed; still serving the valid token");
                Ok(AccessToken::new(entry))
            }
            None => Err(error),
        }
    }

    async fn login(&self) -> Result<AccessToken, Error> {
        if let Some(error) = self.refusals.blocking(self.clock.now()) {
            return Err(error);
        }
        let credentials = self.credentials();
        if let Some(error) = self.stored_refusal(credentials).await {
            return Err(error);
        }
        let sent_at = self.clock.now();
        self.counters.logins.fetch_add(1, Ordering::Relaxed);
        match self.provider.login_boxed(self.clock.system_now()).await {
            Ok(grant) => {
                self.refusals.succeeded();
                tracing::info!(service = %self.traits.service, lifetime_s = grant.lifetime.as_secs(), "logged in");
                Ok(self.keep(grant, sent_at, TokenOrigin::Login, None).await)
            }
            Err(error) => {
                tracing::warn!(service = %self.traits.service, %error, "login failed");
                let shared = self
                    .refusals
                    .record(&error, self.clock.now(), self.traits.holds);
                if let (Some(shared), Some(fleet)) = (shared, &self.fleet) {
                    let stored = refusals::to_stored(&error, shared, credentials);
                    fleet.save_refusal(stored).await;
                }
                Err(error)
            }
        }
    }

    async fn refresh_with(&self, entry: &Arc<Entry>) -> Result<AccessToken, Error> {
        let refresh_token = entry.refresh_token().expect("refresh_usable checked it");
        let sent_at = self.clock.now();
        self.counters.refreshes.fetch_add(1, Ordering::Relaxed);
        let grant = self
            .provider
            .refresh_boxed(refresh_token, self.clock.system_now())
            .await?;
        tracing::info!(service = %self.traits.service, lifetime_s = grant.lifetime.as_secs(), "token refreshed");
        Ok(self
            .keep(grant, sent_at, TokenOrigin::Refresh, Some(entry))
            .await)
    }

    /// Forgets a refused login, so that the next call tries the credentials again: here, and in
    /// the account's store (a session that met or read the refusal itself keeps it until its
    /// own `clear_failure()`).
    pub(crate) fn clear_failure(&self) {
        self.refusals.clear();
        let Some(fleet) = &self.fleet else { return };
        fleet.clear_refusal();
        // The stored refusal goes now, when there is a runtime to remove it on (else before
        // this session's next login): until then the account's other sessions still see it.
        if let (Ok(runtime), Some(cache)) =
            (tokio::runtime::Handle::try_current(), self.me.upgrade())
        {
            drop(runtime.spawn(async move {
                if let Some(fleet) = &cache.fleet {
                    fleet.settle_cleared().await;
                }
            }));
        }
    }

    /// The service the cache renews for.
    pub(crate) fn service(&self) -> crate::error::Service {
        self.traits.service
    }

    /// The entry currently cached, valid or not.
    pub(crate) fn current(&self) -> Option<Arc<Entry>> {
        self.current.get()
    }

    /// Forgets the cached token set: the next call logs in afresh. A refused login stays
    /// refused: ending a session is no reason to send credentials the service turned down
    /// (only `clear_failure()` or a completed flow is).
    pub(crate) fn wipe(&self) {
        self.current.clear();
        tracing::info!(service = %self.traits.service, "session ended; cached tokens wiped");
    }

    /// The service refused `used`: stop serving it (if it is still the cached one).
    pub(crate) fn invalidate(&self, used: &crate::secret::SecretString) {
        if let Some(entry) = self.current() {
            if entry.secret.expose_secret() == used.expose_secret() {
                self.current.expire(&entry);
                tracing::info!(service = %self.traits.service, "token refused by the service; it will be renewed");
            }
        }
    }
}
