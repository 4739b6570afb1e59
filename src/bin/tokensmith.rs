//! `tokensmith`: a valid access token for the shell, the way `gcloud auth
//! print-access-token` gives one.
//!
//! ```text
//! tokensmith [--base-url URL] [--cache FILE] [--sandbox] <PROVIDER> <COMMAND>
//! ```
//!
//! Credentials come only from the environment (flags would show in process lists). Exit
//! codes: 0 success, 2 usage or configuration, 3 credentials refused, 4 rate limited or locked,
//! 5 any other service or transport error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use tokensmith::sandbox::{demo, Sandbox};
use tokensmith::store::{FileStore, SealingKey};
use tokensmith::{AccessToken, Error, ErrorKind, SecretString, Service, TokenOrigin};

const USAGE: &str = "\
usage: tokensmith [--base-url URL] [--cache FILE] [--sandbox] <PROVIDER> <COMMAND>

PROVIDER  s7risk-user | s7risk-app | weavr | accounts | passwordsafe-oauth |
          passwordsafe-key | fib
COMMAND   token   print the access token alone (passwordsafe: the session cookie)
          header  print `Authorization: Bearer <token>` (passwordsafe: `Cookie: <cookie>`)
          info    print JSON: provider, expires_at, seconds_left, source (never the token)
          logout  end the session and forget the cached token

Credentials are read from the environment only:
  s7risk-user  S7RISK_ORIGIN S7RISK_EMAIL S7RISK_PASSWORD
  s7risk-app   S7RISK_ORIGIN S7RISK_CLIENT_ID S7RISK_SECRET
  weavr        WEAVR_API_KEY WEAVR_EMAIL WEAVR_PASSWORD [WEAVR_OTP]
               (the token is stepped up with WEAVR_OTP, or a code typed at the prompt
               when run on a terminal)
  accounts     ACCOUNTS_USERNAME ACCOUNTS_PASSWORD
  passwordsafe-oauth  PASSWORDSAFE_CLIENT_ID PASSWORDSAFE_CLIENT_SECRET
  passwordsafe-key    PASSWORDSAFE_API_KEY PASSWORDSAFE_RUNAS [PASSWORDSAFE_PASSWORD]
  fib          FIB_EMAIL FIB_PRIVATE_KEY
--base-url falls back to TOKENSMITH_BASE_URL, then to the service's production URL
(Password Safe has none: every installation has its own, so one of them is required).
--cache FILE keeps the token set between runs (mode 0600), sealed with the key in
TOKENSMITH_CACHE_KEY (64 hex characters), or else with one generated into FILE.key.
--sandbox starts the built-in sandbox and uses its demo accounts.";

