//! Errors of the engine.

use std::io;
use std::path::PathBuf;

/// Why the engine could not do what was asked.
///
/// Failures *of the user's code* (exceptions, timeouts, crashes, limits) are not errors: they
/// are reported in a [`crate::StepOutput`] like the reference does, because an RL agent must
/// see them as observations. An `EngineError` means the request itself was bad or the host
/// could not provide an interpreter.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The code is larger than [`crate::SessionConfig::max_code_bytes`]; rejected before it
    /// reaches Python so one request cannot make the worker buffer unbounded input.
    #[error("code is {len} bytes, more than the limit of {limit} bytes")]
    CodeTooLarge {
        /// Size of the rejected code in bytes.
        len: usize,
        /// The configured limit.
        limit: usize,
    },
    /// No usable Python interpreter was found or configured.
    #[error("no usable python interpreter: {0}")]
    NoPython(String),
    /// Creating or preparing the session's scratch directory failed.
    #[error("scratch directory {path}: {source}")]
    Scratch {
        /// The directory involved.
        path: PathBuf,
        /// The underlying I/O error.
        source: io::Error,
    },
    /// Starting the sandboxed interpreter failed (spawn error, or it died before it was
    /// ready; `detail` carries its diagnostic output).
    #[error("could not start the sandboxed interpreter: {detail}")]
    Spawn {
        /// What went wrong, including the sandbox's stderr when there was any.
        detail: String,
    },
    /// The syntax checker used for rewards failed twice in a row.
    #[error("syntax checker unavailable: {0}")]
    Checker(String),
}
