//! The one mechanism behind every session: a cached token, renewed ahead of expiry by a
//! single shared flight, with the refresh-or-login decision and failure handling in one place.
//! Each service supplies only its differences through [`Provider`].

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::OnceCell;

use crate::clock::Clock;
use crate::error::{Error, ErrorKind, Service};
use crate::expiry::RefreshPolicy;
use crate::store::{from_ms, to_ms, StoreKey, StoredTokens, TokenStore};
use crate::token::{AccessToken, Entry, EntryParts, Extra, Grant, TokenOrigin};

/// What a service does differently: how to log in, how to renew, how long tokens live.
pub(crate) trait Provider: Send + Sync + 'static {
    /// Which service this is.
    const SERVICE: Service;
    /// The lifetime slides forward from each successful authenticated call (weavr).
    const SLIDING: Option<Duration> = None;
    /// A refresh token may be used at most this many times (accounts: 90).
    const MAX_REFRESH_USES: Option<u32> = None;
    /// The `operationId`s that end the session whose token they carry (a sign-out): called
    /// through `api()`, their success wipes the cached token instead of counting as activity.
    const ENDS_SESSION: &'static [&'static str] = &[];
    /// How long logins are held back after a 429 that does not say how long to wait: another
    /// attempt inside the service's window only extends it.
    const LOGIN_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
    /// How long a login challenge (a new password required, a password expired) stays usable:
    /// until then every call is answered with it, after that a new login starts a new one.
    const CHALLENGE_LIFETIME: Duration = Duration::from_secs(3 * 60);

    /// Who logs in (an email, a client id; never a secret), to key a shared token store.
    fn store_identity(&self) -> String {
        String::new()
    }

    /// Logs in with the stored credentials. `sent_wall` is the wall clock when it was sent.
    fn login(&self, sent_wall: SystemTime) -> impl Future<Output = Result<Grant, Error>> + Send;

    /// Renews with a refresh token. Only called when the entry holds a usable one.
    fn refresh(
        &self,
        _refresh_token: &crate::secret::SecretString,
        _sent_wall: SystemTime,
    ) -> impl Future<Output = Result<Grant, Error>> + Send {
        async {
            Err(Error::configuration(
                Some(Self::SERVICE),
                "this service has no refresh",
            ))
        }
    }
}

/// The longest a session waits for another replica's renewal before renewing itself.
const LEASE_WAIT_LIMIT: Duration = Duration::from_secs(60);

/// What waiting for the fleet's renewal lease gave.
enum Leased {
    /// This session renews, and releases the lease after.
    Granted(crate::store::Lease),
    /// Another session renewed: its fresh token.
    Token(AccessToken),
    /// No fleet coordination (no store, or it failed): renew alone.
    Alone,
}

/// A login failure that must not be repeated with the same credentials (until `until`).
struct Blocked {
    error: Error,
    until: Option<Instant>,
}

type Flight = Arc<OnceCell<Result<AccessToken, Error>>>;

/// What `access_token()` returns: at its first poll the cached token if it is fresh (no
/// future state beyond a reference), else the shared renewal, boxed so that the future stays
/// two words instead of a whole HTTP exchange's state.
pub(crate) enum TokenFuture<'a, P> {
    Start(&'a Cache<P>),
    Renew(std::pin::Pin<Box<dyn Future<Output = Result<AccessToken, Error>> + Send + 'a>>),
}

impl<P: Provider> Future for TokenFuture<'_, P> {
    type Output = Result<AccessToken, Error>;

    #[inline]
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.get_mut();
        if let Self::Start(cache) = *this {
            if let Some(token) = cache.fresh() {
                return std::task::Poll::Ready(Ok(token));
            }
            *this = Self::Renew(Box::pin(cache.join_flight()));
        }
        match this {
            Self::Renew(renewal) => renewal.as_mut().poll(cx),
            Self::Start(_) => unreachable!("replaced above"),
        }
    }
}

/// Counters of the requests a cache has made, for tests and diagnostics.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) logins: AtomicU64,
    pub(crate) refreshes: AtomicU64,
}

/// Caches a thread keeps handles for at once; more evict the oldest.
const LOCAL_SLOTS: usize = 4;

