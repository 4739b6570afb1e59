//! weavr step-up with the one-time password typed at a prompt.
//!
//! `cargo run --example step_up` runs against the built-in sandbox (its code is `123456`);
//! with `WEAVR_API_KEY`, `WEAVR_EMAIL` and `WEAVR_PASSWORD` set (and `WEAVR_BASE_URL`, default
//! Weavr's sandbox) it runs against the real service and a real text message.

use std::io::Write;

use tokensmith::sandbox::{demo, Sandbox};
use tokensmith::weavr::{Answer, Challenge, Session, StepUpMethod};
use tokensmith::Service;

/// Reads a code from the terminal (off the async threads).
async fn ask(challenge: Challenge) -> Answer {
    let prompt = match challenge {
        Challenge::Sms { attempt: 1 } => "one-time password from the SMS: ".to_owned(),
        Challenge::Sms { attempt } => {
            format!("wrong code, or not six digits; try again (attempt {attempt}): ")
        }
        _ => return Answer::Declined,
    };
    let line = tokio::task::spawn_blocking(move || {
        print!("{prompt}");
        std::io::stdout().flush().ok();
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await;
    match line {
        Ok(Ok(code)) if !code.trim().is_empty() => Answer::Code(code.trim().into()),
        _ => Answer::Declined,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (_sandbox, builder) = match (
        env("WEAVR_API_KEY"),
        env("WEAVR_EMAIL"),
        env("WEAVR_PASSWORD"),
    ) {
        (Some(key), Some(email), Some(password)) => {
            let base =
                env("WEAVR_BASE_URL").unwrap_or_else(|| tokensmith::weavr::SANDBOX_BASE_URL.into());
            println!("weavr at {base} as {email}");
            let builder = Session::builder()
                .base_url(base)
                .api_key(key)
                .email(email)
                .password(password);
            (None, builder)
        }
        _ => {
            let sandbox = Sandbox::start().await;
            println!("built-in sandbox (type {} when asked)", demo::WEAVR_OTP);
            let builder = Session::builder()
                .base_url(sandbox.base_url(Service::Weavr))
                .api_key(demo::WEAVR_API_KEY)
                .email(demo::WEAVR_EMAIL)
                .password(demo::WEAVR_PASSWORD);
            (Some(sandbox), builder)
        }
    };
    let session = builder.step_up(StepUpMethod::Sms, ask).build()?;
    let token = session.access_token().await?;
    println!("signed in: {token:?}");
    session.step_up().await?;
    println!("token stepped up; calls that need it now go through");
    session.logout().await?;
    println!("logged out");
    Ok(())
}
