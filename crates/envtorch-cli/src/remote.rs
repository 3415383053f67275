//! `envtorch health|schema|metadata|reset|step|state|session`: talk to a running server.
//!
//! Output is JSON, one document per line, so it reads fine and pipes into `jq`. Each
//! invocation of `reset`, `step` or `state` is its own `/ws` session (OpenEnv sessions live
//! as long as their socket), so `step` resets first unless told not to; `session` keeps one
//! session open and reads commands from stdin, one per line.

use std::io::BufRead;
use std::time::Duration;

use clap::Args;
use envtorch_client::{
    ClientConfig, ClientError, EnvClient, ResetOptions, ServerUrl, Session, StepResult,
};
use serde_json::{Map, Value, json};

/// Errors of the remote commands.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RemoteError {
    /// The client failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// An argument or an input line is not what was expected.
    #[error("{0}")]
    Usage(String),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Where the server is and how long to wait.
#[derive(Debug, Clone, Args)]
pub(crate) struct Target {
    /// Server URL: http://host:port, ws://host:port/ws or host:port.
    #[arg(long, env = "ENVTORCH_URL", default_value = "http://127.0.0.1:8000")]
    pub(crate) url: String,
    /// Seconds to wait for each reply.
    #[arg(long, default_value_t = 60.0)]
    pub(crate) timeout: f64,
}

impl Target {
    pub(crate) fn client(&self) -> Result<EnvClient, RemoteError> {
        let url = ServerUrl::parse(&self.url)?;
        let config = ClientConfig {
            reply_timeout: Duration::from_secs_f64(self.timeout.max(0.001)),
            ..ClientConfig::default()
        };
        Ok(EnvClient::with_config(url, config))
    }
}

/// Options of a reset.
#[derive(Debug, Clone, Args)]
pub(crate) struct ResetArgs {
    /// Seed for the episode.
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Episode id.
    #[arg(long)]
    pub(crate) episode_id: Option<String>,
    /// Environment-specific reset option KEY=VALUE (VALUE is JSON if it parses, else a string).
    #[arg(long = "option", short = 'o', value_name = "KEY=VALUE")]
    pub(crate) options: Vec<String>,
}

impl ResetArgs {
    fn to_options(&self) -> Result<ResetOptions, RemoteError> {
        let mut options = ResetOptions::new();
        options.seed = self.seed;
        options.episode_id = self.episode_id.clone();
        for kv in &self.options {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                RemoteError::Usage(format!("--option {kv:?}: expected KEY=VALUE"))
            })?;
            let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned()));
            options.extra.insert(k.to_owned(), value);
        }
        Ok(options)
    }
}

/// `envtorch step`.
#[derive(Debug, Args)]
pub(crate) struct StepArgs {
    #[command(flatten)]
    pub(crate) target: Target,
    #[command(flatten)]
    pub(crate) reset: ResetArgs,
    /// Do not reset before stepping (the session's environment starts un-reset).
    #[arg(long)]
    pub(crate) no_reset: bool,
    /// Actions as JSON objects, sent in order in one session; `-` reads one action per line
    /// from stdin.
    #[arg(required = true, value_name = "ACTION_JSON")]
    pub(crate) actions: Vec<String>,
}

/// `envtorch reset`.
#[derive(Debug, Args)]
pub(crate) struct ResetCmd {
    #[command(flatten)]
    pub(crate) target: Target,
    #[command(flatten)]
    pub(crate) reset: ResetArgs,
}

/// A runtime for one command.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, RemoteError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(RemoteError::Runtime)
}

/// Runs an async body on a fresh runtime.
pub(crate) fn block_on<T>(
    body: impl std::future::Future<Output = Result<T, RemoteError>>,
) -> Result<T, RemoteError> {
    runtime()?.block_on(body)
}

fn print(value: &Value) {
    println!("{value}");
}

fn envelope(r: StepResult<Value>) -> Value {
    let mut out = Map::new();
    out.insert("observation".into(), r.observation);
    out.insert("reward".into(), r.reward.map_or(Value::Null, Value::from));
    out.insert("done".into(), Value::Bool(r.done));
    if let Some(m) = r.metadata {
        out.insert("metadata".into(), Value::Object(m));
    }
    Value::Object(out)
}

fn parse_action(text: &str) -> Result<Value, RemoteError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| RemoteError::Usage(format!("action {text:?} is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(RemoteError::Usage(format!(
            "action {text:?} is not a JSON object"
        )));
    }
    Ok(value)
}

/// `envtorch health`.
pub(crate) fn health(target: &Target) -> Result<(), RemoteError> {
    block_on(async {
        let h = target.client()?.health().await?;
        print(&json!({"status": h.status}));
        Ok(())
    })
}

/// `envtorch schema`.
pub(crate) fn schema(target: &Target) -> Result<(), RemoteError> {
    block_on(async {
        print(&target.client()?.schema().await?);
        Ok(())
    })
}

/// `envtorch metadata`.
pub(crate) fn metadata(target: &Target) -> Result<(), RemoteError> {
    block_on(async {
        print(&target.client()?.get_json("/metadata").await?);
        Ok(())
    })
}

