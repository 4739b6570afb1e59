//! The fib session: a signed login, 5-minute access tokens renewed by PATCH with the refresh
//! token, a new login when the refresh token is refused or spent, and typed errors.
#![cfg(feature = "fib")]

mod common;

use std::time::Duration;

use common::{
    assert_request, count_requests, jwt, single_request, test_clock, Body, Expected, START_EPOCH,
};
use serde_json::json;
use tokensmith::clock::ManualClock;
use tokensmith::fib::{Digest, Session};
use tokensmith::{ErrorKind, RefreshPolicy, Service, TokenOrigin};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SESSION: &str = "/auth/api/v1/authentication-management/session";
const EMAIL: &str = "alice@wonderland.space";
const PRIVATE: &str = "413b285d1819a6166b0daa762bb6bef2d082cffb9a13ce041cb0fda5e2f06dc3";
const PUBLIC: &str = "7fbedb314a9b0c00caef967ac5cabb982ec45da828a0c58a9aafc854f32422ac";
const SIGNATURE: &str = "57e7115dfb9faa9add2d2ceb321c20db8c1e7f468d2ffc122793fa61e8ed61581580faaeae83a07fe857894bb33defd61c4ba099b981020146fe8d2be00e630a";

fn session(server: &MockServer, clock: &ManualClock) -> Session {
    Session::builder()
        .base_url(server.uri())
        .email(EMAIL)
        .private_key(PRIVATE)
        .clock(clock.clone())
        .refresh_policy(RefreshPolicy::new().with_jitter(false))
        .build()
        .unwrap()
}

/// Tokens issued at `at` (seconds after the start): access for 300 s, refresh for 24 h.
fn tokens(tag: &str, at: u64, expiration_time: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "status": {"code": 200, "name": "OK", "message": "User authorization has been successful."},
        "data": {
            "accessToken": jwt(START_EPOCH + at + 300, &format!("access-{tag}")),
            "refreshToken": jwt(START_EPOCH + at + 86_400, &format!("refresh-{tag}")),
            "expirationTime": expiration_time,
        }
    }))
}

async fn mount_login(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(SESSION))
        .and(body_json(
            json!({"email": EMAIL, "signature": SIGNATURE, "authPublicKeyHex": PUBLIC}),
        ))
        .respond_with(response)
        .mount(server)
        .await;
}

async fn mount_refresh(server: &MockServer, refresh_token: &str, response: ResponseTemplate) {
    Mock::given(method("PATCH"))
        .and(path(SESSION))
        .and(header(
            "authorization",
            format!("Bearer {refresh_token}").as_str(),
        ))
        .respond_with(response)
        .mount(server)
        .await;
}

fn access(tag: &str, at: u64) -> String {
    jwt(START_EPOCH + at + 300, &format!("access-{tag}"))
}

fn refresh(tag: &str, at: u64) -> String {
    jwt(START_EPOCH + at + 86_400, &format!("refresh-{tag}"))
}

async fn requests(server: &MockServer, verb: &str) -> Vec<Request> {
    let all = server.received_requests().await.unwrap();
    all.into_iter()
        .filter(|r| r.method.as_str() == verb)
        .collect()
}

#[tokio::test]
async fn login_signs_the_email_and_the_token_is_cached_for_its_lifetime() {
    let server = MockServer::start().await;
    let clock = test_clock();
    mount_login(&server, tokens("1", 0, 300)).await;
    let session = session(&server, &clock);

    let token = session.access_token().await.unwrap();
    assert_eq!(token.secret().expose_secret(), access("1", 0));
    assert_eq!(token.expires_in(), Duration::from_secs(300));
    clock.advance(Duration::from_secs(269));
    session.access_token().await.unwrap();
    let logins = requests(&server, "POST").await;
    assert_eq!(logins.len(), 1);
    assert_eq!(logins[0].headers["content-type"], "application/json");
    assert!(
        logins[0].headers.get("authorization").is_none(),
        "the login takes no token"
    );
}

