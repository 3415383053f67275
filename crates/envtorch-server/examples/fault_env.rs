//! A misbehaving environment for the server's fault tests: on request it crashes, hangs,
//! writes garbage to stdout, panics or fails. Not for production use.
//!
//! Action: `{"fault": "none" | "hang" | "garbage" | "panic" | "error" | "exit"}`.

use std::process::ExitCode;

use envtorch_sdk::schemars::{self, JsonSchema};
use envtorch_sdk::{EnvError, Environment, Manifest, Observation, ResetRequest, StepContext};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Fault {
    None,
    Hang,
    Garbage,
    Panic,
    Error,
    Exit,
}

#[derive(Deserialize, JsonSchema)]
struct FaultAction {
    fault: Fault,
}

#[derive(Serialize, JsonSchema)]
struct FaultObservation {
    pid: u32,
}

#[derive(Serialize, JsonSchema)]
struct FaultState {
    episode_id: Option<String>,
    step_count: u64,
}

struct FaultEnv {
    steps: u64,
}

impl Environment for FaultEnv {
    type Action = FaultAction;
    type Observation = FaultObservation;
    type State = FaultState;

    fn reset(&mut self, _request: ResetRequest) -> Result<Observation<FaultObservation>, EnvError> {
        self.steps = 0;
        Ok(Observation::new(FaultObservation {
            pid: std::process::id(),
        })
        .reward(0.0))
    }

    #[allow(clippy::panic)]
    fn step(
        &mut self,
        action: FaultAction,
        _ctx: &StepContext,
    ) -> Result<Observation<FaultObservation>, EnvError> {
        self.steps += 1;
        match action.fault {
            Fault::None => {}
            Fault::Hang => std::thread::sleep(std::time::Duration::from_secs(3600)),
            Fault::Garbage => println!("this is not the worker protocol"),
            Fault::Panic => panic!("fault env panicked on request"),
            Fault::Error => return Err(EnvError::execution("fault env failed on request")),
            Fault::Exit => std::process::exit(3),
        }
        Ok(Observation::new(FaultObservation {
            pid: std::process::id(),
        })
        .reward(1))
    }

    fn state(&self) -> FaultState {
        FaultState {
            episode_id: None,
            step_count: self.steps,
        }
    }
}

fn main() -> ExitCode {
    let fail_factory = std::env::args().any(|a| a == "--fail-factory");
    envtorch_sdk::serve(
        Manifest::new("fault_env", "Misbehaves on request."),
        move || {
            if fail_factory {
                return Err(EnvError::execution("factory refused"));
            }
            Ok(FaultEnv { steps: 0 })
        },
    )
}
