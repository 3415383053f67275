//! Drive an echo server (envtorch's or the Python reference) with the Rust client:
//!
//! ```sh
//! cargo run -p envtorch-client --example echo -- http://127.0.0.1:8000
//! ```
//!
//! Prints the server's metadata, resets an episode, calls both echo tools (one typed, one as
//! raw JSON), shows an error frame as a typed error, prints the state, and closes.

use std::process::ExitCode;

use envtorch_client::{ClientError, EnvClient, ResetOptions, StepResult};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The echo env's `call_tool` action.
#[derive(Serialize)]
struct CallTool<'a> {
    r#type: &'static str,
    tool_name: &'a str,
    arguments: Value,
}

/// The part of the `call_tool` observation this example reads.
#[derive(Debug, Deserialize)]
struct CallToolObservation {
    tool_name: String,
    result: Value,
}

async fn demo(url: &str) -> Result<(), ClientError> {
    let client = EnvClient::new(url)?;
    let meta = client.metadata().await?;
    println!("server: {} ({})", meta.name, meta.description);

    let mut session = client.connect().await?;
    let reset = session
        .reset(&ResetOptions::new().seed(1).episode_id("rust-demo"))
        .await?;
    println!("reset: reward={:?} done={}", reset.reward, reset.done);

    let typed: StepResult<CallToolObservation> = session
        .step(&CallTool {
            r#type: "call_tool",
            tool_name: "echo_with_length",
            arguments: json!({"message": "hello from Rust"}),
        })
        .await?;
    println!(
        "{} -> {}",
        typed.observation.tool_name, typed.observation.result["data"]
    );

    let raw = session
        .step_json(json!({"type": "call_tool", "tool_name": "echo_message",
                          "arguments": {"message": "raw JSON works too"}}))
        .await?;
    println!("echo_message -> {}", raw.observation["result"]["data"]);

    match session.step_json(json!({"not": "an action"})).await {
        Err(e @ ClientError::Server(_)) => println!("a bad action: {e} (code {:?})", e.code()),
        other => println!("unexpected: {other:?}"),
    }

    println!("state: {}", session.state_json().await?);
    session.close().await
}

#[tokio::main]
async fn main() -> ExitCode {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8000".into());
    match demo(&url).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo example: {e}");
            ExitCode::FAILURE
        }
    }
}
