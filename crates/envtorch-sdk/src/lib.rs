//! Write an envtorch environment.
//!
//! An environment is a small binary. It implements [`Environment`] (reset, step, state) for a
//! typed action, observation and state, and hands a factory to [`serve`], which speaks the
//! worker protocol with the envtorch server on stdin/stdout. The server does everything that
//! every environment shares: HTTP and WebSocket, sessions, capacity, MCP routing, schemas,
//! error shapes.
//!
//! ```no_run
//! use envtorch_sdk::{EnvError, Environment, Manifest, Observation, ResetRequest, StepContext};
//! use schemars::JsonSchema;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Guess { number: i64 }
//!
//! #[derive(Serialize, JsonSchema)]
//! struct Hint { hint: String }
//!
//! #[derive(Serialize, JsonSchema)]
//! struct GuessState { episode_id: Option<String>, step_count: u64 }
//!
//! struct GuessEnv { secret: i64, state: GuessState }
//!
//! impl Environment for GuessEnv {
//!     type Action = Guess;
//!     type Observation = Hint;
//!     type State = GuessState;
//!
//!     fn reset(&mut self, request: ResetRequest) -> Result<Observation<Hint>, EnvError> {
//!         self.state = GuessState { episode_id: request.episode_id_or_new(), step_count: 0 };
//!         Ok(Observation::new(Hint { hint: "guess".into() }).reward(0.0))
//!     }
//!
//!     fn step(&mut self, guess: Guess, _ctx: &StepContext) -> Result<Observation<Hint>, EnvError> {
//!         self.state.step_count += 1;
//!         let hint = if guess.number < self.secret { "higher" } else { "lower or equal" };
//!         Ok(Observation::new(Hint { hint: hint.into() }).done(guess.number == self.secret))
//!     }
//!
//!     fn state(&self) -> GuessState {
//!         GuessState { episode_id: self.state.episode_id.clone(), step_count: self.state.step_count }
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     envtorch_sdk::serve(Manifest::new("guess_env", "Guess a number."), || {
//!         Ok(GuessEnv { secret: 7, state: GuessState { episode_id: None, step_count: 0 } })
//!     })
//! }
//! ```
//!
//! # Layout
//! - [`env`]: the [`Environment`] trait and the values it takes and returns.
//! - [`action`]: how actions are described (JSON Schema) and validated into Rust types.
//! - [`validate`]: a JSON Schema subset validator that reports pydantic-shaped issues.
//! - [`mcp`]: MCP tools for environments that expose them (the echo env does).
//! - [`manifest`]: the static description sent in the worker handshake.
//! - [`serve`](mod@serve): the worker main loop.

pub mod action;
pub mod env;
pub mod manifest;
pub mod mcp;
pub mod schema;
pub mod serve;
pub mod validate;

pub use action::Action;
pub use env::{EnvError, Environment, Observation, ResetRequest, Reward, StepContext};
pub use envtorch_wire::ValidationIssue;
pub use manifest::{Concurrency, Manifest};
pub use serve::serve;

/// Re-exported so environments derive schemas with the same schemars version as the SDK.
pub use schemars;
