//! Spans and metrics of the requests a session sends on its own behalf (logins, refreshes,
//! exchanges, step-ups, sign-outs): one `tracing` span per attempt, named and attributed by
//! OpenTelemetry's HTTP client conventions, and (feature `metrics`) a counter and a duration
//! histogram per request through the `metrics` facade.
//!
//! Nothing here runs for a cached token: only a request that goes out is traced. A span holds
//! the method, host, port, scheme and path (never the query, a header or a body) and what came
//! back (the status, or the kind of transport failure).

use tracing::Span;

use crate::error::Service;

/// What a session's own request is for: `tokensmith.grant` on its span and `grant` on its
/// metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Grant {
    /// A login with the stored credentials (every request of one: a token, then a sign-in).
    Login,
    /// A renewal with a refresh token.
    Refresh,
    /// weavr: the user's identities, to find the one to exchange for.
    Identities,
    /// weavr: a sign-in token exchanged for an identity's access token.
    Exchange,
    /// weavr: a step-up challenge started (push or SMS).
    StepUpChallenge,
    /// weavr: a step-up's one-time password sent.
    StepUpVerify,
    /// A sign-out, logout or revocation.
    Logout,
    /// accounts: the new password a login challenge asked for.
    NewPassword,
    /// A password changed with a token (weavr's expired password, accounts' change).
    PasswordChange,
    /// accounts: a confirmation code asked for, to reset a forgotten password.
    PasswordReset,
    /// accounts: a forgotten password reset with its confirmation code.
    PasswordResetConfirm,
}

impl Grant {
    /// The value of `tokensmith.grant` and of the `grant` label.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Refresh => "refresh",
            Self::Identities => "identities",
            Self::Exchange => "exchange",
            Self::StepUpChallenge => "step_up_challenge",
            Self::StepUpVerify => "step_up_verify",
            Self::Logout => "logout",
            Self::NewPassword => "new_password",
            Self::PasswordChange => "password_change",
            Self::PasswordReset => "password_reset",
            Self::PasswordResetConfirm => "password_reset_confirm",
        }
    }
}

/// Which request of which service: what a traced context's requests are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tag {
    pub(crate) service: Service,
    pub(crate) grant: Grant,
}

/// A span by OpenTelemetry's HTTP client conventions. The name is the method (`tracing` wants
/// a literal, hence one call per method); an unknown method is named `HTTP` with
/// `http.request.method = "_OTHER"`, as the conventions say.
macro_rules! client_span {
    ($name:literal, $method:expr, $tag:expr, $url:expr) => {
        tracing::info_span!(
            $name,
            otel.name = $name,
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            http.request.method = $method,
            server.address = $url.host_str().unwrap_or_default(),
            server.port = $url.port_or_known_default(),
            url.scheme = $url.scheme(),
            url.path = $url.path(),
            http.request.resend_count = tracing::field::Empty,
            http.response.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
            tokensmith.service = $tag.service.name(),
            tokensmith.grant = $tag.grant.name(),
        )
    };
}

/// The span of attempt `attempt` (1 for the first) at `request`, or a disabled one when the
/// context is not a session's own (`tag` is `None`).
pub(crate) fn attempt_span(tag: Option<Tag>, request: &reqwest::Request, attempt: u32) -> Span {
    let Some(tag) = tag else {
        return Span::none();
    };
    let url = request.url();
    let span = match request.method().as_str() {
        "GET" => client_span!("GET", "GET", tag, url),
        "POST" => client_span!("POST", "POST", tag, url),
        "PUT" => client_span!("PUT", "PUT", tag, url),
        "PATCH" => client_span!("PATCH", "PATCH", tag, url),
        "DELETE" => client_span!("DELETE", "DELETE", tag, url),
        "HEAD" => client_span!("HEAD", "HEAD", tag, url),
        "OPTIONS" => client_span!("OPTIONS", "OPTIONS", tag, url),
        _ => client_span!("HTTP", "_OTHER", tag, url),
    };
    if attempt > 1 {
        span.record("http.request.resend_count", attempt - 1);
    }
    span
}

/// Records on `span` what the attempt came to: the status (and, from 400 up, the status as
/// `error.type`), or the kind of transport failure.
pub(crate) fn answered(span: &Span, result: &reqwest::Result<reqwest::Response>) {
    match result {
        Ok(response) => {
            let status = response.status();
            span.record("http.response.status_code", status.as_u16());
            if status.as_u16() >= 400 {
                span.record("error.type", status.as_str());
                span.record("otel.status_code", "ERROR");
            }
        }
        Err(error) => failed(span, error),
    }
}

