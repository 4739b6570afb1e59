//! `tokensmith`: a valid access token for the shell, the way `gcloud auth
//! print-access-token` gives one.
//!
//! ```text
//! tokensmith [--base-url URL] [--cache FILE] [--sandbox] <PROVIDER> <COMMAND>
//! tokensmith completions <SHELL>
//! ```
//!
//! Credentials come only from the environment (flags would show in process lists). Exit
//! codes: 0 success, 2 usage or configuration, 3 credentials refused, 4 rate limited or locked,
//! 5 any other service or transport error.

#[cfg(not(any(
    feature = "s7risk",
    feature = "weavr",
    feature = "accounts",
    feature = "passwordsafe",
    feature = "fib"
)))]
compile_error!(
    "the tokensmith command needs at least one service feature: \
     s7risk, weavr, accounts, passwordsafe or fib"
);

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind as ClapErrorKind};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use tokensmith::sandbox::{demo, Sandbox};
use tokensmith::store::{FileStore, SealingKey};
use tokensmith::{AccessToken, AnySession, Error, ErrorKind, SecretString, Service, TokenOrigin};

const AFTER_HELP: &str = "\
Credentials are read from the environment only; `tokensmith <PROVIDER> --help` lists each
provider's variables.

--base-url falls back to TOKENSMITH_BASE_URL, then to the service's production URL. Password
Safe and weavr have none: every Password Safe installation has its own, and Weavr gives each
customer its Live URL on request.

--cache FILE keeps the token set between runs (mode 0600), sealed with the key in
TOKENSMITH_CACHE_KEY (64 hex characters), or else with one generated into FILE.key (mode 0600;
a key file that others can read, or that another user owns, is refused).

Exit codes: 0 success, 2 usage or configuration, 3 credentials refused, 4 rate limited or
locked, 5 any other service or transport error.";

/// A valid access token for the shell, from one of five authentication services.
#[derive(Parser, Debug)]
#[command(
    name = "tokensmith",
    version,
    after_help = AFTER_HELP,
    subcommand_value_name = "PROVIDER",
    subcommand_help_heading = "Providers"
)]
struct Cli {
    /// The service's base URL (else TOKENSMITH_BASE_URL, else its production URL).
    #[arg(long, value_name = "URL", global = true)]
    base_url: Option<String>,

    /// Keep the token set between runs in FILE (sealed, mode 0600).
    #[arg(long, value_name = "FILE", global = true)]
    cache: Option<PathBuf>,

    /// Start the built-in sandbox and use its demo accounts (no network, no credentials).
    #[arg(long, global = true)]
    sandbox: bool,

    #[command(subcommand)]
    provider: ProviderArg,
}

/// What to print.
#[derive(ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
enum Command {
    /// The access token alone (passwordsafe: the session cookie, or the bearer of a
    /// cookieless OAuth session).
    Token,
    /// `Authorization: Bearer <token>` (passwordsafe: `Cookie: <cookie>`, or the bearer for an
    /// OAuth session whose sign-in set no cookie).
    Header,
    /// JSON: provider, expires_at, seconds_left, source (never the token).
    Info,
    /// End the session and forget the cached token.
    Logout,
}

#[derive(Args, Debug)]
struct CommandArg {
    /// What to print.
    #[arg(value_enum)]
    command: Command,
}

#[cfg(feature = "weavr")]
#[derive(Args, Debug)]
struct WeavrArgs {
    /// What to print.
    #[arg(value_enum)]
    command: Command,

    /// Step the token up with an SMS one-time password: the code comes from WEAVR_OTP, else
    /// from a prompt on the terminal (typed without echo). Without this flag no challenge is
    /// ever started.
    #[arg(long)]
    step_up: bool,
}

