//! The account events a stand-in takes ([`super::Fault::password_changed`] and
//! [`super::Fault::password_expired`]), and the passwords and secrets they change.

use std::collections::{HashMap, HashSet};
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

/// Replaces `account`'s password (or secret) in `passwords`, when it has one.
fn replace(
    passwords: &mut HashMap<String, String>,
    account: &str,
    password: &str,
) -> Result<(), Refusal> {
    let slot = passwords.get_mut(account).ok_or(Refusal::NoSuchAccount)?;
    password.clone_into(slot);
    Ok(())
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
        replace(&mut secrets, account, secret)
    }
}

/// The passwords of a stand-in whose service has accounts with passwords that expire (accounts,
/// weavr), kept in its own state: its stand-in's account events change them.
#[derive(Default)]
pub(crate) struct Book {
    /// Passwords by account.
    pub(crate) passwords: HashMap<String, String>,
    /// Accounts whose password has expired: the next login must replace it.
    pub(crate) expired: HashSet<String>,
}

impl Book {
    /// The demo accounts `live` and `expired`, each with `password`, which has expired for
    /// `expired`.
    pub(crate) fn new(live: &str, expired: &str, password: &str) -> Self {
        Self {
            passwords: [live, expired]
                .into_iter()
                .map(|account| (account.to_owned(), password.to_owned()))
                .collect(),
            expired: HashSet::from([expired.to_owned()]),
        }
    }

    /// Whether `password` is `account`'s.
    pub(crate) fn matches(&self, account: &str, password: &str) -> bool {
        self.passwords.get(account).is_some_and(|p| p == password)
    }

    /// `account`'s password is now `password` (set elsewhere, by an administrator).
    pub(crate) fn change(&mut self, account: &str, password: &str) -> Result<(), Refusal> {
        replace(&mut self.passwords, account, password)
    }

    /// `account`'s password has expired: what the next login answers is the stand-in's (a
    /// challenge, a temporary token).
    pub(crate) fn expire(&mut self, account: &str) -> Result<(), Refusal> {
        if !self.passwords.contains_key(account) {
            return Err(Refusal::NoSuchAccount);
        }
        self.expired.insert(account.to_owned());
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
