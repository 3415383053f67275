//! The worker main loop: the environment side of the worker protocol.
//!
//! [`serve`] writes the handshake, then reads one request per line from stdin and writes one
//! reply per line to stdout until stdin closes (the server went away or shut us down). The
//! protocol is described in `envtorch_worker_protocol` and `docs/worker-protocol.md`.
//!
//! Stdout belongs to the protocol: an environment must log to stderr (which the server
//! forwards to its log), never print to stdout.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use envtorch_worker_protocol::{
    Capabilities, EnvManifest, ErrorKind, Hello, Op, PROTOCOL_VERSION, ReplyOut, Request, Schemas,
    WorkerError,
};

use crate::action::Action;
use crate::env::{EnvError, Environment, Observation, ResetRequest, StepContext};
use crate::manifest::{Concurrency, Manifest};
use crate::mcp;

/// Runs the worker side of the protocol until stdin closes.
///
/// `factory` makes one environment per session (and one per stateless HTTP request). Its
/// error becomes the protocol's `FACTORY_ERROR`.
pub fn serve<E, F>(manifest: Manifest, factory: F) -> ExitCode
where
    E: Environment,
    F: Fn() -> Result<E, EnvError> + Send + Sync + 'static,
{
    let action_schema = manifest
        .action_schema
        .clone()
        .unwrap_or_else(E::Action::schema);
    let hello = hello::<E>(&manifest, action_schema.clone());
    let out = Output::new();
    if out.write(&hello).is_err() {
        return ExitCode::FAILURE;
    }
    let ctx = Arc::new(Context {
        factory,
        action_schema,
    });
    let result = match manifest.concurrency {
        Concurrency::Inline => run_inline(&ctx, &out),
        Concurrency::ThreadPerSession => run_threaded(&ctx, &out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("envtorch worker: {e}");
            ExitCode::FAILURE
        }
    }
}

fn hello<E: Environment>(manifest: &Manifest, action_schema: Value) -> Hello {
    let observation = manifest
        .observation_schema
        .clone()
        .unwrap_or_else(crate::schema::observation_schema::<E::Observation>);
    Hello {
        protocol: PROTOCOL_VERSION,
        env: EnvManifest {
            name: manifest.name.clone(),
            version: manifest
                .metadata
                .get("version")
                .and_then(Value::as_str)
                .unwrap_or("1.0.0")
                .to_owned(),
            metadata: manifest.metadata.clone(),
            schemas: Schemas {
                action: action_schema,
                reset_observation: manifest
                    .reset_observation_schema
                    .clone()
                    .unwrap_or_else(|| observation.clone()),
                observation,
                state: manifest
                    .state_schema
                    .clone()
                    .unwrap_or_else(crate::schema::state_schema::<E::State>),
            },
            capabilities: Capabilities {
                mcp: manifest.mcp,
                tasks: manifest.tasks,
                concurrent_sessions: manifest.concurrency == Concurrency::ThreadPerSession
                    || manifest.isolation == envtorch_worker_protocol::Isolation::Shared,
                default_max_sessions: manifest.default_max_sessions,
                isolation: manifest.isolation,
            },
        },
    }
}

struct Context<F> {
    factory: F,
    action_schema: Value,
}

/// Stdout, shared by the threads that answer requests. Replies are written whole, under the
/// lock, so lines never interleave.
#[derive(Clone)]
struct Output {
    inner: Arc<Mutex<std::io::BufWriter<std::io::Stdout>>>,
}

impl Output {
    fn new() -> Self {
        Self {
            inner: Arc::new(Mutex::new(std::io::BufWriter::with_capacity(
                64 * 1024,
                std::io::stdout(),
            ))),
        }
    }

    fn write<T: Serialize>(&self, message: &T) -> std::io::Result<()> {
        self.write_line(&envtorch_worker_protocol::line(message), true)
    }

    fn write_line(&self, line: &[u8], flush: bool) -> std::io::Result<()> {
        let mut w = self
            .inner
            .lock()
            .map_err(|_| std::io::Error::other("stdout lock poisoned"))?;
        w.write_all(line)?;
        if flush {
            w.flush()?;
        }
        Ok(())
    }

    fn flush(&self) -> std::io::Result<()> {
        let mut w = self
            .inner
            .lock()
            .map_err(|_| std::io::Error::other("stdout lock poisoned"))?;
        w.flush()
    }
}

/// A request detached from its input line, so it can move to a session thread.
struct OwnedRequest {
    id: u64,
    op: Op,
    session: Option<String>,
    data: Option<Box<RawValue>>,
    timeout_s: Option<f64>,
    name: Option<String>,
}

