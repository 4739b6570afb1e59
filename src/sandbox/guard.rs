//! A stand-in's responder behind the faults given to the sandbox ([`super::Sandbox::fail`]), the
//! answers the sandbox gives in a stand-in's place, and where a stand-in mounts its responders
//! (every one behind the faults).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use wiremock::matchers;
use wiremock::{Match, Mock, MockServer, Request, Respond, ResponseTemplate};

use super::fault::{
    Fault, Operation, What, DEFAULT_RATE_LIMIT_WINDOW, MALFORMED_BODY, TRUNCATED_BODY,
};
use super::state::{bearer, reply, Kind, Shared};
use crate::error::Service;

/// A stand-in's responder behind the faults: a request meets the fault in force for its
/// operation, if any, before it reaches the stand-in.
pub(crate) struct Guarded<R> {
    shared: Arc<Shared>,
    service: Service,
    operation: Operation,
    inner: R,
}

/// `inner`, answering `operation` of `service`, behind the faults given to the sandbox.
pub(crate) fn guard<R: Respond>(
    shared: &Arc<Shared>,
    service: Service,
    operation: Operation,
    inner: R,
) -> Guarded<R> {
    Guarded {
        shared: shared.clone(),
        service,
        operation,
        inner,
    }
}

impl<R: Respond> Respond for Guarded<R> {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let shared = &self.shared;
        let Some(fault) = shared
            .faults
            .take(self.service, self.operation, shared.clock.now())
        else {
            return self.inner.respond(request);
        };
        shared.count(self.service, |c| c.faults += 1);
        match fault.what {
            What::Slow(delay) => self.inner.respond(request).set_delay(delay),
            _ => answer(shared, self.service, &fault),
        }
    }
}

/// Where a stand-in mounts its responders: on the sandbox's server, each behind the faults.
pub(crate) struct Routes<'a> {
    server: &'a MockServer,
    shared: &'a Arc<Shared>,
    service: Service,
}

impl<'a> Routes<'a> {
    /// `service`'s routes on `server`.
    pub(crate) fn new(server: &'a MockServer, shared: &'a Arc<Shared>, service: Service) -> Self {
        Self {
            server,
            shared,
            service,
        }
    }

    /// `responder`, answering `operation` at `verb` `path`.
    pub(crate) async fn add(
        &self,
        verb: &str,
        path: impl Into<String>,
        operation: Operation,
        responder: impl Respond + 'static,
    ) {
        let path = matchers::path(path);
        self.add_matching(verb, path, operation, responder).await;
    }

    /// `responder`, answering `operation` at `verb` and the paths `paths` matches.
    pub(crate) async fn add_matching(
        &self,
        verb: &str,
        paths: impl Match + 'static,
        operation: Operation,
        responder: impl Respond + 'static,
    ) {
        Mock::given(matchers::method(verb))
            .and(paths)
            .respond_with(guard(self.shared, self.service, operation, responder))
            .mount(self.server)
            .await;
    }

    /// The protected resource at `GET /<prefix>/resource` ([`super::Sandbox::resource_url`]) of
    /// a service whose other APIs take its access token as `Authorization: Bearer`: a live one
    /// gets who it was issued to, any other request the service's `refused` answer.
    pub(crate) async fn bearer_resource(&self, refused: fn() -> ResponseTemplate) {
        let resource = Resource {
            shared: self.shared.clone(),
            service: self.service,
            refused,
        };
        let at = format!("/{}/resource", super::prefix(self.service));
        self.add("GET", at, Operation::Resource, resource).await;
    }
}

/// See [`Routes::bearer_resource`].
struct Resource {
    shared: Arc<Shared>,
    service: Service,
    refused: fn() -> ResponseTemplate,
}

impl Respond for Resource {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let (shared, service) = (&self.shared, self.service);
        let Some(issued) = bearer(request).and_then(|t| shared.check(service, Kind::Access, t))
        else {
            return (self.refused)();
        };
        shared.count(service, |c| c.resource_calls += 1);
        reply(
            200,
            json!({"service": service.name(), "subject": issued.subject}),
        )
    }
}

