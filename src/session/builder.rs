//! [`SessionBuilder`]: the settings every service's builder shares, written once, and the checks
//! `build()` makes of them.

use std::sync::Arc;

use super::engine::{Engine, Keeping};
use super::Session;
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Service};
use crate::expiry::RefreshPolicy;
use crate::provider::Provider;
use crate::retry::RetryPolicy;
use crate::secret::SecretString;
use crate::store::TokenStore;
use crate::transport::endpoint::{default_http_client, Endpoint};
use crate::transport::rules::{self, HostPattern, Scope};

/// Builds a [`Session`] with service `P`: the setters here are every service's; each service's
/// module adds its own (its credentials, and what else it needs). Each service's module names
/// its builder (`tokensmith::weavr::SessionBuilder`, …) and `Session::builder()` makes one.
///
/// `build()` checks the configuration and makes no request; it needs no runtime.
#[must_use]
pub struct SessionBuilder<P: Provider> {
    pub(crate) shared: Settings,
    /// The service's own settings, which its setters fill.
    pub(crate) own: P::Settings,
}

impl<P: Provider> std::fmt::Debug for SessionBuilder<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionBuilder")
            .field("service", &P::SERVICE)
            .field("settings", &self.shared)
            .field("own", &self.own)
            .finish()
    }
}

impl<P: Provider> Default for SessionBuilder<P> {
    fn default() -> Self {
        Self {
            shared: Settings::default(),
            own: P::Settings::default(),
        }
    }
}

/// The settings every session builder has.
#[derive(Debug, Default)]
pub(crate) struct Settings {
    pub(crate) base_url: Option<String>,
    http: Option<crate::HttpClientSource>,
    clock: Option<Arc<dyn Clock>>,
    refresh: RefreshPolicy,
    allow_plain_http: bool,
    retry: RetryPolicy,
    max_body: Option<usize>,
    store: Option<Arc<dyn TokenStore>>,
    background_refresh: bool,
    /// What `credential_hosts` was given, parsed at `build()`.
    credential_hosts: Vec<String>,
}

