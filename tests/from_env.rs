//! `from_env()` on every builder: variables that are present configure a session that logs in
//! (against the sandbox, which checks the credentials as the services do); missing and
//! malformed ones are configuration errors that name the variable and never quote its value;
//! two kinds of credentials are never chosen between silently.
#![cfg(all(
    feature = "s7risk",
    feature = "weavr",
    feature = "accounts",
    feature = "passwordsafe",
    feature = "fib"
))]

use std::collections::HashMap;
use std::ffi::OsString;

use tokensmith::sandbox::{demo, Sandbox};
use tokensmith::{accounts, fib, passwordsafe, s7risk, weavr};
use tokensmith::{Error, ErrorKind, Service};

/// A stand-in for the process environment.
#[derive(Clone, Default)]
struct Vars(HashMap<String, OsString>);

impl Vars {
    fn new(pairs: &[(&str, &str)]) -> Self {
        Self(
            pairs
                .iter()
                .map(|(name, value)| (name.to_string(), OsString::from(value)))
                .collect(),
        )
    }

    fn set(mut self, name: &str, value: impl Into<OsString>) -> Self {
        self.0.insert(name.to_owned(), value.into());
        self
    }

    fn unset(mut self, name: &str) -> Self {
        self.0.remove(name);
        self
    }

    fn lookup(&self) -> impl FnMut(&str) -> Option<OsString> + '_ {
        |name| self.0.get(name).cloned()
    }
}

/// The error, checked to be a configuration error of `service` whose `Display` is exactly
/// `message` and that names `variables`, and in whose `Display` and `Debug` no value of
/// `vars` appears.
fn assert_refused(error: Error, vars: &Vars, service: Service, message: &str, variables: &[&str]) {
    assert_eq!(error.kind(), ErrorKind::Configuration);
    assert_eq!(error.service(), Some(service));
    assert_eq!(
        error.to_string(),
        format!("{service}: configuration error: {message}")
    );
    assert_eq!(error.variables(), variables);
    let (shown, debug) = (error.to_string(), format!("{error:?}"));
    for value in vars.0.values() {
        let value = value.to_string_lossy();
        // Short values ("demo") could be part of a variable's name or a word of the message.
        if value.len() >= 8 {
            assert!(!shown.contains(&*value), "{value} in {shown}");
            assert!(!debug.contains(&*value), "{value} in {debug}");
        }
    }
}

fn s7risk_user(base_url: &str) -> Vars {
    Vars::new(&[
        ("S7RISK_BASE_URL", base_url),
        ("S7RISK_ORIGIN", demo::S7RISK_ORIGIN),
        ("S7RISK_EMAIL", demo::S7RISK_EMAIL),
        ("S7RISK_PASSWORD", demo::S7RISK_PASSWORD),
    ])
}

fn s7risk_app(base_url: &str) -> Vars {
    Vars::new(&[
        ("S7RISK_BASE_URL", base_url),
        ("S7RISK_ORIGIN", demo::S7RISK_ORIGIN),
        ("S7RISK_CLIENT_ID", demo::S7RISK_CLIENT_ID),
        ("S7RISK_SECRET", demo::S7RISK_SECRET),
    ])
}

fn weavr_vars(base_url: &str) -> Vars {
    Vars::new(&[
        ("WEAVR_BASE_URL", base_url),
        ("WEAVR_API_KEY", demo::WEAVR_API_KEY),
        ("WEAVR_EMAIL", demo::WEAVR_EMAIL),
        ("WEAVR_PASSWORD", demo::WEAVR_PASSWORD),
    ])
}

fn accounts_vars(base_url: &str) -> Vars {
    Vars::new(&[
        ("ACCOUNTS_BASE_URL", base_url),
        ("ACCOUNTS_USERNAME", demo::ACCOUNTS_USERNAME),
        ("ACCOUNTS_PASSWORD", demo::ACCOUNTS_PASSWORD),
    ])
}

