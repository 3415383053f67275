//! OpenEnv wire types, shared by the envtorch server, the SDK and the client.
//!
//! The OpenEnv reference server is FastAPI + pydantic, so its error bodies are pydantic's and
//! its `/ws` frames are pydantic dumps. Clients parse some of those bytes (the error `code`, the
//! envelope keys), and people read the rest, so this crate reproduces them exactly where a client
//! can tell and closely elsewhere.
//!
//! # Layout
//! - [`issue`]: pydantic-shaped validation issues (`{type, loc, msg, input, ctx?, url?}`).
//! - [`object`]: parse a JSON object keeping key order and borrowing raw values, so payloads can
//!   be passed on without being rebuilt.
//! - [`ws`]: `/ws` client messages, server frames and error codes.
//! - [`envelope`]: the observation envelope, rendered for `/ws` and for HTTP.
//! - [`jsonrpc`]: the JSON-RPC 2.0 subset of `/mcp`.
//! - [`http`]: FastAPI-shaped HTTP error bodies and request-field validation.
//! - [`pyjson`]: Python's words for JSON syntax errors.

pub mod envelope;
pub mod http;
pub mod issue;
pub mod jsonrpc;
pub mod object;
pub mod pyjson;
pub mod ws;

pub use issue::{Loc, ValidationIssue};
