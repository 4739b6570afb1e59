//! How sessions send their requests: how much of an answer they read
//! ([`DEFAULT_MAX_RESPONSE_BYTES`], changed with each builder's `max_response_bytes`).
//!
//! # Examples
//!
//! ```
//! use tokensmith::transport::DEFAULT_MAX_RESPONSE_BYTES;
//!
//! let session = tokensmith::s7risk::Session::builder()
//!     .origin("https://api.example.com")
//!     .user("analyst@example.com", "correct horse")
//!     .max_response_bytes(2 * DEFAULT_MAX_RESPONSE_BYTES)
//!     .build()?;
//! # let _ = session;
//! # Ok::<(), tokensmith::Error>(())
//! ```

// Also here, outside the documented API: the context every generated client carries (the
// headers to attach, the session that authorizes its requests, the probe that records what
// came back).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::clock::{Clock, SystemClock};
use crate::error::Error;
use crate::error::Service;
use crate::response::{self, Probe};
use crate::retry::{Replay, RetryPolicy};
use crate::telemetry::{self, Grant, Tag};
use tracing::Instrument;

/// How much of a response body is read by default; auth answers are a few hundred bytes.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A session as the generated clients' hooks see it.
pub(crate) trait Authorizer: Send + Sync {
    /// Puts the current credentials (renewed first when due) into `headers`.
    fn authorize<'a>(&'a self, headers: &'a mut HeaderMap) -> BoxFuture<'a, Result<(), Error>>;
    /// The service accepted the credentials in `headers`, sent at `sent_at`.
    fn accepted(&self, headers: &HeaderMap, sent_at: Instant);
    /// The service refused the credentials in `headers` (401).
    fn refused(&self, headers: &HeaderMap);
    /// The session clock's now.
    fn now(&self) -> Instant;
    /// Whether [`Self::forbidden`] may cure a 403 (only then is its body read here).
    fn handles_forbidden(&self) -> bool {
        false
    }
    /// The service answered 403 with `body`: cures it when it can (a step-up, an access-token
    /// exchange) and says whether the request is worth sending again.
    fn forbidden<'a>(&'a self, _body: &'a [u8]) -> BoxFuture<'a, bool> {
        Box::pin(async { false })
    }
    /// The one retry after a cure, sent with the credentials in `used`, was refused with 403
    /// and `body` again: the cure did not take (a step-up the service does not honour), and
    /// there is no second retry.
    fn uncured(&self, _body: &[u8], _used: &HeaderMap) {}
    /// Whether the operation `operation_id` ends the session whose credentials it carries (a
    /// sign-out or logout called through `api()`).
    fn ends_session(&self, _operation_id: &str) -> bool {
        false
    }
    /// The service ended the session whose credentials `used` carried: forget them.
    fn ended<'a>(&'a self, _used: &'a HeaderMap) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// Whether an answer shows that the service took the credentials the request carried, which
/// restarts a sliding lifetime (weavr: 5 minutes from last activity). Every answer does,
/// refusals of the request itself (a 403 `STEP_UP_REQUIRED`, a 409) included, except a 401
/// (the token was refused), a 410 (weavr `TOKEN_EXPIRED`) and a 5xx (a gateway's or
/// maintenance answer: the request may never have reached the service).
fn took_credentials(status: u16) -> bool {
    !matches!(status, 401 | 410 | 500..=599)
}

/// Tells `auth` what the service answered, with `status`, to the operation `operation_id`
/// sent with the credentials in `used` at `sent_at`. True when that ended the session (a
/// successful sign-out): there is nothing left to cure or retry.
async fn answered(
    auth: &dyn Authorizer,
    status: u16,
    used: &HeaderMap,
    sent_at: Instant,
    operation_id: &str,
) -> bool {
    if (200..=299).contains(&status) && auth.ends_session(operation_id) {
        auth.ended(used).await;
        return true;
    }
    report(auth, status, used, sent_at);
    false
}

/// Tells `auth` what the service made of the credentials in `used`, sent at `sent_at`.
pub(crate) fn report(auth: &dyn Authorizer, status: u16, used: &HeaderMap, sent_at: Instant) {
    if status == 401 {
        auth.refused(used);
    } else if took_credentials(status) {
        auth.accepted(used, sent_at);
    }
}

// Public only because the generated clients take it (`Client::new_with_client`) and the
// contract tests drive them by hand; not part of the documented API.
#[doc(hidden)]
/// Per-client context that the generated clients' hooks consult on every request.
///
/// [`Context::new`] with [`Context::with_header`] drives a generated client by hand (the
/// contract tests do); a session's `api()` returns clients whose context authorizes every
/// request with the session's current token, renews it when due, and on a 401 renews once and
/// retries once.
#[derive(Clone, Default)]
pub struct Context {
    headers: HeaderMap,
    auth: Option<Arc<dyn Authorizer>>,
    /// A session told what the service made of the requests' credentials, for a client that
    /// carries one of its tokens without managing it.
    observer: Option<Arc<dyn Authorizer>>,
    probe: Option<Arc<Probe>>,
    retry: Option<RetryPolicy>,
    replay: Option<Replay>,
    max_body: Option<usize>,
    /// The session's clock, read and waited on (a bare context uses the system clocks and
    /// tokio's timer).
    clock: Option<Arc<dyn Clock>>,
    /// What a session's own request is for, and to which service: its requests are traced.
    grant: Option<Grant>,
    service: Option<Service>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // HeaderMap's Debug prints sensitive values as `Sensitive`.
        f.debug_struct("Context")
            .field("headers", &self.headers)
            .field("session", &self.auth.is_some())
            .field("observed", &self.observer.is_some())
            .field("retry", &self.retry)
            .field("max_body", &self.max_body)
            .field("grant", &self.grant)
            .finish()
    }
}