fn passwordsafe_oauth(base_url: &str) -> Vars {
    Vars::new(&[
        ("PASSWORDSAFE_BASE_URL", base_url),
        ("PASSWORDSAFE_CLIENT_ID", demo::PASSWORDSAFE_CLIENT_ID),
        (
            "PASSWORDSAFE_CLIENT_SECRET",
            demo::PASSWORDSAFE_CLIENT_SECRET,
        ),
    ])
}

fn passwordsafe_key(base_url: &str) -> Vars {
    Vars::new(&[
        ("PASSWORDSAFE_BASE_URL", base_url),
        ("PASSWORDSAFE_API_KEY", demo::PASSWORDSAFE_API_KEY),
        ("PASSWORDSAFE_RUNAS", demo::PASSWORDSAFE_RUNAS),
        ("PASSWORDSAFE_PASSWORD", demo::PASSWORDSAFE_PASSWORD),
    ])
}

fn fib_vars(base_url: &str) -> Vars {
    Vars::new(&[
        ("FIB_BASE_URL", base_url),
        ("FIB_EMAIL", demo::FIB_EMAIL),
        ("FIB_PRIVATE_KEY", demo::FIB_PRIVATE_KEY),
    ])
}

/// A base URL where nothing listens: a session sent there fails with a transport error.
fn nowhere() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

// --- present: the variables configure a session that logs in where the base URL says -------

#[tokio::test]
async fn s7risk_user_and_application_from_the_environment_log_in() {
    let sandbox = Sandbox::start().await;
    let base = sandbox.base_url(Service::S7risk);
    for vars in [s7risk_user(&base), s7risk_app(&base)] {
        let session = s7risk::Session::builder()
            .from_env_with(vars.lookup())
            .unwrap()
            .build()
            .unwrap();
        session.access_token().await.unwrap();
    }
    let counters = sandbox.counters(Service::S7risk);
    assert_eq!((counters.logins, counters.failed_logins), (2, 0));
}

#[tokio::test]
async fn weavr_from_the_environment_logs_in() {
    let sandbox = Sandbox::start().await;
    let vars = weavr_vars(&sandbox.base_url(Service::Weavr));
    let session = weavr::Session::builder()
        .from_env_with(vars.lookup())
        .unwrap()
        .build()
        .unwrap();
    session.access_token().await.unwrap();
    let counters = sandbox.counters(Service::Weavr);
    assert_eq!((counters.logins, counters.failed_logins), (1, 0));
}

#[tokio::test]
async fn accounts_from_the_environment_logs_in() {
    let sandbox = Sandbox::start().await;
    let vars = accounts_vars(&sandbox.base_url(Service::Accounts));
    let session = accounts::Session::builder()
        .from_env_with(vars.lookup())
        .unwrap()
        .build()
        .unwrap();
    session.access_token().await.unwrap();
    assert_eq!(session.username(), demo::ACCOUNTS_USERNAME);
    let counters = sandbox.counters(Service::Accounts);
    assert_eq!((counters.logins, counters.failed_logins), (1, 0));
}

#[tokio::test]
async fn passwordsafe_oauth_and_api_key_from_the_environment_log_in() {
    let sandbox = Sandbox::start().await;
    let base = sandbox.base_url(Service::PasswordSafe);
    for vars in [passwordsafe_oauth(&base), passwordsafe_key(&base)] {
        let session = passwordsafe::Session::builder()
            .from_env_with(vars.lookup())
            .unwrap()
            .build()
            .unwrap();
        session.access_token().await.unwrap();
    }
    let counters = sandbox.counters(Service::PasswordSafe);
    assert_eq!((counters.logins, counters.failed_logins), (2, 0));
}

