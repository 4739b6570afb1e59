//! What the cache needs of a service: how to log in, how to renew, how long tokens live
//! (`crate::provider` implements it for every service).

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use super::refusals::Holds;
use crate::error::{Error, Service};
use crate::secret::SecretString;
use crate::token::Issued;

/// The future of a login or a refresh, as the cache awaits it.
pub(crate) type IssuedFuture<'a> = Pin<Box<dyn Future<Output = Result<Issued, Error>> + Send + 'a>>;

/// A service as the cache holds it. The cache's machinery is a good part of the crate's
/// code; generic over the service it was compiled once per service, and it is the last thing an
/// application's build waits for. Behind this trait it is compiled once, at the cost of a boxed
/// future per login or refresh.
pub(crate) trait ErasedProvider: Send + Sync + 'static {
    /// Gives `fingerprint` the credentials a login sends now (see
    /// `crate::provider::sealed::ProviderImpl::credentials`).
    fn credentials_dyn(&self, fingerprint: &mut dyn FnMut(&[u8]));

    /// Logs in with the stored credentials; `sent_wall` is the wall clock when it was sent.
    fn login_boxed(&self, sent_wall: SystemTime) -> IssuedFuture<'_>;

    /// Renews with a refresh token (only called when the entry holds a usable one).
    fn refresh_boxed<'a>(
        &'a self,
        refresh_token: &'a SecretString,
        sent_wall: SystemTime,
    ) -> IssuedFuture<'a>;
}

/// A provider's constants, as the cache reads them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Constants {
    /// Which service this is.
    pub(crate) service: Service,
    /// The lifetime slides forward from each successful authenticated call.
    pub(crate) sliding: Option<Duration>,
    /// A refresh token may be used at most this many times.
    pub(crate) max_refresh_uses: Option<u32>,
    /// How long logins are held back where the failure does not say.
    pub(crate) holds: Holds,
}