#[derive(Subcommand, Debug)]
enum ProviderArg {
    /// Intelligence Fusion, as a user.
    #[command(
        name = "s7risk-user",
        after_help = "Environment: S7RISK_ORIGIN S7RISK_EMAIL S7RISK_PASSWORD"
    )]
    #[cfg(feature = "s7risk")]
    S7riskUser(CommandArg),
    /// Intelligence Fusion, as an application.
    #[command(
        name = "s7risk-app",
        after_help = "Environment: S7RISK_ORIGIN S7RISK_CLIENT_ID S7RISK_SECRET"
    )]
    #[cfg(feature = "s7risk")]
    S7riskApp(CommandArg),
    /// Weavr Multi API.
    #[command(after_help = "Environment: WEAVR_API_KEY WEAVR_EMAIL WEAVR_PASSWORD \
                            [WEAVR_OTP, read only with --step-up]\n\n\
                            A base URL is required (--base-url, TOKENSMITH_BASE_URL or \
                            --sandbox): Weavr gives each customer its Live URL on request.")]
    #[cfg(feature = "weavr")]
    Weavr(WeavrArgs),
    /// Wikimedia Enterprise.
    #[command(after_help = "Environment: ACCOUNTS_USERNAME ACCOUNTS_PASSWORD")]
    #[cfg(feature = "accounts")]
    Accounts(CommandArg),
    /// BeyondTrust Password Safe, with an OAuth client.
    #[command(
        name = "passwordsafe-oauth",
        after_help = "Environment: PASSWORDSAFE_CLIENT_ID PASSWORDSAFE_CLIENT_SECRET\n\n\
                      A base URL is required (--base-url, TOKENSMITH_BASE_URL or --sandbox): \
                      https://<host>/BeyondTrust/api/public/v3"
    )]
    #[cfg(feature = "passwordsafe")]
    PasswordsafeOauth(CommandArg),
    /// BeyondTrust Password Safe, with an API key (PS-Auth).
    #[command(
        name = "passwordsafe-key",
        after_help = "Environment: PASSWORDSAFE_API_KEY PASSWORDSAFE_RUNAS \
                      [PASSWORDSAFE_PASSWORD]\n\n\
                      A base URL is required (--base-url, TOKENSMITH_BASE_URL or --sandbox): \
                      https://<host>/BeyondTrust/api/public/v3"
    )]
    #[cfg(feature = "passwordsafe")]
    PasswordsafeKey(CommandArg),
    /// Fraud Intelligence Blockchain.
    #[command(after_help = "Environment: FIB_EMAIL FIB_PRIVATE_KEY")]
    #[cfg(feature = "fib")]
    Fib(CommandArg),
    /// Print a completion script for a shell to stdout.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// What went wrong, and the exit code it earns.
pub(crate) struct Failure {
    code: u8,
    message: String,
    /// The message is clap's, complete with its usage line.
    from_clap: bool,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: message.into(),
            from_clap: false,
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
            from_clap: false,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Provider {
    #[cfg(feature = "s7risk")]
    S7riskUser,
    #[cfg(feature = "s7risk")]
    S7riskApp,
    #[cfg(feature = "weavr")]
    Weavr,
    #[cfg(feature = "accounts")]
    Accounts,
    #[cfg(feature = "passwordsafe")]
    PasswordSafeOauth,
    #[cfg(feature = "passwordsafe")]
    PasswordSafeKey,
    #[cfg(feature = "fib")]
    Fib,
}

impl Provider {
    fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "s7risk")]
            Self::S7riskUser => "s7risk-user",
            #[cfg(feature = "s7risk")]
            Self::S7riskApp => "s7risk-app",
            #[cfg(feature = "weavr")]
            Self::Weavr => "weavr",
            #[cfg(feature = "accounts")]
            Self::Accounts => "accounts",
            #[cfg(feature = "passwordsafe")]
            Self::PasswordSafeOauth => "passwordsafe-oauth",
            #[cfg(feature = "passwordsafe")]
            Self::PasswordSafeKey => "passwordsafe-key",
            #[cfg(feature = "fib")]
            Self::Fib => "fib",
        }
    }

    fn service(self) -> Service {
        match self {
            #[cfg(feature = "s7risk")]
            Self::S7riskUser | Self::S7riskApp => Service::S7risk,
            #[cfg(feature = "weavr")]
            Self::Weavr => Service::Weavr,
            #[cfg(feature = "accounts")]
            Self::Accounts => Service::Accounts,
            #[cfg(feature = "passwordsafe")]
            Self::PasswordSafeOauth | Self::PasswordSafeKey => Service::PasswordSafe,
            #[cfg(feature = "fib")]
            Self::Fib => Service::Fib,
        }
    }
}

/// A parsed request for a token.
struct Request {
    base_url: Option<String>,
    cache: Option<PathBuf>,
    sandbox: bool,
    provider: Provider,
    command: Command,
    #[cfg_attr(not(feature = "weavr"), allow(dead_code))]
    step_up: bool,
}

/// Where a weavr step-up's code comes from.
#[cfg(feature = "weavr")]
#[derive(Clone)]
enum OtpSource {
    Given(SecretString),
    Prompt,
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

