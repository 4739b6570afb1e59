//! Step-up (strong customer authentication): one challenge for however many calls need it.
//!
//! When a call answers 403 `STEP_UP_REQUIRED` (or [`super::Session::step_up`] is called), the
//! session starts the challenge the application chose (an SMS one-time password, or a push to
//! Authy or the embedder's biometric app), asks the application's [`StepUp`] handler, verifies,
//! and the call is sent again once. Every call that needs the step-up meanwhile waits for that
//! same challenge and shares its outcome. The challenge runs in a task of the session's own: a
//! call that gives up while the user answers (a timeout, a dropped request) cancels nothing,
//! and the next call that needs the step-up waits for the same challenge (one SMS); the task
//! holds the session weakly while it waits for the answer, and ends if the session is dropped.
//! `ACCESS_TOKEN_REQUIRED` is cured by exchanging the token for the identity's access token,
//! when the session knows the identity.
//!
//! The challenge and its verification carry the session's token, so the service's answers to
//! them slide its 5-minute window like any call's: a user who takes minutes to answer does not
//! cost a new sign-in (whose token would not be stepped up). A code is sent only when it is six
//! digits (surrounding whitespace aside); one that is not, or that the service refuses as wrong
//! (409 `VERIFICATION_CODE_INVALID`, `ONE_CHALLENGE_LIMIT_REMAINING`, or a 400), is asked for
//! again, up to the session's limit. The service's own limit (`CHALLENGE_LIMIT_EXCEEDED`) ends
//! the step-up at once. A start answered `RETRY_IN_15SEC` means an SMS of an open challenge went
//! out moments ago: its code is asked for instead of sending another. The handler is given
//! what is left of the challenge's 5-minute lifetime to answer; one that does not answer by
//! then fails every waiting call with [`ErrorKind::StepUpTimeout`](crate::ErrorKind::StepUpTimeout), and
//! the next step-up starts a new challenge. A token the identity
//! exchange answered `STEPPED_UP` needs no challenge. A stepped-up mark is forgotten when a
//! call sent again after the step-up is still refused with `STEP_UP_REQUIRED` (a push approval
//! the service did not honour), so that the next call starts a new challenge.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use reqwest::header::HeaderMap;

use super::{classify_api, types, Client, Weavr};
use crate::cache::flight::SingleFlight;
use crate::error::{Error, ErrorKind, Service};
use crate::provider::sealed::ProviderImpl;
use crate::provider::{Tokens, WeakTokens};
use crate::retry::Replay;
use crate::secret::SecretString;

/// A challenge lives this long: an answer that comes later is not sent.
pub const CHALLENGE_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// How soon the service sends another SMS for an open challenge (`RETRY_IN_15SEC` before).
const RESEND_AFTER: Duration = Duration::from_secs(15);

/// How the session steps a token up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepUpMethod {
    /// A one-time password by text message (`/stepup/challenges/otp/SMS`).
    Sms,
    /// A push notification the user approves (`/stepup/challenges/push/{channel}`).
    Push(PushChannel),
}

/// Where a push notification is sent (weavr's `PushChannel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PushChannel {
    /// The Authy app.
    Authy,
    /// The embedder's biometric app.
    Biometric,
}

impl PushChannel {
    /// As the generated client sends it.
    fn to_api(self) -> types::PushChannel {
        match self {
            Self::Authy => types::PushChannel::Authy,
            Self::Biometric => types::PushChannel::Biometric,
        }
    }
}

/// A challenge the session started, as the [`StepUp`] handler is told of it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Challenge {
    /// An SMS was sent; answer with its code. `attempt` counts from 1 (a wrong code is asked
    /// again, up to the session's limit).
    Sms {
        /// Which attempt at the code this is.
        attempt: u32,
    },
    /// A push notification was sent; answer once the user approved (or declined) it.
    Push {
        /// Where it was sent.
        channel: PushChannel,
        /// The challenge id the service gave.
        id: Option<String>,
    },
}

/// What the application answers to a [`Challenge`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Answer {
    /// The one-time password the user received: six digits (surrounding whitespace is
    /// trimmed; anything else is not sent, and the handler is asked again).
    Code(SecretString),
    /// The user approved the push notification. The service gives no confirmation of its
    /// own: the token counts as stepped up until a call sent again after the step-up is still
    /// refused with `STEP_UP_REQUIRED`.
    Approved,
    /// The user declined, or gave up.
    Declined,
}

