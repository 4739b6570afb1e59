//! Fraud Intelligence Blockchain authentication (`https://backend.fraudintelligencelimited.com`).
//!
//! The login proves possession of the user's Authorization key: the session signs the email
//! itself (Ed25519 over a BLAKE2b-256 digest) from the private key, or sends a signature
//! computed elsewhere. Access tokens live 5 minutes and are renewed with the refresh token
//! (`PATCH` on the session), which lives 24 hours; after that the session signs in again.
//!
//! The vendor's material does not settle which digest the service verifies (see [`Digest`]).
//! A session that holds the private key signs the plain digest first; when the login is
//! answered 422 and Iroha's digest gives a different signature, it sends the login once more
//! signed that way. The rule that was accepted is kept by the session and all its clones and
//! tried first at every later login, so from then on a login is one request. A login is never
//! sent more than twice; [`SessionBuilder::digest`] pins the rule (one attempt).
//!
//! # Examples
//!
//! ```no_run
//! # async fn run() -> Result<(), tokensmith::Error> {
//! use tokensmith::fib::Session;
//!
//! let session = Session::builder()
//!     .email("alice@wonderland.space")
//!     .private_key("413b285d1819a6166b0daa762bb6bef2d082cffb9a13ce041cb0fda5e2f06dc3")
//!     .build()?;
//! let token = session.access_token().await?;
//! # let _ = token;
//! # Ok(()) }
//! ```

pub(crate) mod sign;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use reqwest::header::AUTHORIZATION;

pub use crate::generated::fib::{types, Client};

use crate::env::{Declaration, Declared, Variable};
use crate::error::{Error, ErrorKind, Service};
use crate::expiry;
use crate::provider::sealed::ProviderImpl;
use crate::provider::{Ending, Tokens};
use crate::retry::Replay;
use crate::secret::SecretString;
use crate::session::require;
use crate::token::Issued;
use crate::transport::endpoint::Endpoint;
use crate::transport::errors::{ErrorBody, Failure};
use crate::transport::Context;

/// A session with the FIB auth controller. Cheap to clone; clones share the tokens.
pub type Session = crate::Session<Fib>;
/// Builds a [`Session`]: [`crate::SessionBuilder`]'s setters, and the service's own below.
pub type SessionBuilder = crate::SessionBuilder<Fib>;

/// The production server.
pub const DEFAULT_BASE_URL: &str = "https://backend.fraudintelligencelimited.com";
/// The documented access-token lifetime, used when a response gives none.
pub const ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// The refresh-token lifetime, used when its `exp` claim cannot be read.
pub const REFRESH_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// Which digest of the email the login signature signs: `d` in
/// `signature = hex(Ed25519-sign(authorization private key, d))`.
///
/// The vendor's sources disagree. The two rules give the same signature when the plain
/// digest's last byte is odd (every example the vendor publishes) and different ones for the
/// other half of all emails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Digest {
    /// `d = BLAKE2b-256(UTF-8 email)`: the formula the vendor's signing page ("Signing user
    /// email addresses", 2026-08) writes, and what its Python and Node.js examples sign.
    /// Tried first.
    Plain,
    /// The same digest with the lowest bit of its last byte set (`d[31] |= 1`): Hyperledger
    /// Iroha 2's hash, which the vendor's Kotlin example signs through (the Iroha Java SDK, in
    /// its current releases) and which the JavaScript example the vendor removed in 2026-08
    /// used.
    Iroha,
}

mod settings {
    use super::*;

    /// What a fib builder takes beside the shared settings.
    #[derive(Debug, Default)]
    pub struct Settings {
        pub(super) email: Option<String>,
        pub(super) private_key: Option<SecretString>,
        pub(super) signature: Option<(SecretString, String)>,
        pub(super) digest: Option<Digest>,
    }
}