/// PASSWORDSAFE_PASSWORD is optional: without it the PS-Auth header carries no password, which
/// the sandbox's registration (one that requires a password) refuses.
#[tokio::test]
async fn passwordsafe_password_is_optional_and_absent_means_none() {
    let sandbox = Sandbox::start().await;
    let vars =
        passwordsafe_key(&sandbox.base_url(Service::PasswordSafe)).unset("PASSWORDSAFE_PASSWORD");
    let session = passwordsafe::Session::builder()
        .from_env_with(vars.lookup())
        .unwrap()
        .build()
        .unwrap();
    let error = session.access_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidCredentials);
    let counters = sandbox.counters(Service::PasswordSafe);
    assert_eq!((counters.logins, counters.failed_logins), (0, 1));
}

#[tokio::test]
async fn fib_from_the_environment_logs_in() {
    let sandbox = Sandbox::start().await;
    let vars = fib_vars(&sandbox.base_url(Service::Fib));
    let session = fib::Session::builder()
        .from_env_with(vars.lookup())
        .unwrap()
        .build()
        .unwrap();
    session.access_token().await.unwrap();
    let counters = sandbox.counters(Service::Fib);
    assert_eq!((counters.logins, counters.failed_logins), (1, 0));
}

/// The builder comes back: a setter called afterwards wins; one called before is replaced by
/// a variable that is set, and kept when the variable is not.
#[tokio::test]
async fn setters_after_from_env_win_and_setters_before_yield_to_a_set_variable() {
    let sandbox = Sandbox::start().await;
    let base = sandbox.base_url(Service::Fib);
    let builds = [
        // The variable points nowhere; the setter after it, to the sandbox.
        fib::Session::builder()
            .from_env_with(fib_vars(&nowhere()).lookup())
            .unwrap()
            .base_url(&base),
        // The setter before points nowhere; the variable, to the sandbox.
        fib::Session::builder()
            .base_url(nowhere())
            .from_env_with(fib_vars(&base).lookup())
            .unwrap(),
        // No variable: the setter before stays.
        fib::Session::builder()
            .base_url(&base)
            .from_env_with(fib_vars(&base).unset("FIB_BASE_URL").lookup())
            .unwrap(),
    ];
    for builder in builds {
        builder.build().unwrap().access_token().await.unwrap();
    }
    assert_eq!(sandbox.counters(Service::Fib).logins, 3);

    // And a credential: the email given after from_env is the one sent (the sandbox knows no
    // such user: fib answers 404).
    let session = fib::Session::builder()
        .from_env_with(fib_vars(&base).lookup())
        .unwrap()
        .email("nobody@wonderland.space")
        .build()
        .unwrap();
    let error = session.access_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound);
    assert_eq!(error.message(), Some("User not found."));
}

/// `from_env()` (the builder's and a profile's) reads the process environment: this test runs
/// itself again as a child process with the variables set (no test here changes its own
/// environment).
#[tokio::test]
async fn from_env_reads_the_process_environment() {
    const CHILD: &str = "TOKENSMITH_TEST_FROM_ENV_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let session = fib::Session::builder().from_env().unwrap().build().unwrap();
        session.access_token().await.unwrap();
        let session = profile("fib").from_env().unwrap().build().unwrap();
        session.access_token().await.unwrap();
        return;
    }
    let sandbox = Sandbox::start().await;
    let vars = fib_vars(&sandbox.base_url(Service::Fib));
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child
        .args(["--exact", "from_env_reads_the_process_environment"])
        .env(CHILD, "1");
    for (name, value) in &vars.0 {
        child.env(name, value);
    }
    let output = tokio::task::spawn_blocking(move || child.output().unwrap())
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert_eq!(sandbox.counters(Service::Fib).logins, 2);

    // Without the variables, the same code fails naming them.
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child
        .args(["--exact", "from_env_reads_the_process_environment"])
        .env(CHILD, "1")
        .env_remove("FIB_EMAIL")
        .env_remove("FIB_PRIVATE_KEY")
        .env_remove("FIB_BASE_URL");
    let output = tokio::task::spawn_blocking(move || child.output().unwrap())
        .await
        .unwrap();
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("FIB_EMAIL is not set; FIB_PRIVATE_KEY is not set"),
        "{stdout}"
    );
}

