//! A token store on Redis, shared by a fleet: sealed token sets, and a lease (`SET NX PX`
//! with a holder token) so that one replica renews while the others wait for its token set.

use std::time::{Duration, SystemTime};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;

use super::{from_ms, Lease, SealingKey, StoreFuture, StoreKey, StoredTokens, TokenStore};
use crate::error::Error;

/// The default time a lease is held at most: a crashed holder blocks the others this long.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

const RELEASE: &str = r#"if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end"#;

/// Token sets in Redis (any URL the `redis` crate takes: `redis://`, `rediss://` for TLS,
/// with user and password), sealed under the application's key.
///
/// Connections are re-established automatically; a call that fails (Redis down, timed out)
/// is an error the session logs before carrying on without the store.
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    key: SealingKey,
    lease_ttl: Duration,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("lease_ttl", &self.lease_ttl)
            .finish_non_exhaustive()
    }
}

// Only the error's kind is kept: a Redis error's text can quote what was sent.
fn failed(what: &str, e: impl std::fmt::Debug) -> Error {
    Error::configuration(None, format!("Redis token store: {what}: {e:?}"))
}

impl RedisStore {
    /// Connects to the Redis at `url` (a URL with a password is fine: it is not logged).
    pub async fn connect(url: &str, key: SealingKey) -> Result<Self, Error> {
        let client = redis::Client::open(url).map_err(|_| {
            Error::configuration(None, "Redis token store: the URL is not a Redis URL")
        })?;
        let connection = ConnectionManager::new_with_config(client, Self::config())
            .await
            .map_err(|e| failed("cannot connect", e.kind()))?;
        Ok(Self {
            connection,
            key,
            lease_ttl: DEFAULT_LEASE_TTL,
        })
    }

    /// Like [`Self::connect`], but connects on first use, so that an application can start
    /// while Redis is down: until it is reachable, sessions renew on their own (with a
    /// warning). Fails only for a URL that is not a Redis URL. Call it inside a Tokio runtime.
    pub fn lazy(url: &str, key: SealingKey) -> Result<Self, Error> {
        let client = redis::Client::open(url).map_err(|_| {
            Error::configuration(None, "Redis token store: the URL is not a Redis URL")
        })?;
        let connection = ConnectionManager::new_lazy_with_config(client, Self::config())
            .map_err(|e| failed("cannot set up the connection", e.kind()))?;
        Ok(Self {
            connection,
            key,
            lease_ttl: DEFAULT_LEASE_TTL,
        })
    }

    fn config() -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1)
    }

    /// How long a lease lasts at most (default [`DEFAULT_LEASE_TTL`]): longer than a login
    /// takes, short enough that the fleet is not kept waiting by a crashed holder.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    fn lease_key(key: &StoreKey) -> String {
        format!("{}:lease", key.as_str())
    }
}

impl TokenStore for RedisStore {
    fn load<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<StoredTokens>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let sealed: Option<String> = connection
                .get(key.as_str())
                .await
                .map_err(|e| failed("GET", e.kind()))?;
            let Some(sealed) = sealed else {
                return Ok(None);
            };
            let plain = self
                .key
                .open(key.as_str(), &sealed)
                .ok_or_else(|| failed("entry does not open", "wrong key or tampered"))?;
            serde_json::from_slice(&plain)
                .map(Some)
                .map_err(|_| failed("entry unreadable", "not a token set"))
        })
    }

    fn save<'a>(&'a self, key: &'a StoreKey, tokens: &'a StoredTokens) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let plain = zeroize::Zeroizing::new(
                serde_json::to_vec(tokens).map_err(|e| failed("encode", e))?,
            );
            let sealed = self.key.seal(key.as_str(), &plain)?;
            // The entry lives as long as something in it can still be used.
            let until = tokens
                .refresh_expires_at_ms
                .unwrap_or(0)
                .max(tokens.expires_at_ms);
            let ttl = from_ms(until)
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
                .max(Duration::from_secs(1));
            let mut connection = self.connection.clone();
            let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
            connection
                .pset_ex::<_, _, ()>(key.as_str(), sealed, ttl_ms)
                .await
                .map_err(|e| failed("SET", e.kind()))
        })
    }

    fn remove<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            connection
                .del::<_, ()>(key.as_str())
                .await
                .map_err(|e| failed("DEL", e.kind()))
        })
    }

    fn lease<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<Lease>> {
        Box::pin(async move {
            let token = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
            let mut connection = self.connection.clone();
            let ttl_ms = u64::try_from(self.lease_ttl.as_millis()).unwrap_or(u64::MAX);
            let granted: Option<String> = redis::cmd("SET")
                .arg(Self::lease_key(key))
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms)
                .query_async(&mut connection)
                .await
                .map_err(|e| failed("SET NX", e.kind()))?;
            Ok(granted.map(|_| Lease::new(token)))
        })
    }

    fn release<'a>(&'a self, key: &'a StoreKey, lease: &'a Lease) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            redis::Script::new(RELEASE)
                .key(Self::lease_key(key))
                .arg(lease.token())
                .invoke_async::<i64>(&mut connection)
                .await
                .map(|_| ())
                .map_err(|e| failed("release", e.kind()))
        })
    }
}
