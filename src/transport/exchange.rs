//! The one exchange of a request that carries a session's credentials, whichever path sent it
//! (`api()`, `send()`, the reqwest middleware, the tower layer): what an answer means for the
//! credentials (a 401 refuses them, most other answers count as activity), the one renewal and
//! resend after a 401, the cure of a 403 the session knows how to cure (weavr's step-up and
//! access-token exchange), and the end of a session a sign-out answered.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use reqwest::header::HeaderMap;

use super::body::buffer;
use crate::error::Error;

/// A boxed future, as the [`Authorizer`] methods return (they are called through `dyn`).
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A session as the HTTP layer sees it. A trait rather than the session's own type because this
/// layer sits below the session (the session's own logins go through it), and must not name it.
pub(crate) trait Authorizer: Send + Sync {
    /// Puts the current credentials (renewed first when due) into `headers`.
    fn authorize<'a>(&'a self, headers: &'a mut HeaderMap) -> BoxFuture<'a, Result<(), Error>>;
    /// The service refused the credentials in `used` (401): they are no longer served.
    fn refused(&self, used: &HeaderMap);
    /// The service took the credentials in `used`, sent at `sent_at` (a sliding lifetime slides).
    fn accepted(&self, used: &HeaderMap, sent_at: Instant);
    /// The session clock's now.
    fn now(&self) -> Instant;
    /// Whether [`Self::cure`] may cure a 403 (only then is its body read).
    fn cures_forbidden(&self) -> bool;
    /// The service answered 403 with `body`: cures it when it can and says whether the request
    /// is worth sending again.
    fn cure<'a>(&'a self, body: &'a [u8]) -> BoxFuture<'a, bool>;
    /// The one resend after a cure, carrying `used`, was refused with 403 and `body` again.
    fn uncured(&self, body: &[u8], used: &HeaderMap);
    /// Whether the operation `operation_id` ends the session whose credentials it carries.
    fn ends_session(&self, operation_id: &str) -> bool;
    /// The service ended the session whose credentials `used` carried: forget them.
    fn ended<'a>(&'a self, used: &'a HeaderMap) -> BoxFuture<'a, ()>;
}

/// How a path sends: its request and response types, and what it can do with them.
pub(crate) trait Sender: Send {
    /// What it sends.
    type Request: Send;
    /// What comes back.
    type Response: Send;
    /// What a failed send is.
    type Error;
    /// The request's headers.
    fn headers(request: &Self::Request) -> &HeaderMap;
    /// The request's headers, to put renewed credentials in.
    fn headers_mut(request: &mut Self::Request) -> &mut HeaderMap;
    /// A copy of `request` to send again, when its body can be copied.
    fn spare(&self, request: &Self::Request) -> Option<Self::Request>;
    /// The status the session hears of.
    fn status(response: &Self::Response) -> u16;
    /// Sends `request` once (retries, if any, are the sender's own).
    fn send(
        &mut self,
        request: Self::Request,
    ) -> impl Future<Output = Result<Self::Response, Self::Error>> + Send;
    /// Reads up to `cap` of `response`'s body, for a cure: the response to hand back, and the
    /// bytes (`None` when the body is over the cap, or this sender cannot read bodies).
    fn read(
        &mut self,
        response: Self::Response,
        cap: Option<usize>,
    ) -> impl Future<Output = Result<(Self::Response, Option<bytes::Bytes>), Self::Error>> + Send;
}

/// Whether an answer shows that the service took the credentials the request carried, which
/// restarts a sliding lifetime (weavr: 5 minutes from last activity). Every answer does,
/// refusals of the request itself (a 403 `STEP_UP_REQUIRED`, a 409) included, except a 401
/// (the token was refused), a 410 (weavr `TOKEN_EXPIRED`) and a 5xx (a gateway's or
/// maintenance answer: the request may never have reached the service).
fn took_credentials(status: u16) -> bool {
    !matches!(status, 401 | 410 | 500..=599)
}

/// Tells `auth` what the service made of the credentials in `used`, sent at `sent_at`.
pub(crate) fn report(auth: &dyn Authorizer, status: u16, used: &HeaderMap, sent_at: Instant) {
    if status == 401 {
        auth.refused(used);
    } else if took_credentials(status) {
        auth.accepted(used, sent_at);
    }
}

