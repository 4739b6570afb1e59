//! Fleet coordination through a shared [`TokenStore`]: sessions in this process or others
//! load, save and adopt one token set, and take a lease so that one of them renews for all.
//!
//! The store keeps times on the wall clock (milliseconds since the epoch); a session keeps
//! them as `Instant`s. [`Timeline`] converts between the two at one reading of both clocks.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::clock::Clock;
use crate::error::Service;
use crate::expiry::RefreshPolicy;
use crate::store::{from_ms, to_ms, Lease, StoreKey, StoredRefusal, StoredTokens, TokenStore};
use crate::token::{AccessToken, Companions, Entry, EntryParts, Refresh, TokenOrigin};

/// The longest a session waits for another replica's renewal before renewing itself.
const LEASE_WAIT_LIMIT: Duration = Duration::from_secs(60);

/// How long a session leaves its store alone after it failed. A store that does not answer
/// (a hung Redis) costs each operation its timeouts, seconds, and a renewal makes up to four:
/// after the first failure the renewal goes on without the store, and so do the next ones for
/// this long. A logout still asks the store to forget the token set.
pub(super) const STORE_DOWN_HOLD: Duration = Duration::from_secs(30);

/// The longest a session waits for one store operation; past it the operation counts as
/// failed (and the store is left alone for [`STORE_DOWN_HOLD`]). Above what this crate's
/// stores take at worst (a `FileStore` waits 2 s for a lock; a `RedisStore` call times out
/// after 2 s and is tried twice): it bounds a store of the application's own that never
/// answers.
pub(super) const STORE_OPERATION_LIMIT: Duration = Duration::from_secs(10);

/// What waiting for the fleet's renewal lease gave.
pub(super) enum Leased {
    /// This session renews, and releases the lease after.
    Granted(Lease),
    /// Another session renewed: its fresh token.
    Token(AccessToken),
    /// No fleet coordination (the store failed, or a holder took far too long): renew alone.
    Alone,
}

/// One session's place in the fleet: the store, and the key its token set is kept under.
pub(super) struct Fleet {
    service: Service,
    store: Arc<dyn TokenStore>,
    key: StoreKey,
    clock: Arc<dyn Clock>,
    /// When the store last failed (see [`STORE_DOWN_HOLD`]).
    failed_at: Mutex<Option<Instant>>,
    /// Whether `clear_failure()` asked for the stored refusal to go and it has not gone yet.
    refusal_cleared: std::sync::atomic::AtomicBool,
    /// Taken to read, write or remove the stored refusal, so that the removal `clear_failure()`
    /// asked for never lands after a refusal met since (which removes it first).
    refusal_lock: tokio::sync::Mutex<()>,
}