// --- missing -----------------------------------------------------------------------------

#[test]
fn missing_variables_are_named_all_at_once() {
    let error = fib::Session::builder()
        .from_env_with(Vars::default().lookup())
        .unwrap_err();
    assert_refused(
        error,
        &Vars::default(),
        Service::Fib,
        "FIB_EMAIL is not set; FIB_PRIVATE_KEY is not set",
        &["FIB_EMAIL", "FIB_PRIVATE_KEY"],
    );

    let vars = weavr_vars("https://weavr.example").unset("WEAVR_PASSWORD");
    let error = weavr::Session::builder()
        .from_env_with(vars.lookup())
        .unwrap_err();
    assert_refused(
        error,
        &vars,
        Service::Weavr,
        "WEAVR_PASSWORD is not set",
        &["WEAVR_PASSWORD"],
    );

    let vars = accounts_vars("https://a.example")
        .unset("ACCOUNTS_USERNAME")
        .unset("ACCOUNTS_PASSWORD");
    let error = accounts::Session::builder()
        .from_env_with(vars.lookup())
        .unwrap_err();
    assert_refused(
        error,
        &vars,
        Service::Accounts,
        "ACCOUNTS_USERNAME is not set; ACCOUNTS_PASSWORD is not set",
        &["ACCOUNTS_USERNAME", "ACCOUNTS_PASSWORD"],
    );

    // s7risk's origin is shared by both kinds of credentials.
    let vars = s7risk_user("https://s.example").unset("S7RISK_ORIGIN");
    let error = s7risk::Session::builder()
        .from_env_with(vars.lookup())
        .unwrap_err();
    assert_refused(
        error,
        &vars,
        Service::S7risk,
        "S7RISK_ORIGIN is not set",
        &["S7RISK_ORIGIN"],
    );

    // A kind whose variables are only partly set is that kind, with the rest missing.
    let vars = passwordsafe_key("https://p.example").unset("PASSWORDSAFE_RUNAS");
    let error = passwordsafe::Session::builder()
        .from_env_with(vars.lookup())
        .unwrap_err();
    assert_refused(
        error,
        &vars,
        Service::PasswordSafe,
        "PASSWORDSAFE_RUNAS is not set",
        &["PASSWORDSAFE_RUNAS"],
    );
}

/// No base-URL variable is required: without one a service with a production URL uses it,
/// and one without fails at build() as it does without `base_url(…)`.
#[test]
fn the_base_url_variable_is_optional() {
    let vars = fib_vars("").unset("FIB_BASE_URL");
    let session = fib::Session::builder()
        .from_env_with(vars.lookup())
        .unwrap()
        .build()
        .unwrap();
    assert!(format!("{session:?}").contains(&format!("base_url: {:?}", fib::DEFAULT_BASE_URL)));

    // weavr and Password Safe have no production URL.
    let vars = weavr_vars("").unset("WEAVR_BASE_URL");
    let builder = weavr::Session::builder()
        .from_env_with(vars.lookup())
        .unwrap();
    let error = builder.build().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Configuration);
    assert!(
        error.to_string().contains("the base URL is required"),
        "{error}"
    );
    let vars = passwordsafe_oauth("").unset("PASSWORDSAFE_BASE_URL");
    let builder = passwordsafe::Session::builder()
        .from_env_with(vars.lookup())
        .unwrap();
    let error = builder.build().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Configuration);
    assert!(
        error.to_string().contains("the base URL is required"),
        "{error}"
    );
    // Given by a setter after from_env, it is there.
    passwordsafe::Session::builder()
        .from_env_with(vars.lookup())
        .unwrap()
        .host("pws.example.com")
        .build()
        .unwrap();
}

