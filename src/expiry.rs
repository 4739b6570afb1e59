//! How long a token lives, and when to renew it.

use std::time::{Duration, SystemTime};

use base64::Engine as _;

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

/// The `exp` claim of a JWT, unverified: the session only uses it to time renewals.
pub(crate) fn jwt_exp(token: &str) -> Option<SystemTime> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims
        .get("exp")?
        .as_f64()
        .filter(|e| e.is_finite() && *e >= 0.0)?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(exp))
}

/// A lifetime given as a number that is either seconds from now or, when it is clearly one, an
/// epoch timestamp (seconds, or milliseconds past 10^12). `None` for a negative value.
pub(crate) fn seconds_or_epoch(value: i64, sent_wall: SystemTime) -> Option<Duration> {
    let value = u64::try_from(value).ok()?;
    let epoch_secs = match value {
        v if v >= 1_000_000_000_000 => v / 1000,
        v if v >= 1_000_000_000 => v,
        v => return Some(Duration::from_secs(v)),
    };
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(epoch_secs);
    Some(at.duration_since(sent_wall).unwrap_or(Duration::ZERO))
}

/// A token's lifetime from when its request was sent: the shortest of what the service said
/// (`expires_in`) and what the JWT's `exp` claim says, else the documented lifetime; never
/// longer than `cap`.
pub(crate) fn lifetime(
    expires_in: Option<Duration>,
    jwt: Option<&str>,
    sent_wall: SystemTime,
    documented: Duration,
    cap: Option<Duration>,
) -> Duration {
    let from_jwt = jwt
        .and_then(jwt_exp)
        .map(|exp| exp.duration_since(sent_wall).unwrap_or(Duration::ZERO));
    let lifetime = match (expires_in, from_jwt) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => documented,
    };
    cap.map_or(lifetime, |cap| lifetime.min(cap))
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
    fn seconds_or_epoch_reads_both() {
        let sent = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(seconds_or_epoch(300, sent), Some(Duration::from_secs(300)));
        assert_eq!(
            seconds_or_epoch(1_700_000_300, sent),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            seconds_or_epoch(1_700_000_300_000, sent),
            Some(Duration::from_secs(300))
        );
        assert_eq!(seconds_or_epoch(1_600_000_000, sent), Some(Duration::ZERO));
        assert_eq!(seconds_or_epoch(-1, sent), None);
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