impl OwnedRequest {
    fn from_line(line: &str) -> Result<Self, (Option<u64>, String)> {
        match serde_json::from_str::<Request<'_>>(line) {
            Ok(r) => Ok(Self {
                id: r.id,
                op: r.op,
                session: r.session.map(|s| s.into_owned()),
                data: r.data.map(ToOwned::to_owned),
                timeout_s: r.timeout_s,
                name: r.name.map(|s| s.into_owned()),
            }),
            Err(e) => {
                let id = serde_json::from_str::<Value>(line)
                    .ok()
                    .and_then(|v| v.get("id").and_then(Value::as_u64));
                Err((id, format!("malformed request: {e}")))
            }
        }
    }
}

fn reply_bytes(id: u64, result: Result<Box<RawValue>, WorkerError>) -> Vec<u8> {
    match &result {
        Ok(ok) => envtorch_worker_protocol::line(&ReplyOut {
            id,
            ok: Some(ok),
            err: None,
        }),
        Err(err) => envtorch_worker_protocol::line(&ReplyOut {
            id,
            ok: None,
            err: Some(err),
        }),
    }
}

fn run_inline<E, F>(ctx: &Context<F>, out: &Output) -> std::io::Result<()>
where
    E: Environment,
    F: Fn() -> Result<E, EnvError>,
{
    let mut sessions: HashMap<String, E> = HashMap::new();
    let mut input = BufReader::with_capacity(64 * 1024, std::io::stdin().lock());
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        let reply = match OwnedRequest::from_line(line.trim_end()) {
            Ok(req) => {
                let result = match req.op {
                    Op::Open => open(ctx, &mut sessions, &req),
                    Op::Close => close(&mut sessions, &req),
                    _ => match req.session.as_deref() {
                        Some(sid) => match sessions.get_mut(sid) {
                            Some(env) => handle(ctx, env, &req),
                            None => Err(unknown_session(sid)),
                        },
                        None => ephemeral(ctx, &req),
                    },
                };
                reply_bytes(req.id, result)
            }
            Err((Some(id), msg)) => {
                reply_bytes(id, Err(WorkerError::new(ErrorKind::Execution, msg)))
            }
            Err((None, msg)) => {
                eprintln!("envtorch worker: ignoring unreadable request: {msg}");
                continue;
            }
        };
        // Flush only when no further request is already buffered: pipelined requests are
        // answered with one write.
        out.write_line(&reply, input.buffer().is_empty())?;
    }
    for (_, mut env) in sessions.drain() {
        let _ = catch_unwind(AssertUnwindSafe(|| env.close()));
    }
    out.flush()
}

fn run_threaded<E, F>(ctx: &Arc<Context<F>>, out: &Output) -> std::io::Result<()>
where
    E: Environment,
    F: Fn() -> Result<E, EnvError> + Send + Sync + 'static,
{
    let mut sessions: HashMap<String, mpsc::Sender<OwnedRequest>> = HashMap::new();
    let mut threads = Vec::new();
    let mut input = BufReader::new(std::io::stdin().lock());
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        let req = match OwnedRequest::from_line(line.trim_end()) {
            Ok(req) => req,
            Err((Some(id), msg)) => {
                out.write_line(
                    &reply_bytes(id, Err(WorkerError::new(ErrorKind::Execution, msg))),
                    true,
                )?;
                continue;
            }
            Err((None, msg)) => {
                eprintln!("envtorch worker: ignoring unreadable request: {msg}");
                continue;
            }
        };
        match (req.op, req.session.clone()) {
            (Op::Open, Some(sid)) => {
                if sessions.contains_key(&sid) {
                    out.write_line(
                        &reply_bytes(
                            req.id,
                            Err(WorkerError::new(
                                ErrorKind::Factory,
                                format!("session {sid} already exists"),
                            )),
                        ),
                        true,
                    )?;
                    continue;
                }
                let (tx, rx) = mpsc::channel::<OwnedRequest>();
                let (ctx, out) = (Arc::clone(ctx), out.clone());
                threads.push(std::thread::spawn(move || {
                    session_thread(&ctx, &out, req, rx);
                }));
                sessions.insert(sid, tx);
            }
            (_, Some(sid)) => {
                let is_close = req.op == Op::Close;
                match sessions.get(&sid) {
                    Some(tx) => {
                        let id = req.id;
                        if tx.send(req).is_err() {
                            out.write_line(&reply_bytes(id, Err(unknown_session(&sid))), true)?;
                        }
                    }
                    None => {
                        out.write_line(&reply_bytes(req.id, Err(unknown_session(&sid))), true)?;
                    }
                }
                if is_close {
                    sessions.remove(&sid);
                }
            }
            (_, None) => {
                let (ctx, out) = (Arc::clone(ctx), out.clone());
                std::thread::spawn(move || {
                    let reply = reply_bytes(req.id, ephemeral(&ctx, &req));
                    let _ = out.write_line(&reply, true);
                });
            }
        }
    }
    drop(sessions);
    for t in threads {
        let _ = t.join();
    }
    out.flush()
}

