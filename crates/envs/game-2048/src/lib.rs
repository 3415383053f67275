//! The 2048 game as an envtorch environment, deterministic under a seed.
//!
//! The game logic has no protocol in it, so it can be tested and reused on its own:
//! - [`board`]: the 4×4 board and the slide rule;
//! - [`dealer`]: seeded tile dealing (ChaCha8 with integer-only sampling: the same seed
//!   deals the same tiles on every platform);
//! - [`game`]: a board, a score and a dealer;
//! - [`env`](mod@env): the envtorch [`Environment`](envtorch_sdk::Environment) with its action,
//!   observation and state types.
//!
//! The binary (`game-2048-env`) hands [`env::Game2048Env`] to `envtorch_sdk::serve`.

pub mod board;
pub mod dealer;
pub mod env;
pub mod game;
