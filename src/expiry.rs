//! How long a token lives, and when to renew it.

use std::time::{Duration, SystemTime};

use base64::Engine as _;

use crate::secret::SecretString;

/// When to renew a token ahead of its expiry.
///
/// The default renews at the smaller of 60 s and 10 % of the token's lifetime before expiry,
/// plus a random extra of up to half that margin, so that many processes sharing one account
/// do not all renew in the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    margin: Option<Duration>,
    jitter: bool,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            margin: None,
            jitter: true,
        }
    }
}

impl RefreshPolicy {
    /// The default policy (see the type's documentation).
    pub fn new() -> Self {
        Self::default()
    }

    /// Renews this long before expiry instead of the default margin (capped at half the
    /// token's lifetime, so that a token is always served for a while).
    pub fn with_margin(mut self, margin: Duration) -> Self {
        self.margin = Some(margin);
        self
    }

    /// Turns the random extra margin on (the default) or off.
    pub fn with_jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// How long before expiry a token with this lifetime is renewed.
    pub(crate) fn lead(&self, lifetime: Duration) -> Duration {
        let margin = match self.margin {
            Some(m) => m.min(lifetime / 2),
            None => Duration::from_secs(60).min(lifetime / 10),
        };
        if self.jitter {
            margin + margin.mul_f64(fastrand::f64() * 0.5)
        } else {
            margin
        }
    }
}

/// How far the local wall clock is trusted to agree with a token issuer's.
const CLOCK_TOLERANCE: Duration = Duration::from_secs(60);

/// The longest lifetime taken from what a service sent (`expires_in`, `expirationTime`, a
/// JWT's `exp`): a longer one, like one that cannot be read, counts as absent and the
/// documented lifetime applies. No service documents a token living anywhere near a year, and
/// an `Instant` a year ahead is far inside what any platform can represent.
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// A count of seconds a service sent: `None` for a negative, NaN or infinite one,
/// [`Duration::MAX`] for one too large for a `Duration` (callers bound what they take).
pub(crate) fn seconds(secs: f64) -> Option<Duration> {
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
}

/// How long from `now` until `since_epoch` after the Unix epoch: zero when that is past,
/// [`Duration::MAX`] when it is beyond what a `SystemTime` can hold.
fn until(since_epoch: Duration, now: SystemTime) -> Duration {
    match SystemTime::UNIX_EPOCH.checked_add(since_epoch) {
        Some(at) => at.duration_since(now).unwrap_or(Duration::ZERO),
        None => Duration::MAX,
    }
}

/// The `exp` and (if present and readable) `iat` claims of a JWT, unverified, as times after
/// the Unix epoch: the session only uses them to time renewals.
fn jwt_times(token: &str) -> Option<(Duration, Option<Duration>)> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let time = |name: &str| seconds(claims.get(name)?.as_f64()?);
    Some((time("exp")?, time("iat")))
}

/// The `exp` claim of a JWT, unverified.
#[cfg(test)]
pub(crate) fn jwt_exp(token: &str) -> Option<SystemTime> {
    jwt_times(token).and_then(|(exp, _)| SystemTime::UNIX_EPOCH.checked_add(exp))
}

/// How long a JWT received now has left, counted from `sent_wall` on the local clock.
///
/// `exp` alone is read against the local clock. With `iat` too, `exp - iat` is the lifetime on
/// the issuer's own clock: a local clock that runs behind cannot stretch the token past it,
/// and one that runs ahead cannot shrink it by more than [`CLOCK_TOLERANCE`] (else a clock
/// ahead by a token's lifetime would make every call log in again). An `iat` after `exp` is
/// ignored.
fn jwt_lifetime(token: &str, sent_wall: SystemTime) -> Option<Duration> {
    let (exp, iat) = jwt_times(token)?;
    let local = until(exp, sent_wall);
    Some(match iat.and_then(|iat| exp.checked_sub(iat)) {
        Some(issued_for) => issued_for.min(local.max(issued_for.saturating_sub(CLOCK_TOLERANCE))),
        None => local,
    })
}

/// A number that is either seconds from now or, when it is clearly one, an epoch timestamp
/// (seconds, or milliseconds past 10^12), as a duration from `now`: zero for a time already
/// past, `None` for a negative or non-finite value, [`Duration::MAX`] for one beyond what the
/// platform's clock can hold. Callers bound the result ([`MAX_LIFETIME`] for a lifetime,
/// [`crate::transport::errors::MAX_RETRY_AFTER`] for a wait).
pub(crate) fn seconds_or_epoch(value: f64, now: SystemTime) -> Option<Duration> {
    let epoch_secs = if value >= 1e12 {
        value / 1000.0
    } else if value >= 1e9 {
        value
    } else {
        return seconds(value);
    };
    Some(until(seconds(epoch_secs)?, now))
}

