//! The workers an environment runs on.
//!
//! Two placements, chosen by the environment's manifest:
//! - [`Placement::Shared`]: up to a fixed number of workers (one per core by default), each
//!   hosting many sessions; work goes to the worker with the fewest sessions and requests in
//!   flight. The pool starts with one worker and adds one (up to the limit) when the least
//!   loaded worker is already busy, so an idle server costs one worker process. A worker that
//!   dies is replaced by its slot's supervisor, with backoff, so capacity comes back.
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
    slots: RwLock<Vec<Arc<Slot>>>,
    /// Held while a worker is being added, so concurrent requests add at most one.
    growing: tokio::sync::Mutex<()>,
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
        let pool = Arc::new(WorkerPool {
            spec,
            manifest,
            placement,
            slots: RwLock::new(Vec::new()),
            growing: tokio::sync::Mutex::new(()),
            shutdown,
        });
        match placement {
            Placement::Shared(_) => pool.add_slot(first),
            Placement::PerSession => first.retire(),
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
        self.slot_list().iter().map(|s| current(s)).collect()
    }

    fn slot_list(&self) -> Vec<Arc<Slot>> {
        match self.slots.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Adds a slot for `worker` and starts its supervisor.
    fn add_slot(&self, worker: Arc<Worker>) {
        let slot = Arc::new(Slot {
            current: RwLock::new(worker),
            sessions: AtomicUsize::new(0),
        });
        let index = match self.slots.write() {
            Ok(mut slots) => {
                slots.push(Arc::clone(&slot));
                slots.len() - 1
            }
            Err(_) => return,
        };
        tokio::spawn(supervise(
            index,
            slot,
            self.spec.clone(),
            self.shutdown.clone(),
        ));
    }

    /// The least loaded slot, after adding a worker if that one is busy and the limit allows.
    async fn least_loaded(&self, limit: usize) -> Result<Arc<Slot>, SpawnError> {
        let pick = |slots: &[Arc<Slot>]| {
            slots
                .iter()
                .min_by_key(|s| s.sessions.load(Ordering::Relaxed))
                .cloned()
        };
        let slots = self.slot_list();
        let busy = pick(&slots).is_none_or(|s| s.sessions.load(Ordering::Relaxed) > 0);
        if busy && slots.len() < limit {
            let _growing = self.growing.lock().await;
            let slots = self.slot_list();
            let still_busy = pick(&slots).is_none_or(|s| s.sessions.load(Ordering::Relaxed) > 0);
            if still_busy && slots.len() < limit {
                match Worker::spawn(&self.spec).await {
                    Ok(worker) => {
                        tracing::debug!(worker = worker.serial, "worker added");
                        self.add_slot(worker);
                    }
                    // Serve with the workers there are; the next busy moment tries again.
                    Err(e) => tracing::warn!(error = %e, "cannot add a worker"),
                }
            }
        }
        pick(&self.slot_list()).ok_or_else(|| SpawnError::Handshake {
            program: self.spec.program.display().to_string(),
            reason: "no workers".into(),
        })
    }

    /// A worker for a new session.
    pub async fn lease(&self) -> Result<Lease, SpawnError> {
        match self.placement {
            Placement::PerSession => Ok(Lease {
                worker: Worker::spawn(&self.spec).await?,
                slot: None,
            }),
            Placement::Shared(limit) => {
                let slot = self.least_loaded(limit).await?;
                slot.sessions.fetch_add(1, Ordering::Relaxed);
                Ok(Lease {
                    worker: current(&slot),
                    slot: Some(slot),
                })
            }
        }
    }

    /// A worker for one stateless request (HTTP reset/step/state, stateless MCP). With
    /// per-session placement this is a fresh worker, stopped when the lease drops.
    pub async fn for_request(&self) -> Result<Lease, SpawnError> {
        // The same placement as a session: the lease counts as load while the request runs.
        self.lease().await
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