/// BLAKE2b-256 of this email ends in an even byte (0x82): the two digest rules give different
/// signatures. Both are the values of API-NOTES.md, written out, not produced by our signer.
const BOB: &str = "bob@wonderland.space";
const BOB_PLAIN: &str = "61cb00a8d98b6e0727fe945849649ae909809b87fed826bddad208fd67837af27aefca5d120a92157cd8ccec119aaa9c76735f155e3cac1f5331e972ec475502";
const BOB_IROHA: &str = "c7126087ca5b91fe0466dee18cdcf9a084c03458691a77da84c5d05a869e1285af9082f915e6546f529363035329e6f9ea94c4098e92c633eb095e351ebbc30c";
const REFUSED: &str = "User signature could not be verified.";
const BOTH_REFUSED: &str = "User signature could not be verified. (both digests were tried: the \
                            plain BLAKE2b-256 digest and Iroha's (d[31] |= 1); neither signature \
                            was accepted)";

fn bob(server: &MockServer, clock: &ManualClock, digest: Option<Digest>) -> Session {
    let builder = Session::builder()
        .base_url(server.uri())
        .email(BOB)
        .private_key(PRIVATE)
        .clock(clock.clone())
        .refresh_policy(RefreshPolicy::new().with_jitter(false));
    match digest {
        Some(digest) => builder.digest(digest),
        None => builder,
    }
    .build()
    .unwrap()
}

/// A backend that verifies one digest rule: it accepts `accepted` (bob's signature under that
/// rule) and answers every other login 422. Each login gets tokens tagged with its order.
async fn backend_accepting(server: &MockServer, accepted: &str) {
    for (n, at) in [(1, 0), (2, 86_400), (3, 2 * 86_400)] {
        Mock::given(method("POST"))
            .and(path(SESSION))
            .and(body_json(
                json!({"email": BOB, "signature": accepted, "authPublicKeyHex": PUBLIC}),
            ))
            .respond_with(tokens(&n.to_string(), at, 300))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(server)
            .await;
    }
    Mock::given(method("POST"))
        .and(path(SESSION))
        .respond_with(fib_error(422, "UNPROCESSABLE_ENTITY", REFUSED))
        .with_priority(2)
        .mount(server)
        .await;
}

/// The signatures of the logins the server received, in order; each checked to be exactly
/// the documented request.
async fn sent_signatures(server: &MockServer) -> Vec<String> {
    let mut signatures = Vec::new();
    for request in requests(server, "POST").await {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        let signature = body["signature"].as_str().unwrap().to_owned();
        assert_request(
            &request,
            &Expected {
                method: "POST",
                path: SESSION,
                query: None,
                headers: &[("content-type", "application/json")],
                body: Body::Json(
                    json!({"email": BOB, "signature": signature, "authPublicKeyHex": PUBLIC}),
                ),
            },
        );
        signatures.push(signature);
    }
    signatures
}

#[tokio::test]
async fn a_backend_that_verifies_the_plain_digest_is_answered_in_one_request() {
    let server = MockServer::start().await;
    let clock = test_clock();
    backend_accepting(&server, BOB_PLAIN).await;
    let session = bob(&server, &clock, None);

    let token = session.access_token().await.unwrap();

    assert_eq!(token.secret().expose_secret(), access("1", 0));
    assert_eq!(sent_signatures(&server).await, [BOB_PLAIN]);
}

#[tokio::test]
async fn a_backend_that_verifies_iroha_s_digest_is_answered_by_a_second_signature_then_learned() {
    let server = MockServer::start().await;
    let clock = test_clock();
    backend_accepting(&server, BOB_IROHA).await;
    let session = bob(&server, &clock, None);

    let token = session.access_token().await.unwrap();
    assert_eq!(token.secret().expose_secret(), access("1", 0));
    assert_eq!(token.origin(), TokenOrigin::Login);
    assert_eq!(sent_signatures(&server).await, [BOB_PLAIN, BOB_IROHA]);
    assert_eq!(
        session.request_counts().logins,
        1,
        "one login, two requests"
    );

    // The refresh token has expired: a new login, signed the learned way at once.
    clock.advance(Duration::from_secs(86_400));
    let token = session.access_token().await.unwrap();
    assert_eq!(token.secret().expose_secret(), access("2", 86_400));
    assert_eq!(
        sent_signatures(&server).await,
        [BOB_PLAIN, BOB_IROHA, BOB_IROHA]
    );

    // A clone shares what was learned.
    let clone = session.clone();
    clock.advance(Duration::from_secs(86_400));
    let token = clone.access_token().await.unwrap();
    assert_eq!(token.secret().expose_secret(), access("3", 2 * 86_400));
    assert_eq!(
        sent_signatures(&server).await,
        [BOB_PLAIN, BOB_IROHA, BOB_IROHA, BOB_IROHA]
    );
}