impl SessionBuilder {
    /// The user's email address (required).
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.own.email = Some(email.into());
        self
    }

    /// The private key of the user's Authorization key pair, in hex: 64 characters, or 128
    /// (the private key followed by the public key, which must match it). The session signs
    /// the email with it: the plain digest first, Iroha's once if that is refused with 422,
    /// unless [`Self::digest`] pins the rule.
    pub fn private_key(mut self, private_key_hex: impl Into<SecretString>) -> Self {
        self.own.private_key = Some(private_key_hex.into());
        self
    }

    /// Instead of a private key: a signature of the email computed elsewhere (128 hex
    /// characters; surrounding whitespace and capitals are accepted) and the Authorization
    /// public key (64 hex characters). [`Self::build`] checks that the signature verifies
    /// for the email under that key with either [`Digest`] (only the pinned one when
    /// [`Self::digest`] is set), as the service would.
    ///
    /// A given signature cannot be re-signed: it gets no fallback. If the service verifies the
    /// other digest, every login is refused with 422; sign with the other rule, or give the
    /// private key instead.
    pub fn signature(
        mut self,
        signature_hex: impl Into<SecretString>,
        public_key_hex: impl Into<String>,
    ) -> Self {
        self.own.signature = Some((signature_hex.into(), public_key_hex.into()));
        self
    }

    /// Pins the digest the login signs, for a backend known to verify that one: every login
    /// is then exactly one request, and a 422 is final. Default: not pinned (plain first,
    /// then Iroha's once on a 422).
    pub fn digest(mut self, digest: Digest) -> Self {
        self.own.digest = Some(digest);
        self
    }
}

/// Checks the configuration (the key's size, alphabet and consistency; a given signature
/// must verify for the email under the given public key).
fn build(settings: settings::Settings, endpoint: &Endpoint) -> Result<Fib, Error> {
    const S: Service = Service::Fib;
    let email = require(S, "email", settings.email)?;
    let rules: &[Digest] = match settings.digest {
        Some(Digest::Plain) => &[Digest::Plain],
        Some(Digest::Iroha) => &[Digest::Iroha],
        None => &[Digest::Plain, Digest::Iroha],
    };
    let (signatures, public_key) = match (settings.private_key, settings.signature) {
        (Some(key), None) => {
            let key = sign::AuthKey::from_hex(&key)?;
            let mut signatures: Vec<SecretString> = Vec::with_capacity(2);
            for rule in rules {
                let signature = key.sign_email(&email, *rule);
                // Both rules sign the same digest when its last byte is odd: one attempt.
                if signatures
                    .iter()
                    .all(|s| s.expose_secret() != signature.expose_secret())
                {
                    signatures.push(signature);
                }
            }
            (signatures, key.public_key_hex())
        }
        (None, Some((signature, public_key))) => {
            let given = require(S, "signature", Some(signature))?;
            // Sent as the service's examples show it: lowercase, nothing around it.
            let signature = SecretString::new(given.expose_secret().trim().to_ascii_lowercase());
            let is_hex_128 = signature.expose_secret().len() == 128
                && signature
                    .expose_secret()
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit());
            if !is_hex_128 {
                return Err(Error::configuration(
                    Some(S),
                    "signature must be 128 hex characters (an Ed25519 signature)",
                ));
            }
            let public_key = sign::check_public_key(&public_key)?;
            // The service would refuse it with 422 at every login; say so now.
            let verifies = rules.iter().any(|rule| {
                sign::verify_email(&public_key, &email, signature.expose_secret(), *rule)
            });
            if !verifies {
                return Err(Error::configuration(
                    Some(S),
                    "signature does not verify for this email under this public key (it \
                         must sign exactly this email with the Authorization key pair's private \
                         key)",
                ));
            }
            (vec![signature], public_key)
        }
        (Some(_), Some(_)) => {
            return Err(Error::configuration(
                Some(S),
                "give either a private key or a signature, not both",
            ))
        }
        (None, None) => {
            return Err(Error::configuration(
                Some(S),
                "a private key or a signature is required",
            ))
        }
    };
    Ok(Fib {
        endpoint: endpoint.clone(),
        email,
        signatures,
        accepted: AtomicUsize::new(0),
        public_key,
    })
}

