//! The Wikimedia Enterprise auth stand-in: lowercase usernames, access/id/refresh tokens,
//! refresh tokens that serve 90 refreshes (then 429), a user who must set a new password at
//! the first login, revocation (which, as Cognito's, also ends the access and id tokens the
//! refresh token issued), and the password flows (the confirmation code is always the demo
//! one; forgot-password also takes the account's email). Messages are the service's own: a body
//! that fails validation (a missing field, or one outside the length the service's handler
//! binds it to: usernames and passwords 1 to 255 characters, a challenge's new password 6 to
//! 255, change-password's two passwords 6 to 256, a confirmation code 1 to 2048) answers 422
//! "Internal error, please try again later.", a refused refresh token or session 401
//! "Unauthorized.". A resource stands for the Wikimedia
//! Enterprise APIs, which take the access token as `Authorization: Bearer`.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};
use wiremock::{MockServer, Request, Respond, ResponseTemplate};

use super::demo;
use super::fault::Operation;
use super::guard::Routes;
use super::passwords::Book;
use super::state::{json_body, reply, Kind, Shared, Stand};
use crate::error::Service;

const S: Service = Service::Accounts;

/// The service's answer to a body that fails validation (no field detail), and to failures.
const INTERNAL_ERROR: &str = "Internal error, please try again later.";
const UNAUTHORIZED: &str = "Unauthorized.";

/// The stand-in's own state. An expired password is one that must be replaced at the next
/// login (Cognito's `NEW_PASSWORD_REQUIRED`).
#[derive(Default)]
struct Accounts {
    book: Book,
    /// Usernames by email address.
    emails: HashMap<String, String>,
    /// Challenge sessions, by session value, naming the user.
    challenges: HashMap<String, String>,
    /// Refreshes made with each refresh token.
    refresh_uses: HashMap<String, u32>,
}

impl AsMut<Book> for Accounts {
    fn as_mut(&mut self) -> &mut Book {
        &mut self.book
    }
}

type State = Stand<Accounts>;

fn error(status: u16, message: &str) -> ResponseTemplate {
    reply(status, json!({"status": status, "message": message}))
}

/// The named string fields of a JSON body, each within its (min, max) length in characters,
/// or the service's 422.
fn fields<const N: usize>(
    request: &Request,
    names: [(&str, usize, usize); N],
) -> Result<[String; N], Box<ResponseTemplate>> {
    let body: Value = json_body(request).unwrap_or_default();
    let mut valid = true;
    let values = names.map(
        |(name, min, max)| match body.get(name).and_then(Value::as_str) {
            Some(v) if (min..=max).contains(&v.chars().count()) => v.to_owned(),
            _ => {
                valid = false;
                String::new()
            }
        },
    );
    if valid {
        Ok(values)
    } else {
        Err(Box::new(error(422, INTERNAL_ERROR)))
    }
}

// The service's bounds (its handlers' `binding:"required,min=…,max=…"`, api/auth/handlers/v1
// in wikimedia-enterprise/wikimedia-enterprise): usernames and passwords 1 to 255 characters,
// tokens and sessions any non-empty length, a challenge's new password 6 to 255,
// change-password's two passwords 6 to 256, a confirmation code 1 to 2048.
const NAME: (usize, usize) = (1, 255);
const TOKEN: (usize, usize) = (1, usize::MAX);
const NEW_PASSWORD: (usize, usize) = (6, 255);
const CHANGE_PASSWORD: (usize, usize) = (6, 256);
const CONFIRMATION_CODE: (usize, usize) = (1, 2048);

fn f(name: &str, (min, max): (usize, usize)) -> (&str, usize, usize) {
    (name, min, max)
}

impl State {
    /// Access and id tokens issued from `refresh_token`, or (`None`) with a new refresh token.
    /// Either way they die with the refresh token when it is revoked.
    fn tokens(&self, user: &str, refresh_token: Option<&str>) -> Value {
        let shared = &self.shared;
        let lifetime = shared.config.accounts_access_lifetime;
        let id = shared.issue(S, Kind::Session, user, lifetime);
        let access = shared.issue(S, Kind::Access, user, lifetime);
        let mut body = json!({
            "id_token": id,
            "access_token": access,
            "expires_in": lifetime.as_secs(),
        });
        let refresh = match refresh_token {
            Some(refresh) => refresh.to_owned(),
            None => {
                let refresh = shared.issue(
                    S,
                    Kind::Refresh,
                    user,
                    shared.config.accounts_refresh_lifetime,
                );
                body["refresh_token"] = json!(refresh);
                refresh
            }
        };
        shared.link(&refresh, &access);
        shared.link(&refresh, &id);
        body
    }
}

#[derive(Clone, Copy)]
enum Route {
    Login,
    Refresh,
    Revoke,
    NewPassword,
    ChangePassword,
    Forgot,
    ForgotConfirm,
}

struct Handler {
    state: Arc<State>,
    route: Route,
}

impl Respond for Handler {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        handle(&self.state, self.route, request).unwrap_or_else(|refused| *refused)
    }
}

