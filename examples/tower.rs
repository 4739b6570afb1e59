//! A session in a tower stack around hyper's client, against the built-in sandbox (no
//! network): `AuthLayer` puts Password Safe's session cookie and weavr's bearer and `api-key`
//! on the requests and tells the sessions what came back; `headers()` does the same by hand.
//!
//! Run with `cargo run --example tower --features tower,sandbox`.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokensmith::sandbox::{demo, Sandbox};
use tokensmith::tower::AuthLayer;
use tokensmith::{passwordsafe, weavr, Service};
use tower::{ServiceBuilder, ServiceExt};

#[tokio::main]
pub(crate) async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let sandbox = Sandbox::start().await;
    let hyper = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();

    println!("== passwordsafe through AuthLayer: the session cookie on every request");
    let session = passwordsafe::Session::builder()
        .base_url(sandbox.base_url(Service::PasswordSafe))
        .oauth(
            demo::PASSWORDSAFE_CLIENT_ID,
            demo::PASSWORDSAFE_CLIENT_SECRET,
        )
        .build()?;
    let client = ServiceBuilder::new()
        .layer(AuthLayer::new(session.clone()))
        .service(hyper.clone());
    let uri = format!(
        "{}/ManagedAccounts",
        sandbox.base_url(Service::PasswordSafe)
    );
    let response = client
        .oneshot(http::Request::get(uri.as_str()).body(Empty::new())?)
        .await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    println!(
        "GET /ManagedAccounts: {status} {}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(status, 200);
    session.logout().await?;

    println!("\n== weavr: stepped up first (the layer does not read 403 bodies), then the layer");
    let session = weavr::Session::builder()
        .base_url(sandbox.base_url(Service::Weavr))
        .api_key(demo::WEAVR_API_KEY)
        .email(demo::WEAVR_EMAIL)
        .password(demo::WEAVR_PASSWORD)
        // The sandbox's one-time password; a real application asks the user (examples/step_up.rs).
        .step_up(weavr::StepUpMethod::Sms, |_| async {
            weavr::Answer::Code(demo::WEAVR_OTP.into())
        })
        .build()?;
    session.step_up().await?;
    let client = ServiceBuilder::new()
        .layer(AuthLayer::new(session.clone()))
        .service(hyper.clone());
    let uri = format!("{}/managed_accounts", sandbox.base_url(Service::Weavr));
    let response = client
        .oneshot(http::Request::get(uri.as_str()).body(Empty::new())?)
        .await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    println!(
        "GET /managed_accounts: {status} {}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(status, 200);

    println!("\n== the same request with headers(), by hand");
    let headers = session.headers().await?;
    println!("headers: {headers:?}");
    let mut request = http::Request::get(uri.as_str()).body(Empty::<Bytes>::new())?;
    request.headers_mut().extend(headers.clone());
    let response = hyper.request(request).await?;
    println!("GET /managed_accounts: {}", response.status());
    if response.status() == 401 {
        // Tell the session; the next headers() renews first.
        session.refused(&headers);
    }
    assert_eq!(response.status(), 200);
    let counters = sandbox.counters(Service::Weavr);
    println!(
        "{} sign-in and {} SMS challenge for all of it",
        counters.logins, counters.challenges
    );
    assert_eq!((counters.logins, counters.challenges), (1, 1));
    Ok(())
}
