//! In-process stand-ins for the five services, for examples and for testing applications
//! offline (cargo feature `sandbox`).
//!
//! One loopback HTTP server answers for every service under its own path prefix
//! ([`Sandbox::base_url`]). Each stand-in checks requests the way the real service does
//! (paths, headers, bodies, signatures) and answers as the vendors document: tokens with
//! configurable lifetimes, lock-outs after repeated failed logins, refresh tokens.
//! Counters ([`Sandbox::counters`]) tell tests how many logins and refreshes really happened.
//! Time comes from a [`Clock`], so a [`crate::clock::ManualClock`] shared with the sessions
//! moves both sides at once.
//!
//! Each stand-in also serves one protected resource ([`Sandbox::resource_url`]) that checks
//! what the vendor's other APIs check, so that an application's own calls (through
//! `send()`, [`crate::middleware`] or [`crate::tower`]) can be tested end to end; and
//! [`Sandbox::fail`] makes a stand-in misbehave on cue ([`Fault`]): an outage, a rate limit,
//! a lock-out, a slow answer, a dropped connection, a broken body, a revocation, a changed or
//! expired password.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tokensmith::Error> {
//! use tokensmith::sandbox::{demo, Sandbox};
//! use tokensmith::{s7risk, Service};
//!
//! let sandbox = Sandbox::start().await;
//! let session = s7risk::Session::builder()
//!     .base_url(sandbox.base_url(Service::S7risk))
//!     .origin(demo::S7RISK_ORIGIN)
//!     .user(demo::S7RISK_EMAIL, demo::S7RISK_PASSWORD)
//!     .build()?;
//! session.access_token().await?;
//! session.access_token().await?;
//! assert_eq!(sandbox.counters(Service::S7risk).logins, 1);
//! # Ok(()) }
//! ```

#[cfg(feature = "accounts")]
mod accounts;
mod fault;
#[cfg(feature = "fib")]
mod fib;
mod guard;
mod passwords;
#[cfg(feature = "passwordsafe")]
mod passwordsafe;
#[cfg(feature = "s7risk")]
mod s7risk;
mod state;
#[cfg(feature = "weavr")]
mod weavr;

use std::sync::Arc;
use std::time::Duration;

use wiremock::MockServer;

use crate::clock::{Clock, SystemClock};
use crate::error::Service;

use fault::What;
pub use fault::{Fault, Operation};
use passwords::Refusal;
pub use state::Counters;
use state::Shared;

