//! Faults on cue (`Sandbox::fail`): each kind answers exactly as its documentation says, and a
//! session meets each with its documented reaction (README, "What a session does for you"):
//! the typed error, the login backoff, the wait a rate limit or lock-out asks for, the
//! still-valid token kept, one login after a revocation.
#![cfg(all(
    feature = "s7risk",
    feature = "weavr",
    feature = "accounts",
    feature = "passwordsafe",
    feature = "fib"
))]

mod common;

use std::time::Duration;

use common::sandboxed::{self, SERVICES};
use serde_json::json;
use tokensmith::sandbox::{demo, Fault, Operation, Sandbox};
use tokensmith::{ErrorKind, RetryPolicy, Service};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MS: Duration = Duration::from_millis(1);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The path, under the base URL, of the first request of `service`'s login.
fn login_path(service: Service) -> &'static str {
    match service {
        Service::S7risk => "/user/token",
        Service::Weavr => "/login_with_password",
        Service::Accounts => "/v1/login",
        Service::PasswordSafe => "/Auth/connect/token",
        Service::Fib => "/auth/api/v1/authentication-management/session",
        other => panic!("{other}"),
    }
}

/// An empty login request, straight to the stand-in.
async fn post_login(sandbox: &Sandbox, service: Service) -> reqwest::Response {
    let url = format!("{}{}", sandbox.base_url(service), login_path(service));
    reqwest::Client::new().post(url).send().await.unwrap()
}

/// Status, the named headers (absent ones as `None`), and the body as text.
async fn answer(response: reqwest::Response, names: &[&str]) -> (u16, Vec<Option<String>>, String) {
    let status = response.status().as_u16();
    let headers = names
        .iter()
        .map(|name| {
            response
                .headers()
                .get(*name)
                .map(|v| v.to_str().unwrap().to_owned())
        })
        .collect();
    (status, headers, response.text().await.unwrap())
}

fn json_of(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test]
async fn each_answer_fault_answers_exactly_as_documented_in_the_order_given() {
    let (sandbox, _clock) = sandboxed::start().await;
    for service in SERVICES {
        for fault in [
            Fault::outage(),
            Fault::outage().retry_after(Duration::from_millis(29_500)),
            Fault::rate_limit().retry_after(secs(90)),
            Fault::rate_limit(),
            Fault::truncated(),
            Fault::malformed(),
        ] {
            sandbox.fail(service, fault.times(1));
        }
        let names = ["content-type", "retry-after", "request-ref"];

        // The outage, as a gateway answers it (weavr: as it documents its 503).
        let (status, headers, body) = answer(post_login(&sandbox, service).await, &names).await;
        assert_eq!(status, 503, "{service}");
        assert_eq!(headers[1], None, "{service}: no Retry-After unless given");
        if service == Service::Weavr {
            assert_eq!((headers[0].as_deref(), body.as_str()), (None, ""));
            assert!(headers[2].as_ref().unwrap().starts_with("sandbox-"));
        } else {
            assert_eq!(
                (headers[0].as_deref(), body.as_str()),
                (Some("text/plain; charset=utf-8"), "Service Unavailable"),
                "{service}"
            );
            assert_eq!(headers[2], None);
        }
        let (status, headers, _) = answer(post_login(&sandbox, service).await, &names).await;
        assert_eq!(status, 503);
        assert_eq!(headers[1].as_deref(), Some("30"), "{service}: rounded up");

        // The rate limits, each the service's own way, then with the default window.
        for window in ["90", "60"] {
            let names = ["retry-after", "x-ratelimit-limit", "x-ratelimit-reset"];
            let (status, headers, body) = answer(post_login(&sandbox, service).await, &names).await;
            assert_eq!(status, 429, "{service}");
            let minutes = if window == "90" { 2 } else { 1 };
            let unit = if minutes == 1 { "minute" } else { "minutes" };
            match service {
                Service::S7risk => {
                    assert_eq!(headers, [None, None, None]);
                    assert_eq!(
                        json_of(&body),
                        json!({"status": "error", "message": format!(
                            "Too many authentication attempts. Try again in {minutes} {unit}")})
                    );
                }
                Service::Weavr => {
                    assert_eq!(
                        headers,
                        [
                            None,
                            Some(format!("20, 20;w={window}")),
                            Some(window.to_owned())
                        ]
                    );
                    assert_eq!(body, "");
                }
                _ => {
                    assert_eq!(headers, [Some(window.to_owned()), None, None], "{service}");
                    let expected = match service {
                        Service::Accounts => {
                            json!({"status": 429, "message": "Too many requests."})
                        }
                        Service::PasswordSafe => json!("Too many requests."),
                        _ => json!({"status": {"code": 429, "name": "TOO_MANY_REQUESTS",
                            "message": "Too many requests."}, "data": null}),
                    };
                    assert_eq!(json_of(&body), expected, "{service}");
                }
            }
        }

        let names = ["content-type", "content-length"];
        let (status, headers, body) = answer(post_login(&sandbox, service).await, &names).await;
        assert_eq!(
            (status, headers, body.as_str()),
            (
                200,
                vec![Some("application/json".into()), Some("20".into())],
                r#"{"token":"eyJhbGciOi"#
            ),
            "{service}: truncated"
        );
        let (status, headers, body) = answer(post_login(&sandbox, service).await, &names).await;
        assert_eq!(
            (status, headers[0].as_deref(), body.as_str()),
            (
                200,
                Some("text/html"),
                "<html><body><h1>Welcome</h1></body></html>"
            ),
            "{service}: malformed"
        );

        // Spent: the stand-in answers again (an empty login is refused its own way).
        let status = post_login(&sandbox, service).await.status().as_u16();
        let refused = match service {
            Service::S7risk | Service::Weavr => 401,
            Service::Accounts => 422,
            _ => 400,
        };
        assert_eq!(status, refused, "{service}");
        assert_eq!(sandbox.counters(service).faults, 6, "{service}");
    }
}

