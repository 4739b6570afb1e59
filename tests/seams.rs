//! Promises that hold where a second path meets the same session: credentials only for the
//! session's own hosts on every path, an `api()` error that keeps the login's meaning, errors
//! that never quote a URL's secrets, and a token that cannot be a header never kept.
#![cfg(all(feature = "weavr", feature = "s7risk", feature = "middleware"))]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::services::WEAVR_API_KEY;
use common::test_clock;
use serde_json::json;
use tokensmith::middleware::AuthMiddleware;
use tokensmith::{ErrorKind, Service};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// weavr's login answer with `tok-1`, `tok-2`, … as successive tokens.
#[derive(Clone, Default)]
struct Logins(Arc<AtomicUsize>);

impl Respond for Logins {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(200)
            .set_body_json(json!({"token": format!("tok-{n}"), "tokenType": "ACCESS"}))
    }
}

async fn weavr_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/login_with_password"))
        .respond_with(Logins::default())
        .mount(&server)
        .await;
    server
}

fn weavr_builder(server: &MockServer) -> tokensmith::weavr::SessionBuilder {
    tokensmith::weavr::Session::builder()
        .base_url(server.uri())
        .api_key(WEAVR_API_KEY)
        .email("user@example.com")
        .password("Pa$$w0rd")
        .clock(test_clock())
}

/// The paths a server was asked for, in order.
async fn paths(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_owned())
        .collect()
}

#[tokio::test]
async fn send_to_another_host_is_refused_before_anything_is_sent() {
    let weavr = weavr_server().await;
    // A pagination link to another server, which would answer 401 to whatever it was sent.
    let elsewhere = MockServer::start().await;
    Mock::given(path("/page/2"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&elsewhere)
        .await;
    let session = weavr_builder(&weavr).build().unwrap();
    let link = format!("{}/page/2", elsewhere.uri());
    for _ in 0..3 {
        let error = session
            .send(reqwest::Client::new().get(&link))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Configuration);
        assert_eq!(error.service(), Some(Service::Weavr));
        let port = elsewhere.address().port();
        assert_eq!(
            error.message().unwrap(),
            format!(
                "the request goes to host 127.0.0.1, which is not among the hosts this \
                 session's credentials are for (127.0.0.1:{}): name it with \
                 credential_hosts(…) on the builder",
                weavr.address().port()
            ),
            "port {port} is another origin"
        );
        let error = session
            .authorize(reqwest::Client::new().get(&link))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Configuration);
    }
    assert_eq!(
        paths(&elsewhere).await,
        Vec::<String>::new(),
        "nothing sent"
    );
    assert_eq!(paths(&weavr).await, Vec::<String>::new(), "no login");
    assert_eq!(session.request_counts().logins, 0);

    // Named on the builder, the other host gets the credentials.
    let session = weavr_builder(&weavr)
        .credential_hosts([format!("127.0.0.1:{}", elsewhere.address().port())])
        .build()
        .unwrap();
    let request = session
        .authorize(reqwest::Client::new().get(&link))
        .await
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(request.headers()["authorization"], "Bearer tok-1");
    assert_eq!(request.headers()["api-key"], WEAVR_API_KEY);
}

