//! How sessions send their requests: how much of an answer they read
//! ([`DEFAULT_MAX_RESPONSE_BYTES`], changed with each builder's `max_response_bytes`).
//!
//! # Examples
//!
//! ```
//! use tokensmith::transport::DEFAULT_MAX_RESPONSE_BYTES;
//!
//! let session = tokensmith::s7risk::Session::builder()
//!     .origin("https://api.example.com")
//!     .user("analyst@example.com", "correct horse")
//!     .max_response_bytes(2 * DEFAULT_MAX_RESPONSE_BYTES)
//!     .build()?;
//! # let _ = session;
//! # Ok::<(), tokensmith::Error>(())
//! ```

// Outside the documented API, the HTTP layer every session request goes through, below the
// session and unaware of it:
// - `rules`: where credentials may go (the one rule every path asks);
// - `adapter`: what the reqwest middleware and the tower layer share (the session, the rule);
// - `send`: the context the generated clients carry, and the retry loop;
// - `exchange`: the one 401 / 403 / activity exchange of a request carrying credentials;
// - `errors`: what a failed answer means, as a `crate::Error`;
// - `body`: the one capped body read;
// - `endpoint`: a session's own calls (login, refresh, …) through a generated client.

#[cfg(any(feature = "middleware", feature = "tower"))]
pub(crate) mod adapter;
pub(crate) mod body;
pub(crate) mod endpoint;
pub(crate) mod errors;
pub(crate) mod exchange;
pub(crate) mod rules;
pub(crate) mod send;

/// How much of a response body is read by default; auth answers are a few hundred bytes.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024;

// Public only because the generated clients take it (`Client::new_with_client`) and the
// contract tests drive them by hand; not part of the documented API.
#[doc(hidden)]
pub use send::Context;