/// One session's thread: creates the environment, then serves its requests in order.
fn session_thread<E, F>(
    ctx: &Context<F>,
    out: &Output,
    open_req: OwnedRequest,
    rx: mpsc::Receiver<OwnedRequest>,
) where
    E: Environment,
    F: Fn() -> Result<E, EnvError>,
{
    let mut env = match create(ctx) {
        Ok(env) => {
            let _ = out.write_line(&reply_bytes(open_req.id, Ok(empty_object())), true);
            env
        }
        Err(e) => {
            let _ = out.write_line(&reply_bytes(open_req.id, Err(e)), true);
            // Answer whatever was queued for the session that never came to be.
            for req in rx {
                let sid = req.session.unwrap_or_default();
                let _ = out.write_line(&reply_bytes(req.id, Err(unknown_session(&sid))), true);
            }
            return;
        }
    };
    for req in rx {
        if req.op == Op::Close {
            let _ = catch_unwind(AssertUnwindSafe(|| env.close()));
            let _ = out.write_line(&reply_bytes(req.id, Ok(empty_object())), true);
            return;
        }
        let result = handle(ctx, &mut env, &req);
        let _ = out.write_line(&reply_bytes(req.id, result), true);
    }
    // The server went away without closing the session.
    let _ = catch_unwind(AssertUnwindSafe(|| env.close()));
}

fn create<E, F>(ctx: &Context<F>) -> Result<E, WorkerError>
where
    F: Fn() -> Result<E, EnvError>,
{
    match catch_unwind(AssertUnwindSafe(|| (ctx.factory)())) {
        Ok(Ok(env)) => Ok(env),
        Ok(Err(e)) => Err(WorkerError::new(ErrorKind::Factory, e.to_string())),
        Err(panic) => Err(WorkerError::new(ErrorKind::Factory, panic_message(&panic))),
    }
}

fn open<E, F>(
    ctx: &Context<F>,
    sessions: &mut HashMap<String, E>,
    req: &OwnedRequest,
) -> Result<Box<RawValue>, WorkerError>
where
    F: Fn() -> Result<E, EnvError>,
{
    let Some(sid) = req.session.as_deref() else {
        return Err(WorkerError::new(
            ErrorKind::Execution,
            "open needs a session id",
        ));
    };
    if sessions.contains_key(sid) {
        return Err(WorkerError::new(
            ErrorKind::Factory,
            format!("session {sid} already exists"),
        ));
    }
    let env = create(ctx)?;
    sessions.insert(sid.to_owned(), env);
    Ok(empty_object())
}

fn close<E: Environment>(
    sessions: &mut HashMap<String, E>,
    req: &OwnedRequest,
) -> Result<Box<RawValue>, WorkerError> {
    let sid = req.session.as_deref().unwrap_or_default();
    match sessions.remove(sid) {
        Some(mut env) => {
            let _ = catch_unwind(AssertUnwindSafe(|| env.close()));
            Ok(empty_object())
        }
        None => Err(unknown_session(sid)),
    }
}

/// A request without a session: a fresh environment, used once and closed (stateless HTTP).
fn ephemeral<E, F>(ctx: &Context<F>, req: &OwnedRequest) -> Result<Box<RawValue>, WorkerError>
where
    E: Environment,
    F: Fn() -> Result<E, EnvError>,
{
    let mut env = create(ctx)?;
    let result = handle(ctx, &mut env, req);
    let _ = catch_unwind(AssertUnwindSafe(|| env.close()));
    result
}

/// Runs one operation on one environment, turning panics into execution errors.
fn handle<E: Environment, F>(
    ctx: &Context<F>,
    env: &mut E,
    req: &OwnedRequest,
) -> Result<Box<RawValue>, WorkerError> {
    match catch_unwind(AssertUnwindSafe(|| dispatch(ctx, env, req))) {
        Ok(result) => result,
        Err(panic) => Err(WorkerError::new(
            ErrorKind::Execution,
            panic_message(&panic),
        )),
    }
}