#[tokio::test]
async fn a_pinned_rule_is_the_only_one_sent() {
    for (pinned, signature, accepted) in [
        (Digest::Iroha, BOB_IROHA, true),
        (Digest::Plain, BOB_PLAIN, false),
    ] {
        let server = MockServer::start().await;
        let clock = test_clock();
        backend_accepting(&server, BOB_IROHA).await;
        let session = bob(&server, &clock, Some(pinned));

        let result = session.access_token().await;

        assert_eq!(sent_signatures(&server).await, [signature], "{pinned:?}");
        if accepted {
            assert_eq!(result.unwrap().secret().expose_secret(), access("1", 0));
        } else {
            let err = result.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidCredentials);
            assert_eq!(err.status(), Some(422));
            assert_eq!(
                err.message(),
                Some(REFUSED),
                "one rule tried, none other named"
            );
        }
    }
}

#[tokio::test]
async fn when_both_signatures_are_refused_the_error_says_both_digests_were_tried() {
    let server = MockServer::start().await;
    let clock = test_clock();
    Mock::given(method("POST"))
        .and(path(SESSION))
        .respond_with(fib_error(422, "UNPROCESSABLE_ENTITY", REFUSED))
        .mount(&server)
        .await;
    let session = bob(&server, &clock, None);

    let err = session.access_token().await.unwrap_err();

    assert_eq!(err.kind(), ErrorKind::InvalidCredentials);
    assert_eq!(err.status(), Some(422));
    assert_eq!(err.code(), Some("UNPROCESSABLE_ENTITY"));
    assert_eq!(err.message(), Some(BOTH_REFUSED));
    assert_eq!(sent_signatures(&server).await, [BOB_PLAIN, BOB_IROHA]);
    // A refused credential is not sent again.
    clock.advance(Duration::from_secs(600));
    assert_eq!(
        session.access_token().await.unwrap_err().message(),
        Some(BOTH_REFUSED)
    );
    assert_eq!(requests(&server, "POST").await.len(), 2);
}

#[tokio::test]
async fn a_learned_rule_refused_later_falls_back_once_to_the_other() {
    let server = MockServer::start().await;
    let clock = test_clock();
    // First the backend verifies Iroha's digest, then (after a redeploy) the plain one.
    Mock::given(method("POST"))
        .and(path(SESSION))
        .and(body_json(
            json!({"email": BOB, "signature": BOB_IROHA, "authPublicKeyHex": PUBLIC}),
        ))
        .respond_with(tokens("1", 0, 300))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(SESSION))
        .and(body_json(
            json!({"email": BOB, "signature": BOB_PLAIN, "authPublicKeyHex": PUBLIC}),
        ))
        .respond_with(fib_error(422, "UNPROCESSABLE_ENTITY", REFUSED))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    backend_accepting(&server, BOB_PLAIN).await;
    let session = bob(&server, &clock, None);
    session.access_token().await.unwrap();
    assert_eq!(sent_signatures(&server).await, [BOB_PLAIN, BOB_IROHA]);

    clock.advance(Duration::from_secs(86_400));
    session.access_token().await.unwrap();
    assert_eq!(
        sent_signatures(&server).await,
        [BOB_PLAIN, BOB_IROHA, BOB_IROHA, BOB_PLAIN],
        "the learned rule first, the other once"
    );
    clock.advance(Duration::from_secs(86_400));
    session.access_token().await.unwrap();
    assert_eq!(requests(&server, "POST").await.len(), 5);
    assert_eq!(sent_signatures(&server).await[4], BOB_PLAIN);
}

#[tokio::test]
async fn only_a_422_leads_to_the_second_signature() {
    for (status, name) in [
        (400, "BAD_REQUEST"),
        (404, "NOT_FOUND"),
        (500, "INTERNAL_SERVER_ERROR"),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(SESSION))
            .respond_with(fib_error(status, name, "no"))
            .mount(&server)
            .await;
        let err = bob(&server, &test_clock(), None)
            .access_token()
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(status));
        assert_eq!(err.message(), Some("no"));
        let sent = sent_signatures(&server).await;
        assert_eq!(sent[0], BOB_PLAIN, "{status}");
        assert!(
            sent.iter().all(|s| s == BOB_PLAIN),
            "{status}: never signed the other way"
        );
    }
}

