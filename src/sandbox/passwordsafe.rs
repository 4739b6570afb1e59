//! The BeyondTrust Password Safe stand-in: OAuth client credentials (form body) for a bearer,
//! SignAppin with that bearer or a PS-Auth header for a session cookie that closes after 20
//! idle minutes, Signout, and `GET ManagedAccounts` as an authenticated call to try sessions
//! on. With `passwordsafe_oauth_session_cookie(false)` a SignAppin with a bearer sets no cookie,
//! as the test server of BeyondTrust's own Go client answers, and the bearer alone then
//! carries the session (and its idle close). API version 3.0 is disabled, as an administrator can do: SignAppin asked for it answers
//! 410. Without a `version` the stand-in answers with its default, which is enabled (the
//! document names no default version, and neither does the sandbox).
//!
//! `ManagedAccounts` asks for the session cookie and, for a session an OAuth token opened,
//! that token as `Authorization: Bearer` too: the vendor's page says the OAuth token is "the
//! privileged credential to use in the Authorization header for API requests" and that
//! "cookies are still supported using this sign-in method"; asking for both is the stricter
//! reading, and a session that sends both passes either.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::json;
use wiremock::{MockServer, Request, Respond, ResponseTemplate};

use super::demo;
use super::fault::Operation;
use super::guard::Routes;
use super::passwords::{Registrations, Secrets};
use super::state::{bearer, reply, Kind, Shared};
use crate::error::Service;

const S: Service = Service::PasswordSafe;
const COOKIE: &str = "ASP.NET_SessionId";
/// The user the OAuth client's sessions run as.
const OAUTH_USER: &str = "demo-oauth-user";

/// 410 for a disabled or unknown `version`, as the service answers.
fn version_refused(request: &Request) -> Option<ResponseTemplate> {
    let version = request
        .url
        .query_pairs()
        .find(|(k, _)| k == "version")
        .map(|(_, v)| v.into_owned())?;
    match version.as_str() {
        "3.1" | "3.2" => None,
        other => Some(reply(
            410,
            json!(format!("API version {other} is disabled")),
        )),
    }
}

/// The token endpoint.
struct Token(Arc<Shared>, Arc<Registrations>);

impl Respond for Token {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let shared = &self.0;
        let is_form = request
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let form: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(&request.body)
                .into_owned()
                .collect();
        let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
        if !is_form || field("grant_type") != "client_credentials" {
            return reply(400, json!({"error": "unsupported_grant_type"}));
        }
        if !self
            .1
            .clients
            .matches(field("client_id"), field("client_secret"))
        {
            shared.count(S, |c| c.failed_logins += 1);
            return reply(401, json!({"error": "invalid_client"}));
        }
        let lifetime = shared.config.passwordsafe_token_lifetime;
        let token = shared.issue(S, Kind::Access, field("client_id"), lifetime);
        reply(
            200,
            json!({
                "access_token": token,
                "expires_in": lifetime.as_secs(),
                "token_type": "Bearer",
                "scope": "publicapi",
            }),
        )
    }
}

/// `PS-Auth key=…; runas=…; pwd=[…];` → (key, runas, password).
fn ps_auth(value: &str) -> Option<(String, String, Option<String>)> {
    let rest = value.strip_prefix("PS-Auth ")?;
    let (mut key, mut runas, mut pwd) = (None, None, None);
    for part in rest.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once('=')?;
        match name.trim() {
            "key" => key = Some(value.to_owned()),
            "runas" => runas = Some(value.to_owned()),
            "pwd" => pwd = Some(value.strip_prefix('[')?.strip_suffix(']')?.to_owned()),
            _ => return None,
        }
    }
    Some((key?, runas?, pwd))
}

/// The stand-in's own state: the sessions that bearers alone carry.
struct State {
    shared: Arc<Shared>,
    /// Sessions opened without a cookie, by the bearer that opened (and carries) them.
    bearer_sessions: Mutex<HashMap<String, String>>,
}

impl State {
    fn bearer_sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.bearer_sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

struct SignAppin(Arc<State>, Arc<Registrations>);

impl Respond for SignAppin {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let shared = &self.0.shared;
        if let Some(refused) = version_refused(request) {
            return refused;
        }
        let authorization = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let bearer = bearer(request);
        let user = if let Some(token) = bearer {
            shared
                .check(S, Kind::Access, token)
                .map(|_| OAUTH_USER.to_owned())
        } else {
            ps_auth(authorization).and_then(|(key, runas, pwd)| {
                (key == demo::PASSWORDSAFE_API_KEY
                    && pwd.is_some_and(|pwd| self.1.users.matches(&runas, &pwd)))
                .then_some(runas)
            })
        };
        let Some(user) = user else {
            shared.count(S, |c| c.failed_logins += 1);
            return reply(401, json!("Unauthorized"));
        };
        shared.logged_in(S, &user);
        let session = shared.issue_session(S, &user, shared.config.passwordsafe_idle);
        let mut response = ResponseTemplate::new(200);
        match bearer {
            Some(token) if !shared.config.passwordsafe_oauth_cookie => {
                self.0.bearer_sessions().insert(token.to_owned(), session);
            }
            _ => {
                response = response.insert_header(
                    "set-cookie",
                    format!("{COOKIE}={session}; path=/; secure; HttpOnly; SameSite=Lax").as_str(),
                );
            }
        }
        response.set_body_json(json!({
            "UserId": 7,
            "SID": "S-1-5-21-1004336348-1177238915-682003330-1107",
            "EmailAddress": format!("{user}@example.com"),
            "UserName": user,
            "Name": "Demo User",
        }))
    }
}

