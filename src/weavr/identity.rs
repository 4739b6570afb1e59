//! Which identity a weavr session's token acts for, and the two shapes of the identities list.

use super::types;

/// Which identity the session's token acts for.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum IdentityChoice {
    /// The sign-in token as it is; when it may only be exchanged (`tokenType` AUTH), the access
    /// token of the identity the sign-in answer names, or, when it names none and the user has
    /// exactly one identity, of that one.
    #[default]
    Automatic,
    /// Always the sign-in token.
    SignInToken,
    /// This identity's access token.
    Identity(IdentityId),
}

/// The kind of an identity (weavr's `IdentityType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IdentityType {
    /// A consumer (a person).
    Consumer,
    /// A corporate (a business).
    Corporate,
}

impl IdentityType {
    /// The service's name for it (`CONSUMER`, `CORPORATE`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Consumer => "CONSUMER",
            Self::Corporate => "CORPORATE",
        }
    }
}

/// An identity the session acts for: its kind and its id (weavr's `IdentityId`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct IdentityId {
    /// The kind of identity.
    pub kind: IdentityType,
    /// The identity's identifier (digits).
    pub id: String,
}

impl IdentityId {
    /// The identity of kind `kind` with identifier `id`.
    pub fn new(kind: IdentityType, id: impl Into<String>) -> Self {
        Self {
            kind,
            id: id.into(),
        }
    }

    /// As the generated client sends it.
    pub(super) fn to_api(&self) -> types::IdentityId {
        types::IdentityId {
            id: self.id.clone(),
            type_: match self.kind {
                IdentityType::Consumer => types::IdentityType::Consumer,
                IdentityType::Corporate => types::IdentityType::Corporate,
            },
        }
    }
}

impl types::IdentitiesResponse {
    /// The identities, whichever of the two shapes Weavr documents the service answered: the
    /// page object of its OpenAPI document or the bare array of its API reference page.
    pub fn identities(&self) -> &[types::Identity] {
        match self {
            Self::List(list) => &list.0,
            Self::Page(page) => &page.identities,
        }
    }

    /// The identities, owned (see [`Self::identities`]).
    pub fn into_identities(self) -> Vec<types::Identity> {
        match self {
            Self::List(list) => list.0,
            Self::Page(page) => page.identities,
        }
    }

    /// How many identities there are in all (`count`), when the answer is a page object; a
    /// bare array says nothing beyond itself.
    pub fn count(&self) -> Option<i32> {
        match self {
            Self::List(_) => None,
            Self::Page(page) => Some(page.count),
        }
    }
}
