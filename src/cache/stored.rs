//! What the cache keeps of a grant: the entry it makes of it, the current slot, and the
//! account's store (token sets saved, adopted and forgotten; a refusal another session of the
//! account stored).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::fleet::Timeline;
use super::{refusals, Cache};
use crate::error::Error;
use crate::token::{AccessToken, Entry, EntryParts, Issued, Refresh, TokenOrigin};

impl Cache {
    /// A fingerprint of the credentials the next login sends, salted with the account's key
    /// (see `ProviderImpl::credentials`): 16 bits of SipHash, as std's `DefaultHasher` computes
    /// it, which every process built with the same Rust release computes alike. Each part goes
    /// in with its length, so that no two ways of cutting the same bytes read alike. Sixteen
    /// bits, not more: enough to tell corrected credentials from refused ones (one in 65,536
    /// read alike, and are held back until `clear_failure()`), too few for whoever holds the
    /// store and its sealing key to confirm a guessed password offline.
    pub(super) fn credentials(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        if let Some(fleet) = &self.fleet {
            fleet.key().as_str().hash(&mut hasher);
        }
        self.provider.credentials_dyn(&mut |part| {
            hasher.write_usize(part.len());
            hasher.write(part);
        });
        hasher.finish() & 0xFFFF
    }

    /// The refusal another session of the account stored, when it holds a login with
    /// `credentials` back now: this session holds it too from then on (so that a store that
    /// fails later cannot let the login through).
    pub(super) async fn stored_refusal(&self, credentials: u64) -> Option<Error> {
        let stored = self.fleet.as_ref()?.load_refusal().await?;
        let timeline = Timeline::read(&*self.clock);
        let left = match stored.hold_ms {
            // For good: only the credentials refused are held back.
            None if stored.credentials != credentials => return None,
            None => None,
            Some(hold) => {
                let age = stored.saved_at_ms.map_or(Duration::ZERO, |saved_at| {
                    timeline.age(saved_at, stored.written_at, stored.age)
                });
                let left = Duration::from_millis(hold).saturating_sub(age);
                if left.is_zero() {
                    return None;
                }
                Some(left)
            }
        };
        let error = refusals::from_stored(&stored, self.traits.service, left)?;
        let until = left.and_then(|left| timeline.now.checked_add(left));
        if left.is_some() && until.is_none() {
            return None;
        }
        self.refusals.adopt(error.clone(), until);
        tracing::info!(service = %self.traits.service, %error, "a login refused for another session of the account is not sent");
        Some(error)
    }

    /// Makes `grant` (sent at `sent_at`) the current token, and saves it in the store.
    pub(super) async fn keep(
        &self,
        grant: Issued,
        sent_at: Instant,
        origin: TokenOrigin,
        previous: Option<&Arc<Entry>>,
    ) -> AccessToken {
        let entry = Arc::new(self.entry(grant, sent_at, origin, previous));
        self.set_current(entry.clone());
        self.save_stored(&entry).await;
        AccessToken::new(entry)
    }

    /// What the cache keeps of `grant`.
    pub(super) fn entry(
        &self,
        grant: Issued,
        sent_at: Instant,
        origin: TokenOrigin,
        previous: Option<&Arc<Entry>>,
    ) -> Entry {
        // A refresh that returns no new refresh token keeps the old one, its expiry and its
        // use count.
        let refresh = match (grant.refresh, previous) {
            (Some(token), _) => Some(Refresh {
                token,
                expires_at: grant.refresh_lifetime.map(|l| sent_at + l),
                uses: 0,
            }),
            (None, Some(prev)) => prev.refresh.clone().map(|kept| Refresh {
                uses: kept.uses.saturating_add(1),
                ..kept
            }),
            (None, None) => None,
        };
        let mut extra = grant.extra;
        let stepped_up = extra.stepped_up;
        if let Some(prev) = previous {
            extra.id_token = extra.id_token.or_else(|| prev.extra.id_token.clone());
            extra.cookie = extra.cookie.or_else(|| prev.extra.cookie.clone());
            extra.bearer = extra.bearer.or_else(|| prev.extra.bearer.clone());
        }
        Entry::new(
            self.clock.clone(),
            self.base,
            EntryParts {
                secret: grant.access,
                refresh,
                extra,
                origin,
                expires_at: sent_at + grant.lifetime,
                expires_at_most: grant.max_lifetime.map(|max| sent_at + max),
                lead: self.policy.lead(grant.lifetime),
                sliding: self.traits.sliding,
                stepped_up,
            },
        )
    }

    /// Takes the stored token set when it is newer than the cached one: fresh, it is served
    /// as is; due, its refresh token (if any) is what the renewal uses next.
    pub(super) async fn adopt_stored(&self) -> Option<AccessToken> {
        let stored = self.fleet.as_ref()?.load().await?;
        let timeline = Timeline::read(&*self.clock);
        let now = timeline.now;
        let parts = timeline.entry_parts(stored, &self.policy, self.traits.sliding);
        if self.current.get().is_some_and(|c| {
            c.expires_at() >= parts.expires_at
                || c.secret.expose_secret() == parts.secret.expose_secret()
        }) {
            return None;
        }
        let entry = Arc::new(Entry::new(self.clock.clone(), self.base, parts));
        self.set_current(entry.clone());
        tracing::info!(service = %self.traits.service, "token set taken from the store");
        entry.is_fresh(now).then(|| AccessToken::new(entry))
    }

    /// Makes `entry` the current token set (and tells the background task).
    pub(super) fn set_current(&self, entry: Arc<Entry>) {
        self.current.set(entry);
        if let Some(background) = &self.background {
            background.token_changed();
        }
    }

    pub(super) async fn save_stored(&self, entry: &Entry) {
        if let Some(fleet) = &self.fleet {
            fleet.save(entry).await;
        }
    }

    /// Takes a token set obtained outside a renewal (a completed login challenge, a password
    /// update): it replaces whatever was cached, lifts a blocked login, and is stored.
    pub(crate) async fn install(&self, grant: Issued, sent_at: Instant) -> AccessToken {
        self.clear_failure();
        self.counters.logins.fetch_add(1, Ordering::Relaxed);
        let token = self.keep(grant, sent_at, TokenOrigin::Login, None).await;
        tracing::info!(service = %self.traits.service, "logged in by a completed challenge");
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
    pub(crate) async fn mark_stepped_up(&self, secret: &crate::secret::SecretString) {
        if let Some(entry) = self.current() {
            if entry.secret.expose_secret() == secret.expose_secret() {
                entry.stepped_up.store(true, Ordering::Release);
                self.save_stored(&entry).await;
            }
        }
    }

    /// Forgets the stored token set too (logout).
    pub(crate) async fn forget_stored(&self) {
        if let Some(fleet) = &self.fleet {
            fleet.remove().await;
        }
    }
}