#[tokio::test]
async fn the_readme_middleware_chain_never_follows_a_redirect_with_the_api_key() {
    let weavr = weavr_server().await;
    let elsewhere = MockServer::start().await;
    Mock::given(path("/things"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", format!("{}/stolen", elsewhere.uri()).as_str()),
        )
        .mount(&weavr)
        .await;
    let session = weavr_builder(&weavr).build().unwrap();
    // As README.md's example builds it: on the session's own client.
    let client = reqwest_middleware::ClientBuilder::new(session.client())
        .with(AuthMiddleware::new(session.clone()))
        .build();
    let response = client
        .get(format!("{}/things", weavr.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        302,
        "the redirect comes back as the answer"
    );
    assert_eq!(paths(&elsewhere).await, Vec::<String>::new());
    assert_eq!(paths(&weavr).await, ["/login_with_password", "/things"]);
}

#[tokio::test]
async fn an_answer_from_a_host_that_got_no_credentials_expires_nothing_and_starts_no_step_up() {
    let weavr = weavr_server().await;
    Mock::given(path("/things"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&weavr)
        .await;
    let elsewhere = MockServer::start().await;
    Mock::given(path("/refused"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&elsewhere)
        .await;
    Mock::given(path("/step-up"))
        .respond_with(
            ResponseTemplate::new(403).set_body_json(json!({"errorCode": "STEP_UP_REQUIRED"})),
        )
        .mount(&elsewhere)
        .await;
    let session = weavr_builder(&weavr).build().unwrap();
    let client = reqwest_middleware::ClientBuilder::new(session.client())
        .with(AuthMiddleware::new(session.clone()))
        .build();
    let things = format!("{}/things", weavr.uri());
    client.get(&things).send().await.unwrap();
    for other in ["refused", "step-up", "refused"] {
        let response = client
            .get(format!("{}/{other}", elsewhere.uri()))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error());
    }
    client.get(&things).send().await.unwrap();
    let seen = elsewhere.received_requests().await.unwrap();
    assert_eq!(seen.len(), 3, "each sent once: no renewal, no resend");
    for request in &seen {
        assert!(request.headers.get("authorization").is_none());
        assert!(request.headers.get("api-key").is_none());
    }
    assert_eq!(
        paths(&weavr).await,
        ["/login_with_password", "/things", "/things"],
        "one login, no step-up challenge"
    );
    let last = weavr.received_requests().await.unwrap().pop().unwrap();
    assert_eq!(last.headers["authorization"], "Bearer tok-1");
}

#[tokio::test]
async fn danger_accept_plain_http_is_the_middleware_s_rule_too() {
    let weavr = weavr_server().await;
    let data = MockServer::start().await;
    Mock::given(path("/things"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&data)
        .await;
    // `api.test` is not loopback by name; the client resolves it to the test server.
    let resolving = reqwest::Client::builder()
        .resolve("api.test", *data.address())
        .build()
        .unwrap();
    let url = format!("http://api.test:{}/things", data.address().port());
    for allowed in [false, true] {
        let session = weavr_builder(&weavr)
            .credential_hosts(["api.test"])
            .danger_accept_plain_http(allowed)
            .build()
            .unwrap();
        let client = reqwest_middleware::ClientBuilder::new(resolving.clone())
            .with(AuthMiddleware::new(session.clone()))
            .build();
        let outcome = client.get(&url).send().await;
        if allowed {
            assert_eq!(outcome.unwrap().status(), 200);
        } else {
            let reqwest_middleware::Error::Middleware(error) = outcome.unwrap_err() else {
                panic!("expected the middleware's refusal")
            };
            let error = error.downcast::<tokensmith::Error>().unwrap();
            assert_eq!(error.kind(), ErrorKind::Configuration);
        }
    }
    let seen = data.received_requests().await.unwrap();
    assert_eq!(seen.len(), 1, "only the allowed session's request went out");
    assert_eq!(seen[0].headers["authorization"], "Bearer tok-1");
    assert_eq!(seen[0].headers["api-key"], WEAVR_API_KEY);
}

#[tokio::test]
async fn an_api_call_whose_login_was_refused_fails_as_the_login_did() {
    let weavr = MockServer::start().await;
    Mock::given(path("/login_with_password"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"errorCode": "INVALID_CREDENTIALS"})),
        )
        .expect(1)
        .mount(&weavr)
        .await;
    let session = weavr_builder(&weavr).build().unwrap();
    let by_token = session.access_token().await.unwrap_err();
    for _ in 0..2 {
        let error: tokensmith::Error = session
            .api()
            .list_identities(None, None)
            .await
            .unwrap_err()
            .into();
        assert_eq!(error.kind(), ErrorKind::InvalidCredentials);
        assert!(!error.is_transient());
        assert_eq!(error.status(), Some(401));
        assert_eq!(error.service(), Some(Service::Weavr));
        assert_eq!(error.to_string(), by_token.to_string());
    }
    assert_eq!(paths(&weavr).await, ["/login_with_password"], "sent once");
}

#[tokio::test]
async fn configuration_errors_never_quote_a_url_s_user_password_query_or_fragment() {
    let origins = [
        "https://analyst:hunter2@api.example.com",
        "https://api.example.com/?k=hunter2",
    ];
    for origin in origins {
        let error = tokensmith::s7risk::Session::builder()
            .origin(origin)
            .user("a@example.com", "pw")
            .build()
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Configuration);
        let shown = format!("{error} {error:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("analyst"),
            "{shown}"
        );
    }
    let base_urls = [
        "https://analyst:hunter2@auth.example.com",
        "https://auth.example.com/?api_key=hunter2",
        "https://auth.example.com/#hunter2",
        "http://auth.example.com/?api_key=hunter2",
    ];
    for base_url in base_urls {
        let error = tokensmith::s7risk::Session::builder()
            .base_url(base_url)
            .origin("https://api.example.com")
            .user("a@example.com", "pw")
            .build()
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Configuration);
        let shown = format!("{error} {error:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("analyst"),
            "{shown}"
        );
    }
}