#[tokio::test]
async fn a_given_signature_is_sent_as_given_without_fallback() {
    for signature in [BOB_PLAIN, BOB_IROHA] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(SESSION))
            .respond_with(fib_error(422, "UNPROCESSABLE_ENTITY", REFUSED))
            .mount(&server)
            .await;
        let session = Session::builder()
            .base_url(server.uri())
            .email(BOB)
            .signature(signature, PUBLIC)
            .clock(test_clock())
            .build()
            .expect("a signature under either rule is accepted");

        let err = session.access_token().await.unwrap_err();

        assert_eq!(err.message(), Some(REFUSED));
        assert_eq!(sent_signatures(&server).await, [signature]);
    }
}

#[test]
fn a_given_signature_must_verify_under_the_pinned_rule() {
    let build = |signature: &str, digest: Digest| {
        Session::builder()
            .email(BOB)
            .signature(signature, PUBLIC)
            .digest(digest)
            .build()
    };
    assert!(build(BOB_PLAIN, Digest::Plain).is_ok());
    assert!(build(BOB_IROHA, Digest::Iroha).is_ok());
    for (signature, digest) in [(BOB_PLAIN, Digest::Iroha), (BOB_IROHA, Digest::Plain)] {
        let err = build(signature, digest).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Configuration, "{digest:?}");
    }
}

#[tokio::test]
async fn past_the_margin_it_refreshes_by_patch_with_the_refresh_token() {
    let server = MockServer::start().await;
    let clock = test_clock();
    mount_login(&server, tokens("1", 0, 300)).await;
    mount_refresh(&server, &refresh("1", 0), tokens("2", 270, 300)).await;
    let session = session(&server, &clock);
    session.access_token().await.unwrap();

    clock.advance(Duration::from_secs(270)); // 30 s margin: 10 % of 300 s
    let renewed = session.access_token().await.unwrap();
    assert_eq!(renewed.secret().expose_secret(), access("2", 270));
    assert_eq!(renewed.origin(), TokenOrigin::Refresh);
    let patches = requests(&server, "PATCH").await;
    assert_eq!(patches.len(), 1);
    assert!(patches[0].body.is_empty(), "the refresh has no body");
    assert!(patches[0].headers.get("content-type").is_none());
    assert_eq!(session.request_counts().refreshes, 1);
}

#[tokio::test]
async fn a_refused_refresh_token_leads_to_a_new_signed_login() {
    let server = MockServer::start().await;
    let clock = test_clock();
    Mock::given(method("POST"))
        .and(path(SESSION))
        .respond_with(tokens("1", 0, 300))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_login(&server, tokens("3", 300, 300)).await;
    mount_refresh(
        &server,
        &refresh("1", 0),
        ResponseTemplate::new(401)
            .set_body_json(json!({"status": {"code": 401, "name": "UNAUTHORIZED", "message": "Invalid refresh token."}})),
    )
    .await;
    let session = session(&server, &clock);
    session.access_token().await.unwrap();
    clock.advance(Duration::from_secs(300));
    let token = session.access_token().await.unwrap();
    assert_eq!(token.secret().expose_secret(), access("3", 300));
    assert_eq!(token.origin(), TokenOrigin::Login);
    assert_eq!(requests(&server, "POST").await.len(), 2);
    assert_eq!(requests(&server, "PATCH").await.len(), 1);
}

#[tokio::test]
async fn an_expired_refresh_token_is_not_sent() {
    let server = MockServer::start().await;
    let clock = test_clock();
    mount_login(&server, tokens("1", 0, 300)).await;
    let session = session(&server, &clock);
    session.access_token().await.unwrap();
    clock.advance(Duration::from_secs(86_400));
    session.access_token().await.unwrap();
    assert_eq!(requests(&server, "PATCH").await.len(), 0);
    assert_eq!(requests(&server, "POST").await.len(), 2);
}

