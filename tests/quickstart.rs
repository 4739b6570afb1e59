//! `cargo run --example quickstart`, the first thing a user runs, prints what it should, and
//! README.md shows lines it prints. The example runs in a process of its own (this test binary
//! started again with only `quickstart_main`), so that its standard output can be read.
#![cfg(all(
    feature = "s7risk",
    feature = "weavr",
    feature = "accounts",
    feature = "passwordsafe",
    feature = "fib"
))]

use std::process::Command;

#[path = "../examples/quickstart.rs"]
mod quickstart;

/// Set in the process that runs the example.
const CHILD: &str = "TOKENSMITH_QUICKSTART_CHILD";

/// What the quickstart prints, but for the sandbox's port.
const EXPECTED: &str = r#"sandbox: Sandbox { uri: "http://127.0.0.1:PORT", .. }

== s7risk (Intelligence Fusion): 24 h JWTs, renewed by logging in again
logged in: AccessToken { token: "[redacted]", expires_in: 86400s, origin: Login }
second call served from the cache; logins so far: 1
a protected resource, through the session: 200 OK {"service":"s7risk","subject":"demo@example.com"}
a day later, 1000 concurrent callers shared one new login; logins so far: 2
refused credentials: s7risk: credentials refused (HTTP 401): Email and password do not match; asked again: credentials refused (sent once: 1 failed login)
logged out (s7risk has no endpoint: the cached token is wiped)

== weavr: api-key sign-in, identity exchange, 5-minute sliding tokens, step-up
signed in and exchanged for the identity's access token: AccessToken { token: "[redacted]", expires_in: 300s, origin: Login }
   the user is asked for the SMS code (Sms { attempt: 1 }) and types 123456
50 calls needing a step-up shared 1 SMS challenge and 1 verification
logged out

== accounts (Wikimedia Enterprise): refresh tokens, the new-password challenge
first login: accounts: a new password is required (HTTP 200) [NEW_PASSWORD_REQUIRED]: the account must set a new password first (Session::complete_new_password)
new password set; the session holds the token set
a day later the session renewed by refresh token: 1 login, 1 refresh
logged out (refresh token revoked)

== passwordsafe (BeyondTrust): OAuth bearer, then a session cookie that closes when idle
signed in (client credentials, then SignAppin): AccessToken { token: "[redacted]", expires_in: 1200s, origin: Login }
the session cookie opens the rest of the API: [{"AccountId":10,"AccountName":"sa","SystemId":1,"SystemName":"db01"}]
signed out: 1 sign-out

== fib: Ed25519-signed login, 5-minute tokens renewed by refresh token
logged in with the signed email: AccessToken { token: "[redacted]", expires_in: 300s, origin: Login }
near expiry, 1000 concurrent callers shared one refresh: 1 login, 1 refresh
logged out at the service: 1 logout
"#;

/// The example's `main`, printing to this process's standard output. Run only by
/// [`the_quickstart_prints_what_it_should_and_the_readme_shows`], in a process of its own.
#[test]
#[ignore = "the quickstart's own process, started by the_quickstart_prints_what_it_should_and_the_readme_shows"]
fn quickstart_main() {
    assert_eq!(
        std::env::var(CHILD).as_deref(),
        Ok("1"),
        "run by the other test"
    );
    quickstart::main().unwrap();
}

/// The quickstart's output, with the sandbox's port replaced by `PORT`.
fn quickstart_output() -> String {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "quickstart_main",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "the quickstart failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The example's lines, between the test harness's own.
    let start = stdout.find("sandbox: ").expect("the sandbox line");
    let end = stdout
        .find("logged out at the service: ")
        .expect("the last line");
    let end = end + stdout[end..].find('\n').expect("a whole line") + 1;
    let printed = &stdout[start..end];
    let port_at = printed.find("127.0.0.1:").expect("the sandbox's address") + "127.0.0.1:".len();
    let port_len = printed[port_at..]
        .find(|c: char| !c.is_ascii_digit())
        .unwrap();
    assert!(port_len > 0);
    format!(
        "{}PORT{}",
        &printed[..port_at],
        &printed[port_at + port_len..]
    )
}

/// The lines of README.md's first `text` block.
fn readme_lines() -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let block = readme
        .split("```text\n")
        .nth(1)
        .expect("README.md shows the quickstart's output")
        .split("```")
        .next()
        .unwrap();
    block.lines().map(str::to_owned).collect()
}

#[test]
fn the_quickstart_prints_what_it_should_and_the_readme_shows() {
    let printed = quickstart_output();
    assert_eq!(printed, EXPECTED);
    let readme = readme_lines();
    assert!(readme.len() >= 5, "{readme:?}");
    for line in readme {
        assert!(
            printed.lines().any(|printed| printed == line),
            "README.md shows a line the quickstart does not print: {line}"
        );
    }
}
