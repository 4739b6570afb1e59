//! Logins that must not be sent again: refused credentials are never resent (they count
//! towards a lock-out), and a lock-out, a rate limit or a pending login challenge is waited
//! out. A login that failed for a transient reason (5xx, timeout, transport) holds the next
//! ones back for a short jittered backoff, or for as long as a 503's `Retry-After` asks when
//! that is longer, so that a failing service sees one login per backoff rather than one per
//! caller.
//!
//! What holds logins back for good is decided here alone ([`for_good`]): a refusal with a
//! credential status (401, 423), or one whose body says why. A service's own "try again
//! later", and a 4xx whose body says nothing (a proxy's, a validator's that gives no reason),
//! are met with the transient backoff instead: held back a while, never for good.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Service};
use crate::store::{RefusalKind, StoredRefusal};

/// A login failure that must not be repeated with the same credentials (until `until`).
struct Blocked {
    error: Error,
    until: Option<Instant>,
}

/// How long a provider holds logins back where the failure does not say.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Holds {
    /// After a login challenge (new password required, password expired): its lifetime.
    pub(crate) challenge: Duration,
    /// After a 429 that does not say how long to wait.
    pub(crate) rate_limit: Duration,
}

/// The first backoff after a transient login failure; it doubles with each consecutive one.
pub(super) const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// The longest backoff.
pub(super) const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Consecutive transient login failures, and the last one, returned until `until`.
struct Backoff {
    failures: u32,
    error: Error,
    until: Instant,
}

/// The backoff after `failures` consecutive transient failures, `unit` in [0, 1] choosing
/// where in its jitter range it falls: between half and all of `BACKOFF_FIRST` doubled
/// `failures - 1` times, capped at `BACKOFF_MAX`. Jitter keeps the sessions of a fleet that
/// failed together from coming back together.
fn backoff(failures: u32, unit: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let full = BACKOFF_FIRST
        .checked_mul(1 << doublings)
        .unwrap_or(BACKOFF_MAX)
        .min(BACKOFF_MAX);
    full.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
}

/// A login failure that a new login soon after would most likely only repeat.
fn transient(error: &Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::ServiceUnavailable
            | ErrorKind::ServerError
            | ErrorKind::Timeout
            | ErrorKind::Transport
    )
}

/// A refusal that would hold logins back for good (see the module's documentation) is believed
/// when its status is a credential one (401, 423) or none (a challenge read from a success
/// body), or when its body says why; never when it asks to try again later.
fn for_good(error: &Error) -> bool {
    let status = error.status();
    if matches!(status, Some(401 | 423)) {
        return true;
    }
    if error
        .message()
        .is_some_and(|m| m.to_ascii_lowercase().contains("try again later"))
    {
        return false;
    }
    let says_why =
        error.message().is_some() || error.code().is_some() || !error.field_errors().is_empty();
    !matches!(status, Some(400..=499)) || says_why
}

/// How long a refusal holds logins back.
enum Hold {
    /// Until `clear_failure()` or a completed flow.
    ForGood,
    /// For this long, every session of the account.
    For(Duration),
    /// For this long, this session only (a login challenge).
    Mine(Duration),
}

/// What a refusal holds the other sessions of the account to: the refusal is the account's,
/// kept in its store (see [`to_stored`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shared {
    /// Until a session's `clear_failure()`: logins with the same credentials.
    ForGood,
    /// For this long from when it was met: every login of the account.
    For(Duration),
}

/// `error`, refused with the credentials whose fingerprint is `credentials`, as a store keeps
/// it beside the token set.
pub(super) fn to_stored(error: &Error, shared: Shared, credentials: u64) -> StoredRefusal {
    let kind = match error.kind() {
        ErrorKind::InvalidCredentials => RefusalKind::InvalidCredentials,
        ErrorKind::AccessWindowExpired => RefusalKind::AccessWindowExpired,
        ErrorKind::InvalidRequest => RefusalKind::InvalidRequest,
        ErrorKind::UnsupportedChallenge => RefusalKind::UnsupportedChallenge,
        ErrorKind::AccountLocked { .. } => RefusalKind::AccountLocked,
        ErrorKind::RateLimited { .. } => RefusalKind::RateLimited,
        _ => RefusalKind::Unknown,
    };
    let hold_ms = match shared {
        Shared::ForGood => None,
        Shared::For(d) => Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    };
    StoredRefusal {
        kind,
        status: error.status(),
        code: error.code().map(str::to_owned),
        message: error.message().map(str::to_owned),
        hold_ms,
        credentials,
        saved_at_ms: None,
        stamp: None,
        age: None,
        written_at: None,
    }
}