/// Records a transport failure on `span`, by kind only.
pub(crate) fn failed(span: &Span, error: &reqwest::Error) {
    span.record("error.type", failure_kind(error));
    span.record("otel.status_code", "ERROR");
}

/// A transport failure's kind, as spans and logs name it (OpenTelemetry's `error.type`): never
/// its text, which may quote the URL, query included.
pub(crate) fn failure_kind(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else if error.is_body() || error.is_decode() {
        "body"
    } else {
        "_OTHER"
    }
}

/// Times one of a session's own requests (all its attempts) and counts it when it ends
/// (feature `metrics`; without it, nothing is read or kept).
pub(crate) struct Metered {
    #[cfg(feature = "metrics")]
    started: Option<(Tag, std::time::Instant)>,
}

impl Metered {
    /// Starts timing a request tagged `tag` (untagged ones are not counted) on `clock`.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn start(tag: Option<Tag>, clock: &dyn crate::clock::Clock) -> Self {
        Self {
            #[cfg(feature = "metrics")]
            started: tag.map(|tag| (tag, clock.now())),
        }
    }

    /// Counts the request with its outcome, and records its duration.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn finish(
        self,
        clock: &dyn crate::clock::Clock,
        error: Option<crate::error::ErrorKind>,
    ) {
        #[cfg(feature = "metrics")]
        if let Some((tag, started)) = self.started {
            let outcome = error.map_or("success", outcome);
            let seconds = clock.now().saturating_duration_since(started).as_secs_f64();
            metrics::counter!(
                REQUESTS,
                "service" => tag.service.name(),
                "grant" => tag.grant.name(),
                "outcome" => outcome,
            )
            .increment(1);
            metrics::histogram!(
                DURATION,
                "service" => tag.service.name(),
                "grant" => tag.grant.name(),
            )
            .record(seconds);
        }
    }
}

/// The counter of the session's own requests, by `service`, `grant` and `outcome`.
#[cfg(feature = "metrics")]
const REQUESTS: &str = "tokensmith_token_requests_total";
/// The histogram of their duration in seconds, retries and waits included, by `service` and
/// `grant`.
#[cfg(feature = "metrics")]
const DURATION: &str = "tokensmith_token_request_duration_seconds";

/// The `outcome` label of a failed request: its error kind, in snake case.
#[cfg(feature = "metrics")]
fn outcome(kind: crate::error::ErrorKind) -> &'static str {
    use crate::error::ErrorKind as K;
    match kind {
        K::InvalidCredentials => "invalid_credentials",
        K::AccessWindowExpired => "access_window_expired",
        K::AccountLocked { .. } => "account_locked",
        K::RateLimited { .. } => "rate_limited",
        K::PasswordExpired => "password_expired",
        K::NewPasswordRequired => "new_password_required",
        K::StepUpRequired => "step_up_required",
        K::StepUpTimeout => "step_up_timeout",
        K::AccessTokenRequired => "access_token_required",
        K::TokenRejected => "token_rejected",
        K::InvalidRequest => "invalid_request",
        K::Forbidden => "forbidden",
        K::NotFound => "not_found",
        K::Conflict => "conflict",
        K::LicenceInvalid => "licence_invalid",
        K::ApiVersionDisabled => "api_version_disabled",
        K::RefreshLimitExceeded => "refresh_limit_exceeded",
        K::ServiceUnavailable => "service_unavailable",
        K::ServerError => "server_error",
        K::UnsupportedChallenge => "unsupported_challenge",
        K::UnexpectedResponse => "unexpected_response",
        K::Decode => "decode",
        K::Timeout => "timeout",
        K::Transport => "transport",
        K::Configuration => "configuration",
    }
}

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use super::outcome;
    use crate::error::ErrorKind;

    #[test]
    fn an_outcome_is_the_error_kind_in_snake_case() {
        let kinds = [
            ErrorKind::InvalidCredentials,
            ErrorKind::RateLimited { retry_after: None },
            ErrorKind::AccountLocked { retry_after: None },
            ErrorKind::Transport,
            ErrorKind::ServiceUnavailable,
        ];
        let outcomes: Vec<_> = kinds.into_iter().map(outcome).collect();
        assert_eq!(
            outcomes,
            [
                "invalid_credentials",
                "rate_limited",
                "account_locked",
                "transport",
                "service_unavailable"
            ]
        );
    }
}
