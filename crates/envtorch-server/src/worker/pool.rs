//! The workers an environment runs on.
//!
//! Two placements, chosen by the environment's manifest:
//! - [`Placement::Shared`]: a fixed number of workers (one per core by default), each hosting
//!   many sessions; a new session goes to the worker with the fewest. A worker that dies is
//!   replaced by its slot's supervisor, with backoff, so capacity comes back.
//! - [`Placement::PerSession`]: every session (and every stateless request) gets a worker of
//!   its own, stopped when it ends, for environments that need process isolation.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::process::{SpawnError, Worker, WorkerSpec};
use envtorch_worker_protocol::{EnvManifest, Isolation};

/// How sessions are placed on workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// This many long-lived workers share all sessions.
    Shared(usize),
    /// One worker per session.
    PerSession,
}

struct Slot {
    current: RwLock<Arc<Worker>>,
    sessions: AtomicUsize,
}

/// The environment's workers.
pub struct WorkerPool {
    spec: WorkerSpec,
    manifest: EnvManifest,
    placement: Placement,
    slots: Vec<Arc<Slot>>,
    next_stateless: AtomicUsize,
    shutdown: CancellationToken,
}

/// A session's claim on a worker. Dropping it gives the place back: the slot's session count
/// goes down, or the session's own worker is stopped.
pub struct Lease {
    worker: Arc<Worker>,
    slot: Option<Arc<Slot>>,
}

impl Lease {
    /// The worker that hosts the session.
    pub fn worker(&self) -> &Arc<Worker> {
        &self.worker
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        match &self.slot {
            Some(slot) => {
                slot.sessions.fetch_sub(1, Ordering::Relaxed);
            }
            None => self.worker.retire(),
        }
    }
}

impl WorkerPool {
    /// Starts the first worker (its handshake describes the environment), then the rest.
    /// `workers` overrides the number of shared workers (default: one per core);
    /// `isolation` overrides the environment's placement.
    pub async fn start(
        spec: WorkerSpec,
        workers: Option<usize>,
        isolation: Option<Isolation>,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, SpawnError> {
        let first = Worker::spawn(&spec).await?;
        let manifest = first.manifest().clone();
        let placement = match isolation.unwrap_or(manifest.capabilities.isolation) {
            Isolation::PerSession => Placement::PerSession,
            Isolation::Shared => {
                let cores = std::thread::available_parallelism().map_or(1, usize::from);
                let n = if manifest.capabilities.concurrent_sessions {
                    workers.unwrap_or(cores).max(1)
                } else {
                    1
                };
                Placement::Shared(n)
            }
        };
        let mut slots = Vec::new();
        if let Placement::Shared(n) = placement {
            slots.push(Arc::new(Slot {
                current: RwLock::new(first),
                sessions: AtomicUsize::new(0),
            }));
            for _ in 1..n {
                let w = Worker::spawn(&spec).await?;
                slots.push(Arc::new(Slot {
                    current: RwLock::new(w),
                    sessions: AtomicUsize::new(0),
                }));
            }
        } else {
            first.retire();
        }
        let pool = Arc::new(WorkerPool {
            spec,
            manifest,
            placement,
            slots,
            next_stateless: AtomicUsize::new(0),
            shutdown,
        });
        for (i, slot) in pool.slots.iter().enumerate() {
            tokio::spawn(supervise(
                i,
                Arc::clone(slot),
                pool.spec.clone(),
                pool.shutdown.clone(),
            ));
        }
        Ok(pool)
    }

    /// The environment's handshake.
    pub fn manifest(&self) -> &EnvManifest {
        &self.manifest
    }

    /// The placement in use.
    pub fn placement(&self) -> Placement {
        self.placement
    }

    /// The workers currently serving (shared placement), for tests and diagnostics.
    pub fn workers(&self) -> Vec<Arc<Worker>> {
        self.slots
            .iter()
            .filter_map(|s| s.current.read().ok().map(|w| Arc::clone(&w)))
            .collect()
    }

    /// A worker for a new session.
    pub async fn lease(&self) -> Result<Lease, SpawnError> {
        match self.placement {
            Placement::PerSession => Ok(Lease {
                worker: Worker::spawn(&self.spec).await?,
                slot: None,
            }),
            Placement::Shared(_) => {
                let slot = self
                    .slots
                    .iter()
                    .min_by_key(|s| s.sessions.load(Ordering::Relaxed))
                    .ok_or_else(|| SpawnError::Handshake {
                        program: self.spec.program.display().to_string(),
                        reason: "no workers".into(),
                    })?;
                slot.sessions.fetch_add(1, Ordering::Relaxed);
                let worker = current(slot);
                Ok(Lease {
                    worker,
                    slot: Some(Arc::clone(slot)),
                })
            }
        }
    }

    /// A worker for one stateless request (HTTP reset/step/state, stateless MCP). With
    /// per-session placement this is a fresh worker, stopped when the lease drops.
    pub async fn for_request(&self) -> Result<Lease, SpawnError> {
        match self.placement {
            Placement::PerSession => self.lease().await,
            Placement::Shared(n) => {
                let i = self.next_stateless.fetch_add(1, Ordering::Relaxed) % n.max(1);
                let slot = &self.slots[i.min(self.slots.len().saturating_sub(1))];
                slot.sessions.fetch_add(1, Ordering::Relaxed);
                Ok(Lease {
                    worker: current(slot),
                    slot: Some(Arc::clone(slot)),
                })
            }
        }
    }

    /// Stops every worker (shutdown).
    pub fn retire_all(&self) {
        for w in self.workers() {
            w.retire();
        }
    }
}

fn current(slot: &Slot) -> Arc<Worker> {
    match slot.current.read() {
        Ok(w) => Arc::clone(&w),
        Err(poisoned) => Arc::clone(&poisoned.into_inner()),
    }
}

/// Keeps one slot staffed: when its worker dies, starts another (1 s, 2 s, … up to 10 s apart
/// while starts keep failing).
async fn supervise(index: usize, slot: Arc<Slot>, spec: WorkerSpec, shutdown: CancellationToken) {
    loop {
        let worker = current(&slot);
        tokio::select! {
            _ = worker.dead() => {}
            _ = shutdown.cancelled() => return,
        }
        let mut backoff = Duration::from_millis(100);
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            match Worker::spawn(&spec).await {
                Ok(fresh) => {
                    tracing::info!(slot = index, worker = fresh.serial, "worker replaced");
                    if let Ok(mut w) = slot.current.write() {
                        *w = fresh;
                    }
                    break;
                }
                Err(e) => {
                    tracing::error!(slot = index, error = %e, "cannot restart worker; retrying in {backoff:?}");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}
