//! How weavr's failures read: the one rule for an error body's code, and what each status
//! means for a sign-in, an identity exchange and every other call.

use super::{types, LOCKOUT};
use crate::error::{ErrorKind, FieldError};
use crate::secret::SecretString;
use crate::transport::errors::{ErrorBody, Failure};

impl ErrorBody for types::ErrorResponse {
    fn message(&self) -> Option<String> {
        self.message.clone()
    }

    fn code(&self) -> Option<String> {
        error_code(
            self.error_code.as_deref(),
            self.code.as_deref(),
            self.message.as_deref(),
        )
    }

    fn field_errors(&self) -> Vec<FieldError> {
        self.syntax_errors
            .iter()
            .flat_map(|s| &s.invalid_fields)
            .map(|f| {
                FieldError::new(
                    f.field_name.clone().unwrap_or_default(),
                    f.error.map(|e| e.to_string()).unwrap_or_default(),
                    f.params.clone(),
                )
            })
            .collect()
    }

    fn temporary_token(&self) -> Option<SecretString> {
        self.token.clone()
    }
}

/// The machine-readable code of a weavr error body, from whichever member carries it: the
/// session reads every body through this one rule, whether it classifies a failure
/// ([`ErrorBody::code`]) or cures a 403 (`step_up`).
///
/// `errorCode` first: the vendor's OpenAPI document puts `STEP_UP_REQUIRED`,
/// `ACCESS_TOKEN_REQUIRED` and every conflict there. Then `code`, the member of its generic
/// `Error` schema. Then `message`, when it is a code rather than a sentence (one word of
/// capitals, digits and underscores): Weavr's own web app detects a step-up with
/// `error.response.data.message === 'STEP_UP_REQUIRED'` (weavr-io/onvirtual.cards,
/// `plugins/axios.ts`). Which member a given answer uses is partly assumed: see
/// `openapi/weavr.yaml`, Assumptions (d).
pub(crate) fn error_code(
    error_code: Option<&str>,
    code: Option<&str>,
    message: Option<&str>,
) -> Option<String> {
    let is_code = |text: &&str| {
        text.len() <= 64
            && text.starts_with(|c: char| c.is_ascii_uppercase())
            && text
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    };
    error_code
        .or(code)
        .or_else(|| message.filter(is_code))
        .map(str::to_owned)
}

/// Whether a login refusal's code says the account is locked. No source names such a code
/// (the vendor documents the 423 status): any code with `LOCKED` as one of its words
/// (`ACCOUNT_LOCKED`, `USER_LOCKED`) is read as one, and `BLOCKED` is not.
fn names_lock(code: &str) -> bool {
    code.split('_').any(|word| word == "LOCKED")
}

/// What a 403 means, by its code.
fn forbidden(failure: &Failure) -> ErrorKind {
    match failure.code.as_deref() {
        Some("STEP_UP_REQUIRED") => ErrorKind::StepUpRequired,
        Some("ACCESS_TOKEN_REQUIRED") => ErrorKind::AccessTokenRequired,
        _ => ErrorKind::Forbidden,
    }
}

fn locked(failure: &Failure) -> ErrorKind {
    ErrorKind::AccountLocked {
        retry_after: failure.retry_after().or(Some(LOCKOUT)),
    }
}

pub(super) fn classify_login(failure: &Failure) -> ErrorKind {
    // The status is the documented rule; a code that names the condition is read as well,
    // whatever status carries it (an assumption: see the document's Assumptions (d)).
    match failure.code.as_deref() {
        Some("PASSWORD_EXPIRED") => return ErrorKind::PasswordExpired,
        Some(code) if names_lock(code) => return locked(failure),
        _ => {}
    }
    match failure.status {
        // 403 on sign-in: "the authentication credentials are not found or are incorrect"
        // (documented without a body); 401: "your credentials are invalid".
        401 | 403 => ErrorKind::InvalidCredentials,
        409 => ErrorKind::PasswordExpired,
        410 => ErrorKind::TokenRejected,
        423 => locked(failure),
        _ => failure.default_kind(),
    }
}

/// The identity exchange (`/access_token`) says nothing of the password, which the sign-in
/// before it just accepted: a 401 refuses the sign-in token (a fresh sign-in is the cure), a
/// 403 ("the auth token is not specified or is incorrect", or not allowed to act for that
/// identity) forbids the exchange. Neither may block the credentials.
pub(super) fn classify_exchange(failure: &Failure) -> ErrorKind {
    match failure.status {
        401 => ErrorKind::TokenRejected,
        _ => classify_api(failure),
    }
}

pub(crate) fn classify_api(failure: &Failure) -> ErrorKind {
    match failure.status {
        403 => forbidden(failure),
        // TOKEN_EXPIRED
        410 => ErrorKind::TokenRejected,
        423 => locked(failure),
        _ => failure.default_kind(),
    }
}
