//! The account events a stand-in takes ([`super::Fault::password_changed`] and
//! [`super::Fault::password_expired`]), and the passwords and secrets they change.

use std::collections::HashMap;
use std::sync::Mutex;

/// Why a stand-in cannot take an account event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The stand-in has no such account.
    NoSuchAccount,
    /// The service documents nothing of the kind.
    Undocumented,
}

/// What a stand-in does with the account events of [`Fault`].
pub(crate) trait Passwords: Send + Sync {
    /// `account`'s password (or client secret) is now `password`.
    fn change(&self, account: &str, password: &str) -> Result<(), Refusal>;
    /// `account`'s password has expired.
    fn expire(&self, account: &str) -> Result<(), Refusal>;
}

/// Passwords (or client secrets) by account.
pub(crate) struct Secrets(Mutex<HashMap<String, String>>);

impl Secrets {
    pub(crate) fn new<'a>(accounts: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(Mutex::new(
            accounts
                .into_iter()
                .map(|(account, secret)| (account.to_owned(), secret.to_owned()))
                .collect(),
        ))
    }

    /// Whether `secret` is `account`'s.
    pub(crate) fn matches(&self, account: &str, secret: &str) -> bool {
        let secrets = self.0.lock().unwrap_or_else(|p| p.into_inner());
        secrets.get(account).is_some_and(|s| s == secret)
    }

    fn change(&self, account: &str, secret: &str) -> Result<(), Refusal> {
        let mut secrets = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let slot = secrets.get_mut(account).ok_or(Refusal::NoSuchAccount)?;
        secret.clone_into(slot);
        Ok(())
    }
}

/// The credentials of a stand-in whose service has no endpoint that changes them and
/// documents no expiry (s7risk, passwordsafe): users' passwords and clients' (applications')
/// secrets, apart, so that neither passes for the other.
pub(crate) struct Registrations {
    pub(crate) users: Secrets,
    pub(crate) clients: Secrets,
}

impl Passwords for Registrations {
    fn change(&self, account: &str, password: &str) -> Result<(), Refusal> {
        self.users
            .change(account, password)
            .or_else(|_| self.clients.change(account, password))
    }

    fn expire(&self, _: &str) -> Result<(), Refusal> {
        Err(Refusal::Undocumented)
    }
}
