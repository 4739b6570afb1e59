//! Where a session keeps its token set, so that sessions in other tasks, processes or machines
//! can share one login per expiry instead of each logging in.
//!
//! A session without a store keeps its tokens in its own memory (the default). With one
//! ([`crate::s7risk::SessionBuilder::token_store`] and the same method on every builder), a
//! session that needs a token first looks in the store, adopts a fresh token another session
//! left there, and writes back every token it obtains. A store that fails is logged and
//! bypassed: the session then behaves as if it had none, never as an outage.
//!
//! - [`MemoryStore`]: shared by the sessions of one process, with an in-process lease.
//! - [`FileStore`]: a file (mode 0600, replaced atomically), secrets sealed with
//!   XChaCha20-Poly1305 under a key the application supplies; shared by the processes of one
//!   machine through OS file locks (the lease, and every write).
//! - `RedisStore` (cargo feature `redis`): shared by a fleet, sealed the same way, with a
//!   lease kept alive while its holder renews, and writes fenced by it.
//!
//! Sessions of one account renew once for all: the one granted the lease renews, the others
//! wait for its token set. Stores name entries by a keyed hash of the [`StoreKey`] under the
//! sealing key, so no email, username or client id is readable in a file or in Redis.
//!
//! # Examples
//!
//! Two sessions of one account, in one process, sharing one login:
//!
//! ```no_run
//! # async fn run() -> Result<(), tokensmith::Error> {
//! use tokensmith::s7risk::Session;
//! use tokensmith::store::MemoryStore;
//!
//! let store = MemoryStore::new();
//! let session = |store: MemoryStore| {
//!     Session::builder()
//!         .origin("https://app.example.com")
//!         .user("analyst@example.com", "correct horse")
//!         .token_store(store)
//!         .build()
//! };
//! let (a, b) = (session(store.clone())?, session(store)?);
//! // Asked at the same moment, the two log in once between them.
//! let (first, second) = tokio::join!(a.access_token(), b.access_token());
//! let (_first, _second) = (first?, second?);
//! # Ok(()) }
//! ```

#[cfg(feature = "file-store")]
mod file;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "file-store", feature = "redis"))]
mod seal;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Service};
use crate::secret::SecretString;

#[cfg(feature = "file-store")]
#[cfg_attr(docsrs, doc(cfg(feature = "file-store")))]
pub use file::FileStore;
#[cfg(feature = "redis")]
pub use redis::{RedisStore, DEFAULT_LEASE_TTL};
#[cfg(any(feature = "file-store", feature = "redis"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "file-store", feature = "redis"))))]
pub use seal::SealingKey;

/// A boxed future, as the store methods return.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

/// Which session a token set belongs to: the service, its base URL and the identity that
/// logged in (an email, a client id, a username; never a secret, at most a fingerprint of one
/// where it picks the account, as weavr's api key picks the programme).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreKey(String);

impl StoreKey {
    /// The key of `identity`'s session with `service` at `base_url`.
    pub fn new(service: Service, base_url: &str, identity: &str) -> Self {
        Self(format!(
            "tokensmith:{}:{}:{}",
            service.name(),
            base_url.trim_end_matches('/'),
            identity
        ))
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The service's name (the key's second part).
    #[cfg(any(feature = "file-store", feature = "redis"))]
    pub(crate) fn service(&self) -> &str {
        self.0.split(':').nth(1).unwrap_or_default()
    }
}

