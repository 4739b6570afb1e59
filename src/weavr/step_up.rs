//! Step-up (strong customer authentication): one challenge for however many calls need it.
//!
//! When a call answers 403 `STEP_UP_REQUIRED` (or [`super::Session::step_up`] is called), the
//! session starts the challenge the application chose (an SMS one-time password, or a push to
//! Authy or the embedder's biometric app), asks the application's [`StepUp`] handler, verifies,
//! and the call is sent again once. Every call that needs the step-up meanwhile waits for that
//! same challenge and shares its outcome. `ACCESS_TOKEN_REQUIRED` is cured by exchanging the
//! token for the identity's access token, when the session knows the identity.
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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::HeaderMap;
use tokio::sync::OnceCell;

use super::{classify_api, types, Client, Weavr};
use crate::error::{Error, ErrorKind, Service};
use crate::provider::sealed::ProviderImpl;
use crate::provider::Tokens;
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

type Flight = Arc<OnceCell<Result<(), Error>>>;

/// The session's step-up state: one flight at a time, and which token it raised.
pub(crate) struct Coordinator {
    pub(crate) handler: Option<Arc<dyn StepUp>>,
    pub(crate) method: StepUpMethod,
    pub(crate) max_attempts: u32,
    flight: Mutex<Option<(String, Flight)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
            flight: Mutex::new(None),
        }
    }

    /// Steps the current token up, or joins the step-up in flight for it.
    pub(crate) async fn step_up(&self, weavr: &Weavr, tokens: &Tokens) -> Result<(), Error> {
        let token = tokens.access_token().await?;
        let secret = token.secret().expose_secret().to_owned();
        if token
            .entry()
            .stepped_up
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return Ok(());
        }
        let flight = {
            let mut slot = lock(&self.flight);
            match &*slot {
                Some((for_token, flight)) if *for_token == secret => flight.clone(),
                _ => {
                    let flight = Flight::default();
                    *slot = Some((secret.clone(), flight.clone()));
                    flight
                }
            }
        };
        let outcome = flight
            .get_or_init(|| async {
                let outcome = self.run(weavr, tokens, token.secret()).await;
                if outcome.is_ok() {
                    tokens.mark_stepped_up(token.secret()).await;
                }
                outcome
            })
            .await
            .clone();
        // The next step-up (after a failure, or for another token) starts afresh.
        let mut slot = lock(&self.flight);
        if slot.as_ref().is_some_and(|(_, f)| Arc::ptr_eq(f, &flight)) {
            *slot = None;
        }
        outcome
    }

    async fn run(&self, weavr: &Weavr, tokens: &Tokens, token: &SecretString) -> Result<(), Error> {
        let handler = self
            .handler
            .as_ref()
            .ok_or_else(|| failed("a step-up is required and the session has no StepUp handler"))?;
        // The session hears of every answer: they slide the token's window, and a 401 retires it.
        let session = tokens.observer();
        let context = || weavr.observed_context(token, Replay::Unsent, session.clone());
        let endpoint = &weavr.endpoint;
        tracing::info!(service = %Service::Weavr, method = ?self.method, "starting a step-up challenge");
        let mut started = tokens.now();
        match self.method {
            StepUpMethod::Push(channel) => {
                let push = |api: Client| async move {
                    api.start_push_challenge(channel.to_api(), None).await
                };
                let id = endpoint
                    .call(
                        context()?.with_grant(crate::telemetry::Grant::StepUpChallenge),
                        &classify_api,
                        push,
                    )
                    .await
                    .map_err(step_up_error)?
                    .into_inner()
                    .id;
                let answer = ask(&**handler, Challenge::Push { channel, id }, tokens, started);
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
                if let Err(error) = endpoint
                    .call(
                        context()?.with_grant(crate::telemetry::Grant::StepUpChallenge),
                        &classify_api,
                        sms,
                    )
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
                    let answer = ask(&**handler, Challenge::Sms { attempt }, tokens, started);
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
                    let error = endpoint
                        .call(
                            context()?.with_grant(crate::telemetry::Grant::StepUpVerify),
                            &classify_api,
                            verify,
                        )
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
    /// the identity.
    async fn exchange(&self, weavr: &Weavr, tokens: &Tokens) -> bool {
        let Ok(token) = tokens.access_token().await else {
            return false;
        };
        let sent = tokens.sent();
        match weavr.exchange_for_identity(token.secret()).await {
            Ok(Some(grant)) => tokens.install(grant, sent).await.is_ok(),
            _ => false,
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

impl Coordinator {
    /// Cures a 403 the service explained: a step-up, or an exchange for the identity's access
    /// token; true when the request is worth sending again.
    pub(crate) fn cure<'a>(
        &'a self,
        weavr: &'a Weavr,
        tokens: &'a Tokens,
        body: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(async move {
            match error_code(body).as_deref() {
                Some("STEP_UP_REQUIRED") => match self.step_up(weavr, tokens).await {
                    Ok(()) => true,
                    Err(error) => {
                        tracing::warn!(service = %Service::Weavr, %error, "step-up failed");
                        false
                    }
                },
                Some("ACCESS_TOKEN_REQUIRED") => self.exchange(weavr, tokens).await,
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
