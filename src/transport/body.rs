//! The one capped read of a response body: every body the crate reads goes through it, so an
//! oversized or endless answer is an error rather than an allocation.

use reqwest::header::HeaderValue;

use super::DEFAULT_MAX_RESPONSE_BYTES;

/// The whole body, or `None` when it is longer than `cap` (by its `Content-Length` or as read).
pub(crate) async fn read_at_most(
    mut response: reqwest::Response,
    cap: usize,
) -> reqwest::Result<Option<Vec<u8>>> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > cap {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// Reads a response's body (up to `cap`, else [`DEFAULT_MAX_RESPONSE_BYTES`]) and gives back an
/// equivalent response with it, plus the bytes (`None` when the body was over the cap and
/// dropped: the response given back then has an empty body).
pub(crate) async fn buffer(
    response: reqwest::Response,
    cap: Option<usize>,
) -> reqwest::Result<(reqwest::Response, Option<bytes::Bytes>)> {
    let status = response.status();
    let version = response.version();
    let headers = response.headers().clone();
    let body = read_at_most(response, cap.unwrap_or(DEFAULT_MAX_RESPONSE_BYTES))
        .await?
        .map(bytes::Bytes::from);
    let mut rebuilt = http::Response::new(body.clone().unwrap_or_default());
    *rebuilt.status_mut() = status;
    *rebuilt.version_mut() = version;
    *rebuilt.headers_mut() = headers;
    let len = rebuilt.body().len();
    rebuilt
        .headers_mut()
        .remove(reqwest::header::TRANSFER_ENCODING);
    rebuilt
        .headers_mut()
        .insert(reqwest::header::CONTENT_LENGTH, HeaderValue::from(len));
    Ok((reqwest::Response::from(rebuilt), body))
}
