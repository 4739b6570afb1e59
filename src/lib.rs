#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod any_session;
mod cache;
pub mod clock;
mod error;
mod expiry;
mod generated;
#[cfg(any(feature = "middleware", feature = "tower"))]
mod hosts;
#[cfg(feature = "middleware")]
#[cfg_attr(docsrs, doc(cfg(feature = "middleware")))]
pub mod middleware;
mod response;
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

pub mod s7risk;

pub mod weavr;

pub mod accounts;

pub mod passwordsafe;

pub mod fib;

pub use any_session::{AnySession, DynTokenSource};
pub use error::{Error, ErrorKind, FieldError, Service};
pub use expiry::RefreshPolicy;
pub use retry::RetryPolicy;
pub use secret::SecretString;
pub use session::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, USER_AGENT};
pub use token::{AccessToken, TokenOrigin};

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