    #[cfg_attr(
        not(any(feature = "weavr", feature = "passwordsafe")),
        allow(dead_code)
    )]
    fn optional_secret(&self, name: &str, demo: &str) -> Option<SecretString> {
        self.secret(name, demo).ok()
    }
}

fn store(path: &Path) -> Result<FileStore, Failure> {
    let key = match std::env::var("TOKENSMITH_CACHE_KEY") {
        Ok(hex) => SealingKey::from_hex(&SecretString::new(hex))?,
        Err(_) => {
            let mut key_path = path.as_os_str().to_owned();
            key_path.push(".key");
            cache_key(Path::new(&key_path), |_| ())?.0
        }
    };
    Ok(FileStore::new(path, key))
}

/// The sealing key kept in `path`: read when it exists, else generated into it.
///
/// Two first runs at once must agree on one key and never read half of one: the key is written
/// to a private temporary file and published with `link`, which (unlike `rename`) fails when
/// the name exists; the run that loses reads the winner's complete key. `before_publish` is
/// told the temporary file's name just before the link (tests use it to force interleavings).
pub(crate) fn cache_key(
    path: &Path,
    before_publish: impl FnOnce(&Path),
) -> Result<(SealingKey, SecretString), Failure> {
    if let Some(key) = read_key(path)? {
        return Ok(key);
    }
    let (key, hex) = SealingKey::generate();
    let temporary = {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(
            ".{}.{:016x}.tmp",
            std::process::id(),
            fastrand::u64(..)
        ));
        PathBuf::from(name)
    };
    let written = write_private(&temporary, hex.expose_secret().as_bytes()).and_then(|()| {
        before_publish(&temporary);
        std::fs::hard_link(&temporary, path)
    });
    let _ = std::fs::remove_file(&temporary);
    match written {
        Ok(()) => Ok((key, hex)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key(path)?
            .ok_or_else(|| Failure::usage(format!("{} vanished while read", path.display()))),
        Err(e) => Err(Failure::usage(format!(
            "cannot write {}: {e}",
            path.display()
        ))),
    }
}

/// Reads a key file, refusing one that another user owns or that others may read.
fn read_key(path: &Path) -> Result<Option<(SealingKey, SecretString)>, Failure> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Failure::usage(format!(
                "cannot read {}: {e}",
                path.display()
            )))
        }
    };
    // The checks look at the file that was opened, not at whatever the name points to later.
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let metadata = file
            .metadata()
            .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
        let owner = metadata.uid();
        let me = rustix::process::geteuid().as_raw();
        if owner != me {
            return Err(Failure::usage(format!(
                "refusing the cache key {}: it belongs to user {owner}, not to you ({me})",
                path.display()
            )));
        }
        let mode = metadata.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(Failure::usage(format!(
                "refusing the cache key {}: its mode {mode:04o} lets others read it \
                 (chmod 600 it, or delete it and the cache)",
                path.display()
            )));
        }
    }
    let mut hex = String::new();
    std::io::Read::read_to_string(&mut file, &mut hex)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
    let hex = SecretString::new(hex);
    Ok(Some((SealingKey::from_hex(&hex)?, hex)))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// The session the command asks for its token: any service's, as one [`AnySession`].
struct Opened {
    session: AnySession,
    /// With weavr's `--step-up`, the same weavr session (a clone sharing its cache), for the
    /// `step_up` that only weavr has.
    #[cfg(feature = "weavr")]
    step_up: Option<tokensmith::weavr::Session>,
}

impl Opened {
    fn new(session: impl Into<AnySession>) -> Self {
        Self {
            session: session.into(),
            #[cfg(feature = "weavr")]
            step_up: None,
        }
    }

