//! Sealing token sets for shared stores: XChaCha20-Poly1305 with a random nonce per write, the
//! store key as associated data (an entry copied under another key does not open); and what a
//! shared store keeps sealed ([`Kept`]).

use std::time::Duration;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::Serialize;
use zeroize::Zeroizing;

use super::{Stamp, StoreKey, StoredRefusal, StoredTokens};
use crate::error::Error;
use crate::secret::SecretString;

const NONCE: usize = 24;

/// The 256-bit key that seals token sets in a shared store. Keep it out of the store.
#[derive(Clone)]
pub struct SealingKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey([redacted])")
    }
}

impl SealingKey {
    /// A key from 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A key from 64 hex characters (for example from an environment variable).
    ///
    /// # Errors
    ///
    /// [`crate::ErrorKind::Configuration`] when `hex_key` is not 64 hex characters.
    pub fn from_hex(hex_key: &SecretString) -> Result<Self, Error> {
        let bytes = Zeroizing::new(
            hex::decode(hex_key.expose_secret().trim())
                .map_err(|_| Error::configuration(None, "sealing key is not hex"))?,
        );
        let bytes: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| Error::configuration(None, "sealing key must be 64 hex characters"))?;
        Ok(Self::from_bytes(bytes))
    }

    /// A new random key, as 64 hex characters to keep somewhere safe.
    pub fn generate() -> (Self, SecretString) {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        let bytes: [u8; 32] = key.into();
        let hex = SecretString::new(hex::encode(bytes));
        (Self::from_bytes(bytes), hex)
    }

    /// What a store calls the entry of `key`: the service and a keyed hash (BLAKE2b-MAC under
    /// this key) of the rest, so that no email, username or client id is readable in a file
    /// or in Redis, and nobody without the key can tell whose entry it is.
    pub(crate) fn name(&self, key: &StoreKey) -> String {
        format!("tokensmith:{}:{}", key.service(), self.file_tag(key))
    }

    /// The keyed hash of `key`, as 32 hex characters (fit for a file name).
    pub(crate) fn file_tag(&self, key: &StoreKey) -> String {
        // BLAKE2b takes keys of up to 64 bytes and personalisations of up to 16: both fit.
        let mac = blake2b_simd::Params::new()
            .hash_length(16)
            .key(&self.0[..])
            .personal(b"tokensmith-name")
            .hash(key.as_str().as_bytes());
        hex::encode(mac.as_bytes())
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&*self.0).into())
    }

    /// `plaintext` sealed for `context`, as base64 of nonce and ciphertext.
    pub(crate) fn seal(&self, context: &str, plaintext: &[u8]) -> Result<String, Error> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| Error::configuration(None, "cannot seal the token set"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(base64::engine::general_purpose::STANDARD.encode(out))
    }

    /// The plaintext sealed for `context`, or `None` when it does not open (another key,
    /// another context, or tampering).
    pub(crate) fn open(&self, context: &str, sealed: &str) -> Option<Zeroizing<Vec<u8>>> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .ok()?;
        if bytes.len() < NONCE {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE);
        self.cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .ok()
            .map(Zeroizing::new)
    }
}

/// What a store keeps sealed for an account: its token set, or its login refusal. The stores
/// read both the same way.
pub(crate) trait Kept:
    Serialize + serde::de::DeserializeOwned + Clone + Send + 'static
{
    /// Its name in a store's errors.
    const NAME: &'static str;
    /// What a sealed one that opens but does not decode is not.
    const NOT: &'static str;

    /// What it is sealed for: a token set, its account's key; a refusal, that key marked, so
    /// that neither opens in the other's place.
    fn context(key: &StoreKey) -> std::borrow::Cow<'_, str>;

    /// The store's stamp on it, and the age a store measured from that stamp.
    fn stamp_and_age(&mut self) -> (&mut Option<Stamp>, &mut Option<Duration>);
}

impl Kept for StoredTokens {
    const NAME: &'static str = "entry";
    const NOT: &'static str = "not a token set";

