//! The cached token and what the cache knows about it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::clock::Clock;
use crate::secret::SecretString;

/// How a token came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenOrigin {
    /// A login with the stored credentials.
    Login,
    /// A renewal with a refresh token.
    Refresh,
    /// Another session's token, taken from a shared [`crate::store::TokenStore`].
    Store,
}

/// A valid access token and its expiry.
///
/// Cheap to clone (one `Arc`); `Debug` prints the expiry, never the token. For services whose
/// token lifetime slides forward on use (weavr, passwordsafe sessions), `expires_at` follows
/// the slide.
#[derive(Clone)]
pub struct AccessToken {
    // A handle of its own around the shared entry: the cache keeps one per thread, so that
    // handing out tokens on many threads at once never writes to a shared reference count.
    handle: Arc<PerThread>,
}

/// One thread's reference to a shared entry (see [`AccessToken`]).
struct PerThread(Arc<Entry>);

/// An [`AccessToken`] that does not keep its token alive: a thread's cached handle, which the
/// cache can let go from any thread (a logout, a dropped session).
pub(crate) struct WeakToken(std::sync::Weak<PerThread>);

impl WeakToken {
    /// The token, while something else still holds it.
    #[inline]
    pub(crate) fn upgrade(&self) -> Option<AccessToken> {
        self.0.upgrade().map(|handle| AccessToken { handle })
    }
}

impl AccessToken {
    pub(crate) fn new(entry: Arc<Entry>) -> Self {
        Self {
            handle: Arc::new(PerThread(entry)),
        }
    }

    /// A reference to this token that does not keep it alive.
    pub(crate) fn downgrade(&self) -> WeakToken {
        WeakToken(Arc::downgrade(&self.handle))
    }

    pub(crate) fn entry(&self) -> &Arc<Entry> {
        &self.handle.0
    }

    /// The token itself, for an `Authorization` header or a cookie.
    pub fn secret(&self) -> &SecretString {
        &self.entry().secret
    }

    /// When the token stops being valid, on the session's monotonic clock.
    pub fn expires_at(&self) -> Instant {
        self.entry().expires_at()
    }

    /// How long the token stays valid from now (zero once expired).
    pub fn expires_in(&self) -> Duration {
        self.expires_at()
            .saturating_duration_since(self.entry().clock.now())
    }

    /// The expiry as a wall-clock time (for display; decisions use [`Self::expires_at`]).
    pub fn expires_at_system(&self) -> SystemTime {
        self.entry().clock.system_now() + self.expires_in()
    }

    /// Whether this token came from a login or a refresh.
    pub fn origin(&self) -> TokenOrigin {
        self.entry().origin
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"[redacted]")
            .field("expires_in", &self.expires_in())
            .field("origin", &self.entry().origin)
            .finish()
    }
}

/// What a login or refresh produced, before the cache times it.
pub struct Issued {
    pub(crate) access: SecretString,
    pub(crate) refresh: Option<SecretString>,
    /// How long the access token lives, counted from when the request was sent.
    pub(crate) lifetime: Duration,
    /// However the lifetime slides, never past this (from when the request was sent).
    pub(crate) max_lifetime: Option<Duration>,
    /// How long the refresh token lives from when it was issued, when known.
    pub(crate) refresh_lifetime: Option<Duration>,
    /// Service-specific state that travels with the token (cookies, identity, id token).
    pub(crate) extra: Companions,
}

impl Issued {
    /// An access token that lives `lifetime` from when its request was sent, and nothing else.
    pub(crate) fn new(access: SecretString, lifetime: Duration) -> Self {
        Self {
            access,
            refresh: None,
            lifetime,
            max_lifetime: None,
            refresh_lifetime: None,
            extra: Companions::default(),
        }
    }

    /// With a refresh token (when the answer had one) that lives `lifetime`, when known.
    pub(crate) fn with_refresh(
        mut self,
        refresh: Option<SecretString>,
        lifetime: Option<Duration>,
    ) -> Self {
        self.refresh = refresh;
        self.refresh_lifetime = lifetime;
        self
    }