/// The session a request's cookie names, or (without a cookie) the one its bearer carries,
/// kept alive by this use. A bearer carries its session only while the token itself lives.
fn session(state: &State, request: &Request) -> Option<String> {
    let shared = &state.shared;
    let idle = shared.config.passwordsafe_idle;
    let cookie = request
        .headers
        .get("cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|cookies| {
            cookies
                .split(';')
                .filter_map(|c| c.trim().split_once('='))
                .find(|(name, _)| *name == COOKIE)
                .map(|(_, value)| value.to_owned())
        });
    let value = match cookie {
        Some(value) => value,
        None => {
            let token = bearer(request)?;
            shared.check(S, Kind::Access, token)?;
            state.bearer_sessions().get(token)?.clone()
        }
    };
    shared.touch(S, Kind::Session, &value, idle).map(|_| value)
}

struct Signout(Arc<State>);

impl Respond for Signout {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let shared = &self.0.shared;
        let Some(session) = session(&self.0, request) else {
            return reply(401, json!("Unauthorized"));
        };
        shared.revoke(&session);
        self.0.bearer_sessions().retain(|_, s| *s != session);
        shared.count(S, |c| c.logouts += 1);
        ResponseTemplate::new(200)
    }
}

/// Whether a request may use the API: a live session and, for a session an OAuth token opened
/// with a cookie, that token too as its bearer (a session the bearer alone carries has it by
/// construction). Only then does the session's idle window slide.
fn api_allowed(state: &State, request: &Request) -> bool {
    let shared = &state.shared;
    let with_cookie = request
        .headers
        .get("cookie")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|cookies| cookies.contains(COOKIE));
    if with_cookie {
        let cookies = request.headers["cookie"].to_str().unwrap_or_default();
        let Some(value) = cookies
            .split(';')
            .filter_map(|c| c.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE)
            .map(|(_, value)| value)
        else {
            return false;
        };
        let Some(issued) = shared.check(S, Kind::Session, value) else {
            return false;
        };
        let bearer_ok = issued.subject != OAUTH_USER
            || bearer(request).is_some_and(|t| shared.check(S, Kind::Access, t).is_some());
        if !bearer_ok {
            return false;
        }
    }
    session(state, request).is_some()
}

struct ManagedAccounts(Arc<State>);

impl Respond for ManagedAccounts {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if !api_allowed(&self.0, request) {
            return reply(401, json!("Unauthorized"));
        }
        self.0.shared.count(S, |c| c.resource_calls += 1);
        reply(
            200,
            json!([{"SystemId": 1, "SystemName": "db01", "AccountId": 10, "AccountName": "sa"}]),
        )
    }
}

pub(super) async fn mount(server: &MockServer, shared: &Arc<Shared>) {
    let secrets = Arc::new(Registrations {
        clients: Secrets::new([(
            demo::PASSWORDSAFE_CLIENT_ID,
            demo::PASSWORDSAFE_CLIENT_SECRET,
        )]),
        users: Secrets::new([(demo::PASSWORDSAFE_RUNAS, demo::PASSWORDSAFE_PASSWORD)]),
    });
    shared.register_passwords(S, Arc::downgrade(&secrets) as _);
    let base = format!("/{}", super::prefix(S));
    let state = Arc::new(State {
        shared: shared.clone(),
        bearer_sessions: Mutex::default(),
    });
    let routes = Routes::new(server, shared, S);
    let token = Token(shared.clone(), secrets.clone());
    let at = format!("{base}/Auth/connect/token");
    routes.add("POST", at, Operation::Login, token).await;
    let sign_in = SignAppin(state.clone(), secrets);
    let at = format!("{base}/Auth/SignAppin");
    routes.add("POST", at, Operation::Login, sign_in).await;
    let sign_out = Signout(state.clone());
    let at = format!("{base}/Auth/Signout");
    routes.add("POST", at, Operation::Logout, sign_out).await;
    let accounts = ManagedAccounts(state);
    let at = format!("{base}/ManagedAccounts");
    routes.add("GET", at, Operation::Resource, accounts).await;
}
