//! Turning what a generated client returned into a [`crate::Error`].
//!
//! progenitor gives a typed body for documented errors, raw bytes (without the status) for a
//! documented status whose body did not parse, and the raw response for undocumented statuses.
//! The [`Probe`] installed in the request's [`super::send::Context`] records the status
//! and headers of every exchange, so none of that is lost.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

use crate::error::{Error, ErrorKind, FieldError, Service};
use crate::secret::SecretString;

/// At most this much of an error message is kept.
const EXCERPT_CHARS: usize = 200;

/// The status and headers of the last response a client received.
#[derive(Debug, Default)]
pub(crate) struct Probe {
    last: Mutex<Option<(u16, HeaderMap)>>,
    oversized: Mutex<Option<usize>>,
    error_body: Mutex<Option<bytes::Bytes>>,
}

impl Probe {
    pub(crate) fn record(&self, status: u16, headers: &HeaderMap) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((status, headers.clone()));
        *self.oversized.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *self.error_body.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The body of the last response, an error, as read under the cap. Kept because a
    /// documented error schema may not name the member the service put its message in.
    pub(crate) fn record_error_body(&self, body: bytes::Bytes) {
        *self.error_body.lock().unwrap_or_else(|p| p.into_inner()) = Some(body);
    }

    fn error_body(&self) -> Option<bytes::Bytes> {
        self.error_body
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The last response's body was longer than `cap` and was dropped unread.
    pub(crate) fn record_oversized(&self, cap: usize) {
        *self.oversized.lock().unwrap_or_else(|p| p.into_inner()) = Some(cap);
    }

    fn oversized(&self) -> Option<usize> {
        *self.oversized.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn last(&self) -> Option<(u16, HeaderMap)> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// What a service's documented error body tells, whatever its schema.
pub(crate) trait ErrorBody {
    /// The human-readable message.
    fn message(&self) -> Option<String>;
    /// A machine-readable code (weavr `errorCode`, fib status name).
    fn code(&self) -> Option<String> {
        None
    }
    /// Invalid fields, where the service lists them.
    fn field_errors(&self) -> Vec<FieldError> {
        Vec::new()
    }
    /// weavr's password-expired temporary token.
    fn temporary_token(&self) -> Option<SecretString> {
        None
    }
}

/// A failed exchange, reduced to what classification needs.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: u16,
    pub(crate) message: Option<String>,
    pub(crate) code: Option<String>,
    pub(crate) headers: HeaderMap,
    /// Whether the operation documents this status (the body had the documented shape).
    pub(crate) documented: bool,
    /// The wall clock when the request was sent, for HTTP-date and epoch retry delays.
    pub(crate) now: SystemTime,
}

impl Failure {
    /// A failure known only by its status and headers (no body was read as a message).
    pub(crate) fn bare(
        status: u16,
        headers: &HeaderMap,
        documented: bool,
        now: SystemTime,
    ) -> Self {
        Self {
            status,
            message: None,
            code: None,
            headers: headers.clone(),
            documented,
            now,
        }
    }

    /// Whether the message contains `needle`, ignoring case.
    pub(crate) fn message_has(&self, needle: &str) -> bool {
        self.message
            .as_deref()
            .is_some_and(|m| m.to_lowercase().contains(&needle.to_lowercase()))
    }

    /// The delay the service asks for: `Retry-After` (seconds or HTTP date),
    /// `x-ratelimit-reset` (seconds, or an epoch timestamp), or "try again in N minutes";
    /// never more than [`MAX_RETRY_AFTER`].
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        retry_after_from_headers(&self.headers, self.now)
            .or_else(|| self.message.as_deref().and_then(parse_try_again_in))
    }

    /// The usual meaning of a status, for statuses a service gives no special meaning.
    pub(crate) fn default_kind(&self) -> ErrorKind {
        match self.status {
            400 | 422 => ErrorKind::InvalidRequest,
            401 => ErrorKind::TokenRejected,
            403 => ErrorKind::Forbidden,
            404 => ErrorKind::NotFound,
            409 => ErrorKind::Conflict,
            423 => ErrorKind::AccountLocked {
                retry_after: self.retry_after(),
            },
            429 => ErrorKind::RateLimited {
                retry_after: self.retry_after(),
            },
            503 => ErrorKind::ServiceUnavailable,
            500..=599 => ErrorKind::ServerError,
            _ => ErrorKind::UnexpectedResponse,
        }
    }
}

/// The longest wait taken from what a service asks for (`Retry-After`, `x-ratelimit-reset`,
/// "try again in N minutes"): a longer one is cut to this. It bounds how long a session
/// refuses to log in again after a rate limit or lock-out, and no `Instant` arithmetic on it
/// can overflow.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// The delay a response's headers ask for (`Retry-After`, then `x-ratelimit-reset`), never
/// more than [`MAX_RETRY_AFTER`].
pub(crate) fn retry_after_from_headers(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    header_str(headers, "retry-after")
        .and_then(|v| parse_retry_after(v, now))
        .or_else(|| header_str(headers, "x-ratelimit-reset").and_then(|v| parse_reset(v, now)))
        .map(|wait| wait.min(MAX_RETRY_AFTER))
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// A count written in decimal digits, [`u64::MAX`] when it has more than a `u64` holds.
fn count(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse().unwrap_or(u64::MAX))
}

/// `Retry-After`: a count of seconds (RFC 9110 `delay-seconds`) or an HTTP date.
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    if let Some(secs) = count(value) {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `x-ratelimit-reset` is documented only by name: small values are seconds to wait, large
/// ones an epoch timestamp in seconds or milliseconds.
fn parse_reset(value: &str, now: SystemTime) -> Option<Duration> {
    crate::expiry::seconds_or_epoch(value.parse::<f64>().ok()?, now)
}

/// "Too many authentication attempts. Try again in 5 minutes" → 300 s; never more than
/// [`MAX_RETRY_AFTER`].
pub(crate) fn parse_try_again_in(message: &str) -> Option<Duration> {
    let lower = message.to_lowercase();
    let rest = &lower[lower.find("try again in ")? + "try again in ".len()..];
    let mut words = rest.split_whitespace();
    let n = count(words.next()?)?;
    let unit = words.next()?.trim_end_matches(|c: char| !c.is_alphabetic());
    let secs = match unit {
        "second" | "seconds" | "sec" | "secs" | "s" => n,
        "minute" | "minutes" | "min" | "mins" => n.saturating_mul(60),
        "hour" | "hours" => n.saturating_mul(3600),
        _ => return None,
    };
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// The members a JSON error body most often carries its message in, in order of preference
/// (`Message` is ASP.NET's, Password Safe's). The one list for every service.
const MESSAGE_KEYS: [&str; 5] = ["message", "error_description", "error", "Message", "detail"];

/// The message of a JSON error body: the body itself when it is a non-empty string, else an
/// object's first of [`MESSAGE_KEYS`] that holds a string; an excerpt, never more. Nothing
/// else of the body is taken: another member may be a token (weavr's 409 `token`).
pub(crate) fn message_from_json(json: &serde_json::Value) -> Option<String> {
    if let Some(text) = json.as_str() {
        return (!text.trim().is_empty()).then(|| excerpt(text));
    }
    MESSAGE_KEYS
        .iter()
        .find_map(|key| json.get(key).and_then(|v| v.as_str()))
        .map(excerpt)
}

/// A message from a body whose shape is not the documented one: [`message_from_json`] for a
/// body that parses as JSON (and nothing else of it), or the start of a body that does not.
pub(crate) fn message_from_bytes(bytes: &[u8]) -> Option<String> {
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(bytes) {
        return message_from_json(&json);
    }
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    (!text.is_empty()).then(|| excerpt(text))
}

fn excerpt(text: &str) -> String {
    let mut out: String = text.chars().take(EXCERPT_CHARS).collect();
    if text.chars().nth(EXCERPT_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// A JSON decoding failure, described without the input: serde_json's own messages can quote
/// the value that failed to decode, which may be a token.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{category} at line {line} column {column}")]
pub(crate) struct DecodeError {
    category: &'static str,
    line: usize,
    column: usize,
}

impl From<&serde_json::Error> for DecodeError {
    fn from(e: &serde_json::Error) -> Self {
        let category = match e.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "invalid JSON",
            serde_json::error::Category::Data => "JSON of the wrong shape",
            serde_json::error::Category::Eof => "truncated JSON",
        };
        Self {
            category,
            line: e.line(),
            column: e.column(),
        }
    }
}

/// How a service reads a failure into a kind.
pub(crate) type Classify<'a> = &'a (dyn Fn(&Failure) -> ErrorKind + Sync);

/// What a documented error body says, read through its [`ErrorBody`].
#[derive(Default)]
struct BodySays {
    message: Option<String>,
    code: Option<String>,
    fields: Vec<FieldError>,
    temporary_token: Option<SecretString>,
}

/// Maps anything a generated client returned as an error into a [`crate::Error`].
///
/// Only the reading of a documented body depends on its type: the rest is [`map_untyped`],
/// compiled once rather than once per error type of every service.
pub(crate) fn map_api_error<'a, E: ErrorBody>(
    service: Service,
    err: progenitor_client::Error<E>,
    probe: &'a Probe,
    now: SystemTime,
    classify: Classify<'a>,
) -> impl std::future::Future<Output = Error> + Send + 'a {
    let says = match &err {
        progenitor_client::Error::ErrorResponse(response) => {
            let body: &E = response;
            BodySays {
                message: body.message(),
                code: body.code(),
                fields: body.field_errors(),
                temporary_token: body.temporary_token(),
            }
        }
        // Read only for a documented error response.
        _ => BodySays::default(),
    };
    map_untyped(service, err.into_untyped(), says, probe, now, classify)
}

/// [`map_api_error`], with what a documented body said already read from it.
async fn map_untyped(
    service: Service,
    err: progenitor_client::Error,
    says: BodySays,
    probe: &Probe,
    now: SystemTime,
    classify: Classify<'_>,
) -> Error {
    use progenitor_client::Error as G;
    let base = |kind: ErrorKind| Error::new(kind).with_service(service);
    if let (Some(cap), Some((status, headers))) = (probe.oversized(), probe.last()) {
        let failure = Failure::bare(status, &headers, false, now);
        let kind = if (200..300).contains(&status) {
            ErrorKind::Decode
        } else {
            failure.default_kind()
        };
        let kind = match kind {
            ErrorKind::RateLimited { .. }
            | ErrorKind::ServiceUnavailable
            | ErrorKind::ServerError
            | ErrorKind::Decode => kind,
            _ => ErrorKind::UnexpectedResponse,
        };
        return base(kind)
            .with_status(status)
            .with_request_ref(request_ref(service, &headers))
            .with_unavailable_for(failure.retry_after())
            .with_message(format!(
                "the response body is larger than the {cap}-byte limit"
            ));
    }
    let (failure, fields, temporary_token) = match err {
        G::ErrorResponse(response) => {
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            // The documented schema may not name the member this body used (s7risk does not
            // document its error body at all): look for the usual ones in the raw body.
            let message = says.message.or_else(|| {
                let raw = probe.error_body()?;
                message_from_json(&serde_json::from_slice(&raw).ok()?)
            });
            let failure = Failure {
                status,
                message,
                code: says.code,
                headers,
                documented: true,
                now,
            };
            (failure, says.fields, says.temporary_token)
        }
        G::InvalidResponsePayload(bytes, json_err) => {
            let Some((status, headers)) = probe.last() else {
                return base(ErrorKind::Decode).with_source(DecodeError::from(&json_err));
            };
            if (200..300).contains(&status) {
                // A success body of the wrong shape: its text may hold a token, so keep none.
                return base(ErrorKind::Decode)
                    .with_status(status)
                    .with_request_ref(request_ref(service, &headers))
                    .with_source(DecodeError::from(&json_err));
            }
            let failure = Failure {
                status,
                message: message_from_bytes(&bytes),
                code: None,
                headers,
                documented: true,
                now,
            };
            (failure, Vec::new(), None)
        }
        G::UnexpectedResponse(response) => {
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let message = if (200..300).contains(&status) {
                None
            } else {
                // A body over the cap (or broken off) is not quoted at all.
                let body =
                    super::body::read_at_most(response, super::DEFAULT_MAX_RESPONSE_BYTES).await;
                body.ok()
                    .flatten()
                    .and_then(|body| message_from_bytes(&body))
            };
            let failure = Failure {
                status,
                message,
                code: None,
                headers,
                documented: false,
                now,
            };
            (failure, Vec::new(), None)
        }
        G::CommunicationError(e) | G::ResponseBodyError(e) | G::InvalidUpgrade(e) => {
            return Error::transport(e).with_service(service);
        }
        G::InvalidRequest(message) => {
            return base(ErrorKind::Configuration).with_message(message);
        }
        G::Custom(message) => return unpark(&message),
    };
    let kind = if failure.documented || failure.status == 401 {
        classify(&failure)
    } else {
        match failure.default_kind() {
            ErrorKind::InvalidRequest
            | ErrorKind::Forbidden
            | ErrorKind::NotFound
            | ErrorKind::Conflict
            | ErrorKind::TokenRejected => ErrorKind::UnexpectedResponse,
            other => other,
        }
    };
    let mut error = base(kind)
        .with_status(failure.status)
        .with_code(failure.code.clone())
        .with_request_ref(request_ref(service, &failure.headers))
        .with_field_errors(fields)
        .with_unavailable_for(failure.retry_after());
    if let Some(message) = failure.message {
        error = error.with_message(message);
    }
    if let Some(token) = temporary_token {
        error = error.with_temporary_token(token);
    }
    error
}

/// An error from a call through a session's `api()` client, so that `?` works in a function
/// returning [`crate::Error`]. What it keeps: the HTTP status, the kind the status usually
/// means (with the retry delay of a 429 or 423), a decoding failure's position, a transport
/// failure's cause. What it never keeps: the body (parsed or not) or any header's text, which
/// may carry a token. The service is not known here; match on the progenitor error yourself
/// for the provider's documented error body.
impl<E> From<progenitor_client::Error<E>> for Error {
    fn from(err: progenitor_client::Error<E>) -> Self {
        use progenitor_client::Error as G;
        let by_status = |status: reqwest::StatusCode, headers: &HeaderMap, documented: bool| {
            let status = status.as_u16();
            // A conversion has no session, so no session clock: an HTTP-date `Retry-After` is
            // read against the system's.
            let failure = Failure::bare(status, headers, documented, SystemTime::now());
            let kind = if (200..300).contains(&status) {
                ErrorKind::UnexpectedResponse
            } else {
                failure.default_kind()
            };
            Error::new(kind)
                .with_status(status)
                .with_unavailable_for(failure.retry_after())
        };
        match err {
            G::ErrorResponse(response) => by_status(response.status(), response.headers(), true),
            G::UnexpectedResponse(response) => {
                by_status(response.status(), response.headers(), false)
            }
            G::InvalidResponsePayload(_, json_err) => {
                Error::new(ErrorKind::Decode).with_source(DecodeError::from(&json_err))
            }
            G::CommunicationError(e) | G::ResponseBodyError(e) | G::InvalidUpgrade(e) => {
                Error::transport(e)
            }
            G::InvalidRequest(message) => {
                Error::new(ErrorKind::Configuration).with_message(message)
            }
            // The session's own failure to authorize the request: the error itself.
            G::Custom(message) => unpark(&message),
        }
    }
}

/// Errors of the sessions' hooks on their way through a generated client, which keeps only a
/// string of a hook's error (`progenitor_client::Error::Custom`): parked here under a number that
/// the string carries, and taken back by the conversion into [`Error`], so that an `api()` call
/// whose login was refused fails with the login's own error (`InvalidCredentials`, its status,
/// its hold) rather than a transport failure. Bounded: an error nobody converts (the caller
/// matched on progenitor's error itself) is dropped once newer ones push it out.
struct Parked {
    next: u64,
    errors: std::collections::VecDeque<(u64, Error)>,
}

/// How many unconverted errors are kept.
const PARKED: usize = 256;

static PARKING: Mutex<Parked> = Mutex::new(Parked {
    next: 0,
    errors: std::collections::VecDeque::new(),
});

/// What marks a parked error's number in its string.
const PARKED_TAG: &str = " [tokensmith error #";

/// `error` as the string a hook hands progenitor: its message (which never holds a secret),
/// then the number it is parked under.
pub(crate) fn park(error: Error) -> String {
    let mut parking = PARKING.lock().unwrap_or_else(|p| p.into_inner());
    let number = parking.next;
    parking.next = parking.next.wrapping_add(1);
    let text = format!("{error}{PARKED_TAG}{number}]");
    if parking.errors.len() == PARKED {
        parking.errors.pop_front();
    }
    parking.errors.push_back((number, error));
    text
}

/// The error parked under the number `text` ends with; a transport error with `text` as its
/// message when it is not one of ours (or was pushed out).
fn unpark(text: &str) -> Error {
    let number = text
        .strip_suffix(']')
        .and_then(|rest| rest.rsplit_once(PARKED_TAG))
        .and_then(|(_, number)| number.parse::<u64>().ok());
    let mut parking = PARKING.lock().unwrap_or_else(|p| p.into_inner());
    let found = number.and_then(|number| {
        let at = parking.errors.iter().position(|(n, _)| *n == number)?;
        parking.errors.remove(at).map(|(_, error)| error)
    });
    found.unwrap_or_else(|| Error::new(ErrorKind::Transport).with_message(text))
}

/// weavr's `request-ref` header, kept on every error for vendor support.
pub(crate) fn request_ref(service: Service, headers: &HeaderMap) -> Option<String> {
    (service == Service::Weavr).then(|| header_str(headers, "request-ref").map(str::to_owned))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_are_read_from_every_documented_place() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Tue, 14 Nov 2023 22:14:20 GMT", now),
            Some(Duration::from_secs(1_700_000_060 - 1_700_000_000))
        );
        assert_eq!(parse_reset("30", now), Some(Duration::from_secs(30)));
        assert_eq!(
            parse_reset("1700000090", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_reset("1700000045000", now),
            Some(Duration::from_secs(45))
        );
        assert_eq!(
            parse_try_again_in("Too many authentication attempts. Try again in 5 minutes"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(parse_try_again_in("Try again later"), None);
    }

    #[test]
    fn retry_delays_are_capped_at_a_day_and_never_panic() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let headers = |name: &'static str, value: &str| {
            let mut h = HeaderMap::new();
            h.insert(name, value.parse().unwrap());
            h
        };
        let day = Some(MAX_RETRY_AFTER);
        for (name, value, expected) in [
            ("retry-after", "18446744073709551615", day),
            ("retry-after", "99999999999999999999999999", day),
            ("retry-after", "86401", day),
            ("retry-after", "86399", Some(Duration::from_secs(86_399))),
            ("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT", day),
            ("retry-after", "Mon, 01 Jan 1900 00:00:00 GMT", None),
            (
                "retry-after",
                "Thu, 01 Jan 1970 00:00:00 GMT",
                Some(Duration::ZERO),
            ),
            ("retry-after", "-5", None),
            ("retry-after", "1.5", None),
            ("retry-after", "soon", None),
            ("x-ratelimit-reset", "1e25", day),
            ("x-ratelimit-reset", "1e300", day),
            ("x-ratelimit-reset", "18446744073709551615", day),
            ("x-ratelimit-reset", "253402300799", day),
            (
                "x-ratelimit-reset",
                "1.5",
                Some(Duration::from_millis(1500)),
            ),
            ("x-ratelimit-reset", "-1", None),
            ("x-ratelimit-reset", "-2208988800", None),
            ("x-ratelimit-reset", "NaN", None),
            ("x-ratelimit-reset", "inf", None),
            ("x-ratelimit-reset", "soon", None),
        ] {
            assert_eq!(
                retry_after_from_headers(&headers(name, value), now),
                expected,
                "{name}: {value}"
            );
        }
        assert_eq!(
            parse_try_again_in("Try again in 18446744073709551615 hours"),
            day
        );
        assert_eq!(
            parse_try_again_in("Try again in 999999999999999999999999 minutes"),
            day
        );
        assert_eq!(parse_try_again_in("Try again in -5 minutes"), None);
        assert_eq!(parse_try_again_in("Try again in 1e9 minutes"), None);
    }

    #[test]
    fn messages_come_from_json_or_text() {
        assert_eq!(
            message_from_bytes(br#"{"message":"nope"}"#).as_deref(),
            Some("nope")
        );
        assert_eq!(
            message_from_bytes(br#""plain json string""#).as_deref(),
            Some("plain json string")
        );
        assert_eq!(
            message_from_bytes(b"  Unauthorized \n").as_deref(),
            Some("Unauthorized")
        );
        assert_eq!(message_from_bytes(b""), None);
        let long = "x".repeat(500);
        assert_eq!(
            message_from_bytes(long.as_bytes()).unwrap().chars().count(),
            EXCERPT_CHARS + 1
        );
    }

    #[test]
    fn decode_errors_never_quote_the_input() {
        let err = serde_json::from_str::<u64>(r#""eyJsecret-token""#).unwrap_err();
        assert!(
            err.to_string().contains("eyJsecret-token"),
            "serde_json would have leaked it"
        );
        let ours = DecodeError::from(&err).to_string();
        assert!(!ours.contains("eyJsecret"), "{ours}");
    }
}
