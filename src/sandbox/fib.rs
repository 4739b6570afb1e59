//! The FIB auth stand-in: a login proven by the Ed25519 signature of the hashed email, checked
//! against the user's registered public key under the one digest rule chosen on the sandbox
//! builder (the real service verifies one rule, and which one is not known); 5-minute access tokens renewed by PATCH with the
//! 24-hour refresh token; logout with the access token, which signs the user out: the refresh
//! token issued with that access token is revoked too (as the vendor's refresh tokens name
//! their access token in an `acjti` claim, each pair belongs together); and a resource that
//! takes the access token as `Authorization: Bearer`, as the auth controller's logout does.

use std::sync::Arc;

use serde_json::json;
use wiremock::{MockServer, Request, Respond, ResponseTemplate};

use super::demo;
use super::fault::Operation;
use super::guard::Routes;
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

pub(super) async fn mount(server: &MockServer, shared: &Arc<Shared>) {
    let base = format!(
        "/{}/auth/api/v1/authentication-management",
        super::prefix(S)
    );
    let routes = Routes::new(server, shared, S);
    let session = format!("{base}/session");
    let login = Login(shared.clone());
    routes.add("POST", &session, Operation::Login, login).await;
    let refresh = Refresh(shared.clone());
    routes
        .add("PATCH", session, Operation::Refresh, refresh)
        .await;
    let logout = Logout(shared.clone());
    routes
        .add("POST", format!("{base}/logout"), Operation::Logout, logout)
        .await;
    routes
        .bearer_resource(|| status(401, "UNAUTHORIZED", "Access token is not valid."))
        .await;
}
