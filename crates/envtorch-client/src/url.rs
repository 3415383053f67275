//! Server addresses: one base URL gives both the HTTP routes and the `/ws` endpoint.
//!
//! People paste whatever they have (`http://host:8000`, `ws://host:8000/ws`, `host:8000`), so
//! [`ServerUrl::parse`] accepts all of those and normalizes them the way the reference client
//! does (`http→ws`, trailing `/` stripped, `/ws` appended). Only plain-text transports are
//! supported: this crate carries no TLS stack (see the crate docs for why).

use std::fmt;

use crate::error::ClientError;

/// A parsed server address: `host:port` plus an optional path prefix (for servers mounted
/// under a path behind a proxy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    host: String,
    port: u16,
    prefix: String,
}

impl ServerUrl {
    /// Parses `http://host[:port][/prefix]`, `ws://…` (a trailing `/ws` is dropped) or a bare
    /// `host[:port]`. The default port is 80, as for any `http://` URL.
    pub fn parse(input: &str) -> Result<Self, ClientError> {
        let invalid = |why: &str| ClientError::InvalidUrl {
            url: input.to_owned(),
            reason: why.to_owned(),
        };
        let trimmed = input.trim();
        let rest = if let Some((scheme, rest)) = trimmed.split_once("://") {
            match scheme.to_ascii_lowercase().as_str() {
                "http" | "ws" => rest,
                "https" | "wss" => {
                    return Err(invalid(
                        "TLS is not supported by this client; reach the server over plain http/ws (e.g. through a local port or proxy)",
                    ));
                }
                other => return Err(invalid(&format!("unsupported scheme {other:?}"))),
            }
        } else {
            trimmed
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if path.contains(['?', '#']) {
            return Err(invalid("query strings and fragments are not supported"));
        }
        let mut prefix = path.trim_end_matches('/').to_owned();
        if prefix.ends_with("/ws") {
            prefix.truncate(prefix.len() - 3);
        }
        if authority.is_empty() {
            return Err(invalid("no host"));
        }
        if authority.contains('@') {
            return Err(invalid("user info in URLs is not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| invalid("unclosed '['"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| invalid("bad port"))?,
                None if after.is_empty() => 80,
                None => return Err(invalid("garbage after ']'")),
            };
            (format!("[{h}]"), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| invalid("bad port"))?),
                None => (authority.to_owned(), 80),
            }
        };
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        Ok(Self { host, port, prefix })
    }

    /// A URL for `127.0.0.1:port`, the common case in tests and for local containers.
    pub fn local(port: u16) -> Self {
        Self {
            host: "127.0.0.1".into(),
            port,
            prefix: String::new(),
        }
    }

    /// The host, as written (IPv6 addresses keep their brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port`, for connecting and for the `Host` header.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The address to dial (`[::1]` without brackets, as the socket API wants it).
    pub(crate) fn dial_addr(&self) -> (String, u16) {
        (
            self.host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            self.port,
        )
    }

    /// The request path for an HTTP route such as `/health`.
    pub fn path(&self, route: &str) -> String {
        format!("{}{route}", self.prefix)
    }

    /// `http://host:port[/prefix]`.
    pub fn http_base(&self) -> String {
        format!("http://{}{}", self.authority(), self.prefix)
    }

    /// `ws://host:port[/prefix]/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}{}/ws", self.authority(), self.prefix)
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.http_base())
    }
}

impl std::str::FromStr for ServerUrl {
    type Err = ClientError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_usual_spellings() {
        for input in [
            "http://127.0.0.1:8000",
            "http://127.0.0.1:8000/",
            "ws://127.0.0.1:8000/ws",
            "127.0.0.1:8000",
        ] {
            let u = ServerUrl::parse(input).unwrap();
            assert_eq!(u.ws_url(), "ws://127.0.0.1:8000/ws", "{input}");
            assert_eq!(u.http_base(), "http://127.0.0.1:8000", "{input}");
        }
        let u = ServerUrl::parse("http://h/env/echo/").unwrap();
        assert_eq!(u.port(), 80);
        assert_eq!(u.ws_url(), "ws://h:80/env/echo/ws");
        assert_eq!(u.path("/health"), "/env/echo/health");
        let u = ServerUrl::parse("http://[::1]:9").unwrap();
        assert_eq!(u.dial_addr(), ("::1".to_owned(), 9));
        assert_eq!(u.authority(), "[::1]:9");
    }

    #[test]
    fn rejects_what_it_cannot_serve() {
        for bad in [
            "https://x",
            "wss://x",
            "ftp://x",
            "http://",
            "http://x:notaport",
            "http://x/?a=1",
        ] {
            assert!(ServerUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
