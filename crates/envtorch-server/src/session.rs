//! Sessions: one environment instance each, counted against `MAX_CONCURRENT_ENVS`.
//!
//! A session is created by a `/ws` or `WS /mcp` connection, or by JSON-RPC
//! `openenv/session/create`; all three draw from one capacity pool, as in the reference.
//! Lifecycle: [`Sessions::create`] takes a slot and opens the environment on a worker;
//! [`Sessions::destroy`] closes it and frees the slot. A socket may *attach* to an existing
//! session (`/ws?session_id=`), taking no slot; when it leaves, the session survives unless a
//! close was requested meanwhile. Sessions whose worker died, or that stayed idle past the
//! configured timeout, are destroyed by [`Sessions::reap`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use envtorch_worker_protocol::{Op, WorkerError};

use crate::worker::pool::Lease;
use crate::worker::{WorkerFailure, WorkerPool};

/// One environment instance and its bookkeeping.
pub struct Session {
    /// The session id (a UUID).
    pub id: String,
    lease: Lease,
    /// Serializes operations: a session's environment never runs two calls at once.
    op_lock: tokio::sync::Mutex<()>,
    attached: AtomicBool,
    close_requested: AtomicBool,
    last_used_ms: AtomicU64,
    /// Wakes the socket serving this session when the server ends it (idle, worker death).
    ended: Notify,
    ended_reason: Mutex<Option<String>>,
    _permit: OwnedSemaphorePermit,
}

impl Session {
    /// Runs one operation on this session's environment.
    pub async fn call(
        &self,
        op: Op,
        data: Option<&RawValue>,
        name: Option<&str>,
    ) -> Result<Result<Box<RawValue>, WorkerError>, WorkerFailure> {
        let _guard = self.op_lock.lock().await;
        self.touch();
        let result = self
            .lease
            .worker()
            .request(op, Some(&self.id), data, name, None)
            .await;
        self.touch();
        result
    }

    /// Whether a socket is attached through `?session_id=`.
    pub fn is_attached(&self) -> bool {
        self.attached.load(Ordering::Acquire)
    }

    /// The worker hosting this session died: resolves with the reason.
    pub async fn worker_dead(&self) -> Arc<str> {
        self.lease.worker().dead().await
    }

    /// Resolves when the server ended the session (idle timeout, shutdown), with the reason.
    pub async fn ended(&self) -> String {
        loop {
            let notified = self.ended.notified();
            if let Some(reason) = self.ended_reason.lock().ok().and_then(|r| r.clone()) {
                return reason;
            }
            notified.await;
        }
    }

    fn end(&self, reason: &str) {
        if let Ok(mut r) = self.ended_reason.lock() {
            r.get_or_insert_with(|| reason.to_owned());
        }
        self.ended.notify_waiters();
    }

    fn touch(&self) {
        self.last_used_ms.store(now_ms(), Ordering::Relaxed);
    }
}

fn now_ms() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Why a session could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// Every slot is taken.
    #[error("Server at capacity: {active}/{max} sessions active. Cannot accept new connections.")]
    Capacity {
        /// Sessions active.
        active: usize,
        /// The limit.
        max: usize,
    },
    /// The environment could not be created.
    #[error("Environment factory 'factory' failed to create instance.")]
    Factory(String),
}

/// Why a socket could not attach to a session.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// No such session.
    #[error("Unknown session_id: {0}")]
    Unknown(String),
    /// Another socket holds it.
    #[error("Session {0} already has an attached WebSocket")]
    AlreadyAttached(String),
}

/// What closing a session by id did.
#[derive(Debug, PartialEq, Eq)]
pub enum CloseOutcome {
    /// Destroyed now.
    Closed,
    /// A socket is attached; destroyed when it leaves.
    Closing,
    /// No such session.
    Unknown,
}

/// All sessions of the server.
pub struct Sessions {
    pool: Arc<WorkerPool>,
    max: usize,
    slots: Arc<Semaphore>,
    map: Mutex<HashMap<String, Arc<Session>>>,
    idle_timeout: Option<Duration>,
}

impl Sessions {
    /// A registry allowing `max` sessions at once.
    pub fn new(pool: Arc<WorkerPool>, max: usize, idle_timeout: Option<Duration>) -> Self {
        Self {
            pool,
            max,
            slots: Arc::new(Semaphore::new(max)),
            map: Mutex::new(HashMap::new()),
            idle_timeout,
        }
    }

