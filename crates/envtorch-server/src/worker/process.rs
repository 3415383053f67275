//! One environment worker process.
//!
//! Lifecycle: [`Worker::spawn`] starts the binary and reads its handshake; requests are then
//! written to its stdin by a writer task (batched: everything queued goes out in one write) and
//! replies are read from its stdout by a reader task that completes the matching waiter. The
//! worker is *dead* once its stdout ends, it writes something that is not a reply, a request
//! times out, or [`Worker::kill`] is called; every waiting and later request then fails with
//! [`WorkerFailure::Dead`], and [`Worker::dead`] resolves so sessions on it can be failed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::value::RawValue;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

use envtorch_worker_protocol::{
    EnvManifest, Hello, Op, PROTOCOL_VERSION, Reply, Request, WorkerError,
};

/// Longest reply line accepted from a worker (clients accept replies up to 100 MiB).
const MAX_REPLY_LINE: usize = 128 * 1024 * 1024;

/// How to start a worker.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    /// The environment binary.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// How long the handshake may take.
    pub handshake_timeout: Duration,
    /// How long any request may take before the worker is considered hung and killed.
    pub request_timeout: Duration,
}

/// Why a request got no reply.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WorkerFailure {
    /// The worker is gone (crashed, killed, or broke the protocol); the reason says which.
    #[error("environment worker failed: {0}")]
    Dead(Arc<str>),
    /// The worker did not answer in time; it has been killed.
    #[error("environment worker did not answer within {0:?} and was restarted")]
    Timeout(Duration),
}

type Waiter = oneshot::Sender<Result<Reply, WorkerFailure>>;

/// A running worker process. Cheap to share (`Arc<Worker>`).
#[derive(Debug)]
pub struct Worker {
    /// A number for logs; unique in this server.
    pub serial: u64,
    manifest: EnvManifest,
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, Waiter>>,
    outbox: mpsc::UnboundedSender<Vec<u8>>,
    death: watch::Sender<Option<Arc<str>>>,
    request_timeout: Duration,
    pid: Option<u32>,
}

/// Errors starting a worker.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The binary could not be started.
    #[error("cannot start environment {program}: {source}")]
    Start {
        /// The binary.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The handshake was missing, late, malformed or of another protocol version.
    #[error("environment {program} gave no valid handshake: {reason}")]
    Handshake {
        /// The binary.
        program: String,
        /// Why.
        reason: String,
    },
}

static SERIAL: AtomicU64 = AtomicU64::new(1);