/// A token set as a store keeps it. Times are wall-clock milliseconds since the Unix epoch of
/// the session that stored it.
///
/// A session that takes the set reads those times relative to when it was saved, and counts
/// the time since then on a clock the writer and the reader share (the process's own for a
/// [`MemoryStore`], the machine's for a `FileStore`, Redis's for a `RedisStore`): a set is
/// never served longer than its own lifetime, whatever the writer's or the reader's wall
/// clock says. A store of the application's own that keeps the set as this crate serializes
/// it shares no such clock: its sets are read against the reader's wall clock, never for longer
/// than the lifetime they had left when saved.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StoredTokens {
    /// The access token (or session cookie value).
    pub access: SecretString,
    /// The refresh token, where the service has one.
    pub refresh: Option<SecretString>,
    /// The OpenID id token (accounts).
    pub id_token: Option<SecretString>,
    /// A session cookie kept beside a bearer token.
    pub cookie: Option<SecretString>,
    /// A bearer token kept beside a session cookie (passwordsafe OAuth sessions).
    pub bearer: Option<SecretString>,
    /// When the access token expires.
    pub expires_at_ms: u64,
    /// From when the access token is due for renewal (its expiry minus the refresh margin of
    /// the session that obtained it).
    pub renew_after_ms: Option<u64>,
    /// However its expiry slides, never past this.
    pub expires_at_most_ms: Option<u64>,
    /// When the refresh token expires, when known.
    pub refresh_expires_at_ms: Option<u64>,
    /// How many times the refresh token has been used.
    pub refresh_uses: u32,
    /// weavr: the access token was stepped up.
    #[serde(default)]
    pub stepped_up: bool,
    /// weavr: the access token is the identity's, from an exchange of the sign-in token.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) exchanged: bool,
    /// The writer's wall clock when it saved the set: the other times are read relative to it,
    /// so that the writer's clock's offset does not shift them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) saved_at_ms: Option<u64>,
    /// The store's own note of when it saved the set, on its clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) stamp: Option<Stamp>,
    /// How long ago the set was saved, on the store's clock: set by the store that loads it.
    #[serde(skip)]
    pub(crate) age: Option<Duration>,
    /// When the set was saved, on the writer's monotonic clock: it crosses only stores that
    /// keep the set in this process's memory, where every session's `Instant`s agree.
    #[serde(skip)]
    pub(crate) written_at: Option<std::time::Instant>,
}

/// A store's note of when it saved a set, on the store's own clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Stamp {
    /// The wall-clock milliseconds of the store's clock (a `FileStore`: the machine's).
    Wall(u64),
    /// The lifetime the store gave the entry, in milliseconds: Redis counts it down on its own
    /// clock, and what is left of it tells the entry's age.
    Ttl(u64),
}

impl Stamp {
    /// How long ago a set stamped `Wall` was saved, on `clock` (`None` for another stamp).
    #[cfg(feature = "file-store")]
    pub(crate) fn wall_age(self, clock: &dyn crate::clock::Clock) -> Option<Duration> {
        match self {
            Self::Wall(ms) => Some(
                clock
                    .system_now()
                    .duration_since(from_ms(ms))
                    .unwrap_or(Duration::ZERO),
            ),
            Self::Ttl(_) => None,
        }
    }
}

/// A login refusal as a store keeps it beside the account's token set, so that every session
/// of the account sees it before it sends a login: refused credentials (and the like: a
/// malformed login, an access window that expired, a challenge the SDK cannot answer, a lock
/// of unknown length) until a session's `clear_failure()`, and a lock-out or rate-limit
/// window until it ends. Only a session whose credentials are the ones refused is held back
/// by a refusal for good (the set keeps a fingerprint of them, never the credentials); a
/// window holds every session of the account back.
///
/// Opaque: a store keeps it as it serializes (with `serde`), sealed as it seals a token set.
/// A refusal after a transient failure (the login backoff) and a login challenge are each
/// session's own, and never stored.
#[derive(Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StoredRefusal {
    pub(crate) kind: RefusalKind,
    pub(crate) status: Option<u16>,
    pub(crate) code: Option<String>,
    pub(crate) message: Option<String>,
    /// How long logins are held back from the save, in milliseconds; none: until cleared.
    pub(crate) hold_ms: Option<u64>,
    /// A fingerprint of the refused credentials (see `Cache::credentials`).
    pub(crate) credentials: u64,
    /// As in [`StoredTokens`]: the writer's save time, the store's stamp, the age it measured,
    /// and the writer's `Instant` within this process.
    pub(crate) saved_at_ms: Option<u64>,
    pub(crate) stamp: Option<Stamp>,
    #[serde(skip)]
    pub(crate) age: Option<Duration>,
    #[serde(skip)]
    pub(crate) written_at: Option<std::time::Instant>,
}

