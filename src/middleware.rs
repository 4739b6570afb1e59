//! A session as [`reqwest_middleware`] middleware (cargo feature `middleware`).
//!
//! [`AuthMiddleware`] puts a session's credentials on every request of a
//! [`reqwest_middleware::ClientWithMiddleware`] and lets the session see every answer, exactly
//! as the session's own `send()` does: the token is renewed when due; on a 401 it is renewed
//! once and the request sent once more (when its body can be cloned: a streamed body is sent
//! once and the 401 returned, and the next request renews first); weavr's `STEP_UP_REQUIRED`
//! and `ACCESS_TOKEN_REQUIRED` are answered before that one resend; and every answer but a
//! 401, a 410 or a 5xx counts as activity where sessions expire when idle (weavr's 5-minute
//! window slides).
//!
//! Put it after (inside) a retry middleware, so that each retry passes through it and
//! carries the token current at that moment:
//!
//! ```no_run
//! # async fn run(session: tokensmith::weavr::Session) -> Result<(), Box<dyn std::error::Error>> {
//! use reqwest_middleware::ClientBuilder;
//! use tokensmith::middleware::AuthMiddleware;
//!
//! let client = ClientBuilder::new(reqwest::Client::new())
//!     // .with(RetryTransientMiddleware::new_with_policy(..)) goes here, outside
//!     .with(AuthMiddleware::new(session).only_hosts(["weavr-live.example"]))
//!     .build();
//! let response = client.get("https://weavr-live.example/multi/consumers").send().await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::sync::Arc;

use http::Extensions;
use reqwest_middleware::{Middleware, Next};

use crate::any_session::AnySession;
use crate::error::Error;
use crate::hosts::{secure_enough, HostPattern};
use crate::transport::{exchange, Authorizer, Sender};

/// Middleware that authorizes requests with a session (any service's `Session`, or an
/// [`AnySession`]) and reports the answers to it. See the [module](self) documentation.
#[derive(Clone)]
pub struct AuthMiddleware {
    session: AnySession,
    auth: Arc<dyn Authorizer>,
    hosts: Option<Arc<[HostPattern]>>,
}

impl std::fmt::Debug for AuthMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthMiddleware")
            .field("session", &self.session)
            .field("only_hosts", &self.hosts)
            .finish()
    }
}

impl AuthMiddleware {
    /// Middleware for `session` (any service's `Session`, or an [`AnySession`]), putting its
    /// credentials on requests to every host (but never over plain HTTP to a host other than
    /// a loopback address); see [`Self::only_hosts`].
    pub fn new(session: impl Into<AnySession>) -> Self {
        let session = session.into();
        Self {
            auth: session.authorizer(),
            session,
            hosts: None,
        }
    }

    /// Puts the credentials only on requests to these hosts; others pass through untouched.
    /// An entry is a host name or IP address (`api.example.com`, `127.0.0.1`, `[::1]`), matching
    /// any port, or one with a port (`localhost:8443`), matching that port only (a URL
    /// without a port has its scheme's default). Names match case-insensitively and exactly:
    /// `example.com` does not cover `api.example.com`. An entry that is not a host matches
    /// nothing.
    pub fn only_hosts<I, S>(mut self, hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.hosts = Some(HostPattern::list(hosts));
        self
    }

    /// The session the middleware authorizes with.
    pub fn session(&self) -> &AnySession {
        &self.session
    }
}

/// Whether a request to `url` gets the credentials, or the reason it must not be sent.
fn wants_credentials(
    hosts: Option<&[HostPattern]>,
    session: &AnySession,
    url: &url::Url,
) -> Result<bool, Error> {
    let host = url.host_str().unwrap_or_default();
    if let Some(hosts) = hosts {
        let port = url.port_or_known_default();
        if !hosts.iter().any(|pattern| pattern.matches(host, port)) {
            return Ok(false);
        }
    }
    if !secure_enough(url.scheme(), host) {
        return Err(Error::configuration(
            Some(session.service()),
            "refusing to send credentials over plain HTTP to a host other than a loopback address",
        ));
    }
    Ok(true)
}

/// The rest of the caller's chain, as [`exchange`] sends through it.
struct Chain<'a> {
    next: Next<'a>,
    extensions: &'a mut Extensions,
}

impl Sender for Chain<'_> {
    type Error = reqwest_middleware::Error;

    fn send(
        &mut self,
        request: reqwest::Request,
    ) -> impl Future<Output = Result<reqwest::Response, Self::Error>> + Send {
        self.next.clone().run(request, self.extensions)
    }
}

#[async_trait::async_trait]
impl Middleware for AuthMiddleware {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let wanted = wants_credentials(self.hosts.as_deref(), &self.session, request.url())
            .map_err(reqwest_middleware::Error::middleware)?;
        if !wanted {
            return next.run(request, extensions).await;
        }
        self.auth
            .authorize(request.headers_mut())
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        let mut chain = Chain { next, extensions };
        exchange(self.auth.as_ref(), request, "", None, &mut chain).await
    }
}
