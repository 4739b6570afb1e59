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
//!
//! The providers are the library's profiles (`tokensmith::env::profiles`), each a subcommand.
//! The parts, each importing only those before it: `exit` (a failure's exit code and how the
//! outcome is printed), `vars` (the command's own variables), `step_up` (weavr's `--step-up`),
//! `args` (the arguments), `cache` (the `--cache` file and its key), `providers` (the session
//! asked for), `output` (what is printed for a token).

// Paths from this file's directory, so that the tests can include it as a module.
#[path = "args.rs"]
mod args;
// Visible to the tests, which force the key file's interleavings through it.
#[path = "cache.rs"]
pub(crate) mod cache;
#[path = "exit.rs"]
mod exit;
#[path = "output.rs"]
mod output;
#[path = "providers.rs"]
mod providers;
#[cfg(feature = "weavr")]
#[path = "step_up.rs"]
mod step_up;
#[path = "vars.rs"]
mod vars;

use std::process::ExitCode;

use tokensmith::sandbox::Sandbox;

use args::{Command, Request};
use exit::Exit;

async fn run(request: Request) -> Result<String, Exit> {
    let sandbox = if request.sandbox {
        Some(Sandbox::start().await)
    } else {
        None
    };
    let store = request.cache.as_deref().map(cache::store).transpose()?;
    let opened = providers::open(&request, sandbox.as_ref(), store)?;
    if request.command == Command::Logout {
        opened.session.logout().await?;
        return Ok(String::new());
    }
    let token = opened.access_token().await?;
    output::render(&request, &opened.session, &token).await
}

/// Runs the command with the process arguments.
pub fn main() -> ExitCode {
    let outcome = args::parse().and_then(|request| {
        let Some(request) = request else {
            return Ok(String::new());
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Exit {
                code: 5,
                message: format!("cannot start the runtime: {e}"),
                from_clap: false,
            })?;
        runtime.block_on(run(request))
    });
    exit::finish(outcome)
}