impl std::fmt::Debug for StoredRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredRefusal")
            .field("kind", &self.kind)
            .field("status", &self.status)
            .field("hold_ms", &self.hold_ms)
            .finish_non_exhaustive()
    }
}

/// What kind of refusal a [`StoredRefusal`] is; one this version does not know (a newer
/// one's) holds nothing back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RefusalKind {
    InvalidCredentials,
    AccessWindowExpired,
    InvalidRequest,
    UnsupportedChallenge,
    AccountLocked,
    RateLimited,
    #[serde(other)]
    Unknown,
}

pub(crate) fn to_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// The right to renew one token set, until it is released, dropped, or (in a store whose
/// leases expire) lost.
///
/// Clones share one right: what the lease holds (an in-process claim, an OS file lock, a
/// keep-alive task) ends when [`Lease::end`] is called or the last clone is dropped.
#[derive(Clone)]
pub struct Lease {
    inner: Arc<LeaseInner>,
}

struct LeaseInner {
    token: String,
    guard: Mutex<Option<Box<dyn std::any::Any + Send>>>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token fences the holder's writes: not for logs.
        f.debug_struct("Lease").finish_non_exhaustive()
    }
}

impl Lease {
    /// A lease identified by `token` (unique to its holder: only the holder releases it).
    pub fn new(token: impl Into<String>) -> Self {
        Self::holding(token, ())
    }

    /// A lease identified by `token` that keeps `guard` (a lock, the sender that keeps a
    /// keep-alive task running) until it ends.
    pub fn holding(token: impl Into<String>, guard: impl Send + 'static) -> Self {
        Self {
            inner: Arc::new(LeaseInner {
                token: token.into(),
                guard: Mutex::new(Some(Box::new(guard))),
            }),
        }
    }

    /// The holder's token.
    pub fn token(&self) -> &str {
        &self.inner.token
    }

    /// Drops what the lease holds now, for every clone (a store's `release` calls it).
    pub fn end(&self) {
        let guard = self
            .inner
            .guard
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        drop(guard);
    }
}

/// Where sessions keep their token sets.
///
/// Implementations must be safe to call from many tasks at once. A failing call is reported
/// as an error; the session logs it and carries on without the store.
pub trait TokenStore: Send + Sync + std::fmt::Debug + 'static {
    /// Asks for the right to renew the token set under `key`. `Some` when granted; `None`
    /// when another holder has it (the session then waits for that holder's token set, and
    /// asks again, since an abandoned lease expires). The default grants it always: a store
    /// that keeps it does not coordinate renewals (every store of this crate overrides it).
    fn lease<'a>(&'a self, _key: &'a StoreKey) -> StoreFuture<'a, Option<Lease>> {
        Box::pin(async { Ok(Some(Lease::new("local"))) })
    }

    /// Gives a lease back once its holder stored the new token set (or failed).
    fn release<'a>(&'a self, _key: &'a StoreKey, lease: &'a Lease) -> StoreFuture<'a, ()> {
        lease.end();
        Box::pin(async { Ok(()) })
    }

    /// The token set stored under `key`, if any.
    fn load<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<StoredTokens>>;
    /// Stores `tokens` under `key`, replacing what was there.
    fn save<'a>(&'a self, key: &'a StoreKey, tokens: &'a StoredTokens) -> StoreFuture<'a, ()>;
    /// Stores `tokens`, obtained by a renewal under `lease`, only while `lease` is still this
    /// holder's: a store whose leases can expire refuses (an error) once another holder may
    /// have stored a newer set. The default is [`Self::save`], right for stores whose leases
    /// last as long as their holder.
    fn save_leased<'a>(
        &'a self,
        key: &'a StoreKey,
        tokens: &'a StoredTokens,
        _lease: &'a Lease,
    ) -> StoreFuture<'a, ()> {
        self.save(key, tokens)
    }
    /// Forgets what is stored under `key` (logout). A refusal stored under it stays.
    fn remove<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, ()>;

    /// The login refusal stored under `key` (see [`StoredRefusal`]), if any, as saved.
    ///
    /// This and the next two methods share refusals between the sessions of an account. The
    /// defaults keep nothing: a store that does not implement all three shares no refusals,
    /// and each session on it keeps its own (as a session without a store does). Every store
    /// of this crate implements them.
    fn load_refusal<'a>(&'a self, _key: &'a StoreKey) -> StoreFuture<'a, Option<StoredRefusal>> {
        Box::pin(async { Ok(None) })
    }

    /// Stores `refusal` under `key`, replacing the refusal there; a timed one may be dropped
    /// once its hold is over.
    fn save_refusal<'a>(
        &'a self,
        _key: &'a StoreKey,
        _refusal: &'a StoredRefusal,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    /// Forgets the refusal stored under `key` (a session's `clear_failure()`).
    fn remove_refusal<'a>(&'a self, _key: &'a StoreKey) -> StoreFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }
}

