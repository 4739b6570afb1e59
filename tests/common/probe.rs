//! A token store wrapper that counts (and can announce) the leases a store grants and refuses,
//! so that a test knows a session is waiting for another's renewal.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokensmith::store::{Lease, StoreFuture, StoreKey, StoredRefusal, StoredTokens, TokenStore};

#[derive(Clone, Debug, Default)]
pub struct Counts {
    pub granted: Arc<AtomicUsize>,
    pub refused: Arc<AtomicUsize>,
}

/// A store that counts the leases it grants and refuses (and, in a worker process, says so
/// on stdout for the parent).
#[derive(Debug)]
pub struct Probe<S> {
    pub store: S,
    pub counts: Counts,
    /// Print `LEASE granted` / `LEASE refused` on stdout.
    pub announce: bool,
}

impl<S: TokenStore> TokenStore for Probe<S> {
    fn lease<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<Lease>> {
        Box::pin(async move {
            let lease = self.store.lease(key).await?;
            let (count, word) = match lease {
                Some(_) => (&self.counts.granted, "granted"),
                None => (&self.counts.refused, "refused"),
            };
            count.fetch_add(1, Ordering::SeqCst);
            if self.announce {
                println!("LEASE {word}");
            }
            Ok(lease)
        })
    }

    fn release<'a>(&'a self, key: &'a StoreKey, lease: &'a Lease) -> StoreFuture<'a, ()> {
        self.store.release(key, lease)
    }

    fn load<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<StoredTokens>> {
        self.store.load(key)
    }

    fn save<'a>(&'a self, key: &'a StoreKey, tokens: &'a StoredTokens) -> StoreFuture<'a, ()> {
        self.store.save(key, tokens)
    }

    fn save_leased<'a>(
        &'a self,
        key: &'a StoreKey,
        tokens: &'a StoredTokens,
        lease: &'a Lease,
    ) -> StoreFuture<'a, ()> {
        self.store.save_leased(key, tokens, lease)
    }

    fn remove<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, ()> {
        self.store.remove(key)
    }

    fn load_refusal<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<StoredRefusal>> {
        self.store.load_refusal(key)
    }

    fn save_refusal<'a>(
        &'a self,
        key: &'a StoreKey,
        refusal: &'a StoredRefusal,
    ) -> StoreFuture<'a, ()> {
        self.store.save_refusal(key, refusal)
    }

    fn remove_refusal<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, ()> {
        self.store.remove_refusal(key)
    }
}

/// A token set whose access token is `access`, valid until 2096.
pub fn sample_tokens(access: &str) -> StoredTokens {
    serde_json::from_value(serde_json::json!({
        "access": access, "refresh": null, "id_token": null, "cookie": null,
        "bearer": null, "expires_at_ms": 4_000_000_000_000u64, "renew_after_ms": null,
        "expires_at_most_ms": null, "refresh_expires_at_ms": null, "refresh_uses": 0
    }))
    .unwrap()
}