#[tokio::test]
async fn times_and_for_duration_end_a_fault_at_whichever_comes_first() {
    let (sandbox, clock) = sandboxed::start().await;
    let status = || async {
        post_login(&sandbox, Service::S7risk)
            .await
            .status()
            .as_u16()
    };
    // The count runs out first.
    sandbox.fail(
        Service::S7risk,
        Fault::outage().times(1).for_duration(secs(60)),
    );
    assert_eq!(status().await, 503);
    assert_eq!(status().await, 401, "the stand-in's own answer");
    // The time runs out first.
    sandbox.fail(
        Service::S7risk,
        Fault::outage().times(5).for_duration(secs(10)),
    );
    assert_eq!(status().await, 503);
    clock.advance(secs(10) - MS);
    assert_eq!(status().await, 503);
    clock.advance(MS);
    assert_eq!(status().await, 401);
    assert_eq!(sandbox.counters(Service::S7risk).faults, 3);
}

#[tokio::test]
async fn a_fault_given_several_operations_meets_each_of_them_and_no_other() {
    let (sandbox, _clock) = sandboxed::start().await;
    sandbox.fail(
        Service::Fib,
        Fault::outage()
            .on(Operation::Refresh)
            .on(Operation::Resource)
            .on(Operation::Refresh),
    );
    let client = reqwest::Client::new();
    let base = sandbox.base_url(Service::Fib);
    let session = format!("{base}{}", login_path(Service::Fib));
    let statuses = [
        client
            .post(&session)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        client
            .patch(&session)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        client
            .get(sandbox.resource_url(Service::Fib))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        client
            .post(format!(
                "{base}/auth/api/v1/authentication-management/logout"
            ))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
    ];
    assert_eq!(
        statuses,
        [400, 503, 503, 401],
        "login, refresh, resource, logout"
    );
    assert_eq!(sandbox.counters(Service::Fib).faults, 2);
}

#[tokio::test]
async fn an_outage_fails_the_login_with_503_and_logins_back_off_from_one_second_doubling() {
    let (sandbox, clock) = sandboxed::start().await;
    sandbox.fail(Service::Fib, Fault::outage().on(Operation::Login).times(2));
    let session = sandboxed::fib(&sandbox, &clock).build().unwrap();

    let error = session.access_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ServiceUnavailable);
    assert_eq!((error.status(), error.retry_after()), (Some(503), None));
    assert!(error.is_transient());
    let faults = || sandbox.counters(Service::Fib).faults;
    assert_eq!(faults(), 1);

    // The first backoff lasts between half and all of a second: nothing is sent within it.
    let held = session.access_token().await.unwrap_err();
    assert_eq!(held.kind(), ErrorKind::ServiceUnavailable);
    clock.advance(499 * MS);
    session.access_token().await.unwrap_err();
    assert_eq!(faults(), 1, "held back, not sent");
    clock.advance(501 * MS);
    let second = session.access_token().await.unwrap_err();
    assert_eq!(second.kind(), ErrorKind::ServiceUnavailable);
    assert_eq!(faults(), 2, "sent once the second was over");

    // The second lasts between one and two seconds.
    clock.advance(999 * MS);
    session.access_token().await.unwrap_err();
    assert_eq!(faults(), 2);
    clock.advance(1001 * MS);
    session.access_token().await.unwrap();
    let counters = sandbox.counters(Service::Fib);
    assert_eq!((counters.faults, counters.logins), (2, 1));
    assert_eq!(session.request_counts().logins, 3);
}