impl Worker {
    /// Starts the worker and waits for its handshake.
    pub async fn spawn(spec: &WorkerSpec) -> Result<Arc<Worker>, SpawnError> {
        let program = spec.program.display().to_string();
        let mut child = Command::new(&spec.program)
            .args(&spec.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| SpawnError::Start {
                program: program.clone(),
                source,
            })?;
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        let pid = child.id();
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(SpawnError::Handshake {
                program,
                reason: "stdio pipes missing".into(),
            });
        };
        tokio::spawn(forward_log(serial, stderr));
        let mut lines = FramedRead::new(stdout, LinesCodec::new_with_max_length(MAX_REPLY_LINE));
        let first = tokio::time::timeout(spec.handshake_timeout, lines.next()).await;
        let hello: Hello = match first {
            Err(_) => {
                return Err(handshake_error(
                    &program,
                    format!("none within {:?}", spec.handshake_timeout),
                    child,
                )
                .await);
            }
            Ok(None) => {
                return Err(
                    handshake_error(&program, "the process exited".to_owned(), child).await,
                );
            }
            Ok(Some(Err(e))) => return Err(handshake_error(&program, e.to_string(), child).await),
            Ok(Some(Ok(line))) => match serde_json::from_str(&line) {
                Ok(h) => h,
                Err(e) => {
                    return Err(handshake_error(
                        &program,
                        format!("{e}: {}", truncate(&line, 200)),
                        child,
                    )
                    .await);
                }
            },
        };
        if hello.protocol != PROTOCOL_VERSION {
            let reason = format!(
                "protocol version {} (this server speaks {PROTOCOL_VERSION})",
                hello.protocol
            );
            return Err(handshake_error(&program, reason, child).await);
        }
        let (outbox, inbox) = mpsc::unbounded_channel();
        let (death, _) = watch::channel(None);
        let worker = Arc::new(Worker {
            serial,
            manifest: hello.env,
            next_id: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            outbox,
            death,
            request_timeout: spec.request_timeout,
            pid,
        });
        tokio::spawn(write_loop(Arc::clone(&worker), stdin, inbox));
        tokio::spawn(read_loop(Arc::clone(&worker), lines));
        tokio::spawn(reap(Arc::clone(&worker), child));
        tracing::debug!(worker = serial, pid, "worker started");
        Ok(worker)
    }

    /// What the worker said about its environment in the handshake.
    pub fn manifest(&self) -> &EnvManifest {
        &self.manifest
    }

    /// The OS process id, when known.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Whether the worker has died.
    pub fn is_dead(&self) -> bool {
        self.death.borrow().is_some()
    }

    /// Resolves with the reason once the worker is dead.
    pub async fn dead(&self) -> Arc<str> {
        let mut rx = self.death.subscribe();
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                return Arc::from("worker handle dropped");
            }
        }
    }

    /// Stops a worker that is no longer needed (its session ended, the server is shutting
    /// down): like [`Worker::kill`], without logging it as a failure.
    pub fn retire(&self) {
        self.stop("retired", false);
    }

    /// Marks the worker dead and stops it; idempotent. Pending requests fail with `reason`.
    pub fn kill(&self, reason: &str) {
        self.stop(reason, true);
    }

    fn stop(&self, reason: &str, is_failure: bool) {
        let reason: Arc<str> = Arc::from(reason);
        let first = self.death.send_if_modified(|d| {
            if d.is_none() {
                *d = Some(Arc::clone(&reason));
                true
            } else {
                false
            }
        });
        if first {
            if is_failure {
                tracing::warn!(worker = self.serial, pid = self.pid, %reason, "worker failed");
            } else {
                tracing::debug!(worker = self.serial, pid = self.pid, "worker retired");
            }
            let waiters: Vec<Waiter> = match self.pending.lock() {
                Ok(mut p) => p.drain().map(|(_, w)| w).collect(),
                Err(_) => Vec::new(),
            };
            for w in waiters {
                let _ = w.send(Err(WorkerFailure::Dead(Arc::clone(&reason))));
            }
        }
    }

    /// Sends a request and waits for its reply.
    ///
    /// `Ok(Err(_))` is the environment's own error (validation, execution, …); `Err(_)` means
    /// the worker failed, in which case it is dead and its sessions are lost.
    pub async fn request(
        &self,
        op: Op,
        session: Option<&str>,
        data: Option<&RawValue>,
        name: Option<&str>,
        timeout_s: Option<f64>,
    ) -> Result<Result<Box<RawValue>, WorkerError>, WorkerFailure> {
        if let Some(reason) = self.death.borrow().clone() {
            return Err(WorkerFailure::Dead(reason));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut req = Request::new(id, op, session);
        req.data = data;
        req.name = name.map(std::borrow::Cow::Borrowed);
        req.timeout_s = timeout_s;
        let (tx, rx) = oneshot::channel();
        match self.pending.lock() {
            Ok(mut p) => {
                p.insert(id, tx);
            }
            Err(_) => return Err(WorkerFailure::Dead(Arc::from("worker state poisoned"))),
        }
        // Re-check after registering, so a death between the first check and the insert
        // cannot leave this waiter behind.
        if let Some(reason) = self.death.borrow().clone() {
            self.forget(id);
            return Err(WorkerFailure::Dead(reason));
        }
        if self.outbox.send(req.to_line()).is_err() {
            self.forget(id);
            return Err(WorkerFailure::Dead(Arc::from("worker input closed")));
        }
        // A client's timeout_s may extend the deadline of a step; never shorten it below the
        // configured bound, and never let it be unbounded.
        let limit = match timeout_s {
            Some(t) if t.is_finite() && t > 0.0 => self
                .request_timeout
                .max(Duration::from_secs_f64(t.min(86_400.0)) + Duration::from_secs(5)),
            _ => self.request_timeout,
        };
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(Ok(reply))) => Ok(match (reply.ok, reply.err) {
                (_, Some(err)) => Err(err),
                (Some(ok), None) => Ok(ok),
                (None, None) => Ok(empty_object()),
            }),
            Ok(Ok(Err(failure))) => Err(failure),
            Ok(Err(_)) => Err(WorkerFailure::Dead(Arc::from("reply channel closed"))),
            Err(_) => {
                self.forget(id);
                self.kill(&format!(
                    "no reply to a {op:?} request within {limit:?} (hung)"
                ));
                Err(WorkerFailure::Timeout(limit))
            }
        }
    }

    fn forget(&self, id: u64) {
        if let Ok(mut p) = self.pending.lock() {
            p.remove(&id);
        }
    }

    fn complete(&self, reply: Reply) -> bool {
        let waiter = match self.pending.lock() {
            Ok(mut p) => p.remove(&reply.id),
            Err(_) => None,
        };
        match waiter {
            Some(w) => {
                let _ = w.send(Ok(reply));
                true
            }
            // A reply to a request that already timed out; harmless.
            None => true,
        }
    }
}