#[tokio::test]
async fn an_epoch_expiration_time_is_read_as_a_time() {
    let server = MockServer::start().await;
    let clock = test_clock();
    mount_login(&server, tokens("1", 0, START_EPOCH + 240)).await;
    let token = session(&server, &clock).access_token().await.unwrap();
    assert_eq!(token.expires_in(), Duration::from_secs(240));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_callers_at_expiry_share_one_refresh() {
    let server = MockServer::start().await;
    let clock = test_clock();
    mount_login(&server, tokens("1", 0, 300)).await;
    mount_refresh(
        &server,
        &refresh("1", 0),
        tokens("2", 300, 300).set_delay(Duration::from_millis(50)),
    )
    .await;
    let session = session(&server, &clock);
    session.access_token().await.unwrap();
    clock.advance(Duration::from_secs(300));

    let shared = common::assert_all_callers_share_one_token(&session, 1000).await;
    assert_eq!(shared, access("2", 300));
    assert_eq!(
        count_requests(&server, SESSION).await,
        2,
        "one login, one refresh"
    );
}

#[tokio::test]
async fn a_cancelled_waiter_does_not_stall_the_others() {
    let server = MockServer::start().await;
    let clock = test_clock();
    mount_login(
        &server,
        tokens("1", 0, 300).set_delay(Duration::from_millis(200)),
    )
    .await;
    let session = session(&server, &clock);
    let token = common::assert_cancelled_waiter_does_not_stall(&session).await;
    assert_eq!(token, access("1", 0));
    assert!(
        count_requests(&server, SESSION).await <= 2,
        "the aborted login is taken over once"
    );
}

fn fib_error(status: u16, name: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({"status": {"code": status, "name": name, "message": message}}))
}

#[tokio::test]
async fn every_documented_login_error_maps_to_its_kind() {
    for (status, name, message, kind) in [
        (
            400,
            "BAD_REQUEST",
            "Request is malformed.",
            ErrorKind::InvalidRequest,
        ),
        (
            404,
            "NOT_FOUND",
            "User has not been found.",
            ErrorKind::NotFound,
        ),
        (
            422,
            "UNPROCESSABLE_ENTITY",
            "Signature is invalid.",
            ErrorKind::InvalidCredentials,
        ),
        (
            500,
            "INTERNAL_SERVER_ERROR",
            "Unexpected error.",
            ErrorKind::ServerError,
        ),
    ] {
        let server = MockServer::start().await;
        mount_login(&server, fib_error(status, name, message)).await;
        let err = session(&server, &test_clock())
            .access_token()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind, "{status}");
        assert_eq!(err.status(), Some(status));
        assert_eq!(err.message(), Some(message));
        assert_eq!(err.code(), Some(name));
        assert_eq!(err.service(), Some(Service::Fib));
    }
}

#[tokio::test]
async fn refresh_errors_map_to_their_kinds_once_the_token_has_expired() {
    // 400 and 422 refuse the refresh token itself: a new login follows (below).
    for (status, name, kind) in [
        (404, "NOT_FOUND", ErrorKind::NotFound),
        (500, "INTERNAL_SERVER_ERROR", ErrorKind::ServerError),
    ] {
        let server = MockServer::start().await;
        let clock = test_clock();
        mount_login(&server, tokens("1", 0, 300)).await;
        mount_refresh(
            &server,
            &refresh("1", 0),
            fib_error(status, name, "refresh failed"),
        )
        .await;
        let session = session(&server, &clock);
        session.access_token().await.unwrap();
        clock.advance(Duration::from_secs(280));
        assert_eq!(
            session
                .access_token()
                .await
                .unwrap()
                .secret()
                .expose_secret(),
            access("1", 0),
            "a failed early refresh keeps serving the valid token"
        );
        clock.advance(Duration::from_secs(20));
        let err = session.access_token().await.unwrap_err();
        assert_eq!((err.kind(), err.status()), (kind, Some(status)), "{status}");
    }
}

