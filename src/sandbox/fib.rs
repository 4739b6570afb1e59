//! The FIB auth stand-in: a login proven by the Ed25519 signature of the hashed email, checked
//! against the user's registered public key under the one digest rule chosen on the sandbox
//! builder (the real service verifies one rule, and which one is not known); 5-minute access tokens renewed by PATCH with the
//! 24-hour refresh token; logout with the access token, which signs the user out: the refresh
//! token issued with that access token is revoked too (as the vendor's refresh tokens name
//! their access token in an `acjti` claim, each pair belongs together); and a resource that
//! takes the access token as `Authorization: Bearer`, as the auth controller's logout does.

use std::sync::Arc;

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::demo;
use super::fault::Operation;
use super::guard::guard;
use super::state::{bearer, json_body, reply, Kind, Shared};
use crate::error::Service;

const S: Service = Service::Fib;

fn status(code: u16, name: &str, message: &str) -> ResponseTemplate {
    reply(
        code,
        json!({"status": {"code": code, "name": name, "message": message}, "data": null}),
    )
}

fn tokens(shared: &Shared, subject: &str, message: &str) -> ResponseTemplate {
    let lifetime = shared.config.fib_access_lifetime;
    let access = shared.issue(S, Kind::Access, subject, lifetime);
    let refresh = shared.issue(
        S,
        Kind::Refresh,
        subject,
        shared.config.fib_refresh_lifetime,
    );
    shared.link(&access, &refresh);
    reply(
        200,
        json!({
            "status": {"code": 200, "name": "OK", "message": message},
            "data": {
                "accessToken": access,
                "refreshToken": refresh,
                "expirationTime": lifetime.as_secs(),
            }
        }),
    )
}

struct Login(Arc<Shared>);

impl Respond for Login {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let shared = &self.0;
        let body = json_body(request).unwrap_or_default();
        let field = |name: &str| body.get(name).and_then(|v| v.as_str()).unwrap_or_default();
        let (email, signature, public_key) = (
            field("email"),
            field("signature"),
            field("authPublicKeyHex"),
        );
        if email.is_empty() || signature.is_empty() || public_key.is_empty() {
            return status(400, "BAD_REQUEST", "Request body is not valid.");
        }
        if email != demo::FIB_EMAIL && email != demo::FIB_EVEN_DIGEST_EMAIL {
            shared.count(S, |c| c.failed_logins += 1);
            return status(404, "NOT_FOUND", "User not found.");
        }
        if !public_key.eq_ignore_ascii_case(demo::FIB_PUBLIC_KEY)
            || !crate::fib::sign::verify_email(
                public_key,
                email,
                signature,
                shared.config.fib_digest,
            )
        {
            shared.count(S, |c| c.failed_logins += 1);
            return status(
                422,
                "UNPROCESSABLE_ENTITY",
                "User signature could not be verified.",
            );
        }
        shared.logged_in(S, email);
        tokens(shared, email, "User authorization has been successful.")
    }
}

struct Refresh(Arc<Shared>);

impl Respond for Refresh {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let shared = &self.0;
        let Some(issued) = bearer(request).and_then(|t| shared.check(S, Kind::Refresh, t)) else {
            return status(401, "UNAUTHORIZED", "Refresh token is not valid.");
        };
        shared.count(S, |c| c.refreshes += 1);
        tokens(shared, &issued.subject, "Tokens have been refreshed.")
    }
}

struct Logout(Arc<Shared>);

impl Respond for Logout {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let shared = &self.0;
        let token = bearer(request).unwrap_or_default();
        if shared.check(S, Kind::Access, token).is_none() {
            return status(401, "UNAUTHORIZED", "Access token is not valid.");
        }
        // Signing out ends the session: the pair's refresh token can renew it no more.
        shared.revoke_linked(token);
        shared.count(S, |c| c.logouts += 1);
        reply(
            200,
            json!({"status": {"code": 200, "name": "OK", "message": "User has been logged out."}, "data": {}}),
        )
    }
}

/// The protected resource: a live access token as `Authorization: Bearer`.
struct Resource(Arc<Shared>);

impl Respond for Resource {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let shared = &self.0;
        let Some(issued) = bearer(request).and_then(|t| shared.check(S, Kind::Access, t)) else {
            return status(401, "UNAUTHORIZED", "Access token is not valid.");
        };
        shared.count(S, |c| c.resource_calls += 1);
        reply(200, json!({"service": "fib", "subject": issued.subject}))
    }
}

pub(super) async fn mount(server: &MockServer, shared: &Arc<Shared>) {
    let base = format!(
        "/{}/auth/api/v1/authentication-management",
        super::prefix(S)
    );
    Mock::given(method("POST"))
        .and(path(format!("{base}/session")))
        .respond_with(guard(shared, S, Operation::Login, Login(shared.clone())))
        .mount(server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(format!("{base}/session")))
        .respond_with(guard(
            shared,
            S,
            Operation::Refresh,
            Refresh(shared.clone()),
        ))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{base}/logout")))
        .respond_with(guard(shared, S, Operation::Logout, Logout(shared.clone())))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/{}/resource", super::prefix(S))))
        .respond_with(guard(
            shared,
            S,
            Operation::Resource,
            Resource(shared.clone()),
        ))
        .mount(server)
        .await;
}
