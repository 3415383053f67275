//! The three HTTP routes a client needs (`/health`, `/schema`, `/metadata`), over a plain
//! HTTP/1.1 connection per request with hyper's low-level client.
//!
//! Why not a full HTTP client crate: these are three tiny GETs to one server. hyper is already
//! in the dependency tree (the server uses it), so this costs no new crates, no TLS stack and
//! no connection pool to reason about; a fresh connection per call is fine for calls that
//! happen a few times per session at most.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::ClientError;
use crate::url::ServerUrl;

/// Largest body read from an HTTP route (schemas can be large; 16 MiB is generous).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// `GET <route>` and return `(status, body)`. The whole exchange, connect included, is bounded
/// by `timeout`.
pub(crate) async fn get(
    url: &ServerUrl,
    route: &str,
    timeout: Duration,
) -> Result<(u16, Bytes), ClientError> {
    let request_name = format!("GET {route}");
    match tokio::time::timeout(timeout, get_inner(url, route)).await {
        Ok(result) => result,
        Err(_) => Err(ClientError::ReplyTimeout {
            request: request_name,
            after: timeout,
        }),
    }
}

async fn get_inner(url: &ServerUrl, route: &str) -> Result<(u16, Bytes), ClientError> {
    let target = format!("{}{}", url.http_base(), route);
    let connect_err = |reason: String| ClientError::Connect {
        url: target.clone(),
        reason,
    };
    let stream = TcpStream::connect(url.dial_addr())
        .await
        .map_err(|e| connect_err(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| connect_err(e.to_string()))?;
    let driver = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("http connection ended: {e}");
        }
    });
    let request = Request::get(url.path(route))
        .header(hyper::header::HOST, url.authority())
        .header(hyper::header::ACCEPT, "application/json")
        .header(hyper::header::USER_AGENT, "envtorch-client")
        .body(Empty::<Bytes>::new())
        .map_err(|e| ClientError::Protocol(format!("cannot build the request: {e}")))?;
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| ClientError::Closed {
                code: None,
                reason: e.to_string(),
            })?;
        let status = response.status().as_u16();
        let body = http_body_util::Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| ClientError::Closed {
                code: None,
                reason: format!("reading the body of {route}: {e}"),
            })?
            .to_bytes();
        Ok((status, body))
    }
    .await;
    driver.abort();
    result
}

/// `GET <route>` expecting 2xx and a JSON body.
pub(crate) async fn get_json(
    url: &ServerUrl,
    route: &str,
    timeout: Duration,
) -> Result<serde_json::Value, ClientError> {
    let (status, body) = get(url, route, timeout).await?;
    if !(200..300).contains(&status) {
        let text = String::from_utf8_lossy(&body);
        let cut = (0..=text.len().min(4096))
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        return Err(ClientError::Http {
            route: route.to_owned(),
            status,
            body: text[..cut].to_owned(),
        });
    }
    serde_json::from_slice(&body).map_err(|source| ClientError::Decode {
        what: "HTTP response body",
        source,
    })
}
