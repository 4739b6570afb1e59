//! The `tokensmith` command, run as a subprocess against the sandbox: every provider, every
//! command, `--cache` reuse and refresh, and the exit codes.
#![cfg(all(
    feature = "cli",
    feature = "s7risk",
    feature = "weavr",
    feature = "accounts",
    feature = "passwordsafe",
    feature = "fib"
))]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tokensmith::sandbox::{demo, Sandbox};
use tokensmith::store::{FileStore, SealingKey, StoreKey, TokenStore};
use tokensmith::{SecretString, Service};

// The command's own code, for the key file's interleavings that a subprocess cannot force.
#[allow(dead_code)]
#[path = "../src/bin/tokensmith/main.rs"]
mod command;

const CACHE_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn tokensmith(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tokensmith"));
    command.args(args).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn info(output: &Output) -> Value {
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("info prints JSON")
}

fn fib_env(base_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("TOKENSMITH_BASE_URL", base_url.to_owned()),
        ("FIB_EMAIL", demo::FIB_EMAIL.to_owned()),
        ("FIB_PRIVATE_KEY", demo::FIB_PRIVATE_KEY.to_owned()),
        ("TOKENSMITH_CACHE_KEY", CACHE_KEY.to_owned()),
    ]
}

fn s7risk_env(base_url: &str, password: &str) -> Vec<(&'static str, String)> {
    vec![
        ("TOKENSMITH_BASE_URL", base_url.to_owned()),
        ("S7RISK_ORIGIN", demo::S7RISK_ORIGIN.to_owned()),
        ("S7RISK_EMAIL", demo::S7RISK_EMAIL.to_owned()),
        ("S7RISK_PASSWORD", password.to_owned()),
        ("TOKENSMITH_CACHE_KEY", CACHE_KEY.to_owned()),
    ]
}

fn borrow<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn cache_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tokensmith-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("cache.json")
}

/// Moves the stored token set's expiry into the past, as if its lifetime had run out.
async fn expire_cached(path: &Path, key: &StoreKey) {
    let store = FileStore::new(
        path,
        SealingKey::from_hex(&SecretString::new(CACHE_KEY)).unwrap(),
    );
    let mut tokens = store.load(key).await.unwrap().expect("a cached token set");
    let past = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
    let ms = past
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    tokens.expires_at_ms = ms;
    tokens.renew_after_ms = Some(ms);
    store.save(key, &tokens).await.unwrap();
}

