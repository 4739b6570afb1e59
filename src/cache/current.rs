//! The session's current token, in memory, and each thread's handle to it.
//!
//! The hot path (`fresh`) reads this thread's handle and compares one instant: it writes
//! nothing shared. A handle is good while the slot's generation has not moved; every change
//! that could make a handed-out token stale (a new entry, a wipe, an expiry, a postponed
//! renewal) goes through [`Current`], which moves the generation in one place.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::token::{AccessToken, Entry};

/// Caches a thread keeps handles for at once; more evict the oldest.
const LOCAL_SLOTS: usize = 4;

/// This thread's handle to one cache's current token.
struct Handle {
    cache: u64,
    generation: u64,
    /// The token's [`Entry::fresh_until`] when the handle was taken: comparing it with now is
    /// the whole freshness check of the hot path.
    fresh_until: Instant,
    token: AccessToken,
}

struct Local {
    handles: [Option<Handle>; LOCAL_SLOTS],
    next: usize,
}

impl Local {
    fn put(&mut self, handle: Handle) {
        let index = self
            .handles
            .iter()
            .position(|h| h.as_ref().is_some_and(|h| h.cache == handle.cache))
            .unwrap_or_else(|| {
                let index = self.next;
                self.next = (index + 1) % LOCAL_SLOTS;
                index
            });
        self.handles[index] = Some(handle);
    }
}

thread_local! {
    // A thread keeps the last token it was served, per cache, until the cache's token changes
    // or another cache takes the slot; the secret is then dropped (and zeroized) with it.
    static LOCAL: std::cell::RefCell<Local> = const {
        std::cell::RefCell::new(Local { handles: [const { None }; LOCAL_SLOTS], next: 0 })
    };
}

static CACHE_IDS: AtomicU64 = AtomicU64::new(1);

/// The in-memory slot holding the session's current token set.
pub(super) struct Current {
    id: u64,
    /// Moves whenever the slot or its entry's freshness changes, so that threads drop their
    /// stale handles. Only [`Self::changed`] moves it.
    generation: AtomicU64,
    entry: RwLock<Option<Arc<Entry>>>,
}

impl Current {
    pub(super) fn new() -> Self {
        Self {
            id: CACHE_IDS.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
            entry: RwLock::new(None),
        }
    }

    /// The cached token when it is fresh at `now`.
    #[inline]
    pub(super) fn fresh(&self, now: Instant) -> Option<AccessToken> {
        self.serve(now, Entry::is_fresh)
    }

    /// The cached token when it is valid at `now`, fresh or due (background renewal serves
    /// it while renewing). Off the hot path: only asked when the token is not fresh.
    pub(super) fn valid(&self, now: Instant) -> Option<AccessToken> {
        self.serve(now, Entry::is_valid)
    }

    /// The cached token when `usable` at `now`: from this thread's handle when it has one
    /// for the slot's generation, else from the slot (and a handle is kept for next time).
    #[inline(always)]
    fn serve(&self, now: Instant, usable: fn(&Entry, Instant) -> bool) -> Option<AccessToken> {
        let generation = self.generation.load(Ordering::Acquire);
        let local = LOCAL
            .try_with(|local| {
                let local = local.try_borrow().ok()?;
                let handle = local
                    .handles
                    .iter()
                    .flatten()
                    .find(|h| h.cache == self.id && h.generation == generation)?;
                // The generation has not moved: the handle's entry is the slot's, so asking
                // the entry answers for the slot without touching it (the time check first:
                // it is the whole hot path; sliding can only have moved the entry later).
                Some(
                    (now < handle.fresh_until || usable(handle.token.entry(), now))
                        .then(|| handle.token.clone()),
                )
            })
            .ok()
            .flatten();
        if let Some(found) = local {
            return found;
        }
        let entry = self.get()?;
        if !usable(&entry, now) {
            return None;
        }
        let fresh_until = entry.fresh_until();
        let token = AccessToken::new(entry);
        let _ = LOCAL.try_with(|local| {
            if let Ok(mut local) = local.try_borrow_mut() {
                local.put(Handle {
                    cache: self.id,
                    generation,
                    fresh_until,
                    token: token.clone(),
                });
            }
        });
        Some(token)
    }

    /// The entry in the slot, valid or not.
    pub(super) fn get(&self) -> Option<Arc<Entry>> {
        self.entry.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Puts `entry` in the slot, in place of whatever was there.
    pub(super) fn set(&self, entry: Arc<Entry>) {
        *self.entry.write().unwrap_or_else(|p| p.into_inner()) = Some(entry);
        self.changed();
    }

    /// Empties the slot; the entry it held is expired, so that no handle serves it again.
    pub(super) fn clear(&self) {
        let old = self.entry.write().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(entry) = &old {
            entry.expire();
        }
        self.changed();
    }

    /// Stops serving `entry` (it stays in the slot, for its refresh token).
    pub(super) fn expire(&self, entry: &Entry) {
        entry.expire();
        self.changed();
    }

    /// A failed early renewal: `entry` is served a while longer, and renewed after `delay`.
    pub(super) fn postpone_renewal(&self, entry: &Entry, now: Instant, delay: Duration) {
        entry.postpone_renewal(now, delay);
        self.changed();
    }

    /// The one place the generation moves: after the change, so that a thread that sees the
    /// new generation sees the change too.
    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}
