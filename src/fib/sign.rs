//! The fib login proof: an Ed25519 signature of the hashed email.
//!
//! signature = hex(Ed25519-sign(authorization private key, d)), where d is BLAKE2b-256(UTF-8
//! email), either plain ([`Digest::Plain`]) or with the lowest bit of its last byte set
//! ([`Digest::Iroha`]): the vendor's sources disagree on which one the service verifies.

use ed25519_compact::{KeyPair, PublicKey, Seed, Signature};
use zeroize::Zeroizing;

use super::Digest;
use crate::error::{Error, Service};
use crate::secret::SecretString;

/// An Authorization key pair, read from the hex the FIB web app shows.
pub(crate) struct AuthKey {
    pair: KeyPair,
}

impl AuthKey {
    /// Reads a private key: 64 hex characters (the seed), or 128 (the seed followed by the
    /// public key, which must match it).
    pub(crate) fn from_hex(private_key_hex: &SecretString) -> Result<Self, Error> {
        let bad =
            |why: &str| Error::configuration(Some(Service::Fib), format!("private key {why}"));
        let text = private_key_hex.expose_secret().trim();
        if !(text.len() == 64 || text.len() == 128) {
            return Err(bad(&format!(
                "must be 64 or 128 hex characters, not {}",
                text.len()
            )));
        }
        let bytes = Zeroizing::new(hex::decode(text).map_err(|_| bad("is not hex"))?);
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&bytes[..32]);
        let mut copy = Seed::new(*seed);
        // The one seed the library refuses; no key the FIB web app shows is all zeros.
        let pair = KeyPair::try_from_seed(copy).map_err(|_| bad("is all zeros"));
        copy.wipe_mut();
        let pair = pair?;
        if bytes.len() == 64 && pair.pk[..] != bytes[32..] {
            return Err(bad("does not match the public key that follows it"));
        }
        Ok(Self { pair })
    }

    /// The public key as lowercase hex (`authPublicKeyHex`).
    pub(crate) fn public_key_hex(&self) -> String {
        hex::encode(*self.pair.pk)
    }

    /// The signature of `email`'s `digest`, as lowercase hex.
    pub(crate) fn sign_email(&self, email: &str, digest: Digest) -> SecretString {
        // Deterministic, as RFC 8032 defines it (no noise): the vendor's test vector is one.
        let signature = self.pair.sk.sign(prehash(email, digest), None);
        SecretString::new(hex::encode(*signature))
    }
}

/// Checks that a public key is 64 hex characters of a valid Ed25519 point.
pub(crate) fn check_public_key(public_key_hex: &str) -> Result<String, Error> {
    let bad = |why: &str| Error::configuration(Some(Service::Fib), format!("public key {why}"));
    let bytes: [u8; 32] = hex::decode(public_key_hex.trim())
        .map_err(|_| bad("is not hex"))?
        .try_into()
        .map_err(|_| bad("must be 64 hex characters"))?;
    PublicKey::new(bytes)
        .validate()
        .map_err(|_| bad("is not an Ed25519 public key"))?;
    Ok(hex::encode(bytes))
}

/// Whether `signature_hex` is the signature of `email`'s `digest` under `public_key_hex`: how
/// the service checks a login, how the sandbox does, and how the builder checks a signature
/// computed elsewhere.
pub(crate) fn verify_email(
    public_key_hex: &str,
    email: &str,
    signature_hex: &str,
    digest: Digest,
) -> bool {
    let key = hex::decode(public_key_hex)
        .ok()
        .and_then(|b| PublicKey::from_slice(&b).ok());
    let signature = hex::decode(signature_hex)
        .ok()
        .and_then(|b| Signature::from_slice(&b).ok());
    match (key, signature) {
        (Some(key), Some(signature)) => key.verify(prehash(email, digest), &signature).is_ok(),
        _ => false,
    }
}

