#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
// docs.rs builds with `--cfg docsrs` (see Cargo.toml) so feature-gated items show their feature.
#![cfg_attr(docsrs, feature(doc_cfg))]
// Shared machinery that only some services use is unused when they are off; the full build
// (all services) still reports dead code.
#![cfg_attr(
    not(all(
        feature = "s7risk",
        feature = "weavr",
        feature = "accounts",
        feature = "passwordsafe",
        feature = "fib"
    )),
    allow(dead_code, unused_macros, unused_imports)
)]

mod cache;
pub mod clock;
pub mod env;
mod error;
mod expiry;
mod generated;
mod header;
mod http_client;
#[cfg(feature = "middleware")]
#[cfg_attr(docsrs, doc(cfg(feature = "middleware")))]
pub mod middleware;
mod oauth2;
mod provider;
mod retry;
#[cfg(feature = "sandbox")]
#[cfg_attr(docsrs, doc(cfg(feature = "sandbox")))]
pub mod sandbox;
pub mod secret;
mod session;
pub mod store;
mod telemetry;
mod token;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;
pub mod transport;

#[cfg(feature = "s7risk")]
#[cfg_attr(docsrs, doc(cfg(feature = "s7risk")))]
pub mod s7risk;

#[cfg(feature = "weavr")]
#[cfg_attr(docsrs, doc(cfg(feature = "weavr")))]
pub mod weavr;

#[cfg(feature = "accounts")]
#[cfg_attr(docsrs, doc(cfg(feature = "accounts")))]
pub mod accounts;

#[cfg(feature = "passwordsafe")]
#[cfg_attr(docsrs, doc(cfg(feature = "passwordsafe")))]
pub mod passwordsafe;

#[cfg(feature = "fib")]
#[cfg_attr(docsrs, doc(cfg(feature = "fib")))]
pub mod fib;

pub use error::{Error, ErrorKind, FieldError, Service};
pub use expiry::RefreshPolicy;
pub use http_client::{HttpClient, HttpClientSource};
pub use provider::Provider;
pub use retry::RetryPolicy;
pub use secret::SecretString;
pub use session::{AnySession, DynTokenSource, Session, SessionBuilder};
pub use token::{AccessToken, TokenOrigin};
pub use transport::endpoint::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, USER_AGENT};

/// Anything that hands out valid access tokens: every service's `Session`.
pub trait TokenSource: Send + Sync {
    /// A valid access token, renewed first when it is due.
    ///
    /// # Errors
    ///
    /// When no valid token can be had: the login's or refresh's failure.
    fn access_token(&self) -> impl std::future::Future<Output = Result<AccessToken, Error>> + Send;
}

/// How many token requests a session has sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RequestCounts {
    /// Logins with the stored credentials.
    pub logins: u64,
    /// Renewals with a refresh token.
    pub refreshes: u64,
}
