//! The session of the provider asked for: one code path for every profile the library lists,
//! through its `from_env`, with the values from the environment or, with `--sandbox`, the
//! sandbox's demo accounts.

use std::ffi::OsString;

use tokensmith::sandbox::{demo, Sandbox};
use tokensmith::store::FileStore;
use tokensmith::{AccessToken, AnySession, Error};

use super::args::Request;
use super::exit::Exit;
use super::vars::variable;

/// Where the provider's variables come from.
pub(crate) struct Source {
    sandbox: bool,
}

impl Source {
    /// A variable's value: the process environment's, or under `--sandbox` the demo one.
    pub(crate) fn get(&self, name: &str) -> Option<OsString> {
        if self.sandbox {
            demo::variable(name).map(OsString::from)
        } else {
            std::env::var_os(name)
        }
    }
}

/// The session the command asks for its token: any service's, as one [`AnySession`].
pub(crate) struct Opened {
    pub(crate) session: AnySession,
    /// With weavr's `--step-up`, the same weavr session (a clone sharing its cache), for the
    /// `step_up` that only weavr has.
    #[cfg(feature = "weavr")]
    pub(crate) step_up: Option<tokensmith::weavr::Session>,
}

impl Opened {
    fn new(session: AnySession) -> Self {
        Self {
            session,
            #[cfg(feature = "weavr")]
            step_up: None,
        }
    }

    /// The token to print (stepped up first, with `--step-up`).
    pub(crate) async fn access_token(&self) -> Result<AccessToken, Error> {
        #[cfg(feature = "weavr")]
        if let Some(weavr) = &self.step_up {
            // A stepped-up token from --cache is not stepped up again (no new SMS).
            weavr.access_token().await?;
            weavr.step_up().await?;
        }
        self.session.access_token().await
    }
}

/// The session `request` asks for, its token kept in `store` when given.
pub(crate) fn open(
    request: &Request,
    sandbox: Option<&Sandbox>,
    store: Option<FileStore>,
) -> Result<Opened, Exit> {
    let profile = &request.profile;
    let source = Source {
        sandbox: sandbox.is_some(),
    };
    // --base-url, then TOKENSMITH_BASE_URL; the provider's own variable is from_env's.
    let base_url = match sandbox {
        Some(sandbox) => Some(sandbox.base_url(profile.service())),
        None => match &request.base_url {
            Some(url) => Some(url.clone()),
            None => variable("TOKENSMITH_BASE_URL")?.map(|url| url.expose_secret().to_owned()),
        },
    };
    if let Some(hint) = profile.base_url_required() {
        let variable = profile.base_url_variable();
        if base_url.is_none() && source.get(variable).is_none() {
            return Err(Exit::usage(format!(
                "{} needs --base-url, TOKENSMITH_BASE_URL or {variable} ({hint}), or --sandbox",
                profile.service()
            )));
        }
    }
    #[cfg(feature = "weavr")]
    if request.step_up {
        let mut builder = super::step_up::builder(|name| source.get(name))?;
        if let Some(url) = base_url {
            builder = builder.base_url(url);
        }
        if let Some(store) = store {
            builder = builder.token_store(store);
        }
        let session = builder.build()?;
        return Ok(Opened {
            session: session.clone().into(),
            step_up: Some(session),
        });
    }
    let mut builder = profile.from_env_with(|name| source.get(name))?;
    if let Some(url) = base_url {
        builder = builder.base_url(url);
    }
    if let Some(store) = store {
        builder = builder.token_store(store);
    }
    Ok(Opened::new(builder.build()?))
}
