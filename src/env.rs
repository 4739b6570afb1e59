//! Configuration from the environment ([the crate's
//! table](crate#configuration-from-the-environment) lists every variable).
//!
//! Every service's builder has [`SessionBuilder::from_env`]. A service with two kinds of
//! credentials (s7risk, Password Safe) has one [`Profile`] per kind, and `from_env` uses the
//! kind whose own variables are set, never picking one silently. [`profiles`] lists every
//! enabled service's profiles with their variables, and makes a session of any of them
//! ([`Profile::from_env`]): the `tokensmith` command is built on it.
//!
//! Each service declares its variables once, in its own module (`FromEnv::ENV`); the reading
//! and the checks are this file's alone.

use std::ffi::OsString;
use std::sync::Arc;

use zeroize::Zeroize;

use crate::error::{Error, Service};
use crate::provider::Provider;
use crate::secret::SecretString;
use crate::store::TokenStore;
use crate::{AnySession, SessionBuilder};

/// One environment variable a session reads: its name, and whether it is a secret and
/// required. [`Profile::variables`] lists them.
#[derive(Clone, Copy, Debug)]
pub struct Variable {
    name: &'static str,
    secret: bool,
    required: bool,
    /// What the value must be beyond non-empty UTF-8.
    form: Option<Form>,
}

/// What a variable's value must be (said in an error: it "is not `must_be`"), and the check.
#[derive(Clone, Copy)]
struct Form {
    must_be: &'static str,
    check: fn(&str) -> bool,
}

impl std::fmt::Debug for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.must_be)
    }
}

impl Variable {
    /// A required variable whose value is not a secret (an email, a client id).
    pub(crate) const fn text(name: &'static str) -> Self {
        Self {
            name,
            secret: false,
            required: true,
            form: None,
        }
    }

    /// A required variable holding a secret (a password, a key).
    pub(crate) const fn secret(name: &'static str) -> Self {
        Self {
            secret: true,
            ..Self::text(name)
        }
    }

    /// The same variable, optional.
    pub(crate) const fn optional(self) -> Self {
        Self {
            required: false,
            ..self
        }
    }

    /// The same variable, whose value must pass `check`: an error says it "is not `must_be`".
    pub(crate) const fn checked(self, must_be: &'static str, check: fn(&str) -> bool) -> Self {
        Self {
            form: Some(Form { must_be, check }),
            ..self
        }
    }

    /// The variable's name (`FIB_EMAIL`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether its value is a secret (a password, a client secret, an API key, a private key).
    pub fn is_secret(&self) -> bool {
        self.secret
    }

    /// Whether a session of its profile needs it (a base-URL variable is never required: the
    /// base URL may come from the builder, or be the service's production URL).
    pub fn is_required(&self) -> bool {
        self.required
    }
}

/// A service's declaration of what its sessions read from the environment: written once, in
/// the service's module, as [`FromEnv::ENV`]. Public only because that sealed trait
/// names it: nothing outside the crate can make or use one.
#[doc(hidden)]
pub struct Declaration<P: Provider> {
    /// The variable that gives the base URL.
    pub(crate) base_url: &'static str,
    /// Where a base URL comes from, for a service without a production URL (the command's
    /// help says it).
    pub(crate) base_url_hint: Option<&'static str>,
    /// Variables every kind of credentials reads (s7risk's origin).
    pub(crate) shared: &'static [Variable],
    /// One per kind of credentials.
    pub(crate) profiles: &'static [Declared<P>],
}

/// A service whose sessions can be configured from the environment: what it declares.
/// Sealed through [`Provider`]: only the crate's services implement it.
#[doc(hidden)]
pub trait FromEnv: Provider {
    /// What the service's sessions read from the environment (`SessionBuilder::from_env`):
    /// declared once, in the service's module.
    const ENV: Declaration<Self>;
}