impl Fleet {
    pub(super) fn new(
        service: Service,
        store: Arc<dyn TokenStore>,
        key: StoreKey,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            service,
            store,
            key,
            clock,
            failed_at: Mutex::new(None),
            refusal_cleared: std::sync::atomic::AtomicBool::new(false),
            refusal_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The account's key in the store.
    pub(super) fn key(&self) -> &StoreKey {
        &self.key
    }

    /// The login refusal another session (or this one) stored, if any and the store answers.
    pub(super) async fn load_refusal(&self) -> Option<StoredRefusal> {
        let _lock = self.refusal_lock.lock().await;
        if !self.settle_clear().await {
            // The refusal this session cleared could not be removed: it is not read back.
            return None;
        }
        let consequence = "token store unavailable; the account's refusals are not seen";
        self.attempt(consequence, || self.store.load_refusal(&self.key))
            .await
            .flatten()
    }

    /// Stores `refusal`, for the other sessions of the account.
    pub(super) async fn save_refusal(&self, mut refusal: StoredRefusal) {
        let _lock = self.refusal_lock.lock().await;
        self.settle_clear().await;
        let timeline = Timeline::read(&*self.clock);
        refusal.saved_at_ms = Some(to_ms(timeline.wall));
        refusal.written_at = Some(timeline.now);
        let consequence = "token store unavailable; the refusal stays in this session only";
        self.attempt(consequence, || self.store.save_refusal(&self.key, &refusal))
            .await;
    }

    /// `clear_failure()` was called: the stored refusal goes, at [`Self::settle_cleared`]
    /// (which a task of the session's runs at once) or before the next refusal is read or
    /// written, whichever comes first.
    pub(super) fn clear_refusal(&self) {
        self.refusal_cleared.store(true, Ordering::Release);
    }

    /// Removes the stored refusal if `clear_failure()` asked for it.
    pub(super) async fn settle_cleared(&self) {
        let _lock = self.refusal_lock.lock().await;
        self.settle_clear().await;
    }

    /// Removes the stored refusal if `clear_failure()` asked for it; whether nothing is left
    /// to remove. Called under `refusal_lock`.
    async fn settle_clear(&self) -> bool {
        if !self.refusal_cleared.swap(false, Ordering::AcqRel) {
            return true;
        }
        let consequence = "token store unavailable; the stored refusal was not removed";
        let removed = self
            .attempt(consequence, || self.store.remove_refusal(&self.key))
            .await
            .is_some();
        if !removed {
            self.refusal_cleared.store(true, Ordering::Release);
        }
        removed
    }

    /// Whether the store failed less than [`STORE_DOWN_HOLD`] ago.
    fn down(&self) -> bool {
        let failed_at = *self.failed_at.lock().unwrap_or_else(|p| p.into_inner());
        failed_at.is_some_and(|at| self.clock.now().saturating_duration_since(at) < STORE_DOWN_HOLD)
    }

    /// Runs a store operation, unless the store failed less than [`STORE_DOWN_HOLD`] ago
    /// (`None`; the operation is not even built, so a store that does work before its future
    /// is polled does none). A failure is logged with what it means for the session
    /// (`consequence`), starts the hold and answers `None` too.
    async fn attempt<T, Fut>(&self, consequence: &str, operation: impl FnOnce() -> Fut) -> Option<T>
    where
        Fut: Future<Output = Result<T, crate::Error>>,
    {
        if self.down() {
            return None;
        }
        match self.bounded(operation()).await {
            Ok(answer) => Some(answer),
            Err(error) => {
                *self.failed_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(self.clock.now());
                tracing::warn!(service = %self.service, %error, "{consequence}");
                None
            }
        }
    }

    /// The stored token set, if there is one and the store answers.
    pub(super) async fn load(&self) -> Option<StoredTokens> {
        let consequence = "token store unavailable; carrying on without it";
        self.attempt(consequence, || self.store.load(&self.key))
            .await
            .flatten()
    }

    /// Keeps `entry` in the store, for the fleet.
    pub(super) async fn save(&self, entry: &Entry) {
        let stored = Timeline::read(&*self.clock).stored(entry);
        let consequence = "token store unavailable; the token stays in this session only";
        self.attempt(consequence, || {
            crate::store::save_renewed(&*self.store, &self.key, &stored)
        })
        .await;
    }

    /// `operation`, or a failure once it has taken [`STORE_OPERATION_LIMIT`]: in real time
    /// (tokio's timer), like the HTTP client's timeouts, since no session clock can make a
    /// store answer sooner.
    async fn bounded<T>(
        &self,
        operation: impl Future<Output = Result<T, crate::Error>>,
    ) -> Result<T, crate::Error> {
        tokio::select! {
            // An answer ready by the bound is taken.
            biased;
            outcome = operation => outcome,
            () = tokio::time::sleep(STORE_OPERATION_LIMIT) => Err(crate::Error::configuration(
                Some(self.service),
                format!("token store: no answer within {STORE_OPERATION_LIMIT:?}"),
            )),
        }
    }

    /// Forgets the stored token set (logout).
    pub(super) async fn remove(&self) {
        if let Err(error) = self.bounded(self.store.remove(&self.key)).await {
            tracing::warn!(service = %self.service, %error, "token store unavailable; the stored token set was not removed");
        }
    }

    /// Gives the renewal lease back, for the next renewal (a store that failed meanwhile lets
    /// it expire).
    pub(super) async fn release(&self, lease: &Lease) {
        let consequence = "could not release the renewal lease; it will expire";
        self.attempt(consequence, || self.store.release(&self.key, lease))
            .await;
    }

    /// Waits for the right to renew: granted, or another holder's fresh token set (which
    /// `adopt` takes from the store), or (the store failing, or a holder taking far too long)
    /// the go-ahead to renew alone.
    pub(super) async fn lease<F, Fut>(&self, adopt: F) -> Leased
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Option<AccessToken>>,
    {
        let clock = &*self.clock;
        let started = clock.now();
        let mut pause = Duration::from_millis(25);
        loop {
            let consequence = "token store unavailable; renewing without the fleet lease";
            match self
                .attempt(consequence, || self.store.lease(&self.key))
                .await
            {
                Some(Some(lease)) => {
                    // The previous holder may have stored its token set and released the
                    // lease since this session last looked: look again before renewing.
                    if let Some(token) = adopt().await {
                        self.release(&lease).await;
                        return Leased::Token(token);
                    }
                    return Leased::Granted(lease);
                }
                Some(None) => {}
                None => return Leased::Alone,
            }
            if clock.now().saturating_duration_since(started) > LEASE_WAIT_LIMIT {
                tracing::warn!(service = %self.service, "the renewal lease is held too long; renewing alone");
                return Leased::Alone;
            }
            clock.sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(400));
            if let Some(token) = adopt().await {
                return Leased::Token(token);
            }
        }
    }
}

