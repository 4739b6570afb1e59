//! The context every generated client carries (fixed headers, the session that authorizes its
//! requests, the probe that records what came back, telemetry) and the retry loop every request
//! of the crate goes through.

use std::future::Future;
use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tracing::Instrument;

use super::body::buffer;
use super::errors::{self, Probe};
use super::exchange::{exchange, report, Authorizer, ReqwestSend};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Service};
use crate::retry::{Replay, RetryPolicy};
use crate::telemetry::{self, Grant, Tag};

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
    /// (default: unlimited for a bare context, [`super::DEFAULT_MAX_RESPONSE_BYTES`] for sessions).
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
        let mut sender = Retrying {
            context: self,
            client,
        };
        exchange(
            auth.as_ref(),
            request,
            operation_id,
            self.max_body,
            &mut sender,
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
                    errors::retry_after_from_headers(response.headers(), clock.system_now()),
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
                    error = telemetry::failure_kind(error),
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

/// A generated client's or a session's own sending: through `client`, with `context`'s retries.
struct Retrying<'a> {
    context: &'a Context,
    client: &'a reqwest::Client,
}

impl ReqwestSend for Retrying<'_> {
    type Error = reqwest::Error;

    fn send_one(
        &mut self,
        request: reqwest::Request,
    ) -> impl Future<Output = reqwest::Result<reqwest::Response>> + Send {
        self.context.send(self.client, request)
    }
}
