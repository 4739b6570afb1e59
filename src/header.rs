//! Header values that carry a secret: marked sensitive, and held in memory that is zeroized when
//! the last copy of the value is dropped. Every credential header of the crate (a bearer, weavr's
//! `api-key`, Password Safe's `PS-Auth` and cookie) is made here, so that none is assembled in
//! an ordinary `String` that would leave the secret behind in freed memory.

use reqwest::header::HeaderValue;

use crate::secret::SecretString;

/// Bytes that are zeroized when the last [`bytes::Bytes`] sharing them is dropped.
struct ZeroizingBytes(zeroize::Zeroizing<Vec<u8>>);

impl AsRef<[u8]> for ZeroizingBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Why a secret cannot be sent in a header: it holds a byte a header value cannot (a control
/// character, a line break). Names nothing of the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotAHeaderValue;

/// The concatenation of `parts` as a sensitive header value. Its bytes are shared by every
/// clone (a clone costs a reference count) and zeroized when the last one is dropped.
pub(crate) fn sensitive(parts: &[&[u8]]) -> Result<HeaderValue, NotAHeaderValue> {
    let len = parts.iter().map(|part| part.len()).sum();
    let mut text = zeroize::Zeroizing::new(Vec::with_capacity(len));
    for part in parts {
        text.extend_from_slice(part);
    }
    let mut value = HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(ZeroizingBytes(text)))
        .map_err(|_| NotAHeaderValue)?;
    value.set_sensitive(true);
    Ok(value)
}

/// A secret as a sensitive header value of its own (weavr's `api-key`, a session cookie).
pub(crate) fn secret(secret: &SecretString) -> Result<HeaderValue, NotAHeaderValue> {
    sensitive(&[secret.expose_secret().as_bytes()])
}

/// `Bearer <token>`, marked sensitive.
pub(crate) fn bearer(token: &SecretString) -> Result<HeaderValue, NotAHeaderValue> {
    sensitive(&[b"Bearer ", token.expose_secret().as_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_sensitive_and_refuse_what_a_header_cannot_hold() {
        let value = bearer(&SecretString::from("abc.def")).unwrap();
        assert_eq!(value, "Bearer abc.def");
        assert!(value.is_sensitive());
        assert_eq!(format!("{value:?}"), "Sensitive");
        assert_eq!(
            bearer(&SecretString::from("abc\r\nX-Injected: 1")),
            Err(NotAHeaderValue)
        );
        assert_eq!(secret(&SecretString::from("a\u{0}b")), Err(NotAHeaderValue));
        assert_eq!(
            sensitive(&[b"PS-Auth key=", b"k", b"; runas=u;"]).unwrap(),
            "PS-Auth key=k; runas=u;"
        );
    }
}
