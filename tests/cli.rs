//! The `tokensmith` command, run as a subprocess against the sandbox: every provider, every
//! command, `--cache` reuse and refresh, and the exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tokensmith::sandbox::{demo, Sandbox};
use tokensmith::store::{FileStore, SealingKey, StoreKey, TokenStore};
use tokensmith::{SecretString, Service};

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
        assert!(text(&output.stderr).contains("usage:"), "{args:?}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weavr_tokens_are_stepped_up_with_the_otp_from_the_environment() {
    let sandbox = Sandbox::start().await;
    let base = sandbox.base_url(Service::Weavr);
    let mut env = vec![
        ("TOKENSMITH_BASE_URL", base.clone()),
        ("WEAVR_API_KEY", demo::WEAVR_API_KEY.to_owned()),
        ("WEAVR_EMAIL", demo::WEAVR_EMAIL.to_owned()),
        ("WEAVR_PASSWORD", demo::WEAVR_PASSWORD.to_owned()),
    ];
    // No code and no terminal: the step-up is declined, a service error (5).
    let output = tokensmith(&["weavr", "token"], &borrow(&env));
    assert_eq!(output.status.code(), Some(5), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("declined"),
        "{}",
        text(&output.stderr)
    );

    env.push(("WEAVR_OTP", demo::WEAVR_OTP.to_owned()));
    let output = tokensmith(&["weavr", "header"], &borrow(&env));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).starts_with("Authorization: Bearer "));
    let counters = sandbox.counters(Service::Weavr);
    assert_eq!((counters.challenges, counters.verifications), (2, 1));
    assert!(!text(&output.stderr).contains(demo::WEAVR_OTP));
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
