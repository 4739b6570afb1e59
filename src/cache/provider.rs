//! What a service supplies to the cache: how to log in, how to renew, how long tokens live.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use super::refusals::Holds;
use crate::error::{Error, Service};
use crate::secret::SecretString;
use crate::token::Grant;

/// What a service does differently: how to log in, how to renew, how long tokens live.
pub(crate) trait Provider: Send + Sync + 'static {
    /// Which service this is.
    const SERVICE: Service;
    /// The lifetime slides forward from each successful authenticated call (weavr).
    const SLIDING: Option<Duration> = None;
    /// A refresh token may be used at most this many times (accounts: 90).
    const MAX_REFRESH_USES: Option<u32> = None;
    /// The `operationId`s that end the session whose token they carry (a sign-out): called
    /// through `api()`, their success wipes the cached token instead of counting as activity.
    const ENDS_SESSION: &'static [&'static str] = &[];
    /// How long logins are held back after a 429 that does not say how long to wait: another
    /// attempt inside the service's window only extends it.
    const LOGIN_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
    /// How long a login challenge (a new password required, a password expired) stays usable:
    /// until then every call is answered with it, after that a new login starts a new one.
    const LOGIN_CHALLENGE_LIFETIME: Duration = Duration::from_secs(3 * 60);

    /// Who logs in (an email, a client id; never a secret), to key a shared token store.
    fn store_identity(&self) -> String {
        String::new()
    }

    /// Gives `fingerprint` the credentials a login sends now (a password, a key; each part a
    /// call), so that a refusal the account's store keeps holds back only logins with the same
    /// credentials: a session given corrected ones logs in. Nothing is kept of them but a
    /// 64-bit fingerprint, sealed in the store with the refusal. The default gives nothing:
    /// every login of the account counts as sending the same credentials.
    fn credentials(&self, _fingerprint: &mut dyn FnMut(&[u8])) {}

    /// Logs in with the stored credentials. `sent_wall` is the wall clock when it was sent.
    fn login(&self, sent_wall: SystemTime) -> impl Future<Output = Result<Grant, Error>> + Send;

    /// Renews with a refresh token. Only called when the entry holds a usable one.
    fn refresh(
        &self,
        _refresh_token: &SecretString,
        _sent_wall: SystemTime,
    ) -> impl Future<Output = Result<Grant, Error>> + Send {
        async {
            Err(Error::configuration(
                Some(Self::SERVICE),
                "this service has no refresh",
            ))
        }
    }
}

/// The future of a login or a refresh, as the cache awaits it.
pub(crate) type GrantFuture<'a> = Pin<Box<dyn Future<Output = Result<Grant, Error>> + Send + 'a>>;

/// A [`Provider`] as the cache holds it. The cache's machinery is a good part of the crate's
/// code; generic over the service it was compiled once per service, and it is the last thing an
/// application's build waits for. Behind this trait it is compiled once, at the cost of a boxed
/// future per login or refresh.
pub(crate) trait ErasedProvider: Send + Sync + 'static {
    /// [`Provider::credentials`].
    fn credentials_dyn(&self, fingerprint: &mut dyn FnMut(&[u8]));

    /// [`Provider::login`].
    fn login_boxed(&self, sent_wall: SystemTime) -> GrantFuture<'_>;

    /// [`Provider::refresh`].
    fn refresh_boxed<'a>(
        &'a self,
        refresh_token: &'a SecretString,
        sent_wall: SystemTime,
    ) -> GrantFuture<'a>;
}

impl<P: Provider> ErasedProvider for P {
    fn credentials_dyn(&self, fingerprint: &mut dyn FnMut(&[u8])) {
        self.credentials(fingerprint);
    }

    fn login_boxed(&self, sent_wall: SystemTime) -> GrantFuture<'_> {
        Box::pin(self.login(sent_wall))
    }

    fn refresh_boxed<'a>(
        &'a self,
        refresh_token: &'a SecretString,
        sent_wall: SystemTime,
    ) -> GrantFuture<'a> {
        Box::pin(self.refresh(refresh_token, sent_wall))
    }
}

/// A provider's constants, as the cache reads them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Traits {
    /// [`Provider::SERVICE`].
    pub(crate) service: Service,
    /// [`Provider::SLIDING`].
    pub(crate) sliding: Option<Duration>,
    /// [`Provider::MAX_REFRESH_USES`].
    pub(crate) max_refresh_uses: Option<u32>,
    /// [`Provider::LOGIN_CHALLENGE_LIFETIME`] and [`Provider::LOGIN_RATE_LIMIT_WAIT`].
    pub(crate) holds: Holds,
}

impl Traits {
    /// `P`'s constants.
    pub(crate) const fn of<P: Provider>() -> Self {
        Self {
            service: P::SERVICE,
            sliding: P::SLIDING,
            max_refresh_uses: P::MAX_REFRESH_USES,
            holds: Holds {
                challenge: P::LOGIN_CHALLENGE_LIFETIME,
                rate_limit: P::LOGIN_RATE_LIMIT_WAIT,
            },
        }
    }
}