    /// However the lifetime slides, never past `max` from when the request was sent.
    pub(crate) fn with_max_lifetime(mut self, max: Duration) -> Self {
        self.max_lifetime = Some(max);
        self
    }

    /// With the service-specific state that travels with the token.
    pub(crate) fn with_extra(mut self, extra: Companions) -> Self {
        self.extra = extra;
        self
    }
}

/// Service-specific state kept beside the access token.
#[derive(Default, Clone, Debug)]
pub(crate) struct Companions {
    pub(crate) id_token: Option<SecretString>,
    pub(crate) cookie: Option<SecretString>,
    /// A bearer token sent beside the secret (passwordsafe: the OAuth token of a session).
    pub(crate) bearer: Option<SecretString>,
    /// The service issued the token stepped up already (weavr: an access token whose
    /// exchange answered `STEPPED_UP`).
    pub(crate) stepped_up: bool,
    /// The token came from an exchange of another (weavr: the identity's access token for the
    /// sign-in token): a refusal that asks for the exchange was for the token before it.
    pub(crate) exchanged: bool,
}

/// A refresh token, with what limits its use.
#[derive(Clone)]
pub(crate) struct Refresh {
    pub(crate) token: SecretString,
    /// When it expires, when known.
    pub(crate) expires_at: Option<Instant>,
    /// How many refreshes it has served.
    pub(crate) uses: u32,
}

/// A cached token: shared by the cache and every [`AccessToken`] handed out.
pub struct Entry {
    pub(crate) secret: SecretString,
    pub(crate) refresh: Option<Refresh>,
    pub(crate) extra: Companions,
    pub(crate) origin: TokenOrigin,
    pub(crate) clock: Arc<dyn Clock>,
    base: Instant,
    /// Expiry, in nanoseconds after `base`; moves forward when the lifetime slides.
    expires_nanos: AtomicU64,
    /// Renew this long before expiry (margin plus jitter), in nanoseconds.
    lead_nanos: u64,
    /// After a failed early renewal, the next one waits until this (nanoseconds after `base`).
    retry_not_before_nanos: AtomicU64,
    /// The sliding window, for services whose tokens live from last activity.
    sliding: Option<Duration>,
    /// Sliding never moves the expiry past this (nanoseconds after `base`).
    expires_at_most_nanos: u64,
    /// weavr: the token was stepped up (strong customer authentication).
    pub(crate) stepped_up: std::sync::atomic::AtomicBool,
    /// `Bearer <secret>`, made at the first request that needs it and shared from then on.
    bearer: std::sync::OnceLock<reqwest::header::HeaderValue>,
}

pub(crate) fn nanos_since(base: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(base).as_nanos()).unwrap_or(u64::MAX)
}

pub(crate) struct EntryParts {
    pub(crate) secret: SecretString,
    pub(crate) refresh: Option<Refresh>,
    pub(crate) extra: Companions,
    pub(crate) origin: TokenOrigin,
    pub(crate) expires_at: Instant,
    pub(crate) expires_at_most: Option<Instant>,
    pub(crate) lead: Duration,
    pub(crate) sliding: Option<Duration>,
    pub(crate) stepped_up: bool,
}

impl Entry {
    pub(crate) fn new(clock: Arc<dyn Clock>, base: Instant, parts: EntryParts) -> Self {
        Self {
            secret: parts.secret,
            refresh: parts.refresh,
            extra: parts.extra,
            origin: parts.origin,
            clock,
            base,
            expires_nanos: AtomicU64::new(nanos_since(base, parts.expires_at)),
            lead_nanos: u64::try_from(parts.lead.as_nanos()).unwrap_or(u64::MAX),
            retry_not_before_nanos: AtomicU64::new(0),
            sliding: parts.sliding,
            expires_at_most_nanos: parts
                .expires_at_most
                .map_or(u64::MAX, |at| nanos_since(base, at)),
            stepped_up: std::sync::atomic::AtomicBool::new(parts.stepped_up),
            bearer: std::sync::OnceLock::new(),
        }
    }

