//! Errors. Every failure a caller can act on differently is its own variant: a server error
//! frame keeps its code, a timeout says which wait ran out, and a lost connection is told
//! apart from a malformed reply.

use std::time::Duration;

use envtorch_wire::ws::ErrorCode;
use serde_json::Value;

/// An OpenEnv error frame (`{"type":"error","data":{"message","code",…}}`), typed.
///
/// The server sends these for bad actions (`VALIDATION_ERROR`), environment failures
/// (`EXECUTION_ERROR`), a full server (`CAPACITY_REACHED`) and so on. Callers branch on
/// [`ServerError::code`]; codes this crate does not know (a newer server) are kept verbatim in
/// [`ServerError::raw_code`].
#[derive(Debug, Clone, PartialEq)]
pub struct ServerError {
    /// The code, if it is one of the OpenEnv codes.
    pub code: Option<ErrorCode>,
    /// The code exactly as sent (empty if the frame had none).
    pub raw_code: String,
    /// The human-readable message.
    pub message: String,
    /// The whole `data` object, for the extra keys some codes carry (`errors` for
    /// `VALIDATION_ERROR`, `active_sessions`/`max_sessions` for `CAPACITY_REACHED`, …).
    pub data: Value,
}

impl ServerError {
    /// Builds the typed error from an error frame's `data`.
    pub fn from_data(data: Value) -> Self {
        let raw_code = data
            .get("code")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let message = data
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Self {
            code: parse_code(&raw_code),
            raw_code,
            message,
            data,
        }
    }

    /// Whether the server closes the session after this error (capacity, factory and
    /// session errors), so the session cannot be used any more.
    pub fn ends_session(&self) -> bool {
        self.code.is_some_and(ErrorCode::closes_socket)
    }

    /// The pydantic-shaped validation issues of a `VALIDATION_ERROR`, if any.
    pub fn validation_errors(&self) -> Option<&Vec<Value>> {
        self.data.get("errors").and_then(Value::as_array)
    }
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The reference client's wording, so logs read the same whichever client is used.
        write!(
            f,
            "Server error: {} (code: {})",
            self.message, self.raw_code
        )
    }
}

impl std::error::Error for ServerError {}

/// The OpenEnv error code named `raw`, if it is one.
pub fn parse_code(raw: &str) -> Option<ErrorCode> {
    [
        ErrorCode::InvalidJson,
        ErrorCode::UnknownType,
        ErrorCode::ValidationError,
        ErrorCode::ExecutionError,
        ErrorCode::CapacityReached,
        ErrorCode::FactoryError,
        ErrorCode::SessionError,
    ]
    .into_iter()
    .find(|c| c.as_str() == raw)
}

/// Everything that can go wrong talking to a server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL cannot be used.
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The TCP connection or the WebSocket/HTTP handshake failed.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// What was dialled.
        url: String,
        /// The underlying failure.
        reason: String,
    },
    /// Connecting (TCP + handshake) took longer than the connect timeout.
    #[error("connecting to {url} timed out after {after:?}")]
    ConnectTimeout {
        /// What was dialled.
        url: String,
        /// The timeout that ran out.
        after: Duration,
    },
    /// No reply arrived within the reply timeout. The session is then unusable (a late reply
    /// would be taken as the answer to the next request), so it is closed, as the reference
    /// client does.
    #[error("no reply to {request} within {after:?}; the session was closed")]
    ReplyTimeout {
        /// The request that went unanswered (`reset`, `step`, `GET /health`, …).
        request: String,
        /// The timeout that ran out.
        after: Duration,
    },
    /// The server answered with an error frame.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The connection ended: the server closed the socket (shutdown, container stopped,
    /// session reaped) or the network dropped it.
    #[error("connection closed by the server{}", close_detail(*.code, .reason))]
    Closed {
        /// The WebSocket close code, if a close frame arrived.
        code: Option<u16>,
        /// The close reason or the transport error.
        reason: String,
    },
    /// The session was already closed (by [`crate::Session::close`], an earlier timeout or a
    /// lost connection).
    #[error("the session is closed")]
    SessionClosed,
    /// The server sent something that is not an OpenEnv reply (the session is then closed:
    /// replies are matched to requests by order only, so it cannot be trusted to stay in step).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A reply did not match the requested Rust type.
    #[error("cannot decode the {what}: {source}")]
    Decode {
        /// What was being decoded (`observation`, `state`, …).
        what: &'static str,
        /// The serde error.
        source: serde_json::Error,
    },
    /// An action or option could not be serialized to JSON.
    #[error("cannot encode the {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The serde error.
        source: serde_json::Error,
    },
    /// An HTTP route answered with a non-2xx status.
    #[error("HTTP {status} from {route}: {body}")]
    Http {
        /// The route (`/health`, …).
        route: String,
        /// The status code.
        status: u16,
        /// The response body (truncated to 4 KiB).
        body: String,
    },
}

fn close_detail(code: Option<u16>, reason: &str) -> String {
    match (code, reason.is_empty()) {
        (Some(c), true) => format!(" (code {c})"),
        (Some(c), false) => format!(" (code {c}: {reason})"),
        (None, true) => String::new(),
        (None, false) => format!(": {reason}"),
    }
}

impl ClientError {
    /// The OpenEnv error code, when this is a server error frame.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server(e) => e.code,
            _ => None,
        }
    }

    /// Whether the session is gone after this error (as opposed to a rejected request on a
    /// still-usable session).
    pub fn ends_session(&self) -> bool {
        match self {
            ClientError::Server(e) => e.ends_session(),
            ClientError::Decode { .. } | ClientError::Encode { .. } | ClientError::Http { .. } => {
                false
            }
            _ => true,
        }
    }
}