/// Whole seconds, rounded up.
fn secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

fn request_ref(response: ResponseTemplate) -> ResponseTemplate {
    response.insert_header(
        "request-ref",
        format!("sandbox-{:016x}", fastrand::u64(..)).as_str(),
    )
}

fn with_retry_after(response: ResponseTemplate, wait: Option<Duration>) -> ResponseTemplate {
    match wait {
        Some(wait) => response.insert_header("retry-after", secs(wait).to_string().as_str()),
        None => response,
    }
}

/// s7risk's 429, the only one it documents.
fn s7risk_try_again(wait: Duration) -> ResponseTemplate {
    let minutes = secs(wait).div_ceil(60).max(1);
    let unit = if minutes == 1 { "minute" } else { "minutes" };
    ResponseTemplate::new(429).set_body_json(json!({
        "status": "error",
        "message": format!("Too many authentication attempts. Try again in {minutes} {unit}"),
    }))
}

/// The answer of an answer fault (not a slow one) for `service`.
fn answer(shared: &Shared, service: Service, fault: &Fault) -> ResponseTemplate {
    match fault.what {
        What::Outage => {
            let response = match service {
                Service::Weavr => request_ref(ResponseTemplate::new(503)),
                _ => ResponseTemplate::new(503)
                    .set_body_raw("Service Unavailable", "text/plain; charset=utf-8"),
            };
            with_retry_after(response, fault.retry_after)
        }
        What::RateLimit => {
            let wait = fault.retry_after.unwrap_or(DEFAULT_RATE_LIMIT_WINDOW);
            let message = "Too many requests.";
            let response = ResponseTemplate::new(429);
            match service {
                Service::S7risk => s7risk_try_again(wait),
                Service::Weavr => request_ref(response)
                    .insert_header(
                        "x-ratelimit-limit",
                        format!("20, 20;w={}", secs(wait)).as_str(),
                    )
                    .insert_header("x-ratelimit-reset", secs(wait).to_string().as_str()),
                Service::Accounts => with_retry_after(
                    response.set_body_json(json!({"status": 429, "message": message})),
                    Some(wait),
                ),
                Service::Fib => with_retry_after(
                    response.set_body_json(json!({
                        "status": {"code": 429, "name": "TOO_MANY_REQUESTS", "message": message},
                        "data": null,
                    })),
                    Some(wait),
                ),
                // Password Safe's, and any service's without an answer of its own: a JSON
                // string and `Retry-After`.
                _ => with_retry_after(response.set_body_json(json!(message)), Some(wait)),
            }
        }
        What::Lockout => match service {
            Service::S7risk => s7risk_try_again(fault.retry_after.unwrap_or(shared.config.lockout)),
            // Refused by `Sandbox::fail` for the services that document no lock-out.
            _ => with_retry_after(request_ref(ResponseTemplate::new(423)), fault.retry_after),
        },
        // hyper (1.x, `proto/h1/role.rs`, `Server::encode_headers`) refuses to write a
        // response that carries both `Content-Length` and `Transfer-Encoding` (RFC 9112
        // §6.2 forbids a sender to), and closes the connection without writing anything.
        // wiremock has no other way to drop a connection; `tests/sandbox_faults.rs` checks
        // that not a byte comes back.
        What::Dropped => ResponseTemplate::new(200)
            .set_body_raw("{}", "application/json")
            .insert_header("content-length", "2")
            .insert_header("transfer-encoding", "chunked"),
        What::Truncated => {
            ResponseTemplate::new(200).set_body_raw(TRUNCATED_BODY, "application/json")
        }
        What::Malformed => ResponseTemplate::new(200).set_body_raw(MALFORMED_BODY, "text/html"),
        What::Slow(_)
        | What::Revocation
        | What::PasswordChanged { .. }
        | What::PasswordExpired { .. } => {
            unreachable!("not an answer of the sandbox's own")
        }
    }
}
