//! When a failed exchange is sent again, and after how long.
//!
//! A request is replayed only when replaying cannot do harm the caller did not ask for: a
//! request that never left (connection refused) always may be; a login may also be replayed
//! after a gateway failure, since the service answered nothing about the credentials; a token
//! refresh or an idempotent call may be replayed after any transient failure, including 429,
//! except a refresh that rotates its refresh token (fib's `PATCH`), which is replayed only when
//! it never left: one the service may have taken may have spent the token it carried.
//! A login the service refused (401, 422, 423) or rate limited (429) is never replayed: repeated
//! attempts lock real accounts, and the caller gets the typed error with its retry-after.

use std::time::Duration;

/// How failed requests are retried: exponential backoff with full jitter, bounded in attempts
/// and in total time, and never shorter than what the service asks for in `Retry-After` or
/// `x-ratelimit-reset` (when that is longer than the time left, the failure is returned at
/// once with its retry-after instead of waiting).
///
/// ```
/// use std::time::Duration;
/// use tokensmith::RetryPolicy;
///
/// let policy = RetryPolicy::default()
///     .max_attempts(4)
///     .initial_backoff(Duration::from_millis(100))
///     .max_elapsed(Duration::from_secs(5));
/// assert_eq!(policy.attempts(), 4);
/// assert_eq!(RetryPolicy::none().attempts(), 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    max_elapsed: Duration,
}

impl Default for RetryPolicy {
    /// Three attempts in all, backoff from 200 ms doubling up to 2 s, within 10 s.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
            max_elapsed: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// No retries: every request is sent once.
    pub fn none() -> Self {
        Self::default().max_attempts(1)
    }

    /// How many times a request may be sent in all, the first included (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The backoff ceiling before the second attempt; it doubles for each one after.
    pub fn initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// The largest backoff ceiling.
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// No retry starts once this much time has passed since the first attempt, nor one whose
    /// wait would end past it.
    pub fn max_elapsed(mut self, elapsed: Duration) -> Self {
        self.max_elapsed = elapsed;
        self
    }

    /// The number of attempts allowed, the first included.
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The wait before attempt `attempt + 1` (`attempt` ≥ 1 attempts made), or `None` when the
    /// policy allows no more. `asked` is the service's own retry-after; `elapsed` the time
    /// since the first attempt; `unit` a uniform random number in [0, 1).
    pub(crate) fn delay(
        &self,
        attempt: u32,
        elapsed: Duration,
        asked: Option<Duration>,
        unit: f64,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let ceiling = self
            .initial_backoff
            .saturating_mul(1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX))
            .min(self.max_backoff);
        let jittered = ceiling.mul_f64(unit.clamp(0.0, 1.0));
        let wait = asked.map_or(jittered, |asked| asked.max(jittered));
        (elapsed.saturating_add(wait) <= self.max_elapsed).then_some(wait)
    }
}

/// How far a request may be replayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum Replay {
    /// Only when it was never sent (a connection that could not be made). The default for
    /// calls with side effects (an OTP challenge sends an SMS each time).
    #[default]
    Unsent,
    /// Also after a gateway failure (502, 503, 504): logins, whose credential check the
    /// service either never made or made without an answer worth keeping.
    Gateway,
    /// Also after a timeout, a broken connection or 429: refreshes and idempotent calls.
    Transient,
}

impl Replay {
    /// The level for an operation with this method, unless the caller chose one.
    pub(crate) fn for_method(method: &reqwest::Method) -> Self {
        if method.is_idempotent() {
            Self::Transient
        } else {
            Self::Unsent
        }
    }

    /// Whether a response with this status may be replayed.
    pub(crate) fn status(self, status: u16) -> bool {
        match self {
            Self::Unsent => false,
            Self::Gateway => matches!(status, 502..=504),
            Self::Transient => matches!(status, 429 | 502..=504),
        }
    }