// `SERVICES`: each enabled service's profiles, in the order of their documents in `openapi/`
// (build.rs writes it: a module per document whose feature is on, its provider type named by
// the document's `info.x-tokensmith.service`), so that a new service is in `profiles()`, and
// in the command, with no edit here.
include!(concat!(env!("OUT_DIR"), "/profiles.rs"));

/// One kind of a service's credentials, as declared (see [`Declaration`]).
#[doc(hidden)]
pub struct Declared<P: Provider> {
    /// Its name (`s7risk-user`): the command's name for it.
    pub(crate) name: &'static str,
    /// One line about it.
    pub(crate) about: &'static str,
    /// What it logs in as, for errors that tell kinds apart (`a user`).
    pub(crate) kind: &'static str,
    /// Its own variables, beside the service's shared ones.
    pub(crate) variables: &'static [Variable],
    /// Gives the builder the values (all of the declared ones that are set, each checked).
    pub(crate) apply: fn(SessionBuilder<P>, &Values) -> SessionBuilder<P>,
}

/// The checked values of a profile's variables that are set (see [`Declaration`]).
#[doc(hidden)]
pub struct Values {
    read: Vec<(&'static str, SecretString)>,
}

impl Values {
    fn get(&self, variable: &Variable) -> Option<&SecretString> {
        self.read
            .iter()
            .find(|(name, _)| *name == variable.name)
            .map(|(_, value)| value)
    }

    /// A required variable's value. The declaration lists every variable it reads, so it is
    /// there; were it not, the empty text makes `build()` say the setting is missing.
    pub(crate) fn text(&self, variable: &Variable) -> String {
        self.get(variable)
            .map(|value| value.expose_secret().to_owned())
            .unwrap_or_default()
    }

    /// A required secret's value (see [`Self::text`]).
    pub(crate) fn secret(&self, variable: &Variable) -> SecretString {
        self.get(variable)
            .cloned()
            .unwrap_or_else(|| SecretString::new(""))
    }

