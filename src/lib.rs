#![doc = "tokensmith"]
#![deny(missing_docs)]

mod generated;
pub mod secret;
pub mod transport;

/// Intelligence Fusion Auth API.
pub mod s7risk {
    pub use crate::generated::s7risk::{types, Client};
}

/// Weavr Multi API authentication.
pub mod weavr {
    pub use crate::generated::weavr::{types, Client};
}

/// Wikimedia Enterprise authentication v1.
pub mod accounts {
    pub use crate::generated::accounts::{types, Client};
}

/// BeyondTrust Password Safe public API v3 authentication.
pub mod passwordsafe {
    pub use crate::generated::passwordsafe::{types, Client};
}

/// Fraud Intelligence Blockchain authentication.
pub mod fib {
    pub use crate::generated::fib::{types, Client};
}
