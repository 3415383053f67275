//! The `game-2048-env` worker: run by `envtorch-server --env game-2048-env`, never by hand.

use std::process::ExitCode;

use game_2048_env::env::{Game2048Env, default_target_from_env, manifest};

fn main() -> ExitCode {
    // A bad GAME_2048_TARGET_TILE stops the worker at startup, where the operator sees it.
    let default_target = match default_target_from_env() {
        Ok(target) => target,
        Err(message) => {
            eprintln!("game-2048-env: {message}");
            return ExitCode::FAILURE;
        }
    };
    envtorch_sdk::serve(manifest(), move || Ok(Game2048Env::new(default_target)))
}
