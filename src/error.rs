//! The one error type of the crate, with the provider's detail on it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::secret::SecretString;

// `Service` and its `name()`: one variant per document in `openapi/` (build.rs writes them from
// each document's `info.x-tokensmith`), so that a new service needs no edit here.
include!(concat!(env!("OUT_DIR"), "/services.rs"));

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What went wrong, for callers that branch on it. Details (status, message, request id,
/// field errors, retry delays) are on [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The service refused the credentials (login 401, or a rejected signature). Never retried.
    #[error("credentials refused")]
    InvalidCredentials,
    /// s7risk: the user's access window has expired, a permanent condition.
    #[error("the user's access window has expired")]
    AccessWindowExpired,
    /// The account is locked after failed logins (weavr: 30 minutes).
    #[error("account locked")]
    AccountLocked {
        /// How long until the lock is expected to end, when the service says.
        retry_after: Option<Duration>,
    },
    /// Too many requests.
    #[error("rate limited")]
    RateLimited {
        /// How long to wait, from `Retry-After`, `x-ratelimit-reset` or the message.
        retry_after: Option<Duration>,
    },
    /// weavr: the password has expired; [`Error::temporary_token`] updates it.
    #[error("password expired")]
    PasswordExpired,
    /// accounts: a new password must be set; [`Error::challenge_session`] completes it.
    #[error("a new password is required")]
    NewPasswordRequired,
    /// weavr: the call needs a stepped-up token.
    #[error("step-up required")]
    StepUpRequired,
    /// weavr: the application's step-up handler gave no answer within the challenge's
    /// lifetime (5 minutes); every call waiting for that step-up gets this, and the next
    /// step-up starts a new challenge.
    #[error("the step-up handler did not answer in time")]
    StepUpTimeout,
    /// weavr: the call needs an identity's access token rather than the login token.
    #[error("an identity access token is required")]
    AccessTokenRequired,
    /// The service rejected a token it had issued (expired, revoked or unknown).
    #[error("token rejected")]
    TokenRejected,
    /// The request was malformed; [`Error::field_errors`] lists the fields when known.
    #[error("invalid request")]
    InvalidRequest,
    /// The credentials are valid but not allowed to do this.
    #[error("forbidden")]
    Forbidden,
    /// The resource (or user) does not exist.
    #[error("not found")]
    NotFound,
    /// The request conflicts with the resource's state.
    #[error("conflict")]
    Conflict,
    /// passwordsafe: the Password Safe licence is not valid (403).
    #[error("licence not valid")]
    LicenceInvalid,
    /// passwordsafe: this API version has been disabled (410).
    #[error("API version disabled")]
    ApiVersionDisabled,
    /// accounts: the refresh token has been used the maximum number of times.
    #[error("refresh token limit exceeded")]
    RefreshLimitExceeded,
    /// The service is temporarily offline (503).
    #[error("service unavailable")]
    ServiceUnavailable,
    /// The service failed (5xx).
    #[error("server error")]
    ServerError,
    /// accounts: the login answered with a challenge this SDK cannot answer (an MFA challenge
    /// of Amazon Cognito's); [`Error::code`] names it. Not retried: every login would start
    /// the same challenge again (and perhaps send another SMS) until `clear_failure()`.
    #[error("a login challenge this SDK does not support")]
    UnsupportedChallenge,
    /// A status or body the service does not document.
    #[error("unexpected response")]
    UnexpectedResponse,
    /// A documented response whose body could not be read as documented.
    #[error("response could not be decoded")]
    Decode,
    /// The request timed out.
    #[error("timed out")]
    Timeout,
    /// The connection failed.
    #[error("transport error")]
    Transport,
    /// The session was configured wrongly.
    #[error("configuration error")]
    Configuration,
}

/// One invalid field reported by the service (weavr's `syntaxErrors`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FieldError {
    /// The field's name.
    pub field: String,
    /// The rule it broke (`REQUIRED`, `SIZE`, …).
    pub error: String,
    /// The rule's parameters.
    pub params: Vec<String>,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, error: impl Into<String>, params: Vec<String>) -> Self {
        Self {
            field: field.into(),
            error: error.into(),
            params,
        }
    }
}