    async fn access_token(&self) -> Result<AccessToken, Error> {
        #[cfg(feature = "weavr")]
        if let Some(weavr) = &self.step_up {
            // A stepped-up token from --cache is not stepped up again (no new SMS).
            weavr.access_token().await?;
            weavr.step_up().await?;
        }
        self.session.access_token().await
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
    request: &Request,
    env: &Env,
    base_url: Option<String>,
    store: Option<FileStore>,
) -> Result<Opened, Failure> {
    #[cfg(feature = "accounts")]
    use tokensmith::accounts;
    #[cfg(feature = "fib")]
    use tokensmith::fib;
    #[cfg(feature = "passwordsafe")]
    use tokensmith::passwordsafe;
    #[cfg(feature = "s7risk")]
    use tokensmith::s7risk;
    #[cfg(feature = "weavr")]
    use tokensmith::weavr;
    let provider = request.provider;
    Ok(match provider {
        #[cfg(feature = "s7risk")]
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
            Opened::new(configure!(builder, base_url, store))
        }
        #[cfg(feature = "weavr")]
        Provider::Weavr => {
            if base_url.is_none() {
                return Err(Failure::usage(format!(
                    "weavr needs --base-url or TOKENSMITH_BASE_URL (Weavr gives each customer \
                     its Live URL on request; its sandbox is {}), or --sandbox",
                    weavr::SANDBOX_BASE_URL
                )));
            }
            let mut builder = weavr::Session::builder()
                .api_key(env.secret("WEAVR_API_KEY", demo::WEAVR_API_KEY)?)
                .email(env.plain("WEAVR_EMAIL", demo::WEAVR_EMAIL)?)
                .password(env.secret("WEAVR_PASSWORD", demo::WEAVR_PASSWORD)?);
            if request.step_up {
                // Decided before any request: a step-up that could never get its code must
                // not send an SMS first.
                let source = match env.optional_secret("WEAVR_OTP", demo::WEAVR_OTP) {
                    Some(code) => OtpSource::Given(code),
                    None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
                        OtpSource::Prompt
                    }
                    None => {
                        return Err(Failure::usage(
                            "--step-up needs the one-time password: set WEAVR_OTP, or run \
                             on a terminal to type it at the prompt",
                        ))
                    }
                };
                // A code from the environment cannot change, so a wrong one is not tried again.
                let attempts = if matches!(source, OtpSource::Given(_)) {
                    1
                } else {
                    3
                };
                builder = builder.max_otp_attempts(attempts).step_up(
                    weavr::StepUpMethod::Sms,
                    move |challenge| {
                        let source = source.clone();
                        async move {
                            match source {
                                OtpSource::Given(code) => weavr::Answer::Code(code),
                                OtpSource::Prompt => prompt_otp(challenge).await,
                            }
                        }
                    },
                );
            }
            let session: weavr::Session = configure!(builder, base_url, store);
            Opened {
                step_up: request.step_up.then(|| session.clone()),
                ..Opened::new(session)
            }
        }
        #[cfg(feature = "accounts")]
        Provider::Accounts => {
            let builder = accounts::Session::builder()
                .username(env.plain("ACCOUNTS_USERNAME", demo::ACCOUNTS_USERNAME)?)
                .password(env.secret("ACCOUNTS_PASSWORD", demo::ACCOUNTS_PASSWORD)?);
            Opened::new(configure!(builder, base_url, store))
        }
        #[cfg(feature = "passwordsafe")]
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
            Opened::new(configure!(builder, base_url, store))
        }
        #[cfg(feature = "fib")]
        Provider::Fib => {
            let builder = fib::Session::builder()
                .email(env.plain("FIB_EMAIL", demo::FIB_EMAIL)?)
                .private_key(env.secret("FIB_PRIVATE_KEY", demo::FIB_PRIVATE_KEY)?);
            Opened::new(configure!(builder, base_url, store))
        }
    })
}

/// Asks for the one-time password on the terminal, without echo.
#[cfg(feature = "weavr")]
async fn prompt_otp(challenge: tokensmith::weavr::Challenge) -> tokensmith::weavr::Answer {
    let attempt = match challenge {
        tokensmith::weavr::Challenge::Sms { attempt } => attempt,
        _ => 1,
    };
    let line = tokio::task::spawn_blocking(move || {
        rpassword::prompt_password(format!("weavr one-time password (attempt {attempt}): "))
    })
    .await;
    match line {
        Ok(Ok(line)) if !line.trim().is_empty() => {
            tokensmith::weavr::Answer::Code(SecretString::new(line.trim()))
        }
        _ => tokensmith::weavr::Answer::Declined,
    }
}