    /// An optional secret's value, when set.
    pub(crate) fn optional_secret(&self, variable: &Variable) -> Option<SecretString> {
        self.get(variable).cloned()
    }
}

/// What reading one variable found.
enum Read {
    Unset,
    /// Set, and wrong: why, as a phrase that follows the variable's name.
    Wrong(String),
    Good(SecretString),
}

impl Read {
    fn of(variable: &Variable, lookup: &mut dyn FnMut(&str) -> Option<OsString>) -> Self {
        let Some(raw) = lookup(variable.name) else {
            return Self::Unset;
        };
        let value = match raw.into_string() {
            Ok(text) => SecretString::new(text),
            Err(raw) => {
                raw.into_encoded_bytes().zeroize();
                return Self::Wrong("is not UTF-8".into());
            }
        };
        if value.expose_secret().trim().is_empty() {
            return Self::Wrong("is empty".into());
        }
        match variable.form {
            Some(form) if !(form.check)(value.expose_secret()) => {
                Self::Wrong(format!("is not {}", form.must_be))
            }
            _ => Self::Good(value),
        }
    }
}

/// The base-URL variable of `P`, checked as far as it can be before `build()` (whether plain
/// `http` is allowed is the builder's to say).
fn base_url_variable<P: FromEnv>() -> Variable {
    fn is_base_url<P: FromEnv>(text: &str) -> bool {
        crate::transport::rules::base_url(P::SERVICE, text, true).is_ok()
    }
    Variable::text(P::ENV.base_url).optional().checked(
        "a base URL (an absolute http(s) URL with a host, and no user, password, query or \
         fragment)",
        is_base_url::<P>,
    )
}

/// A configuration error about `variables`.
fn error<P: Provider>(message: String, variables: Vec<&'static str>) -> Error {
    Error::configuration(Some(P::SERVICE), message).with_variables(variables)
}

/// Reads `profile`'s variables (the service's shared ones, its own, the base URL) through
/// `lookup`, and gives `builder` those that are set; fails naming every variable that is
/// required and unset, or set and wrong.
fn apply<P: FromEnv>(
    builder: SessionBuilder<P>,
    profile: &Declared<P>,
    lookup: &mut dyn FnMut(&str) -> Option<OsString>,
) -> Result<SessionBuilder<P>, Error> {
    let base_url = base_url_variable::<P>();
    let all = P::ENV
        .shared
        .iter()
        .chain(profile.variables)
        .chain([&base_url]);
    let mut values = Values { read: Vec::new() };
    let (mut problems, mut named) = (Vec::new(), Vec::new());
    for variable in all {
        match Read::of(variable, lookup) {
            Read::Good(value) => values.read.push((variable.name, value)),
            Read::Unset if !variable.required => {}
            Read::Unset => {
                problems.push(format!("{} is not set", variable.name));
                named.push(variable.name);
            }
            Read::Wrong(why) => {
                problems.push(format!("{} {why}", variable.name));
                named.push(variable.name);
            }
        }
    }
    if !problems.is_empty() {
        return Err(error::<P>(problems.join("; "), named));
    }
    let base = values
        .get(&base_url)
        .map(|url| url.expose_secret().to_owned());
    let builder = (profile.apply)(builder, &values);
    Ok(match base {
        Some(url) => builder.base_url(url),
        None => builder,
    })
}

/// The profile whose own variables are set, of a service with more than one.
fn choose<P: FromEnv>(
    lookup: &mut dyn FnMut(&str) -> Option<OsString>,
) -> Result<&'static Declared<P>, Error> {
    let profiles = P::ENV.profiles;
    if let [only] = profiles {
        return Ok(only);
    }
    let set: Vec<(&Declared<P>, Vec<&'static str>)> = profiles
        .iter()
        .map(|profile| {
            let names = profile.variables.iter().map(|v| v.name);
            (
                profile,
                names.filter(|name| lookup(name).is_some()).collect(),
            )
        })
        .collect();
    let chosen: Vec<_> = set.iter().filter(|(_, names)| !names.is_empty()).collect();
    match chosen.as_slice() {
        [(profile, _)] => Ok(profile),
        [] => {
            let ways: Vec<String> = profiles
                .iter()
                .map(|p| format!("{} ({})", and(&required(p)), p.kind))
                .collect();
            Err(error::<P>(
                format!("no credentials are set: set {}", ways.join(", or ")),
                profiles.iter().flat_map(required).collect(),
            ))
        }
        several => {
            let kinds: Vec<String> = several
                .iter()
                .map(|(p, names)| format!("{} ({})", names.join(", "), p.kind))
                .collect();
            let named = several.iter().flat_map(|(_, names)| names.iter().copied());
            Err(error::<P>(
                format!(
                    "credentials of more than one kind are set: {}; unset all but one kind",
                    kinds.join(" and ")
                ),
                named.collect(),
            ))
        }
    }
}

/// The names of a profile's own required variables.
fn required<P: FromEnv>(profile: &Declared<P>) -> Vec<&'static str> {
    let required = profile.variables.iter().filter(|v| v.required);
    required.map(|v| v.name).collect()
}