/// A shared store is a store: give clones of one `Arc` to several sessions.
impl<T: TokenStore + ?Sized> TokenStore for Arc<T> {
    fn lease<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<Lease>> {
        (**self).lease(key)
    }

    fn release<'a>(&'a self, key: &'a StoreKey, lease: &'a Lease) -> StoreFuture<'a, ()> {
        (**self).release(key, lease)
    }

    fn load<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<StoredTokens>> {
        (**self).load(key)
    }

    fn save<'a>(&'a self, key: &'a StoreKey, tokens: &'a StoredTokens) -> StoreFuture<'a, ()> {
        (**self).save(key, tokens)
    }

    fn save_leased<'a>(
        &'a self,
        key: &'a StoreKey,
        tokens: &'a StoredTokens,
        lease: &'a Lease,
    ) -> StoreFuture<'a, ()> {
        (**self).save_leased(key, tokens, lease)
    }

    fn remove<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, ()> {
        (**self).remove(key)
    }

    fn load_refusal<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<StoredRefusal>> {
        (**self).load_refusal(key)
    }

    fn save_refusal<'a>(
        &'a self,
        key: &'a StoreKey,
        refusal: &'a StoredRefusal,
    ) -> StoreFuture<'a, ()> {
        (**self).save_refusal(key, refusal)
    }

    fn remove_refusal<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, ()> {
        (**self).remove_refusal(key)
    }
}

tokio::task_local! {
    /// The lease the renewal being polled holds: its saves are fenced by it.
    static RENEWING: Lease;
}

/// Runs `renewal` under `lease`: the token sets it saves through [`save_renewed`] are written
/// only while the lease is still held.
pub(crate) async fn under_lease<F: Future>(lease: Option<&Lease>, renewal: F) -> F::Output {
    match lease {
        Some(lease) => RENEWING.scope(lease.clone(), renewal).await,
        None => renewal.await,
    }
}

/// Saves `tokens`, fenced by the lease of the renewal being polled, if any.
pub(crate) fn save_renewed<'a>(
    store: &'a dyn TokenStore,
    key: &'a StoreKey,
    tokens: &'a StoredTokens,
) -> StoreFuture<'a, ()> {
    match RENEWING.try_with(Lease::clone) {
        Ok(lease) => Box::pin(async move { store.save_leased(key, tokens, &lease).await }),
        Err(_) => store.save(key, tokens),
    }
}

/// A store in this process's memory, shared by every session given a clone of it. Its lease
/// is held in this process: of the sessions sharing it, one renews a token set while the others
/// wait for it. It keeps refusals too.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Shared>>,
}

#[derive(Debug, Default)]
struct Shared {
    entries: HashMap<StoreKey, StoredTokens>,
    refusals: HashMap<StoreKey, StoredRefusal>,
    leased: HashSet<StoreKey>,
}

/// Gives a [`MemoryStore`] lease back when the lease ends.
struct MemoryClaim {
    store: std::sync::Weak<Mutex<Shared>>,
    key: StoreKey,
}