// --- two kinds of credentials ---------------------------------------------------------------

#[test]
fn s7risk_with_both_kinds_or_neither_is_an_error_naming_the_variables() {
    let both = s7risk_user("https://s.example").set("S7RISK_CLIENT_ID", "reporting-app");
    let error = s7risk::Session::builder()
        .from_env_with(both.lookup())
        .unwrap_err();
    assert_refused(
        error,
        &both,
        Service::S7risk,
        "credentials of more than one kind are set: S7RISK_EMAIL, S7RISK_PASSWORD (a user) \
         and S7RISK_CLIENT_ID (an application); unset all but one kind",
        &["S7RISK_EMAIL", "S7RISK_PASSWORD", "S7RISK_CLIENT_ID"],
    );

    let neither = Vars::new(&[("S7RISK_ORIGIN", demo::S7RISK_ORIGIN)]);
    let error = s7risk::Session::builder()
        .from_env_with(neither.lookup())
        .unwrap_err();
    assert_refused(
        error,
        &neither,
        Service::S7risk,
        "no credentials are set: set S7RISK_EMAIL and S7RISK_PASSWORD (a user), or \
         S7RISK_CLIENT_ID and S7RISK_SECRET (an application)",
        &[
            "S7RISK_EMAIL",
            "S7RISK_PASSWORD",
            "S7RISK_CLIENT_ID",
            "S7RISK_SECRET",
        ],
    );
}

#[test]
fn passwordsafe_with_both_kinds_or_neither_is_an_error_naming_the_variables() {
    // An empty variable counts as set: it is a kind's, and an error of its own.
    let both = passwordsafe_oauth("https://p.example").set("PASSWORDSAFE_PASSWORD", "");
    let error = passwordsafe::Session::builder()
        .from_env_with(both.lookup())
        .unwrap_err();
    assert_refused(
        error,
        &both,
        Service::PasswordSafe,
        "credentials of more than one kind are set: PASSWORDSAFE_CLIENT_ID, \
         PASSWORDSAFE_CLIENT_SECRET (an OAuth client) and PASSWORDSAFE_PASSWORD (an API key); \
         unset all but one kind",
        &[
            "PASSWORDSAFE_CLIENT_ID",
            "PASSWORDSAFE_CLIENT_SECRET",
            "PASSWORDSAFE_PASSWORD",
        ],
    );

    let neither = Vars::new(&[("PASSWORDSAFE_BASE_URL", "https://p.example")]);
    let error = passwordsafe::Session::builder()
        .from_env_with(neither.lookup())
        .unwrap_err();
    assert_refused(
        error,
        &neither,
        Service::PasswordSafe,
        "no credentials are set: set PASSWORDSAFE_CLIENT_ID and PASSWORDSAFE_CLIENT_SECRET \
         (an OAuth client), or PASSWORDSAFE_API_KEY and PASSWORDSAFE_RUNAS (an API key)",
        &[
            "PASSWORDSAFE_CLIENT_ID",
            "PASSWORDSAFE_CLIENT_SECRET",
            "PASSWORDSAFE_API_KEY",
            "PASSWORDSAFE_RUNAS",
        ],
    );
}

// --- malformed ----------------------------------------------------------------------------