/// The application's part of a step-up: told which challenge started, it answers.
///
/// Any `Fn(Challenge) -> impl Future<Output = Answer>` is one:
///
/// ```
/// use tokensmith::weavr::{Answer, Challenge};
///
/// let handler = |challenge: Challenge| async move {
///     match challenge {
///         Challenge::Sms { .. } => Answer::Code("123456".into()),
///         _ => Answer::Declined,
///     }
/// };
/// # fn takes<H: tokensmith::weavr::StepUp>(_: H) {}
/// # takes(handler);
/// ```
pub trait StepUp: Send + Sync + 'static {
    /// The answer to `challenge`.
    fn answer(&self, challenge: Challenge) -> Pin<Box<dyn Future<Output = Answer> + Send + '_>>;
}

impl<F, Fut> StepUp for F
where
    F: Fn(Challenge) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Answer> + Send + 'static,
{
    fn answer(&self, challenge: Challenge) -> Pin<Box<dyn Future<Output = Answer> + Send + '_>> {
        Box::pin(self(challenge))
    }
}

/// What keys a step-up flight: a fingerprint of the token it steps up (BLAKE2b-256,
/// personalised), so that the session keeps no second copy of the secret.
type Fingerprint = [u8; 32];

fn fingerprint(token: &SecretString) -> Fingerprint {
    let digest = blake2b_simd::Params::new()
        .hash_length(32)
        .personal(b"tokensmith-step")
        .hash(token.expose_secret().as_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_bytes());
    out
}

/// The session's step-up state: one flight at a time, for the token it raises.
pub(crate) struct Coordinator {
    pub(crate) handler: Option<Arc<dyn StepUp>>,
    pub(crate) method: StepUpMethod,
    pub(crate) max_attempts: u32,
    /// The step-up in the air, keyed by its token's fingerprint. It runs in a task of its own
    /// (see [`SingleFlight`]): a call that gives up while the user answers cancels nothing,
    /// and the next call that needs the step-up waits for the same challenge.
    flight: SingleFlight<Fingerprint, Result<(), Error>>,
}

/// A step-up as its task runs it: what it needs of the session, the session held weakly (the
/// user may take minutes to answer, and a session dropped meanwhile is not kept alive).
#[derive(Clone)]
struct Job {
    weavr: Weak<Weavr>,
    tokens: WeakTokens,
    handler: Option<Arc<dyn StepUp>>,
    method: StepUpMethod,
    max_attempts: u32,
}

/// Asks `handler`, waiting at most until the challenge started at `started` expires on the
/// session's clock: a handler that never answers must not hold every call that waits for the
/// step-up forever.
async fn ask(
    handler: &dyn StepUp,
    challenge: Challenge,
    tokens: &Tokens,
    started: std::time::Instant,
) -> Result<Answer, Error> {
    let bound = tokens.sleep_until(started.checked_add(CHALLENGE_LIFETIME).unwrap_or(started));
    tokio::select! {
        // An answer ready by the bound is taken, as with `tokio::time::timeout`.
        biased;
        answer = handler.answer(challenge) => Ok(answer),
        () = bound => Err(Error::new(ErrorKind::StepUpTimeout)
            .with_service(Service::Weavr)
            .with_message(
                "the step-up handler gave no answer within the challenge's lifetime; \
                 the next step-up starts a new challenge",
            )),
    }
}

fn failed(message: &str) -> Error {
    Error::new(ErrorKind::StepUpRequired)
        .with_service(Service::Weavr)
        .with_message(message)
}

/// The code as the service takes it (`^[0-9]{6}$`), surrounding whitespace trimmed.
fn six_digits(code: &SecretString) -> Option<SecretString> {
    let code = code.expose_secret().trim();
    (code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())).then(|| SecretString::from(code))
}

/// A code the service refused as wrong (or malformed): the handler may give another.
fn wrong_code(error: &Error) -> bool {
    error.status() == Some(400)
        || matches!(
            error.code(),
            Some("VERIFICATION_CODE_INVALID" | "ONE_CHALLENGE_LIMIT_REMAINING")
        )
}

/// A step-up call's failure, with what the service's limit means for the caller.
fn step_up_error(error: Error) -> Error {
    if error.code() == Some("CHALLENGE_LIMIT_EXCEEDED") {
        error.with_message(
            "the service's limit for this challenge is reached (wrong codes, or SMS sent); \
             the step-up must start again with a new challenge",
        )
    } else {
        error
    }
}

/// The session is gone: nobody is left to step up for.
fn gone() -> Error {
    failed("the session is gone")
}

impl Job {
    /// The session's tokens, while the session lives.
    fn tokens(&self) -> Result<Tokens, Error> {
        self.tokens.upgrade().ok_or_else(gone)
    }

    /// Runs the challenge for `token`, and records its success (here and in the store) for
    /// every later call, whoever is still waiting.
    async fn run(self, token: &crate::AccessToken) -> Result<(), Error> {
        self.challenge(token.secret()).await?;
        self.tokens()?.mark_stepped_up(token.secret()).await;
        Ok(())
    }

