//! A minimal HTTP/1.1 keep-alive client for load generation: one request at a time per
//! connection (no pipelining), `content-length` bodies.

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::load::Client;

/// The action every step sends (the same on `/ws` and HTTP).
pub(crate) const ACTION: &str =
    r#"{"type":"call_tool","tool_name":"echo_message","arguments":{"message":"hi"}}"#;
/// `POST /step` with the same action as the `/ws` step.
pub(crate) const STEP_BODY: &str =
    r#"{"action":{"type":"call_tool","tool_name":"echo_message","arguments":{"message":"hi"}}}"#;
/// `POST /reset` with an empty body object.
pub(crate) const RESET_BODY: &str = "{}";

/// One keep-alive connection sending the same request again and again.
pub(crate) struct HttpConn {
    port: u16,
    request: Vec<u8>,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

pub(crate) fn post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

pub(crate) fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n").into_bytes()
}

impl HttpConn {
    pub(crate) async fn connect(port: u16, request: Vec<u8>) -> anyhow::Result<Self> {
        let mut c = Self {
            port,
            request,
            stream: None,
            buf: Vec::with_capacity(4096),
        };
        c.reconnect().await?;
        Ok(c)
    }

    async fn reconnect(&mut self) -> anyhow::Result<()> {
        self.stream = None;
        let s = TcpStream::connect(("127.0.0.1", self.port)).await?;
        s.set_nodelay(true)?;
        self.stream = Some(s);
        self.buf.clear();
        Ok(())
    }

    /// Sends the request and reads the whole response; the status must be 200.
    pub(crate) async fn request(&mut self) -> anyhow::Result<()> {
        let Some(stream) = self.stream.as_mut() else {
            bail!("not connected");
        };
        stream.write_all(&self.request).await?;
        self.buf.clear();
        // Read the head.
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if self.buf.len() > 64 * 1024 {
                bail!("response head too large");
            }
            let mut chunk = [0u8; 8192];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("connection closed by the server");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).context("response head")?;
        let status = head.get(9..12).unwrap_or("");
        let mut length = None;
        let mut close = false;
        for line in head.split("\r\n").skip(1) {
            if let Some((k, v)) = line.split_once(':') {
                let k = k.trim();
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse::<usize>().ok();
                } else if k.eq_ignore_ascii_case("connection")
                    && v.trim().eq_ignore_ascii_case("close")
                {
                    close = true;
                } else if k.eq_ignore_ascii_case("transfer-encoding") {
                    bail!("chunked responses are not supported by this load generator");
                }
            }
        }
        let Some(length) = length else {
            bail!("response without content-length");
        };
        let status = status.to_owned();
        while self.buf.len() < head_end + length {
            let mut chunk = [0u8; 8192];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("connection closed mid-body");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        if self.buf.len() > head_end + length {
            bail!("more bytes than the response (pipelining is not used)");
        }
        if close {
            self.reconnect().await?;
        }
        if status != "200" {
            let body = String::from_utf8_lossy(&self.buf[head_end..]);
            bail!("HTTP {status}: {}", crate::ws::truncate(&body, 300));
        }
        Ok(())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Client for HttpConn {
    async fn op(&mut self) -> anyhow::Result<()> {
        self.request().await
    }
    async fn recover(&mut self) -> bool {
        for _ in 0..3 {
            if self.reconnect().await.is_ok() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
    async fn finish(self) {}
}

/// Opens `n` connections.
pub(crate) async fn connect_many(
    port: u16,
    n: usize,
    request: &[u8],
) -> (Vec<HttpConn>, usize, Option<String>) {
    let mut ok = Vec::with_capacity(n);
    let mut failed = 0;
    let mut first = None;
    for _ in 0..n {
        match HttpConn::connect(port, request.to_vec()).await {
            Ok(c) => ok.push(c),
            Err(e) => {
                failed += 1;
                first.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    (ok, failed, first)
}
