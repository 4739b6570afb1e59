//! Time as the sessions see it: a monotonic clock for expiry, a wall clock for JWT claims.
//!
//! Sessions take their time from a [`Clock`] so that tests (the crate's and yours) can drive
//! expiry with [`ManualClock`] instead of sleeping: token expiry and renewal, lock-outs, the
//! retry budget and `Retry-After` dates all read the session's clock, and the session waits on
//! it too ([`Clock::sleep`]): the retry backoff and `Retry-After` waits, the wait for another
//! replica's renewal lease, the step-up handler's bound and the background renewal's timer.
//! Advancing a [`ManualClock`] past the end of such a wait ends it at once.
//!
//! What is not read on the session's clock: the warm hot path reads [`Instant::now`] itself
//! when the session's clock is the [`SystemClock`] (the same time, without the indirect
//! call); what has no session reads the system clock (an `api()` error converted with `?`
//! reads an HTTP-date `Retry-After` against it); and a Redis store's entry and lease
//! lifetimes are counted by Redis on its own clock, so its lease keep-alive beats on tokio's
//! timer. The HTTP client's connect and request timeouts are its own, in real time, and so is
//! the bound on each token store operation.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use tokensmith::clock::{Clock, ManualClock};
//!
//! let clock = ManualClock::new();
//! let session = tokensmith::s7risk::Session::builder()
//!     .origin("https://api.example.com")
//!     .user("analyst@example.com", "correct horse")
//!     .clock(clock.clone()) // shared: the session sees every advance
//!     .build()?;
//! let start = clock.now();
//! clock.advance(Duration::from_secs(24 * 60 * 60));
//! assert_eq!(clock.now() - start, Duration::from_secs(24 * 60 * 60));
//! # let _ = session;
//! # Ok::<(), tokensmith::Error>(())
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;

/// A wait on a [`Clock`], as [`Clock::sleep`] and [`Clock::sleep_until`] give it: boxed, so
/// that a clock can be a trait object.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A source of time for sessions, and the timer they wait on.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// The monotonic now: every expiry is an `Instant` on this clock.
    fn now(&self) -> Instant;
    /// The wall-clock now: JWT `exp` claims, `Retry-After` dates and a token store's times
    /// are read against it, and expiry times printed with it.
    fn system_now(&self) -> SystemTime;

    /// A wait that ends once `duration` has passed on this clock. The default waits that long
    /// on tokio's timer (so it needs a tokio runtime with time enabled, as the sessions do).
    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }

    /// A wait that ends once this clock reaches `deadline` (an `Instant` of [`Self::now`]).
    /// The default is [`Self::sleep`] for the time left now.
    fn sleep_until(&self, deadline: Instant) -> Sleep {
        self.sleep(deadline.saturating_duration_since(self.now()))
    }

    /// Whether [`Self::now`] is exactly [`Instant::now`], so that the hot path may call it
    /// directly instead of through the trait object. Only [`SystemClock`] says so.
    #[doc(hidden)]
    fn is_system_clock(&self) -> bool {
        false
    }
}

/// The real clocks: [`Instant::now`] and [`SystemTime::now`]. The default.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn system_now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn is_system_clock(&self) -> bool {
        true
    }
}

/// A clock that only moves when told to, for tests.
///
/// Cloning shares the clock: advance one handle and every session built with it sees the time
/// move.
///
/// A wait on it ([`Clock::sleep`]) ends as soon as the clock is advanced past its end, so a
/// test moves a session through its retry waits, lease waits, step-up bound and background
/// renewal with [`ManualClock::advance`] alone. Advancing never makes a wait longer: one the
/// clock is not advanced through still ends after its length on tokio's timer (real time, or
/// tokio's paused time), as with the [`SystemClock`], so a test that never advances the clock
/// runs as before.
///
/// ```
/// use std::time::Duration;
/// use tokensmith::clock::{Clock, ManualClock};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let clock = ManualClock::new();
/// let wait = tokio::spawn(clock.sleep(Duration::from_secs(3600)));
/// clock.advance(Duration::from_secs(3600));
/// wait.await.unwrap(); // an hour on the clock, no time on the wall
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Debug)]
struct ManualInner {
    start: Instant,
    start_system: SystemTime,
    elapsed_nanos: AtomicU64,
    /// Wakes every wait at each advance, to look whether it has ended.
    advanced: Notify,
}

impl ManualClock {
    /// A clock standing at the real current time until advanced.
    pub fn new() -> Self {
        Self::starting_at(SystemTime::now())
    }

    /// A clock whose wall-clock reading starts at `system_time`.
    pub fn starting_at(system_time: SystemTime) -> Self {
        Self {
            inner: Arc::new(ManualInner {
                start: Instant::now(),
                start_system: system_time,
                elapsed_nanos: AtomicU64::new(0),
                advanced: Notify::new(),
            }),
        }
    }

