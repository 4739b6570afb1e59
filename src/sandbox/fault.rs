//! Faults on cue: what [`Sandbox::fail`](super::Sandbox::fail) makes a stand-in do instead of
//! answering as the service would, and the one place that decides which request meets which
//! fault.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::Service;
use crate::secret::SecretString;

/// What a request to a stand-in is for: the scope of a [`Fault`] ([`Fault::on`]).
///
/// Every endpoint of every stand-in is one of these:
///
/// | operation | s7risk | weavr | accounts | passwordsafe | fib |
/// |---|---|---|---|---|---|
/// | `Login` | `user/token`, `application/token` | `login_with_password` | `v1/login` | `Auth/connect/token`, `Auth/SignAppin` | `POST …/session` |
/// | `Refresh` | | | `v1/token-refresh` | | `PATCH …/session` |
/// | `Exchange` | | `identities`, `access_token` | | | |
/// | `StepUp` | | `stepup/challenges/…` | | | |
/// | `Logout` | | `logout` | `v1/token-revoke` | `Auth/Signout` | `…/logout` |
/// | `Password` | | `passwords/update` | `v1/new-password-required`, `v1/change-password`, `v1/forgot-password`, `v1/forgot-password-confirm` | | |
/// | `Resource` | `resource` | `managed_accounts` | `resource` | `ManagedAccounts` | `resource` |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// A login with credentials (both of Password Safe's OAuth steps: the token, then the
    /// sign-in).
    Login,
    /// A renewal with a refresh token.
    Refresh,
    /// weavr: the identity lookup and the exchange for an identity's access token.
    Exchange,
    /// weavr: a step-up challenge started or verified.
    StepUp,
    /// A logout, sign-out or revocation.
    Logout,
    /// A password set, changed or reset.
    Password,
    /// The stand-in's protected resource ([`Sandbox::resource_url`](super::Sandbox::resource_url)).
    Resource,
}

/// Something that goes wrong at a stand-in, for [`Sandbox::fail`](super::Sandbox::fail).
///
/// Two families:
///
/// - **Answers** ([`outage`](Self::outage), [`rate_limit`](Self::rate_limit),
///   [`lockout`](Self::lockout), [`slow`](Self::slow),
///   [`dropped_connection`](Self::dropped_connection), [`truncated`](Self::truncated),
///   [`malformed`](Self::malformed)) answer requests in the stand-in's place, as a gateway,
///   a rate limiter or a broken network in front of the service would: the stand-in never
///   sees those requests, so nothing is issued and only [`Counters::faults`] counts them (a
///   slow answer is the stand-in's own, late: both count it). By default an answer fault
///   meets every request of the service (a lock-out: every login) until
///   [`Sandbox::clear_faults`](super::Sandbox::clear_faults); [`times`](Self::times),
///   [`for_duration`](Self::for_duration) and [`on`](Self::on) narrow it.
/// - **Events** ([`revocation`](Self::revocation),
///   [`password_changed`](Self::password_changed),
///   [`password_expired`](Self::password_expired)) change what the stand-in knows, at once
///   and for good; the service then answers as it would.
///
/// When several answer faults cover a request, the first given that is still active meets
/// it.
///
/// [`Counters::faults`]: super::Counters::faults
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tokensmith::Error> {
/// use std::time::Duration;
/// use tokensmith::sandbox::{demo, Fault, Sandbox};
/// use tokensmith::{fib, ErrorKind, RetryPolicy, Service};
///
/// let sandbox = Sandbox::start().await;
/// sandbox.fail(
///     Service::Fib,
///     Fault::outage().retry_after(Duration::from_secs(30)).times(1),
/// );
/// let session = fib::Session::builder()
///     .base_url(sandbox.base_url(Service::Fib))
///     .email(demo::FIB_EMAIL)
///     .private_key(demo::FIB_PRIVATE_KEY)
///     .build()?;
/// let error = session.access_token().await.unwrap_err();
/// assert_eq!(error.kind(), ErrorKind::ServiceUnavailable);
/// assert_eq!(error.retry_after(), Some(Duration::from_secs(30)));
/// assert_eq!(sandbox.counters(Service::Fib).faults, 1);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Fault {
    pub(super) what: What,
    times: Option<u32>,
    lasting: Option<Duration>,
    /// Empty: every operation.
    operations: Vec<Operation>,
    pub(super) retry_after: Option<Duration>,
}

#[derive(Clone, Debug)]
pub(crate) enum What {
    Outage,
    RateLimit,
    Lockout,
    Slow(Duration),
    Dropped,
    Truncated,
    Malformed,
    Revocation,
    PasswordChanged {
        account: String,
        password: SecretString,
    },
    PasswordExpired {
        account: String,
    },
}

