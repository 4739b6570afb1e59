//! Logins that must not be sent again: refused credentials are never resent (they count
//! towards a lock-out), and a lock-out, a rate limit or a pending login challenge is waited
//! out.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind};

/// A login failure that must not be repeated with the same credentials (until `until`).
struct Blocked {
    error: Error,
    until: Option<Instant>,
}

/// How long a provider holds logins back where the failure does not say.
#[derive(Debug, Clone, Copy)]
pub(super) struct Holds {
    /// After a login challenge (new password required, password expired): its lifetime.
    pub(super) challenge: Duration,
    /// After a 429 that does not say how long to wait.
    pub(super) rate_limit: Duration,
}

/// The login failure that holds logins back, if any.
pub(super) struct Refusals {
    blocked: Mutex<Option<Blocked>>,
}

impl Refusals {
    pub(super) fn new() -> Self {
        Self {
            blocked: Mutex::new(None),
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
    }

    /// Records a login failure at `now`, when it is one that must not be repeated soon.
    pub(super) fn record(&self, error: &Error, now: Instant, holds: Holds) {
        let until = match error.kind() {
            // Sending the same login again cannot succeed, and refused ones count towards a
            // lock-out; a flow (new password, password update) or clear_failure() lifts this.
            ErrorKind::InvalidCredentials
            | ErrorKind::AccessWindowExpired
            | ErrorKind::InvalidRequest
            // The same login would start the same challenge again (an MFA one sends an SMS).
            | ErrorKind::UnsupportedChallenge
            // A lock of unknown length: another attempt could only extend it.
            | ErrorKind::AccountLocked { retry_after: None } => None,
            // The challenge's session or temporary token is what the caller needs, as long as
            // it lasts; a login after that gets a new one.
            ErrorKind::PasswordExpired | ErrorKind::NewPasswordRequired => {
                Some(now + holds.challenge)
            }
            ErrorKind::AccountLocked {
                retry_after: Some(d),
            }
            | ErrorKind::RateLimited {
                retry_after: Some(d),
            } => Some(now + d),
            ErrorKind::RateLimited { retry_after: None } => Some(now + holds.rate_limit),
            _ => return,
        };
        *self.blocked.lock().unwrap_or_else(|p| p.into_inner()) = Some(Blocked {
            error: error.clone(),
            until,
        });
    }

    /// Forgets the refused login, so that the next call tries the credentials again.
    pub(super) fn clear(&self) {
        *self.blocked.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}