    /// Whether a request that failed with this transport error may be replayed.
    pub(crate) fn error(self, error: &reqwest::Error) -> bool {
        if error.is_connect() {
            return true;
        }
        self == Self::Transient && (error.is_timeout() || error.is_request() || error.is_body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_default_is_three_attempts_from_200_ms_doubling_to_2_s_within_10_s() {
        // README's "HTTP defaults": each ceiling, at the top of the jitter.
        let p = RetryPolicy::default();
        assert_eq!(p.attempts(), 3);
        assert_eq!(p.delay(1, Duration::ZERO, None, 1.0), Some(200 * MS));
        assert_eq!(p.delay(2, Duration::ZERO, None, 1.0), Some(400 * MS));
        assert_eq!(p.delay(3, Duration::ZERO, None, 1.0), None);
        // Past the third attempt (a policy that allows more), the ceiling stops at 2 s...
        let more = RetryPolicy::default().max_attempts(10);
        assert_eq!(more.delay(4, Duration::ZERO, None, 1.0), Some(1600 * MS));
        assert_eq!(more.delay(5, Duration::ZERO, None, 1.0), Some(2000 * MS));
        assert_eq!(more.delay(9, Duration::ZERO, None, 1.0), Some(2000 * MS));
        // ... and no wait ends past 10 s from the first attempt.
        let eight = Duration::from_secs(8);
        assert_eq!(more.delay(6, eight, None, 1.0), Some(2000 * MS));
        assert_eq!(more.delay(6, eight + MS, None, 1.0), None);
        // Full jitter: anywhere from nothing up to the ceiling.
        assert_eq!(p.delay(1, Duration::ZERO, None, 0.0), Some(Duration::ZERO));
        assert_eq!(p.delay(2, Duration::ZERO, None, 0.25), Some(100 * MS));
    }

    #[test]
    fn backoff_doubles_under_the_ceiling_with_full_jitter() {
        let p = RetryPolicy::default()
            .max_attempts(5)
            .initial_backoff(100 * MS)
            .max_backoff(300 * MS)
            .max_elapsed(Duration::from_secs(60));
        assert_eq!(p.delay(1, Duration::ZERO, None, 0.5), Some(50 * MS));
        assert_eq!(p.delay(2, Duration::ZERO, None, 0.5), Some(100 * MS));
        assert_eq!(p.delay(3, Duration::ZERO, None, 0.5), Some(150 * MS));
        assert_eq!(p.delay(4, Duration::ZERO, None, 0.0), Some(Duration::ZERO));
        assert_eq!(
            p.delay(5, Duration::ZERO, None, 0.5),
            None,
            "attempts used up"
        );
    }

    #[test]
    fn the_service_s_retry_after_is_a_floor_and_the_budget_a_ceiling() {
        let p = RetryPolicy::default().max_elapsed(Duration::from_secs(10));
        assert_eq!(
            p.delay(1, Duration::ZERO, Some(Duration::from_secs(3)), 0.5),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            p.delay(1, Duration::from_secs(8), Some(Duration::from_secs(3)), 0.5),
            None,
            "a wait past the budget is not started"
        );
        assert_eq!(
            RetryPolicy::none().delay(1, Duration::ZERO, None, 0.5),
            None
        );
        assert_eq!(RetryPolicy::default().max_attempts(0).attempts(), 1);
    }

    #[test]
    fn a_wait_that_ends_exactly_at_the_budget_is_still_taken() {
        let p = RetryPolicy::default()
            .initial_backoff(Duration::ZERO)
            .max_elapsed(Duration::from_secs(10));
        let asked = Some(Duration::from_secs(3));
        assert_eq!(
            p.delay(1, Duration::from_secs(7), asked, 0.5),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            p.delay(1, Duration::from_secs(7) + MS, asked, 0.5),
            None,
            "one millisecond past the budget"
        );
    }

    #[test]
    fn credential_failures_are_never_replayed() {
        for replay in [Replay::Unsent, Replay::Gateway, Replay::Transient] {
            for status in [400, 401, 403, 409, 410, 422, 423, 500] {
                assert!(!replay.status(status), "{replay:?} {status}");
            }
        }
        assert!(
            !Replay::Gateway.status(429),
            "a rate-limited login is reported"
        );
        assert!(Replay::Gateway.status(503));
        assert!(!Replay::Unsent.status(503));
        assert!(Replay::Transient.status(429));
        assert_eq!(Replay::for_method(&reqwest::Method::GET), Replay::Transient);
        assert_eq!(Replay::for_method(&reqwest::Method::POST), Replay::Unsent);
        assert_eq!(Replay::for_method(&reqwest::Method::PATCH), Replay::Unsent);
    }

    /// The error of a GET to a server that reads the request and closes the connection
    /// without answering: a request that left (not a connect error), neither a timeout nor
    /// a body error.
    async fn closed_without_an_answer() -> reqwest::Error {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await.unwrap();
        });
        let error = reqwest::Client::new().get(url).send().await.unwrap_err();
        server.await.unwrap();
        error
    }

    #[tokio::test]
    async fn a_request_that_left_is_replayed_only_where_transient_failures_are() {
        let error = closed_without_an_answer().await;
        assert!(error.is_request(), "{error:?}");
        assert!(
            !error.is_connect() && !error.is_timeout() && !error.is_body(),
            "{error:?}"
        );
        assert!(Replay::Transient.error(&error));
        assert!(!Replay::Gateway.error(&error));
        assert!(!Replay::Unsent.error(&error));
    }

    #[tokio::test]
    async fn a_request_that_never_left_is_always_replayed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let error = reqwest::Client::new().get(url).send().await.unwrap_err();
        assert!(error.is_connect(), "{error:?}");
        for replay in [Replay::Unsent, Replay::Gateway, Replay::Transient] {
            assert!(replay.error(&error), "{replay:?}");
        }
    }
}
