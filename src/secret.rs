//! Redacting secret strings used in generated request and response types.
//!
//! # Examples
//!
//! ```
//! use tokensmith::SecretString;
//!
//! let password = SecretString::from("correct horse");
//! assert_eq!(format!("{password:?}"), "SecretString([redacted])");
//! assert_eq!(password.expose_secret(), "correct horse");
//! ```

use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A password, client secret, token or one-time code.
///
/// `Debug` prints `SecretString([redacted])`; there is no `Display`. The bytes are zeroized when
/// the last copy is dropped. It serializes to the plain string only because request bodies must
/// carry it on the wire; read it in code with [`SecretString::expose_secret`].
#[derive(Clone)]
pub struct SecretString(secrecy::SecretString);

impl SecretString {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretBox::from(value.into().into_boxed_str()))
    }

    /// The secret itself. Every call site is a place where the secret can leak: keep them few.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.expose_secret().is_empty()
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl From<secrecy::SecretString> for SecretString {
    fn from(value: secrecy::SecretString) -> Self {
        Self(value)
    }
}

impl Serialize for SecretString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.expose_secret())
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

/// A secret a session replaces while it lives (a password changed through the session), read
/// afresh at each use. One lock per secret, held only to clone or swap it.
pub(crate) struct Replaceable(std::sync::RwLock<SecretString>);

impl Replaceable {
    pub(crate) fn new(secret: SecretString) -> Self {
        Self(std::sync::RwLock::new(secret))
    }

    /// The secret as it is now (a poisoned lock still holds a whole value: a swap cannot be
    /// half done).
    pub(crate) fn get(&self) -> SecretString {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn replace(&self, secret: SecretString) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = secret;
    }
}