#[tokio::test]
async fn an_outage_that_asks_for_30_s_is_reported_at_once_and_not_asked_again_sooner() {
    let (sandbox, clock) = sandboxed::start().await;
    sandbox.fail(
        Service::Accounts,
        Fault::outage().retry_after(secs(30)).for_duration(secs(30)),
    );
    // With retries on: 30 s is past the 10 s retry budget, so the 503 comes back at once.
    let session = sandboxed::accounts(&sandbox, &clock)
        .retry_policy(RetryPolicy::default())
        .build()
        .unwrap();
    let error = session.access_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ServiceUnavailable);
    assert_eq!(error.retry_after(), Some(secs(30)));
    assert_eq!(sandbox.counters(Service::Accounts).faults, 1);

    clock.advance(secs(29));
    let held = session.access_token().await.unwrap_err();
    assert_eq!(held.retry_after(), Some(secs(30)));
    assert_eq!(sandbox.counters(Service::Accounts).faults, 1, "not sent");
    // 30 s on: the outage is over, and the session asks again.
    clock.advance(secs(1));
    session.access_token().await.unwrap();
    let counters = sandbox.counters(Service::Accounts);
    assert_eq!((counters.faults, counters.logins), (1, 1));
}

#[tokio::test]
async fn a_rate_limit_is_waited_out_for_the_window_each_service_states() {
    let (sandbox, clock) = sandboxed::start().await;
    for service in SERVICES {
        sandbox.fail(service, Fault::rate_limit().retry_after(secs(90)).times(1));
        let session = sandboxed::any(&sandbox, &clock, service);
        let error = session.access_token().await.unwrap_err();
        // s7risk states its window in whole minutes.
        let window = if service == Service::S7risk { 120 } else { 90 };
        assert_eq!(
            error.kind(),
            ErrorKind::RateLimited {
                retry_after: Some(secs(window))
            },
            "{service}"
        );
        assert_eq!(error.status(), Some(429));
        assert_eq!(sandbox.counters(service).faults, 1, "{service}");

        clock.advance(secs(window - 1));
        assert_eq!(
            session.access_token().await.unwrap_err().kind(),
            error.kind(),
            "{service}"
        );
        assert_eq!(sandbox.counters(service).faults, 1, "{service}: not sent");
        clock.advance(secs(1));
        session.access_token().await.unwrap();
        assert_eq!(sandbox.counters(service).logins, 1, "{service}");
    }
}

#[tokio::test]
async fn a_rate_limited_login_is_sent_once_even_with_retries() {
    let (sandbox, clock) = sandboxed::start().await;
    sandbox.fail(Service::Fib, Fault::rate_limit().retry_after(secs(1)));
    let session = sandboxed::fib(&sandbox, &clock)
        .retry_policy(RetryPolicy::default())
        .build()
        .unwrap();
    let error = session.access_token().await.unwrap_err();
    assert_eq!(
        error.kind(),
        ErrorKind::RateLimited {
            retry_after: Some(secs(1))
        }
    );
    assert_eq!(sandbox.counters(Service::Fib).faults, 1);
}

#[tokio::test]
async fn a_lockout_is_weavr_s_423_account_locked_and_s7risk_s_429_for_five_minutes() {
    let (sandbox, clock) = sandboxed::start().await;

    sandbox.fail(Service::Weavr, Fault::lockout());
    let raw = post_login(&sandbox, Service::Weavr).await;
    let (status, headers, body) = answer(raw, &["retry-after", "request-ref"]).await;
    assert_eq!((status, &headers[0], body.as_str()), (423, &None, ""));
    assert!(headers[1].as_ref().unwrap().starts_with("sandbox-"));

    let session = sandboxed::weavr(&sandbox, &clock).build().unwrap();
    let error = session.access_token().await.unwrap_err();
    assert_eq!(
        error.kind(),
        ErrorKind::AccountLocked {
            retry_after: Some(secs(30 * 60))
        },
        "the vendor's documented 30 minutes"
    );
    assert_eq!(error.status(), Some(423));
    assert!(error.request_ref().unwrap().starts_with("sandbox-"));
    assert_eq!(sandbox.counters(Service::Weavr).faults, 2);
    // Only logins are locked out: the lock-out does not meet other requests.
    let identities = reqwest::Client::new()
        .get(format!("{}/identities", sandbox.base_url(Service::Weavr)))
        .send()
        .await
        .unwrap();
    assert_eq!(identities.status(), 401, "the stand-in's own answer");
    sandbox.clear_faults(Service::Weavr);
    clock.advance(secs(30 * 60) - MS);
    session.access_token().await.unwrap_err();
    assert_eq!(sandbox.counters(Service::Weavr).logins, 0, "waited out");
    clock.advance(MS);
    session.access_token().await.unwrap();
    assert_eq!(sandbox.counters(Service::Weavr).logins, 1);

    // Given a window, weavr's 423 states it in `Retry-After`.
    sandbox.fail(
        Service::Weavr,
        Fault::lockout().retry_after(secs(120)).times(1),
    );
    let raw = post_login(&sandbox, Service::Weavr).await;
    let (status, headers, _) = answer(raw, &["retry-after"]).await;
    assert_eq!((status, headers[0].as_deref()), (423, Some("120")));

    sandbox.fail(Service::S7risk, Fault::lockout().times(1));
    let session = sandboxed::s7risk(&sandbox, &clock).build().unwrap();
    let error = session.access_token().await.unwrap_err();
    assert_eq!(
        error.kind(),
        ErrorKind::RateLimited {
            retry_after: Some(secs(300))
        }
    );
    assert_eq!(
        error.message(),
        Some("Too many authentication attempts. Try again in 5 minutes")
    );
    clock.advance(secs(300));
    session.access_token().await.unwrap();
    let counters = sandbox.counters(Service::S7risk);
    assert_eq!((counters.faults, counters.logins), (1, 1));
}