/// `A`, `A and B`, `A, B and C`.
fn and(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

impl<P: FromEnv> SessionBuilder<P> {
    /// Reads the service's variables from the process environment ([the
    /// table](crate#configuration-from-the-environment)) and gives the builder those that are
    /// set: its credentials and, from
    /// `<SERVICE>_BASE_URL`, its base URL. Returns the builder, so that any setting can still
    /// be changed: a setter called afterwards wins, one called before is replaced by a
    /// variable that is set.
    ///
    /// Where the service has two kinds of credentials, the kind whose own variables are set
    /// is used (see [`crate::env`]). Makes no request.
    ///
    /// ```no_run
    /// # fn run() -> Result<(), tokensmith::Error> {
    /// // FIB_EMAIL and FIB_PRIVATE_KEY, and FIB_BASE_URL when set.
    /// let session = tokensmith::fib::Session::builder().from_env()?.build()?;
    /// # let _ = session;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`crate::ErrorKind::Configuration`] naming ([`Error::variables`]) every variable that
    /// is required and not set, or set but not UTF-8, empty, or malformed; for two kinds of
    /// credentials, naming those set when both kinds' are, or those to set when neither's
    /// is. It never quotes a value.
    pub fn from_env(self) -> Result<Self, Error> {
        self.from_env_with(|name| std::env::var_os(name))
    }

    /// [`Self::from_env`], with the values from `lookup` (a variable's name to its value, or
    /// `None` when it is not set) instead of the process environment: a map in a test, a
    /// secret manager. `lookup` may be asked for a name more than once.
    ///
    /// # Errors
    ///
    /// As [`Self::from_env`].
    pub fn from_env_with(
        self,
        mut lookup: impl FnMut(&str) -> Option<OsString>,
    ) -> Result<Self, Error> {
        let profile = choose::<P>(&mut lookup)?;
        apply(self, profile, &mut lookup)
    }
}

/// One kind of credentials of one service, and the environment variables a session of it
/// reads: [`profiles`] lists every enabled service's.
#[derive(Clone, Copy)]
pub struct Profile {
    name: &'static str,
    about: &'static str,
    service: Service,
    base_url_variable: &'static str,
    base_url_required: Option<&'static str>,
    declared: &'static (dyn Erased + Sync),
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("name", &self.name)
            .field("service", &self.service)
            .finish()
    }
}

/// What a profile does with its service's type, erased.
trait Erased {
    fn variables(&self) -> Vec<Variable>;
    fn open(
        &self,
        lookup: &mut dyn FnMut(&str) -> Option<OsString>,
    ) -> Result<AnySessionBuilder, Error>;
}

impl<P: FromEnv> Erased for Declared<P> {
    fn variables(&self) -> Vec<Variable> {
        let own = P::ENV.shared.iter().chain(self.variables).copied();
        own.chain([base_url_variable::<P>()]).collect()
    }

    fn open(
        &self,
        lookup: &mut dyn FnMut(&str) -> Option<OsString>,
    ) -> Result<AnySessionBuilder, Error> {
        let builder = apply(SessionBuilder::<P>::default(), self, lookup)?;
        Ok(AnySessionBuilder {
            inner: Box::new(builder),
        })
    }
}

impl Profile {
    /// The profiles of service `P`, in its declaration's order.
    pub(crate) fn all<P: FromEnv>() -> Vec<Profile> {
        let profile = |declared: &'static Declared<P>| Profile {
            name: declared.name,
            about: declared.about,
            service: P::SERVICE,
            base_url_variable: P::ENV.base_url,
            base_url_required: P::BASE_URL
                .err()
                .map(|why| P::ENV.base_url_hint.unwrap_or(why)),
            declared,
        };
        P::ENV.profiles.iter().map(profile).collect()
    }

    /// The profile's name: the service's (`fib`), or with its kind of credentials
    /// (`s7risk-user`, `passwordsafe-key`). The `tokensmith` command's name for it.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// One line about it (`Intelligence Fusion, as a user`).
    pub fn about(&self) -> &'static str {
        self.about
    }

    /// Its service.
    pub fn service(&self) -> Service {
        self.service
    }

    /// Every variable a session of this profile reads, in order: the credentials, then the
    /// base URL (never required).
    pub fn variables(&self) -> Vec<Variable> {
        self.declared.variables()
    }

    /// The name of the variable that gives the base URL (`FIB_BASE_URL`).
    pub fn base_url_variable(&self) -> &'static str {
        self.base_url_variable
    }

    /// For a service with no production URL, where its base URL comes from (weavr: Weavr
    /// gives each customer its own); `None` when the service has one, the default.
    pub fn base_url_required(&self) -> Option<&'static str> {
        self.base_url_required
    }

    /// A builder of a session of this profile, configured from the process environment: what
    /// the service's `SessionBuilder::from_env` does, for this kind of credentials alone (the
    /// variables of the service's other kind are not read).
    ///
    /// ```no_run
    /// # fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let name = std::env::var("AUTH_PROFILE")?; // "fib", "s7risk-user", …
    /// let profile = tokensmith::env::profiles()
    ///     .into_iter()
    ///     .find(|profile| profile.name() == name)
    ///     .ok_or("no such profile")?;
    /// let session = profile.from_env()?.build()?;
    /// # let _ = session;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`SessionBuilder::from_env`], bar the choice between kinds of credentials.
    pub fn from_env(&self) -> Result<AnySessionBuilder, Error> {
        self.from_env_with(|name| std::env::var_os(name))
    }

    /// [`Self::from_env`], with the values from `lookup` (see
    /// [`SessionBuilder::from_env_with`]).
    ///
    /// # Errors
    ///
    /// As [`Self::from_env`].
    pub fn from_env_with(
        &self,
        mut lookup: impl FnMut(&str) -> Option<OsString>,
    ) -> Result<AnySessionBuilder, Error> {
        self.declared.open(&mut lookup)
    }
}