/// `envtorch reset`.
pub(crate) fn reset(cmd: &ResetCmd) -> Result<(), RemoteError> {
    let options = cmd.reset.to_options()?;
    block_on(async {
        let mut session = cmd.target.client()?.connect().await?;
        let r = session.reset(&options).await;
        let _ = session.close().await;
        print(&envelope(r?));
        Ok(())
    })
}

/// `envtorch state`.
pub(crate) fn state(target: &Target) -> Result<(), RemoteError> {
    block_on(async {
        let mut session = target.client()?.connect().await?;
        let s = session.state_json().await;
        let _ = session.close().await;
        print(&s?);
        Ok(())
    })
}

/// `envtorch step`.
pub(crate) fn step(args: &StepArgs) -> Result<(), RemoteError> {
    let options = args.reset.to_options()?;
    let mut actions = Vec::new();
    for a in &args.actions {
        if a == "-" {
            for line in std::io::stdin().lock().lines() {
                let line = line.map_err(|e| RemoteError::Usage(format!("reading stdin: {e}")))?;
                if !line.trim().is_empty() {
                    actions.push(parse_action(&line)?);
                }
            }
        } else {
            actions.push(parse_action(a)?);
        }
    }
    block_on(async {
        let mut session = args.target.client()?.connect().await?;
        let result = async {
            if !args.no_reset {
                session.reset(&options).await?;
            }
            for action in actions {
                print(&envelope(session.step_json(action).await?));
            }
            Ok::<_, RemoteError>(())
        }
        .await;
        let _ = session.close().await;
        result
    })
}

/// `envtorch session`.
#[derive(Debug, Args)]
pub(crate) struct SessionArgs {
    #[command(flatten)]
    pub(crate) target: Target,
}

/// The help text of `session`'s input language.
pub(crate) const SESSION_HELP: &str =
    "Reads one command per line from stdin and prints one JSON line per reply:
  reset [OPTIONS_JSON]   e.g. reset {\"seed\": 1, \"episode_id\": \"ep-1\"}
  step ACTION_JSON       e.g. step {\"type\": \"list_tools\"}
  {ACTION_JSON}          a bare JSON object is a step
  state                  the environment's state
  close                  end the session (also at end of input)
Server errors print {\"error\": {\"code\", \"message\", ...}} and the session goes on
unless the server ended it.";

/// Runs the line-oriented session on an existing client (also used by `envtorch run --session`).
pub(crate) async fn session_loop(client: &EnvClient) -> Result<(), RemoteError> {
    let mut session = client.connect().await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<String>>(16);
    // Blocking stdin on its own thread, so a dead server is noticed while waiting for input.
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    let mut failed = false;
    while let Some(line) = rx.recv().await {
        let line = line.map_err(|e| RemoteError::Usage(format!("reading stdin: {e}")))?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let outcome = session_command(&mut session, line).await;
        match outcome {
            Ok(Some(value)) => print(&value),
            Ok(None) => break,
            Err(RemoteError::Client(ClientError::Server(e))) => {
                print(&json!({"error": e.data}));
                if e.ends_session() {
                    failed = true;
                    break;
                }
            }
            Err(RemoteError::Usage(message)) => {
                print(&json!({"error": {"code": "USAGE", "message": message}}));
            }
            Err(other) => {
                let _ = session.close().await;
                return Err(other);
            }
        }
    }
    let _ = session.close().await;
    if failed {
        return Err(RemoteError::Usage("the server ended the session".into()));
    }
    Ok(())
}

async fn session_command(session: &mut Session, line: &str) -> Result<Option<Value>, RemoteError> {
    let (word, rest) = match line.split_once(char::is_whitespace) {
        Some((w, r)) => (w, r.trim()),
        None => (line, ""),
    };
    match word {
        "reset" => {
            let options: ResetOptions = if rest.is_empty() {
                ResetOptions::new()
            } else {
                let Value::Object(mut map) = parse_action(rest)? else {
                    return Err(RemoteError::Usage("reset options must be an object".into()));
                };
                let seed = match map.remove("seed") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(v.as_u64().ok_or_else(|| {
                        RemoteError::Usage("seed must be a non-negative integer".into())
                    })?),
                };
                let episode_id = match map.remove("episode_id") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(s),
                    Some(_) => {
                        return Err(RemoteError::Usage("episode_id must be a string".into()));
                    }
                };
                ResetOptions {
                    seed,
                    episode_id,
                    extra: map,
                }
            };
            Ok(Some(envelope(session.reset(&options).await?)))
        }
        "step" => Ok(Some(envelope(
            session.step_json(parse_action(rest)?).await?,
        ))),
        "state" if rest.is_empty() => Ok(Some(session.state_json().await?)),
        "close" | "exit" | "quit" if rest.is_empty() => Ok(None),
        _ if line.starts_with('{') => Ok(Some(envelope(
            session.step_json(parse_action(line)?).await?,
        ))),
        _ => Err(RemoteError::Usage(format!(
            "unknown command {word:?}; expected reset, step, state, close or a JSON action"
        ))),
    }
}

/// `envtorch session`.
pub(crate) fn session(args: &SessionArgs) -> Result<(), RemoteError> {
    block_on(async { session_loop(&args.target.client()?).await })
}