async fn run(request: Request) -> Result<String, Failure> {
    let sandbox = if request.sandbox {
        Some(Sandbox::start().await)
    } else {
        None
    };
    let base_url = match &sandbox {
        Some(sandbox) => Some(sandbox.base_url(request.provider.service())),
        None => request
            .base_url
            .clone()
            .or_else(|| std::env::var("TOKENSMITH_BASE_URL").ok())
            .filter(|url| !url.is_empty()),
    };
    let env = Env {
        sandbox: request.sandbox,
    };
    let store = request.cache.as_deref().map(store).transpose()?;
    let opened = session(&request, &env, base_url, store)?;
    if request.command == Command::Logout {
        opened.session.logout().await?;
        return Ok(String::new());
    }
    let token = opened.access_token().await?;
    Ok(match request.command {
        Command::Token => token.secret().expose_secret().to_owned(),
        // A Password Safe session is its cookie, unless its OAuth sign-in set none: then the
        // bearer alone, which is what its calls carry (see `passwordsafe::Session`).
        Command::Header
            if opened.session.service() == Service::PasswordSafe
                && opened.session.headers().await?.contains_key("cookie") =>
        {
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
                "provider": request.provider.name(),
                "expires_at": humantime::format_rfc3339_seconds(expires_at).to_string(),
                "seconds_left": token.expires_in().as_secs(),
                "source": source,
            })
            .to_string()
        }
        Command::Logout => unreachable!("handled above"),
    })
}

/// A clap error as text that names no value the user typed: a stray argument may be a secret
/// pasted in the wrong place, and an error message can end up in a log.
fn usage_error(error: &clap::Error) -> String {
    let mut rendered = error.render().to_string();
    // Where each kind of error keeps what the user typed (other contexts name our own options).
    let typed = match error.kind() {
        ClapErrorKind::UnknownArgument => ContextKind::InvalidArg,
        ClapErrorKind::InvalidValue => ContextKind::InvalidValue,
        ClapErrorKind::InvalidSubcommand => ContextKind::InvalidSubcommand,
        _ => return rendered,
    };
    if let Some(ContextValue::String(value)) = error.get(typed) {
        // An option's name is no secret, but what follows its `=` may be.
        let shown = match value.split_once('=') {
            Some((name, _)) if value.starts_with('-') => format!("{name}=[not shown]"),
            None if value.starts_with('-') => return rendered,
            _ => "[not shown]".to_owned(),
        };
        rendered = rendered.replace(&format!("'{value}'"), &format!("'{shown}'"));
    }
    rendered
}

fn parse() -> Result<Option<Request>, Failure> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => match error.kind() {
            ClapErrorKind::DisplayHelp | ClapErrorKind::DisplayVersion => {
                print!("{}", error.render());
                return Ok(None);
            }
            _ => {
                return Err(Failure {
                    from_clap: true,
                    ..Failure::usage(usage_error(&error))
                })
            }
        },
    };
    let (provider, command, step_up) = match cli.provider {
        #[cfg(feature = "s7risk")]
        ProviderArg::S7riskUser(a) => (Provider::S7riskUser, a.command, false),
        #[cfg(feature = "s7risk")]
        ProviderArg::S7riskApp(a) => (Provider::S7riskApp, a.command, false),
        #[cfg(feature = "weavr")]
        ProviderArg::Weavr(a) => (Provider::Weavr, a.command, a.step_up),
        #[cfg(feature = "accounts")]
        ProviderArg::Accounts(a) => (Provider::Accounts, a.command, false),
        #[cfg(feature = "passwordsafe")]
        ProviderArg::PasswordsafeOauth(a) => (Provider::PasswordSafeOauth, a.command, false),
        #[cfg(feature = "passwordsafe")]
        ProviderArg::PasswordsafeKey(a) => (Provider::PasswordSafeKey, a.command, false),
        #[cfg(feature = "fib")]
        ProviderArg::Fib(a) => (Provider::Fib, a.command, false),
        ProviderArg::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "tokensmith",
                &mut std::io::stdout(),
            );
            return Ok(None);
        }
    };
    Ok(Some(Request {
        base_url: cli.base_url,
        cache: cli.cache,
        sandbox: cli.sandbox,
        provider,
        command,
        step_up,
    }))
}

/// Runs the command with the process arguments.
pub fn main() -> ExitCode {
    let outcome = parse().and_then(|request| {
        let Some(request) = request else {
            return Ok(String::new());
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Failure {
                code: 5,
                message: format!("cannot start the runtime: {e}"),
                from_clap: false,
            })?;
        runtime.block_on(run(request))
    });
    match outcome {
        Ok(output) => {
            if !output.is_empty() {
                println!("{output}");
            }
            ExitCode::SUCCESS
        }
        Err(failure) => {
            if failure.from_clap {
                // clap's own message, with its usage line and a pointer to --help.
                eprint!("{}", failure.message);
            } else if failure.code == 2 {
                eprintln!(
                    "tokensmith: {}\n\nFor more information, try 'tokensmith --help'.",
                    failure.message
                );
            } else {
                eprintln!("tokensmith: {}", failure.message);
            }
            ExitCode::from(failure.code)
        }
    }
}
