//! What went wrong, the exit code it earns, and how the outcome is printed.

use std::process::ExitCode;

use tokensmith::{Error, ErrorKind};

/// What went wrong, and the exit code it earns.
pub(crate) struct Exit {
    pub(crate) code: u8,
    pub(crate) message: String,
    /// The message is clap's, complete with its usage line.
    pub(crate) from_clap: bool,
}

impl Exit {
    /// A usage or configuration error (exit code 2).
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: message.into(),
            from_clap: false,
        }
    }
}

impl From<Error> for Exit {
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

/// Prints the outcome (the output on stdout, a exit on stderr) and gives its exit code.
pub(crate) fn finish(outcome: Result<String, Exit>) -> ExitCode {
    match outcome {
        Ok(output) => {
            if !output.is_empty() {
                println!("{output}");
            }
            ExitCode::SUCCESS
        }
        Err(exit) => {
            if exit.from_clap {
                // clap's own message, with its usage line and a pointer to --help.
                eprint!("{}", exit.message);
            } else if exit.code == 2 {
                eprintln!(
                    "tokensmith: {}\n\nFor more information, try 'tokensmith --help'.",
                    exit.message
                );
            } else {
                eprintln!("tokensmith: {}", exit.message);
            }
            ExitCode::from(exit.code)
        }
    }
}