impl What {
    fn is_event(&self) -> bool {
        matches!(
            self,
            Self::Revocation | Self::PasswordChanged { .. } | Self::PasswordExpired { .. }
        )
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Outage => "an outage",
            Self::RateLimit => "a rate limit",
            Self::Lockout => "a lock-out",
            Self::Slow(_) => "a slow answer",
            Self::Dropped => "a dropped connection",
            Self::Truncated => "a truncated body",
            Self::Malformed => "a malformed body",
            Self::Revocation => "a revocation",
            Self::PasswordChanged { .. } => "a password change",
            Self::PasswordExpired { .. } => "a password expiry",
        }
    }
}

/// How long a rate limit says to wait when not told ([`Fault::retry_after`]).
pub(crate) const DEFAULT_RATE_LIMIT_WINDOW: Duration = Duration::from_secs(60);

/// The body of [`Fault::truncated`]: a JSON object broken off inside a string.
pub(crate) const TRUNCATED_BODY: &str = r#"{"token":"eyJhbGciOi"#;
/// The body of [`Fault::malformed`].
pub(crate) const MALFORMED_BODY: &str = "<html><body><h1>Welcome</h1></body></html>";

impl Fault {
    fn new(what: What) -> Self {
        let operations = match what {
            What::Lockout => vec![Operation::Login],
            _ => Vec::new(),
        };
        Self {
            what,
            times: None,
            lasting: None,
            operations,
            retry_after: None,
        }
    }

    /// The service is down: `503 Service Unavailable`, as a gateway in front of it answers
    /// (`Content-Type: text/plain; charset=utf-8`, body `Service Unavailable`; weavr: no body and a
    /// `request-ref` header, as it documents its 503), with `Retry-After` in whole seconds
    /// only when [`Self::retry_after`] is given.
    pub fn outage() -> Self {
        Self::new(What::Outage)
    }

    /// Too many requests: `429`, stating its window ([`Self::retry_after`], 60 s by default,
    /// rounded up to whole seconds) the way the service does:
    ///
    /// - s7risk: `{"status": "error", "message": "Too many authentication attempts. Try again
    ///   in N minutes"}`, the window rounded up to whole minutes (its only documented 429);
    /// - weavr: no body, `request-ref`, `x-ratelimit-limit: 20, 20;w=SECS` and
    ///   `x-ratelimit-reset: SECS` (the vendor's headers; the limit of 20 is the sandbox's);
    /// - accounts: `{"status": 429, "message": "Too many requests."}` and `Retry-After`;
    /// - passwordsafe: the JSON string `"Too many requests."` and `Retry-After`;
    /// - fib: `{"status": {"code": 429, "name": "TOO_MANY_REQUESTS", "message": "Too many
    ///   requests."}, "data": null}` and `Retry-After`.
    pub fn rate_limit() -> Self {
        Self::new(What::RateLimit)
    }

    /// The account is locked: every login (only logins) is answered with the service's
    /// lock-out. s7risk: its 429 "Too many authentication attempts. Try again in N minutes",
    /// N from [`Self::retry_after`] or else the sandbox's lock-out
    /// ([`SandboxBuilder::lockout`](super::SandboxBuilder::lockout), 5 minutes by default);
    /// weavr: `423 Locked` with `request-ref` and no body (the vendor states no window: the
    /// session assumes its documented 30 minutes), and `Retry-After` only when
    /// [`Self::retry_after`] is given. accounts, passwordsafe and fib document no lock-out
    /// answer: [`Sandbox::fail`](super::Sandbox::fail) refuses this fault for them.
    pub fn lockout() -> Self {
        Self::new(What::Lockout)
    }

    /// A slow answer: the stand-in's own answer, sent `delay` after the request arrived.
    ///
    /// The delay is **real time**, on the sandbox server's own timer (wiremock's
    /// `set_delay`), not the sandbox's clock: a [`ManualClock`](crate::clock::ManualClock)
    /// cannot hurry it. What a slow answer trips in a session is the HTTP client's request
    /// timeout, which is real time too: give the session a short one
    /// (`http_client(reqwest::Client::builder().timeout(…))`) and a delay a little longer.
    pub fn slow(delay: Duration) -> Self {
        Self::new(What::Slow(delay))
    }

    /// The connection is dropped: the stand-in reads the request and closes the TCP
    /// connection without writing a byte of an answer. The client sees the connection closed
    /// before a response (reqwest: `hyper::Error(IncompleteMessage)`); the request had left,
    /// so the session treats it as a transport failure after sending.
    pub fn dropped_connection() -> Self {
        Self::new(What::Dropped)
    }

    /// A body cut short: `200`, `Content-Type: application/json`, and a body that stops
    /// inside a JSON string (`{"token":"eyJhbGciOi`), its `Content-Length` matching what is
    /// sent, as when a proxy truncated the answer.
    pub fn truncated() -> Self {
        Self::new(What::Truncated)
    }

    /// A body that is not the service's at all: `200`, `Content-Type: text/html`, and
    /// `<html><body><h1>Welcome</h1></body></html>`, as a captive portal or a misrouted
    /// gateway answers.
    pub fn malformed() -> Self {
        Self::new(What::Malformed)
    }

    /// Every token, refresh token, session cookie and temporary token the service has issued
    /// so far is refused from now on, as after a revocation of all of an account's sessions;
    /// tokens issued afterwards are good.
    pub fn revocation() -> Self {
        Self::new(What::Revocation)
    }

