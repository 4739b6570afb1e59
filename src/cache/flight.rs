//! The single flight: however many callers want a renewal at once, one runs it and all get
//! its outcome. The outcome is shared by that flight's callers only; it is never kept for
//! later ones (an error is not cached).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

/// At most one renewal in the air, and the callers waiting for it.
pub(super) struct SingleFlight<T> {
    /// The flight in the air, with its number.
    current: Mutex<Option<(u64, Arc<OnceCell<T>>)>>,
    next: AtomicU64,
}

impl<T: Clone> SingleFlight<T> {
    pub(super) fn new() -> Self {
        Self {
            current: Mutex::new(None),
            next: AtomicU64::new(0),
        }
    }

    /// Joins the flight in the air, or starts one that runs `work`; either way, the flight's
    /// outcome. The flight ends when `work` does, so the next caller starts a new one.
    pub(super) async fn join<F, Fut>(&self, work: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let (id, flight) = {
            let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
            match &*current {
                Some((id, flight)) => (*id, flight.clone()),
                None => {
                    let id = self.next.fetch_add(1, Ordering::Relaxed);
                    let flight = Arc::new(OnceCell::new());
                    *current = Some((id, flight.clone()));
                    (id, flight)
                }
            }
        };
        // Whoever runs the work, everyone in this flight gets its outcome. If that caller is
        // cancelled, OnceCell hands the work to the next waiter.
        flight
            .get_or_init(|| async {
                let outcome = work().await;
                self.end(id);
                outcome
            })
            .await
            .clone()
    }

    fn end(&self, id: u64) {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_some_and(|(flying, _)| *flying == id) {
            *current = None;
        }
    }
}
