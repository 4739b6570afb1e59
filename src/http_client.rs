//! The HTTP client a session sends its own requests through: one that follows no redirects.

/// The HTTP client a session uses, given to a session builder's `http_client(…)`: from a
/// `reqwest::ClientBuilder` (each session builds its own client from it), or built once with
/// [`HttpClient::build`] and cloned into many sessions, which then share its connection pool.
///
/// Either way redirects are off whatever the builder says: reqwest cannot turn them off for
/// one request, and a followed redirect would carry a session's credentials (weavr's
/// `api-key`, a login's password in a 307's body) wherever it points. There is no way to give
/// a session an already built `reqwest::Client`, whose redirect policy cannot be read.
///
/// ```
/// use std::time::Duration;
///
/// let http = tokensmith::HttpClient::build(
///     reqwest::Client::builder().timeout(Duration::from_secs(5)),
/// )?;
/// let session = tokensmith::s7risk::Session::builder()
///     .origin("https://app.example.com")
///     .user("analyst@example.com", "correct horse")
///     .http_client(http.clone()) // shares the pool with every session given a clone
///     .build()?;
/// # let _ = session;
/// # Ok::<(), tokensmith::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
}

impl HttpClient {
    /// Builds the client from `builder`, with redirects turned off.
    ///
    /// # Errors
    ///
    /// [`crate::ErrorKind::Configuration`] when reqwest cannot build the client (a TLS
    /// backend that fails to start, say).
    pub fn build(builder: reqwest::ClientBuilder) -> Result<Self, crate::Error> {
        Self::build_for(None, builder)
    }

    pub(crate) fn build_for(
        service: Option<crate::Service>,
        builder: reqwest::ClientBuilder,
    ) -> Result<Self, crate::Error> {
        let client = builder
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                crate::Error::configuration(service, "cannot build the HTTP client").with_source(e)
            })?;
        Ok(Self { client })
    }

    pub(crate) fn into_inner(self) -> reqwest::Client {
        self.client
    }
}

/// What a session builder's `http_client(…)` accepts: a [`HttpClient`], or a
/// `reqwest::ClientBuilder` that the session builds at `build()` (with redirects off).
#[derive(Debug)]
pub struct HttpClientSource(pub(crate) Source);

#[derive(Debug)]
pub(crate) enum Source {
    Built(HttpClient),
    // Boxed: a builder is about a kilobyte, and a session builder carries this by value.
    Builder(Box<reqwest::ClientBuilder>),
}

impl From<HttpClient> for HttpClientSource {
    fn from(client: HttpClient) -> Self {
        Self(Source::Built(client))
    }
}

impl From<reqwest::ClientBuilder> for HttpClientSource {
    fn from(builder: reqwest::ClientBuilder) -> Self {
        Self(Source::Builder(Box::new(builder)))
    }
}

impl HttpClientSource {
    pub(crate) fn into_client(
        self,
        service: crate::Service,
    ) -> Result<reqwest::Client, crate::Error> {
        match self.0 {
            Source::Built(client) => Ok(client.into_inner()),
            Source::Builder(builder) => {
                HttpClient::build_for(Some(service), *builder).map(HttpClient::into_inner)
            }
        }
    }
}
