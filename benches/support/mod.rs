//! What the bench binaries share: a minimal local HTTP server.
#![allow(dead_code)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A minimal keep-alive HTTP/1.1 server answering `200 ok` to every request: the fastest
/// honest peer, so that the auth layer's share is as visible as it can be.
pub async fn server() -> (String, Arc<AtomicUsize>) {
    server_with_token_delay(std::time::Duration::ZERO).await
}

/// The same server, answering token requests (POST) only after `delay`, like a busy identity
/// provider.
pub async fn server_with_token_delay(delay: std::time::Duration) -> (String, Arc<AtomicUsize>) {
    let token_requests = Arc::new(AtomicUsize::new(0));
    let counter = token_requests.clone();
    let base = serve(move |head| {
        let counter = counter.clone();
        async move {
            // Token requests get a token; everything else a tiny body.
            if !head.starts_with("POST") {
                return &b"ok"[..];
            }
            counter.fetch_add(1, Ordering::Relaxed);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            TOKEN_BODY
        }
    })
    .await;
    (base, token_requests)
}

/// An s7risk login's answer.
pub const TOKEN_BODY: &[u8] = br#"{"status":"success","data":{"accessToken":"bench-token"}}"#;

/// A keep-alive HTTP/1.1 server on loopback that answers each request, once all of it has
/// arrived, with `200` and the body `answer` gives for the request's head. Returns its base URL.
pub async fn serve<F, Fut>(answer: F) -> String
where
    F: Fn(String) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = &'static [u8]> + Send,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            socket.set_nodelay(true).unwrap();
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut filled = 0;
                loop {
                    match socket.read(&mut buf[filled..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => filled += n,
                    }
                    while let Some(end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = std::str::from_utf8(&buf[..end])
                            .unwrap_or_default()
                            .to_owned();
                        let content_length = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        let consumed = end + 4 + content_length;
                        if filled < consumed {
                            break;
                        }
                        let body = answer(head).await;
                        let response = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                            body.len()
                        );
                        if socket.write_all(response.as_bytes()).await.is_err()
                            || socket.write_all(body).await.is_err()
                        {
                            return;
                        }
                        buf.copy_within(consumed..filled, 0);
                        filled -= consumed;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}