/// This thread's handle to one cache's current token.
struct Slot {
    cache: u64,
    generation: u64,
    /// The token's [`Entry::fresh_until`] when the slot was filled: comparing it with now is
    /// the whole freshness check of the hot path.
    fresh_until: Instant,
    token: AccessToken,
}

struct Local {
    slots: [Option<Slot>; LOCAL_SLOTS],
    next: usize,
}

impl Local {
    fn put(&mut self, slot: Slot) {
        let index = self
            .slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.cache == slot.cache))
            .unwrap_or_else(|| {
                let index = self.next;
                self.next = (index + 1) % LOCAL_SLOTS;
                index
            });
        self.slots[index] = Some(slot);
    }
}

thread_local! {
    // A thread keeps the last token it was served, per cache, until the cache's token changes
    // or another cache takes the slot; the secret is then dropped (and zeroized) with it.
    static LOCAL: std::cell::RefCell<Local> = const {
        std::cell::RefCell::new(Local { slots: [const { None }; LOCAL_SLOTS], next: 0 })
    };
}

static CACHE_IDS: AtomicU64 = AtomicU64::new(1);

pub(crate) struct Cache<P> {
    id: u64,
    /// Moves whenever `current` is replaced, so that threads drop their stale handles.
    generation: AtomicU64,
    pub(crate) provider: P,
    pub(crate) clock: Arc<dyn Clock>,
    /// `clock` is the system clock: the hot path reads `Instant::now()` inline.
    system_clock: bool,
    base: Instant,
    policy: RefreshPolicy,
    current: RwLock<Option<Arc<Entry>>>,
    flight: Mutex<Option<(u64, Flight)>>,
    flights: AtomicU64,
    blocked: Mutex<Option<Blocked>>,
    pub(crate) counters: Counters,
    store: Option<(Arc<dyn TokenStore>, StoreKey)>,
}

/// How long to wait before trying again after an early renewal failed while the token is
/// still valid: a quarter of the time left, between 1 s and 30 s.
fn retry_delay(time_left: Duration) -> Duration {
    (time_left / 4).clamp(Duration::from_secs(1), Duration::from_secs(30))
}

impl<P: Provider> Cache<P> {
    pub(crate) fn new(provider: P, clock: Arc<dyn Clock>, policy: RefreshPolicy) -> Self {
        let base = clock.now();
        Self {
            system_clock: clock.is_system_clock(),
            id: CACHE_IDS.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
            provider,
            clock,
            base,
            policy,
            current: RwLock::new(None),
            flight: Mutex::new(None),
            flights: AtomicU64::new(0),
            blocked: Mutex::new(None),
            counters: Counters::default(),
            store: None,
        }
    }

    /// Keeps the token set in `store` under `key` as well.
    pub(crate) fn with_store(mut self, store: Arc<dyn TokenStore>, key: StoreKey) -> Self {
        self.store = Some((store, key));
        self
    }

    /// The cached token when it is fresh. The hot path: it reads this thread's handle to the
    /// current token and the clock, and writes nothing shared.
    fn fresh(&self) -> Option<AccessToken> {
        let generation = self.generation.load(Ordering::Acquire);
        // An indirect call costs a few ns of a path that is ~30 ns in all.
        let now = if self.system_clock {
            Instant::now()
        } else {
            self.clock.now()
        };
        let local = LOCAL
            .try_with(|local| {
                let local = local.try_borrow().ok()?;
                local
                    .slots
                    .iter()
                    .flatten()
                    .find(|s| s.cache == self.id && s.generation == generation)
                    .filter(|s| now < s.fresh_until)
                    .map(|s| s.token.clone())
            })
            .ok()
            .flatten();
        if local.is_some() {
            return local;
        }
        let entry = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        if !entry.is_fresh(now) {
            return None;
        }
        let fresh_until = entry.fresh_until();
        let token = AccessToken::new(entry);
        let _ = LOCAL.try_with(|local| {
            if let Ok(mut local) = local.try_borrow_mut() {
                local.put(Slot {
                    cache: self.id,
                    generation,
                    fresh_until,
                    token: token.clone(),
                });
            }
        });
        Some(token)
    }

