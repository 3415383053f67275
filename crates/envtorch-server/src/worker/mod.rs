//! Environment worker processes.
//!
//! - [`process`]: one worker process: spawn, handshake, request/reply, death.
//! - [`pool`]: the set of workers an environment runs on, with restarts and session placement.

pub mod pool;
pub mod process;

pub use pool::{Placement, WorkerPool};
pub use process::{Worker, WorkerFailure, WorkerSpec};