#[tokio::test]
async fn a_slow_answer_past_the_request_timeout_is_a_timeout_and_the_delay_is_real_time() {
    let (sandbox, clock) = sandboxed::start().await;
    sandbox.fail(
        Service::Fib,
        Fault::slow(secs(2)).on(Operation::Login).times(1),
    );
    let session = sandboxed::fib(&sandbox, &clock)
        .http_client(reqwest::Client::builder().timeout(300 * MS))
        .build()
        .unwrap();
    let error = session.access_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert_eq!(error.status(), None);
    assert!(error.is_transient());
    let counters = sandbox.counters(Service::Fib);
    assert_eq!(
        (counters.faults, counters.logins),
        (1, 1),
        "the stand-in answered, too late"
    );
    // A timeout is a transient failure: the login backoff holds the next one back.
    session.access_token().await.unwrap_err();
    clock.advance(secs(1));
    session.access_token().await.unwrap();
    assert_eq!(sandbox.counters(Service::Fib).logins, 2);

    // Within the timeout, a slow answer is only late: real time passes, the clock's does not.
    sandbox.fail(Service::Fib, Fault::slow(150 * MS).on(Operation::Resource));
    let url = sandbox.resource_url(Service::Fib);
    let started = std::time::Instant::now();
    let response = session
        .send(reqwest::Client::new().get(&url))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= 150 * MS, "{:?}", started.elapsed());
    let counters = sandbox.counters(Service::Fib);
    assert_eq!((counters.faults, counters.resource_calls), (2, 1));
}

#[tokio::test]
async fn a_dropped_connection_sends_not_a_byte_and_fails_the_login_with_a_transport_error() {
    let (sandbox, clock) = sandboxed::start().await;
    sandbox.fail(Service::Fib, Fault::dropped_connection().times(2));

    // On the wire: the request is read, the connection closed, nothing written.
    let url = reqwest::Url::parse(&sandbox.base_url(Service::Fib)).unwrap();
    let mut socket = tokio::net::TcpStream::connect((url.host_str().unwrap(), url.port().unwrap()))
        .await
        .unwrap();
    let request = format!(
        "POST {}{} HTTP/1.1\r\nhost: sandbox\r\ncontent-length: 0\r\n\r\n",
        url.path(),
        login_path(Service::Fib)
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut read = Vec::new();
    tokio::time::timeout(secs(10), socket.read_to_end(&mut read))
        .await
        .expect("closed, not held open")
        .unwrap();
    assert!(read.is_empty(), "{:?}", String::from_utf8_lossy(&read));

    let session = sandboxed::fib(&sandbox, &clock).build().unwrap();
    let error = session.access_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport);
    assert_eq!(error.status(), None);
    assert!(error.is_transient());
    assert_eq!(sandbox.counters(Service::Fib).faults, 2);
    session.access_token().await.unwrap_err();
    clock.advance(secs(1));
    session.access_token().await.unwrap();
    let counters = sandbox.counters(Service::Fib);
    assert_eq!((counters.faults, counters.logins), (2, 1));
}

