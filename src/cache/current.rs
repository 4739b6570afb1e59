//! The session's current token, in memory, and each thread's handle to it.
//!
//! The hot path (`fresh`) reads this thread's handle and compares one instant: it writes
//! nothing shared. A handle is good while the slot's generation has not moved; every change
//! that could make a handed-out token stale (a new entry, a wipe, an expiry, a postponed
//! renewal) goes through [`Current`], which moves the generation in one place.
//!
//! A thread's handle holds its token weakly: the strong reference is the cache's (one per
//! thread, kept until the generation moves). So a logout, a renewal or a dropped session lets
//! the token go on every thread that served it, including threads that never serve again, and
//! its secret is zeroized then, unless a caller still holds the token it was given.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use crate::token::{AccessToken, Entry, WeakToken};

/// Caches a thread keeps handles for at once; more evict the oldest.
const LOCAL_SLOTS: usize = 4;

/// This thread's handle to one cache's current token.
struct Handle {
    cache: u64,
    generation: u64,
    /// The token's [`Entry::fresh_until`] when the handle was taken: comparing it with now is
    /// the whole freshness check of the hot path.
    fresh_until: Instant,
    /// Alive while the cache keeps this thread's token (see [`Current::handed`]).
    token: WeakToken,
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
    // A thread keeps a handle to the last token it was served, per cache, until the cache's
    // token changes or another cache takes the slot; the token itself is the cache's to keep.
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
    /// The token each thread's handle refers to, for the current generation: what keeps it
    /// alive for the hot path. Emptied whenever the generation moves (under this lock, so
    /// that a handle taken for an older generation is never kept).
    handed: Mutex<HashMap<ThreadId, AccessToken>>,
}

impl Current {
    pub(super) fn new() -> Self {
        Self {
            id: CACHE_IDS.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
            entry: RwLock::new(None),
            handed: Mutex::new(HashMap::new()),
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
                // Gone only if the generation moved meanwhile: the slot will tell.
                let token = handle.token.upgrade()?;
                // The generation has not moved: the handle's entry is the slot's, so asking
                // the entry answers for the slot without touching it (the time check first:
                // it is the whole hot path; sliding can only have moved the entry later).
                Some((now < handle.fresh_until || usable(token.entry(), now)).then_some(token))
            })
            .ok()
            .flatten();
        if let Some(found) = local {
            return found;
        }
        self.serve_from_slot(now, generation, usable)
    }

    /// The cached token when `usable` at `now`, from the slot, keeping a handle to it on this
    /// thread (the token itself kept in [`Self::handed`]) for the next call.
    #[cold]
    #[inline(never)]
    fn serve_from_slot(
        &self,
        now: Instant,
        generation: u64,
        usable: fn(&Entry, Instant) -> bool,
    ) -> Option<AccessToken> {
        let entry = self.get()?;
        if !usable(&entry, now) {
            return None;
        }
        let fresh_until = entry.fresh_until();
        let token = AccessToken::new(entry);
        {
            let mut handed = self.handed.lock().unwrap_or_else(|p| p.into_inner());
            // The generation moved since it was read: the handle would be stale, and the
            // token kept for it would outlive the change (a logout).
            if self.generation.load(Ordering::Acquire) != generation {
                return Some(token);
            }
            handed.insert(std::thread::current().id(), token.clone());
        }
        let _ = LOCAL.try_with(|local| {
            if let Ok(mut local) = local.try_borrow_mut() {
                local.put(Handle {
                    cache: self.id,
                    generation,
                    fresh_until,
                    token: token.downgrade(),
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
    /// new generation sees the change too. The tokens kept for the threads' handles are let go
    /// (outside the lock: dropping the last of a token zeroizes its secret).
    fn changed(&self) {
        let handed = {
            let mut handed = self.handed.lock().unwrap_or_else(|p| p.into_inner());
            self.generation.fetch_add(1, Ordering::AcqRel);
            std::mem::take(&mut *handed)
        };
        drop(handed);
    }
}
