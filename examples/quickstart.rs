//! The SDK at work with no network and no account: a local stand-in for the Intelligence
//! Fusion Auth API answers on a loopback port, and a session logs in, serves its cached
//! token, renews it before expiry, and shares one login among many concurrent callers.
//!
//! Run with `cargo run --example quickstart`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use tokensmith::clock::ManualClock;
use tokensmith::s7risk::{Credentials, Session};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Answers each login with a fresh JWT that expires 24 hours after the clock's now.
struct IssueJwt {
    clock: ManualClock,
}

impl Respond for IssueJwt {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        use tokensmith::clock::Clock as _;
        let body: serde_json::Value = match serde_json::from_slice(&request.body) {
            Ok(body) => body,
            Err(_) => return ResponseTemplate::new(422),
        };
        if body["email"] != "demo@example.com" || body["password"] != "demo-password" {
            return ResponseTemplate::new(401).set_body_json(
                serde_json::json!({"status": "error", "message": "Email and password do not match"}),
            );
        }
        let now = self
            .clock
            .system_now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let jwt = format!(
            "{}.{}.sandbox",
            b64.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
            b64.encode(format!(r#"{{"sub":"demo","exp":{}}}"#, now + 24 * 3600))
        );
        ResponseTemplate::new(200)
            .set_body_json(serde_json::json!({"status": "success", "data": {"accessToken": jwt}}))
            .set_delay(Duration::from_millis(20))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let clock = ManualClock::starting_at(SystemTime::now());
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/user/token"))
        .and(header("origin", "https://app.example.com"))
        .respond_with(IssueJwt {
            clock: clock.clone(),
        })
        .mount(&server)
        .await;
    println!("stand-in s7risk auth service on {}", server.uri());

    let session = Session::builder()
        .base_url(server.uri())
        .origin("https://app.example.com")
        .credentials(Credentials::user("demo@example.com", "demo-password"))
        .clock(clock.clone())
        .build()?;

    let token = session.access_token().await?;
    println!("1. logged in: {token:?}");

    session.access_token().await?;
    println!(
        "2. second call served from the cache: {:?}",
        session.request_counts()
    );

    clock.advance(Duration::from_secs(24 * 3600 - 30));
    let renewed = session.access_token().await?;
    println!("3. 30 s before expiry the session logged in again: {renewed:?}");

    clock.advance(Duration::from_secs(24 * 3600));
    let callers = (0..100).map(|_| {
        let session = session.clone();
        tokio::spawn(async move { session.access_token().await })
    });
    let mut ok = 0;
    for caller in callers {
        caller.await?.map(|_| ok += 1)?;
    }
    println!(
        "4. {ok} concurrent callers at expiry shared one login: {:?}",
        session.request_counts()
    );

    let wrong = Session::builder()
        .base_url(server.uri())
        .origin("https://app.example.com")
        .credentials(Credentials::user("demo@example.com", "wrong-password"))
        .build()?;
    let err = wrong.access_token().await.unwrap_err();
    println!("5. refused credentials give a typed error, never retried: {err}");
    Ok(())
}