/// Tells `auth` what the service answered, with `status`, to the operation `operation_id`
/// sent with the credentials in `used` at `sent_at`. True when that ended the session (a
/// successful sign-out): there is nothing left to cure or resend.
async fn answered(
    auth: &dyn Authorizer,
    status: u16,
    used: &HeaderMap,
    sent_at: Instant,
    operation_id: &str,
) -> bool {
    if (200..=299).contains(&status) && auth.ends_session(operation_id) {
        auth.ended(used).await;
        return true;
    }
    report(auth, status, used, sent_at);
    false
}

/// Sends `request`, already carrying `auth`'s credentials, through `sender`, and tells `auth`
/// what the service made of them. A 401 renews the credentials, and a 403 `auth` can cure is
/// cured; each at most once, and the request sent again after each when it can be copied: a
/// token renewed after a 401 may itself need the step-up a 403 asks for, so a request is sent
/// at most three times. `max_body` caps a 403 body read for the cure.
pub(crate) async fn exchange<S: Sender>(
    auth: &dyn Authorizer,
    request: S::Request,
    operation_id: &str,
    max_body: Option<usize>,
    sender: &mut S,
) -> Result<S::Response, S::Error> {
    let mut request = request;
    let (mut renewed, mut cured) = (false, false);
    loop {
        let spare = if renewed && cured {
            None
        } else {
            sender.spare(&request)
        };
        let used = S::headers(&request).clone();
        let sent_at = auth.now();
        let response = sender.send(request).await?;
        let status = S::status(&response);
        // Before any cure: a step-up can keep the user for minutes, and the token must not
        // look idle meanwhile.
        if answered(auth, status, &used, sent_at, operation_id).await {
            return Ok(response);
        }
        let (response, again) = match status {
            401 if !renewed => {
                renewed = true;
                (response, true)
            }
            403 if !cured && auth.cures_forbidden() && spare.is_some() => {
                cured = true;
                let (response, body) = sender.read(response, max_body).await?;
                let cure = match body {
                    Some(body) => auth.cure(&body).await,
                    None => false,
                };
                (response, cure)
            }
            403 if cured => {
                // Cured, sent again, refused again: the session hears of it (a step-up it
                // trusted is forgotten), and the answer goes back as it is.
                let (response, body) = sender.read(response, max_body).await?;
                if let Some(body) = body {
                    auth.uncured(&body, &used);
                }
                return Ok(response);
            }
            _ => return Ok(response),
        };
        let Some(mut next) = spare.filter(|_| again) else {
            return Ok(response);
        };
        if auth.authorize(S::headers_mut(&mut next)).await.is_err() {
            return Ok(response);
        }
        // The answer is dropped before the resend: a pooled connection it holds is free.
        drop(response);
        request = next;
    }
}

/// A path that sends reqwest's requests (a session's own sending, the reqwest middleware's
/// chain): how one request goes out is all it supplies; the rest of [`Sender`] is reqwest's,
/// written once below.
pub(crate) trait ReqwestSend: Send {
    /// What a failed send is (a reqwest error converts into it, for a failed body read).
    type Error: From<reqwest::Error>;
    /// Sends `request` once.
    fn send_one(
        &mut self,
        request: reqwest::Request,
    ) -> impl Future<Output = Result<reqwest::Response, Self::Error>> + Send;
}

impl<T: ReqwestSend> Sender for T {
    type Request = reqwest::Request;
    type Response = reqwest::Response;
    type Error = T::Error;

    fn headers(request: &reqwest::Request) -> &HeaderMap {
        request.headers()
    }

    fn headers_mut(request: &mut reqwest::Request) -> &mut HeaderMap {
        request.headers_mut()
    }

    fn spare(&self, request: &reqwest::Request) -> Option<reqwest::Request> {
        request.try_clone()
    }

    fn status(response: &reqwest::Response) -> u16 {
        response.status().as_u16()
    }

    fn send(
        &mut self,
        request: reqwest::Request,
    ) -> impl Future<Output = Result<reqwest::Response, T::Error>> + Send {
        self.send_one(request)
    }

    async fn read(
        &mut self,
        response: reqwest::Response,
        cap: Option<usize>,
    ) -> Result<(reqwest::Response, Option<bytes::Bytes>), T::Error> {
        Ok(buffer(response, cap).await?)
    }
}