#[tokio::test]
async fn a_refresh_whose_connection_dropped_keeps_the_token_and_renews_a_quarter_later() {
    let (sandbox, clock) = sandboxed::start().await;
    // Retries on: accounts replays a refresh only when it never left or met a gateway
    // failure, so a dropped one is not sent again.
    let session = sandboxed::accounts(&sandbox, &clock)
        .retry_policy(RetryPolicy::default())
        .build()
        .unwrap();
    let first = session.access_token().await.unwrap();
    sandbox.fail(
        Service::Accounts,
        Fault::dropped_connection().on(Operation::Refresh).times(1),
    );
    // Due 60 s before the end of its 24 hours.
    clock.advance(secs(24 * 3600 - 30));
    let served = session.access_token().await.unwrap();
    assert_eq!(
        served.secret().expose_secret(),
        first.secret().expose_secret()
    );
    let counters = sandbox.counters(Service::Accounts);
    assert_eq!((counters.faults, counters.refreshes), (1, 0));

    // The next attempt waits a quarter of the 30 s left.
    clock.advance(7500 * MS - MS);
    let served = session.access_token().await.unwrap();
    assert_eq!(
        served.secret().expose_secret(),
        first.secret().expose_secret()
    );
    assert_eq!(session.request_counts().refreshes, 1);
    clock.advance(MS);
    let renewed = session.access_token().await.unwrap();
    assert_ne!(
        renewed.secret().expose_secret(),
        first.secret().expose_secret()
    );
    let counters = sandbox.counters(Service::Accounts);
    assert_eq!(
        (counters.faults, counters.logins, counters.refreshes),
        (1, 1, 1)
    );
    assert_eq!(session.request_counts().refreshes, 2);
}

#[tokio::test]
async fn a_truncated_body_is_a_decode_error_and_the_next_call_logs_in_at_once() {
    let (sandbox, clock) = sandboxed::start().await;
    sandbox.fail(Service::S7risk, Fault::truncated().times(1));
    let session = sandboxed::s7risk(&sandbox, &clock).build().unwrap();
    let error = session.access_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Decode);
    assert_eq!(error.status(), Some(200));
    assert!(!error.is_transient());
    // Not a failure to hold logins back for, and never cached as a result.
    session.access_token().await.unwrap();
    let counters = sandbox.counters(Service::S7risk);
    assert_eq!((counters.faults, counters.logins), (1, 1));
}

#[tokio::test]
async fn a_malformed_body_is_a_decode_error() {
    let (sandbox, clock) = sandboxed::start().await;
    sandbox.fail(
        Service::PasswordSafe,
        Fault::malformed().on(Operation::Login).times(1),
    );
    let session = sandboxed::passwordsafe(&sandbox, &clock).build().unwrap();
    let error = session.access_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Decode);
    assert_eq!(error.status(), Some(200));
    // The OAuth token request met it; the sign-in was never sent.
    let counters = sandbox.counters(Service::PasswordSafe);
    assert_eq!((counters.faults, counters.logins), (1, 0));
    session.access_token().await.unwrap();
    assert_eq!(sandbox.counters(Service::PasswordSafe).logins, 1);
}

#[tokio::test]
async fn after_a_revocation_a_call_through_send_costs_one_login() {
    let (sandbox, clock) = sandboxed::start().await;
    let session = sandboxed::s7risk(&sandbox, &clock).build().unwrap();
    let url = sandbox.resource_url(Service::S7risk);
    let get = || session.send(reqwest::Client::new().get(&url));
    assert_eq!(get().await.unwrap().status(), 200);

    sandbox.fail(Service::S7risk, Fault::revocation());
    let response = get().await.unwrap();
    assert_eq!(response.status(), 200, "renewed once, sent once more");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"service": "s7risk", "subject": demo::S7RISK_EMAIL})
    );
    let counters = sandbox.counters(Service::S7risk);
    assert_eq!((counters.logins, counters.resource_calls), (2, 2));
    assert_eq!(session.request_counts().logins, 2);
}

#[tokio::test]
async fn a_revocation_refuses_the_refresh_token_too_so_the_session_logs_in_once() {
    let (sandbox, clock) = sandboxed::start().await;
    let session = sandboxed::fib(&sandbox, &clock).build().unwrap();
    session.access_token().await.unwrap();
    sandbox.fail(Service::Fib, Fault::revocation());
    let response = session
        .send(reqwest::Client::new().get(sandbox.resource_url(Service::Fib)))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let counters = sandbox.counters(Service::Fib);
    assert_eq!(
        (counters.logins, counters.refreshes, counters.resource_calls),
        (2, 0, 1),
        "the refresh token was refused; one login"
    );
    let sent = session.request_counts();
    assert_eq!((sent.logins, sent.refreshes), (2, 1));
    // Tokens issued after the revocation are good.
    clock.advance(secs(280));
    session.access_token().await.unwrap();
    assert_eq!(sandbox.counters(Service::Fib).refreshes, 1);
}

