//! The single flight: however many callers want a piece of work done at once (a renewal, a
//! step-up), it runs once and all get its outcome.
//!
//! The work runs in a task of its own, spawned on the runtime of the caller that starts it,
//! and hands its outcome out through a `watch` channel (as google-cloud-rust's
//! `src/auth/src/token_cache.rs` runs its refresh): a caller that is cancelled (a timeout, a
//! dropped request) cancels nothing, and the next caller joins the same flight instead of
//! starting it again. The work records what later callers need (the token, the refusal, the
//! backoff) where they look for it; the flight itself keeps nothing once it ends, so an error
//! is never served to a caller that came after it.
//!
//! Without a runtime to spawn on, the caller runs the work itself; should that caller be
//! cancelled, or the runtime of a task be shut down mid-flight, the flight is lost and the
//! callers waiting for it run it again in their own task.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// At most one flight in the air (per key: a flight for another key takes the slot, and the
/// one it replaced runs on for those already waiting), and the callers waiting for it.
pub(crate) struct SingleFlight<K, T> {
    slot: Arc<Mutex<Slot<K, T>>>,
}

struct Slot<K, T> {
    next: u64,
    flying: Option<Flying<K, T>>,
}

struct Flying<K, T> {
    id: u64,
    key: K,
    outcome: watch::Receiver<Option<T>>,
}

/// The flight's own side: it publishes the outcome, and ends the flight however the work ends
/// (landed, or dropped with its runtime), so that the next caller starts a new one.
struct Pilot<K, T> {
    slot: Arc<Mutex<Slot<K, T>>>,
    id: u64,
    outcome: watch::Sender<Option<T>>,
}

impl<K, T> Pilot<K, T> {
    /// Ends the flight, then hands its outcome to those who joined it: a caller that comes
    /// after this starts a new flight (which first looks for what this one left) rather than
    /// getting an outcome that may be stale by then (an expired token).
    fn land(self, outcome: T) {
        self.end();
        self.outcome.send_replace(Some(outcome));
    }

    fn end(&self) {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if slot.flying.as_ref().is_some_and(|f| f.id == self.id) {
            slot.flying = None;
        }
    }
}

impl<K, T> Drop for Pilot<K, T> {
    fn drop(&mut self) {
        self.end();
    }
}

impl<K, T> SingleFlight<K, T>
where
    K: PartialEq + Clone + Send + 'static,
    T: Clone + Send + Sync + 'static,
{
    pub(crate) fn new() -> Self {
        Self {
            slot: Arc::new(Mutex::new(Slot {
                next: 0,
                flying: None,
            })),
        }
    }

    /// Joins the flight in the air for `key`, or starts one that runs `work()`; either way, the
    /// flight's outcome. The flight ends when the work does (not when its callers give up), so
    /// the next caller after that starts a new one.
    pub(crate) async fn join<F, Fut>(&self, key: &K, work: F) -> T
    where
        F: Fn() -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        // Set once a flight was lost: its work is then run in this caller's task.
        let mut here = false;
        loop {
            let (mut outcome, pilot) = self.board(key);
            if let Some(pilot) = pilot {
                let work = work();
                let flight = async move { pilot.land(work.await) };
                match tokio::runtime::Handle::try_current() {
                    Ok(runtime) if !here => drop(runtime.spawn(flight)),
                    _ => flight.await,
                }
            }
            if let Ok(landed) = outcome.wait_for(Option::is_some).await {
                if let Some(outcome) = &*landed {
                    return outcome.clone();
                }
            }
            here = true;
        }
    }

    /// The outcome of the flight in the air for `key`, and the pilot of a new one when there
    /// was none.
    #[allow(clippy::type_complexity)]
    fn board(&self, key: &K) -> (watch::Receiver<Option<T>>, Option<Pilot<K, T>>) {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(flying) = slot.flying.as_ref().filter(|f| f.key == *key) {
            return (flying.outcome.clone(), None);
        }
        let id = slot.next;
        slot.next = id.wrapping_add(1);
        let (sender, outcome) = watch::channel(None);
        slot.flying = Some(Flying {
            id,
            key: key.clone(),
            outcome: outcome.clone(),
        });
        let pilot = Pilot {
            slot: self.slot.clone(),
            id,
            outcome: sender,
        };
        (outcome, Some(pilot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_caller_leaves_the_work_running_for_the_next_one() {
        let flight = Arc::new(SingleFlight::<(), u32>::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let (go, gate) = watch::channel(false);
        let work = {
            let (runs, gate) = (runs.clone(), gate.clone());
            move || {
                let (runs, mut gate) = (runs.clone(), gate.clone());
                async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    let _ = gate.wait_for(|open| *open).await;
                    7
                }
            }
        };
        // The first caller starts the work and gives up.
        let first = tokio::time::timeout(Duration::from_millis(20), flight.join(&(), &work));
        assert!(first.await.is_err());
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // The next joins it (its first poll waits) rather than starting it again.
        let mut second = std::pin::pin!(flight.join(&(), &work));
        assert!(futures::poll!(second.as_mut()).is_pending());
        go.send_replace(true);
        assert_eq!(second.await, 7);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Landed, the flight is over: a later caller starts a new one.
        assert_eq!(flight.join(&(), &work).await, 7);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_flight_for_another_key_is_a_flight_of_its_own() {
        let flight = SingleFlight::<u8, u8>::new();
        let (go, gate) = watch::channel(false);
        let held = |key: u8| {
            let gate = gate.clone();
            move || {
                let mut gate = gate.clone();
                async move {
                    let _ = gate.wait_for(|open| *open).await;
                    key
                }
            }
        };
        let one = flight.join(&1, held(1));
        let two = flight.join(&2, held(2));
        go.send_replace(true);
        assert_eq!(tokio::join!(one, two), (1, 2));
    }

    #[test]
    fn without_a_runtime_the_caller_runs_the_work_itself() {
        let flight = SingleFlight::<(), u8>::new();
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut joined = std::pin::pin!(flight.join(&(), || async { 3 }));
        assert_eq!(joined.as_mut().poll(&mut cx), std::task::Poll::Ready(3));
    }
}