#[tokio::test]
async fn a_400_or_422_on_refresh_leads_to_a_new_signed_login() {
    for (status, name) in [(400, "BAD_REQUEST"), (422, "UNPROCESSABLE_ENTITY")] {
        let server = MockServer::start().await;
        let clock = test_clock();
        Mock::given(method("POST"))
            .and(path(SESSION))
            .respond_with(tokens("1", 0, 300))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        mount_login(&server, tokens("3", 270, 300)).await;
        mount_refresh(
            &server,
            &refresh("1", 0),
            fib_error(status, name, "Unprocessable content."),
        )
        .await;
        let session = session(&server, &clock);
        session.access_token().await.unwrap();

        clock.advance(Duration::from_secs(270));
        let token = session.access_token().await.unwrap();

        assert_eq!(token.secret().expose_secret(), access("3", 270), "{status}");
        assert_eq!(token.origin(), TokenOrigin::Login, "{status}");
        let requests = server.received_requests().await.unwrap();
        let verbs: Vec<_> = requests.iter().map(|r| r.method.as_str()).collect();
        assert_eq!(
            verbs,
            ["POST", "PATCH", "POST"],
            "{status}: one PATCH, then a login"
        );
        let bearer = format!("Bearer {}", refresh("1", 0));
        assert_request(
            &requests[1],
            &Expected {
                method: "PATCH",
                path: SESSION,
                query: None,
                headers: &[("authorization", bearer.as_str())],
                body: Body::None,
            },
        );
        assert_request(
            &requests[2],
            &Expected {
                method: "POST",
                path: SESSION,
                query: None,
                headers: &[("content-type", "application/json")],
                body: Body::Json(
                    json!({"email": EMAIL, "signature": SIGNATURE, "authPublicKeyHex": PUBLIC}),
                ),
            },
        );
        // The new login's refresh token is the one used next.
        mount_refresh(&server, &refresh("3", 270), tokens("4", 540, 300)).await;
        clock.advance(Duration::from_secs(270));
        let token = session.access_token().await.unwrap();
        assert_eq!(token.secret().expose_secret(), access("4", 540), "{status}");
        assert_eq!(token.origin(), TokenOrigin::Refresh, "{status}");
    }
}

/// alice's digest ends in an odd byte: both rules sign the same digest, so there is nothing
/// else to try.
#[tokio::test]
async fn a_refused_signature_is_sent_once() {
    let server = MockServer::start().await;
    let clock = test_clock();
    mount_login(
        &server,
        fib_error(422, "UNPROCESSABLE_ENTITY", "Signature is invalid."),
    )
    .await;
    let session = session(&server, &clock);
    for _ in 0..3 {
        assert_eq!(
            session.access_token().await.unwrap_err().kind(),
            ErrorKind::InvalidCredentials
        );
        clock.advance(Duration::from_secs(600));
    }
    assert_eq!(count_requests(&server, SESSION).await, 1);
}

#[tokio::test]
async fn a_401_from_an_api_call_renews_once_and_retries_once() {
    let server = MockServer::start().await;
    let clock = test_clock();
    mount_login(&server, tokens("1", 0, 300)).await;
    mount_refresh(&server, &refresh("1", 0), tokens("2", 0, 300)).await;
    let logout = "/auth/api/v1/authentication-management/logout";
    Mock::given(method("POST"))
        .and(path(logout))
        .and(header(
            "authorization",
            format!("Bearer {}", access("1", 0)).as_str(),
        ))
        .respond_with(fib_error(401, "UNAUTHORIZED", "Token expired."))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(logout))
        .and(header(
            "authorization",
            format!("Bearer {}", access("2", 0)).as_str(),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"status": {"code": 200, "name": "OK"}, "data": {}})),
        )
        .mount(&server)
        .await;
    let session = session(&server, &clock);
    let response = session.api().log_out().await.unwrap();
    assert_eq!(response.into_inner().status.name, "OK");
    assert_eq!(count_requests(&server, logout).await, 2);
    assert_eq!(session.request_counts().refreshes, 1);
}