impl Drop for MemoryClaim {
    fn drop(&mut self) {
        if let Some(store) = self.store.upgrade() {
            let mut shared = store.lock().unwrap_or_else(|p| p.into_inner());
            shared.leased.remove(&self.key);
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl TokenStore for MemoryStore {
    fn lease<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<Lease>> {
        let granted = self.shared().leased.insert(key.clone());
        let lease = granted.then(|| {
            Lease::holding(
                "memory",
                MemoryClaim {
                    store: Arc::downgrade(&self.inner),
                    key: key.clone(),
                },
            )
        });
        Box::pin(async move { Ok(lease) })
    }

    fn load<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<StoredTokens>> {
        let found = self.shared().entries.get(key).cloned();
        Box::pin(async move { Ok(found) })
    }

    fn save<'a>(&'a self, key: &'a StoreKey, tokens: &'a StoredTokens) -> StoreFuture<'a, ()> {
        self.shared().entries.insert(key.clone(), tokens.clone());
        Box::pin(async { Ok(()) })
    }

    fn remove<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, ()> {
        self.shared().entries.remove(key);
        Box::pin(async { Ok(()) })
    }

    fn load_refusal<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<StoredRefusal>> {
        let found = self.shared().refusals.get(key).cloned();
        Box::pin(async move { Ok(found) })
    }

    fn save_refusal<'a>(
        &'a self,
        key: &'a StoreKey,
        refusal: &'a StoredRefusal,
    ) -> StoreFuture<'a, ()> {
        self.shared().refusals.insert(key.clone(), refusal.clone());
        Box::pin(async { Ok(()) })
    }

    fn remove_refusal<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, ()> {
        self.shared().refusals.remove(key);
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
impl StoredTokens {
    /// A set of `access` alone, expiring at `expires_at_ms`, as the stores' and the cache's
    /// unit tests save it.
    pub(crate) fn access_only(access: &str, expires_at_ms: u64) -> Self {
        Self {
            access: access.into(),
            refresh: None,
            id_token: None,
            cookie: None,
            bearer: None,
            expires_at_ms,
            renew_after_ms: None,
            expires_at_most_ms: None,
            refresh_expires_at_ms: None,
            refresh_uses: 0,
            stepped_up: false,
            exchanged: false,
            saved_at_ms: None,
            stamp: None,
            age: None,
            written_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_released_lease_is_free_for_the_next_holder_while_clones_of_it_live() {
        let store = MemoryStore::new();
        let key = StoreKey::new(Service::Fib, "https://fib.test", "someone");
        let lease = store.lease(&key).await.unwrap().expect("a free lease");
        let clone = lease.clone();
        assert!(store.lease(&key).await.unwrap().is_none(), "held");
        store.release(&key, &lease).await.unwrap();
        let next = store.lease(&key).await.unwrap();
        assert!(next.is_some(), "released, though a clone of it is alive");
        drop(clone);
    }

    #[test]
    fn a_lease_s_debug_names_it_but_not_its_token() {
        let lease = Lease::new("holder-7f3a");
        assert_eq!(format!("{lease:?}"), "Lease { .. }");
        assert_eq!(lease.token(), "holder-7f3a");
    }

    #[test]
    fn a_refusal_saved_with_only_its_kind_and_credentials_reads_its_other_members_as_absent() {
        // What an earlier version wrote, or a store's hand-made entry: every `Option` member
        // may be missing (serde reads a missing `Option` as `None`).
        let refusal: StoredRefusal =
            serde_json::from_str(r#"{"kind":"account_locked","credentials":7}"#).unwrap();
        assert_eq!(refusal.kind, RefusalKind::AccountLocked);
        assert_eq!(refusal.credentials, 7);
        assert_eq!(
            (
                refusal.status,
                refusal.code,
                refusal.message,
                refusal.hold_ms
            ),
            (None, None, None, None)
        );
        assert_eq!((refusal.saved_at_ms, refusal.stamp.is_none()), (None, true));
        let unknown: StoredRefusal =
            serde_json::from_str(r#"{"kind":"from_a_newer_version","credentials":7}"#).unwrap();
        assert_eq!(unknown.kind, RefusalKind::Unknown);
    }
}