/// The demo accounts every sandbox knows.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tokensmith::Error> {
/// use tokensmith::sandbox::{demo, Sandbox};
/// use tokensmith::{accounts, Service};
///
/// let sandbox = Sandbox::start().await;
/// let session = accounts::Session::builder()
///     .base_url(sandbox.base_url(Service::Accounts))
///     .username(demo::ACCOUNTS_USERNAME)
///     .password(demo::ACCOUNTS_PASSWORD)
///     .build()?;
/// session.id_token().await?;
/// assert_eq!(sandbox.counters(Service::Accounts).logins, 1);
/// # Ok(()) }
/// ```
pub mod demo {
    /// The `Origin` the s7risk stand-in accepts.
    pub const S7RISK_ORIGIN: &str = "https://app.example.com";
    /// An s7risk user.
    pub const S7RISK_EMAIL: &str = "demo@example.com";
    /// That user's password.
    pub const S7RISK_PASSWORD: &str = "demo-password";
    /// An s7risk user whose access window has expired: every login answers 401.
    pub const S7RISK_EXPIRED_EMAIL: &str = "expired@example.com";
    /// An s7risk application.
    pub const S7RISK_CLIENT_ID: &str = "demo-client";
    /// That application's secret.
    pub const S7RISK_SECRET: &str = "demo-secret";
    /// The fib user (the vendor's own test vector).
    pub const FIB_EMAIL: &str = "alice@wonderland.space";
    /// That user's Authorization private key.
    pub const FIB_PRIVATE_KEY: &str =
        "413b285d1819a6166b0daa762bb6bef2d082cffb9a13ce041cb0fda5e2f06dc3";
    /// That user's Authorization public key.
    pub const FIB_PUBLIC_KEY: &str =
        "7fbedb314a9b0c00caef967ac5cabb982ec45da828a0c58a9aafc854f32422ac";
    /// A second fib user with the same key pair, whose email's BLAKE2b-256 digest ends in an
    /// even byte: the two [`crate::fib::Digest`] rules give it different signatures, so only
    /// the rule the sandbox verifies logs it in.
    pub const FIB_EVEN_DIGEST_EMAIL: &str = "bob@wonderland.space";
    /// The weavr API key the sandbox accepts.
    pub const WEAVR_API_KEY: &str = "demo-weavr-api-key";
    /// A weavr user with one corporate identity.
    pub const WEAVR_EMAIL: &str = "demo@weavr.example";
    /// A weavr user whose password has expired (same password).
    pub const WEAVR_EXPIRED_EMAIL: &str = "expired@weavr.example";
    /// The weavr users' password.
    pub const WEAVR_PASSWORD: &str = "Demo-Pa55word!";
    /// The one-time password that verifies every weavr step-up challenge, as on Weavr's own
    /// sandbox.
    pub const WEAVR_OTP: &str = "123456";
    /// The weavr user's identity.
    pub const WEAVR_IDENTITY_ID: &str = "110000000000000001";
    /// A Wikimedia Enterprise account.
    pub const ACCOUNTS_USERNAME: &str = "demo";
    /// That account's password.
    pub const ACCOUNTS_PASSWORD: &str = "Demo-Passw0rd";
    /// That account's email address (forgot-password takes it in place of the username).
    pub const ACCOUNTS_EMAIL: &str = "demo@accounts.example";
    /// An account that must set a new password at its first login (same password).
    pub const ACCOUNTS_NEW_USERNAME: &str = "newcomer";
    /// The confirmation code every forgot-password request "sends".
    pub const ACCOUNTS_CONFIRMATION_CODE: &str = "654321";
    /// A Password Safe OAuth client (API registration of the client-credentials kind).
    pub const PASSWORDSAFE_CLIENT_ID: &str = "demo-oauth-client";
    /// That client's secret.
    pub const PASSWORDSAFE_CLIENT_SECRET: &str = "demo-oauth-secret";
    /// A Password Safe API key (API registration of the key kind).
    pub const PASSWORDSAFE_API_KEY: &str = "demo-api-key-0123456789abcdef";
    /// The user that key runs as.
    pub const PASSWORDSAFE_RUNAS: &str = "demo-user";
    /// That user's password (the registration requires one).
    pub const PASSWORDSAFE_PASSWORD: &str = "demo-user-password";

    /// The demo value of a credential variable that `from_env` reads
    /// ([`crate::env`]): each constant above that a profile reads is named as its variable
    /// (`FIB_EMAIL` gives [`FIB_EMAIL`]); [`WEAVR_OTP`] too, for the command's `--step-up`.
    /// `None` for any other name, the base-URL variables included: a sandbox's base URLs are
    /// [`super::Sandbox::base_url`]'s.
    ///
    /// Every profile's demo credentials are here at once, so give it to a chosen
    /// [`crate::env::Profile`]: s7risk's and Password Safe's `from_env_with` would find two
    /// kinds of credentials set.
    pub fn variable(name: &str) -> Option<&'static str> {
        Some(match name {
            "S7RISK_ORIGIN" => S7RISK_ORIGIN,
            "S7RISK_EMAIL" => S7RISK_EMAIL,
            "S7RISK_PASSWORD" => S7RISK_PASSWORD,
            "S7RISK_CLIENT_ID" => S7RISK_CLIENT_ID,
            "S7RISK_SECRET" => S7RISK_SECRET,
            "WEAVR_API_KEY" => WEAVR_API_KEY,
            "WEAVR_EMAIL" => WEAVR_EMAIL,
            "WEAVR_PASSWORD" => WEAVR_PASSWORD,
            "WEAVR_OTP" => WEAVR_OTP,
            "ACCOUNTS_USERNAME" => ACCOUNTS_USERNAME,
            "ACCOUNTS_PASSWORD" => ACCOUNTS_PASSWORD,
            "PASSWORDSAFE_CLIENT_ID" => PASSWORDSAFE_CLIENT_ID,
            "PASSWORDSAFE_CLIENT_SECRET" => PASSWORDSAFE_CLIENT_SECRET,
            "PASSWORDSAFE_API_KEY" => PASSWORDSAFE_API_KEY,
            "PASSWORDSAFE_RUNAS" => PASSWORDSAFE_RUNAS,
            "PASSWORDSAFE_PASSWORD" => PASSWORDSAFE_PASSWORD,
            "FIB_EMAIL" => FIB_EMAIL,
            "FIB_PRIVATE_KEY" => FIB_PRIVATE_KEY,
            _ => return None,
        })
    }
}

