//! What every generated client carries: the headers to attach, the session that authorizes
//! its requests, and the probe that records what came back.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::error::Error;
use crate::response::Probe;

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
}

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
    probe: Option<Arc<Probe>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // HeaderMap's Debug prints sensitive values as `Sensitive`.
        f.debug_struct("Context")
            .field("headers", &self.headers)
            .field("session", &self.auth.is_some())
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

    /// The `exec` hook: sends, records, slides the session's expiry on success, and on a 401
    /// renews the credentials and retries exactly once.
    pub(crate) async fn execute(
        &self,
        client: &reqwest::Client,
        request: reqwest::Request,
    ) -> reqwest::Result<reqwest::Response> {
        let Some(auth) = &self.auth else {
            return self.send(client, request).await;
        };
        let retry = request.try_clone();
        let used = request.headers().clone();
        let sent_at = auth.now();
        let response = self.send(client, request).await?;
        match response.status().as_u16() {
            200..=299 => auth.accepted(&used, sent_at),
            401 => {
                auth.refused(&used);
                if let Some(mut retry) = retry {
                    if auth.authorize(retry.headers_mut()).await.is_ok() {
                        let used = retry.headers().clone();
                        let sent_at = auth.now();
                        let response = self.send(client, retry).await?;
                        match response.status().as_u16() {
                            200..=299 => auth.accepted(&used, sent_at),
                            401 => auth.refused(&used),
                            _ => {}
                        }
                        return Ok(response);
                    }
                }
            }
            _ => {}
        }
        Ok(response)
    }

    async fn send(
        &self,
        client: &reqwest::Client,
        request: reqwest::Request,
    ) -> reqwest::Result<reqwest::Response> {
        let response = client.execute(request).await?;
        if let Some(probe) = &self.probe {
            probe.record(response.status().as_u16(), response.headers());
        }
        Ok(response)
    }
}