#[test]
fn every_provider_and_command_works_against_the_sandbox() {
    for provider in ["s7risk-user", "s7risk-app", "fib"] {
        let token = tokensmith(&["--sandbox", provider, "token"], &[]);
        assert_eq!(
            token.status.code(),
            Some(0),
            "{provider}: {}",
            text(&token.stderr)
        );
        let token = text(&token.stdout).trim().to_owned();
        assert_eq!(
            token.split('.').count(),
            3,
            "{provider}: a JWT alone on stdout"
        );

        let header = tokensmith(&["--sandbox", provider, "header"], &[]);
        let header = text(&header.stdout);
        assert!(
            header.starts_with("Authorization: Bearer ey"),
            "{provider}: {header}"
        );

        let output = tokensmith(&["--sandbox", provider, "info"], &[]);
        let json = info(&output);
        assert_eq!(json["provider"], provider);
        assert_eq!(json["source"], "login");
        assert!(json["seconds_left"].as_u64().unwrap() > 200);
        assert!(json["expires_at"].as_str().unwrap().ends_with('Z'));
        assert!(
            !text(&output.stdout).contains("ey"),
            "info never prints the token"
        );

        let logout = tokensmith(&["--sandbox", provider, "logout"], &[]);
        assert_eq!(logout.status.code(), Some(0), "{}", text(&logout.stderr));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_is_reused_then_refreshed_then_forgotten() {
    let sandbox = Sandbox::start().await;
    let base = sandbox.base_url(Service::Fib);
    let cache = cache_file("fib");
    let cache_arg = cache.to_str().unwrap();
    let env = fib_env(&base);
    let run = |command: &str| tokensmith(&["--cache", cache_arg, "fib", command], &borrow(&env));

    assert_eq!(info(&run("info"))["source"], "login");
    assert_eq!(
        info(&run("info"))["source"],
        "cache",
        "a second run makes no request"
    );
    let counters = sandbox.counters(Service::Fib);
    assert_eq!((counters.logins, counters.refreshes), (1, 0));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let key = StoreKey::new(Service::Fib, &base, demo::FIB_EMAIL);
    expire_cached(&cache, &key).await;
    assert_eq!(info(&run("info"))["source"], "refresh");
    let counters = sandbox.counters(Service::Fib);
    assert_eq!((counters.logins, counters.refreshes), (1, 1));

    let logout = run("logout");
    assert_eq!(logout.status.code(), Some(0), "{}", text(&logout.stderr));
    assert_eq!(sandbox.counters(Service::Fib).logouts, 1);
    assert_eq!(
        info(&run("info"))["source"],
        "login",
        "logout forgot the cache"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_without_refresh_logs_in_again_past_the_margin() {
    let sandbox = Sandbox::start().await;
    let base = sandbox.base_url(Service::S7risk);
    let cache = cache_file("s7risk");
    let env = s7risk_env(&base, demo::S7RISK_PASSWORD);
    let run = || {
        tokensmith(
            &["--cache", cache.to_str().unwrap(), "s7risk-user", "info"],
            &borrow(&env),
        )
    };
    assert_eq!(info(&run())["source"], "login");
    assert_eq!(info(&run())["source"], "cache");
    let identity = format!("{}|user:{}", demo::S7RISK_ORIGIN, demo::S7RISK_EMAIL);
    expire_cached(&cache, &StoreKey::new(Service::S7risk, &base, &identity)).await;
    assert_eq!(info(&run())["source"], "login");
    assert_eq!(sandbox.counters(Service::S7risk).logins, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_tell_usage_refusal_rate_limit_and_failure_apart() {
    for args in [
        &[][..],
        &["fib"],
        &["nope", "token"],
        &["fib", "nope"],
        &["--bogus"],
    ] {
        let output = tokensmith(args, &[]);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("try '--help'") || stderr.contains("Usage: tokensmith"),
            "{stderr}"
        );
        assert!(output.stdout.is_empty(), "{args:?}");
    }
    let missing = tokensmith(&["fib", "token"], &[]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("FIB_EMAIL is not set"));

    let sandbox = Sandbox::start().await;
    let base = sandbox.base_url(Service::S7risk);
    let wrong = s7risk_env(&base, "wrong-password-123");
    for _ in 0..5 {
        let output = tokensmith(&["s7risk-user", "token"], &borrow(&wrong));
        assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("Email and password do not match"),
            "{stderr}"
        );
        assert!(!stderr.contains("wrong-password-123"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "one sentence: {stderr}");
    }
    let right = s7risk_env(&base, demo::S7RISK_PASSWORD);
    let locked = tokensmith(&["s7risk-user", "token"], &borrow(&right));
    assert_eq!(locked.status.code(), Some(4), "{}", text(&locked.stderr));

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let mut env = fib_env(&refused);
    env.retain(|(k, _)| *k != "TOKENSMITH_CACHE_KEY");
    let output = tokensmith(&["fib", "token"], &borrow(&env));
    assert_eq!(output.status.code(), Some(5), "{}", text(&output.stderr));
}

fn weavr_env(base_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("TOKENSMITH_BASE_URL", base_url.to_owned()),
        ("WEAVR_API_KEY", demo::WEAVR_API_KEY.to_owned()),
        ("WEAVR_EMAIL", demo::WEAVR_EMAIL.to_owned()),
        ("WEAVR_PASSWORD", demo::WEAVR_PASSWORD.to_owned()),
    ]
}

/// `header` prints what a Password Safe session's calls carry: its cookie, or, for an OAuth
/// session whose sign-in set no cookie, its bearer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwordsafe_header_is_the_cookie_or_for_a_cookieless_session_the_bearer() {
    for cookie in [true, false] {
        let sandbox = Sandbox::builder()
            .passwordsafe_oauth_session_cookie(cookie)
            .start()
            .await;
        let env = [
            (
                "TOKENSMITH_BASE_URL",
                sandbox.base_url(Service::PasswordSafe),
            ),
            (
                "PASSWORDSAFE_CLIENT_ID",
                demo::PASSWORDSAFE_CLIENT_ID.to_owned(),
            ),
            (
                "PASSWORDSAFE_CLIENT_SECRET",
                demo::PASSWORDSAFE_CLIENT_SECRET.to_owned(),
            ),
        ];
        let output = tokensmith(&["passwordsafe-oauth", "header"], &borrow(&env));
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        let header = text(&output.stdout);
        let expected = if cookie {
            "Cookie: ASP.NET_SessionId="
        } else {
            "Authorization: Bearer ey"
        };
        assert!(header.starts_with(expected), "cookie: {cookie}: {header}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weavr_tokens_are_stepped_up_only_with_the_flag() {
    let sandbox = Sandbox::start().await;
    let mut env = weavr_env(&sandbox.base_url(Service::Weavr));

    // No flag: a login and nothing else, even with a code in the environment.
    env.push(("WEAVR_OTP", demo::WEAVR_OTP.to_owned()));
    let output = tokensmith(&["weavr", "token"], &borrow(&env));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(!text(&output.stdout).trim().is_empty());
    let counters = sandbox.counters(Service::Weavr);
    assert_eq!(
        (counters.logins, counters.challenges, counters.verifications),
        (1, 0, 0)
    );

    // The flag: one challenge answered with WEAVR_OTP.
    let output = tokensmith(&["weavr", "header", "--step-up"], &borrow(&env));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).starts_with("Authorization: Bearer "));
    assert!(!text(&output.stderr).contains(demo::WEAVR_OTP));
    let counters = sandbox.counters(Service::Weavr);
    assert_eq!(
        (counters.logins, counters.challenges, counters.verifications),
        (2, 1, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weavr_step_up_without_a_code_or_a_terminal_fails_before_any_request() {
    let server = wiremock::MockServer::start().await;
    let env = weavr_env(&server.uri());
    // `output()` gives the child no terminal: stdin is /dev/null.
    let output = tokensmith(&["weavr", "token", "--step-up"], &borrow(&env));
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr
            .contains("--step-up needs the one-time password: set WEAVR_OTP, or run on a terminal"),
        "{stderr}"
    );
    assert!(!stderr.contains(demo::WEAVR_PASSWORD), "{stderr}");
    let requests = server.received_requests().await.unwrap();
    assert!(requests.is_empty(), "no request: {requests:?}");
}

#[test]
fn weavr_without_a_base_url_says_where_the_live_url_comes_from() {
    let mut env = weavr_env("");
    env.retain(|(k, _)| *k != "TOKENSMITH_BASE_URL");
    let output = tokensmith(&["weavr", "token"], &borrow(&env));
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(
            "weavr needs --base-url, TOKENSMITH_BASE_URL or WEAVR_BASE_URL (Weavr gives each \
             customer its Live URL on request; its sandbox is https://sandbox.weavr.io/multi), \
             or --sandbox"
        ),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn version_help_and_completions() {
    let version = tokensmith(&["--version"], &[]);
    assert_eq!(version.status.code(), Some(0));
    assert_eq!(
        text(&version.stdout),
        format!("tokensmith {}\n", env!("CARGO_PKG_VERSION"))
    );

    let help = tokensmith(&["--help"], &[]);
    assert_eq!(help.status.code(), Some(0));
    let help = text(&help.stdout);
    for provider in [
        "s7risk-user",
        "s7risk-app",
        "weavr",
        "accounts",
        "passwordsafe-oauth",
        "passwordsafe-key",
        "fib",
        "completions",
    ] {
        assert!(
            help.contains(&format!("  {provider} ")),
            "{provider}: {help}"
        );
    }
    assert!(help.contains("--base-url <URL>"), "{help}");
    assert!(help.contains("Exit codes: 0 success, 2 usage"), "{help}");

    for (provider, variables) in [
        (
            "s7risk-user",
            &["S7RISK_ORIGIN", "S7RISK_EMAIL", "S7RISK_PASSWORD"][..],
        ),
        (
            "s7risk-app",
            &["S7RISK_ORIGIN", "S7RISK_CLIENT_ID", "S7RISK_SECRET"],
        ),
        (
            "weavr",
            &[
                "WEAVR_API_KEY",
                "WEAVR_EMAIL",
                "WEAVR_PASSWORD",
                "WEAVR_OTP",
            ],
        ),
        ("accounts", &["ACCOUNTS_USERNAME", "ACCOUNTS_PASSWORD"]),
        (
            "passwordsafe-oauth",
            &["PASSWORDSAFE_CLIENT_ID", "PASSWORDSAFE_CLIENT_SECRET"],
        ),
        (
            "passwordsafe-key",
            &[
                "PASSWORDSAFE_API_KEY",
                "PASSWORDSAFE_RUNAS",
                "PASSWORDSAFE_PASSWORD",
            ],
        ),
        ("fib", &["FIB_EMAIL", "FIB_PRIVATE_KEY"]),
    ] {
        let output = tokensmith(&[provider, "--help"], &[]);
        assert_eq!(output.status.code(), Some(0), "{provider}");
        let help = text(&output.stdout);
        let environment = help
            .lines()
            .find(|line| line.starts_with("Environment: "))
            .unwrap_or_else(|| panic!("{provider}: no Environment line in {help}"));
        for variable in variables {
            assert!(environment.contains(variable), "{provider}: {environment}");
        }
        for command in ["token", "header", "info", "logout"] {
            assert!(
                help.contains(&format!("- {command}:")),
                "{provider}: {help}"
            );
        }
    }
    let weavr = text(&tokensmith(&["weavr", "--help"], &[]).stdout);
    assert!(weavr.contains("--step-up"), "{weavr}");

    let bash = tokensmith(&["completions", "bash"], &[]);
    assert_eq!(bash.status.code(), Some(0), "{}", text(&bash.stderr));
    let script = text(&bash.stdout);
    assert!(script.contains("_tokensmith()"), "{script}");
    assert!(script.contains("complete -F _tokensmith"), "{script}");
    assert!(script.contains("passwordsafe-oauth"), "{script}");
    assert!(script.contains("--step-up"), "{script}");
    let nope = tokensmith(&["completions", "cmd.exe"], &[]);
    assert_eq!(nope.status.code(), Some(2));
}

#[test]
fn usage_errors_never_repeat_a_value_the_user_typed() {
    let secret = "hunter2-correct-horse";
    for args in [
        &["fib", "token", secret][..],
        &[secret, "token"],
        &["fib", secret],
        &["--password", secret, "fib", "token"],
        &["fib", "token", "--password=hunter2-correct-horse"],
    ] {
        let output = tokensmith(args, &[]);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = text(&output.stderr);
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty());
    }
    // An option's name alone is shown: it is how the user finds the mistake.
    let output = tokensmith(&["fib", "token", "--password=hunter2-correct-horse"], &[]);
    assert!(
        text(&output.stderr).contains("unexpected argument '--password' found"),
        "{}",
        text(&output.stderr)
    );
    let output = tokensmith(&["fib", "token", "hunter2-correct-horse"], &[]);
    assert!(
        text(&output.stderr).contains("unexpected argument '[not shown]' found"),
        "{}",
        text(&output.stderr)
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_key_others_can_read_or_another_user_owns_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let server = wiremock::MockServer::start().await;
    let cache = cache_file("key-mode");
    let key_file = cache.with_file_name("cache.json.key");
    std::fs::write(&key_file, CACHE_KEY).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut env = fib_env(&server.uri());
    env.retain(|(k, _)| *k != "TOKENSMITH_CACHE_KEY");
    let run = || {
        tokensmith(
            &["--cache", cache.to_str().unwrap(), "fib", "token"],
            &borrow(&env),
        )
    };

    let output = run();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "refusing the cache key {}: its mode 0644 lets others read it",
            key_file.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains(CACHE_KEY), "{stderr}");
    assert!(server.received_requests().await.unwrap().is_empty());
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap(),
        CACHE_KEY,
        "left as found"
    );

    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    // Another owner: only root can give a file away, so only a root run can check this.
    if running_as_root() {
        std::os::unix::fs::chown(&key_file, Some(4242), None).unwrap();
        let output = run();
        assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
        assert!(
            text(&output.stderr).contains("belongs to user 4242, not to you (0)"),
            "{}",
            text(&output.stderr)
        );
        assert!(server.received_requests().await.unwrap().is_empty());
    } else {
        eprintln!("not root: the other-owner case is not checked here (CI runs as root)");
    }
}

/// Whether this process is root, read from the owner of a file it just created.
#[cfg(unix)]
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    let probe = cache_file("whoami");
    std::fs::write(&probe, b"").unwrap();
    std::fs::metadata(&probe).unwrap().uid() == 0
}

#[cfg(unix)]
#[test]
fn a_new_key_is_visible_only_once_complete_and_a_second_first_run_adopts_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = cache_file("key-interleave");
    let key_file = dir.with_file_name("cache.json.key");

    // Run A is about to publish its key; run B starts now, finds none, and publishes its own.
    let mut seen_by_a = None;
    let (_, a_hex) = command::cache::cache_key(&key_file, |temporary| {
        // Nothing is visible under the key's name until the key is written in full.
        assert!(!key_file.exists(), "published before complete");
        let written = std::fs::read_to_string(temporary).unwrap();
        assert_eq!(written.len(), 64);
        let mode = std::fs::metadata(temporary).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (_, b_hex) =
            command::cache::cache_key(&key_file, |_| ()).unwrap_or_else(|_| panic!("run B fails"));
        seen_by_a = Some(b_hex.expose_secret().to_owned());
    })
    .unwrap_or_else(|_| panic!("run A fails"));
    let b_hex = seen_by_a.expect("the hook ran");
    // A lost the race: it uses B's key, and B's key file is left as B wrote it.
    assert_eq!(a_hex.expose_secret(), b_hex);
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), b_hex);
    let names: Vec<_> = std::fs::read_dir(key_file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["cache.json.key"], "no temporary file left");

    // The next run reads the key, and publishes nothing.
    let (_, again) = command::cache::cache_key(&key_file, |_| panic!("a key exists"))
        .unwrap_or_else(|_| panic!("reads the key"));
    assert_eq!(again.expose_secret(), b_hex);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_runs_at_once_share_one_complete_key() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::start().await;
    let base = sandbox.base_url(Service::Fib);
    let cache = cache_file("key-race");
    let key_file = cache.with_file_name("cache.json.key");
    let mut env = fib_env(&base);
    env.retain(|(k, _)| *k != "TOKENSMITH_CACHE_KEY");
    // End to end, eight processes started together (the interleavings themselves are forced in
    // the test above): every one succeeds and they leave one complete key.
    let children: Vec<_> = (0..8)
        .map(|_| {
            let mut command = Command::new(env!("CARGO_BIN_EXE_tokensmith"));
            command
                .args(["--cache", cache.to_str().unwrap(), "fib", "info"])
                .env_clear()
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            for (name, value) in &env {
                command.env(name, value);
            }
            command.spawn().unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    }
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(key.len(), 64, "{key:?}");
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(cache.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Whoever saved last sealed with the one key every run used: the next run reads it.
    let output = tokensmith(
        &["--cache", cache.to_str().unwrap(), "fib", "info"],
        &borrow(&env),
    );
    assert_eq!(info(&output)["source"], "cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_provider_reuses_its_cache_on_the_second_run() {
    let sandbox = Sandbox::start().await;
    type Provider = (&'static str, Service, Vec<(&'static str, &'static str)>);
    let providers: [Provider; 7] = [
        (
            "s7risk-user",
            Service::S7risk,
            vec![
                ("S7RISK_ORIGIN", demo::S7RISK_ORIGIN),
                ("S7RISK_EMAIL", demo::S7RISK_EMAIL),
                ("S7RISK_PASSWORD", demo::S7RISK_PASSWORD),
            ],
        ),
        (
            "s7risk-app",
            Service::S7risk,
            vec![
                ("S7RISK_ORIGIN", demo::S7RISK_ORIGIN),
                ("S7RISK_CLIENT_ID", demo::S7RISK_CLIENT_ID),
                ("S7RISK_SECRET", demo::S7RISK_SECRET),
            ],
        ),
        (
            "weavr",
            Service::Weavr,
            vec![
                ("WEAVR_API_KEY", demo::WEAVR_API_KEY),
                ("WEAVR_EMAIL", demo::WEAVR_EMAIL),
                ("WEAVR_PASSWORD", demo::WEAVR_PASSWORD),
                ("WEAVR_OTP", demo::WEAVR_OTP),
            ],
        ),
        (
            "accounts",
            Service::Accounts,
            vec![
                ("ACCOUNTS_USERNAME", demo::ACCOUNTS_USERNAME),
                ("ACCOUNTS_PASSWORD", demo::ACCOUNTS_PASSWORD),
            ],
        ),
        (
            "passwordsafe-oauth",
            Service::PasswordSafe,
            vec![
                ("PASSWORDSAFE_CLIENT_ID", demo::PASSWORDSAFE_CLIENT_ID),
                (
                    "PASSWORDSAFE_CLIENT_SECRET",
                    demo::PASSWORDSAFE_CLIENT_SECRET,
                ),
            ],
        ),
        (
            "passwordsafe-key",
            Service::PasswordSafe,
            vec![
                ("PASSWORDSAFE_API_KEY", demo::PASSWORDSAFE_API_KEY),
                ("PASSWORDSAFE_RUNAS", demo::PASSWORDSAFE_RUNAS),
                ("PASSWORDSAFE_PASSWORD", demo::PASSWORDSAFE_PASSWORD),
            ],
        ),
        (
            "fib",
            Service::Fib,
            vec![
                ("FIB_EMAIL", demo::FIB_EMAIL),
                ("FIB_PRIVATE_KEY", demo::FIB_PRIVATE_KEY),
            ],
        ),
    ];
    for (provider, service, credentials) in providers {
        let base = sandbox.base_url(service);
        let cache = cache_file(provider);
        let mut env = credentials;
        env.push(("TOKENSMITH_BASE_URL", &base));
        env.push(("TOKENSMITH_CACHE_KEY", CACHE_KEY));
        let run = || {
            tokensmith(
                &["--cache", cache.to_str().unwrap(), provider, "info"],
                &env,
            )
        };
        let logins = sandbox.counters(service).logins;
        assert_eq!(info(&run())["source"], "login", "{provider}");
        let challenges = sandbox.counters(service).challenges;
        assert_eq!(info(&run())["source"], "cache", "{provider}");
        assert_eq!(
            sandbox.counters(service).logins,
            logins + 1,
            "{provider}: one login in two runs"
        );
        assert_eq!(
            sandbox.counters(service).challenges,
            challenges,
            "{provider}: no new step-up"
        );
    }
}

/// `--step-up` on a terminal: the code is typed at the prompt, and the terminal does not show it.
/// `script` (util-linux) gives the command a pseudo-terminal. The prompt is printed before echo
/// is turned off (rpassword's order), so the code is typed only once the prompt is there and
/// the command's terminal says echo is off: the output then shows whether it stayed off.
/// Waits until the terminal of the `tokensmith` process under `script` (pid `script_pid`) has
/// echo off, as `stty` reads it; fails after 10 s.
#[cfg(target_os = "linux")]
fn wait_for_echo_off(script_pid: u32) {
    fn descendants(pid: u32) -> Vec<u32> {
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        let children: Vec<u32> = children
            .split_whitespace()
            .filter_map(|c| c.parse().ok())
            .collect();
        let mut all = children.clone();
        all.extend(children.into_iter().flat_map(descendants));
        all
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let terminal = descendants(script_pid).into_iter().find_map(|pid| {
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            (name.trim() == "tokensmith")
                .then(|| std::fs::read_link(format!("/proc/{pid}/fd/0")).ok())
                .flatten()
        });
        if let Some(terminal) = terminal {
            let settings = Command::new("stty")
                .args(["-a", "-F"])
                .arg(&terminal)
                .output()
                .expect("stty (coreutils) is installed");
            if text(&settings.stdout)
                .split_whitespace()
                .any(|flag| flag == "-echo")
            {
                return;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the terminal's echo never went off"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weavr_step_up_prompts_on_the_terminal_without_echo() {
    use std::io::{Read, Write};
    let sandbox = Sandbox::start().await;
    let env = weavr_env(&sandbox.base_url(Service::Weavr));
    let command_line = format!(
        "{} weavr header --step-up",
        env!("CARGO_BIN_EXE_tokensmith")
    );
    let mut script = Command::new("script");
    script
        .args([
            "--quiet",
            "--return",
            "--command",
            &command_line,
            "/dev/null",
        ])
        .env_clear()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Ok(path) = std::env::var("PATH") {
        script.env("PATH", path);
    }
    for (name, value) in &env {
        script.env(name, value);
    }
    let mut child = script.spawn().expect("util-linux `script` is installed");
    let script_pid = child.id();
    let mut stdout = child.stdout.take().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let output = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        let mut buffer = [0u8; 256];
        while !text(&seen).contains("weavr one-time password (attempt 1): ") {
            let n = stdout.read(&mut buffer).unwrap();
            assert!(n > 0, "no prompt: {}", text(&seen));
            seen.extend_from_slice(&buffer[..n]);
        }
        wait_for_echo_off(script_pid);
        stdin
            .write_all(format!("{}\n", demo::WEAVR_OTP).as_bytes())
            .unwrap();
        stdout.read_to_end(&mut seen).unwrap();
        drop(stdin);
        text(&seen)
    })
    .await
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{output}");
    assert!(output.contains("Authorization: Bearer "), "{output}");
    assert!(
        !output.contains(demo::WEAVR_OTP),
        "the code was echoed: {output}"
    );
    let counters = sandbox.counters(Service::Weavr);
    assert_eq!((counters.challenges, counters.verifications), (1, 1));
}

/// The providers are the library's profiles (`tokensmith::env::profiles`), in its order, each
/// with its summary and its variables: the command names no service of its own.
#[test]
fn the_providers_and_their_variables_are_the_library_s_profiles() {
    let help = text(&tokensmith(&["--help"], &[]).stdout);
    let listed: Vec<(String, String)> = help
        .split("Providers:\n")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|line| line.starts_with("  "))
        .map(|line| {
            let (name, about) = line.trim().split_once(' ').unwrap();
            (name.to_owned(), about.trim().to_owned())
        })
        .collect();
    let profiles = tokensmith::env::profiles();
    let mut expected: Vec<(String, String)> = profiles
        .iter()
        .map(|p| (p.name().to_owned(), p.about().to_owned()))
        .collect();
    expected.push((
        "completions".into(),
        "Print a completion script for a shell to stdout".into(),
    ));
    expected.push((
        "help".into(),
        "Print this message or the help of the given subcommand(s)".into(),
    ));
    assert_eq!(listed, expected);

    for profile in profiles {
        let help = text(&tokensmith(&[profile.name(), "--help"], &[]).stdout);
        let environment = help
            .lines()
            .find(|line| line.starts_with("Environment: "))
            .unwrap();
        let mut variables: Vec<String> = profile
            .variables()
            .iter()
            .map(|v| match v.is_required() {
                true => v.name().to_owned(),
                false => format!("[{}]", v.name()),
            })
            .collect();
        if profile.service() == Service::Weavr {
            variables.push("[WEAVR_OTP, read only with --step-up]".into());
        }
        assert_eq!(
            environment,
            format!("Environment: {}", variables.join(" ")),
            "{}",
            profile.name()
        );
        let required = format!(
            "A base URL is required (--base-url, TOKENSMITH_BASE_URL, {} or --sandbox): ",
            profile.base_url_variable()
        );
        match profile.base_url_required() {
            Some(hint) => assert!(help.contains(&format!("{required}{hint}")), "{help}"),
            None => assert!(!help.contains("A base URL is required"), "{help}"),
        }
    }
}

/// `--sandbox` gives every provider the demo credentials (`sandbox::demo::variable`) and the
/// sandbox's base URL, whatever the environment holds.
#[test]
fn every_provider_logs_in_to_the_sandbox_with_its_demo_credentials() {
    let nowhere = [
        ("TOKENSMITH_BASE_URL", "http://127.0.0.1:9"),
        ("FIB_BASE_URL", "http://127.0.0.1:9"),
        ("FIB_EMAIL", "nobody@example.com"),
    ];
    for profile in tokensmith::env::profiles() {
        let output = tokensmith(&["--sandbox", profile.name(), "info"], &nowhere);
        let json = info(&output);
        assert_eq!(json["provider"], profile.name());
        assert_eq!(json["source"], "login");
    }
}

/// The base URL is --base-url, else TOKENSMITH_BASE_URL, else the provider's own variable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_base_url_comes_from_the_flag_then_tokensmith_base_url_then_the_provider_s_variable() {
    let sandbox = Sandbox::start().await;
    let base = sandbox.base_url(Service::Fib);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let credentials = [
        ("FIB_EMAIL", demo::FIB_EMAIL),
        ("FIB_PRIVATE_KEY", demo::FIB_PRIVATE_KEY),
    ];
    let with = |extra: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        credentials
            .iter()
            .chain(extra)
            .map(|(k, v)| (*k, v.to_string()))
            .collect()
    };
    // The provider's variable alone.
    let env = with(&[("FIB_BASE_URL", &base)]);
    assert_eq!(
        info(&tokensmith(&["fib", "info"], &borrow(&env)))["source"],
        "login"
    );
    // TOKENSMITH_BASE_URL wins over it.
    let env = with(&[("FIB_BASE_URL", &nowhere), ("TOKENSMITH_BASE_URL", &base)]);
    assert_eq!(
        info(&tokensmith(&["fib", "info"], &borrow(&env)))["source"],
        "login"
    );
    // --base-url wins over both.
    let env = with(&[
        ("FIB_BASE_URL", &nowhere),
        ("TOKENSMITH_BASE_URL", &nowhere),
    ]);
    let output = tokensmith(&["--base-url", &base, "fib", "info"], &borrow(&env));
    assert_eq!(info(&output)["source"], "login");
    assert_eq!(sandbox.counters(Service::Fib).logins, 3);
    // And the losing one points nowhere: without the winner the run fails to connect.
    let output = tokensmith(&["fib", "info"], &borrow(&env));
    assert_eq!(output.status.code(), Some(5), "{}", text(&output.stderr));

    // weavr, which has no production URL, takes WEAVR_BASE_URL as its base URL.
    let mut env = weavr_env("");
    env.retain(|(k, _)| *k != "TOKENSMITH_BASE_URL");
    env.push(("WEAVR_BASE_URL", sandbox.base_url(Service::Weavr)));
    let output = tokensmith(&["weavr", "info"], &borrow(&env));
    assert_eq!(info(&output)["provider"], "weavr");
    assert_eq!(sandbox.counters(Service::Weavr).logins, 1);
}

/// A malformed variable is a configuration error (exit 2) that names it and never shows it,
/// for the providers' variables and the command's own.
#[test]
fn malformed_variables_are_named_and_never_shown() {
    let key = "hunter2hunter2hunter2";
    let output = tokensmith(
        &["fib", "token"],
        &[("FIB_EMAIL", demo::FIB_EMAIL), ("FIB_PRIVATE_KEY", key)],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert_eq!(
        stderr,
        "tokensmith: fib: configuration error: FIB_PRIVATE_KEY is not an Authorization \
         private key (64 hex characters, or 128: the private key, then its public key)\n\n\
         For more information, try 'tokensmith --help'.\n"
    );

    let env = [
        (
            "PASSWORDSAFE_BASE_URL",
            "https://user:hunter2@pws.example.com",
        ),
        ("PASSWORDSAFE_CLIENT_ID", "client"),
        ("PASSWORDSAFE_CLIENT_SECRET", "hunter2-secret"),
    ];
    let output = tokensmith(&["passwordsafe-oauth", "token"], &env);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with(
            "tokensmith: passwordsafe: configuration error: PASSWORDSAFE_BASE_URL is not a base \
             URL"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");

    for (name, value) in [("TOKENSMITH_CACHE_KEY", ""), ("TOKENSMITH_BASE_URL", " ")] {
        let cache = cache_file(&format!("empty-{name}"));
        let mut env = fib_env("https://fib.example");
        env.retain(|(k, _)| *k != name);
        env.push((name, value.to_owned()));
        let output = tokensmith(
            &["--cache", cache.to_str().unwrap(), "fib", "token"],
            &borrow(&env),
        );
        assert_eq!(output.status.code(), Some(2));
        assert!(
            text(&output.stderr).starts_with(&format!("tokensmith: {name} is empty\n")),
            "{}",
            text(&output.stderr)
        );
    }
}

#[test]
fn passwordsafe_without_a_base_url_names_every_way_to_give_one() {
    let output = tokensmith(
        &["passwordsafe-key", "token"],
        &[
            ("PASSWORDSAFE_API_KEY", demo::PASSWORDSAFE_API_KEY),
            ("PASSWORDSAFE_RUNAS", demo::PASSWORDSAFE_RUNAS),
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        text(&output.stderr),
        "tokensmith: passwordsafe needs --base-url, TOKENSMITH_BASE_URL or PASSWORDSAFE_BASE_URL \
         (https://<host>/BeyondTrust/api/public/v3), or --sandbox\n\n\
         For more information, try 'tokensmith --help'.\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_is_kept_in_the_cache_between_runs_for_the_same_password_only() {
    let sandbox = Sandbox::start().await;
    let base = sandbox.base_url(Service::S7risk);
    let cache = cache_file("refused");
    let cache_arg = cache.to_str().unwrap();
    let run = |password: &str| {
        let env = s7risk_env(&base, password);
        tokensmith(
            &["--cache", cache_arg, "s7risk-user", "token"],
            &borrow(&env),
        )
    };
    for _ in 0..3 {
        let output = run("wrong-password-123");
        assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("Email and password do not match"),
            "{stderr}"
        );
        assert!(!stderr.contains("wrong-password-123"), "{stderr}");
    }
    // One refused login in three runs: the next two read the refusal from the cache.
    let counters = sandbox.counters(Service::S7risk);
    assert_eq!((counters.failed_logins, counters.logins), (1, 0));
    let text_on_disk = std::fs::read_to_string(&cache).unwrap();
    assert!(
        !text_on_disk.contains("do not match"),
        "sealed: {text_on_disk}"
    );
    // The right password is not held back.
    let output = run(demo::S7RISK_PASSWORD);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let counters = sandbox.counters(Service::S7risk);
    assert_eq!((counters.failed_logins, counters.logins), (1, 1));
}
