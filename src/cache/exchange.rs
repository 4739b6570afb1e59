//! weavr's identity exchange as a flight of the cache's: any number of callers refused for an
//! access token at once make one exchange, under the fleet's lease and saved fenced by it.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::fleet::Leased;
use super::Cache;
use crate::error::Error;
use crate::token::{AccessToken, Entry, Issued, TokenOrigin};

/// What [`Cache::exchange`] exchanges a token with: the new token set, or `None` when there
/// is nothing to exchange it for.
pub(crate) type Exchange = Arc<
    dyn Fn(
            crate::secret::SecretString,
        ) -> std::pin::Pin<Box<dyn Future<Output = Result<Option<Issued>, Error>> + Send>>
        + Send
        + Sync,
>;

impl Cache {
    /// Replaces the token `used` by what `obtain` gets for it (weavr's identity exchange), as
    /// the session's one flight (any number of callers at once, one exchange), under the
    /// fleet's renewal lease and saved fenced by it, like a renewal: its token, or the one a
    /// flight, this session's or another's in the store, left meanwhile. `used` itself when
    /// `obtain` has nothing to exchange it for.
    pub(crate) async fn exchange(
        &self,
        used: AccessToken,
        obtain: Exchange,
    ) -> Result<AccessToken, Error> {
        self.flight
            .join(&(), || {
                let (used, obtain) = (used.clone(), obtain.clone());
                self.flown(|cache| async move { cache.exchange_flown(used, obtain).await })
            })
            .await
    }

    pub(super) async fn exchange_flown(
        &self,
        used: AccessToken,
        obtain: Exchange,
    ) -> Result<AccessToken, Error> {
        let now = self.clock.now();
        let replaced = |entry: &Arc<Entry>| {
            entry.is_valid(now)
                && (entry.extra.exchanged
                    || entry.secret.expose_secret() != used.secret().expose_secret())
        };
        // Exchanged, or replaced, since `used` was served.
        if let Some(entry) = self.current().filter(replaced) {
            return Ok(AccessToken::new(entry));
        }
        let Some(fleet) = &self.fleet else {
            return self.exchange_now(&used, &obtain).await;
        };
        if let Some(token) = self.adopt_stored().await {
            return Ok(token);
        }
        match fleet.lease(|| self.adopt_stored()).await {
            Leased::Token(token) => Ok(token),
            Leased::Alone => self.exchange_now(&used, &obtain).await,
            Leased::Granted(lease) => {
                let exchanged = self.exchange_now(&used, &obtain);
                let outcome = crate::store::under_lease(Some(&lease), exchanged).await;
                fleet.release(&lease).await;
                outcome
            }
        }
    }

    pub(super) async fn exchange_now(
        &self,
        used: &AccessToken,
        obtain: &Exchange,
    ) -> Result<AccessToken, Error> {
        let sent_at = self.clock.now();
        let Some(mut grant) = obtain(used.secret().clone()).await? else {
            return Ok(used.clone());
        };
        grant.extra.exchanged = true;
        self.counters.logins.fetch_add(1, Ordering::Relaxed);
        let token = self.keep(grant, sent_at, TokenOrigin::Login, None).await;
        tracing::info!(service = %self.traits.service, "token exchanged");
        Ok(token)
    }
}