fn dispatch<E: Environment, F>(
    ctx: &Context<F>,
    env: &mut E,
    req: &OwnedRequest,
) -> Result<Box<RawValue>, WorkerError> {
    match req.op {
        Op::Reset => {
            let raw = match req.data.as_deref() {
                None => Map::new(),
                Some(d) => envtorch_wire::object::parse_deep::<Map<String, Value>>(d.get())
                    .map_err(|e| {
                        WorkerError::new(
                            ErrorKind::Validation,
                            format!("reset arguments must be an object: {e}"),
                        )
                    })?,
            };
            let obs = env.reset(ResetRequest { raw }).map_err(env_error)?;
            observation_reply(obs)
        }
        Op::Step => {
            let data = req.data.as_deref().map_or("{}", RawValue::get);
            let value: Value = envtorch_wire::object::parse_deep(data).map_err(|e| {
                WorkerError::new(ErrorKind::Validation, format!("action is not JSON: {e}"))
            })?;
            let action = E::Action::parse(value, &ctx.action_schema)
                .map_err(|issues| validation(&issues))?;
            let step_ctx = StepContext {
                timeout_s: req.timeout_s,
            };
            let obs = env.step(action, &step_ctx).map_err(env_error)?;
            observation_reply(obs)
        }
        Op::State => to_raw(&env.state()),
        Op::ListTools => {
            let provider = env.tools().ok_or_else(no_mcp)?;
            to_raw(&mcp::list_tools_result(provider.list_tools()))
        }
        Op::CallTool => {
            let provider = env.tools().ok_or_else(no_mcp)?;
            let name = req.name.as_deref().unwrap_or_default();
            let args = match req.data.as_deref() {
                None => Map::new(),
                Some(d) => envtorch_wire::object::parse_deep::<Map<String, Value>>(d.get())
                    .map_err(|e| {
                        WorkerError::new(
                            ErrorKind::InvalidParams,
                            format!("arguments must be an object: {e}"),
                        )
                    })?,
            };
            match mcp::call_tool(provider, name, &args) {
                Ok(output) => to_raw(&mcp::call_tool_result(&output)),
                Err(e) => Err(WorkerError::new(ErrorKind::Execution, e.message)),
            }
        }
        Op::Task => {
            let method = req.name.as_deref().unwrap_or_default();
            let args = match req.data.as_deref() {
                None => Map::new(),
                Some(d) => envtorch_wire::object::parse_deep::<Map<String, Value>>(d.get())
                    .unwrap_or_default(),
            };
            let value = env.task(method, &args).map_err(env_error)?;
            to_raw(&value)
        }
        Op::Open | Op::Close => Err(WorkerError::new(
            ErrorKind::Execution,
            "open/close need a session",
        )),
    }
}

/// `{"observation":{"metadata":…,…fields},"reward":…,"done":…,"metadata":…}`.
fn observation_reply<O: Serialize>(obs: Observation<O>) -> Result<Box<RawValue>, WorkerError> {
    let fields = serde_json::to_value(&obs.observation).map_err(|e| {
        WorkerError::new(
            ErrorKind::Execution,
            format!("observation is not serializable: {e}"),
        )
    })?;
    let Value::Object(fields) = fields else {
        return Err(WorkerError::new(
            ErrorKind::Execution,
            "observation must serialize to a JSON object",
        ));
    };
    let metadata = Value::Object(obs.metadata);
    let mut observation = Map::with_capacity(fields.len() + 1);
    observation.insert("metadata".into(), metadata.clone());
    observation.extend(fields.into_iter().filter(|(k, _)| k != "metadata"));
    #[derive(Serialize)]
    struct Reply<'a> {
        observation: &'a Map<String, Value>,
        reward: Option<crate::env::Reward>,
        done: bool,
        metadata: &'a Value,
    }
    to_raw(&Reply {
        observation: &observation,
        reward: obs.reward,
        done: obs.done,
        metadata: &metadata,
    })
}

fn to_raw<T: Serialize + ?Sized>(value: &T) -> Result<Box<RawValue>, WorkerError> {
    serde_json::value::to_raw_value(value).map_err(|e| {
        WorkerError::new(
            ErrorKind::Execution,
            format!("result is not serializable: {e}"),
        )
    })
}

fn empty_object() -> Box<RawValue> {
    RawValue::from_string("{}".to_owned()).unwrap_or_else(|_| Box::<RawValue>::default())
}

fn validation(issues: &[envtorch_wire::ValidationIssue]) -> WorkerError {
    WorkerError {
        kind: ErrorKind::Validation,
        message: "Invalid message".into(),
        errors: serde_json::to_value(issues).ok(),
    }
}

fn env_error(e: EnvError) -> WorkerError {
    match e {
        EnvError::Validation(issues) => validation(&issues),
        EnvError::Execution(m) => WorkerError::new(ErrorKind::Execution, m),
        EnvError::InvalidParams(m) => WorkerError::new(ErrorKind::InvalidParams, m),
        EnvError::Unsupported(m) => WorkerError::new(ErrorKind::Unsupported, m),
    }
}

fn unknown_session(sid: &str) -> WorkerError {
    WorkerError::new(
        ErrorKind::UnknownSession,
        format!("Unknown session_id: {sid}"),
    )
}

fn no_mcp() -> WorkerError {
    WorkerError::new(ErrorKind::Unsupported, "Environment does not support MCP")
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "environment panicked".to_owned()
    }
}
