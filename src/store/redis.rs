//! A token store on Redis, shared by a fleet: sealed token sets, and a fenced lease (`SET NX
//! PX` with a holder token, kept alive while its holder renews, writes checked against it) so
//! that one replica renews while the others wait for its token set.

use std::time::{Duration, SystemTime};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;

use super::{
    from_ms, seal::Kept, Lease, SealingKey, Stamp, StoreFuture, StoreKey, StoredRefusal,
    StoredTokens, TokenStore,
};
use crate::error::Error;

/// The default lifetime of a lease in Redis: a crashed holder blocks the others this long at
/// most. A live holder extends it every third of it for as long as its renewal runs.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

/// Deletes the lease if it is still the caller's.
const RELEASE: &str = r#"if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end"#;

/// Extends the lease to ARGV[2] ms if it is still the caller's.
const EXTEND: &str = r#"if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) else return 0 end"#;

/// Stores the sealed set (KEYS[2], ARGV[2], for ARGV[3] ms) only if the lease (KEYS[1]) is
/// still the caller's (ARGV[1]): checked and written in one step.
const SAVE_FENCED: &str = r#"if redis.call("GET", KEYS[1]) == ARGV[1] then redis.call("SET", KEYS[2], ARGV[2], "PX", ARGV[3]) return 1 else return 0 end"#;

/// Token sets in Redis (any URL the `redis` crate takes: `redis://`, `rediss://` for TLS,
/// with user and password), sealed under the application's key.
///
/// Connections are re-established automatically; a call that fails (Redis down, timed out)
/// is an error the session logs before carrying on without the store.
///
/// How long ago a token set was saved is counted on Redis's clock (what is left of the entry's
/// lifetime), not on the sessions' own: a replica whose clock is off cannot make the others
/// serve a set past its lifetime, nor take it for expired.
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
    ///
    /// # Errors
    ///
    /// [`crate::ErrorKind::Configuration`] when `url` is not a Redis URL or Redis cannot be
    /// reached.
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
    ///
    /// # Errors
    ///
    /// [`crate::ErrorKind::Configuration`] when `url` is not a Redis URL.
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

    /// How long a lease lives in Redis unless its holder extends it (default
    /// [`DEFAULT_LEASE_TTL`], at least 30 ms): how long a crashed holder keeps the fleet
    /// waiting. A live holder extends it every third of it while its renewal runs, so a login
    /// may take longer.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_millis(30));
        self
    }

    /// The entry's name: no email, username or client id in it (see [`SealingKey`]). The
    /// hash is a hash tag, so that the entry and its lease share a cluster slot.
    fn entry_key(&self, key: &StoreKey) -> String {
        format!(
            "tokensmith:{}:{{{}}}",
            key.service(),
            self.key.file_tag(key)
        )
    }

    fn lease_key(&self, key: &StoreKey) -> String {
        format!("{}:lease", self.entry_key(key))
    }

    fn refusal_key(&self, key: &StoreKey) -> String {
        format!("{}:refusal", self.entry_key(key))
    }

    /// `tokens` sealed, and how long the entry lives: as long as something in it can still be
    /// used, counted from the save (from the writer's own save time, so that its clock's
    /// offset does not change it; from the real now for a set without one).
    fn sealed(&self, key: &StoreKey, tokens: &StoredTokens) -> Result<(String, u64), Error> {
        let until = tokens
            .refresh_expires_at_ms
            .unwrap_or(0)
            .max(tokens.expires_at_ms);
        let ttl = match tokens.saved_at_ms {
            Some(saved_at) => Duration::from_millis(until.saturating_sub(saved_at)),
            None => from_ms(until)
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO),
        }
        .max(Duration::from_secs(1));
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let mut tokens = tokens.clone();
        // Redis counts the entry's lifetime down: what is left of it tells its age.
        tokens.stamp = Some(Stamp::Ttl(ttl_ms));
        let plain =
            zeroize::Zeroizing::new(serde_json::to_vec(&tokens).map_err(|e| failed("encode", e))?);
        let sealed = self.key.seal(key.as_str(), &plain)?;
        Ok((sealed, ttl_ms))
    }

    /// How long ago a set stamped `stamp` was saved, the entry having `left_ms` of its lifetime
    /// left in Redis (negative: none set).
    fn age(stamp: Stamp, left_ms: i64) -> Option<Duration> {
        match stamp {
            Stamp::Ttl(set) => {
                let left = u64::try_from(left_ms).ok()?;
                Some(Duration::from_millis(set.saturating_sub(left)))
            }
            Stamp::Wall(_) => None,
        }
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.lease_ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// Extends the lease `token` holds every third of its lifetime until `stop` fires (the
    /// lease ended or was dropped: then it is released) or the lease is no longer this
    /// holder's.
    async fn keep_alive(
        mut connection: ConnectionManager,
        lease_key: String,
        token: String,
        ttl: Duration,
        mut stop: tokio::sync::oneshot::Receiver<()>,
    ) {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        loop {
            tokio::select! {
                _ = &mut stop => {
                    // Dropped without a release (a cancelled renewal): give it back now
                    // rather than after its lifetime. A no-op after a release.
                    let _ = redis::Script::new(RELEASE)
                        .key(&lease_key)
                        .arg(&token)
                        .invoke_async::<i64>(&mut connection)
                        .await;
                    return;
                }
                // Redis counts the lease's lifetime in real time, which no session clock
                // (a `ManualClock`) can move: the beat is tokio's timer.
                () = tokio::time::sleep(ttl / 3) => {
                    let extended = redis::Script::new(EXTEND)
                        .key(&lease_key)
                        .arg(&token)
                        .arg(ttl_ms)
                        .invoke_async::<i64>(&mut connection)
                        .await;
                    match extended {
                        Ok(1) => {}
                        Ok(_) => {
                            tracing::warn!("the renewal lease expired before its holder finished; its token set will not be stored");
                            return;
                        }
                        // Redis unreachable for now: try again at the next beat.
                        Err(e) => tracing::warn!(error = ?e.kind(), "could not extend the renewal lease"),
                    }
                }
            }
        }
    }
}