fn prehash(email: &str, digest: Digest) -> [u8; 32] {
    let mut d = [0u8; 32];
    d.copy_from_slice(
        blake2b_simd::Params::new()
            .hash_length(32)
            .hash(email.as_bytes())
            .as_bytes(),
    );
    if digest == Digest::Iroha {
        d[31] |= 1;
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    // The vectors of API-NOTES.md, written out as the vendor's values (alice's is the vendor's
    // own test vector), not produced by this signer.
    const PRIVATE: &str = "413b285d1819a6166b0daa762bb6bef2d082cffb9a13ce041cb0fda5e2f06dc3";
    const PUBLIC: &str = "7fbedb314a9b0c00caef967ac5cabb982ec45da828a0c58a9aafc854f32422ac";
    const ALICE: &str = "alice@wonderland.space";
    const ALICE_SIGNATURE: &str = "57e7115dfb9faa9add2d2ceb321c20db8c1e7f468d2ffc122793fa61e8ed61581580faaeae83a07fe857894bb33defd61c4ba099b981020146fe8d2be00e630a";
    /// BLAKE2b-256 of this email ends in an even byte (0x82), so the two rules differ.
    const BOB: &str = "bob@wonderland.space";
    const BOB_PLAIN: &str = "61cb00a8d98b6e0727fe945849649ae909809b87fed826bddad208fd67837af27aefca5d120a92157cd8ccec119aaa9c76735f155e3cac1f5331e972ec475502";
    const BOB_IROHA: &str = "c7126087ca5b91fe0466dee18cdcf9a084c03458691a77da84c5d05a869e1285af9082f915e6546f529363035329e6f9ea94c4098e92c633eb095e351ebbc30c";

    fn key() -> AuthKey {
        AuthKey::from_hex(&PRIVATE.into()).unwrap()
    }

    #[test]
    fn reproduces_the_vendor_test_vector_under_either_rule() {
        assert_eq!(key().public_key_hex(), PUBLIC);
        for digest in [Digest::Plain, Digest::Iroha] {
            assert_eq!(
                key().sign_email(ALICE, digest).expose_secret(),
                ALICE_SIGNATURE,
                "{digest:?}"
            );
            assert!(verify_email(PUBLIC, ALICE, ALICE_SIGNATURE, digest));
        }
    }

    #[test]
    fn the_rules_differ_for_an_email_whose_digest_ends_in_an_even_byte() {
        // BLAKE2b-256 of BOB, computed apart from this crate (Python's hashlib.blake2b).
        let plain: [u8; 32] =
            hex::decode("82f7e35c60e2cd8079868ea5341b3962b65d781cf3ff2127edbfadc80de34f82")
                .unwrap()
                .try_into()
                .unwrap();
        assert_eq!(plain[31], 0x82, "the vector must exercise the rule");
        assert_eq!(prehash(BOB, Digest::Plain), plain);
        let iroha = prehash(BOB, Digest::Iroha);
        assert_eq!(iroha[31], 0x83);
        assert_eq!(iroha[..31], plain[..31]);

        assert_eq!(
            key().sign_email(BOB, Digest::Plain).expose_secret(),
            BOB_PLAIN
        );
        assert_eq!(
            key().sign_email(BOB, Digest::Iroha).expose_secret(),
            BOB_IROHA
        );
        assert!(verify_email(PUBLIC, BOB, BOB_PLAIN, Digest::Plain));
        assert!(verify_email(PUBLIC, BOB, BOB_IROHA, Digest::Iroha));
        assert!(!verify_email(PUBLIC, BOB, BOB_PLAIN, Digest::Iroha));
        assert!(!verify_email(PUBLIC, BOB, BOB_IROHA, Digest::Plain));
    }

    #[test]
    fn verifies_the_vendor_test_vector_and_nothing_else() {
        for digest in [Digest::Plain, Digest::Iroha] {
            assert!(!verify_email(PUBLIC, BOB, ALICE_SIGNATURE, digest));
            assert!(!verify_email(PUBLIC, ALICE, &ALICE_SIGNATURE[..64], digest));
            assert!(!verify_email("00", ALICE, ALICE_SIGNATURE, digest));
        }
    }

    #[test]
    fn accepts_the_128_character_form_and_checks_its_public_half() {
        let both = format!("{PRIVATE}{PUBLIC}");
        let key = AuthKey::from_hex(&both.as_str().into()).unwrap();
        assert_eq!(
            key.sign_email(ALICE, Digest::Plain).expose_secret(),
            ALICE_SIGNATURE
        );
        let mismatched = format!("{PRIVATE}{}", "00".repeat(32));
        assert!(AuthKey::from_hex(&mismatched.as_str().into()).is_err());
    }

    #[test]
    fn rejects_keys_of_the_wrong_size_or_alphabet() {
        for bad in ["", "abcd", &"zz".repeat(32), &"00".repeat(48)] {
            let err = AuthKey::from_hex(&bad.into()).err().expect(bad);
            assert!(
                !err.to_string().contains(bad) || bad.is_empty(),
                "the key is never echoed"
            );
        }
        assert!(check_public_key(PUBLIC).is_ok());
        assert!(check_public_key("00").is_err());
        // The identity point: a valid encoding of a point of small order, which verifies
        // forged signatures.
        let weak = format!("01{}", "00".repeat(31));
        assert_eq!(
            check_public_key(&weak).unwrap_err().to_string(),
            "fib: configuration error: public key is not an Ed25519 public key"
        );
    }

    #[test]
    fn rejects_an_all_zero_seed_without_panicking() {
        let err = AuthKey::from_hex(&"00".repeat(32).as_str().into())
            .err()
            .expect("an all-zero seed");
        assert_eq!(
            err.to_string(),
            "fib: configuration error: private key is all zeros"
        );
    }
}
