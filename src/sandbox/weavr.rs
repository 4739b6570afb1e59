//! The Weavr Multi auth stand-in: api-key on every call, password sign-in (AUTH tokens; wrong
//! credentials answer 403 without a body, as the vendor documents) with a 30-minute lock after
//! repeated failures and an expired-password user, one identity and its access tokens, tokens
//! that live 5 minutes from last use, step-up by SMS one-time password (always 123456, as on
//! Weavr's sandbox) or push (approved at once), logout, and password update. `/identities`
//! answers the page object of the vendor's OpenAPI document, or (`weavr_identities_as_array`)
//! the bare array of its API reference page.
//! `GET /managed_accounts` stands for the calls that need a stepped-up identity token.
//!
//! SMS challenges follow the vendor's rules: starting one while one is open sends another SMS
//! only 15 s after the last (409 `RETRY_IN_15SEC` before; the open challenge stays as it is),
//! at most 3 per challenge (then 409 `CHALLENGE_LIMIT_EXCEEDED`); a code that is
//! not six digits answers 400; wrong codes answer 409 `VERIFICATION_CODE_INVALID`, then
//! `ONE_CHALLENGE_LIMIT_REMAINING` when one try is left, then `CHALLENGE_LIMIT_EXCEEDED`,
//! which closes the challenge (3 wrong codes in all).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use wiremock::matchers::path_regex;
use wiremock::{MockServer, Request, Respond, ResponseTemplate};

use super::demo;
use super::fault::Operation;
use super::guard::Routes;
use super::passwords::Book;
use super::state::{bearer, json_body, reply, Kind, Shared, Stand};
use crate::error::Service;

const S: Service = Service::Weavr;

/// Wrong codes one SMS challenge takes; the last answers `CHALLENGE_LIMIT_EXCEEDED`.
const WRONG_CODE_LIMIT: u32 = 3;
/// SMS one challenge sends at most.
const SMS_LIMIT: u32 = 3;
/// How soon another SMS may be sent for an open challenge.
const RESEND_AFTER: Duration = Duration::from_secs(15);

/// An open SMS challenge.
struct Otp {
    /// When the last SMS went out; the challenge lives from then.
    sent_at: Instant,
    sms: u32,
    wrong: u32,
}

/// The stand-in's own state. A sign-in with an expired password answers 409 with a temporary
/// token.
#[derive(Default)]
struct Users {
    book: Book,
    /// Temporary tokens of expired-password sign-ins, by user.
    temporary: HashMap<String, String>,
    /// Access tokens (`tokenType` ACCESS) as opposed to sign-in tokens.
    access: HashSet<String>,
    stepped_up: HashSet<String>,
    /// OTP challenges in flight, by token.
    challenges: HashMap<String, Otp>,
}

impl AsMut<Book> for Users {
    fn as_mut(&mut self) -> &mut Book {
        &mut self.book
    }
}

type State = Stand<Users>;

fn with_ref(response: ResponseTemplate) -> ResponseTemplate {
    response.insert_header(
        "request-ref",
        format!("sandbox-{:016x}", fastrand::u64(..)).as_str(),
    )
}

fn error_code(status: u16, code: &str) -> ResponseTemplate {
    with_ref(reply(status, json!({"errorCode": code})))
}

fn api_key_ok(request: &Request) -> bool {
    request
        .headers
        .get("api-key")
        .is_some_and(|v| v.as_bytes() == demo::WEAVR_API_KEY.as_bytes())
}

/// The live token of a request (its life starts again), as (token, user).
fn token(state: &State, request: &Request) -> Option<(String, String)> {
    let token = bearer(request)?;
    let issued = state
        .shared
        .touch(S, Kind::Access, token, state.shared.config.weavr_idle)?;
    Some((token.to_owned(), issued.subject))
}

fn identity() -> serde_json::Value {
    json!({"type": "CORPORATE", "id": demo::WEAVR_IDENTITY_ID})
}

struct Handler {
    state: Arc<State>,
    route: Route,
}

#[derive(Clone, Copy)]
enum Route {
    Login,
    Identities,
    AccessToken,
    OtpStart,
    OtpVerify,
    Push,
    Logout,
    PasswordUpdate,
    ManagedAccounts,
}

impl Respond for Handler {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if !api_key_ok(request) {
            return with_ref(ResponseTemplate::new(401));
        }
        let state = &self.state;
        match self.route {
            Route::Login => login(state, request),
            Route::PasswordUpdate => password_update(state, request),
            route => {
                let Some((token, user)) = token(state, request) else {
                    return with_ref(ResponseTemplate::new(401));
                };
                authenticated(state, route, request, &token, &user)
            }
        }
    }
}

