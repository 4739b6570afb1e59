//! The command's arguments: clap's builder, with one subcommand per profile the library lists
//! (`tokensmith::env::profiles`), so that a service the library adds is a provider here with no
//! edit; and the command's own variables.

use std::path::PathBuf;

use clap::builder::EnumValueParser;
use clap::error::{ContextKind, ContextValue, ErrorKind as ClapErrorKind};
use clap::{Arg, ArgAction, ValueEnum};
use tokensmith::env::{Profile, Variable};

use super::exit::Exit;

const AFTER_HELP: &str = "\
Credentials are read from the environment only; `tokensmith <PROVIDER> --help` lists each
provider's variables.

--base-url falls back to TOKENSMITH_BASE_URL, then to the provider's own variable (such as
FIB_BASE_URL; `tokensmith <PROVIDER> --help` names it), then to the service's production URL.
A service that has none (`tokensmith <PROVIDER> --help` says so) needs one of the three, or
--sandbox.

--cache FILE keeps the token set between runs (mode 0600), sealed with the key in
TOKENSMITH_CACHE_KEY (64 hex characters), or else with one generated into FILE.key (mode 0600;
a key file that others can read, or that another user owns, is refused).

Exit codes: 0 success, 2 usage or configuration, 3 credentials refused, 4 rate limited or
locked, 5 any other service or transport error.";

/// What to print.
#[derive(ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Command {
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

/// A parsed request for a token.
pub(crate) struct Request {
    pub(crate) base_url: Option<String>,
    pub(crate) cache: Option<PathBuf>,
    pub(crate) sandbox: bool,
    pub(crate) profile: Profile,
    pub(crate) command: Command,
    /// weavr's `--step-up` (false for every other provider, which has no such flag).
    #[cfg_attr(not(feature = "weavr"), allow(dead_code))]
    pub(crate) step_up: bool,
}

/// The command line's grammar, with a provider for each of `profiles`.
fn grammar(profiles: &[Profile]) -> clap::Command {
    clap::Command::new("tokensmith")
        .version(env!("CARGO_PKG_VERSION"))
        .about("A valid access token for the shell, from one of five authentication services")
        .after_help(AFTER_HELP)
        .subcommand_value_name("PROVIDER")
        .subcommand_help_heading("Providers")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .arg(
            Arg::new("base_url")
                .long("base-url")
                .value_name("URL")
                .global(true)
                .help(
                    "The service's base URL (else TOKENSMITH_BASE_URL, else the provider's \
                     <SERVICE>_BASE_URL, else its production URL)",
                ),
        )
        .arg(
            Arg::new("cache")
                .long("cache")
                .value_name("FILE")
                .global(true)
                .value_parser(clap::value_parser!(PathBuf))
                .help("Keep the token set between runs in FILE (sealed, mode 0600)"),
        )
        .arg(
            Arg::new("sandbox")
                .long("sandbox")
                .global(true)
                .action(ArgAction::SetTrue)
                .help(
                    "Start the built-in sandbox and use its demo accounts (no network, no \
                     credentials)",
                ),
        )
        .subcommands(profiles.iter().map(provider))
        .subcommand(
            clap::Command::new("completions")
                .about("Print a completion script for a shell to stdout")
                .arg(
                    Arg::new("shell")
                        .value_name("SHELL")
                        .required(true)
                        .value_parser(EnumValueParser::<clap_complete::Shell>::new())
                        .help("The shell"),
                ),
        )
}

/// A profile's subcommand.
fn provider(profile: &Profile) -> clap::Command {
    let command = clap::Command::new(profile.name())
        .about(profile.about())
        .after_help(environment(profile))
        .arg(
            Arg::new("command")
                .value_name("COMMAND")
                .required(true)
                .value_parser(EnumValueParser::<Command>::new())
                .help("What to print"),
        );
    #[cfg(feature = "weavr")]
    let command = super::step_up::with_flag(profile, command);
    command
}

/// The provider's help below its options: its variables (optional ones in brackets), and where
/// its base URL comes from when the service has no production URL.
fn environment(profile: &Profile) -> String {
    let names = profile.variables().iter().map(shown).collect::<Vec<_>>();
    #[cfg(feature = "weavr")]
    let names = [
        names,
        super::step_up::variables(profile)
            .into_iter()
            .map(str::to_owned)
            .collect(),
    ]
    .concat();
    let mut text = format!("Environment: {}", names.join(" "));
    if let Some(hint) = profile.base_url_required() {
        text.push_str(&format!(
            "\n\nA base URL is required (--base-url, TOKENSMITH_BASE_URL, {} or --sandbox): \
             {hint}",
            profile.base_url_variable()
        ));
    }
    text
}

fn shown(variable: &Variable) -> String {
    if variable.is_required() {
        variable.name().to_owned()
    } else {
        format!("[{}]", variable.name())
    }
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

/// The request on the command line; `None` when it asked for help, the version or a
/// completion script, which are printed here.
pub(crate) fn parse() -> Result<Option<Request>, Exit> {
    let profiles = tokensmith::env::profiles();
    let matches = match grammar(&profiles).try_get_matches() {
        Ok(matches) => matches,
        Err(error) => match error.kind() {
            ClapErrorKind::DisplayHelp | ClapErrorKind::DisplayVersion => {
                print!("{}", error.render());
                return Ok(None);
            }
            _ => {
                return Err(Exit {
                    from_clap: true,
                    ..Exit::usage(usage_error(&error))
                })
            }
        },
    };
    // clap has checked the names and that the required arguments are there.
    let missing = || Exit::usage("a provider and a command are required");
    let (name, arguments) = matches.subcommand().ok_or_else(missing)?;
    if name == "completions" {
        let shell = *arguments
            .get_one::<clap_complete::Shell>("shell")
            .ok_or_else(missing)?;
        let mut grammar = grammar(&profiles);
        clap_complete::generate(shell, &mut grammar, "tokensmith", &mut std::io::stdout());
        return Ok(None);
    }
    let profile = profiles
        .into_iter()
        .find(|profile| profile.name() == name)
        .ok_or_else(missing)?;
    Ok(Some(Request {
        base_url: matches.get_one::<String>("base_url").cloned(),
        cache: matches.get_one::<PathBuf>("cache").cloned(),
        sandbox: matches.get_flag("sandbox"),
        profile,
        command: *arguments
            .get_one::<Command>("command")
            .ok_or_else(missing)?,
        step_up: matches!(arguments.try_get_one::<bool>("step_up"), Ok(Some(true))),
    }))
}