fn handle(
    state: &State,
    route: Route,
    request: &Request,
) -> Result<ResponseTemplate, Box<ResponseTemplate>> {
    let shared = &state.shared;
    let refused = || Box::new(error(401, "Incorrect username or password."));
    Ok(match route {
        Route::Login => {
            let [username, password] = fields(request, [f("username", NAME), f("password", NAME)])?;
            let mut accounts = state.own();
            if !accounts.book.matches(&username, &password) {
                drop(accounts);
                shared.count(S, |c| c.failed_logins += 1);
                return Err(refused());
            }
            if accounts.book.expired.contains(&username) {
                let session = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
                accounts.challenges.insert(session.clone(), username);
                return Ok(reply(
                    200,
                    json!({"challenge_name": "NEW_PASSWORD_REQUIRED", "session": session}),
                ));
            }
            drop(accounts);
            shared.logged_in(S, &username);
            reply(200, state.tokens(&username, None))
        }
        Route::Refresh => {
            let [username, token] =
                fields(request, [f("username", NAME), f("refresh_token", TOKEN)])?;
            let issued = shared
                .check(S, Kind::Refresh, &token)
                .filter(|issued| issued.subject == username)
                .ok_or_else(|| Box::new(error(401, UNAUTHORIZED)))?;
            let mut accounts = state.own();
            let uses = accounts.refresh_uses.entry(token.clone()).or_default();
            if *uses >= shared.config.accounts_max_refreshes {
                return Err(Box::new(error(
                    429,
                    "Refresh tokens limit has been exceeded.",
                )));
            }
            *uses += 1;
            drop(accounts);
            shared.count(S, |c| c.refreshes += 1);
            reply(200, state.tokens(&issued.subject, Some(&token)))
        }
        Route::Revoke => {
            let [token] = fields(request, [f("refresh_token", TOKEN)])?;
            shared
                .check(S, Kind::Refresh, &token)
                .ok_or_else(|| Box::new(error(401, UNAUTHORIZED)))?;
            // Cognito's revocation also ends the access and id tokens it issued.
            shared.revoke_linked(&token);
            shared.count(S, |c| c.logouts += 1);
            ResponseTemplate::new(204)
        }
        Route::NewPassword => {
            let [session, username, new_password] = fields(
                request,
                [
                    f("session", TOKEN),
                    f("username", NAME),
                    f("new_password", NEW_PASSWORD),
                ],
            )?;
            let mut accounts = state.own();
            if accounts.challenges.get(&session) != Some(&username) {
                return Err(Box::new(error(401, UNAUTHORIZED)));
            }
            accounts.challenges.remove(&session);
            accounts.book.expired.remove(&username);
            accounts
                .book
                .passwords
                .insert(username.clone(), new_password);
            drop(accounts);
            shared.logged_in(S, &username);
            reply(200, state.tokens(&username, None))
        }
        Route::ChangePassword => {
            let [access, previous, proposed] = fields(
                request,
                [
                    f("access_token", TOKEN),
                    f("previous_password", CHANGE_PASSWORD),
                    f("proposed_password", CHANGE_PASSWORD),
                ],
            )?;
            // No source states these 401s' messages: the document's illustrative one.
            let user = shared
                .check(S, Kind::Access, &access)
                .ok_or_else(|| Box::new(error(401, UNAUTHORIZED)))?
                .subject;
            let mut accounts = state.own();
            if !accounts.book.matches(&user, &previous) {
                return Err(Box::new(error(401, UNAUTHORIZED)));
            }
            accounts.book.passwords.insert(user, proposed);
            ResponseTemplate::new(204)
        }
        Route::Forgot => {
            // The username, or the account's email address.
            let [name] = fields(request, [f("username", NAME)])?;
            let accounts = state.own();
            let known =
                accounts.book.passwords.contains_key(&name) || accounts.emails.contains_key(&name);
            if !known {
                return Err(Box::new(error(401, "User not found.")));
            }
            ResponseTemplate::new(204)
        }
        Route::ForgotConfirm => {
            let [username, password, code] = fields(
                request,
                [
                    f("username", NAME),
                    f("password", NAME),
                    f("confirmation_code", CONFIRMATION_CODE),
                ],
            )?;
            let mut accounts = state.own();
            if code != demo::ACCOUNTS_CONFIRMATION_CODE
                || !accounts.book.passwords.contains_key(&username)
            {
                return Err(Box::new(error(401, UNAUTHORIZED)));
            }
            accounts.book.passwords.insert(username, password);
            ResponseTemplate::new(204)
        }
    })
}

pub(super) async fn mount(server: &MockServer, shared: &Arc<Shared>) {
    let (live, expired) = (demo::ACCOUNTS_USERNAME, demo::ACCOUNTS_NEW_USERNAME);
    let mut accounts = Accounts {
        book: Book::new(live, expired, demo::ACCOUNTS_PASSWORD),
        ..Accounts::default()
    };
    accounts.emails.insert(
        demo::ACCOUNTS_EMAIL.to_owned(),
        demo::ACCOUNTS_USERNAME.to_owned(),
    );
    let state = Stand::new(shared, accounts);
    shared.register_passwords(S, Arc::downgrade(&state) as _);
    let routes = Routes::new(server, shared, S);
    let base = format!("/{}/v1", super::prefix(S));
    for (route, handler, operation) in [
        ("login", Route::Login, Operation::Login),
        ("token-refresh", Route::Refresh, Operation::Refresh),
        ("token-revoke", Route::Revoke, Operation::Logout),
        (
            "new-password-required",
            Route::NewPassword,
            Operation::Password,
        ),
        (
            "change-password",
            Route::ChangePassword,
            Operation::Password,
        ),
        ("forgot-password", Route::Forgot, Operation::Password),
        (
            "forgot-password-confirm",
            Route::ForgotConfirm,
            Operation::Password,
        ),
    ] {
        let handler = Handler {
            state: state.clone(),
            route: handler,
        };
        routes
            .add("POST", format!("{base}/{route}"), operation, handler)
            .await;
    }
    routes.bearer_resource(|| error(401, UNAUTHORIZED)).await;
}