    /// The session limit.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Sessions currently holding a slot.
    pub fn active(&self) -> usize {
        self.max - self.slots.available_permits()
    }

    /// Creates a session: takes a slot, opens the environment on a worker.
    pub async fn create(&self) -> Result<Arc<Session>, CreateError> {
        let permit =
            Arc::clone(&self.slots)
                .try_acquire_owned()
                .map_err(|_| CreateError::Capacity {
                    active: self.active(),
                    max: self.max,
                })?;
        let lease = self
            .pool
            .lease()
            .await
            .map_err(|e| CreateError::Factory(e.to_string()))?;
        let id = uuid::Uuid::new_v4().to_string();
        match lease
            .worker()
            .request(Op::Open, Some(&id), None, None, None)
            .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(CreateError::Factory(e.message)),
            Err(f) => return Err(CreateError::Factory(f.to_string())),
        }
        let session = Arc::new(Session {
            id: id.clone(),
            lease,
            op_lock: tokio::sync::Mutex::new(()),
            attached: AtomicBool::new(false),
            close_requested: AtomicBool::new(false),
            last_used_ms: AtomicU64::new(now_ms()),
            ended: Notify::new(),
            ended_reason: Mutex::new(None),
            _permit: permit,
        });
        if let Ok(mut m) = self.map.lock() {
            m.insert(id, Arc::clone(&session));
        }
        Ok(session)
    }

    /// Looks a session up.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.map.lock().ok().and_then(|m| m.get(id).cloned())
    }

    /// Attaches a socket to an existing session (no slot is taken).
    pub fn attach(&self, id: &str) -> Result<Arc<Session>, AttachError> {
        let session = self
            .get(id)
            .ok_or_else(|| AttachError::Unknown(id.to_owned()))?;
        if session.attached.swap(true, Ordering::AcqRel) {
            return Err(AttachError::AlreadyAttached(id.to_owned()));
        }
        session.touch();
        Ok(session)
    }

    /// The attached socket left. The session survives, unless a close was requested while it
    /// was attached.
    pub async fn detach(&self, session: &Arc<Session>) {
        session.attached.store(false, Ordering::Release);
        session.touch();
        if session.close_requested.load(Ordering::Acquire) {
            self.destroy(&session.id).await;
        }
    }

    /// Closes by id (JSON-RPC `openenv/session/close`).
    pub async fn close(&self, id: &str) -> CloseOutcome {
        let Some(session) = self.get(id) else {
            return CloseOutcome::Unknown;
        };
        if session.is_attached() {
            session.close_requested.store(true, Ordering::Release);
            return CloseOutcome::Closing;
        }
        self.destroy(id).await;
        CloseOutcome::Closed
    }

    /// Removes the session, closes its environment and frees its slot. Idempotent.
    pub async fn destroy(&self, id: &str) {
        let removed = self.map.lock().ok().and_then(|mut m| m.remove(id));
        if let Some(session) = removed {
            if !session.lease.worker().is_dead() {
                // Best effort: a worker that does not answer is killed by its own timeout.
                let _ = session
                    .lease
                    .worker()
                    .request(Op::Close, Some(id), None, None, None)
                    .await;
            }
            session.end("session closed");
        }
    }

    /// Destroys sessions whose worker died or that were idle too long. Returns how many.
    pub async fn reap(&self) -> usize {
        let now = now_ms();
        let victims: Vec<(Arc<Session>, &'static str)> = match self.map.lock() {
            Ok(m) => m
                .values()
                .filter_map(|s| {
                    if s.lease.worker().is_dead() {
                        Some((Arc::clone(s), "its environment worker stopped"))
                    } else if let Some(limit) = self.idle_timeout {
                        let idle = now.saturating_sub(s.last_used_ms.load(Ordering::Relaxed));
                        let busy = s.op_lock.try_lock().is_err();
                        (!busy && idle > limit.as_millis() as u64)
                            .then(|| (Arc::clone(s), "it was idle longer than the session timeout"))
                    } else {
                        None
                    }
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        let n = victims.len();
        for (session, reason) in victims {
            tracing::info!(session = %session.id, reason, "session reaped");
            session.end(&format!("session ended by the server: {reason}"));
            self.destroy(&session.id).await;
        }
        n
    }

    /// Ends every session (shutdown).
    pub async fn destroy_all(&self) {
        let ids: Vec<String> = self
            .map
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for id in ids {
            if let Some(s) = self.get(&id) {
                s.end("server shutting down");
            }
            self.destroy(&id).await;
        }
    }

    /// Number of sessions in the registry.
    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