/// The error a stored refusal answers with, `left` being what is left of its window (`None`
/// for a refusal for good); `None` for a kind this version does not know.
pub(super) fn from_stored(
    stored: &StoredRefusal,
    service: Service,
    left: Option<Duration>,
) -> Option<Error> {
    let kind = match stored.kind {
        RefusalKind::InvalidCredentials => ErrorKind::InvalidCredentials,
        RefusalKind::AccessWindowExpired => ErrorKind::AccessWindowExpired,
        RefusalKind::InvalidRequest => ErrorKind::InvalidRequest,
        RefusalKind::UnsupportedChallenge => ErrorKind::UnsupportedChallenge,
        RefusalKind::AccountLocked => ErrorKind::AccountLocked { retry_after: left },
        RefusalKind::RateLimited => ErrorKind::RateLimited { retry_after: left },
        RefusalKind::Unknown => return None,
    };
    let mut error = Error::new(kind)
        .with_service(service)
        .with_code(stored.code.clone());
    if let Some(status) = stored.status {
        error = error.with_status(status);
    }
    if let Some(message) = &stored.message {
        error = error.with_message(message.clone());
    }
    Some(error)
}

/// The login failure that holds logins back, if any.
pub(super) struct Refusals {
    blocked: Mutex<Option<Blocked>>,
    backoff: Mutex<Option<Backoff>>,
}

impl Refusals {
    pub(super) fn new() -> Self {
        Self {
            blocked: Mutex::new(None),
            backoff: Mutex::new(None),
        }
    }

    /// The failure a login at `now` would only repeat, if any.
    pub(super) fn blocking(&self, now: Instant) -> Option<Error> {
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        match &*blocked {
            Some(b) if b.until.is_none_or(|until| now < until) => Some(b.error.clone()),
            Some(_) => {
                *blocked = None;
                None
            }
            None => None,
        }
        .or_else(|| {
            let slot = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
            slot.as_ref()
                .filter(|b| now < b.until)
                .map(|b| b.error.clone())
        })
    }