/// Every enabled service's profiles (s7risk's two, weavr, accounts, Password Safe's two, fib),
/// in that order.
pub fn profiles() -> Vec<Profile> {
    SERVICES.iter().flat_map(|profiles| profiles()).collect()
}

/// A builder of any service's session, made by [`Profile::from_env`]: the settings a program
/// that does not name the service may still want to change. For any other, use the service's
/// own builder and its `from_env`.
#[must_use]
pub struct AnySessionBuilder {
    inner: Box<dyn ErasedBuilder + Send>,
}

impl std::fmt::Debug for AnySessionBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.inner, f)
    }
}

/// A service's builder with the service's type erased.
trait ErasedBuilder: std::fmt::Debug {
    fn service(&self) -> Service;
    fn base_url(self: Box<Self>, url: String) -> Box<dyn ErasedBuilder + Send>;
    fn token_store(self: Box<Self>, store: Arc<dyn TokenStore>) -> Box<dyn ErasedBuilder + Send>;
    fn build(self: Box<Self>) -> Result<AnySession, Error>;
}

impl<P: Provider> ErasedBuilder for SessionBuilder<P> {
    fn service(&self) -> Service {
        P::SERVICE
    }

    fn base_url(self: Box<Self>, url: String) -> Box<dyn ErasedBuilder + Send> {
        Box::new((*self).base_url(url))
    }

    fn token_store(self: Box<Self>, store: Arc<dyn TokenStore>) -> Box<dyn ErasedBuilder + Send> {
        Box::new((*self).token_store(store))
    }

    fn build(self: Box<Self>) -> Result<AnySession, Error> {
        (*self).build().map(AnySession::from)
    }
}

impl AnySessionBuilder {
    /// The service whose session this builds.
    pub fn service(&self) -> Service {
        self.inner.service()
    }

    /// The base URL, in place of the one the environment gave (see
    /// [`SessionBuilder::base_url`]).
    pub fn base_url(self, url: impl Into<String>) -> Self {
        Self {
            inner: self.inner.base_url(url.into()),
        }
    }

    /// Keeps the token set in `store` too (see [`SessionBuilder::token_store`]).
    pub fn token_store(self, store: impl TokenStore) -> Self {
        Self {
            inner: self.inner.token_store(Arc::new(store)),
        }
    }

    /// Checks the configuration and builds the session, as the service's
    /// [`SessionBuilder::build`] does.
    ///
    /// # Errors
    ///
    /// As [`SessionBuilder::build`].
    pub fn build(self) -> Result<AnySession, Error> {
        self.inner.build()
    }
}
