//! What every generated client carries: the headers to attach and what to record of responses.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

/// Per-client context that the generated clients' hooks consult on every request.
#[derive(Clone, Debug, Default)]
pub struct Context {
    headers: HeaderMap,
}

impl Context {
    /// A context that adds nothing to requests.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a header to every request; sensitive values are marked so reqwest never logs them.
    pub fn with_header(mut self, name: HeaderName, mut value: HeaderValue, sensitive: bool) -> Self {
        value.set_sensitive(sensitive);
        self.headers.insert(name, value);
        self
    }

    pub(crate) fn prepare(&self, request: &mut reqwest::Request) {
        // progenitor stamps every request with `api-version: <info.version>`; none of the five
        // services documents such a header, so it is not sent.
        request.headers_mut().remove("api-version");
        for (name, value) in &self.headers {
            request.headers_mut().insert(name.clone(), value.clone());
        }
    }
}
