//! Each stand-in's protected resource (`Sandbox::resource_url`) checks what the vendor's other
//! APIs check, and a session's `send()` (or `AuthMiddleware`) gets through it end to end.
#![cfg(all(
    feature = "s7risk",
    feature = "weavr",
    feature = "accounts",
    feature = "passwordsafe",
    feature = "fib"
))]

mod common;

use common::sandboxed;
use serde_json::json;
use tokensmith::sandbox::{demo, Sandbox};
use tokensmith::Service;

/// `GET url` with exactly `headers`, outside any session: the status and the JSON body.
async fn raw(url: &str, headers: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    (status, body)
}

/// The session's `send()` of `GET url`: status and JSON body.
async fn send(session: &tokensmith::AnySession, url: &str) -> (u16, serde_json::Value) {
    let response = session.send(reqwest::Client::new().get(url)).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn calls(sandbox: &Sandbox, service: Service) -> u64 {
    sandbox.counters(service).resource_calls
}

#[tokio::test]
async fn s7risk_s_resource_takes_the_bearer_alone() {
    let (sandbox, clock) = sandboxed::start().await;
    let url = sandbox.resource_url(Service::S7risk);
    assert_eq!(
        url,
        format!("{}/resource", sandbox.base_url(Service::S7risk))
    );
    let session = sandboxed::any(&sandbox, &clock, Service::S7risk);
    assert_eq!(
        send(&session, &url).await,
        (
            200,
            json!({"service": "s7risk", "subject": demo::S7RISK_EMAIL})
        )
    );
    let token = session.access_token().await.unwrap();
    let token = token.secret().expose_secret();
    // The bearer alone (no Origin) opens it; nothing else does.
    assert_eq!(raw(&url, &[("authorization", &bearer(token))]).await.0, 200);
    let refused = (401, json!({"status": "error", "message": "Unauthorized"}));
    assert_eq!(raw(&url, &[("origin", demo::S7RISK_ORIGIN)]).await, refused);
    assert_eq!(
        raw(&url, &[("authorization", &bearer("not-a-token"))]).await,
        refused
    );
    assert_eq!(calls(&sandbox, Service::S7risk).await, 2);
    assert_eq!(sandbox.counters(Service::S7risk).logins, 1);
}

#[tokio::test]
async fn weavr_s_resource_needs_the_api_key_an_access_token_and_a_step_up() {
    let (sandbox, clock) = sandboxed::start().await;
    let url = sandbox.resource_url(Service::Weavr);
    assert_eq!(
        url,
        format!("{}/managed_accounts", sandbox.base_url(Service::Weavr))
    );
    let plain = sandboxed::weavr(&sandbox, &clock).build().unwrap();
    let token = plain.access_token().await.unwrap();
    let auth = bearer(token.secret().expose_secret());
    assert_eq!(
        raw(&url, &[("authorization", &auth)]).await,
        (401, serde_json::Value::Null),
        "no api-key"
    );
    assert_eq!(
        raw(
            &url,
            &[("authorization", &auth), ("api-key", demo::WEAVR_API_KEY)]
        )
        .await,
        (403, json!({"errorCode": "STEP_UP_REQUIRED"}))
    );

    // A session that can step up gets through send(): the 403 is answered, then resent.
    let session: tokensmith::AnySession = sandboxed::weavr(&sandbox, &clock)
        .step_up(tokensmith::weavr::StepUpMethod::Sms, |_| async {
            tokensmith::weavr::Answer::Code(demo::WEAVR_OTP.into())
        })
        .build()
        .unwrap()
        .into();
    let (status, body) = send(&session, &url).await;
    assert_eq!(status, 200);
    assert_eq!(body["accounts"][0]["id"], "1001");
    let counters = sandbox.counters(Service::Weavr);
    assert_eq!(
        (
            counters.logins,
            counters.challenges,
            counters.verifications,
            counters.resource_calls
        ),
        (2, 1, 1, 1)
    );
}

#[tokio::test]
async fn accounts_resource_takes_the_access_token_not_the_id_token() {
    let (sandbox, clock) = sandboxed::start().await;
    let url = sandbox.resource_url(Service::Accounts);
    let session = sandboxed::accounts(&sandbox, &clock).build().unwrap();
    let any: tokensmith::AnySession = session.clone().into();
    assert_eq!(
        send(&any, &url).await,
        (
            200,
            json!({"service": "accounts", "subject": demo::ACCOUNTS_USERNAME})
        )
    );
    let id = session.id_token().await.unwrap();
    assert_eq!(
        raw(&url, &[("authorization", &bearer(id.expose_secret()))]).await,
        (401, json!({"status": 401, "message": "Unauthorized."}))
    );
    assert_eq!(calls(&sandbox, Service::Accounts).await, 1);
}

#[tokio::test]
async fn passwordsafe_s_resource_needs_the_cookie_and_for_oauth_the_bearer_too() {
    let (sandbox, clock) = sandboxed::start().await;
    let url = sandbox.resource_url(Service::PasswordSafe);
    assert_eq!(
        url,
        format!(
            "{}/ManagedAccounts",
            sandbox.base_url(Service::PasswordSafe)
        )
    );
    let oauth = sandboxed::any(&sandbox, &clock, Service::PasswordSafe);
    let (status, body) = send(&oauth, &url).await;
    assert_eq!(status, 200);
    assert_eq!(body[0]["AccountName"], "sa");

    let headers = oauth.headers().await.unwrap();
    let cookie = headers["cookie"].to_str().unwrap();
    let authorization = headers["authorization"].to_str().unwrap();
    let refused = (401, json!("Unauthorized"));
    assert_eq!(raw(&url, &[("cookie", cookie)]).await, refused, "no bearer");
    assert_eq!(
        raw(&url, &[("authorization", authorization)]).await,
        refused,
        "no cookie"
    );
    assert_eq!(
        raw(
            &url,
            &[("cookie", cookie), ("authorization", authorization)]
        )
        .await
        .0,
        200
    );

    // A PS-Auth session has a cookie only.
    let ps_auth: tokensmith::AnySession = tokensmith::passwordsafe::Session::builder()
        .base_url(sandbox.base_url(Service::PasswordSafe))
        .ps_auth(
            demo::PASSWORDSAFE_API_KEY,
            demo::PASSWORDSAFE_RUNAS,
            Some(demo::PASSWORDSAFE_PASSWORD.into()),
        )
        .clock(clock.clone())
        .build()
        .unwrap()
        .into();
    assert!(!ps_auth
        .headers()
        .await
        .unwrap()
        .contains_key("authorization"));
    assert_eq!(send(&ps_auth, &url).await.0, 200);
    assert_eq!(calls(&sandbox, Service::PasswordSafe).await, 3);
}

#[tokio::test]
async fn fib_s_resource_takes_the_access_token() {
    let (sandbox, clock) = sandboxed::start().await;
    let url = sandbox.resource_url(Service::Fib);
    let session = sandboxed::any(&sandbox, &clock, Service::Fib);
    assert_eq!(
        send(&session, &url).await,
        (200, json!({"service": "fib", "subject": demo::FIB_EMAIL}))
    );
    assert_eq!(
        raw(&url, &[]).await,
        (
            401,
            json!({"status": {"code": 401, "name": "UNAUTHORIZED",
                "message": "Access token is not valid."}, "data": null})
        )
    );
    assert_eq!(calls(&sandbox, Service::Fib).await, 1);
}

#[cfg(feature = "middleware")]
#[tokio::test]
async fn the_middleware_gets_through_and_after_a_revocation_logs_in_once() {
    use tokensmith::sandbox::Fault;
    let (sandbox, clock) = sandboxed::start().await;
    let session = sandboxed::accounts(&sandbox, &clock).build().unwrap();
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(tokensmith::middleware::AuthMiddleware::new(session.clone()))
        .build();
    let url = sandbox.resource_url(Service::Accounts);
    let get = || async {
        let response = client.get(&url).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json::<serde_json::Value>().await.unwrap())
    };
    let expected = (
        200,
        json!({"service": "accounts", "subject": demo::ACCOUNTS_USERNAME}),
    );
    assert_eq!(get().await, expected);

    sandbox.fail(Service::Accounts, Fault::revocation());
    assert_eq!(get().await, expected, "renewed once, resent once");
    let counters = sandbox.counters(Service::Accounts);
    assert_eq!(
        (counters.logins, counters.refreshes, counters.resource_calls),
        (2, 0, 2),
        "the revoked refresh token was refused; one login"
    );
    let sent = session.request_counts();
    assert_eq!((sent.logins, sent.refreshes), (2, 1));
}
