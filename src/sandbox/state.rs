//! What the stand-ins remember: issued tokens, failed logins, and counters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::json;
use wiremock::ResponseTemplate;

use super::fault::Faults;
use super::passwords::{Book, Passwords, Refusal};
use super::Config;
use crate::clock::Clock;
use crate::error::Service;

/// What one stand-in has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Successful logins (token or session issued with credentials).
    pub logins: u64,
    /// Logins refused (wrong credentials, locked account, bad signature, …).
    pub failed_logins: u64,
    /// Successful refreshes.
    pub refreshes: u64,
    /// Step-up challenges started.
    pub challenges: u64,
    /// Step-up challenges verified.
    pub verifications: u64,
    /// Sessions ended (logout, revoke, sign-out).
    pub logouts: u64,
    /// Identity lists answered (weavr's `GET /identities`).
    pub identity_lists: u64,
    /// Access tokens issued for an identity in exchange for a sign-in token (weavr's
    /// `POST /access_token`).
    pub exchanges: u64,
    /// Requests a fault answered instead of the stand-in ([`super::Sandbox::fail`]); a slow
    /// answer, which is the stand-in's own, counts here too.
    pub faults: u64,
    /// Requests the protected resource accepted ([`super::Sandbox::resource_url`]).
    pub resource_calls: u64,
}

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Access,
    Refresh,
    /// A server-side session named by a cookie, alive while in use.
    Session,
}

#[derive(Clone, Debug)]
pub(crate) struct Issued {
    pub(crate) service: Service,
    pub(crate) kind: Kind,
    pub(crate) subject: String,
    pub(crate) expires_at: Instant,
}

#[derive(Default)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
}

pub(crate) struct Shared {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: Config,
    counters: Mutex<HashMap<Service, Counters>>,
    tokens: Mutex<HashMap<String, Issued>>,
    failures: Mutex<HashMap<(Service, String), Failures>>,
    /// Tokens that die with another one, by that token ([`Shared::link`]).
    links: Mutex<HashMap<String, Vec<String>>>,
    /// The answer faults in force.
    pub(crate) faults: Faults,
    /// Each stand-in's accounts, for the password events of [`super::Fault`]: weak, as the
    /// stand-ins' own state holds this one (their mounted responders keep them alive).
    passwords: Mutex<HashMap<Service, Weak<dyn Passwords>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(crate) fn new(clock: Arc<dyn Clock>, config: Config) -> Self {
        Self {
            clock,
            config,
            counters: Mutex::default(),
            tokens: Mutex::default(),
            failures: Mutex::default(),
            links: Mutex::default(),
            faults: Faults::default(),
            passwords: Mutex::default(),
        }
    }

    /// Makes `passwords` the accounts of `service`'s stand-in.
    pub(crate) fn register_passwords(&self, service: Service, passwords: Weak<dyn Passwords>) {
        lock(&self.passwords).insert(service, passwords);
    }

    /// The accounts of `service`'s stand-in, when it has any.
    pub(crate) fn passwords(&self, service: Service) -> Result<Arc<dyn Passwords>, Refusal> {
        lock(&self.passwords)
            .get(&service)
            .and_then(Weak::upgrade)
            .ok_or(Refusal::Undocumented)
    }

    /// Forgets every token `service` has issued (of every kind).
    pub(crate) fn revoke_all(&self, service: Service) {
        lock(&self.tokens).retain(|_, issued| issued.service != service);
    }

    pub(crate) fn counters(&self, service: Service) -> Counters {
        lock(&self.counters)
            .get(&service)
            .copied()
            .unwrap_or_default()
    }

    pub(crate) fn count(&self, service: Service, f: impl FnOnce(&mut Counters)) {
        f(lock(&self.counters).entry(service).or_default());
    }

