//! Where a session sends its requests, and with what: its client (which follows no redirects),
//! its base URL, its limits and clock, and where its credentials may go. Every request of a
//! session's own (a login, a refresh, a sign-out) and of its callers (`send()`, `authorize()`)
//! leaves from here.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::errors::{map_api_error, Classify, ErrorBody, Probe};
use super::exchange::Authorizer;
use super::rules::Scope;
use super::send::Context;
use crate::clock::Clock;
use crate::error::{Error, Service};
use crate::generated::Api;
use crate::retry::RetryPolicy;

/// The default timeout for connecting to a service.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default timeout for a whole request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The `User-Agent` sent by the default HTTP client.
pub const USER_AGENT: &str = concat!("tokensmith/", env!("CARGO_PKG_VERSION"));

/// Where a session sends its requests, and with what.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The session's client; it follows no redirects (see `crate::HttpClient`), so the
    /// caller's requests given to `send()` and `authorize()` go out through it too, whatever
    /// client built them.
    pub(crate) http: reqwest::Client,
    /// Without a trailing `/`.
    pub(crate) base_url: String,
    pub(crate) retry: RetryPolicy,
    pub(crate) max_body: usize,
    /// The session's clock: the retry loop and the error mapping read the time from it, and
    /// the retry loop waits on it.
    pub(crate) clock: Arc<dyn Clock>,
    /// Where the session's credentials may go.
    pub(crate) scope: Scope,
    pub(crate) service: Service,
}

impl Endpoint {
    /// Calls one generated operation on the session's own behalf (a login, a refresh, a
    /// password change): a client with `context` (plus this endpoint's limits, clock and a
    /// probe recording the answer), `operation` on it, and a failure mapped by `classify` into
    /// the crate's [`Error`]. Every service's own calls take this one path; they hold only what
    /// their service does differently (the body, the headers, the replay class, the
    /// classification).
    pub(crate) async fn call<C, T, E, Op, Fut>(
        &self,
        context: Context,
        classify: Classify<'_>,
        operation: Op,
    ) -> Result<T, Error>
    where
        C: Api,
        E: ErrorBody,
        Op: FnOnce(C) -> Fut,
        Fut: Future<Output = Result<T, progenitor_client::Error<E>>>,
    {
        let sent_wall = self.clock.system_now();
        let probe = Arc::new(Probe::default());
        let context = self.context(context).with_service(self.service);
        let metered = crate::telemetry::Metered::start(context.tag(), self.clock.as_ref());
        let client = C::with_context(
            &self.base_url,
            self.http.clone(),
            context.with_probe(probe.clone()),
        );
        let result = match operation(client).await {
            Ok(response) => Ok(response),
            Err(e) => Err(map_api_error(self.service, e, &probe, sent_wall, classify).await),
        };
        metered.finish(self.clock.as_ref(), result.as_ref().err().map(Error::kind));
        result
    }

    /// `context` with this endpoint's retry policy, body cap and clock.
    pub(crate) fn context(&self, context: Context) -> Context {
        context
            .with_limits(&self.retry, self.max_body)
            .with_clock(self.clock.clone())
    }

    /// Sends a request of the caller's with `auth`'s credentials, through the exchange every
    /// credentialed request takes (a 401 renews once and resends once, a curable 403 is cured,
    /// answers count as activity), with the caller's retry policy. The body is not capped: it
    /// is the caller's API's answer, not ours.
    ///
    /// It goes out through the session's client, which follows no redirects, not the one that
    /// built it: a client that follows them would carry the session's headers to wherever a
    /// `Location` points (reqwest strips `Authorization` and `Cookie` on a change of host, but
    /// not weavr's `api-key`). A redirect comes back as the response.
    pub(crate) async fn send(
        &self,
        auth: Arc<dyn Authorizer>,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Error> {
        // Not `Context::prepare`: that strips progenitor's `api-version`, which the caller's
        // API may use.
        let mut request = self.outgoing(request)?;
        auth.authorize(request.headers_mut()).await?;
        let context = Context::new()
            .with_authorizer(auth)
            .with_retry(self.retry.clone())
            .with_clock(self.clock.clone());
        context
            .execute(&self.http, request, "")
            .await
            .map_err(|e| Error::transport(e).with_service(self.service))
    }

    /// The caller's request, built and checked against the scope (before any login): a request
    /// that must not carry the session's credentials is refused here.
    pub(crate) fn outgoing(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Request, Error> {
        let (_, request) = request.build_split();
        let request = request.map_err(|e| self.unbuilt(e))?;
        self.check(&request)?;
        Ok(request)
    }

    /// `Ok` when `request` may carry the session's credentials: the scope's rule (its hosts,
    /// and plain HTTP only to loopback or when allowed).
    #[inline]
    pub(crate) fn check(&self, request: &reqwest::Request) -> Result<(), Error> {
        self.scope.check(self.service, request.url())
    }

    /// The error of a caller's request that could not be built.
    pub(crate) fn unbuilt(&self, error: reqwest::Error) -> Error {
        Error::configuration(Some(self.service), "the request could not be built")
            .with_source(error.without_url())
    }

    /// `request`, which carries the session's credentials, given back to the caller to send
    /// through the session's client: one that follows no redirects (for the same reason as in
    /// [`Self::send`]), whatever client built it.
    #[inline]
    pub(crate) fn direct(&self, request: reqwest::Request) -> reqwest::RequestBuilder {
        reqwest::RequestBuilder::from_parts(self.http.clone(), request)
    }
}

/// The session's client when the builder was given none: 10 s to connect, 30 s in all, no
/// redirects, and this crate's `User-Agent`.
pub(crate) fn default_http_client(service: Service) -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .connect_timeout(DEFAULT_CONNECT_TIMEOUT)
        .timeout(DEFAULT_REQUEST_TIMEOUT)
        // A redirect on an auth endpoint would re-send credentials somewhere unvetted.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT)
        .build()
        .map_err(|e| {
            Error::configuration(Some(service), "cannot build the HTTP client").with_source(e)
        })
}
