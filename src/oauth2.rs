//! What OAuth 2.0 token endpoints (RFC 6749) have in common, for every service that has one
//! (Password Safe's `Auth/connect/token` today): the client-credentials form, how a token
//! endpoint's refusal reads, and a token answer's lifetime.

use std::time::{Duration, SystemTime};

use crate::clock::Seconds;
use crate::error::ErrorKind;
use crate::expiry;
use crate::secret::SecretString;
use crate::transport::errors::Failure;

/// The client-credentials token request (RFC 6749 section 4.4.2), serialized as a form in the
/// RFC's order: `grant_type=client_credentials&client_id=…&client_secret=…` (a type generated
/// from an OpenAPI schema would put the fields in alphabetical order).
// Public only because a generated client's token operation takes it (a document maps its form
// schema to it with `x-tokensmith-type: crate::oauth2::ClientCredentials`); not part of the
// documented API.
#[doc(hidden)]
#[derive(Clone, Debug, serde::Serialize)]
pub struct ClientCredentials {
    grant_type: GrantType,
    client_id: String,
    client_secret: SecretString,
}

/// The grant a client-credentials request asks for.
#[derive(Clone, Copy, Debug, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum GrantType {
    ClientCredentials,
}

impl ClientCredentials {
    /// A client-credentials request for `client_id` and `client_secret`.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<SecretString>) -> Self {
        Self {
            grant_type: GrantType::ClientCredentials,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        }
    }

    /// The client secret (for the fingerprint of the credentials a refusal is of).
    pub(crate) fn client_secret(&self) -> &SecretString {
        &self.client_secret
    }
}

/// The message of an OAuth error body (RFC 6749 section 5.2): its `error_description`, else
/// its `error` code.
pub(crate) fn error_message(error: Option<&str>, description: Option<&str>) -> Option<String> {
    description.or(error).map(str::to_owned)
}

/// What a token endpoint's failure means: a refused client (`invalid_client`, which RFC 6749
/// lets a server answer with 400 as well as 401, or `unauthorized_client`), or any 401, is a
/// credential refusal; anything else reads the usual way.
pub(crate) fn classify_token(failure: &Failure) -> ErrorKind {
    let refused = matches!(
        failure.code.as_deref(),
        Some("invalid_client" | "unauthorized_client")
    );
    match failure.status {
        400 | 401 if refused => ErrorKind::InvalidCredentials,
        401 => ErrorKind::InvalidCredentials,
        _ => failure.default_kind(),
    }
}

/// An access token's lifetime from a token answer: `expires_in` (seconds), else the JWT's own
/// `exp`, else `documented`, with the bounds every lifetime gets (see `crate::expiry`).
pub(crate) fn lifetime(
    expires_in: Option<&Seconds>,
    access_token: &SecretString,
    sent_wall: SystemTime,
    documented: Duration,
) -> Duration {
    expiry::lifetime(
        expires_in
            .and_then(Seconds::as_f64)
            .and_then(expiry::seconds),
        Some(access_token.expose_secret()),
        sent_wall,
        documented,
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_keeps_the_rfc_s_order() {
        let form = ClientCredentials::new("app", "s3cr3t&=");
        assert_eq!(
            serde_urlencoded(&form),
            "grant_type=client_credentials&client_id=app&client_secret=s3cr3t%26%3D"
        );
    }

    fn serde_urlencoded(form: &ClientCredentials) -> String {
        // reqwest's own form encoder, as the generated client sends it.
        let request = reqwest::Client::new()
            .post("https://example.com/token")
            .form(form)
            .build()
            .unwrap();
        String::from_utf8(request.body().unwrap().as_bytes().unwrap().to_vec()).unwrap()
    }

    #[test]
    fn refused_clients_are_credential_refusals_at_400_and_401() {
        let failure = |status, code: Option<&str>| Failure {
            status,
            message: None,
            code: code.map(str::to_owned),
            headers: Default::default(),
            documented: true,
            now: SystemTime::UNIX_EPOCH,
        };
        assert_eq!(
            classify_token(&failure(400, Some("invalid_client"))),
            ErrorKind::InvalidCredentials
        );
        assert_eq!(
            classify_token(&failure(400, Some("unsupported_grant_type"))),
            ErrorKind::InvalidRequest
        );
        assert_eq!(
            classify_token(&failure(401, None)),
            ErrorKind::InvalidCredentials
        );
        assert_eq!(
            classify_token(&failure(503, None)),
            ErrorKind::ServiceUnavailable
        );
        assert_eq!(error_message(Some("e"), Some("d")).as_deref(), Some("d"));
        assert_eq!(error_message(Some("e"), None).as_deref(), Some("e"));
    }
}