#[test]
fn malformed_base_urls_are_named_and_never_quoted() {
    const WHAT: &str = "is not a base URL (an absolute http(s) URL with a host, and no user, \
                        password, query or fragment)";
    for url in [
        "auth.example.com/no-scheme",
        "ftp://auth.example.com",
        "https://user:hunter2-secret@auth.example.com",
        "https://auth.example.com/?token=hunter2-secret",
    ] {
        let vars = fib_vars(url);
        let error = fib::Session::builder()
            .from_env_with(vars.lookup())
            .unwrap_err();
        assert_refused(
            error,
            &vars,
            Service::Fib,
            &format!("FIB_BASE_URL {WHAT}"),
            &["FIB_BASE_URL"],
        );
    }
    for (service, vars) in [
        (Service::S7risk, s7risk_user("not a url")),
        (Service::Weavr, weavr_vars("not a url")),
        (Service::Accounts, accounts_vars("not a url")),
        (Service::PasswordSafe, passwordsafe_oauth("not a url")),
    ] {
        let error = match service {
            Service::S7risk => s7risk::Session::builder()
                .from_env_with(vars.lookup())
                .unwrap_err(),
            Service::Weavr => weavr::Session::builder()
                .from_env_with(vars.lookup())
                .unwrap_err(),
            Service::Accounts => accounts::Session::builder()
                .from_env_with(vars.lookup())
                .unwrap_err(),
            _ => passwordsafe::Session::builder()
                .from_env_with(vars.lookup())
                .unwrap_err(),
        };
        let variable = format!("{}_BASE_URL", service.name().to_uppercase());
        assert_refused(
            error,
            &vars,
            service,
            &format!("{variable} {WHAT}"),
            &[variable.as_str()],
        );
    }
    // Plain http to a host that is not loopback is a URL: build() refuses it, unless the
    // builder allows it.
    let vars = fib_vars("http://auth.example.com");
    let builder = fib::Session::builder()
        .from_env_with(vars.lookup())
        .unwrap();
    assert!(builder
        .build()
        .unwrap_err()
        .to_string()
        .contains("plain HTTP"));
    let builder = fib::Session::builder()
        .from_env_with(vars.lookup())
        .unwrap();
    builder.danger_accept_plain_http(true).build().unwrap();
}

#[test]
fn a_malformed_origin_or_fib_key_is_named_and_never_quoted() {
    for origin in [
        "app.example.com",
        "https://app.example.com/path",
        "https://u:p@x.y",
    ] {
        let vars = s7risk_app("https://s.example").set("S7RISK_ORIGIN", origin);
        let error = s7risk::Session::builder()
            .from_env_with(vars.lookup())
            .unwrap_err();
        assert_refused(
            error,
            &vars,
            Service::S7risk,
            "S7RISK_ORIGIN is not an origin (scheme://host[:port], with no path)",
            &["S7RISK_ORIGIN"],
        );
    }

    const KEY: &str = "is not an Authorization private key (64 hex characters, or 128: the \
                       private key, then its public key)";
    let wrong_pair = format!("{}{}", demo::FIB_PRIVATE_KEY, demo::FIB_PRIVATE_KEY);
    for key in [
        "413b285d1819a6166b0daa762bb6bef2",
        // 64 characters, not all hex.
        "413b285d1819a6166b0daa762bb6bef2d082cffb9a13ce041cb0fda5e2f06dcZ",
        // 128: the private key followed by a public key that is not its own.
        wrong_pair.as_str(),
    ] {
        let vars = fib_vars("https://f.example").set("FIB_PRIVATE_KEY", key);
        let error = fib::Session::builder()
            .from_env_with(vars.lookup())
            .unwrap_err();
        assert_refused(
            error,
            &vars,
            Service::Fib,
            &format!("FIB_PRIVATE_KEY {KEY}"),
            &["FIB_PRIVATE_KEY"],
        );
    }
    // The 128-character form with its own public key is a key.
    let pair = format!("{}{}", demo::FIB_PRIVATE_KEY, demo::FIB_PUBLIC_KEY);
    let vars = fib_vars("https://f.example").set("FIB_PRIVATE_KEY", pair);
    fib::Session::builder()
        .from_env_with(vars.lookup())
        .unwrap()
        .build()
        .unwrap();
}