impl RedisStore {
    /// `key`'s token set or refusal, kept at `name`, with its age: the entry and what is left
    /// of its lifetime are read together.
    async fn load_kept<T: Kept>(&self, key: &StoreKey, name: String) -> Result<Option<T>, Error> {
        let mut connection = self.connection.clone();
        let (sealed, left_ms): (Option<String>, i64) = redis::pipe()
            .atomic()
            .get(&name)
            .pttl(&name)
            .query_async(&mut connection)
            .await
            .map_err(|e| failed("GET", e.kind()))?;
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let plain = self.key.open(&T::context(key), &sealed).ok_or_else(|| {
            failed(
                &format!("{} does not open", T::NAME),
                "wrong key or tampered",
            )
        })?;
        let mut kept: T = serde_json::from_slice(&plain)
            .map_err(|_| failed(&format!("{} unreadable", T::NAME), T::NOT))?;
        let (stamp, age) = kept.stamp_and_age();
        *age = stamp.and_then(|stamp| Self::age(stamp, left_ms));
        Ok(Some(kept))
    }

    /// Deletes what is kept at `name`.
    async fn delete(&self, name: String) -> Result<(), Error> {
        let mut connection = self.connection.clone();
        connection
            .del::<_, ()>(name)
            .await
            .map_err(|e| failed("DEL", e.kind()))
    }
}

impl TokenStore for RedisStore {
    fn load<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<StoredTokens>> {
        Box::pin(self.load_kept(key, self.entry_key(key)))
    }

    fn save<'a>(&'a self, key: &'a StoreKey, tokens: &'a StoredTokens) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let (sealed, ttl_ms) = self.sealed(key, tokens)?;
            let mut connection = self.connection.clone();
            connection
                .pset_ex::<_, _, ()>(self.entry_key(key), sealed, ttl_ms)
                .await
                .map_err(|e| failed("SET", e.kind()))
        })
    }

    fn save_leased<'a>(
        &'a self,
        key: &'a StoreKey,
        tokens: &'a StoredTokens,
        lease: &'a Lease,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let (sealed, ttl_ms) = self.sealed(key, tokens)?;
            let mut connection = self.connection.clone();
            let stored: i64 = redis::Script::new(SAVE_FENCED)
                .key(self.lease_key(key))
                .key(self.entry_key(key))
                .arg(lease.token())
                .arg(sealed)
                .arg(ttl_ms)
                .invoke_async(&mut connection)
                .await
                .map_err(|e| failed("SET (fenced)", e.kind()))?;
            if stored == 1 {
                Ok(())
            } else {
                Err(failed(
                    "not stored",
                    "the renewal lease expired and another replica may have stored a newer set",
                ))
            }
        })
    }

    fn remove<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, ()> {
        Box::pin(self.delete(self.entry_key(key)))
    }

    fn load_refusal<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<StoredRefusal>> {
        Box::pin(self.load_kept(key, self.refusal_key(key)))
    }

    fn save_refusal<'a>(
        &'a self,
        key: &'a StoreKey,
        refusal: &'a StoredRefusal,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut refusal = refusal.clone();
            // A window lives in Redis as long as it holds (Redis counts it down, which tells
            // its age); a refusal for good, until a session clears it.
            let ttl_ms = refusal.hold_ms.map(|hold| hold.max(1));
            refusal.stamp = ttl_ms.map(Stamp::Ttl);
            let plain = zeroize::Zeroizing::new(
                serde_json::to_vec(&refusal).map_err(|e| failed("encode", e))?,
            );
            let sealed = self.key.seal(&StoredRefusal::context(key), &plain)?;
            let mut connection = self.connection.clone();
            let name = self.refusal_key(key);
            match ttl_ms {
                Some(ttl_ms) => connection.pset_ex::<_, _, ()>(name, sealed, ttl_ms).await,
                None => connection.set::<_, _, ()>(name, sealed).await,
            }
            .map_err(|e| failed("SET", e.kind()))
        })
    }

    fn remove_refusal<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, ()> {
        Box::pin(self.delete(self.refusal_key(key)))
    }

    fn lease<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<Lease>> {
        Box::pin(async move {
            let token = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
            let mut connection = self.connection.clone();
            let lease_key = self.lease_key(key);
            let granted: Option<String> = redis::cmd("SET")
                .arg(&lease_key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(self.ttl_ms())
                .query_async(&mut connection)
                .await
                .map_err(|e| failed("SET NX", e.kind()))?;
            if granted.is_none() {
                return Ok(None);
            }
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(Self::keep_alive(
                connection,
                lease_key,
                token.clone(),
                self.lease_ttl,
                stopped,
            ));
            // The sender is the lease's guard: when the lease ends, the keep-alive stops.
            Ok(Some(Lease::holding(token, stop)))
        })
    }

    fn release<'a>(&'a self, key: &'a StoreKey, lease: &'a Lease) -> StoreFuture<'a, ()> {
        lease.end();
        Box::pin(async move {
            let mut connection = self.connection.clone();
            redis::Script::new(RELEASE)
                .key(self.lease_key(key))
                .arg(lease.token())
                .invoke_async::<i64>(&mut connection)
                .await
                .map(|_| ())
                .map_err(|e| failed("release", e.kind()))
        })
    }
}