fn empty_object() -> Box<RawValue> {
    RawValue::from_string("{}".to_owned()).unwrap_or_default()
}

async fn handshake_error(program: &str, reason: String, mut child: Child) -> SpawnError {
    let _ = child.start_kill();
    let _ = child.wait().await;
    SpawnError::Handshake {
        program: program.to_owned(),
        reason,
    }
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Writes queued requests, batching whatever is queued into one write.
async fn write_loop(
    worker: Arc<Worker>,
    mut stdin: ChildStdin,
    mut inbox: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let mut death = worker.death.subscribe();
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        let first = tokio::select! {
            m = inbox.recv() => m,
            _ = death.changed() => None,
        };
        let Some(first) = first else { break };
        buf.clear();
        buf.extend_from_slice(&first);
        while buf.len() < 1024 * 1024 {
            match inbox.try_recv() {
                Ok(more) => buf.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if let Err(e) = stdin.write_all(&buf).await {
            worker.kill(&format!("cannot write to the worker: {e}"));
            break;
        }
        if let Err(e) = stdin.flush().await {
            worker.kill(&format!("cannot write to the worker: {e}"));
            break;
        }
    }
    // Dropping stdin closes it: a healthy worker exits when its input ends.
}

/// Reads replies; anything that is not a reply line means the worker is broken.
async fn read_loop(
    worker: Arc<Worker>,
    mut lines: FramedRead<tokio::process::ChildStdout, LinesCodec>,
) {
    let mut death = worker.death.subscribe();
    loop {
        let next = tokio::select! {
            n = lines.next() => n,
            _ = death.changed() => return,
        };
        match next {
            None => {
                worker.kill("the process exited");
                return;
            }
            Some(Err(LinesCodecError::MaxLineLengthExceeded)) => {
                worker.kill("it wrote a reply larger than 128 MiB");
                return;
            }
            Some(Err(LinesCodecError::Io(e))) => {
                worker.kill(&format!("reading its output failed: {e}"));
                return;
            }
            Some(Ok(line)) => match serde_json::from_str::<Reply>(&line) {
                Ok(reply) => {
                    worker.complete(reply);
                }
                Err(_) => {
                    worker.kill(&format!(
                        "it wrote something that is not a protocol reply: {:?}",
                        truncate(&line, 120)
                    ));
                    return;
                }
            },
        }
    }
}

/// Waits for the process to end (or to be killed), then records how it ended.
async fn reap(worker: Arc<Worker>, mut child: Child) {
    let mut death = worker.death.subscribe();
    let status = tokio::select! {
        s = child.wait() => s,
        _ = death.changed() => {
            // Give a well-behaved worker a moment to exit on closed stdin, then kill it.
            match tokio::time::timeout(Duration::from_millis(500), child.wait()).await {
                Ok(s) => s,
                Err(_) => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            }
        }
    };
    let how = match status {
        Ok(s) => format!("the process exited ({s})"),
        Err(e) => format!("the process could not be waited for: {e}"),
    };
    worker.kill(&how);
}

async fn forward_log(serial: u64, stderr: tokio::process::ChildStderr) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "envtorch::worker", worker = serial, "{line}");
    }
}
