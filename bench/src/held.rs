//! Holding many sessions: open sessions in steps up to a target count, measure the RSS of the
//! server's whole process tree at chosen counts, and at each count let every session step at
//! a fixed pace (open loop, one step per `interval` per session) to find the most sessions
//! held with p99 step latency under the objective.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::watch;

use crate::load::{new_hist, record};
use crate::server::Running;
use crate::sys::tree_rss;
use crate::ws::{STEP_FRAME, Ws, call, close, open_many};

/// What the held sessions should do.
#[derive(Debug, Clone, Copy)]
enum Phase {
    Idle,
    Step {
        id: u64,
        start: Instant,
        measure_from: Instant,
        end: Instant,
    },
    Stop,
}

/// Sessions the server dropped while they were held, and why the first one went.
#[derive(Default)]
struct Losses {
    count: u64,
    first: Option<String>,
}

struct WindowStats {
    hist: Histogram<u64>,
    ops: u64,
    errors: u64,
    first_error: Option<String>,
}

/// Parameters of the ramp.
#[derive(Debug, Clone)]
pub(crate) struct RampConfig {
    pub(crate) levels: Vec<usize>,
    pub(crate) memory_levels: Vec<usize>,
    pub(crate) step_interval: Duration,
    pub(crate) warmup: Duration,
    pub(crate) measure: Duration,
    pub(crate) slo_p99: Duration,
    pub(crate) open_parallel: usize,
    pub(crate) open_timeout: Duration,
    pub(crate) time_budget: Duration,
}

/// One count of held sessions.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Level {
    pub(crate) target: usize,
    pub(crate) held: usize,
    pub(crate) open_failed: usize,
    pub(crate) open_seconds: f64,
    pub(crate) open_first_error: Option<String>,
    pub(crate) rss_tree_kib: u64,
    pub(crate) rss_processes: usize,
    pub(crate) kib_per_session: f64,
    /// Present when the sessions stepped at this count.
    pub(crate) step_rate: Option<f64>,
    pub(crate) step_ops: Option<u64>,
    pub(crate) step_errors: Option<u64>,
    pub(crate) step_p50_us: Option<u64>,
    pub(crate) step_p99_us: Option<u64>,
    pub(crate) step_max_us: Option<u64>,
    pub(crate) step_first_error: Option<String>,
    pub(crate) under_slo: Option<bool>,
    /// Held sessions the server dropped so far (not counting the step failures), and why
    /// the first one was dropped.
    pub(crate) dropped_so_far: u64,
    pub(crate) first_drop: Option<String>,
    /// CPU used during the stepping window, as a fraction of one core: server main
    /// process, its descendants (workers), load generator.
    pub(crate) cpu_cores_server_main: Option<f64>,
    pub(crate) cpu_cores_server_children: Option<f64>,
    pub(crate) cpu_cores_generator: Option<f64>,
}

/// The whole ramp.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RampResult {
    pub(crate) idle_rss_kib: u64,
    pub(crate) idle_rss_processes: usize,
    pub(crate) levels: Vec<Level>,
    /// The most sessions held with every session stepping and p99 under the objective.
    pub(crate) max_held_under_slo: usize,
    /// The most sessions open at once.
    pub(crate) max_open: usize,
    pub(crate) stopped_because: String,
    pub(crate) step_interval_ms: u64,
    pub(crate) slo_p99_ms: u64,
}

