//! Time as the sessions see it: a monotonic clock for expiry, a wall clock for JWT claims.
//!
//! Sessions take their time from a [`Clock`] so that tests (the crate's and yours) can drive
//! expiry with [`ManualClock`] instead of sleeping: token expiry and renewal, lock-outs, the
//! retry budget and `Retry-After` dates all read the session's clock (waiting itself is
//! tokio's timer).
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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// A source of time for sessions.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// The monotonic now: every expiry is an `Instant` on this clock.
    fn now(&self) -> Instant;
    /// The wall-clock now, used only to read JWT `exp` claims and to print expiry times.
    fn system_now(&self) -> SystemTime;

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
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Debug)]
struct ManualInner {
    start: Instant,
    start_system: SystemTime,
    elapsed_nanos: AtomicU64,
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
            }),
        }
    }

    /// Moves both clocks forward.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.inner.elapsed_nanos.fetch_add(nanos, Ordering::SeqCst);
    }

    fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.inner.elapsed_nanos.load(Ordering::SeqCst))
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
}