    /// A JWT-shaped token whose `exp` claim says when it expires (unsigned: the sandbox is
    /// its only verifier).
    pub(crate) fn issue(
        &self,
        service: Service,
        kind: Kind,
        subject: &str,
        lifetime: Duration,
    ) -> String {
        let exp = (self.clock.system_now() + lifetime)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = json!({
            "sub": subject,
            "exp": exp,
            "typ": match kind {
                Kind::Access => "access",
                Kind::Refresh => "refresh",
                Kind::Session => "session",
            },
            "jti": format!("{:016x}", fastrand::u64(..)),
        });
        let token = format!(
            "{}.{}.{}",
            b64.encode(r#"{"alg":"none","typ":"JWT","kid":"tokensmith-sandbox"}"#),
            b64.encode(payload.to_string()),
            b64.encode(fastrand::u64(..).to_be_bytes()),
        );
        self.register(&token, service, kind, subject, lifetime);
        token
    }

    /// The live token `token` of `service` and `kind`, if it is one.
    pub(crate) fn check(&self, service: Service, kind: Kind, token: &str) -> Option<Issued> {
        let issued = lock(&self.tokens).get(token).cloned()?;
        (issued.service == service && issued.kind == kind && self.clock.now() < issued.expires_at)
            .then_some(issued)
    }

    /// An opaque random value registered as a [`Kind::Session`] (session cookies, temporary
    /// tokens).
    pub(crate) fn issue_session(
        &self,
        service: Service,
        subject: &str,
        lifetime: Duration,
    ) -> String {
        let value = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        self.register(&value, service, Kind::Session, subject, lifetime);
        value
    }

    /// Remembers `token`, issued by `service` as `kind` to `subject`, for `lifetime` from now.
    fn register(
        &self,
        token: &str,
        service: Service,
        kind: Kind,
        subject: &str,
        lifetime: Duration,
    ) {
        let issued = Issued {
            service,
            kind,
            subject: subject.to_owned(),
            expires_at: self.clock.now() + lifetime,
        };
        lock(&self.tokens).insert(token.to_owned(), issued);
    }

    /// Uses a live token: its life starts again (`window` from now), as sessions that close
    /// when idle do. Returns it when it was live.
    pub(crate) fn touch(
        &self,
        service: Service,
        kind: Kind,
        token: &str,
        window: Duration,
    ) -> Option<Issued> {
        let now = self.clock.now();
        let mut tokens = lock(&self.tokens);
        let issued = tokens.get_mut(token)?;
        if issued.service != service || issued.kind != kind || now >= issued.expires_at {
            return None;
        }
        issued.expires_at = now + window;
        Some(issued.clone())
    }

    /// Forgets a token (logout, revoke).
    pub(crate) fn revoke(&self, token: &str) -> Option<Issued> {
        lock(&self.tokens).remove(token)
    }

    /// Records that `dependent` dies with `token`: [`Shared::revoke_linked`] on `token` also
    /// forgets it (the access tokens a refresh token issued, the refresh token issued with an
    /// access token).
    pub(crate) fn link(&self, token: &str, dependent: &str) {
        lock(&self.links)
            .entry(token.to_owned())
            .or_default()
            .push(dependent.to_owned());
    }

    /// Forgets a token and every token linked to it ([`Shared::link`]), transitively. Returns
    /// the token itself, when it was known.
    pub(crate) fn revoke_linked(&self, token: &str) -> Option<Issued> {
        let revoked = self.revoke(token);
        let mut pending = vec![token.to_owned()];
        while let Some(next) = pending.pop() {
            let dependents = lock(&self.links).remove(&next).unwrap_or_default();
            for dependent in dependents {
                self.revoke(&dependent);
                pending.push(dependent);
            }
        }
        revoked
    }

    /// How long `account` is still locked out, if it is.
    pub(crate) fn locked_for(&self, service: Service, account: &str) -> Option<Duration> {
        let now = self.clock.now();
        let failures = lock(&self.failures);
        let until = failures.get(&(service, account.to_owned()))?.locked_until?;
        (now < until).then(|| until - now)
    }

    /// Records a refused login; after too many in a row the account is locked for `lockout`.
    /// Returns how long the account is now locked, if it is.
    pub(crate) fn failed_login(
        &self,
        service: Service,
        account: &str,
        lockout: Duration,
    ) -> Option<Duration> {
        self.count(service, |c| c.failed_logins += 1);
        let mut failures = lock(&self.failures);
        let entry = failures.entry((service, account.to_owned())).or_default();
        entry.count += 1;
        if entry.count >= self.config.max_failed_logins {
            entry.count = 0;
            entry.locked_until = Some(self.clock.now() + lockout);
            return Some(lockout);
        }
        None
    }

    /// Records a successful login.
    pub(crate) fn logged_in(&self, service: Service, account: &str) {
        self.count(service, |c| c.logins += 1);
        lock(&self.failures).remove(&(service, account.to_owned()));
    }
}

/// A stand-in's state: the sandbox's shared state, and the stand-in's own behind a lock.
pub(crate) struct Stand<T> {
    pub(crate) shared: Arc<Shared>,
    own: Mutex<T>,
}

impl<T> Stand<T> {
    pub(crate) fn new(shared: &Arc<Shared>, own: T) -> Arc<Self> {
        Arc::new(Self {
            shared: shared.clone(),
            own: Mutex::new(own),
        })
    }