pub(crate) async fn ramp(server: &Running, cfg: &RampConfig) -> anyhow::Result<RampResult> {
    let template = new_hist()?;
    let started = Instant::now();
    let idle = tree_rss(server.pid);
    let (tx, rx) = watch::channel(Phase::Idle);
    let stats = Arc::new(Mutex::new(WindowStats {
        hist: template.clone(),
        ops: 0,
        errors: 0,
        first_error: None,
    }));
    let alive = Arc::new(AtomicUsize::new(0));
    let losses = Arc::new(Mutex::new(Losses::default()));
    let mut tasks = Vec::new();
    let mut levels = Vec::new();
    let mut stepping = true;
    let mut max_held_under_slo = 0;
    let mut stopped_because = "reached the last level".to_owned();
    let max_memory_level = cfg.memory_levels.iter().copied().max().unwrap_or(0);
    let mut window_id = 0u64;
    for &target in &cfg.levels {
        if started.elapsed() > cfg.time_budget {
            stopped_because = format!("time budget of {:?} used", cfg.time_budget);
            break;
        }
        if !stepping && target > max_memory_level {
            break;
        }
        let held_before = alive.load(Ordering::Relaxed);
        let want = target.saturating_sub(held_before);
        let t_open = Instant::now();
        let (opened, failed, first_error) =
            open_many(server.port, want, cfg.open_parallel, cfg.open_timeout).await;
        let open_seconds = t_open.elapsed().as_secs_f64();
        for ws in opened {
            alive.fetch_add(1, Ordering::Relaxed);
            tasks.push(tokio::spawn(hold(
                ws,
                rx.clone(),
                cfg.step_interval,
                Arc::clone(&stats),
                Arc::clone(&alive),
                Arc::clone(&losses),
                tasks.len() as u64,
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let held = alive.load(Ordering::Relaxed);
        let rss = tree_rss(server.pid);
        let (dropped_so_far, first_drop) = losses
            .lock()
            .map(|l| (l.count, l.first.clone()))
            .unwrap_or_default();
        let mut level = Level {
            target,
            held,
            open_failed: failed,
            open_seconds,
            open_first_error: first_error,
            rss_tree_kib: rss.total_kib,
            rss_processes: rss.processes.len(),
            kib_per_session: if held > 0 {
                rss.total_kib.saturating_sub(idle.total_kib) as f64 / held as f64
            } else {
                0.0
            },
            step_rate: None,
            step_ops: None,
            step_errors: None,
            step_p50_us: None,
            step_p99_us: None,
            step_max_us: None,
            step_first_error: None,
            under_slo: None,
            dropped_so_far,
            first_drop,
            cpu_cores_server_main: None,
            cpu_cores_server_children: None,
            cpu_cores_generator: None,
        };
        if stepping && held > 0 {
            if let Ok(mut s) = stats.lock() {
                s.hist = template.clone();
                s.ops = 0;
                s.errors = 0;
                s.first_error = None;
            }
            window_id += 1;
            let start = Instant::now() + Duration::from_millis(20);
            let measure_from = start + cfg.warmup;
            let end = measure_from + cfg.measure;
            let _ = tx.send(Phase::Step {
                id: window_id,
                start,
                measure_from,
                end,
            });
            tokio::time::sleep_until(measure_from.into()).await;
            let cpu0 = (
                crate::sys::tree_cpu_ticks(server.pid),
                crate::sys::cpu_ticks(std::process::id()).unwrap_or(0),
            );
            tokio::time::sleep_until(end.into()).await;
            let cpu1 = (
                crate::sys::tree_cpu_ticks(server.pid),
                crate::sys::cpu_ticks(std::process::id()).unwrap_or(0),
            );
            let secs = cfg.measure.as_secs_f64().max(1e-3) * 100.0;
            level.cpu_cores_server_main = Some(cpu1.0.0.saturating_sub(cpu0.0.0) as f64 / secs);
            level.cpu_cores_server_children = Some(cpu1.0.1.saturating_sub(cpu0.0.1) as f64 / secs);
            level.cpu_cores_generator = Some(cpu1.1.saturating_sub(cpu0.1) as f64 / secs);
            // The last steps of the window may still be in flight: give them a bounded tail.
            tokio::time::sleep_until((end + Duration::from_millis(300)).into()).await;
            let _ = tx.send(Phase::Idle);
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Ok(s) = stats.lock() {
                let p99 = s.hist.value_at_quantile(0.99);
                let ok = s.errors == 0
                    && s.ops > 0
                    && alive.load(Ordering::Relaxed) == held
                    && Duration::from_micros(p99) <= cfg.slo_p99;
                level.step_rate = Some(s.ops as f64 / cfg.measure.as_secs_f64());
                level.step_ops = Some(s.ops);
                level.step_errors = Some(s.errors);
                level.step_p50_us = Some(s.hist.value_at_quantile(0.5));
                level.step_p99_us = Some(p99);
                level.step_max_us = Some(s.hist.max());
                level.step_first_error = s.first_error.clone();
                level.under_slo = Some(ok);
                if ok && failed == 0 {
                    max_held_under_slo = max_held_under_slo.max(held);
                } else {
                    stepping = false;
                    stopped_because = format!(
                        "at {held} sessions: p99 {:.1} ms, {} errors, {} open failures",
                        p99 as f64 / 1000.0,
                        s.errors,
                        failed
                    );
                }
            }
        }
        let broke = failed > 0;
        levels.push(level);
        if broke {
            stopped_because = format!(
                "could not open more sessions at {target} ({failed} failed: {})",
                levels
                    .last()
                    .and_then(|l| l.open_first_error.clone())
                    .unwrap_or_default()
            );
            break;
        }
    }
    let max_open = levels.iter().map(|l| l.held).max().unwrap_or(0);
    let _ = tx.send(Phase::Stop);
    let _ = tokio::time::timeout(Duration::from_secs(60), async {
        for t in tasks {
            let _ = t.await;
        }
    })
    .await;
    Ok(RampResult {
        idle_rss_kib: idle.total_kib,
        idle_rss_processes: idle.processes.len(),
        levels,
        max_held_under_slo,
        max_open,
        stopped_because,
        step_interval_ms: cfg.step_interval.as_millis() as u64,
        slo_p99_ms: cfg.slo_p99.as_millis() as u64,
    })
}

/// One held session: answers pings while idle, steps at its pace during a window.
async fn hold(
    mut ws: Ws,
    mut ctrl: watch::Receiver<Phase>,
    interval: Duration,
    stats: Arc<Mutex<WindowStats>>,
    alive: Arc<AtomicUsize>,
    losses: Arc<Mutex<Losses>>,
    index: u64,
) {
    let lost = |why: String| {
        alive.fetch_sub(1, Ordering::Relaxed);
        if let Ok(mut l) = losses.lock() {
            l.count += 1;
            l.first.get_or_insert(why);
        }
    };
    let mut done_window = 0u64;
    // Spread the sessions' steps evenly over the interval (a fixed, deterministic offset).
    let offset = Duration::from_nanos(
        (index.wrapping_mul(2_654_435_761) % 1_000_000) * interval.as_nanos() as u64 / 1_000_000,
    );
    loop {
        let phase = *ctrl.borrow_and_update();
        match phase {
            Phase::Stop => {
                close(ws, Duration::from_secs(5)).await;
                alive.fetch_sub(1, Ordering::Relaxed);
                return;
            }
            Phase::Step {
                id,
                start,
                measure_from,
                end,
            } if id != done_window => {
                done_window = id;
                let mut next = start + offset;
                while next < end {
                    tokio::time::sleep_until(next.into()).await;
                    let sent = Instant::now();
                    let r =
                        tokio::time::timeout(Duration::from_secs(10), call(&mut ws, STEP_FRAME))
                            .await;
                    let took = sent.elapsed();
                    let failure = match r {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(format!("{e:#}")),
                        Err(_) => Some("no reply within 10 s".to_owned()),
                    };
                    if let Ok(mut s) = stats.lock() {
                        match &failure {
                            None if sent >= measure_from => {
                                record(&mut s.hist, took);
                                s.ops += 1;
                            }
                            None => {}
                            Some(e) => {
                                s.errors += 1;
                                s.first_error.get_or_insert_with(|| e.clone());
                            }
                        }
                    }
                    if failure.is_some() {
                        alive.fetch_sub(1, Ordering::Relaxed);
                        return;
                    }
                    next += interval;
                }
            }
            _ => {
                tokio::select! {
                    changed = ctrl.changed() => {
                        if changed.is_err() {
                            alive.fetch_sub(1, Ordering::Relaxed);
                            return;
                        }
                    }
                    msg = ws.next() => match msg {
                        Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame))) => {
                            lost(format!("closed by the server while idle: {frame:?}"));
                            return;
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            lost(format!("socket error while idle: {e}"));
                            return;
                        }
                        None => {
                            lost("connection ended while idle".to_owned());
                            return;
                        }
                    }
                }
            }
        }
    }
}