    /// A valid token: the cached one, or one shared renewal.
    pub(crate) fn access_token(&self) -> TokenFuture<'_, P> {
        TokenFuture::Start(self)
    }

    async fn join_flight(&self) -> Result<AccessToken, Error> {
        let (id, flight) = {
            let mut slot = self.flight.lock().unwrap_or_else(|p| p.into_inner());
            match &*slot {
                Some((id, flight)) => (*id, flight.clone()),
                None => {
                    let id = self.flights.fetch_add(1, Ordering::Relaxed);
                    let flight = Flight::default();
                    *slot = Some((id, flight.clone()));
                    (id, flight)
                }
            }
        };
        // Whoever runs the renewal, everyone in this flight gets its outcome. If that caller is
        // cancelled, OnceCell hands the renewal to the next waiter.
        flight.get_or_init(|| self.renew(id)).await.clone()
    }

    fn end_flight(&self, id: u64) {
        let mut slot = self.flight.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_some_and(|(current, _)| *current == id) {
            *slot = None;
        }
    }

    async fn renew(&self, id: u64) -> Result<AccessToken, Error> {
        let result = self.renew_inner().await;
        self.end_flight(id);
        result
    }

    async fn renew_inner(&self) -> Result<AccessToken, Error> {
        // A flight that just ended may have left a fresh token behind.
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        // So may another session, in the shared store.
        if let Some(token) = self.adopt_stored().await {
            return Ok(token);
        }
        // In a shared store, one session renews for all: the others wait for its token set.
        let lease = match self.take_lease().await {
            Leased::Token(token) => return Ok(token),
            Leased::Granted(lease) => Some(lease),
            Leased::Alone => None,
        };
        // The renewal's saves are fenced by the lease: a holder that lost it writes nothing.
        let outcome = crate::store::under_lease(lease.as_ref(), self.renew_now()).await;
        if let (Some(lease), Some((store, key))) = (lease, &self.store) {
            if let Err(error) = store.release(key, &lease).await {
                tracing::warn!(service = %P::SERVICE, %error, "could not release the renewal lease; it will expire");
            }
        }
        outcome
    }

    /// Waits for the right to renew: granted, or another holder's fresh token set, or (the
    /// store failing, or a holder taking far too long) the go-ahead to renew alone.
    async fn take_lease(&self) -> Leased {
        let Some((store, key)) = &self.store else {
            return Leased::Alone;
        };
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(25);
        loop {
            match store.lease(key).await {
                Ok(Some(lease)) => {
                    // The previous holder may have stored its token set and released the
                    // lease since this session last looked: look again before renewing.
                    if let Some(token) = self.adopt_stored().await {
                        if let Err(error) = store.release(key, &lease).await {
                            tracing::warn!(service = %P::SERVICE, %error, "could not release the renewal lease; it will expire");
                        }
                        return Leased::Token(token);
                    }
                    return Leased::Granted(lease);
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(service = %P::SERVICE, %error, "token store unavailable; renewing without the fleet lease");
                    return Leased::Alone;
                }
            }
            if started.elapsed() > LEASE_WAIT_LIMIT {
                tracing::warn!(service = %P::SERVICE, "the renewal lease is held too long; renewing alone");
                return Leased::Alone;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(400));
            if let Some(token) = self.adopt_stored().await {
                return Leased::Token(token);
            }
        }
    }

    async fn renew_now(&self) -> Result<AccessToken, Error> {
        let current = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let now = self.clock.now();
        let refresh = current
            .as_ref()
            .filter(|e| e.refresh_usable(now, P::MAX_REFRESH_USES));
        let outcome = match refresh {
            Some(entry) => match self.refresh_with(entry).await {
                Ok(token) => Ok(token),
                Err(e) if refresh_refused(&e) => {
                    tracing::info!(service = %P::SERVICE, error = %e, "refresh token refused, logging in again");
                    self.login().await
                }
                Err(e) => Err(e),
            },
            None => self.login().await,
        };
        match outcome {
            Ok(token) => Ok(token),
            Err(error) => {
                let now = self.clock.now();
                if let Some(entry) = current.filter(|e| e.is_valid(now)) {
                    let left = entry.expires_at().saturating_duration_since(now);
                    entry.postpone_renewal(now, retry_delay(left));
                    self.generation.fetch_add(1, Ordering::AcqRel);
                    tracing::warn!(service = %P::SERVICE, %error, "early renewal failed; still serving the valid token");
                    return Ok(AccessToken::new(entry));
                }
                Err(error)
            }
        }
    }

    async fn login(&self) -> Result<AccessToken, Error> {
        if let Some(error) = self.blocked_error() {
            return Err(error);
        }
        let sent_at = self.clock.now();
        self.counters.logins.fetch_add(1, Ordering::Relaxed);
        let result = self.provider.login(self.clock.system_now()).await;
        match result {
            Ok(grant) => {
                tracing::info!(service = %P::SERVICE, lifetime_s = grant.lifetime.as_secs(), "logged in");
                let token = self.store(grant, sent_at, TokenOrigin::Login, None);
                self.save_stored(token.entry()).await;
                Ok(token)
            }
            Err(error) => {
                tracing::warn!(service = %P::SERVICE, %error, "login failed");
                self.block_if_final(&error);
                Err(error)
            }
        }
    }

    async fn refresh_with(&self, entry: &Arc<Entry>) -> Result<AccessToken, Error> {
        let refresh_token = entry.refresh.as_ref().expect("refresh_usable checked it");
        let sent_at = self.clock.now();
        self.counters.refreshes.fetch_add(1, Ordering::Relaxed);
        let grant = self
            .provider
            .refresh(refresh_token, self.clock.system_now())
            .await?;
        tracing::info!(service = %P::SERVICE, lifetime_s = grant.lifetime.as_secs(), "token refreshed");
        let token = self.store(grant, sent_at, TokenOrigin::Refresh, Some(entry));
        self.save_stored(token.entry()).await;
        Ok(token)
    }

    /// Takes the stored token set when it is newer than the cached one: fresh, it is served
    /// as is; due, its refresh token (if any) is what the renewal uses next.
    async fn adopt_stored(&self) -> Option<AccessToken> {
        let (store, key) = self.store.as_ref()?;
        let stored = match store.load(key).await {
            Ok(found) => found?,
            Err(error) => {
                tracing::warn!(service = %P::SERVICE, %error, "token store unavailable; carrying on without it");
                return None;
            }
        };
        let now = self.clock.now();
        let wall = self.clock.system_now();
        let at = |ms: u64| now + from_ms(ms).duration_since(wall).unwrap_or(Duration::ZERO);
        let expires_at = at(stored.expires_at_ms);
        let current = self.current();
        if current.as_ref().is_some_and(|c| {
            c.expires_at() >= expires_at
                || c.secret.expose_secret() == stored.access.expose_secret()
        }) {
            return None;
        }
        let entry = Arc::new(Entry::new(
            self.clock.clone(),
            self.base,
            EntryParts {
                secret: stored.access,
                refresh: stored.refresh,
                refresh_expires_at: stored.refresh_expires_at_ms.map(at),
                refresh_uses: stored.refresh_uses,
                extra: Extra {
                    id_token: stored.id_token,
                    cookie: stored.cookie,
                    bearer: stored.bearer,
                    stepped_up: false,
                },
                origin: TokenOrigin::Store,
                expires_at,
                expires_at_most: stored.expires_at_most_ms.map(at),
                stepped_up: stored.stepped_up,
                lead: stored.renew_after_ms.map_or_else(
                    || self.policy.lead(expires_at.saturating_duration_since(now)),
                    |renew| expires_at.saturating_duration_since(at(renew)),
                ),
                sliding: P::SLIDING,
            },
        ));
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(entry.clone());
        self.generation.fetch_add(1, Ordering::AcqRel);
        tracing::info!(service = %P::SERVICE, "token set taken from the store");
        entry.is_fresh(now).then(|| AccessToken::new(entry))
    }

    async fn save_stored(&self, entry: &Entry) {
        let Some((store, key)) = &self.store else {
            return;
        };
        let now = self.clock.now();
        let wall = self.clock.system_now();
        let ms = |at: Instant| to_ms(wall + at.saturating_duration_since(now));
        let stored = StoredTokens {
            access: entry.secret.clone(),
            refresh: entry.refresh.clone(),
            id_token: entry.extra.id_token.clone(),
            cookie: entry.extra.cookie.clone(),
            bearer: entry.extra.bearer.clone(),
            expires_at_ms: ms(entry.expires_at()),
            renew_after_ms: entry.expires_at().checked_sub(entry.lead()).map(ms),
            expires_at_most_ms: entry.expires_at_most().map(ms),
            refresh_expires_at_ms: entry.refresh_expires_at().map(ms),
            refresh_uses: entry.refresh_uses,
            stepped_up: entry.stepped_up.load(Ordering::Acquire),
        };
        if let Err(error) = crate::store::save_renewed(&**store, key, &stored).await {
            tracing::warn!(service = %P::SERVICE, %error, "token store unavailable; the token stays in this session only");
        }
    }

    /// Takes a token set obtained outside a renewal (a completed login challenge, a password
    /// update): it replaces whatever was cached, lifts a blocked login, and is stored.
    pub(crate) async fn install(&self, grant: Grant, sent_at: Instant) -> AccessToken {
        self.clear_failure();
        self.counters.logins.fetch_add(1, Ordering::Relaxed);
        let token = self.store(grant, sent_at, TokenOrigin::Login, None);
        self.save_stored(token.entry()).await;
        tracing::info!(service = %P::SERVICE, "logged in by a completed challenge");
        token
    }

    /// The current entry, or the stored one when this session has none that is valid (a
    /// logout in a new process ends the session a previous one started).
    pub(crate) async fn current_or_stored(&self) -> Option<Arc<Entry>> {
        let now = self.clock.now();
        if let Some(entry) = self.current().filter(|e| e.is_valid(now)) {
            return Some(entry);
        }
        self.adopt_stored().await;
        self.current().filter(|e| e.is_valid(now))
    }

    /// Records that the token `secret` was stepped up, here and in the store.
    pub(crate) async fn mark_stepped_up(&self, secret: &str) {
        if let Some(entry) = self.current() {
            if entry.secret.expose_secret() == secret {
                entry.stepped_up.store(true, Ordering::Release);
                self.save_stored(&entry).await;
            }
        }
    }

    /// Forgets the stored token set too (logout).
    pub(crate) async fn forget_stored(&self) {
        if let Some((store, key)) = &self.store {
            if let Err(error) = store.remove(key).await {
                tracing::warn!(service = %P::SERVICE, %error, "token store unavailable; the stored token set was not removed");
            }
        }
    }

    fn store(
        &self,
        grant: Grant,
        sent_at: Instant,
        origin: TokenOrigin,
        previous: Option<&Arc<Entry>>,
    ) -> AccessToken {
        // A refresh that returns no new refresh token keeps the old one, its expiry and its
        // use count.
        let (refresh, refresh_expires_at, refresh_uses) = match (grant.refresh, previous) {
            (Some(new), _) => (Some(new), grant.refresh_lifetime.map(|l| sent_at + l), 0),
            (None, Some(prev)) => (
                prev.refresh.clone(),
                prev.refresh_expires_at(),
                prev.refresh_uses + 1,
            ),
            (None, None) => (None, None, 0),
        };
        let mut extra = grant.extra;
        let stepped_up = extra.stepped_up;
        if let Some(prev) = previous {
            extra.id_token = extra.id_token.or_else(|| prev.extra.id_token.clone());
            extra.cookie = extra.cookie.or_else(|| prev.extra.cookie.clone());
            extra.bearer = extra.bearer.or_else(|| prev.extra.bearer.clone());
        }
        let entry = Arc::new(Entry::new(
            self.clock.clone(),
            self.base,
            EntryParts {
                secret: grant.access,
                refresh,
                refresh_expires_at,
                refresh_uses,
                extra,
                origin,
                expires_at: sent_at + grant.lifetime,
                expires_at_most: grant.max_lifetime.map(|max| sent_at + max),
                lead: self.policy.lead(grant.lifetime),
                sliding: P::SLIDING,
                stepped_up,
            },
        ));
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(entry.clone());
        self.generation.fetch_add(1, Ordering::AcqRel);
        AccessToken::new(entry)
    }

    fn blocked_error(&self) -> Option<Error> {
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        match &*blocked {
            Some(b) if b.until.is_none_or(|until| self.clock.now() < until) => {
                Some(b.error.clone())
            }
            Some(_) => {
                *blocked = None;
                None
            }
            None => None,
        }
    }

    /// Refused credentials are never sent again; a lock-out or rate limit is waited out.
    fn block_if_final(&self, error: &Error) {
        let until = match error.kind() {
            // Sending the same login again cannot succeed, and refused ones count towards a
            // lock-out; a flow (new password, password update) or clear_failure() lifts this.
            ErrorKind::InvalidCredentials
            | ErrorKind::AccessWindowExpired
            | ErrorKind::InvalidRequest
            // The same login would start the same challenge again (an MFA one sends an SMS).
            | ErrorKind::UnsupportedChallenge
            // A lock of unknown length: another attempt could only extend it.
            | ErrorKind::AccountLocked { retry_after: None } => None,
            // The challenge's session or temporary token is what the caller needs, as long as
            // it lasts; a login after that gets a new one.
            ErrorKind::PasswordExpired | ErrorKind::NewPasswordRequired => {
                Some(self.clock.now() + P::CHALLENGE_LIFETIME)
            }
            ErrorKind::AccountLocked {
                retry_after: Some(d),
            }
            | ErrorKind::RateLimited {
                retry_after: Some(d),
            } => Some(self.clock.now() + d),
            ErrorKind::RateLimited { retry_after: None } => {
                Some(self.clock.now() + P::LOGIN_RATE_LIMIT_WAIT)
            }
            _ => return,
        };
        *self.blocked.lock().unwrap_or_else(|p| p.into_inner()) = Some(Blocked {
            error: error.clone(),
            until,
        });
    }

    /// Forgets a refused login, so that the next call tries the credentials again.
    pub(crate) fn clear_failure(&self) {
        *self.blocked.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The entry currently cached, valid or not.
    pub(crate) fn current(&self) -> Option<Arc<Entry>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Forgets the cached token set: the next call logs in afresh. A refused login stays
    /// refused: ending a session is no reason to send credentials the service turned down
    /// (only `clear_failure()` or a completed flow is).
    pub(crate) fn wipe(&self) {
        let old = self
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(entry) = &old {
            entry.expire();
        }
        tracing::info!(service = %P::SERVICE, "session ended; cached tokens wiped");
    }

    /// The service refused `used`: stop serving it (if it is still the cached one).
    pub(crate) fn invalidate(&self, used: &crate::secret::SecretString) {
        if let Some(entry) = self.current() {
            if entry.secret.expose_secret() == used.expose_secret() {
                entry.expire();
                // Threads' handles hold this token's freshness deadline: drop them.
                self.generation.fetch_add(1, Ordering::AcqRel);
                tracing::info!(service = %P::SERVICE, "token refused by the service; it will be renewed");
            }
        }
    }
}