    /// Moves both clocks forward, ending every wait on this clock that ends by then.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.inner.elapsed_nanos.fetch_add(nanos, Ordering::SeqCst);
        self.inner.advanced.notify_waiters();
    }

    fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.inner.elapsed_nanos.load(Ordering::SeqCst))
    }

    /// A wait that ends when the clock has moved `nanos` past its start, or after `left` on
    /// tokio's timer, whichever comes first.
    fn wait(&self, nanos: u64, left: Duration) -> Sleep {
        let inner = self.inner.clone();
        Box::pin(async move {
            let advanced = async {
                loop {
                    // Registered before the reading, so that an advance between the two is
                    // not missed.
                    let next = inner.advanced.notified();
                    tokio::pin!(next);
                    next.as_mut().enable();
                    if inner.elapsed_nanos.load(Ordering::SeqCst) >= nanos {
                        return;
                    }
                    next.await;
                }
            };
            tokio::select! {
                () = advanced => {}
                () = tokio::time::sleep(left) => {}
            }
        })
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.inner.start + self.elapsed()
    }

    fn system_now(&self) -> SystemTime {
        self.inner.start_system + self.elapsed()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        let by = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let nanos = self
            .inner
            .elapsed_nanos
            .load(Ordering::SeqCst)
            .saturating_add(by);
        self.wait(nanos, duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        let since_start = deadline.saturating_duration_since(self.inner.start);
        let nanos = u64::try_from(since_start.as_nanos()).unwrap_or(u64::MAX);
        self.wait(nanos, deadline.saturating_duration_since(self.now()))
    }
}

/// A count of seconds as a service sent it (accounts' and Password Safe's `expires_in`, fib's
/// `expirationTime`), kept as it came: any JSON number, even one no lifetime could be, reads
/// without failing the whole answer. The session takes the lifetime from it only when it is a
/// number of seconds within the bound the README states; otherwise the documented lifetime
/// applies.
///
/// ```
/// use tokensmith::clock::Seconds;
///
/// let sent: Seconds = serde_json::from_str("18446744073709551615").unwrap();
/// assert_eq!(sent.as_f64(), Some(18446744073709551615.0));
/// assert_eq!(format!("{sent:?}"), "18446744073709551615");
/// assert_eq!(Seconds::from(300), 300);
/// ```
#[derive(Clone, PartialEq)]
pub struct Seconds(serde_json::Number);

impl Seconds {
    /// The number as sent, as a float.
    pub fn as_f64(&self) -> Option<f64> {
        self.0.as_f64()
    }
}

impl From<i64> for Seconds {
    fn from(seconds: i64) -> Self {
        Self(seconds.into())
    }
}

impl PartialEq<i64> for Seconds {
    fn eq(&self, other: &i64) -> bool {
        self.0.as_i64() == Some(*other)
    }
}

impl std::fmt::Debug for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl serde::Serialize for Seconds {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde_json::Number::deserialize(deserializer).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_both_readings_together() {
        let clock = ManualClock::starting_at(SystemTime::UNIX_EPOCH);
        let (t0, s0) = (clock.now(), clock.system_now());
        clock.clone().advance(Duration::from_secs(90));
        assert_eq!(clock.now() - t0, Duration::from_secs(90));
        assert_eq!(
            clock.system_now().duration_since(s0).unwrap(),
            Duration::from_secs(90)
        );
    }

    /// Lets every task that can run do so (the runtime is current-thread).
    async fn run_ready() {
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_manual_wait_ends_when_the_clock_passes_its_end_and_not_before() {
        let clock = ManualClock::new();
        let hour = Duration::from_secs(3600);
        let waits = [
            tokio::spawn(clock.sleep(hour)),
            tokio::spawn(clock.sleep_until(clock.now() + hour + Duration::from_secs(1))),
        ];
        clock.advance(hour - Duration::from_nanos(1));
        run_ready().await;
        assert!(waits.iter().all(|w| !w.is_finished()), "ended early");
        clock.advance(Duration::from_nanos(1));
        run_ready().await;
        assert!(
            waits[0].is_finished(),
            "the clock reached the end of `sleep`"
        );
        assert!(!waits[1].is_finished(), "a second is left of `sleep_until`");
        clock.advance(Duration::from_secs(1));
        run_ready().await;
        assert!(waits[1].is_finished());
    }

    #[tokio::test]
    async fn a_wait_the_clock_has_passed_before_its_first_poll_ends_at_once() {
        let clock = ManualClock::new();
        let wait = clock.sleep(Duration::from_secs(60));
        clock.advance(Duration::from_secs(60));
        let mut wait = tokio::spawn(wait);
        run_ready().await;
        assert!(wait.is_finished());
        (&mut wait).await.unwrap();
        assert!(futures::FutureExt::now_or_never(clock.sleep(Duration::ZERO)).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_manual_wait_the_clock_is_not_advanced_through_ends_on_tokios_timer() {
        let clock = ManualClock::new();
        let started = tokio::time::Instant::now();
        clock.sleep(Duration::from_secs(30)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        assert_eq!(clock.now(), clock.inner.start, "the clock did not move");
    }
}