    /// One request of the challenge, carrying `token`, with the session held only while it
    /// runs. The session hears of every answer: they slide the token's window, and a 401
    /// retires it.
    async fn call<T, E, Op, Fut>(
        &self,
        token: &SecretString,
        grant: crate::telemetry::Grant,
        operation: Op,
    ) -> Result<T, Error>
    where
        Op: FnOnce(Client) -> Fut,
        E: crate::transport::errors::ErrorBody,
        Fut: Future<Output = Result<T, progenitor_client::Error<E>>>,
    {
        let weavr = self.weavr.upgrade().ok_or_else(gone)?;
        let session = self.tokens()?.observer();
        let context = weavr
            .observed_context(token, Replay::Unsent, session)?
            .with_grant(grant);
        weavr.endpoint.call(context, &classify_api, operation).await
    }

    async fn challenge(&self, token: &SecretString) -> Result<(), Error> {
        let handler = self
            .handler
            .as_ref()
            .ok_or_else(|| failed("a step-up is required and the session has no StepUp handler"))?;
        let tokens = self.tokens()?;
        tracing::info!(service = %Service::Weavr, method = ?self.method, "starting a step-up challenge");
        let mut started = tokens.now();
        match self.method {
            StepUpMethod::Push(channel) => {
                let push = |api: Client| async move {
                    api.start_push_challenge(channel.to_api(), None).await
                };
                let id = self
                    .call(token, crate::telemetry::Grant::StepUpChallenge, push)
                    .await
                    .map_err(step_up_error)?
                    .into_inner()
                    .id;
                let answer = ask(
                    &**handler,
                    Challenge::Push { channel, id },
                    &tokens,
                    started,
                );
                match answer.await? {
                    Answer::Approved if tokens.now() < started + CHALLENGE_LIFETIME => Ok(()),
                    Answer::Approved => {
                        Err(failed("the push challenge expired before it was approved"))
                    }
                    _ => Err(failed("the step-up was declined")),
                }
            }
            StepUpMethod::Sms => {
                let sms = |api: Client| async move {
                    api.start_otp_challenge(types::OtpChannel::Sms, None).await
                };
                if let Err(error) = self
                    .call(token, crate::telemetry::Grant::StepUpChallenge, sms)
                    .await
                {
                    let error = step_up_error(error);
                    if error.code() != Some("RETRY_IN_15SEC") {
                        return Err(error);
                    }
                    // An SMS of an open challenge went out less than 15 s ago (another
                    // session's, or a step-up that just failed): its code is asked for.
                    tracing::info!(service = %Service::Weavr, "a challenge is already in flight; asking for its code");
                    started = started.checked_sub(RESEND_AFTER).unwrap_or(started);
                }
                let mut last = None;
                for attempt in 1..=self.max_attempts {
                    let answer = ask(&**handler, Challenge::Sms { attempt }, &tokens, started);
                    let code = match answer.await? {
                        Answer::Code(code) => code,
                        _ => return Err(failed("the step-up was declined")),
                    };
                    if tokens.now() >= started + CHALLENGE_LIFETIME {
                        return Err(failed("the one-time password came after the challenge expired; it was not sent"));
                    }
                    let Some(code) = six_digits(&code) else {
                        tracing::info!(service = %Service::Weavr, attempt, "the one-time password is not six digits; not sent, asking again");
                        last = Some(
                            Error::new(ErrorKind::InvalidRequest)
                                .with_service(Service::Weavr)
                                .with_message(
                                    "the one-time password must be six digits; it was not sent",
                                ),
                        );
                        continue;
                    };
                    let body = types::VerifyRequest {
                        verification_code: code,
                    };
                    let verify = |api: Client| async move {
                        api.verify_otp_challenge(types::OtpChannel::Sms, None, &body)
                            .await
                    };
                    let error = self
                        .call(token, crate::telemetry::Grant::StepUpVerify, verify)
                        .await
                        .err()
                        .map(step_up_error);
                    match error {
                        None => {}
                        Some(error) if error.code() == Some("ALREADY_VERIFIED") => {}
                        Some(error) if wrong_code(&error) => {
                            tracing::info!(service = %Service::Weavr, attempt, "wrong one-time password; asking again");
                            last = Some(error);
                            continue;
                        }
                        Some(error) => return Err(error),
                    }
                    tracing::info!(service = %Service::Weavr, "token stepped up");
                    return Ok(());
                }
                Err(last.unwrap_or_else(|| failed("no attempts left")))
            }
        }
    }
}

impl Coordinator {
    pub(crate) fn new(
        handler: Option<Arc<dyn StepUp>>,
        method: StepUpMethod,
        max_attempts: u32,
    ) -> Self {
        Self {
            handler,
            method,
            max_attempts: max_attempts.max(1),
            flight: SingleFlight::new(),
        }
    }

