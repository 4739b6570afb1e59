//! Renewal off the request path (`background_refresh(true)`): while the cached token is valid,
//! callers are served it, and the renewal due at the margin runs in a task of the session's
//! own.
//!
//! The task is spawned on the tokio runtime of the first call that finds no fresh token (so
//! `build()` needs no runtime); until one exists, the session renews in the caller's task as
//! in the default mode. The task holds only a [`Weak`] reference to the cache: it takes a
//! strong one while it looks at the token or renews, and ends once the last clone of the
//! session is gone (a renewal it awaits then stops too). Its renewals go through the cache's one flight, under the fleet's lease,
//! and past the refused-login rules, like any caller's.
//!
//! Services whose tokens slide from last use (weavr, Password Safe) are never renewed here:
//! they have no refresh, so a renewal would be a new login that keeps an idle session alive.
//! For them the option changes nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use tokio::sync::Notify;

use super::{Cache, Constants};
use crate::error::Service;

/// What the session and its task share: the session's nudges and the task's liveness. The
/// session's side owns no reference to the task, nor the task one to the session.
#[derive(Default)]
struct Signal {
    /// A caller was served a token that is due: renew now rather than at the timer.
    wake: Notify,
    /// The cache took a new token: a task that found none looks again (the first login runs
    /// in a flight of its own, and may land after the task first looked).
    changed: Notify,
    /// Set by a caller that nudged, cleared by the task when it looks again: later callers
    /// in the same window see it set and do not touch `wake` (a shared write per call).
    nudged: AtomicBool,
    /// The task is alive (a runtime dropped with it clears this, and the next call spawns
    /// a new one).
    running: AtomicBool,
    /// The session is gone.
    closed: AtomicBool,
}

/// The session's side of the background renewal.
pub(super) struct Background {
    cache: Weak<Cache>,
    service: Service,
    signal: Arc<Signal>,
}

impl Drop for Background {
    fn drop(&mut self) {
        // The cache is being dropped: the task wakes to find it gone.
        self.close();
    }
}

/// Clears [`Signal::running`] however the task ends (its runtime may drop it mid-wait).
struct Running(Arc<Signal>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Release);
    }
}

impl Background {
    /// Background renewal for the cache behind `cache`; `None` for a service whose tokens
    /// slide (see the module's documentation).
    pub(super) fn new(cache: Weak<Cache>, traits: Constants) -> Option<Self> {
        traits.sliding.is_none().then(|| Self {
            cache,
            service: traits.service,
            signal: Arc::new(Signal::default()),
        })
    }

    /// Whether a task renews in the background, spawning it on the current runtime if it
    /// is not running yet. Without a runtime, false: the caller renews itself.
    pub(super) fn ensure_running(&self) -> bool {
        if self.signal.running.load(Ordering::Acquire) {
            return true;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        if self.signal.running.swap(true, Ordering::AcqRel) {
            return true;
        }
        let running = Running(self.signal.clone());
        let cache = self.cache.clone();
        drop(runtime.spawn(run(cache, running)));
        tracing::debug!(service = %self.service, "background renewal started");
        true
    }

    /// Whether the task is alive, as seen from a test.
    #[cfg(test)]
    pub(super) fn task_running(&self) -> impl Fn() -> bool {
        let signal = self.signal.clone();
        move || signal.running.load(Ordering::Acquire)
    }

    /// The cache took a new token set.
    pub(super) fn token_changed(&self) {
        self.signal.changed.notify_one();
    }

    /// The session is gone: the task wakes and ends.
    pub(super) fn close(&self) {
        self.signal.closed.store(true, Ordering::Release);
        self.signal.wake.notify_one();
    }

    /// A caller was served a token that is due: the task renews now.
    #[inline]
    pub(super) fn nudge(&self) {
        if !self.signal.nudged.load(Ordering::Relaxed)
            && !self.signal.nudged.swap(true, Ordering::AcqRel)
        {
            self.signal.wake.notify_one();
        }
    }
}

/// What the task does next, decided from the cached token.
enum Next {
    /// Renew now: the token is valid and due.
    Renew,
    /// Wait until then on the session's clock (when the token falls due), or for a nudge.
    Sleep(Instant),
    /// No valid token: callers renew themselves; wait for a nudge, or for a token.
    Idle,
}

/// The task: until the cache is gone, renew each token when it falls due (or when a caller
/// finds it due first).
async fn run(cache: Weak<Cache>, running: Running) {
    let signal = running.0.clone();
    // A renewal that left a token due at once (a lifetime shorter than the margin) is not
    // repeated until a caller asks: the task never renews in a loop by itself.
    let mut renewed = false;
    loop {
        let (next, clock) = {
            let Some(cache) = cache.upgrade() else { return };
            (cache.background_next(), cache.clock.clone())
        };
        match next {
            Next::Renew if !renewed => {}
            Next::Renew => signal.wake.notified().await,
            Next::Idle => {
                tokio::select! {
                    () = signal.wake.notified() => {}
                    () = signal.changed.notified() => {}
                }
            }
            Next::Sleep(due) => {
                tokio::select! {
                    () = signal.wake.notified() => {}
                    () = clock.sleep_until(due) => {}
                }
            }
        }
        if signal.closed.load(Ordering::Acquire) {
            return;
        }
        signal.nudged.store(false, Ordering::Release);
        let Some(cache) = cache.upgrade() else { return };
        renewed = false;
        if matches!(cache.background_next(), Next::Renew) {
            // The outcome is the callers' business: a failure while the token is valid was
            // already handled (served on, renewal postponed), and one after it expired is met
            // by the next caller's own renewal.
            let _ = cache.renewal().await;
            renewed = true;
        }
    }
}

impl Cache {
    /// What the background task does next.
    fn background_next(&self) -> Next {
        let now = self.clock.now();
        match self.current.get() {
            Some(entry) if entry.is_fresh(now) => Next::Sleep(entry.fresh_until()),
            Some(entry) if entry.is_valid(now) => Next::Renew,
            _ => Next::Idle,
        }
    }
}
