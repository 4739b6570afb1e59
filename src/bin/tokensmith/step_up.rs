//! weavr's `--step-up`, the command's one provider-specific part: the flag, and a weavr session
//! whose step-up is answered with the code from `WEAVR_OTP` or typed at the terminal.

use std::ffi::OsString;

use clap::{Arg, ArgAction};
use tokensmith::env::Profile;
use tokensmith::weavr::{self, Answer, Challenge, StepUpMethod};
use tokensmith::{SecretString, Service};

use super::exit::Exit;
use super::vars::checked;

/// The variable that gives the one-time password.
const OTP: &str = "WEAVR_OTP";

/// weavr's subcommand, with `--step-up`.
pub(crate) fn with_flag(profile: &Profile, command: clap::Command) -> clap::Command {
    if profile.service() != Service::Weavr {
        return command;
    }
    command.arg(
        Arg::new("step_up")
            .long("step-up")
            .action(ArgAction::SetTrue)
            .help(
                "Step the token up with an SMS one-time password: the code comes from \
                 WEAVR_OTP, else from a prompt on the terminal (typed without echo). Without \
                 this flag no challenge is ever started",
            ),
    )
}

/// What weavr's help adds to its variables.
pub(crate) fn variables(profile: &Profile) -> Option<&'static str> {
    (profile.service() == Service::Weavr).then_some("[WEAVR_OTP, read only with --step-up]")
}

/// Where a step-up's code comes from.
#[derive(Clone)]
enum Code {
    Given(SecretString),
    Prompt,
}

/// A weavr builder from the variables `get` gives, whose step-up is answered with the code
/// from `WEAVR_OTP`, else typed at the terminal.
pub(crate) fn builder(
    get: impl Fn(&str) -> Option<OsString>,
) -> Result<weavr::SessionBuilder, Exit> {
    let builder = weavr::Session::builder().from_env_with(&get)?;
    // Decided before any request: a step-up that could never get its code must not send an
    // SMS first.
    let code =
        match checked(OTP, get(OTP))? {
            Some(code) => Code::Given(code),
            None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => Code::Prompt,
            None => return Err(Exit::usage(
                "--step-up needs the one-time password: set WEAVR_OTP, or run on a terminal to \
                 type it at the prompt",
            )),
        };
    // A code from the environment cannot change, so a wrong one is not tried again.
    let attempts = if matches!(code, Code::Given(_)) { 1 } else { 3 };
    Ok(builder
        .max_otp_attempts(attempts)
        .step_up(StepUpMethod::Sms, move |challenge| {
            let code = code.clone();
            async move {
                match code {
                    Code::Given(code) => Answer::Code(code),
                    Code::Prompt => prompt(challenge).await,
                }
            }
        }))
}

/// Asks for the one-time password on the terminal, without echo.
async fn prompt(challenge: Challenge) -> Answer {
    let attempt = match challenge {
        Challenge::Sms { attempt } => attempt,
        _ => 1,
    };
    let line = tokio::task::spawn_blocking(move || {
        rpassword::prompt_password(format!("weavr one-time password (attempt {attempt}): "))
    })
    .await;
    match line {
        Ok(Ok(line)) if !line.trim().is_empty() => Answer::Code(SecretString::new(line.trim())),
        _ => Answer::Declined,
    }
}