impl Context {
    /// A context that adds nothing to requests.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a header to every request; sensitive values are marked so that they print as
    /// `Sensitive` and are never logged by reqwest or hyper.
    pub fn with_header(
        mut self,
        name: HeaderName,
        mut value: HeaderValue,
        sensitive: bool,
    ) -> Self {
        value.set_sensitive(sensitive);
        self.headers.insert(name, value);
        self
    }

    pub(crate) fn with_probe(mut self, probe: Arc<Probe>) -> Self {
        self.probe = Some(probe);
        self
    }

    pub(crate) fn with_authorizer(mut self, auth: Arc<dyn Authorizer>) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Reports every answer to `session` (a 401 refuses the token, other answers slide its
    /// lifetime) without letting it authorize, renew or retry: for requests that carry one of
    /// the session's tokens put there by hand (weavr's step-up challenge and verification).
    pub(crate) fn with_observer(mut self, session: Arc<dyn Authorizer>) -> Self {
        self.observer = Some(session);
        self
    }

    /// Retries failed requests under `policy` (default: each request is sent once).
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Reads at most `bytes` of a response body; a longer one is not read and the call fails
    /// (default: unlimited for a bare context, [`DEFAULT_MAX_RESPONSE_BYTES`] for sessions).
    pub fn with_max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_body = Some(bytes);
        self
    }

    /// Sets the retry policy and body cap, unless the context already has its own.
    pub(crate) fn with_limits(mut self, retry: &RetryPolicy, max_body: usize) -> Self {
        self.retry.get_or_insert_with(|| retry.clone());
        self.max_body.get_or_insert(max_body);
        self
    }

    /// Reads the time from `clock`, the session's, and waits on it.
    pub(crate) fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// How far this client's requests may be replayed (default: by their method).
    pub(crate) fn with_replay(mut self, replay: Replay) -> Self {
        self.replay = Some(replay);
        self
    }

    /// Marks the requests as a session's own, made for `grant`: each attempt gets a span.
    pub(crate) fn with_grant(mut self, grant: Grant) -> Self {
        self.grant = Some(grant);
        self
    }

    /// Names the service that a session's own requests go to.
    pub(crate) fn with_service(mut self, service: Service) -> Self {
        self.service = Some(service);
        self
    }

    /// What the requests are, when they are a session's own.
    pub(crate) fn tag(&self) -> Option<Tag> {
        Some(Tag {
            service: self.service?,
            grant: self.grant?,
        })
    }

    /// The `pre` hook: fixed headers, then the session's credentials.
    pub(crate) async fn prepare(&self, request: &mut reqwest::Request) -> Result<(), Error> {
        // progenitor stamps every request with `api-version: <info.version>`; none of the five
        // services documents such a header, so it is not sent.
        request.headers_mut().remove("api-version");
        for (name, value) in &self.headers {
            request.headers_mut().insert(name.clone(), value.clone());
        }
        match &self.auth {
            Some(auth) => auth.authorize(request.headers_mut()).await,
            None => Ok(()),
        }
    }