/// The FIB auth controller, as a [`crate::Provider`]: sessions with it are [`Session`]s.
/// `logout()` sends `POST …/logout` with the current access token, then wipes the cached
/// tokens whatever the service answers. When the access token has expired but its refresh
/// token (24 h) has not, the session is still open at the service: it is renewed once
/// (`PATCH`) to be ended. With neither, there is nothing to end at the service and no request.
/// Its error is the logout's (or the renewal's) failure.
pub struct Fib {
    endpoint: Endpoint,
    email: String,
    /// The signatures a login may send, the plain digest's first: two only when the session
    /// signs itself, no rule is pinned and the two digests give different signatures.
    signatures: Vec<SecretString>,
    /// Which of `signatures` to send first: the one the service last accepted. The provider
    /// sits behind the session's `Arc`, so every clone learns it at once.
    accepted: AtomicUsize,
    public_key: String,
}

impl ErrorBody for types::ErrorResponse {
    fn message(&self) -> Option<String> {
        self.status.as_ref().and_then(|s| s.message.clone())
    }

    fn code(&self) -> Option<String> {
        self.status
            .as_ref()
            .map(|s| s.name.clone())
            .filter(|n| !n.is_empty())
    }
}

fn classify_login(failure: &Failure) -> ErrorKind {
    match failure.status {
        // A signature that does not verify, or a key pair that is not the user's; a 401 on a
        // login can only mean the same.
        401 | 422 => ErrorKind::InvalidCredentials,
        _ => failure.default_kind(),
    }
}

fn classify_refresh(failure: &Failure) -> ErrorKind {
    match failure.status {
        // The PATCH has no body: only the refresh token (its Authorization header) can be at
        // fault. Sending it again cannot help; a new login can.
        400 | 422 => ErrorKind::TokenRejected,
        _ => failure.default_kind(),
    }
}

/// Appended to the service's message when signatures over both digests were refused.
const BOTH_REFUSED: &str = "both digests were tried: the plain BLAKE2b-256 digest and Iroha's \
                            (d[31] |= 1); neither signature was accepted";

impl Fib {
    /// One login request, signed with `signatures[which]`.
    async fn log_in(&self, which: usize, sent_wall: SystemTime) -> Result<Issued, Error> {
        let body = types::LoginRequest {
            email: self.email.clone(),
            signature: self.signatures[which].clone(),
            auth_public_key_hex: self.public_key.clone(),
        };
        let log_in = |api: Client| async move { api.log_in(&body).await };
        let response = self
            .endpoint
            .log_in(Context::new(), &classify_login, log_in)
            .await?;
        Ok(self.grant(response.into_inner(), sent_wall))
    }

    fn grant(&self, response: types::SessionResponse, sent_wall: SystemTime) -> Issued {
        let tokens = response.data;
        let expires_in = tokens
            .expiration_time
            .as_f64()
            .and_then(|value| expiry::seconds_or_epoch(value, sent_wall));
        // Capped at the documented 5 minutes: `exp`, and an `expirationTime` given as a time,
        // are read on the local clock, which may lag the service's.
        let access = &tokens.access_token;
        let lifetime = expiry::capped(expires_in, access, sent_wall, ACCESS_TOKEN_LIFETIME);
        let refresh = &tokens.refresh_token;
        let refresh_lifetime = expiry::capped(None, refresh, sent_wall, REFRESH_TOKEN_LIFETIME);
        Issued::new(tokens.access_token, lifetime)
            .with_refresh(Some(tokens.refresh_token), Some(refresh_lifetime))
    }
}

// The environment variables (`SessionBuilder::from_env`; `crate::env`).
const EMAIL_VAR: Variable = Variable::text("FIB_EMAIL");
const PRIVATE_KEY_VAR: Variable = Variable::secret("FIB_PRIVATE_KEY").checked(
    "an Authorization private key (64 hex characters, or 128: the private key, then its \
     public key)",
    |key| sign::AuthKey::from_hex(&SecretString::new(key)).is_ok(),
);

impl crate::Provider for Fib {
    type Client = Client;
}