/// Lifetimes and limits of a sandbox. The defaults are the real services' own.
#[derive(Clone, Debug)]
pub struct SandboxBuilder {
    clock: Arc<dyn Clock>,
    config: Config,
}

#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) s7risk_lifetime: Duration,
    pub(crate) fib_access_lifetime: Duration,
    pub(crate) fib_refresh_lifetime: Duration,
    #[cfg(feature = "fib")]
    pub(crate) fib_digest: crate::fib::Digest,
    pub(crate) max_failed_logins: u32,
    pub(crate) lockout: Duration,
    pub(crate) passwordsafe_token_lifetime: Duration,
    pub(crate) weavr_idle: Duration,
    pub(crate) weavr_lockout: Duration,
    pub(crate) weavr_challenge_lifetime: Duration,
    pub(crate) weavr_identities_array: bool,
    pub(crate) accounts_access_lifetime: Duration,
    pub(crate) accounts_refresh_lifetime: Duration,
    pub(crate) accounts_max_refreshes: u32,
    pub(crate) passwordsafe_idle: Duration,
    pub(crate) passwordsafe_oauth_cookie: bool,
}

impl Default for SandboxBuilder {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            config: Config {
                s7risk_lifetime: Duration::from_secs(24 * 3600),
                fib_access_lifetime: Duration::from_secs(300),
                fib_refresh_lifetime: Duration::from_secs(24 * 3600),
                #[cfg(feature = "fib")]
                fib_digest: crate::fib::Digest::Plain,
                max_failed_logins: 5,
                lockout: Duration::from_secs(300),
                passwordsafe_token_lifetime: Duration::from_secs(3600),
                weavr_idle: Duration::from_secs(300),
                weavr_lockout: Duration::from_secs(30 * 60),
                weavr_challenge_lifetime: Duration::from_secs(300),
                weavr_identities_array: false,
                accounts_access_lifetime: Duration::from_secs(24 * 3600),
                accounts_refresh_lifetime: Duration::from_secs(90 * 24 * 3600),
                accounts_max_refreshes: 90,
                passwordsafe_idle: Duration::from_secs(20 * 60),
                passwordsafe_oauth_cookie: true,
            },
        }
    }
}

impl SandboxBuilder {
    /// The clock the stand-ins issue and check tokens by (default: the system clocks).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How long s7risk tokens live (default 24 h).
    pub fn s7risk_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.config.s7risk_lifetime = lifetime;
        self
    }

    /// How long fib access tokens live (default 5 minutes).
    pub fn fib_access_lifetime(mut self, lifetime: Duration) -> Self {
        self.config.fib_access_lifetime = lifetime;
        self
    }

    /// Which digest of the email the fib stand-in verifies login signatures over (default
    /// [`crate::fib::Digest::Plain`], the vendor's written formula): one rule only, as a real
    /// backend would, so that an application can be tested against either.
    #[cfg(feature = "fib")]
    #[cfg_attr(docsrs, doc(cfg(feature = "fib")))]
    pub fn fib_digest(mut self, digest: crate::fib::Digest) -> Self {
        self.config.fib_digest = digest;
        self
    }

    /// How long weavr tokens live after their last use (default 5 minutes).
    pub fn weavr_token_idle(mut self, idle: Duration) -> Self {
        self.config.weavr_idle = idle;
        self
    }

    /// Answers weavr's `GET /identities` with a bare JSON array, as Weavr's API reference page
    /// shows it, instead of the page object (`identities`, `count`, `responseCount`) of its
    /// OpenAPI document (default: the object). No vendor source says which the service sends;
    /// a session takes either.
    pub fn weavr_identities_as_array(mut self, array: bool) -> Self {
        self.config.weavr_identities_array = array;
        self
    }

    /// How long a Password Safe session lives after its last use (default 20 minutes).
    pub fn passwordsafe_session_idle(mut self, idle: Duration) -> Self {
        self.config.passwordsafe_idle = idle;
        self
    }

    /// Whether a Password Safe sign-in with an OAuth bearer sets a session cookie (default
    /// true). Without one, as the test server of BeyondTrust's own Go client answers, the
    /// bearer alone carries the session: BeyondTrust documents that with bearer sign-in
    /// cookies are "still supported", not required. API-key sign-ins always set one.
    pub fn passwordsafe_oauth_session_cookie(mut self, set: bool) -> Self {
        self.config.passwordsafe_oauth_cookie = set;
        self
    }

    /// How long accounts access tokens live (default 24 h).
    pub fn accounts_access_lifetime(mut self, lifetime: Duration) -> Self {
        self.config.accounts_access_lifetime = lifetime;
        self
    }

    /// How many refreshes one accounts refresh token serves (default 90).
    pub fn accounts_max_refreshes(mut self, refreshes: u32) -> Self {
        self.config.accounts_max_refreshes = refreshes;
        self
    }

    /// After this many failed logins in a row an account is locked out (default 5).
    pub fn max_failed_logins(mut self, failures: u32) -> Self {
        self.config.max_failed_logins = failures.max(1);
        self
    }

    /// How long a lock-out lasts (default 5 minutes).
    pub fn lockout(mut self, lockout: Duration) -> Self {
        self.config.lockout = lockout;
        self
    }

    /// Starts the sandbox on a loopback port. Needs a Tokio runtime.
    pub async fn start(self) -> Sandbox {
        let server = MockServer::start().await;
        let shared = Arc::new(Shared::new(self.clock, self.config));
        #[cfg(feature = "s7risk")]
        s7risk::mount(&server, &shared).await;
        #[cfg(feature = "fib")]
        fib::mount(&server, &shared).await;
        #[cfg(feature = "passwordsafe")]
        passwordsafe::mount(&server, &shared).await;
        #[cfg(feature = "weavr")]
        weavr::mount(&server, &shared).await;
        #[cfg(feature = "accounts")]
        accounts::mount(&server, &shared).await;
        Sandbox {
            inner: Arc::new(Inner {
                server: Some(server),
                shared,
            }),
        }
    }
}