    /// The `exec` hook: sends, records, and tells the session what the service made of its
    /// token (any answer but a 401 or a 5xx slides a sliding lifetime, measured from when the
    /// request was sent); on a 401 renews the credentials, and on a 403 the session can cure
    /// (step-up, access-token exchange) cures it, then retries exactly once.
    ///
    /// The success of an operation that ends the session (a sign-out) makes the session forget
    /// the credentials it ended, instead of counting as activity.
    pub(crate) async fn execute(
        &self,
        client: &reqwest::Client,
        request: reqwest::Request,
        operation_id: &str,
    ) -> reqwest::Result<reqwest::Response> {
        let Some(auth) = &self.auth else {
            let Some(observer) = &self.observer else {
                return self.send(client, request).await;
            };
            let used = request.headers().clone();
            let sent_at = observer.now();
            let response = self.send(client, request).await?;
            report(
                observer.as_ref(),
                response.status().as_u16(),
                &used,
                sent_at,
            );
            return Ok(response);
        };
        let mut own = Own {
            context: self,
            client,
        };
        exchange(
            auth.as_ref(),
            request,
            operation_id,
            self.max_body,
            &mut own,
        )
        .await
    }

    /// Sends with retries, records every answer in the probe, and caps the body read.
    async fn send(
        &self,
        client: &reqwest::Client,
        request: reqwest::Request,
    ) -> reqwest::Result<reqwest::Response> {
        let policy = self.retry.as_ref().filter(|p| p.attempts() > 1);
        let replay = self
            .replay
            .unwrap_or_else(|| Replay::for_method(request.method()));
        let clock: &dyn Clock = self.clock.as_deref().unwrap_or(&SystemClock);
        let started = clock.now();
        let tag = self.tag();
        let mut attempt = 1;
        let mut request = request;
        loop {
            let spare = policy.and_then(|_| request.try_clone());
            let span = telemetry::attempt_span(tag, &request, attempt);
            let result = client.execute(request).instrument(span.clone()).await;
            telemetry::answered(&span, &result);
            let asked = match &result {
                Ok(response) if replay.status(response.status().as_u16()) => Some(
                    response::retry_after_from_headers(response.headers(), clock.system_now()),
                ),
                Err(error) if replay.error(error) => Some(None),
                _ => None,
            };
            let wait = match (policy, asked, &spare) {
                (Some(policy), Some(asked), Some(_)) => {
                    let elapsed = clock.now().saturating_duration_since(started);
                    policy.delay(attempt, elapsed, asked, fastrand::f64())
                }
                _ => None,
            };
            let (Some(wait), Some(spare)) = (wait, spare) else {
                let response = result?;
                let finished = self.finish(response).instrument(span.clone()).await;
                if let Err(error) = &finished {
                    telemetry::failed(&span, error);
                }
                return finished;
            };
            match &result {
                Ok(response) => tracing::debug!(
                    status = response.status().as_u16(),
                    attempt,
                    wait_ms = wait.as_millis() as u64,
                    "retrying after a transient answer"
                ),
                Err(error) => tracing::debug!(
                    error = transport_failure(error),
                    attempt,
                    wait_ms = wait.as_millis() as u64,
                    "retrying after a transport error"
                ),
            }
            if let Ok(response) = &result {
                self.record(response);
            }
            drop(result);
            clock.sleep(wait).await;
            attempt += 1;
            request = spare;
        }
    }

    fn record(&self, response: &reqwest::Response) {
        if let Some(probe) = &self.probe {
            probe.record(response.status().as_u16(), response.headers());
        }
    }

    /// Records the answer and reads its body, up to the cap, so that an oversized or endless
    /// body fails here instead of growing without bound inside the decoder.
    async fn finish(&self, response: reqwest::Response) -> reqwest::Result<reqwest::Response> {
        self.record(&response);
        let Some(cap) = self.max_body else {
            return Ok(response);
        };
        let status = response.status().as_u16();
        let (response, body) = buffer(response, Some(cap)).await?;
        match (body, &self.probe) {
            (None, probe) => {
                if let Some(probe) = probe {
                    probe.record_oversized(cap);
                }
                tracing::warn!(status, cap, "response body over the cap; not read");
            }
            (Some(body), Some(probe)) if status >= 400 => probe.record_error_body(body),
            _ => {}
        }
        Ok(response)
    }
}

/// Where [`exchange`] sends a request: a session's own client (with its retry policy), or the
/// rest of a caller's middleware chain.
pub(crate) trait Sender: Send {
    /// What a failed send is.
    type Error: From<reqwest::Error>;
    /// Sends `request` once (as this sender sends: retries, if any, are its own).
    fn send(
        &mut self,
        request: reqwest::Request,
    ) -> impl Future<Output = Result<reqwest::Response, Self::Error>> + Send;
}