    /// A login succeeded: the next transient failure backs off from the start again.
    pub(super) fn succeeded(&self) {
        *self.backoff.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Records a login failure at `now`, when it is one that must not be repeated soon; what
    /// the other sessions of the account should hold too, if anything.
    pub(super) fn record(&self, error: &Error, now: Instant, holds: Holds) -> Option<Shared> {
        self.record_with(error, now, holds, fastrand::f64())
    }

    /// [`Self::record`], with the backoff's jitter chosen by `unit` (in [0, 1]).
    fn record_with(&self, error: &Error, now: Instant, holds: Holds, unit: f64) -> Option<Shared> {
        let permanent = matches!(
            error.kind(),
            ErrorKind::InvalidCredentials
                | ErrorKind::AccessWindowExpired
                | ErrorKind::InvalidRequest
                | ErrorKind::UnsupportedChallenge
                | ErrorKind::AccountLocked { retry_after: None }
        );
        if transient(error) || (permanent && !for_good(error)) {
            let mut slot = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
            let failures = slot.as_ref().map_or(0, |b| b.failures).saturating_add(1);
            // A 503 that says how long it will be down is not asked again sooner.
            let wait = backoff(failures, unit).max(error.retry_after().unwrap_or_default());
            // An instant out of range cannot happen with these bounds (a `Retry-After` is cut
            // to a day); should it, no backoff.
            *slot = now.checked_add(wait).map(|until| Backoff {
                failures,
                error: error.clone(),
                until,
            });
            // Each session backs off on its own: the jitter spreads a fleet's next logins.
            return None;
        }
        let hold = match error.kind() {
            // Sending the same login again cannot succeed, and refused ones count towards a
            // lock-out; a flow (new password, password update) or clear_failure() lifts this.
            ErrorKind::InvalidCredentials
            | ErrorKind::AccessWindowExpired
            | ErrorKind::InvalidRequest
            // The same login would start the same challenge again (an MFA one sends an SMS).
            | ErrorKind::UnsupportedChallenge
            // A lock of unknown length: another attempt could only extend it.
            | ErrorKind::AccountLocked { retry_after: None } => Hold::ForGood,
            // The challenge's session or temporary token is what the caller needs, as long as
            // it lasts; a login after that gets a new one. It is this session's: another
            // session's login gets a challenge of its own.
            ErrorKind::PasswordExpired | ErrorKind::NewPasswordRequired => {
                Hold::Mine(holds.challenge)
            }
            ErrorKind::AccountLocked {
                retry_after: Some(d),
            }
            | ErrorKind::RateLimited {
                retry_after: Some(d),
            } => Hold::For(d),
            ErrorKind::RateLimited { retry_after: None } => Hold::For(holds.rate_limit),
            _ => return None,
        };
        let (until, shared) = match hold {
            Hold::ForGood => (None, Some(Shared::ForGood)),
            Hold::For(d) => (Some(now + d), Some(Shared::For(d))),
            Hold::Mine(d) => (Some(now + d), None),
        };
        self.adopt(error.clone(), until);
        shared
    }

    /// Holds logins back with `error` until `until` (for good: `None`): a refusal this session
    /// met, or one another session of the account met and stored.
    pub(super) fn adopt(&self, error: Error, until: Option<Instant>) {
        *self.blocked.lock().unwrap_or_else(|p| p.into_inner()) = Some(Blocked { error, until });
    }

    /// Forgets the refused login, so that the next call tries the credentials again.
    pub(super) fn clear(&self) {
        *self.blocked.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.succeeded();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOLDS: Holds = Holds {
        challenge: Duration::from_secs(300),
        rate_limit: Duration::from_secs(60),
    };

    #[test]
    fn the_backoff_doubles_from_one_second_to_thirty_within_its_jitter() {
        assert_eq!(backoff(1, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(1, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(2, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(3, 0.5), Duration::from_secs(3));
        assert_eq!(backoff(5, 1.0), Duration::from_secs(16));
        assert_eq!(backoff(6, 1.0), Duration::from_secs(30));
        assert_eq!(backoff(6, 0.0), Duration::from_secs(15));
        assert_eq!(backoff(u32::MAX, 1.0), Duration::from_secs(30));
    }

    #[test]
    fn transient_failures_back_off_until_a_success_resets_them() {
        let refusals = Refusals::new();
        let t0 = Instant::now();
        let error = Error::new(ErrorKind::ServerError).with_message("boom");
        refusals.record_with(&error, t0, HOLDS, 1.0);
        refusals.record_with(&error, t0, HOLDS, 1.0);
        let blocked = refusals.blocking(t0 + Duration::from_millis(1999)).unwrap();
        assert_eq!(blocked.kind(), ErrorKind::ServerError);
        assert!(refusals.blocking(t0 + Duration::from_secs(2)).is_none());

        refusals.succeeded();
        assert!(refusals.blocking(t0).is_none());
        refusals.record_with(&error, t0, HOLDS, 1.0);
        assert!(refusals.blocking(t0 + Duration::from_millis(999)).is_some());
        assert!(
            refusals.blocking(t0 + Duration::from_secs(1)).is_none(),
            "back to 1 s after a success"
        );

        // Credentials refused stay refused, backoff or not.
        let refused = Error::new(ErrorKind::InvalidCredentials);
        refusals.record_with(&refused, t0, HOLDS, 1.0);
        let later = t0 + Duration::from_secs(24 * 60 * 60);
        assert_eq!(
            refusals.blocking(later).unwrap().kind(),
            ErrorKind::InvalidCredentials
        );
    }

    #[test]
    fn a_503_is_not_asked_again_before_its_retry_after_nor_before_the_backoff() {
        let refusals = Refusals::new();
        let t0 = Instant::now();
        let down_for = |secs| {
            Error::new(ErrorKind::ServiceUnavailable)
                .with_unavailable_for(Some(Duration::from_secs(secs)))
        };
        refusals.record_with(&down_for(120), t0, HOLDS, 1.0);
        let blocked = refusals
            .blocking(t0 + Duration::from_millis(119_999))
            .unwrap();
        assert_eq!(blocked.retry_after(), Some(Duration::from_secs(120)));
        assert!(refusals.blocking(t0 + Duration::from_secs(120)).is_none());

        // Shorter than the backoff (the second failure's 2 s): the backoff holds.
        refusals.record_with(&down_for(1), t0, HOLDS, 1.0);
        assert!(refusals
            .blocking(t0 + Duration::from_millis(1999))
            .is_some());
        assert!(refusals.blocking(t0 + Duration::from_secs(2)).is_none());
    }

    #[test]
    fn each_refusal_holds_logins_back_exactly_as_long_as_it_says() {
        let t0 = Instant::now();
        let d = Duration::from_secs(42);
        let just_before = |wait: Duration| t0 + wait - Duration::from_millis(1);
        let timed = [
            (
                ErrorKind::AccountLocked {
                    retry_after: Some(d),
                },
                d,
            ),
            (
                ErrorKind::RateLimited {
                    retry_after: Some(d),
                },
                d,
            ),
            (
                ErrorKind::RateLimited { retry_after: None },
                HOLDS.rate_limit,
            ),
            (ErrorKind::PasswordExpired, HOLDS.challenge),
            (ErrorKind::NewPasswordRequired, HOLDS.challenge),
        ];
        for (kind, wait) in timed {
            let refusals = Refusals::new();
            refusals.record_with(&Error::new(kind), t0, HOLDS, 1.0);
            assert_eq!(refusals.blocking(t0).map(|e| e.kind()), Some(kind));
            assert_eq!(
                refusals.blocking(just_before(wait)).map(|e| e.kind()),
                Some(kind),
                "{kind:?} still held"
            );
            assert!(refusals.blocking(t0 + wait).is_none(), "{kind:?} lifted");
            assert!(
                refusals.blocking(t0).is_none(),
                "{kind:?} forgotten once lifted"
            );
        }
        let for_good = [
            ErrorKind::InvalidCredentials,
            ErrorKind::AccessWindowExpired,
            ErrorKind::InvalidRequest,
            ErrorKind::UnsupportedChallenge,
            ErrorKind::AccountLocked { retry_after: None },
        ];
        for kind in for_good {
            let refusals = Refusals::new();
            refusals.record_with(&Error::new(kind), t0, HOLDS, 1.0);
            let years = t0 + Duration::from_secs(10 * 365 * 24 * 60 * 60);
            assert_eq!(refusals.blocking(years).map(|e| e.kind()), Some(kind));
            refusals.clear();
            assert!(refusals.blocking(t0).is_none(), "{kind:?} cleared");
        }
        // Transient failures back off (1 s for the first); anything else holds nothing.
        for kind in [
            ErrorKind::ServiceUnavailable,
            ErrorKind::ServerError,
            ErrorKind::Timeout,
            ErrorKind::Transport,
        ] {
            let refusals = Refusals::new();
            refusals.record_with(&Error::new(kind), t0, HOLDS, 1.0);
            assert_eq!(
                refusals
                    .blocking(just_before(Duration::from_secs(1)))
                    .map(|e| e.kind()),
                Some(kind)
            );
            assert!(
                refusals.blocking(t0 + Duration::from_secs(1)).is_none(),
                "{kind:?}"
            );
        }
        let refusals = Refusals::new();
        refusals.record_with(&Error::new(ErrorKind::TokenRejected), t0, HOLDS, 1.0);
        assert!(
            refusals.blocking(t0).is_none(),
            "a rejected token holds no login back"
        );
    }

    #[test]
    fn only_a_refusal_that_says_why_or_has_a_credential_status_is_held_for_good() {
        let t0 = Instant::now();
        let years = t0 + Duration::from_secs(10 * 365 * 24 * 60 * 60);
        let kind = |kind, status| Error::new(kind).with_status(status);
        let for_good = [
            kind(ErrorKind::InvalidCredentials, 401),
            kind(ErrorKind::AccountLocked { retry_after: None }, 423),
            kind(ErrorKind::InvalidRequest, 422).with_message("username too long"),
            kind(ErrorKind::InvalidRequest, 400).with_code(Some("BAD_EMAIL".into())),
            kind(ErrorKind::InvalidCredentials, 403).with_code(Some("INVALID".into())),
            // A challenge the SDK cannot answer, read from a 200's body.
            kind(ErrorKind::UnsupportedChallenge, 200),
            Error::new(ErrorKind::AccessWindowExpired),
        ];
        for error in for_good {
            let refusals = Refusals::new();
            refusals.record_with(&error, t0, HOLDS, 1.0);
            assert_eq!(
                refusals.blocking(years).map(|e| e.kind()),
                Some(error.kind()),
                "{error:?}"
            );
        }
        // A bare 4xx, or the service's own "try again later": the backoff (1 s for the
        // first), then a login again.
        let backed_off = [
            kind(ErrorKind::InvalidRequest, 400),
            kind(ErrorKind::InvalidRequest, 422),
            kind(ErrorKind::InvalidCredentials, 403),
            kind(ErrorKind::InvalidRequest, 422)
                .with_message("Internal error, please try again later."),
            kind(ErrorKind::UnsupportedChallenge, 409).with_message("Please Try Again Later"),
        ];
        for error in backed_off {
            let refusals = Refusals::new();
            refusals.record_with(&error, t0, HOLDS, 1.0);
            let held = refusals.blocking(t0 + Duration::from_millis(999));
            assert_eq!(held.map(|e| e.kind()), Some(error.kind()), "{error:?}");
            assert!(
                refusals.blocking(t0 + Duration::from_secs(1)).is_none(),
                "{error:?} held for good"
            );
        }
        // Credential statuses are held for good even when they ask to try again later.
        let refusals = Refusals::new();
        let asked = kind(ErrorKind::InvalidCredentials, 401).with_message("try again later");
        refusals.record_with(&asked, t0, HOLDS, 1.0);
        assert!(refusals.blocking(years).is_some());
    }

    #[test]
    fn a_token_rejection_holds_nothing() {
        let t0 = Instant::now();
        let refusals = Refusals::new();
        refusals.record_with(&Error::new(ErrorKind::TokenRejected), t0, HOLDS, 1.0);
        assert!(
            refusals.blocking(t0).is_none(),
            "a rejected token holds no login back"
        );
    }
}
