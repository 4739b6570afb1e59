//! What the reqwest middleware and the tower layer share: the session they authorize with, the
//! session as the exchange sees it, and the credential rule they ask of every request (the
//! session's own scope, or the hosts `only_hosts` named). Each adapter supplies only its
//! differences: how it reads a request's destination, and how it sends.

use std::sync::Arc;

use super::exchange::{exchange, Authorizer, Sender};
use super::rules::{HostPattern, Scope, Verdict};
use crate::error::Error;
use crate::session::AnySession;

/// A session fitted to another HTTP stack.
#[derive(Clone)]
pub(crate) struct Adapter {
    session: AnySession,
    auth: Arc<dyn Authorizer>,
    scope: Scope,
}

impl Adapter {
    /// `session`, its credentials going where the session's may go.
    pub(crate) fn new(session: AnySession) -> Self {
        Self {
            auth: session.authorizer(),
            scope: session.engine().endpoint.scope.clone(),
            session,
        }
    }

    /// The credentials go only to `hosts` (parsed as `HostPattern::list` does), in place of
    /// the session's own list.
    pub(crate) fn only_hosts<I, S>(&mut self, hosts: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.scope = self.scope.with_hosts(HostPattern::list(hosts));
    }

    /// The session the adapter authorizes with.
    pub(crate) fn session(&self) -> &AnySession {
        &self.session
    }

    /// The rule the adapter asks of every request.
    pub(crate) fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The adapter's `Debug`, under `name`: the session and the hosts (never a credential).
    pub(crate) fn debug<'a, 'b>(
        &self,
        f: &'a mut std::fmt::Formatter<'b>,
        name: &str,
    ) -> std::fmt::DebugStruct<'a, 'b> {
        let mut debug = f.debug_struct(name);
        debug
            .field("session", &self.session)
            .field("hosts", &self.scope.hosts());
        debug
    }

    /// What a request the rule judged `verdict` (going to `host`) gets: `Ok(true)` the
    /// credentials, `Ok(false)` nothing (it passes untouched: the credentials are not for its
    /// host), or the error that refuses it (they must not go where it goes).
    pub(crate) fn admit(&self, verdict: Verdict, host: Option<&str>) -> Result<bool, Error> {
        match verdict {
            Verdict::Carry => Ok(true),
            Verdict::Elsewhere => Ok(false),
            verdict => Err(self
                .scope
                .refusal(self.session.service(), verdict, host)
                .expect_err("a verdict other than Carry is refused")),
        }
    }

    /// Sends `request` through `sender`, as [`Self::admit`] said (`admitted`): with the
    /// credentials and the session's one exchange, untouched, or not at all. `fail` makes the
    /// sender's error of a refusal, or of credentials that could not be had.
    pub(crate) async fn send<S: Sender>(
        &self,
        admitted: Result<bool, Error>,
        mut request: S::Request,
        sender: &mut S,
        fail: fn(Error) -> S::Error,
    ) -> Result<S::Response, S::Error> {
        if !admitted.map_err(fail)? {
            return sender.send(request).await;
        }
        self.auth
            .authorize(S::headers_mut(&mut request))
            .await
            .map_err(fail)?;
        exchange(self.auth.as_ref(), request, "", None, sender).await
    }
}