#[test]
fn empty_values_are_errors_naming_every_variable_at_fault() {
    let vars = weavr_vars("https://w.example")
        .set("WEAVR_EMAIL", "")
        .set("WEAVR_PASSWORD", "  ")
        .unset("WEAVR_API_KEY");
    let error = weavr::Session::builder()
        .from_env_with(vars.lookup())
        .unwrap_err();
    assert_refused(
        error,
        &vars,
        Service::Weavr,
        "WEAVR_API_KEY is not set; WEAVR_EMAIL is empty; WEAVR_PASSWORD is empty",
        &["WEAVR_API_KEY", "WEAVR_EMAIL", "WEAVR_PASSWORD"],
    );
}

#[cfg(unix)]
#[test]
fn a_value_that_is_not_utf8_is_named_and_never_quoted() {
    use std::os::unix::ffi::OsStringExt;
    let mut secret = b"hunter2-secret-".to_vec();
    secret.push(0xff);
    let vars =
        accounts_vars("https://a.example").set("ACCOUNTS_PASSWORD", OsString::from_vec(secret));
    let error = accounts::Session::builder()
        .from_env_with(vars.lookup())
        .unwrap_err();
    assert!(!format!("{error} {error:?}").contains("hunter2"));
    assert_refused(
        error,
        &Vars::default(),
        Service::Accounts,
        "ACCOUNTS_PASSWORD is not UTF-8",
        &["ACCOUNTS_PASSWORD"],
    );
}

/// A secret that is present and well formed appears in no error, nor in the builder's `Debug`.
#[test]
fn secrets_never_appear_in_errors_or_debug() {
    let vars = passwordsafe_key("https://p.example")
        .set("PASSWORDSAFE_API_KEY", "api-key-hunter2-0123456789")
        .set("PASSWORDSAFE_CLIENT_SECRET", "client-secret-hunter2");
    let error = passwordsafe::Session::builder()
        .from_env_with(vars.lookup())
        .unwrap_err();
    assert!(
        !format!("{error} {error:?}").contains("hunter2"),
        "{error:?}"
    );

    let vars = passwordsafe_key("https://p.example")
        .set("PASSWORDSAFE_API_KEY", "api-key-hunter2-0123456789");
    let builder = passwordsafe::Session::builder()
        .from_env_with(vars.lookup())
        .unwrap();
    assert!(!format!("{builder:?}").contains("hunter2"), "{builder:?}");
    let profile = profile("passwordsafe-key");
    let builder = profile.from_env_with(vars.lookup()).unwrap();
    let debug = format!("{builder:?}");
    assert!(
        debug.contains("PasswordSafe") || debug.contains("passwordsafe"),
        "{debug}"
    );
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(!debug.contains(demo::PASSWORDSAFE_PASSWORD), "{debug}");
}

// --- profiles: the list the command offers ---------------------------------------------------

fn profile(name: &str) -> tokensmith::env::Profile {
    tokensmith::env::profiles()
        .into_iter()
        .find(|profile| profile.name() == name)
        .unwrap_or_else(|| panic!("no profile {name}"))
}