/// What went wrong, and the exit code it earns.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: message.into(),
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        let code = match error.kind() {
            ErrorKind::Configuration => 2,
            _ if error.is_credentials_refused() => 3,
            ErrorKind::RateLimited { .. } | ErrorKind::AccountLocked { .. } => 4,
            _ => 5,
        };
        Self {
            code,
            message: error.to_string(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Provider {
    S7riskUser,
    S7riskApp,
    Weavr,
    Accounts,
    PasswordSafeOauth,
    PasswordSafeKey,
    Fib,
}

impl Provider {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "s7risk-user" => Self::S7riskUser,
            "s7risk-app" => Self::S7riskApp,
            "weavr" => Self::Weavr,
            "accounts" => Self::Accounts,
            "passwordsafe-oauth" => Self::PasswordSafeOauth,
            "passwordsafe-key" => Self::PasswordSafeKey,
            "fib" => Self::Fib,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::S7riskUser => "s7risk-user",
            Self::S7riskApp => "s7risk-app",
            Self::Weavr => "weavr",
            Self::Accounts => "accounts",
            Self::PasswordSafeOauth => "passwordsafe-oauth",
            Self::PasswordSafeKey => "passwordsafe-key",
            Self::Fib => "fib",
        }
    }

    fn service(self) -> Service {
        match self {
            Self::S7riskUser | Self::S7riskApp => Service::S7risk,
            Self::Weavr => Service::Weavr,
            Self::Accounts => Service::Accounts,
            Self::PasswordSafeOauth | Self::PasswordSafeKey => Service::PasswordSafe,
            Self::Fib => Service::Fib,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Command {
    Token,
    Header,
    Info,
    Logout,
}

struct Args {
    base_url: Option<String>,
    cache: Option<PathBuf>,
    sandbox: bool,
    provider: Provider,
    command: Command,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, Failure> {
    let (mut base_url, mut cache, mut sandbox) = (None, None, false);
    let mut positional = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--base-url" => {
                base_url = Some(
                    args.next()
                        .ok_or_else(|| Failure::usage("--base-url needs a URL"))?,
                )
            }
            "--cache" => {
                cache = Some(PathBuf::from(
                    args.next()
                        .ok_or_else(|| Failure::usage("--cache needs a file"))?,
                ))
            }
            "--sandbox" => sandbox = true,
            "-h" | "--help" => return Err(Failure::usage("")),
            flag if flag.starts_with('-') => {
                return Err(Failure::usage(format!("unknown option {flag}")))
            }
            _ => positional.push(arg),
        }
    }
    let [provider, command] = <[String; 2]>::try_from(positional)
        .map_err(|_| Failure::usage("expected a PROVIDER and a COMMAND"))?;
    let provider = Provider::parse(&provider)
        .ok_or_else(|| Failure::usage(format!("unknown provider {provider:?}")))?;
    let command = match command.as_str() {
        "token" => Command::Token,
        "header" => Command::Header,
        "info" => Command::Info,
        "logout" => Command::Logout,
        other => return Err(Failure::usage(format!("unknown command {other:?}"))),
    };
    Ok(Args {
        base_url,
        cache,
        sandbox,
        provider,
        command,
    })
}

/// Credentials: the sandbox's demo accounts, or the environment.
struct Env {
    sandbox: bool,
}

impl Env {
    fn plain(&self, name: &str, demo: &str) -> Result<String, Failure> {
        if self.sandbox {
            return Ok(demo.to_owned());
        }
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Failure::usage(format!("{name} is not set")))
    }

    fn secret(&self, name: &str, demo: &str) -> Result<SecretString, Failure> {
        self.plain(name, demo).map(SecretString::new)
    }

    fn optional_secret(&self, name: &str, demo: &str) -> Option<SecretString> {
        self.secret(name, demo).ok()
    }
}

fn store(path: &PathBuf) -> Result<FileStore, Failure> {
    let key = match std::env::var("TOKENSMITH_CACHE_KEY") {
        Ok(hex) => SealingKey::from_hex(&SecretString::new(hex))?,
        Err(_) => {
            let mut key_path = path.clone().into_os_string();
            key_path.push(".key");
            let key_path = PathBuf::from(key_path);
            match std::fs::read_to_string(&key_path) {
                Ok(hex) => SealingKey::from_hex(&SecretString::new(hex))?,
                Err(_) => {
                    let (key, hex) = SealingKey::generate();
                    write_private(&key_path, hex.expose_secret().as_bytes()).map_err(|e| {
                        Failure::usage(format!("cannot write {}: {e}", key_path.display()))
                    })?;
                    key
                }
            }
        }
    };
    Ok(FileStore::new(path, key))
}