    fn context(key: &StoreKey) -> std::borrow::Cow<'_, str> {
        key.as_str().into()
    }

    fn stamp_and_age(&mut self) -> (&mut Option<Stamp>, &mut Option<Duration>) {
        (&mut self.stamp, &mut self.age)
    }
}

impl Kept for StoredRefusal {
    const NAME: &'static str = "refusal";
    const NOT: &'static str = "not a refusal";

    fn context(key: &StoreKey) -> std::borrow::Cow<'_, str> {
        format!("{}|refusal", key.as_str()).into()
    }

    fn stamp_and_age(&mut self) -> (&mut Option<Stamp>, &mut Option<Duration>) {
        (&mut self.stamp, &mut self.age)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_text_opens_only_with_its_key_and_context() {
        let (key, hex) = SealingKey::generate();
        let sealed = key.seal("ctx", b"eyJ-secret-token").unwrap();
        assert!(!sealed.contains("eyJ-secret-token") && !sealed.contains("secret-token"));
        assert_eq!(
            key.open("ctx", &sealed).unwrap().as_slice(),
            b"eyJ-secret-token"
        );
        assert!(key.open("other", &sealed).is_none(), "bound to its context");
        let (other, _) = SealingKey::generate();
        assert!(other.open("ctx", &sealed).is_none());
        let again = SealingKey::from_hex(&hex).unwrap();
        assert!(again.open("ctx", &sealed).is_some());
        assert_ne!(
            sealed,
            key.seal("ctx", b"eyJ-secret-token").unwrap(),
            "fresh nonce"
        );
        assert!(format!("{key:?}").contains("redacted"));
        assert!(SealingKey::from_hex(&"zz".into()).is_err());
    }

    #[test]
    fn entry_names_are_keyed_hashes_of_the_whole_store_key() {
        use crate::error::Service;
        let (key, _) = SealingKey::generate();
        let alice = StoreKey::new(Service::Fib, "https://fib.example", "alice@example.com");
        let name = key.name(&alice);
        assert_eq!(name, key.name(&alice), "stable");
        assert!(name.starts_with("tokensmith:fib:"), "{name}");
        assert_eq!(name.len(), "tokensmith:fib:".len() + 32);
        assert!(
            !name.contains("alice") && !name.contains("example"),
            "{name}"
        );
        let bob = StoreKey::new(Service::Fib, "https://fib.example", "bob@example.com");
        assert_ne!(key.name(&bob), name, "another account");
        let elsewhere = StoreKey::new(Service::Fib, "https://other.example", "alice@example.com");
        assert_ne!(key.name(&elsewhere), name, "another deployment");
        let (other, _) = SealingKey::generate();
        assert_ne!(other.name(&alice), name, "another sealing key");
    }

    #[test]
    fn an_entry_name_is_blake2b_mac_128_of_the_store_key_personalised() {
        // Computed apart from this crate, so that stores written by an earlier version keep
        // their names: Python's hashlib.blake2b(b"tokensmith:fib:https://fib.test:a",
        // digest_size=16, key=bytes([7] * 32), person=b"tokensmith-name").hexdigest().
        let key = SealingKey::from_bytes([7; 32]);
        let account = StoreKey::new(crate::error::Service::Fib, "https://fib.test", "a");
        assert_eq!(
            key.name(&account),
            "tokensmith:fib:6f16d1ef330633afa5b6e98dc0c741fe"
        );
    }

    #[test]
    fn a_sealed_text_too_short_to_hold_a_nonce_and_tag_does_not_open() {
        let key = SealingKey::from_bytes([7; 32]);
        let b64 = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![1u8; n]);
        for len in [0, 1, 23, 24, 24 + 15] {
            assert!(key.open("ctx", &b64(len)).is_none(), "{len} bytes");
        }
        assert!(key.open("ctx", "not base64!").is_none());
        let sealed = key.seal("ctx", b"").unwrap();
        assert_eq!(sealed.len(), b64(24 + 16).len(), "nonce and tag only");
        assert_eq!(key.open("ctx", &sealed).unwrap().as_slice(), b"");
    }
}