#[tokio::test]
async fn an_early_renewal_that_fails_keeps_the_still_valid_token_until_it_expires() {
    let (sandbox, clock) = sandboxed::start().await;
    let session = sandboxed::fib(&sandbox, &clock).build().unwrap();
    let token = session.access_token().await.unwrap();
    sandbox.fail(Service::Fib, Fault::outage().on(Operation::Refresh));

    // Due (at 270 s of 300), renewed, refused: the still-valid token is served.
    clock.advance(secs(280));
    let served = session.access_token().await.unwrap();
    assert_eq!(
        served.secret().expose_secret(),
        token.secret().expose_secret()
    );
    assert_eq!(served.expires_in(), secs(20));
    let counters = sandbox.counters(Service::Fib);
    assert_eq!((counters.faults, counters.refreshes), (1, 0));

    // Expired: nothing valid to serve, the refresh's failure is the answer.
    clock.advance(secs(20));
    let error = session.access_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ServiceUnavailable);
    assert_eq!(sandbox.counters(Service::Fib).faults, 2);

    sandbox.clear_faults(Service::Fib);
    let renewed = session.access_token().await.unwrap();
    assert_ne!(
        renewed.secret().expose_secret(),
        token.secret().expose_secret()
    );
    let counters = sandbox.counters(Service::Fib);
    assert_eq!(
        (counters.faults, counters.logins, counters.refreshes),
        (2, 1, 1)
    );
}

#[tokio::test]
async fn a_changed_password_keeps_the_token_and_refuses_the_next_login_once() {
    let (sandbox, clock) = sandboxed::start().await;
    let session = sandboxed::s7risk(&sandbox, &clock).build().unwrap();
    let token = session.access_token().await.unwrap();
    sandbox.fail(
        Service::S7risk,
        Fault::password_changed(demo::S7RISK_EMAIL, "Brand-New-Passw0rd"),
    );
    let served = session.access_token().await.unwrap();
    assert_eq!(
        served.secret().expose_secret(),
        token.secret().expose_secret()
    );

    clock.advance(secs(24 * 3600));
    let error = session.access_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidCredentials);
    assert_eq!(error.message(), Some("Email and password do not match"));
    let again = session.access_token().await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::InvalidCredentials);
    let counters = sandbox.counters(Service::S7risk);
    assert_eq!(
        (counters.logins, counters.failed_logins),
        (1, 1),
        "refused credentials are not sent again"
    );

    let updated = sandboxed::s7risk(&sandbox, &clock)
        .user(demo::S7RISK_EMAIL, "Brand-New-Passw0rd")
        .build()
        .unwrap();
    updated.access_token().await.unwrap();
    assert_eq!(sandbox.counters(Service::S7risk).logins, 2);
}

#[tokio::test]
async fn a_changed_password_or_secret_refuses_the_old_one_at_every_service_that_has_them() {
    let (sandbox, clock) = sandboxed::start().await;
    const NEW: &str = "Changed-Pa55word!";
    sandbox.fail(
        Service::S7risk,
        Fault::password_changed(demo::S7RISK_CLIENT_ID, NEW),
    );
    sandbox.fail(
        Service::Weavr,
        Fault::password_changed(demo::WEAVR_EMAIL, NEW),
    );
    sandbox.fail(
        Service::Accounts,
        Fault::password_changed(demo::ACCOUNTS_USERNAME, NEW),
    );
    sandbox.fail(
        Service::PasswordSafe,
        Fault::password_changed(demo::PASSWORDSAFE_CLIENT_ID, NEW),
    );
    sandbox.fail(
        Service::PasswordSafe,
        Fault::password_changed(demo::PASSWORDSAFE_RUNAS, NEW),
    );
    let s7risk = |secret: &str| {
        sandboxed::s7risk(&sandbox, &clock)
            .application(demo::S7RISK_CLIENT_ID, secret)
            .build()
            .unwrap()
    };
    let ps_auth = |pwd: &str| {
        tokensmith::passwordsafe::Session::builder()
            .base_url(sandbox.base_url(Service::PasswordSafe))
            .ps_auth(
                demo::PASSWORDSAFE_API_KEY,
                demo::PASSWORDSAFE_RUNAS,
                Some(pwd.into()),
            )
            .build()
            .unwrap()
    };
    let cases: Vec<(Service, tokensmith::AnySession, tokensmith::AnySession)> = vec![
        (
            Service::S7risk,
            s7risk(demo::S7RISK_SECRET).into(),
            s7risk(NEW).into(),
        ),
        (
            Service::Weavr,
            sandboxed::weavr(&sandbox, &clock).build().unwrap().into(),
            sandboxed::weavr(&sandbox, &clock)
                .password(NEW)
                .build()
                .unwrap()
                .into(),
        ),
        (
            Service::Accounts,
            sandboxed::accounts(&sandbox, &clock)
                .build()
                .unwrap()
                .into(),
            sandboxed::accounts(&sandbox, &clock)
                .password(NEW)
                .build()
                .unwrap()
                .into(),
        ),
        (
            Service::PasswordSafe,
            sandboxed::passwordsafe(&sandbox, &clock)
                .build()
                .unwrap()
                .into(),
            sandboxed::passwordsafe(&sandbox, &clock)
                .oauth(demo::PASSWORDSAFE_CLIENT_ID, NEW)
                .build()
                .unwrap()
                .into(),
        ),
        (
            Service::PasswordSafe,
            ps_auth(demo::PASSWORDSAFE_PASSWORD).into(),
            ps_auth(NEW).into(),
        ),
    ];
    for (service, old, new) in cases {
        let error = old.access_token().await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidCredentials, "{service}");
        new.access_token()
            .await
            .unwrap_or_else(|e| panic!("{service}: {e}"));
    }
    let logins: Vec<u64> = SERVICES.map(|s| sandbox.counters(s).logins).to_vec();
    assert_eq!(logins, [1, 1, 1, 2, 0]);
}

