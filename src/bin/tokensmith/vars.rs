//! The command's own variables (`TOKENSMITH_BASE_URL`, `TOKENSMITH_CACHE_KEY`, `WEAVR_OTP`),
//! held to the rules of the library's.

use std::ffi::OsString;

use tokensmith::SecretString;

use super::exit::Exit;

/// One of the command's own variables (`TOKENSMITH_BASE_URL`, `TOKENSMITH_CACHE_KEY`,
/// `WEAVR_OTP`), from `raw`, held to the rules of the library's: unset is `None`; one that is
/// set must be UTF-8 and not empty. The error names it and never quotes it.
pub(crate) fn checked(name: &str, raw: Option<OsString>) -> Result<Option<SecretString>, Exit> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let value = raw
        .into_string()
        .map_err(|_| Exit::usage(format!("{name} is not UTF-8")))?;
    let value = SecretString::new(value);
    if value.expose_secret().trim().is_empty() {
        return Err(Exit::usage(format!("{name} is empty")));
    }
    Ok(Some(value))
}

/// [`checked`], from the process environment.
pub(crate) fn variable(name: &str) -> Result<Option<SecretString>, Exit> {
    checked(name, std::env::var_os(name))
}
