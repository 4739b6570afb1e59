//! The Intelligence Fusion Auth API stand-in: user and application tokens, `Origin` required,
//! 24-hour JWTs, and a 5-minute block after repeated failed user logins; and a resource that,
//! as the vendor's other APIs, takes the token as `Authorization: Bearer`.

use std::sync::Arc;

use serde_json::json;
use wiremock::{MockServer, Request, Respond, ResponseTemplate};

use super::demo;
use super::fault::Operation;
use super::guard::Routes;
use super::passwords::{Registrations, Secrets};
use super::state::{json_body, reply, Kind, Shared};
use crate::error::Service;

const S: Service = Service::S7risk;

fn error(status: u16, message: &str) -> ResponseTemplate {
    reply(status, json!({"status": "error", "message": message}))
}

fn token(shared: &Shared, subject: &str) -> ResponseTemplate {
    let token = shared.issue(S, Kind::Access, subject, shared.config.s7risk_lifetime);
    reply(
        200,
        json!({"status": "success", "data": {"accessToken": token}}),
    )
}

/// The fields of a JSON body, or the message of the 422 the service answers for a missing one.
fn fields<const N: usize>(request: &Request, names: [&str; N]) -> Result<[String; N], String> {
    let body = json_body(request).unwrap_or_default();
    let mut out: [String; N] = std::array::from_fn(|_| String::new());
    for (slot, name) in out.iter_mut().zip(names) {
        match body.get(name).and_then(|v| v.as_str()) {
            Some(value) if !value.is_empty() => *slot = value.to_owned(),
            _ => return Err(format!("\"{name}\" is required")),
        }
    }
    Ok(out)
}

fn origin_ok(request: &Request) -> bool {
    request
        .headers
        .get("origin")
        .is_some_and(|v| v.as_bytes() == demo::S7RISK_ORIGIN.as_bytes())
}

/// The stand-in's state: the shared one, and the users' passwords and applications' secrets.
struct State {
    shared: Arc<Shared>,
    secrets: Arc<Registrations>,
}

/// A token route: the user's (`/user/token`) or, with `application`, the application's
/// (`/application/token`). Both check the origin and the body's fields first, and answer a
/// login with the same token.
struct Token {
    state: Arc<State>,
    application: bool,
}

impl Respond for Token {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let shared = &self.state.shared;
        if !origin_ok(request) {
            return error(401, "Origin is not allowed");
        }
        let names = match self.application {
            false => ["email", "password"],
            true => ["clientId", "secret"],
        };
        let [name, secret] = match fields(request, names) {
            Ok(fields) => fields,
            Err(message) => return error(422, &message),
        };
        let refused = match self.application {
            false => self.user_refusal(&name, &secret),
            true => self.application_refusal(&name, &secret),
        };
        if let Some(refused) = refused {
            return refused;
        }
        shared.logged_in(S, &name);
        token(shared, &name)
    }
}

impl Token {
    /// Why a user's login is refused, if it is.
    fn user_refusal(&self, email: &str, password: &str) -> Option<ResponseTemplate> {
        let shared = &self.state.shared;
        if let Some(left) = shared.locked_for(S, email) {
            shared.count(S, |c| c.failed_logins += 1);
            let minutes = left.as_secs().div_ceil(60).max(1);
            return Some(error(
                429,
                &format!("Too many authentication attempts. Try again in {minutes} minutes"),
            ));
        }
        if !self.state.secrets.users.matches(email, password) {
            shared.failed_login(S, email, shared.config.lockout);
            return Some(error(401, "Email and password do not match"));
        }
        if email == demo::S7RISK_EXPIRED_EMAIL {
            shared.count(S, |c| c.failed_logins += 1);
            return Some(error(401, "User access window has expired"));
        }
        None
    }

    /// Why an application's login is refused, if it is.
    fn application_refusal(&self, client_id: &str, secret: &str) -> Option<ResponseTemplate> {
        if self.state.secrets.clients.matches(client_id, secret) {
            return None;
        }
        self.state.shared.count(S, |c| c.failed_logins += 1);
        Some(error(401, "Invalid client credentials"))
    }
}

pub(super) async fn mount(server: &MockServer, shared: &Arc<Shared>) {
    let secrets = Arc::new(Registrations {
        users: Secrets::new([
            (demo::S7RISK_EMAIL, demo::S7RISK_PASSWORD),
            (demo::S7RISK_EXPIRED_EMAIL, demo::S7RISK_PASSWORD),
        ]),
        clients: Secrets::new([(demo::S7RISK_CLIENT_ID, demo::S7RISK_SECRET)]),
    });
    shared.register_passwords(S, Arc::downgrade(&secrets) as _);
    let state = Arc::new(State {
        shared: shared.clone(),
        secrets,
    });
    // The protected resource stands for the vendor's other APIs, which take a live token as
    // `Authorization: Bearer` (its Auth API page); nothing else is documented of them.
    let routes = Routes::new(server, shared, S);
    let base = format!("/{}", super::prefix(S));
    let user = Token {
        state: state.clone(),
        application: false,
    };
    routes
        .add("POST", format!("{base}/user/token"), Operation::Login, user)
        .await;
    let application = Token {
        state,
        application: true,
    };
    let at = format!("{base}/application/token");
    routes.add("POST", at, Operation::Login, application).await;
    routes.bearer_resource(|| error(401, "Unauthorized")).await;
}