fn login(state: &State, request: &Request) -> ResponseTemplate {
    let shared = &state.shared;
    let body = json_body(request).unwrap_or_default();
    let email = body["email"].as_str().unwrap_or_default().to_owned();
    let password = body["password"]["value"].as_str().unwrap_or_default();
    if email.is_empty() || password.is_empty() {
        let field = if email.is_empty() {
            "email"
        } else {
            "password.value"
        };
        return with_ref(reply(
            400,
            json!({"message": "Request is invalid", "syntaxErrors": {"invalidFields": [
                {"params": [], "fieldName": field, "error": "REQUIRED"}
            ]}}),
        ));
    }
    if shared.locked_for(S, &email).is_some() {
        shared.count(S, |c| c.failed_logins += 1);
        return with_ref(ResponseTemplate::new(423));
    }
    let mut users = state.own();
    if !users.book.matches(&email, password) {
        drop(users);
        shared.failed_login(S, &email, shared.config.weavr_lockout);
        // "The authentication credentials are not found or are incorrect": 403, no body.
        return with_ref(ResponseTemplate::new(403));
    }
    if users.book.expired.contains(&email) {
        let temporary = shared.issue_session(S, &email, shared.config.weavr_idle);
        users.temporary.insert(email.clone(), temporary.clone());
        shared.count(S, |c| c.failed_logins += 1);
        return with_ref(reply(409, json!({"token": temporary})));
    }
    drop(users);
    shared.logged_in(S, &email);
    let token = shared.issue(S, Kind::Access, &email, shared.config.weavr_idle);
    with_ref(reply(
        200,
        json!({
            "token": token, "tokenType": "AUTH", "identity": identity(),
            "credentials": {"type": "ROOT", "id": "110000000000000002"}
        }),
    ))
}

fn password_update(state: &State, request: &Request) -> ResponseTemplate {
    let shared = &state.shared;
    let Some(token) = bearer(request) else {
        return with_ref(ResponseTemplate::new(401));
    };
    let user = shared
        .check(S, Kind::Session, token)
        .or_else(|| shared.check(S, Kind::Access, token))
        .map(|issued| issued.subject);
    let Some(user) = user else {
        return error_code(410, "TOKEN_EXPIRED");
    };
    let body = json_body(request).unwrap_or_default();
    let old = body["oldPassword"]["value"].as_str().unwrap_or_default();
    let new = body["newPassword"]["value"].as_str().unwrap_or_default();
    let mut users = state.own();
    if !users.book.matches(&user, old) {
        return error_code(409, "PASSWORD_INCORRECT");
    }
    if new.len() < 8 {
        return error_code(409, "PASSWORD_TOO_SHORT");
    }
    if new == old {
        return error_code(409, "PASSWORD_ALREADY_USED");
    }
    users.book.passwords.insert(user.clone(), new.to_owned());
    users.book.expired.remove(&user);
    if let Some(temporary) = users.temporary.remove(&user) {
        shared.revoke(&temporary);
    }
    drop(users);
    shared.logged_in(S, &user);
    let token = shared.issue(S, Kind::Access, &user, shared.config.weavr_idle);
    with_ref(reply(
        200,
        json!({"passwordInfo": {"identityId": identity(), "expiryDate": 0}, "token": token}),
    ))
}

