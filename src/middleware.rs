//! A session as [`reqwest_middleware`] middleware (cargo feature `middleware`).
//!
//! [`AuthMiddleware`] puts a session's credentials on every request of a
//! [`reqwest_middleware::ClientWithMiddleware`] and lets the session see every answer, exactly
//! as the session's own `send()` does: the token is renewed when due; on a 401 it is renewed
//! once and the request sent once more (when its body can be cloned: a streamed body is sent
//! once and the 401 returned, and the next request renews first); weavr's `STEP_UP_REQUIRED`
//! and `ACCESS_TOKEN_REQUIRED` are answered once and the request sent once more (a token renewed
//! after a 401 may need the step-up: three sends at most); and every answer but a
//! 401, a 410 or a 5xx counts as activity where sessions expire when idle (weavr's 5-minute
//! window slides).
//!
//! Put it after (inside) a retry middleware, so that each retry passes through it and
//! carries the token current at that moment:
//!
//! ```no_run
//! # async fn run(session: tokensmith::weavr::Session) -> Result<(), Box<dyn std::error::Error>> {
//! use tokensmith::middleware::AuthMiddleware;
//!
//! // The session's own client: it follows no redirects (see `AuthMiddleware::new`).
//! let client = reqwest_middleware::ClientBuilder::new(session.client())
//!     // .with(RetryTransientMiddleware::new_with_policy(..)) goes here, outside
//!     .with(AuthMiddleware::new(session))
//!     .build();
//! // The session's base URL is Weavr's Live URL for you (here an illustrative one).
//! let response = client.get("https://weavr-live.example/multi/consumers").send().await?;
//! # Ok(()) }
//! ```

use std::future::Future;

use http::Extensions;
use reqwest_middleware::{Middleware, Next};

use crate::session::AnySession;
use crate::transport::adapter::Adapter;
use crate::transport::exchange::ReqwestSend;

/// Middleware that authorizes requests with a session (any service's `Session`, or an
/// [`AnySession`]) and reports the answers to it. See the [module](self) documentation.
#[derive(Clone)]
pub struct AuthMiddleware {
    adapter: Adapter,
}

impl std::fmt::Debug for AuthMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.adapter.debug(f, "AuthMiddleware").finish()
    }
}

impl AuthMiddleware {
    /// Middleware for `session` (any service's `Session`, or an [`AnySession`]), putting its
    /// credentials on requests to the hosts they are for (the session's base URL's origin,
    /// the vendor's documented hosts and the builder's `credential_hosts`; see
    /// [`Self::only_hosts`]), never over plain HTTP to a host that is not a loopback address
    /// unless the session allows it (`danger_accept_plain_http`). Requests to other hosts pass
    /// through untouched.
    ///
    /// The client under the middleware must follow no redirects: build the chain on the
    /// session's own client (`session.client()`), as the [module](self) example does. A client
    /// that follows redirects would carry the credentials the middleware put on a request
    /// wherever a `Location` points: reqwest strips `Authorization` and `Cookie` on a change of
    /// host, but not weavr's `api-key`, and gives a middleware no way to turn redirects off for
    /// one request.
    pub fn new(session: impl Into<AnySession>) -> Self {
        Self {
            adapter: Adapter::new(session.into()),
        }
    }

    /// Puts the credentials only on requests to these hosts, in place of the session's own
    /// list; others pass through untouched. An entry is a host name or IP address
    /// (`api.example.com`, `127.0.0.1`, `[::1]`), matching any port, or one with a port
    /// (`localhost:8443`), matching that port only (a URL without a port has its scheme's
    /// default), or `*.example.com`, matching every host below `example.com`. Names match
    /// case-insensitively and exactly: `example.com` does not cover `api.example.com`. An
    /// entry that is not a host matches nothing.
    pub fn only_hosts(mut self, hosts: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        self.adapter.only_hosts(hosts);
        self
    }

    /// The session the middleware authorizes with.
    pub fn session(&self) -> &AnySession {
        self.adapter.session()
    }
}

/// The rest of the caller's chain, as [`exchange`] sends through it.
struct Chain<'a> {
    next: Next<'a>,
    extensions: &'a mut Extensions,
}

impl ReqwestSend for Chain<'_> {
    type Error = reqwest_middleware::Error;

    fn send_one(
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
        request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let verdict = self.adapter.scope().judge_url(request.url());
        let admitted = self.adapter.admit(verdict, request.url().host_str());
        let mut chain = Chain { next, extensions };
        let fail = reqwest_middleware::Error::middleware;
        self.adapter.send(admitted, request, &mut chain, fail).await
    }
}
