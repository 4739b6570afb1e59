//! Where a session keeps its token set, so that sessions in other tasks, processes or machines
//! can share one login per expiry instead of each logging in.
//!
//! A session without a store keeps its tokens in its own memory (the default). With one
//! ([`crate::s7risk::SessionBuilder::token_store`] and the same method on every builder), a
//! session that needs a token first looks in the store, adopts a fresh token another session
//! left there, and writes back every token it obtains. A store that fails is logged and
//! bypassed: the session then behaves as if it had none, never as an outage.
//!
//! - [`MemoryStore`]: shared by the sessions of one process.
//! - [`FileStore`]: a file (mode 0600, replaced atomically), secrets sealed with
//!   XChaCha20-Poly1305 under a key the application supplies.
//! - `RedisStore` (cargo feature `redis`): shared by a fleet, sealed the same way, with a
//!   lease so that one replica renews while the others wait for its token set.

mod file;
#[cfg(feature = "redis")]
mod redis;
mod seal;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Service};
use crate::secret::SecretString;

pub use file::FileStore;
#[cfg(feature = "redis")]
pub use redis::{RedisStore, DEFAULT_LEASE_TTL};
pub use seal::SealingKey;

/// A boxed future, as the store methods return.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

/// Which session a token set belongs to: the service, its base URL and the identity that
/// logged in (an email, a client id, a username; never a secret).
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
}

/// A token set as a store keeps it. Times are wall-clock milliseconds since the Unix epoch,
/// so that another process can read them.
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
}

pub(crate) fn to_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// The right to renew one token set for the fleet, until it is released or expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    token: String,
}

impl Lease {
    /// A lease identified by `token` (unique to its holder: only the holder releases it).
    pub fn new(token: impl Into<String>) -> Self {
        Self {
            token: token.into(),
        }
    }

    /// The holder's token.
    pub fn token(&self) -> &str {
        &self.token
    }
}

/// Where sessions keep their token sets.
///
/// Implementations must be safe to call from many tasks at once. A failing call is reported
/// as an error; the session logs it and carries on without the store.
pub trait TokenStore: Send + Sync + std::fmt::Debug + 'static {
    /// Asks for the right to renew the token set under `key`. `Some` when granted; `None`
    /// when another holder has it (the session then waits for that holder's token set, and
    /// asks again, since an abandoned lease expires). Stores that are not shared grant it
    /// always (the default).
    fn lease<'a>(&'a self, _key: &'a StoreKey) -> StoreFuture<'a, Option<Lease>> {
        Box::pin(async { Ok(Some(Lease::new("local"))) })
    }

    /// Gives a lease back once its holder stored the new token set (or failed).
    fn release<'a>(&'a self, _key: &'a StoreKey, _lease: &'a Lease) -> StoreFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    /// The token set stored under `key`, if any.
    fn load<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<StoredTokens>>;
    /// Stores `tokens` under `key`, replacing what was there.
    fn save<'a>(&'a self, key: &'a StoreKey, tokens: &'a StoredTokens) -> StoreFuture<'a, ()>;
    /// Forgets what is stored under `key` (logout).
    fn remove<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, ()>;
}

/// A store in this process's memory, shared by every session given a clone of it.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    inner: std::sync::Arc<Mutex<HashMap<StoreKey, StoredTokens>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<StoreKey, StoredTokens>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl TokenStore for MemoryStore {
    fn load<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<StoredTokens>> {
        let found = self.map().get(key).cloned();
        Box::pin(async move { Ok(found) })
    }

    fn save<'a>(&'a self, key: &'a StoreKey, tokens: &'a StoredTokens) -> StoreFuture<'a, ()> {
        self.map().insert(key.clone(), tokens.clone());
        Box::pin(async { Ok(()) })
    }

    fn remove<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, ()> {
        self.map().remove(key);
        Box::pin(async { Ok(()) })
    }
}
