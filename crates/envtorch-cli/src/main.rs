//! `envtorch`: the command line for people working with envtorch environments.
//!
//! Each subcommand lives in its own module; this file only parses the command line and
//! dispatches, so subcommands can be added without touching each other.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod new;
mod remote;
mod run;

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
    /// Run an environment image in Docker (published on a free loopback port) until Ctrl-C.
    Run(run::RunArgs),
    /// Open a session and drive it with commands read from stdin, one per line.
    #[command(after_help = remote::SESSION_HELP)]
    Session(remote::SessionArgs),
    /// Reset a new session and print the observation.
    Reset(remote::ResetCmd),
    /// Reset a new session (unless --no-reset), send JSON actions, print each result.
    Step(remote::StepArgs),
    /// Print the state of a new session.
    State(remote::Target),
    /// Check a server's /health.
    Health(remote::Target),
    /// Print a server's /schema (action, observation and state JSON schemas).
    Schema(remote::Target),
    /// Print a server's /metadata.
    Metadata(remote::Target),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Each subcommand has its own error type; here they only need to be printed.
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::New(args) => new::run(&args).map_err(Into::into),
        Command::Run(args) => run::run(&args).map_err(Into::into),
        Command::Session(args) => remote::session(&args).map_err(Into::into),
        Command::Reset(args) => remote::reset(&args).map_err(Into::into),
        Command::Step(args) => remote::step(&args).map_err(Into::into),
        Command::State(t) => remote::state(&t).map_err(Into::into),
        Command::Health(t) => remote::health(&t).map_err(Into::into),
        Command::Schema(t) => remote::schema(&t).map_err(Into::into),
        Command::Metadata(t) => remote::metadata(&t).map_err(Into::into),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("envtorch: {e}");
            ExitCode::FAILURE
        }
    }
}