#[test]
fn bad_keys_and_signatures_are_refused_at_build_time() {
    let with_key = |key: &str| Session::builder().email(EMAIL).private_key(key).build();
    for key in [
        "",
        "abc",
        &"zz".repeat(32),
        &"00".repeat(48),
        &format!("{PRIVATE}{}", "11".repeat(32)),
    ] {
        let err = with_key(key).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Configuration, "{key}");
        assert!(
            key.len() < 8 || !err.to_string().contains(key),
            "the key is never echoed"
        );
    }
    assert!(with_key(&format!("{PRIVATE}{PUBLIC}")).is_ok());
    let with_signature = |sig: &str, public: &str| {
        Session::builder()
            .email(EMAIL)
            .signature(sig, public)
            .build()
    };
    assert!(with_signature(SIGNATURE, PUBLIC).is_ok());
    assert!(with_signature(&SIGNATURE[..64], PUBLIC).is_err());
    assert!(with_signature(SIGNATURE, "00").is_err());
    assert!(
        with_signature(&format!("  {}\n", SIGNATURE.to_uppercase()), PUBLIC).is_ok(),
        "whitespace and capitals are accepted"
    );
    // Well-formed signatures that do not verify: another email's, and one checked against
    // another (valid) public key.
    let bob = "c7126087ca5b91fe0466dee18cdcf9a084c03458691a77da84c5d05a869e1285af9082f915e6546f529363035329e6f9ea94c4098e92c633eb095e351ebbc30c";
    let other_public = "d04ab232742bb4ab3a1368bd4615e4e6d0224ab71a016baf8520a332c9778737";
    let mut flipped = SIGNATURE.to_owned();
    flipped.replace_range(..2, "58");
    for (sig, public) in [(bob, PUBLIC), (SIGNATURE, other_public), (&flipped, PUBLIC)] {
        let err = with_signature(sig, public).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Configuration);
        assert_eq!(err.service(), Some(Service::Fib));
        assert_eq!(
            err.message(),
            Some(
                "signature does not verify for this email under this public key (it must sign \
                 exactly this email with the Authorization key pair's private key)"
            )
        );
        assert!(
            !format!("{err} {err:?}").contains(&sig[..16]),
            "never echoed"
        );
    }
    assert!(
        Session::builder().email(EMAIL).build().is_err(),
        "a key or signature is required"
    );
    assert!(
        Session::builder().private_key(PRIVATE).build().is_err(),
        "an email is required"
    );
    let both = Session::builder()
        .email(EMAIL)
        .private_key(PRIVATE)
        .signature(SIGNATURE, PUBLIC);
    assert!(both.build().is_err());
}

#[tokio::test]
async fn a_given_signature_is_sent_trimmed_and_lowercase() {
    let server = MockServer::start().await;
    mount_login(&server, tokens("1", 0, 300)).await;
    let session = Session::builder()
        .base_url(server.uri())
        .email(EMAIL)
        .signature(
            format!(" {}\t", SIGNATURE.to_uppercase()),
            PUBLIC.to_uppercase(),
        )
        .clock(test_clock())
        .build()
        .unwrap();

    let token = session.access_token().await.unwrap();

    assert_eq!(token.secret().expose_secret(), access("1", 0));
    assert_request(
        &single_request(&server).await,
        &Expected {
            method: "POST",
            path: SESSION,
            query: None,
            headers: &[("content-type", "application/json")],
            body: Body::Json(
                json!({"email": EMAIL, "signature": SIGNATURE, "authPublicKeyHex": PUBLIC}),
            ),
        },
    );
}

#[tokio::test]
async fn nothing_prints_a_secret() {
    let server = MockServer::start().await;
    mount_login(&server, tokens("1", 0, 300)).await;
    let session = session(&server, &test_clock());
    let token = session.access_token().await.unwrap();
    let printed = format!("{session:?} {token:?}");
    for secret in [PRIVATE, SIGNATURE, &access("1", 0), &refresh("1", 0)] {
        assert!(!printed.contains(secret), "leaked in {printed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_one_login_of_at_most_two_requests() {
    let server = MockServer::start().await;
    let clock = test_clock();
    Mock::given(method("POST"))
        .and(path(SESSION))
        .and(body_json(
            json!({"email": BOB, "signature": BOB_IROHA, "authPublicKeyHex": PUBLIC}),
        ))
        .respond_with(tokens("1", 0, 300).set_delay(Duration::from_millis(50)))
        .with_priority(1)
        .mount(&server)
        .await;
    // The refusal is held, so that every caller arrives while the login is in flight.
    Mock::given(method("POST"))
        .and(path(SESSION))
        .respond_with(
            fib_error(422, "UNPROCESSABLE_ENTITY", REFUSED).set_delay(Duration::from_millis(200)),
        )
        .with_priority(2)
        .mount(&server)
        .await;
    let session = bob(&server, &clock, None);

    let shared = common::assert_all_callers_share_one_token(&session, 500).await;

    assert_eq!(shared, access("1", 0));
    assert_eq!(sent_signatures(&server).await, [BOB_PLAIN, BOB_IROHA]);
    assert_eq!(session.request_counts().logins, 1);
}