impl<P: Provider> SessionBuilder<P> {
    /// The service's base URL. Defaults to the production server where the service has a
    /// public one (weavr and Password Safe have none: there it is required). Must be
    /// `https`, or plain `http` to a loopback address (a local sandbox), and carry no
    /// username, password, query or fragment.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.shared.base_url = Some(url.into());
        self
    }

    /// More hosts the session's credentials may go to, beside its base URL's own origin (and,
    /// at the vendor's production URL, the hosts the vendor documents for the service's other
    /// APIs): `api.example.com` (any port), `api.example.com:8443` (that port), `*.example.com`
    /// (every host below `example.com`, not `example.com` itself), or an IP address. `send()`,
    /// `authorize()`, the middleware and the tower layer put the credentials only on requests
    /// to these hosts; `send()` and `authorize()` refuse a request to any other with
    /// [`crate::ErrorKind::Configuration`] before anything is sent. Calls add to the list.
    pub fn credential_hosts<I, S>(mut self, hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.shared
            .credential_hosts
            .extend(hosts.into_iter().map(|host| host.as_ref().to_owned()));
        self
    }

    /// When to renew ahead of expiry (default: [`crate::RefreshPolicy::default`]).
    pub fn refresh_policy(mut self, policy: RefreshPolicy) -> Self {
        self.shared.refresh = policy;
        self
    }

    /// How failed requests are retried (default: [`crate::RetryPolicy::default`]). Refused
    /// or rate-limited logins are never retried, whatever the policy.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.shared.retry = policy;
        self
    }

    /// Keeps the token set in `store` too, so that sessions sharing the store (in this
    /// process, or others) share one login per expiry. See [`crate::store`].
    pub fn token_store(mut self, store: impl TokenStore) -> Self {
        self.shared.store = Some(Arc::new(store));
        self
    }

    /// Renews off the request path (default: off). While a valid token is cached, no
    /// call waits on the network: the renewal due at the refresh margin runs in a task of
    /// the session's own, and callers are served the still-valid token until the new one
    /// lands. The task is spawned on the tokio runtime of the first call (`build()` needs
    /// none; without a runtime the session renews in the caller's task, as by default),
    /// and ends when the last clone of the session is dropped. Its renewals are the
    /// session's one flight, taken under a token store's lease, and never resend refused
    /// credentials. Services whose tokens slide from last use (weavr, Password Safe) are
    /// never renewed in the background: a renewal there would be a new login that keeps
    /// an idle session alive, so for them this option changes nothing.
    pub fn background_refresh(mut self, enabled: bool) -> Self {
        self.shared.background_refresh = enabled;
        self
    }

    /// The HTTP client (proxy, TLS roots, timeouts, `User-Agent`): a
    /// `reqwest::ClientBuilder` that the session builds at [`Self::build`], or a
    /// [`crate::HttpClient`] shared with other sessions. Redirects are off whatever the
    /// builder says (see [`crate::HttpClient`]): a redirect is an error (from `send()` and
    /// `authorize()`, the `3xx` response). Only the builder's settings apply: the default
    /// client's timeouts and `User-Agent` are not added to them.
    ///
    /// Without it, the session's client has a 10 s connect and 30 s request timeout,
    /// follows no redirects, and names this crate in its `User-Agent`.
    pub fn http_client(mut self, client: impl Into<crate::HttpClientSource>) -> Self {
        self.shared.http = Some(client.into());
        self
    }

    /// Allows plain `http` to hosts that are not loopback addresses, for the base URL and for
    /// every request that carries the credentials. Credentials then travel unencrypted: only
    /// for test networks.
    pub fn danger_accept_plain_http(mut self, accept: bool) -> Self {
        self.shared.allow_plain_http = accept;
        self
    }

    /// The most bytes of a response body the session reads (default:
    /// [`crate::transport::DEFAULT_MAX_RESPONSE_BYTES`]); a longer body fails the call
    /// without being read.
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.shared.max_body = Some(bytes);
        self
    }

    /// The clock that times expiry (default: the system clocks). Tests pass a
    /// [`crate::clock::ManualClock`] to move time without sleeping.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.shared.clock = Some(Arc::new(clock));
        self
    }

    /// Checks the configuration and builds the session. Makes no request and needs no
    /// runtime.
    ///
    /// # Errors
    ///
    /// [`crate::ErrorKind::Configuration`] when a required setting is missing or a setting is
    /// malformed (the message names which, and never quotes a secret, nor a URL's user,
    /// password, query or fragment).
    pub fn build(self) -> Result<Session<P>, Error> {
        let base_text = match (&self.shared.base_url, P::BASE_URL) {
            (Some(url), _) => url.clone(),
            (None, Ok(default)) => default.to_owned(),
            (None, Err(why)) => return Err(Error::configuration(Some(P::SERVICE), why)),
        };
        let settings = self.shared;
        let base = rules::base_url(P::SERVICE, &base_text, settings.allow_plain_http)?;
        let named = settings
            .credential_hosts
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                HostPattern::parse(entry).ok_or_else(|| {
                    Error::configuration(
                        Some(P::SERVICE),
                        format!(
                            "credential_hosts: {} is not a host (a name, an address, either \
                             with a port, or *.domain)",
                            rules::describe_entry(entry, index + 1)
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let documented = match P::BASE_URL {
            Ok(default) if same_host(default, &base) => P::OTHER_API_HOSTS,
            _ => &[],
        };
        let http = match settings.http {
            Some(source) => source.into_client(P::SERVICE)?,
            None => default_http_client(P::SERVICE)?,
        };
        let clock = settings.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let endpoint = Endpoint {
            http,
            base_url: base_text.trim_end_matches('/').to_owned(),
            retry: settings.retry,
            max_body: settings
                .max_body
                .unwrap_or(crate::transport::DEFAULT_MAX_RESPONSE_BYTES),
            clock: clock.clone(),
            scope: Scope::new(&base, documented, &named, settings.allow_plain_http),
            service: P::SERVICE,
        };
        let provider = Arc::new(P::build(self.own, &endpoint)?);
        let keeping = Keeping {
            clock,
            policy: settings.refresh,
            store: settings.store,
            background_refresh: settings.background_refresh,
        };
        Ok(Session::from_engine(
            Engine::new(provider.clone(), endpoint, keeping),
            provider,
        ))
    }
}

/// Whether `url` (text) names the same host as `base`.
fn same_host(url: &str, base: &url::Url) -> bool {
    url::Url::parse(url).is_ok_and(|url| url.host_str() == base.host_str())
}

/// Rejects a missing or blank setting (a credential, an email, an origin) at build time rather
/// than at the first login.
pub(crate) fn require<T: Setting>(
    service: Service,
    name: &str,
    value: Option<T>,
) -> Result<T, Error> {
    let value = required(service, name, value)?;
    if value.text().trim().is_empty() {
        let blank = format!("{name} is empty");
        return Err(Error::configuration(Some(service), blank));
    }
    Ok(value)
}

/// A setting [`require`] checks: its text, secret or not (never quoted).
pub(crate) trait Setting {
    fn text(&self) -> &str;
}

impl Setting for SecretString {
    fn text(&self) -> &str {
        self.expose_secret()
    }
}

impl Setting for String {
    fn text(&self) -> &str {
        self
    }
}

fn required<T>(service: Service, name: &str, value: Option<T>) -> Result<T, Error> {
    value.ok_or_else(|| Error::configuration(Some(service), format!("{name} is required")))
}