    /// The stand-in's own state, locked.
    pub(crate) fn own(&self) -> std::sync::MutexGuard<'_, T> {
        lock(&self.own)
    }
}

/// The account events of `Sandbox::fail` for a stand-in whose own state keeps a [`Book`].
impl<T: AsMut<Book> + Send> Passwords for Stand<T> {
    fn change(&self, account: &str, password: &str) -> Result<(), Refusal> {
        self.own().as_mut().change(account, password)
    }

    fn expire(&self, account: &str) -> Result<(), Refusal> {
        self.own().as_mut().expire(account)
    }
}

/// The bearer token of a request, if any.
pub(crate) fn bearer(request: &wiremock::Request) -> Option<&str> {
    request
        .headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// The request's JSON body, when it is JSON sent as JSON.
pub(crate) fn json_body(request: &wiremock::Request) -> Option<serde_json::Value> {
    let is_json = request
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    is_json
        .then(|| serde_json::from_slice(&request.body).ok())
        .flatten()
}

/// A JSON answer.
pub(crate) fn reply(status: u16, body: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn revoking_a_token_revokes_what_was_linked_to_it() {
        let shared = Shared::new(
            Arc::new(ManualClock::new()),
            super::super::Sandbox::builder().config,
        );
        let hour = Duration::from_secs(3600);
        let s = Service::Accounts;
        let refresh = shared.issue(s, Kind::Refresh, "u", hour);
        let access = shared.issue(s, Kind::Access, "u", hour);
        let id = shared.issue(s, Kind::Session, "u", hour);
        let later = shared.issue(s, Kind::Access, "u", hour);
        let unrelated = shared.issue(s, Kind::Access, "u", hour);
        for dependent in [&access, &id, &later] {
            shared.link(&refresh, dependent);
        }
        // A chain is followed too.
        let chained = shared.issue(s, Kind::Refresh, "u", hour);
        shared.link(&later, &chained);

        assert!(shared.revoke_linked(&refresh).is_some());

        assert!(shared.check(s, Kind::Refresh, &refresh).is_none());
        assert!(shared.check(s, Kind::Access, &access).is_none());
        assert!(shared.check(s, Kind::Session, &id).is_none());
        assert!(shared.check(s, Kind::Access, &later).is_none());
        assert!(shared.check(s, Kind::Refresh, &chained).is_none());
        assert!(shared.check(s, Kind::Access, &unrelated).is_some());
        assert!(shared.revoke_linked(&refresh).is_none(), "already gone");
    }
}
