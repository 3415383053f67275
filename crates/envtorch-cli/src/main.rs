//! `envtorch`: the command line for people working with envtorch environments.
//!
//! Each subcommand lives in its own module; this file only parses the command line and
//! dispatches, so subcommands can be added without touching each other.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod new;

/// Work with envtorch environments.
#[derive(Debug, Parser)]
#[command(name = "envtorch", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new environment crate from the template (a working echo-like skeleton with
    /// tests) and register its image in the flake's list.
    New(new::NewArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Each subcommand has its own error type; here they only need to be printed.
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::New(args) => new::run(&args).map_err(Into::into),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("envtorch: {e}");
            ExitCode::FAILURE
        }
    }
}