/// A running sandbox; it stops when the last clone is dropped.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    server: Option<MockServer>,
    shared: Arc<Shared>,
}

impl Inner {
    fn server(&self) -> &MockServer {
        self.server.as_ref().expect("present until dropped")
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // wiremock's MockServer blocks on a tokio lock when dropped; inside a tokio task whose
        // cooperative budget is spent that spins forever, so it is dropped on a plain thread.
        if let Some(server) = self.server.take() {
            let _ = std::thread::spawn(move || drop(server)).join();
        }
    }
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("uri", &self.inner.server().uri())
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Starts a sandbox with the real services' lifetimes and limits on the system clock.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// A builder to change lifetimes, limits or the clock.
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder::default()
    }

    /// The base URL to give a session of `service`.
    pub fn base_url(&self, service: Service) -> String {
        format!("{}/{}", self.inner.server().uri(), prefix(service))
    }

    /// What the stand-in for `service` has done so far.
    pub fn counters(&self, service: Service) -> Counters {
        self.inner.shared.counters(service)
    }

    /// The URL of `service`'s protected resource: a `GET` that answers `200` only to a
    /// request carrying what the vendor's other APIs ask for, and counts it in
    /// [`Counters::resource_calls`]. Each lies under the service's base URL (the same
    /// origin), so a session's `send()` and `authorize()` put their credentials on it.
    ///
    /// | service | path under the base URL | checks | `200` body |
    /// |---|---|---|---|
    /// | s7risk | `resource` | `Authorization: Bearer` with a live token | `{"service": "s7risk", "subject": EMAIL_OR_CLIENT_ID}` |
    /// | weavr | `managed_accounts` | `api-key`; a live identity access token (403 `ACCESS_TOKEN_REQUIRED` else), stepped up (403 `STEP_UP_REQUIRED` else) | one managed account |
    /// | accounts | `resource` | `Authorization: Bearer` with a live access token | `{"service": "accounts", "subject": USERNAME}` |
    /// | passwordsafe | `ManagedAccounts` | the session cookie of a live session (its idle window slides); for a session opened with an OAuth token, also that client's live `Authorization: Bearer` | a list with one managed account |
    /// | fib | `resource` | `Authorization: Bearer` with a live access token | `{"service": "fib", "subject": EMAIL}` |
    ///
    /// A refused request is answered `401` in the service's error shape (weavr: `401` with
    /// no body, or the `403`s above). s7risk's other APIs are documented to take the bearer
    /// only (its `Origin` is the token endpoints'); Password Safe's documentation says an
    /// OAuth token is used in the `Authorization` header of API requests and that cookies
    /// are still supported: the stand-in asks for both, the stricter reading.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tokensmith::Error> {
    /// use tokensmith::sandbox::{demo, Sandbox};
    /// use tokensmith::{fib, Service};
    ///
    /// let sandbox = Sandbox::start().await;
    /// let session = fib::Session::builder()
    ///     .base_url(sandbox.base_url(Service::Fib))
    ///     .email(demo::FIB_EMAIL)
    ///     .private_key(demo::FIB_PRIVATE_KEY)
    ///     .build()?;
    /// let url = sandbox.resource_url(Service::Fib);
    /// let response = session.send(reqwest::Client::new().get(&url)).await?;
    /// assert_eq!(response.status(), 200);
    /// assert_eq!(sandbox.counters(Service::Fib).resource_calls, 1);
    /// # Ok(()) }
    /// ```
    pub fn resource_url(&self, service: Service) -> String {
        let path = match service {
            Service::Weavr => "managed_accounts",
            Service::PasswordSafe => "ManagedAccounts",
            _ => "resource",
        };
        format!("{}/{path}", self.base_url(service))
    }

    /// Makes `service`'s stand-in misbehave as `fault` says: from now on for an answer fault
    /// (an outage, a rate limit, a lock-out, a slow answer, a dropped connection, a broken
    /// body), at once for an event (a revocation, a password changed or expired). See
    /// [`Fault`].
    ///
    /// # Panics
    ///
    /// When the service has no such thing to fail: a lock-out for accounts, passwordsafe or
    /// fib (none documented), a password change for fib (keys, not passwords), a password
    /// expiry for s7risk, passwordsafe or fib (none documented), a password event for an
    /// account the stand-in does not have, or an event for a service this build leaves out.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tokensmith::Error> {
    /// use tokensmith::sandbox::{demo, Fault, Operation, Sandbox};
    /// use tokensmith::{weavr, ErrorKind, Service};
    ///
    /// let sandbox = Sandbox::start().await;
    /// sandbox.fail(Service::Weavr, Fault::password_expired(demo::WEAVR_EMAIL));
    /// let session = weavr::Session::builder()
    ///     .base_url(sandbox.base_url(Service::Weavr))
    ///     .api_key(demo::WEAVR_API_KEY)
    ///     .email(demo::WEAVR_EMAIL)
    ///     .password(demo::WEAVR_PASSWORD)
    ///     .build()?;
    /// let error = session.access_token().await.unwrap_err();
    /// assert_eq!(error.kind(), ErrorKind::PasswordExpired);
    /// # Ok(()) }
    /// ```
    pub fn fail(&self, service: Service, fault: Fault) {
        let shared = &self.inner.shared;
        let refused = |refusal: Refusal, account: &str| -> ! {
            match refusal {
                Refusal::NoSuchAccount => {
                    panic!("the {service} stand-in has no account {account:?}")
                }
                Refusal::Undocumented => panic!(
                    "{service} has no {} in the sandbox: the service documents none",
                    match fault.what() {
                        What::PasswordChanged { .. } => "password change",
                        _ => "password expiry",
                    }
                ),
            }
        };
        match fault.what() {
            What::Revocation => shared.revoke_all(service),
            What::PasswordChanged { account, password } => shared
                .passwords(service)
                .and_then(|p| p.change(account, password.expose_secret()))
                .unwrap_or_else(|refusal| refused(refusal, account)),
            What::PasswordExpired { account } => shared
                .passwords(service)
                .and_then(|p| p.expire(account))
                .unwrap_or_else(|refusal| refused(refusal, account)),
            What::Lockout if !matches!(service, Service::S7risk | Service::Weavr) => {
                panic!("{service} documents no lock-out answer: the sandbox has none")
            }
            _ => shared.faults.add(service, fault, shared.clock.now()),
        }
    }

    /// Ends every answer fault given for `service`; its requests reach the stand-in again.
    /// Events (a revocation, a password changed or expired) are not undone.
    pub fn clear_faults(&self, service: Service) {
        self.inner.shared.faults.clear(service);
    }
}

/// Where a service's stand-in answers on the sandbox's server: under its name, and for Password
/// Safe under the path every installation serves its API at. Any other service, one without a
/// stand-in included, has its name.
pub(crate) fn prefix(service: Service) -> &'static str {
    match service {
        Service::PasswordSafe => "passwordsafe/BeyondTrust/api/public/v3",
        other => other.name(),
    }
}