#[tokio::test]
async fn a_token_that_cannot_be_a_header_is_a_decode_error_at_login_and_never_kept() {
    let server = MockServer::start().await;
    let logins = Arc::new(AtomicUsize::new(0));
    let counter = logins.clone();
    Mock::given(path("/user/token"))
        .respond_with(move |_: &Request| {
            // The first answer's token holds a line break: it could only go out as something
            // else.
            let token = match counter.fetch_add(1, Ordering::SeqCst) {
                0 => "eyJhbGciOiJub25lIn0.e30.\nX-Injected: 1",
                _ => "eyJhbGciOiJub25lIn0.e30.sig",
            };
            ResponseTemplate::new(200)
                .set_body_json(json!({"status": "success", "data": {"accessToken": token}}))
        })
        .mount(&server)
        .await;
    let session = tokensmith::s7risk::Session::builder()
        .base_url(server.uri())
        .origin("https://app.example.com")
        .user("a@example.com", "pw")
        .clock(test_clock())
        .build()
        .unwrap();
    let error = session.access_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Decode);
    assert_eq!(
        error.message(),
        Some("the service issued a token that cannot be sent in an HTTP header")
    );
    assert!(!error.to_string().contains("X-Injected"));
    let token = session.access_token().await.unwrap();
    assert_eq!(
        token.secret().expose_secret(),
        "eyJhbGciOiJub25lIn0.e30.sig"
    );
    assert_eq!(
        logins.load(Ordering::SeqCst),
        2,
        "the malformed token was not kept"
    );
}

/// Intelligence Fusion documents `api.intelligencefusion.co.uk` as the host of its other APIs
/// (`src/s7risk.rs` cites the page): a session whose base URL is on the vendor's own auth
/// host sends its credentials there; a session on any other auth host does not. The client
/// resolves the vendor's names to the test servers, and plain HTTP is allowed so that no TLS
/// is needed; neither changes the host rule.
#[tokio::test]
async fn the_vendor_s_documented_api_host_is_in_scope_only_on_the_vendor_s_own_auth_host() {
    let auth = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/user/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"status": "success", "data": {"accessToken": "s7-tok"}})),
        )
        .mount(&auth)
        .await;
    let api = MockServer::start().await;
    Mock::given(path("/v1/events"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&api)
        .await;
    let session_on = |auth_host: &str| {
        let client = reqwest::Client::builder()
            .resolve(auth_host, *auth.address())
            .resolve("api.intelligencefusion.co.uk", *api.address());
        tokensmith::s7risk::Session::builder()
            .base_url(format!("http://{auth_host}:{}", auth.address().port()))
            .danger_accept_plain_http(true)
            .http_client(client)
            .origin("https://app.example.com")
            .user("analyst@example.com", "pw")
            .clock(test_clock())
            .build()
            .unwrap()
    };
    let events = format!(
        "http://api.intelligencefusion.co.uk:{}/v1/events",
        api.address().port()
    );

    let elsewhere = session_on("auth.s7risk.example");
    let error = elsewhere
        .send(reqwest::Client::new().get(&events))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Configuration);
    assert_eq!(elsewhere.request_counts().logins, 0);

    let vendors = session_on("auth.s7risk.com");
    let answer = vendors
        .send(reqwest::Client::new().get(&events))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let seen = api.received_requests().await.unwrap();
    assert_eq!(seen.len(), 1, "only the vendor's session sent");
    assert_eq!(seen[0].headers["authorization"], "Bearer s7-tok");
    assert_eq!(seen[0].headers["origin"], "https://app.example.com");
    assert_eq!(
        paths(&auth).await,
        ["/user/token"],
        "one login, by the vendor's session"
    );
}

#[test]
fn a_credential_host_that_is_not_a_host_fails_the_build_without_quoting_a_secret() {
    let build = |entries: &[&str]| {
        tokensmith::s7risk::Session::builder()
            .origin("https://app.example.com")
            .user("analyst@example.com", "pw")
            .credential_hosts(entries.iter().copied())
            .build()
            .map(|_| ())
            .unwrap_err()
    };
    let error = build(&["api.example.com", "api.example.com/v1"]);
    assert_eq!(error.kind(), ErrorKind::Configuration);
    assert_eq!(error.service(), Some(Service::S7risk));
    assert_eq!(
        error.message().unwrap(),
        "credential_hosts: \"api.example.com/v1\" is not a host (a name, an address, either \
         with a port, or *.domain)"
    );
    for secret in [
        "analyst:hunter2@api.example.com",
        "api.example.com?key=hunter2",
        "api.example.com#hunter2",
    ] {
        let error = build(&["*.example.com", secret]);
        assert_eq!(
            error.message().unwrap(),
            "credential_hosts: entry 2 (a URL with a user, a query or a fragment) is not a host \
             (a name, an address, either with a port, or *.domain)"
        );
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