impl crate::env::FromEnv for Fib {
    const ENV: Declaration<Self> = Declaration {
        base_url: "FIB_BASE_URL",
        base_url_hint: None,
        shared: &[],
        profiles: &[Declared {
            name: "fib",
            about: "Fraud Intelligence Blockchain",
            kind: "a user",
            variables: &[EMAIL_VAR, PRIVATE_KEY_VAR],
            apply: |builder, values| {
                builder
                    .email(values.text(&EMAIL_VAR))
                    .private_key(values.secret(&PRIVATE_KEY_VAR))
            },
        }],
    };
}

impl ProviderImpl for Fib {
    const SERVICE: Service = Service::Fib;
    const BASE_URL: Result<&'static str, &'static str> = Ok(DEFAULT_BASE_URL);
    const ENDS_SESSION: &'static [&'static str] = &["log_out"];

    type Settings = settings::Settings;

    fn build(settings: settings::Settings, endpoint: &Endpoint) -> Result<Self, Error> {
        build(settings, endpoint)
    }

    fn store_identity(&self) -> String {
        self.email.clone()
    }

    fn credentials(&self, fingerprint: &mut dyn FnMut(&[u8])) {
        // The key pair: what a login proves, whichever signature it sends.
        fingerprint(self.public_key.as_bytes());
        for signature in &self.signatures {
            fingerprint(signature.expose_secret().as_bytes());
        }
    }

    async fn login(&self, sent_wall: SystemTime) -> Result<Issued, Error> {
        let first = self.accepted.load(Ordering::Relaxed);
        let error = match self.log_in(first, sent_wall).await {
            Err(error) if error.status() == Some(422) && self.signatures.len() == 2 => error,
            other => return other,
        };
        // Refused as unverifiable: the service may verify the other digest. Once, not more:
        // a second 422 is a refused credential, never retried.
        let other = 1 - first;
        match self.log_in(other, sent_wall).await {
            Ok(grant) => {
                self.accepted.store(other, Ordering::Relaxed);
                Ok(grant)
            }
            Err(second) if second.status() == Some(422) => {
                let said = second.message().or(error.message()).map(str::to_owned);
                Err(second.with_message(match said {
                    Some(said) => format!("{said} ({BOTH_REFUSED})"),
                    None => BOTH_REFUSED.to_owned(),
                }))
            }
            Err(second) => Err(second),
        }
    }

    async fn refresh(
        &self,
        refresh_token: &SecretString,
        sent_wall: SystemTime,
    ) -> Result<Issued, Error> {
        // The refresh token rotates: a PATCH the service may have taken (any answer, a
        // timeout, a broken connection) may have spent it, and a replay would send a spent
        // token. Only one that never left is sent again.
        let context = Context::new()
            .with_header(AUTHORIZATION, bearer(refresh_token)?, true)
            .with_replay(Replay::Unsent)
            .with_grant(crate::telemetry::Grant::Refresh);
        let refresh = |api: Client| async move { api.refresh_tokens().await };
        let response = self
            .endpoint
            .call(context, &classify_refresh, refresh)
            .await?;
        Ok(self.grant(response.into_inner(), sent_wall))
    }

    async fn log_out(&self, tokens: &Tokens, ending: &Ending) -> Result<(), Error> {
        let access = if ending.valid {
            ending.entry.secret.clone()
        } else {
            let Some(refresh) = ending.entry.refresh_token() else {
                return Ok(());
            };
            match self.refresh(refresh, tokens.sent().wall).await {
                Ok(grant) => grant.access,
                // Refused: the service holds no session for it any more.
                Err(error) if error.kind() == ErrorKind::TokenRejected => return Ok(()),
                Err(error) => return Err(error),
            }
        };
        let context = Context::new()
            .with_header(AUTHORIZATION, bearer(&access)?, true)
            .with_grant(crate::telemetry::Grant::Logout);
        let log_out = |api: Client| async move { api.log_out().await };
        self.endpoint
            .call(context, &Failure::default_kind, log_out)
            .await?;
        Ok(())
    }
}

/// `Bearer <token>` for one of the session's own calls.
fn bearer(token: &SecretString) -> Result<reqwest::header::HeaderValue, Error> {
    crate::header::bearer(token).map_err(|_| {
        Error::configuration(
            Some(Service::Fib),
            "the token cannot be sent in an HTTP header",
        )
    })
}