/// The README's table is the list: every row is a profile with exactly those variables, in
/// that order, optional ones in brackets, and every profile has a row.
#[test]
fn the_readme_table_lists_every_profile_and_variable() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("## Configuration from the environment")
        .nth(1)
        .expect("the section")
        .split("\n## ")
        .next()
        .unwrap();
    let rows: Vec<(String, String, String)> = section
        .lines()
        .filter(|line| line.starts_with("| ") && !line.starts_with("| service"))
        .map(|line| {
            let cells: Vec<_> = line.split('|').map(str::trim).collect();
            (
                cells[1].to_owned(),
                cells[2].to_owned(),
                cells[3].to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String)> = tokensmith::env::profiles()
        .iter()
        .map(|profile| {
            let variables: Vec<String> = profile
                .variables()
                .iter()
                .map(|v| match v.is_required() {
                    true => format!("`{}`", v.name()),
                    false => format!("`[{}]`", v.name()),
                })
                .collect();
            (
                profile.service().name().to_owned(),
                format!("`{}`", profile.name()),
                variables.join(" "),
            )
        })
        .collect();
    assert_eq!(rows, expected);
}

#[test]
fn profiles_name_their_service_secrets_and_base_url() {
    let names: Vec<_> = tokensmith::env::profiles()
        .iter()
        .map(|profile| (profile.name(), profile.service()))
        .collect();
    assert_eq!(
        names,
        [
            ("accounts", Service::Accounts),
            ("fib", Service::Fib),
            ("passwordsafe-oauth", Service::PasswordSafe),
            ("passwordsafe-key", Service::PasswordSafe),
            ("s7risk-user", Service::S7risk),
            ("s7risk-app", Service::S7risk),
            ("weavr", Service::Weavr),
        ]
    );
    let secrets: Vec<_> = tokensmith::env::profiles()
        .iter()
        .flat_map(|profile| profile.variables())
        .filter(|v| v.is_secret())
        .map(|v| v.name())
        .collect();
    assert_eq!(
        secrets,
        [
            "ACCOUNTS_PASSWORD",
            "FIB_PRIVATE_KEY",
            "PASSWORDSAFE_CLIENT_SECRET",
            "PASSWORDSAFE_API_KEY",
            "PASSWORDSAFE_PASSWORD",
            "S7RISK_PASSWORD",
            "S7RISK_SECRET",
            "WEAVR_API_KEY",
            "WEAVR_PASSWORD",
        ]
    );
    assert_eq!(profile("fib").base_url_variable(), "FIB_BASE_URL");
    assert_eq!(profile("fib").base_url_required(), None);
    assert_eq!(
        profile("weavr").base_url_required(),
        Some(
            "Weavr gives each customer its Live URL on request; its sandbox is \
             https://sandbox.weavr.io/multi"
        )
    );
    assert!(profile("weavr")
        .base_url_required()
        .unwrap()
        .ends_with(weavr::SANDBOX_BASE_URL));
    assert_eq!(
        profile("passwordsafe-oauth").base_url_required(),
        Some("https://<host>/BeyondTrust/api/public/v3")
    );
}

/// A profile reads its own kind's variables alone: the other kind's being set too is no
/// ambiguity, since the kind was chosen by name.
#[tokio::test]
async fn a_profile_builds_its_own_kind_whatever_else_is_set() {
    let sandbox = Sandbox::start().await;
    let base = sandbox.base_url(Service::S7risk);
    let everything = Vars(
        s7risk_user(&base)
            .0
            .into_iter()
            .chain(s7risk_app(&base).0)
            .collect(),
    );
    for name in ["s7risk-user", "s7risk-app"] {
        let builder = profile(name).from_env_with(everything.lookup()).unwrap();
        assert_eq!(builder.service(), Service::S7risk);
        let session = builder.build().unwrap();
        session.access_token().await.unwrap();
    }
    assert_eq!(sandbox.counters(Service::S7risk).logins, 2);

    // Every profile with the sandbox's demo credentials and base URL logs in.
    for profile in tokensmith::env::profiles() {
        let service = profile.service();
        let session = profile
            .from_env_with(|name| demo::variable(name).map(OsString::from))
            .unwrap()
            .base_url(sandbox.base_url(service))
            .build()
            .unwrap();
        let before = sandbox.counters(service).logins;
        session.access_token().await.unwrap();
        assert_eq!(
            sandbox.counters(service).logins,
            before + 1,
            "{}",
            profile.name()
        );
    }

    // And a profile whose own variables are missing says which.
    let vars = s7risk_app(&base);
    let error = profile("s7risk-user")
        .from_env_with(vars.lookup())
        .unwrap_err();
    assert_refused(
        error,
        &vars,
        Service::S7risk,
        "S7RISK_EMAIL is not set; S7RISK_PASSWORD is not set",
        &["S7RISK_EMAIL", "S7RISK_PASSWORD"],
    );
}