#[tokio::test]
async fn an_expired_password_is_weavr_s_409_with_its_temporary_token() {
    let (sandbox, clock) = sandboxed::start().await;
    sandbox.fail(Service::Weavr, Fault::password_expired(demo::WEAVR_EMAIL));
    let session = sandboxed::weavr(&sandbox, &clock).build().unwrap();
    let error = session.access_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PasswordExpired);
    assert_eq!(error.status(), Some(409));
    let temporary = error.temporary_token().expect("the 409's token").clone();
    // The challenge is answered with the same error while it lasts: no second login.
    let again = session.access_token().await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::PasswordExpired);
    assert_eq!(sandbox.counters(Service::Weavr).failed_logins, 1);

    session
        .change_password(&temporary, demo::WEAVR_PASSWORD, "Renewed-Pa55word!")
        .await
        .unwrap();
    session.access_token().await.unwrap();
    let fresh = sandboxed::weavr(&sandbox, &clock)
        .password("Renewed-Pa55word!")
        .build()
        .unwrap();
    fresh.access_token().await.unwrap();
    let counters = sandbox.counters(Service::Weavr);
    assert_eq!((counters.logins, counters.failed_logins), (2, 1));
}

#[tokio::test]
async fn an_expired_password_is_the_new_password_challenge_at_accounts() {
    let (sandbox, clock) = sandboxed::start().await;
    sandbox.fail(
        Service::Accounts,
        Fault::password_expired(demo::ACCOUNTS_USERNAME),
    );
    let session = sandboxed::accounts(&sandbox, &clock).build().unwrap();
    let error = session.access_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NewPasswordRequired);
    let challenge = error.challenge_session().expect("the challenge's session");
    session
        .complete_new_password(challenge, "Chosen-Passw0rd")
        .await
        .unwrap();
    session.access_token().await.unwrap();
    assert_eq!(sandbox.counters(Service::Accounts).logins, 1);
}

#[tokio::test]
async fn faults_meet_only_their_operations_and_clearing_ends_them() {
    let (sandbox, clock) = sandboxed::start().await;
    sandbox.fail(Service::Fib, Fault::outage().on(Operation::Resource));
    let session = sandboxed::fib(&sandbox, &clock).build().unwrap();
    let url = sandbox.resource_url(Service::Fib);
    let response = session
        .send(reqwest::Client::new().get(&url))
        .await
        .unwrap();
    assert_eq!(response.status(), 503, "send() gives back the answer");
    let counters = sandbox.counters(Service::Fib);
    assert_eq!(
        (counters.faults, counters.logins),
        (1, 1),
        "the login went through"
    );
    sandbox.clear_faults(Service::Fib);
    let response = session
        .send(reqwest::Client::new().get(&url))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Other services are untouched by a fault of one.
    sandbox.fail(Service::Weavr, Fault::outage());
    sandboxed::accounts(&sandbox, &clock)
        .build()
        .unwrap()
        .access_token()
        .await
        .unwrap();
    assert_eq!(sandbox.counters(Service::Accounts).faults, 0);
}

#[tokio::test]
#[should_panic(expected = "fib documents no lock-out answer: the sandbox has none")]
async fn a_lockout_where_none_is_documented_is_refused() {
    let (sandbox, _) = sandboxed::start().await;
    sandbox.fail(Service::Fib, Fault::lockout());
}

#[tokio::test]
#[should_panic(expected = "s7risk has no password expiry in the sandbox")]
async fn a_password_expiry_where_none_is_documented_is_refused() {
    let (sandbox, _) = sandboxed::start().await;
    sandbox.fail(Service::S7risk, Fault::password_expired(demo::S7RISK_EMAIL));
}