    /// The `Authorization: Bearer` value of this token (sensitive, zeroized when dropped).
    pub(crate) fn bearer(&self) -> reqwest::header::HeaderValue {
        self.bearer
            .get_or_init(|| {
                // Unreachable for a token the session took (`crate::provider` refuses one that
                // is no header value): a value that can match no token, never a panic.
                crate::header::bearer(&self.secret)
                    .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static("Bearer -"))
            })
            .clone()
    }

    /// How long before expiry renewal is due.
    pub(crate) fn lead(&self) -> Duration {
        Duration::from_nanos(self.lead_nanos)
    }

    /// The cap on sliding, when there is one.
    pub(crate) fn expires_at_most(&self) -> Option<Instant> {
        (self.expires_at_most_nanos != u64::MAX)
            .then(|| self.base + Duration::from_nanos(self.expires_at_most_nanos))
    }

    pub(crate) fn expires_at(&self) -> Instant {
        self.base + Duration::from_nanos(self.expires_nanos.load(Ordering::Acquire))
    }

    #[inline]
    /// Valid, and not yet due for renewal (or a failed early renewal asked to wait).
    pub(crate) fn is_fresh(&self, now: Instant) -> bool {
        let now = nanos_since(self.base, now);
        let expires = self.expires_nanos.load(Ordering::Acquire);
        now.saturating_add(self.lead_nanos) < expires
            || (now < expires && now < self.retry_not_before_nanos.load(Ordering::Acquire))
    }

    /// Until when [`Self::is_fresh`] holds, as things stand: renewal is due `lead` before
    /// expiry, unless a failed early renewal asked to wait (never past expiry). Sliding can
    /// only move it later; [`Self::expire`] and [`Self::postpone_renewal`] are the only changes
    /// that could move it earlier, and the cache marks those by moving its generation.
    pub(crate) fn fresh_until(&self) -> Instant {
        let expires = self.expires_nanos.load(Ordering::Acquire);
        let retry = self.retry_not_before_nanos.load(Ordering::Acquire);
        let until = expires
            .saturating_sub(self.lead_nanos)
            .max(expires.min(retry));
        self.base + Duration::from_nanos(until)
    }

    pub(crate) fn is_valid(&self, now: Instant) -> bool {
        nanos_since(self.base, now) < self.expires_nanos.load(Ordering::Acquire)
    }

    /// The refresh token, if the entry has one.
    pub(crate) fn refresh_token(&self) -> Option<&SecretString> {
        self.refresh.as_ref().map(|refresh| &refresh.token)
    }

    pub(crate) fn refresh_usable(&self, now: Instant, max_uses: Option<u32>) -> bool {
        self.refresh.as_ref().is_some_and(|refresh| {
            refresh.expires_at.is_none_or(|at| now < at)
                && max_uses.is_none_or(|max| refresh.uses < max)
        })
    }

    /// A failed early renewal: keep serving this token, try again after `delay`.
    pub(crate) fn postpone_renewal(&self, now: Instant, delay: Duration) {
        let at = nanos_since(self.base, now + delay);
        self.retry_not_before_nanos.store(at, Ordering::Release);
    }

    /// The service accepted the token in a request sent at `sent_at`.
    pub(crate) fn slide(&self, sent_at: Instant) {
        if let Some(window) = self.sliding {
            let until = nanos_since(self.base, sent_at + window).min(self.expires_at_most_nanos);
            self.expires_nanos.fetch_max(until, Ordering::AcqRel);
        }
    }

    /// The service refused the token: it must not be served again.
    pub(crate) fn expire(&self) {
        self.expires_nanos.store(0, Ordering::Release);
        self.retry_not_before_nanos.store(0, Ordering::Release);
    }
}