/// A token's lifetime from when its request was sent: the shortest of what the service said
/// (`expires_in`) and what the JWT's `exp` claim says, else the documented lifetime; never
/// longer than `cap`. A source longer than [`MAX_LIFETIME`] counts as absent.
pub(crate) fn lifetime(
    expires_in: Option<Duration>,
    jwt: Option<&str>,
    sent_wall: SystemTime,
    documented: Duration,
    cap: Option<Duration>,
) -> Duration {
    let in_range = |d: Duration| (d <= MAX_LIFETIME).then_some(d);
    let expires_in = expires_in.and_then(in_range);
    let from_jwt = jwt
        .and_then(|token| jwt_lifetime(token, sent_wall))
        .and_then(in_range);
    let lifetime = match (expires_in, from_jwt) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => documented,
    };
    cap.map_or(lifetime, |cap| lifetime.min(cap))
}

/// [`lifetime`] where the documented lifetime is also the longest a token may live (s7risk,
/// accounts, fib): what the service or the JWT says, else `documented`, never longer.
pub(crate) fn capped(
    expires_in: Option<Duration>,
    token: &SecretString,
    sent_wall: SystemTime,
    documented: Duration,
) -> Duration {
    let jwt = Some(token.expose_secret());
    lifetime(expires_in, jwt, sent_wall, documented, Some(documented))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.sig",
            b64.encode(r#"{"alg":"RS256"}"#),
            b64.encode(claims)
        )
    }

    #[test]
    fn zero_seconds_is_a_lifetime_of_zero_not_an_absent_one() {
        // A service saying 0 means "already spent": renew at once, not the documented lifetime.
        assert_eq!(seconds(0.0), Some(Duration::ZERO));
        assert_eq!(seconds(-0.0), Some(Duration::ZERO));
        assert_eq!(seconds(-0.001), None);
        let sent = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let day = Duration::from_secs(86_400);
        assert_eq!(
            lifetime(seconds(0.0), None, sent, day, None),
            Duration::ZERO
        );
        assert_eq!(seconds_or_epoch(0.0, sent), Some(Duration::ZERO));
    }

    #[test]
    fn exp_claim_is_read() {
        let t = jwt(r#"{"sub":"a","exp":1700086400}"#);
        assert_eq!(
            jwt_exp(&t),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_086_400))
        );
        assert_eq!(jwt_exp("not-a-jwt"), None);
        assert_eq!(jwt_exp(&jwt(r#"{"sub":"a"}"#)), None);
        assert_eq!(jwt_exp("a.!!!.c"), None);
    }

    #[test]
    fn lifetime_takes_the_shortest_source_and_the_cap() {
        let sent = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let t = jwt(r#"{"exp":1700000600}"#);
        let day = Duration::from_secs(86_400);
        let five = Duration::from_secs(300);
        assert_eq!(
            lifetime(None, Some(&t), sent, day, Some(day)),
            Duration::from_secs(600)
        );
        assert_eq!(lifetime(Some(five), Some(&t), sent, day, None), five);
        assert_eq!(lifetime(None, Some("opaque"), sent, day, None), day);
        // A wall clock far behind the issuer cannot stretch a token past the documented cap.
        let far = jwt(r#"{"exp":1900000000}"#);
        assert_eq!(lifetime(None, Some(&far), sent, day, Some(day)), day);
        // One already past its exp by the local clock lives zero seconds: renew at once.
        let past = jwt(r#"{"exp":1600000000}"#);
        assert_eq!(
            lifetime(None, Some(&past), sent, day, Some(day)),
            Duration::ZERO
        );
    }

    #[test]
    fn an_iat_claim_keeps_a_skewed_local_clock_from_stretching_or_emptying_a_lifetime() {
        let day = Duration::from_secs(86_400);
        let issued = 1_700_000_000;
        let t = jwt(&format!(r#"{{"iat":{issued},"exp":{}}}"#, issued + 86_400));
        let at = |offset: i64| {
            SystemTime::UNIX_EPOCH + Duration::from_secs((issued as i64 + offset) as u64)
        };
        assert_eq!(lifetime(None, Some(&t), at(0), day, None), day);
        assert_eq!(
            lifetime(None, Some(&t), at(-600), day, None),
            day,
            "a clock 10 minutes behind does not add 10 minutes"
        );
        assert_eq!(
            lifetime(None, Some(&t), at(30), day, None),
            day - Duration::from_secs(30),
            "within the tolerance the local clock counts"
        );
        assert_eq!(
            lifetime(None, Some(&t), at(2 * 86_400), day, None),
            day - CLOCK_TOLERANCE,
            "a clock two days ahead does not make the token look spent"
        );
    }

    #[test]
    fn seconds_or_epoch_reads_both() {
        let sent = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        // Seconds; an epoch in seconds; one in milliseconds; a fraction; an epoch passed.
        for (value, left) in [
            (300.0, Duration::from_secs(300)),
            (1_700_000_300.0, Duration::from_secs(300)),
            (1_700_000_300_000.0, Duration::from_secs(300)),
            (2.5, Duration::from_millis(2500)),
            (1_600_000_000.0, Duration::ZERO),
        ] {
            assert_eq!(seconds_or_epoch(value, sent), Some(left), "{value}");
        }
        assert_eq!(seconds_or_epoch(-1.0, sent), None);
        assert_eq!(seconds_or_epoch(f64::NAN, sent), None);
        assert_eq!(seconds_or_epoch(f64::INFINITY, sent), None);
        // Beyond what a Duration or a SystemTime holds: the far future, never a panic.
        assert_eq!(seconds_or_epoch(1e25, sent), Some(Duration::MAX));
        assert_eq!(
            seconds_or_epoch(9.2e18, sent),
            Some(Duration::from_secs(9_200_000_000_000_000 - 1_700_000_000)),
            "milliseconds in the year 291 million"
        );
        assert_eq!(seconds_or_epoch(1e300, sent), Some(Duration::MAX));
    }

    #[test]
    fn a_lifetime_beyond_the_bound_counts_as_absent() {
        let sent = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let day = Duration::from_secs(86_400);
        let over = MAX_LIFETIME + Duration::from_secs(1);
        assert_eq!(lifetime(Some(over), None, sent, day, None), day);
        assert_eq!(
            lifetime(Some(MAX_LIFETIME), None, sent, day, None),
            MAX_LIFETIME
        );
        assert_eq!(lifetime(Some(Duration::MAX), None, sent, day, None), day);
        for claims in [
            r#"{"exp":1e300}"#,
            r#"{"exp":253402300799}"#,
            r#"{"exp":-2208988800}"#,
            r#"{"exp":"1700000600"}"#,
            r#"{"exp":null}"#,
        ] {
            assert_eq!(
                lifetime(None, Some(&jwt(claims)), sent, day, None),
                day,
                "{claims}"
            );
        }
        // An out-of-range JWT does not hide an in-range expires_in, nor the reverse.
        let five = Duration::from_secs(300);
        assert_eq!(
            lifetime(Some(five), Some(&jwt(r#"{"exp":1e300}"#)), sent, day, None),
            five
        );
        assert_eq!(
            lifetime(
                Some(over),
                Some(&jwt(r#"{"exp":1700000600}"#)),
                sent,
                day,
                None
            ),
            Duration::from_secs(600)
        );
        // An unreadable or impossible iat is ignored; exp still counts.
        for iat in ["1e20", "-5", "1700000601", "\"x\""] {
            let t = jwt(&format!(r#"{{"iat":{iat},"exp":1700000600}}"#));
            assert_eq!(
                lifetime(None, Some(&t), sent, day, None),
                Duration::from_secs(600),
                "iat {iat}"
            );
        }
        // Fractional claims are read as such.
        let t = jwt(r#"{"exp":1700000600.5}"#);
        assert_eq!(
            lifetime(None, Some(&t), sent, day, None),
            Duration::from_millis(600_500)
        );
    }

    #[test]
    fn default_margin_is_min_of_60s_and_10_percent_plus_up_to_half() {
        let p = RefreshPolicy::new().with_jitter(false);
        assert_eq!(p.lead(Duration::from_secs(86_400)), Duration::from_secs(60));
        assert_eq!(p.lead(Duration::from_secs(300)), Duration::from_secs(30));
        let j = RefreshPolicy::new();
        for _ in 0..100 {
            let lead = j.lead(Duration::from_secs(300));
            assert!(
                lead >= Duration::from_secs(30) && lead < Duration::from_secs(45),
                "{lead:?}"
            );
        }
        let fixed = RefreshPolicy::new()
            .with_margin(Duration::from_secs(500))
            .with_jitter(false);
        assert_eq!(
            fixed.lead(Duration::from_secs(300)),
            Duration::from_secs(150)
        );
    }
}