/// A generated client's or a session's own sending: `context`'s retries through `client`.
struct Own<'a> {
    context: &'a Context,
    client: &'a reqwest::Client,
}

impl Sender for Own<'_> {
    type Error = reqwest::Error;

    fn send(
        &mut self,
        request: reqwest::Request,
    ) -> impl Future<Output = Result<reqwest::Response, Self::Error>> + Send {
        self.context.send(self.client, request)
    }
}

/// Sends `request`, already carrying `auth`'s credentials, through `sender`, and tells `auth`
/// what the service made of them (any answer but a 401 or a 5xx slides a sliding lifetime,
/// measured from when the request was sent); on a 401 renews the credentials, and on a 403
/// `auth` can cure (step-up, access-token exchange) cures it, then sends once more when the
/// request can be cloned. `max_body` caps a 403 body read for the cure.
///
/// One path for `api()`, `send()` and the reqwest middleware, so that they cannot drift.
pub(crate) async fn exchange<S: Sender>(
    auth: &dyn Authorizer,
    request: reqwest::Request,
    operation_id: &str,
    max_body: Option<usize>,
    sender: &mut S,
) -> Result<reqwest::Response, S::Error> {
    let retry = request.try_clone();
    let used = request.headers().clone();
    let sent_at = auth.now();
    let response = sender.send(request).await?;
    let status = response.status().as_u16();
    // Before any cure: a step-up can keep the user for minutes, and the token must not
    // look idle meanwhile.
    if answered(auth, status, &used, sent_at, operation_id).await {
        return Ok(response);
    }
    let (response, cured, after_cure) = match status {
        200..=299 => return Ok(response),
        401 => (response, true, false),
        403 if auth.handles_forbidden() && retry.is_some() => {
            let (response, body) = buffer(response, max_body).await?;
            let cured = match body {
                Some(body) => auth.forbidden(&body).await,
                None => false,
            };
            (response, cured, true)
        }
        _ => return Ok(response),
    };
    let Some(mut retry) = retry.filter(|_| cured) else {
        return Ok(response);
    };
    if auth.authorize(retry.headers_mut()).await.is_err() {
        return Ok(response);
    }
    let used = retry.headers().clone();
    let sent_at = auth.now();
    let response = sender.send(retry).await?;
    let status = response.status().as_u16();
    if answered(auth, status, &used, sent_at, operation_id).await {
        return Ok(response);
    }
    if status != 403 || !after_cure {
        return Ok(response);
    }
    // Cured, sent again, refused again: the session hears of it (a step-up it trusted
    // is forgotten), and the answer goes back as it is.
    let (response, body) = buffer(response, max_body).await?;
    if let Some(body) = body {
        auth.uncured(&body, &used);
    }
    Ok(response)
}

/// Reads a response's body (up to `cap`) and gives back an equivalent response with it, plus
/// the bytes (`None` when the body was over the cap and dropped).
async fn buffer(
    response: reqwest::Response,
    cap: Option<usize>,
) -> reqwest::Result<(reqwest::Response, Option<bytes::Bytes>)> {
    let status = response.status();
    let version = response.version();
    let headers = response.headers().clone();
    let body = read_at_most(response, cap.unwrap_or(DEFAULT_MAX_RESPONSE_BYTES))
        .await?
        .map(bytes::Bytes::from);
    let mut rebuilt = http::Response::new(body.clone().unwrap_or_default());
    *rebuilt.status_mut() = status;
    *rebuilt.version_mut() = version;
    *rebuilt.headers_mut() = headers;
    let len = rebuilt.body().len();
    rebuilt
        .headers_mut()
        .remove(reqwest::header::TRANSFER_ENCODING);
    rebuilt
        .headers_mut()
        .insert(reqwest::header::CONTENT_LENGTH, HeaderValue::from(len));
    Ok((reqwest::Response::from(rebuilt), body))
}

/// What went wrong, in words that cannot carry a URL or a header value.
fn transport_failure(error: &reqwest::Error) -> &'static str {
    if error.is_connect() {
        "connection failed"
    } else if error.is_timeout() {
        "timed out"
    } else if error.is_body() || error.is_decode() {
        "body broken off"
    } else {
        "request failed"
    }
}

/// The whole body, or `None` when it is longer than `cap` (by its `Content-Length` or as read).
/// The one capped read of the crate: every body read goes through it.
pub(crate) async fn read_at_most(
    mut response: reqwest::Response,
    cap: usize,
) -> reqwest::Result<Option<Vec<u8>>> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > cap {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}