    /// Steps the current token up, or joins the step-up in flight for it.
    pub(crate) async fn step_up(&self, tokens: &Tokens) -> Result<(), Error> {
        let token = tokens.access_token().await?;
        if token
            .entry()
            .stepped_up
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return Ok(());
        }
        let weavr = tokens.provider::<Weavr>().ok_or_else(gone)?;
        let job = Job {
            weavr: Arc::downgrade(&weavr),
            tokens: tokens.downgrade(),
            handler: self.handler.clone(),
            method: self.method,
            max_attempts: self.max_attempts,
        };
        drop(weavr);
        let closed = || tokens.on_close();
        self.flight
            .join(&fingerprint(token.secret()), || {
                let (job, token, closed) = (job.clone(), token.clone(), closed());
                async move {
                    tokio::select! {
                        outcome = job.run(&token) => outcome,
                        () = closed => Err(gone()),
                    }
                }
            })
            .await
    }

    /// A call sent again after a step-up was still refused with `STEP_UP_REQUIRED`: the
    /// token it carried (`used`) is not stepped up whatever the session believed, and the
    /// next call that needs it starts a new challenge.
    fn forget_step_up(&self, weavr: &Weavr, tokens: &Tokens, used: &HeaderMap) {
        let Some(entry) = tokens.current() else {
            return;
        };
        if weavr.carries(&entry, used)
            && entry
                .stepped_up
                .swap(false, std::sync::atomic::Ordering::AcqRel)
        {
            tracing::warn!(service = %Service::Weavr, "the service still asks for a step-up after one; the next call starts a new challenge");
        }
    }

    /// Exchanges the current token for the identity's access token, when the session knows
    /// the identity: through the session's one flight, so that calls refused together make
    /// one exchange, and under the fleet's renewal lease, its token set saved fenced by it.
    async fn exchange(&self, tokens: &Tokens) -> bool {
        let Some(weavr) = tokens.provider::<Weavr>() else {
            return false;
        };
        let obtain: crate::cache::Exchange = Arc::new(move |token: SecretString| {
            let weavr = weavr.clone();
            Box::pin(async move { weavr.exchange_for_identity(&token).await })
        });
        // A renewal in the air when the call was refused gives a new sign-in token, which is
        // exchanged in turn: twice at most.
        for _ in 0..2 {
            let Ok(used) = tokens.access_token().await else {
                return false;
            };
            let Ok(now) = tokens.exchange(used.clone(), obtain.clone()).await else {
                return false;
            };
            if now.entry().extra.exchanged {
                return true;
            }
            if now.secret().expose_secret() == used.secret().expose_secret() {
                // Nothing to exchange it for (no identity known).
                return false;
            }
        }
        false
    }

    /// Cures a 403 the service explained: a step-up, or an exchange for the identity's access
    /// token; true when the request is worth sending again.
    pub(crate) fn cure<'a>(
        &'a self,
        tokens: &'a Tokens,
        body: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(async move {
            match error_code(body).as_deref() {
                Some("STEP_UP_REQUIRED") => match self.step_up(tokens).await {
                    Ok(()) => true,
                    Err(error) => {
                        tracing::warn!(service = %Service::Weavr, %error, "step-up failed");
                        false
                    }
                },
                Some("ACCESS_TOKEN_REQUIRED") => self.exchange(tokens).await,
                _ => false,
            }
        })
    }

    /// The resend after a cure was refused again with `body`.
    pub(crate) fn uncured(&self, weavr: &Weavr, tokens: &Tokens, body: &[u8], used: &HeaderMap) {
        if error_code(body).as_deref() == Some("STEP_UP_REQUIRED") {
            self.forget_step_up(weavr, tokens, used);
        }
    }
}

/// The code of a weavr error body, by the rule every weavr failure is read with
/// ([`super::error_code`]). Read from the raw JSON: a 403 body whose other members the
/// generated type would refuse still names its code.
fn error_code(body: &[u8]) -> Option<String> {
    let value = serde_json::from_slice::<serde_json::Value>(body).ok()?;
    let member = |name: &str| value.get(name).and_then(serde_json::Value::as_str);
    super::error_code(member("errorCode"), member("code"), member("message"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_up_is_keyed_by_a_fingerprint_of_its_token_not_a_copy() {
        // hashlib.blake2b(b"tok-1", digest_size=32, person=b"tokensmith-step"), computed
        // apart from this crate.
        let key = fingerprint(&SecretString::from("tok-1"));
        assert_eq!(
            hex::encode(key),
            "2a11de2c16d7ea9ef6378aac537a660ff89fb5669ccde765822def450ec8ca78"
        );
        assert_ne!(key, fingerprint(&SecretString::from("tok-2")));
    }
}