fn authenticated(
    state: &State,
    route: Route,
    request: &Request,
    token: &str,
    user: &str,
) -> ResponseTemplate {
    let shared = &state.shared;
    match route {
        Route::Identities => {
            let identities = json!([{"id": identity(), "name": "Demo Ltd"}]);
            // The reference page's bare array, or the OpenAPI document's page object.
            let body = if shared.config.weavr_identities_array {
                identities
            } else {
                json!({"identities": identities, "count": 1, "responseCount": 1})
            };
            shared.count(S, |c| c.identity_lists += 1);
            with_ref(reply(200, body))
        }
        Route::AccessToken => {
            let body = json_body(request).unwrap_or_default();
            if body["identity"]["id"].as_str() != Some(demo::WEAVR_IDENTITY_ID) {
                return error_code(403, "INSUFFICIENT_PERMISSIONS");
            }
            let access = shared.issue(S, Kind::Access, user, shared.config.weavr_idle);
            let mut users = state.own();
            users.access.insert(access.clone());
            // A stepped-up sign-in token gives a stepped-up access token.
            let stepped_up = users.stepped_up.contains(token);
            if stepped_up {
                users.stepped_up.insert(access.clone());
            }
            drop(users);
            shared.count(S, |c| c.exchanges += 1);
            with_ref(reply(
                200,
                json!({
                    "token": access, "identity": identity(),
                    "credentials": {"type": "ROOT", "id": "110000000000000002"},
                    "status": if stepped_up { "STEPPED_UP" } else { "STANDARD" },
                }),
            ))
        }
        Route::OtpStart => {
            let now = shared.clock.now();
            let lifetime = shared.config.weavr_challenge_lifetime;
            let mut users = state.own();
            match users.challenges.get_mut(token) {
                Some(otp) if now < otp.sent_at + lifetime => {
                    if now < otp.sent_at + RESEND_AFTER {
                        return error_code(409, "RETRY_IN_15SEC");
                    }
                    if otp.sms >= SMS_LIMIT {
                        return error_code(409, "CHALLENGE_LIMIT_EXCEEDED");
                    }
                    // Another SMS for the same challenge: its wrong codes still count.
                    otp.sent_at = now;
                    otp.sms += 1;
                }
                _ => {
                    let otp = Otp {
                        sent_at: now,
                        sms: 1,
                        wrong: 0,
                    };
                    users.challenges.insert(token.to_owned(), otp);
                }
            }
            drop(users);
            shared.count(S, |c| c.challenges += 1);
            with_ref(ResponseTemplate::new(204))
        }
        Route::OtpVerify => {
            let code = json_body(request)
                .and_then(|b| b["verificationCode"].as_str().map(str::to_owned))
                .unwrap_or_default();
            if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
                return with_ref(reply(
                    400,
                    json!({"message": "Request is invalid", "syntaxErrors": {"invalidFields": [
                        {"params": ["^[0-9]{6}$"], "fieldName": "verificationCode", "error": "REGEX"}
                    ]}}),
                ));
            }
            let mut users = state.own();
            let Some(otp) = users.challenges.get_mut(token) else {
                return error_code(409, "STATE_INVALID");
            };
            if shared.clock.now() >= otp.sent_at + shared.config.weavr_challenge_lifetime {
                users.challenges.remove(token);
                return error_code(409, "VERIFICATION_CODE_EXPIRED");
            }
            if code != demo::WEAVR_OTP {
                otp.wrong += 1;
                if otp.wrong >= WRONG_CODE_LIMIT {
                    users.challenges.remove(token);
                    return error_code(409, "CHALLENGE_LIMIT_EXCEEDED");
                }
                if otp.wrong + 1 == WRONG_CODE_LIMIT {
                    return error_code(409, "ONE_CHALLENGE_LIMIT_REMAINING");
                }
                return error_code(409, "VERIFICATION_CODE_INVALID");
            }
            users.challenges.remove(token);
            users.stepped_up.insert(token.to_owned());
            drop(users);
            shared.count(S, |c| c.verifications += 1);
            with_ref(ResponseTemplate::new(204))
        }
        Route::Push => {
            // The user approves on their device at once.
            state.own().stepped_up.insert(token.to_owned());
            shared.count(S, |c| {
                c.challenges += 1;
                c.verifications += 1;
            });
            with_ref(reply(200, json!({"id": format!("{}", fastrand::u32(..))})))
        }
        Route::Logout => {
            shared.revoke(token);
            shared.count(S, |c| c.logouts += 1);
            with_ref(ResponseTemplate::new(204))
        }
        Route::ManagedAccounts => {
            let users = state.own();
            if !users.access.contains(token) {
                return error_code(403, "ACCESS_TOKEN_REQUIRED");
            }
            if !users.stepped_up.contains(token) {
                return error_code(403, "STEP_UP_REQUIRED");
            }
            shared.count(S, |c| c.resource_calls += 1);
            with_ref(reply(
                200,
                json!({"accounts": [{"id": "1001", "friendlyName": "Operating account",
                    "balances": {"availableBalance": 125000, "currency": "EUR"}}], "count": 1}),
            ))
        }
        Route::Login | Route::PasswordUpdate => unreachable!("handled before"),
    }
}

pub(super) async fn mount(server: &MockServer, shared: &Arc<Shared>) {
    let (live, expired) = (demo::WEAVR_EMAIL, demo::WEAVR_EXPIRED_EMAIL);
    let users = Users {
        book: Book::new(live, expired, demo::WEAVR_PASSWORD),
        ..Users::default()
    };
    let state = Stand::new(shared, users);
    shared.register_passwords(S, Arc::downgrade(&state) as _);
    let routes = Routes::new(server, shared, S);
    let base = format!("/{}", super::prefix(S));
    let table = [
        (
            "POST",
            "/login_with_password",
            Route::Login,
            Operation::Login,
        ),
        ("GET", "/identities", Route::Identities, Operation::Exchange),
        (
            "POST",
            "/access_token",
            Route::AccessToken,
            Operation::Exchange,
        ),
        (
            "POST",
            "/stepup/challenges/otp/SMS",
            Route::OtpStart,
            Operation::StepUp,
        ),
        (
            "POST",
            "/stepup/challenges/otp/SMS/verify",
            Route::OtpVerify,
            Operation::StepUp,
        ),
        ("POST", "/logout", Route::Logout, Operation::Logout),
        (
            "POST",
            "/passwords/update",
            Route::PasswordUpdate,
            Operation::Password,
        ),
        (
            "GET",
            "/managed_accounts",
            Route::ManagedAccounts,
            Operation::Resource,
        ),
    ];
    for (verb, route, handler, operation) in table {
        let handler = Handler {
            state: state.clone(),
            route: handler,
        };
        routes
            .add(verb, format!("{base}{route}"), operation, handler)
            .await;
    }
    let push = Handler {
        state,
        route: Route::Push,
    };
    let channels = path_regex(format!("^{base}/stepup/challenges/push/(AUTHY|BIOMETRIC)$"));
    routes
        .add_matching("POST", channels, Operation::StepUp, push)
        .await;
}