#[tokio::test]
#[should_panic(expected = "fib has no password change in the sandbox")]
async fn a_password_change_for_a_service_without_passwords_is_refused() {
    let (sandbox, _) = sandboxed::start().await;
    sandbox.fail(Service::Fib, Fault::password_changed(demo::FIB_EMAIL, "x"));
}

#[tokio::test]
#[should_panic(expected = "the weavr stand-in has no account \"nobody@weavr.example\"")]
async fn a_password_event_for_an_unknown_account_is_refused() {
    let (sandbox, _) = sandboxed::start().await;
    sandbox.fail(
        Service::Weavr,
        Fault::password_changed("nobody@weavr.example", "x"),
    );
}

#[test]
#[should_panic(expected = "a revocation happens once, at once: `times` does not apply to it")]
fn an_event_takes_no_count() {
    let _ = Fault::revocation().times(2);
}

#[test]
#[should_panic(expected = "a slow answer states no wait")]
fn a_fault_that_states_no_wait_takes_no_retry_after() {
    let _ = Fault::slow(secs(1)).retry_after(secs(1));
}

#[test]
#[should_panic(expected = "a lock-out answers logins only, not Refresh")]
fn a_lockout_answers_logins_only() {
    let _ = Fault::lockout().on(Operation::Refresh);
}

#[test]
fn a_fault_s_debug_shows_no_new_password() {
    let fault = Fault::password_changed(demo::WEAVR_EMAIL, "Secret-Pa55word");
    let printed = format!("{fault:?}");
    assert!(!printed.contains("Secret-Pa55word"), "{printed}");
    assert!(printed.contains("[redacted]"), "{printed}");
}

/// A fault given to weavr's exchange, step-up or logout meets that operation and no other: the
/// call that needs it fails as the session documents (a login whose exchange failed is a
/// transient error and backs off; a step-up that failed hands the 403 back; a failed logout is
/// the error, and the session is ended locally all the same), and the next one, the fault
/// spent, goes through.
#[tokio::test]
async fn faults_on_weavr_s_exchange_step_up_and_logout_meet_those_operations_alone() {
    let (sandbox, clock) = sandboxed::start().await;
    let session = sandboxed::weavr(&sandbox, &clock)
        .step_up(tokensmith::weavr::StepUpMethod::Sms, |_| async {
            tokensmith::weavr::Answer::Code(demo::WEAVR_OTP.into())
        })
        .build()
        .unwrap();
    // (logins, exchanges, challenges, verifications, logouts, faults)
    let counts = || {
        let c = sandbox.counters(Service::Weavr);
        (
            c.logins,
            c.exchanges,
            c.challenges,
            c.verifications,
            c.logouts,
            c.faults,
        )
    };
    let outage_once = |operation| {
        sandbox.fail(Service::Weavr, Fault::outage().on(operation).times(1));
    };
    let unavailable = |error: tokensmith::Error| {
        assert_eq!(error.kind(), ErrorKind::ServiceUnavailable);
        assert_eq!(error.status(), Some(503));
        error
    };

    // The sign-in goes through; its exchange for the identity's token does not.
    outage_once(Operation::Exchange);
    assert!(unavailable(session.access_token().await.unwrap_err()).is_transient());
    assert_eq!(counts(), (1, 0, 0, 0, 0, 1));
    // Held back for the backoff (at most a second), then a new sign-in and its exchange.
    clock.advance(Duration::from_secs(1));
    session.access_token().await.unwrap();
    assert_eq!(counts(), (2, 1, 0, 0, 0, 1));

    // The resource asks for a step-up, whose challenge fails: the 403 comes back as it was.
    outage_once(Operation::StepUp);
    let url = sandbox.resource_url(Service::Weavr);
    let resource = || session.send(reqwest::Client::new().get(&url));
    let answer = resource().await.unwrap();
    assert_eq!(answer.status(), 403);
    assert_eq!(
        answer.json::<serde_json::Value>().await.unwrap(),
        json!({"errorCode": "STEP_UP_REQUIRED"})
    );
    assert_eq!(counts(), (2, 1, 0, 0, 0, 2));
    assert_eq!(resource().await.unwrap().status(), 200);
    assert_eq!(counts(), (2, 1, 1, 1, 0, 2));

    // The logout fails at the service; the session is ended here all the same.
    outage_once(Operation::Logout);
    unavailable(session.logout().await.unwrap_err());
    assert_eq!(counts(), (2, 1, 1, 1, 0, 3));
    session.access_token().await.unwrap();
    assert_eq!(counts(), (3, 2, 1, 1, 0, 3), "a new sign-in");
    session.logout().await.unwrap();
    assert_eq!(counts(), (3, 2, 1, 1, 1, 3));
}