    /// `account`'s password is now `new_password`: logins with the old one are refused as
    /// the service refuses wrong credentials, and tokens already issued stay good. The account
    /// is an s7risk user's email or application's client id, a weavr user's email, an
    /// accounts username, or a Password Safe `runas` user (its PS-Auth `pwd`) or OAuth client
    /// id (its secret); fib logs in with keys, not passwords.
    pub fn password_changed(
        account: impl Into<String>,
        new_password: impl Into<SecretString>,
    ) -> Self {
        Self::new(What::PasswordChanged {
            account: account.into(),
            password: new_password.into(),
        })
    }

    /// `account`'s password has expired: weavr answers its next login `409` with a temporary
    /// token good for `POST /passwords/update` only; accounts answers its next login with the
    /// `NEW_PASSWORD_REQUIRED` challenge (Cognito's answer for a password that must be
    /// replaced). Until a new password is set, every login is answered so. s7risk,
    /// passwordsafe and fib document no password expiry.
    pub fn password_expired(account: impl Into<String>) -> Self {
        Self::new(What::PasswordExpired {
            account: account.into(),
        })
    }

    /// Meets only the next `n` requests it covers (default: every one, while it lasts).
    ///
    /// # Panics
    ///
    /// On an event ([`Self::revocation`], [`Self::password_changed`],
    /// [`Self::password_expired`]), which happens once, at once.
    pub fn times(mut self, n: u32) -> Self {
        self.answer_only("times");
        self.times = Some(n);
        self
    }

    /// Lasts `duration` on the sandbox's clock from when it is given to
    /// [`Sandbox::fail`](super::Sandbox::fail) (default: until cleared). With
    /// [`Self::times`], it ends at whichever comes first.
    ///
    /// # Panics
    ///
    /// On an event, which happens once, at once.
    pub fn for_duration(mut self, duration: Duration) -> Self {
        self.answer_only("for_duration");
        self.lasting = Some(duration);
        self
    }

    /// Covers requests for `operation` (give it several times for several). Without it, an
    /// answer fault covers every operation of the service, and a lock-out every login.
    ///
    /// # Panics
    ///
    /// On an event, and on a lock-out for anything but [`Operation::Login`].
    pub fn on(mut self, operation: Operation) -> Self {
        self.answer_only("on");
        if matches!(self.what, What::Lockout) {
            assert!(
                operation == Operation::Login,
                "a lock-out answers logins only, not {operation:?}"
            );
            return self;
        }
        if !self.operations.contains(&operation) {
            self.operations.push(operation);
        }
        self
    }

    /// The wait the answer states: `Retry-After` on an outage (none by default), the window
    /// of a rate limit (60 s by default), the window of a lock-out (see [`Self::lockout`]).
    ///
    /// # Panics
    ///
    /// On any other fault, whose answer states no wait.
    pub fn retry_after(mut self, wait: Duration) -> Self {
        assert!(
            matches!(self.what, What::Outage | What::RateLimit | What::Lockout),
            "{} states no wait: retry_after applies to an outage, a rate limit or a lock-out",
            self.what.name()
        );
        self.retry_after = Some(wait);
        self
    }

    fn answer_only(&self, modifier: &str) {
        assert!(
            !self.what.is_event(),
            "{} happens once, at once: `{modifier}` does not apply to it",
            self.what.name()
        );
    }

    pub(crate) fn what(&self) -> &What {
        &self.what
    }

    fn covers(&self, operation: Operation) -> bool {
        self.operations.is_empty() || self.operations.contains(&operation)
    }
}

/// An answer fault given to the sandbox, and what is left of it.
struct Active {
    fault: Fault,
    left: Option<u32>,
    until: Option<Instant>,
}

impl Active {
    fn live(&self, now: Instant) -> bool {
        self.left != Some(0) && self.until.is_none_or(|until| now < until)
    }
}

/// The answer faults in force, by service, in the order given.
#[derive(Default)]
pub(crate) struct Faults {
    active: Mutex<HashMap<Service, Vec<Active>>>,
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Service, Vec<Active>>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn add(&self, service: Service, fault: Fault, now: Instant) {
        let active = Active {
            left: fault.times,
            until: fault.lasting.and_then(|d| now.checked_add(d)),
            fault,
        };
        self.lock().entry(service).or_default().push(active);
    }

    pub(crate) fn clear(&self, service: Service) {
        self.lock().remove(&service);
    }

    /// The fault that meets a request for `operation` at `now`, if one does; it is spent by
    /// one.
    pub(crate) fn take(
        &self,
        service: Service,
        operation: Operation,
        now: Instant,
    ) -> Option<Fault> {
        let mut active = self.lock();
        let list = active.get_mut(&service)?;
        list.retain(|a| a.live(now));
        let hit = list.iter_mut().find(|a| a.fault.covers(operation))?;
        if let Some(left) = &mut hit.left {
            *left -= 1;
        }
        Some(hit.fault.clone())
    }
}