/// Everything that can go wrong, with the service's own words attached.
///
/// Cheap to clone (one `Arc`), so that every caller waiting on one shared login gets the same
/// error. No secret is ever part of its `Debug` or `Display`.
#[derive(Clone)]
pub struct Error {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    kind: ErrorKind,
    service: Option<Service>,
    status: Option<u16>,
    message: Option<String>,
    code: Option<String>,
    request_ref: Option<String>,
    field_errors: Vec<FieldError>,
    /// The environment variables a configuration error is about (names only).
    variables: Vec<&'static str>,
    temporary_token: Option<SecretString>,
    challenge_session: Option<SecretString>,
    /// A 503's `Retry-After` (a 429's and a 423's are part of their kind).
    unavailable_for: Option<Duration>,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind) -> Self {
        Self {
            inner: Arc::new(Inner {
                kind,
                service: None,
                status: None,
                message: None,
                code: None,
                request_ref: None,
                field_errors: Vec::new(),
                variables: Vec::new(),
                temporary_token: None,
                challenge_session: None,
                unavailable_for: None,
                source: None,
            }),
        }
    }

    pub(crate) fn configuration(service: Option<Service>, message: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorKind::Configuration).with_message(message);
        e.inner_mut().service = service;
        e
    }

    /// A request that got no answer: [`ErrorKind::Timeout`] or [`ErrorKind::Transport`], the
    /// cause kept without its URL (which may carry a query's secrets).
    pub(crate) fn transport(error: reqwest::Error) -> Self {
        let kind = if error.is_timeout() {
            ErrorKind::Timeout
        } else {
            ErrorKind::Transport
        };
        Self::new(kind).with_source(error.without_url())
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::get_mut(&mut self.inner).expect("errors are built before they are shared")
    }

    pub(crate) fn with_service(mut self, service: Service) -> Self {
        self.inner_mut().service = Some(service);
        self
    }
    pub(crate) fn with_status(mut self, status: u16) -> Self {
        self.inner_mut().status = Some(status);
        self
    }
    pub(crate) fn with_message(mut self, message: impl Into<String>) -> Self {
        let message = message.into();
        self.inner_mut().message = (!message.is_empty()).then_some(message);
        self
    }
    pub(crate) fn with_code(mut self, code: Option<String>) -> Self {
        self.inner_mut().code = code;
        self
    }
    pub(crate) fn with_request_ref(mut self, request_ref: Option<String>) -> Self {
        self.inner_mut().request_ref = request_ref;
        self
    }
    pub(crate) fn with_field_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.inner_mut().field_errors = errors;
        self
    }
    pub(crate) fn with_variables(mut self, variables: Vec<&'static str>) -> Self {
        self.inner_mut().variables = variables;
        self
    }
    pub(crate) fn with_temporary_token(mut self, token: SecretString) -> Self {
        self.inner_mut().temporary_token = Some(token);
        self
    }
    /// The `Retry-After` of the response; [`Error::retry_after`] tells it for a 503 only.
    pub(crate) fn with_unavailable_for(mut self, wait: Option<Duration>) -> Self {
        self.inner_mut().unavailable_for = wait;
        self
    }
    pub(crate) fn with_challenge_session(mut self, session: SecretString) -> Self {
        self.inner_mut().challenge_session = Some(session);
        self
    }
    pub(crate) fn with_source(
        mut self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        self.inner_mut().source = Some(Arc::new(source));
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }
    /// The service that answered (or was being called).
    pub fn service(&self) -> Option<Service> {
        self.inner.service
    }
    /// The HTTP status of the response, when there was one.
    pub fn status(&self) -> Option<u16> {
        self.inner.status
    }
    /// The provider's message (or, for an undocumented response, a short excerpt of its body).
    pub fn message(&self) -> Option<&str> {
        self.inner.message.as_deref()
    }
    /// The provider's machine-readable error code (weavr `errorCode`, fib status name).
    pub fn code(&self) -> Option<&str> {
        self.inner.code.as_deref()
    }
    /// weavr's `request-ref` response header: what vendor support asks for.
    pub fn request_ref(&self) -> Option<&str> {
        self.inner.request_ref.as_deref()
    }
    /// The invalid fields the service listed.
    pub fn field_errors(&self) -> &[FieldError] {
        &self.inner.field_errors
    }
    /// The environment variables a configuration error from `from_env` is about (every one
    /// that is required and not set, or set and wrong; or the credentials of two kinds that are
    /// both set): their names, never their values. Empty for any other error.
    pub fn variables(&self) -> &[&'static str] {
        &self.inner.variables
    }
    /// How long to wait before trying again, where the service said: for rate limits and
    /// lock-outs, and for a 503 with `Retry-After` (capped at 24 hours).
    pub fn retry_after(&self) -> Option<Duration> {
        match self.inner.kind {
            ErrorKind::RateLimited { retry_after } | ErrorKind::AccountLocked { retry_after } => {
                retry_after
            }
            ErrorKind::ServiceUnavailable => self.inner.unavailable_for,
            _ => None,
        }
    }
    /// weavr: the temporary token of a password-expired login, good only for updating it.
    pub fn temporary_token(&self) -> Option<&SecretString> {
        self.inner.temporary_token.as_ref()
    }
    /// accounts: the session of a `NEW_PASSWORD_REQUIRED` challenge.
    pub fn challenge_session(&self) -> Option<&SecretString> {
        self.inner.challenge_session.as_ref()
    }

    /// Whether the credentials were refused (including s7risk's expired access window): a
    /// retry with the same credentials cannot succeed.
    pub fn is_credentials_refused(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::InvalidCredentials | ErrorKind::AccessWindowExpired
        )
    }
    /// Whether waiting may help: rate limits, lock-outs, timeouts, transport and 5xx errors.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::RateLimited { .. }
                | ErrorKind::AccountLocked { .. }
                | ErrorKind::ServiceUnavailable
                | ErrorKind::ServerError
                | ErrorKind::Timeout
                | ErrorKind::Transport
        )
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        if let Some(service) = i.service {
            write!(f, "{service}: ")?;
        }
        write!(f, "{}", i.kind)?;
        if let Some(retry) = self.retry_after() {
            write!(f, " (retry after {}s)", retry.as_secs())?;
        }
        if let Some(status) = i.status {
            write!(f, " (HTTP {status})")?;
        }
        if let Some(code) = &i.code {
            write!(f, " [{code}]")?;
        }
        if let Some(message) = &i.message {
            write!(f, ": {message}")?;
        }
        for field in &i.field_errors {
            write!(f, "; {} {}", field.field, field.error)?;
        }
        if let Some(request_ref) = &i.request_ref {
            write!(f, " (request-ref {request_ref})")?;
        }
        if let Some(source) = &i.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}
