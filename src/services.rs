//! The enabled services, in the order the `tokensmith` command lists them: the one list of
//! services outside their own modules. [`crate::env::profiles`] reads it, and the command
//! offers every profile it gives, so that a service added here (a module that declares its
//! `Provider::ENV`) is in the command with no edit there.

#[cfg(all(
    feature = "cli",
    not(any(
        feature = "s7risk",
        feature = "weavr",
        feature = "accounts",
        feature = "passwordsafe",
        feature = "fib"
    ))
))]
compile_error!(
    "the tokensmith command needs at least one service feature: \
     s7risk, weavr, accounts, passwordsafe or fib"
);

use crate::env::Profile;

/// Each enabled service's profiles.
pub(crate) const SERVICES: &[fn() -> Vec<Profile>] = &[
    #[cfg(feature = "s7risk")]
    Profile::all::<crate::s7risk::S7risk>,
    #[cfg(feature = "weavr")]
    Profile::all::<crate::weavr::Weavr>,
    #[cfg(feature = "accounts")]
    Profile::all::<crate::accounts::Accounts>,
    #[cfg(feature = "passwordsafe")]
    Profile::all::<crate::passwordsafe::PasswordSafe>,
    #[cfg(feature = "fib")]
    Profile::all::<crate::fib::Fib>,
];