/// One reading of both clocks, to move times between the store's wall clock and `Instant`s.
pub(super) struct Timeline {
    pub(super) now: Instant,
    wall: SystemTime,
    /// When reading a stored set: the writer's wall clock when it saved it, and how long ago
    /// that was (see [`Timeline::of`]).
    saved: Option<(u64, Duration)>,
}

impl Timeline {
    pub(super) fn read(clock: &dyn Clock) -> Self {
        Self {
            now: clock.now(),
            wall: clock.system_now(),
            saved: None,
        }
    }

    /// This reading, for the times of `stored`: each is read as the time it was after the
    /// save, less the time since the save. That time is counted on a clock writer and reader
    /// share: the process's monotonic clock when the set crossed this process's memory, else
    /// the store's own (the machine's, Redis's); only a store that measures nothing leaves it
    /// to this session's wall clock against the writer's (never less than nothing). A set
    /// written by an earlier version (no save time) is read against the wall clock as then.
    fn of(mut self, stored: &StoredTokens) -> Self {
        self.saved = stored.saved_at_ms.map(|saved_at| {
            let age = self.age(saved_at, stored.written_at, stored.age);
            (saved_at, age)
        });
        self
    }

    /// How long ago something saved at `saved_at` (the writer's wall clock) was saved: on the
    /// process's monotonic clock when it was `written_at` in this process, else as the store
    /// measured it (`measured`), else on this session's wall clock against the writer's.
    pub(super) fn age(
        &self,
        saved_at: u64,
        written_at: Option<Instant>,
        measured: Option<Duration>,
    ) -> Duration {
        written_at
            .map(|written| self.now.saturating_duration_since(written))
            .or(measured)
            .unwrap_or_else(|| {
                self.wall
                    .duration_since(from_ms(saved_at))
                    .unwrap_or(Duration::ZERO)
            })
    }

    /// The `Instant` of a stored wall-clock time (now, if that time has passed).
    fn instant(&self, ms: u64) -> Instant {
        match self.saved {
            Some((saved_at, age)) => {
                self.now + Duration::from_millis(ms.saturating_sub(saved_at)).saturating_sub(age)
            }
            None => {
                self.now
                    + from_ms(ms)
                        .duration_since(self.wall)
                        .unwrap_or(Duration::ZERO)
            }
        }
    }

    /// The stored wall-clock time of an `Instant`.
    fn ms(&self, at: Instant) -> u64 {
        to_ms(self.wall + at.saturating_duration_since(self.now))
    }

    /// `entry` as the store keeps it.
    fn stored(&self, entry: &Entry) -> StoredTokens {
        let refresh = entry.refresh.as_ref();
        StoredTokens {
            access: entry.secret.clone(),
            refresh: entry.refresh_token().cloned(),
            id_token: entry.extra.id_token.clone(),
            cookie: entry.extra.cookie.clone(),
            bearer: entry.extra.bearer.clone(),
            expires_at_ms: self.ms(entry.expires_at()),
            renew_after_ms: entry
                .expires_at()
                .checked_sub(entry.lead())
                .map(|at| self.ms(at)),
            expires_at_most_ms: entry.expires_at_most().map(|at| self.ms(at)),
            refresh_expires_at_ms: refresh.and_then(|r| r.expires_at).map(|at| self.ms(at)),
            refresh_uses: refresh.map_or(0, |r| r.uses),
            stepped_up: entry.stepped_up.load(Ordering::Acquire),
            exchanged: entry.extra.exchanged,
            saved_at_ms: Some(to_ms(self.wall)),
            stamp: None,
            age: None,
            written_at: Some(self.now),
        }
    }

    /// A stored token set as this session keeps it: renewal falls due when the storing session
    /// said, or else by `policy`.
    pub(super) fn entry_parts(
        self,
        stored: StoredTokens,
        policy: &RefreshPolicy,
        sliding: Option<Duration>,
    ) -> EntryParts {
        let this = self.of(&stored);
        let expires_at = this.instant(stored.expires_at_ms);
        EntryParts {
            secret: stored.access,
            refresh: stored.refresh.map(|token| Refresh {
                token,
                expires_at: stored.refresh_expires_at_ms.map(|ms| this.instant(ms)),
                uses: stored.refresh_uses,
            }),
            extra: Companions {
                id_token: stored.id_token,
                cookie: stored.cookie,
                bearer: stored.bearer,
                stepped_up: false,
                exchanged: stored.exchanged,
            },
            origin: TokenOrigin::Store,
            expires_at,
            expires_at_most: stored.expires_at_most_ms.map(|ms| this.instant(ms)),
            stepped_up: stored.stepped_up,
            lead: stored.renew_after_ms.map_or_else(
                || policy.lead(expires_at.saturating_duration_since(this.now)),
                |renew| expires_at.saturating_duration_since(this.instant(renew)),
            ),
            sliding,
        }
    }
}