/// A refresh that failed because of the refresh token itself: logging in again is the cure.
fn refresh_refused(error: &Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::TokenRejected | ErrorKind::RefreshLimitExceeded | ErrorKind::InvalidCredentials
    )
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::clock::ManualClock;
    use crate::secret::SecretString;
    use crate::token::Extra;

    /// A provider whose answers are scripted: each login or refresh pops the next one.
    #[derive(Default)]
    struct Scripted {
        logins: Mutex<VecDeque<Result<Grant, Error>>>,
        refreshes: Mutex<VecDeque<Result<Grant, Error>>>,
        refresh_tokens_seen: Mutex<Vec<String>>,
        calls: AtomicUsize,
    }

    impl Provider for Scripted {
        const SERVICE: Service = Service::Accounts;
        const MAX_REFRESH_USES: Option<u32> = Some(2);

        async fn login(&self, _: SystemTime) -> Result<Grant, Error> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.logins
                .lock()
                .unwrap()
                .pop_front()
                .expect("an unscripted login")
        }

        async fn refresh(&self, token: &SecretString, _: SystemTime) -> Result<Grant, Error> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.refresh_tokens_seen
                .lock()
                .unwrap()
                .push(token.expose_secret().to_owned());
            self.refreshes
                .lock()
                .unwrap()
                .pop_front()
                .expect("an unscripted refresh")
        }
    }

    fn grant(access: &str, refresh: Option<&str>, secs: u64) -> Result<Grant, Error> {
        Ok(Grant {
            access: access.into(),
            refresh: refresh.map(SecretString::from),
            lifetime: Duration::from_secs(secs),
            max_lifetime: None,
            refresh_lifetime: Some(Duration::from_secs(3600)),
            extra: Extra::default(),
        })
    }

    fn cache(
        logins: Vec<Result<Grant, Error>>,
        refreshes: Vec<Result<Grant, Error>>,
    ) -> (Cache<Scripted>, ManualClock) {
        let clock = ManualClock::new();
        let provider = Scripted {
            logins: Mutex::new(logins.into()),
            refreshes: Mutex::new(refreshes.into()),
            ..Default::default()
        };
        let policy = RefreshPolicy::new().with_jitter(false);
        (Cache::new(provider, Arc::new(clock.clone()), policy), clock)
    }

    fn server_error() -> Result<Grant, Error> {
        Err(Error::new(ErrorKind::ServerError).with_status(500))
    }

    async fn secret(cache: &Cache<Scripted>) -> String {
        cache
            .access_token()
            .await
            .unwrap()
            .secret()
            .expose_secret()
            .to_owned()
    }

    #[tokio::test]
    async fn each_thread_s_handle_follows_renewals_wipes_and_other_caches() {
        let (one, clock) = cache(
            vec![grant("a", Some("r"), 600), grant("c", None, 600)],
            vec![grant("b", None, 600)],
        );
        let (two, _) = cache(vec![grant("other", None, 600)], vec![]);
        assert_eq!(secret(&one).await, "a");
        assert_eq!(secret(&two).await, "other", "a second cache on this thread");
        assert_eq!(secret(&one).await, "a", "served from this thread's handle");
        clock.advance(Duration::from_secs(570));
        assert_eq!(secret(&one).await, "b", "the renewal replaced the handle");
        assert_eq!(secret(&one).await, "b");
        let elsewhere = std::thread::scope(|s| {
            s.spawn(|| {
                ready_now(one.access_token())
                    .unwrap()
                    .secret()
                    .expose_secret()
                    .to_owned()
            })
            .join()
            .unwrap()
        });
        assert_eq!(elsewhere, "b", "another thread sees the same token");
        one.wipe();
        assert!(one.fresh().is_none(), "a wipe reaches this thread's handle");
        assert_eq!(secret(&one).await, "c");
        assert_eq!(secret(&two).await, "other");
    }

    /// Polls a future that is ready at once (the fast path needs no runtime).
    fn ready_now<F: std::future::Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let waker = std::task::Waker::noop();
        match future
            .as_mut()
            .poll(&mut std::task::Context::from_waker(waker))
        {
            std::task::Poll::Ready(output) => output,
            std::task::Poll::Pending => panic!("the fast path never waits"),
        }
    }

    #[tokio::test]
    async fn renews_by_refresh_token_and_keeps_it_when_none_is_returned() {
        let (cache, clock) = cache(
            vec![grant("a1", Some("r1"), 300)],
            vec![grant("a2", None, 300), grant("a3", None, 300)],
        );
        assert_eq!(secret(&cache).await, "a1");
        clock.advance(Duration::from_secs(271)); // past the 30 s margin of a 300 s token
        assert_eq!(secret(&cache).await, "a2");
        assert_eq!(
            cache.access_token().await.unwrap().origin(),
            TokenOrigin::Refresh
        );
        clock.advance(Duration::from_secs(271));
        assert_eq!(secret(&cache).await, "a3");
        assert_eq!(
            *cache.provider.refresh_tokens_seen.lock().unwrap(),
            ["r1", "r1"]
        );
    }

    #[tokio::test]
    async fn a_refresh_token_is_not_used_past_its_limit() {
        let (cache, clock) = cache(
            vec![grant("a1", Some("r1"), 300), grant("a4", Some("r2"), 300)],
            vec![grant("a2", None, 300), grant("a3", None, 300)],
        );
        secret(&cache).await;
        for expected in ["a2", "a3", "a4"] {
            clock.advance(Duration::from_secs(280));
            assert_eq!(secret(&cache).await, expected);
        }
        assert_eq!(cache.counters.refreshes.load(Ordering::SeqCst), 2);
        assert_eq!(cache.counters.logins.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_refused_refresh_falls_back_to_login() {
        let refused = Err(Error::new(ErrorKind::RefreshLimitExceeded).with_status(429));
        let (cache, clock) = cache(
            vec![grant("a1", Some("r1"), 300), grant("a2", Some("r2"), 300)],
            vec![refused],
        );
        secret(&cache).await;
        clock.advance(Duration::from_secs(300));
        assert_eq!(secret(&cache).await, "a2");
        assert_eq!(
            cache.access_token().await.unwrap().origin(),
            TokenOrigin::Login
        );
    }

    #[tokio::test]
    async fn an_early_renewal_failure_keeps_serving_the_valid_token_and_backs_off() {
        let (cache, clock) = cache(
            vec![grant("a1", Some("r1"), 300)],
            vec![server_error(), grant("a2", None, 300)],
        );
        secret(&cache).await;
        clock.advance(Duration::from_secs(280)); // due, 20 s left
        assert_eq!(
            secret(&cache).await,
            "a1",
            "a failed early refresh serves the valid token"
        );
        assert_eq!(secret(&cache).await, "a1", "and does not retry at once");
        assert_eq!(cache.provider.calls.load(Ordering::SeqCst), 2);
        clock.advance(Duration::from_secs(6)); // past the back-off of a quarter of 20 s
        assert_eq!(secret(&cache).await, "a2");
    }

    #[tokio::test]
    async fn an_expired_token_is_never_served_and_errors_are_not_cached() {
        let (cache, clock) = cache(
            vec![
                grant("a1", None, 300),
                server_error(),
                grant("a2", None, 300),
            ],
            vec![],
        );
        secret(&cache).await;
        clock.advance(Duration::from_secs(300));
        let err = cache.access_token().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ServerError);
        assert_eq!(secret(&cache).await, "a2", "the next call tries again");
    }

    #[tokio::test]
    async fn a_login_challenge_is_answered_while_it_lasts_then_a_new_login_starts_another() {
        let challenge = Err(Error::new(ErrorKind::NewPasswordRequired).with_status(200));
        let (cache, clock) = cache(vec![challenge, grant("a1", None, 300)], vec![]);
        for _ in 0..2 {
            let err = cache.access_token().await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NewPasswordRequired);
            assert_eq!(cache.provider.calls.load(Ordering::SeqCst), 1);
        }
        clock.advance(Scripted::CHALLENGE_LIFETIME);
        assert_eq!(
            secret(&cache).await,
            "a1",
            "its session is spent: log in again"
        );
    }

    #[tokio::test]
    async fn a_rate_limit_of_unknown_length_holds_logins_back_for_the_provider_s_wait() {
        let limited =
            Err(Error::new(ErrorKind::RateLimited { retry_after: None }).with_status(429));
        let (cache, clock) = cache(vec![limited, grant("a1", None, 300)], vec![]);
        cache.access_token().await.unwrap_err();
        clock.advance(Scripted::LOGIN_RATE_LIMIT_WAIT - Duration::from_secs(1));
        cache.access_token().await.unwrap_err();
        assert_eq!(cache.provider.calls.load(Ordering::SeqCst), 1);
        clock.advance(Duration::from_secs(1));
        assert_eq!(secret(&cache).await, "a1");
    }

    #[tokio::test]
    async fn invalidation_forces_renewal_but_keeps_the_refresh_token() {
        let (cache, _clock) = cache(
            vec![grant("a1", Some("r1"), 300)],
            vec![grant("a2", None, 300)],
        );
        secret(&cache).await;
        cache.invalidate(&"someone-else".into());
        assert_eq!(
            secret(&cache).await,
            "a1",
            "only the token that was refused is dropped"
        );
        cache.invalidate(&"a1".into());
        assert_eq!(secret(&cache).await, "a2");
        assert_eq!(*cache.provider.refresh_tokens_seen.lock().unwrap(), ["r1"]);
    }

    #[tokio::test]
    async fn sliding_never_passes_the_cap() {
        let clock = ManualClock::new();
        let entry = Entry::new(
            Arc::new(clock.clone()),
            clock.now(),
            EntryParts {
                secret: "t".into(),
                refresh: None,
                refresh_expires_at: None,
                refresh_uses: 0,
                extra: Extra::default(),
                origin: TokenOrigin::Login,
                expires_at: clock.now() + Duration::from_secs(300),
                expires_at_most: Some(clock.now() + Duration::from_secs(500)),
                lead: Duration::from_secs(30),
                sliding: Some(Duration::from_secs(300)),
                stepped_up: false,
            },
        );
        let start = clock.now();
        clock.advance(Duration::from_secs(100));
        entry.slide(clock.now());
        assert_eq!(entry.expires_at() - start, Duration::from_secs(400));
        clock.advance(Duration::from_secs(100));
        entry.slide(clock.now());
        assert_eq!(entry.expires_at() - start, Duration::from_secs(500));
        entry.slide(start); // an old request's success never moves it back
        assert_eq!(entry.expires_at() - start, Duration::from_secs(500));
    }
}