fn write_private(path: &PathBuf, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

enum Session {
    S7risk(tokensmith::s7risk::Session),
    Weavr(tokensmith::weavr::Session),
    Accounts(tokensmith::accounts::Session),
    PasswordSafe(tokensmith::passwordsafe::Session),
    Fib(tokensmith::fib::Session),
}

impl Session {
    async fn access_token(&self) -> Result<AccessToken, Error> {
        match self {
            Self::S7risk(s) => s.access_token().await,
            Self::Weavr(s) => {
                // A stepped-up token from --cache is not stepped up again (no new SMS).
                s.access_token().await?;
                s.step_up().await?;
                s.access_token().await
            }
            Self::Accounts(s) => s.access_token().await,
            Self::PasswordSafe(s) => s.access_token().await,
            Self::Fib(s) => s.access_token().await,
        }
    }

    async fn logout(&self) -> Result<(), Error> {
        match self {
            Self::S7risk(s) => s.logout().await,
            Self::Weavr(s) => s.logout().await,
            Self::Accounts(s) => s.logout().await,
            Self::PasswordSafe(s) => s.logout().await,
            Self::Fib(s) => s.logout().await,
        }
    }
}

macro_rules! configure {
    ($builder:expr, $base_url:expr, $store:expr) => {{
        let mut builder = $builder;
        if let Some(url) = $base_url {
            builder = builder.base_url(url);
        }
        if let Some(store) = $store {
            builder = builder.token_store(store);
        }
        builder.build()?
    }};
}

fn session(
    provider: Provider,
    env: &Env,
    base_url: Option<String>,
    store: Option<FileStore>,
) -> Result<Session, Failure> {
    use tokensmith::{accounts, fib, passwordsafe, s7risk, weavr};
    Ok(match provider {
        Provider::S7riskUser | Provider::S7riskApp => {
            let builder =
                s7risk::Session::builder().origin(env.plain("S7RISK_ORIGIN", demo::S7RISK_ORIGIN)?);
            let builder = if provider == Provider::S7riskUser {
                builder.user(
                    env.plain("S7RISK_EMAIL", demo::S7RISK_EMAIL)?,
                    env.secret("S7RISK_PASSWORD", demo::S7RISK_PASSWORD)?,
                )
            } else {
                builder.application(
                    env.plain("S7RISK_CLIENT_ID", demo::S7RISK_CLIENT_ID)?,
                    env.secret("S7RISK_SECRET", demo::S7RISK_SECRET)?,
                )
            };
            Session::S7risk(configure!(builder, base_url, store))
        }
        Provider::Weavr => {
            let otp = env.optional_secret("WEAVR_OTP", demo::WEAVR_OTP);
            let builder = weavr::Session::builder()
                .api_key(env.secret("WEAVR_API_KEY", demo::WEAVR_API_KEY)?)
                .email(env.plain("WEAVR_EMAIL", demo::WEAVR_EMAIL)?)
                .password(env.secret("WEAVR_PASSWORD", demo::WEAVR_PASSWORD)?)
                .max_otp_attempts(if otp.is_some() { 1 } else { 3 })
                .step_up(weavr::StepUpMethod::Sms, move |challenge| {
                    let otp = otp.clone();
                    async move {
                        match otp {
                            Some(code) => weavr::Answer::Code(code),
                            None => prompt_otp(challenge).await,
                        }
                    }
                });
            Session::Weavr(configure!(builder, base_url, store))
        }
        Provider::Accounts => {
            let builder = accounts::Session::builder()
                .username(env.plain("ACCOUNTS_USERNAME", demo::ACCOUNTS_USERNAME)?)
                .password(env.secret("ACCOUNTS_PASSWORD", demo::ACCOUNTS_PASSWORD)?);
            Session::Accounts(configure!(builder, base_url, store))
        }
        Provider::PasswordSafeOauth | Provider::PasswordSafeKey => {
            let builder = passwordsafe::Session::builder();
            let builder = if provider == Provider::PasswordSafeOauth {
                builder.oauth(
                    env.plain("PASSWORDSAFE_CLIENT_ID", demo::PASSWORDSAFE_CLIENT_ID)?,
                    env.secret(
                        "PASSWORDSAFE_CLIENT_SECRET",
                        demo::PASSWORDSAFE_CLIENT_SECRET,
                    )?,
                )
            } else {
                builder.ps_auth(
                    env.secret("PASSWORDSAFE_API_KEY", demo::PASSWORDSAFE_API_KEY)?,
                    env.plain("PASSWORDSAFE_RUNAS", demo::PASSWORDSAFE_RUNAS)?,
                    env.optional_secret("PASSWORDSAFE_PASSWORD", demo::PASSWORDSAFE_PASSWORD),
                )
            };
            if base_url.is_none() {
                return Err(Failure::usage(
                    "passwordsafe needs --base-url or TOKENSMITH_BASE_URL \
                     (https://<host>/BeyondTrust/api/public/v3)",
                ));
            }
            Session::PasswordSafe(configure!(builder, base_url, store))
        }
        Provider::Fib => {
            let builder = fib::Session::builder()
                .email(env.plain("FIB_EMAIL", demo::FIB_EMAIL)?)
                .private_key(env.secret("FIB_PRIVATE_KEY", demo::FIB_PRIVATE_KEY)?);
            Session::Fib(configure!(builder, base_url, store))
        }
    })
}

/// Asks for the one-time password on the terminal; declines when there is none.
async fn prompt_otp(challenge: tokensmith::weavr::Challenge) -> tokensmith::weavr::Answer {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return tokensmith::weavr::Answer::Declined;
    }
    let attempt = match challenge {
        tokensmith::weavr::Challenge::Sms { attempt } => attempt,
        _ => 1,
    };
    let line = tokio::task::spawn_blocking(move || {
        eprint!("weavr one-time password (attempt {attempt}): ");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await;
    match line {
        Ok(Ok(line)) if !line.trim().is_empty() => {
            tokensmith::weavr::Answer::Code(SecretString::new(line.trim()))
        }
        _ => tokensmith::weavr::Answer::Declined,
    }
}

async fn run(args: Args) -> Result<String, Failure> {
    let sandbox = if args.sandbox {
        Some(Sandbox::start().await)
    } else {
        None
    };
    let base_url = match &sandbox {
        Some(sandbox) => Some(sandbox.base_url(args.provider.service())),
        None => args
            .base_url
            .or_else(|| std::env::var("TOKENSMITH_BASE_URL").ok()),
    };
    let store = args.cache.as_ref().map(store).transpose()?;
    let env = Env {
        sandbox: args.sandbox,
    };
    let session = session(args.provider, &env, base_url, store)?;
    if args.command == Command::Logout {
        session.logout().await?;
        return Ok(String::new());
    }
    let token = session.access_token().await?;
    Ok(match args.command {
        Command::Token => token.secret().expose_secret().to_owned(),
        Command::Header if args.provider.service() == Service::PasswordSafe => {
            format!("Cookie: {}", token.secret().expose_secret())
        }
        Command::Header => format!("Authorization: Bearer {}", token.secret().expose_secret()),
        Command::Info => {
            let source = match token.origin() {
                TokenOrigin::Login => "login",
                TokenOrigin::Refresh => "refresh",
                // Taken from --cache (TokenOrigin is non-exhaustive: anything new is a cache).
                _ => "cache",
            };
            let expires_at = token.expires_at_system();
            serde_json::json!({
                "provider": args.provider.name(),
                "expires_at": humantime::format_rfc3339_seconds(expires_at).to_string(),
                "seconds_left": token.expires_in().as_secs(),
                "source": source,
            })
            .to_string()
        }
        Command::Logout => unreachable!("handled above"),
    })
}

/// Runs the command with the process arguments.
pub fn main() -> ExitCode {
    let outcome = parse_args(std::env::args().skip(1)).and_then(|args| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Failure {
                code: 5,
                message: format!("cannot start the runtime: {e}"),
            })?;
        runtime.block_on(run(args))
    });
    match outcome {
        Ok(output) => {
            if !output.is_empty() {
                println!("{output}");
            }
            ExitCode::SUCCESS
        }
        Err(failure) => {
            if failure.message.is_empty() {
                eprintln!("{USAGE}");
            } else if failure.code == 2 {
                eprintln!("tokensmith: {}\n\n{USAGE}", failure.message);
            } else {
                eprintln!("tokensmith: {}", failure.message);
            }
            ExitCode::from(failure.code)
        }
    }
}
