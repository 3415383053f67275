//! Closed-loop load: N clients, each doing one operation at a time (no pipelining), for a
//! bounded time and a bounded number of operations, with a warm-up that is not recorded.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are recorded in microseconds, up to 60 s, with 3 significant digits.
pub(crate) fn new_hist() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

pub(crate) fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record((d.as_micros() as u64).max(1));
}

/// One client of a closed-loop load.
pub(crate) trait Client: Send + 'static {
    /// One operation (request and its reply).
    fn op(&mut self) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// After a failed operation: make the client usable again; false ends this client.
    fn recover(&mut self) -> impl Future<Output = bool> + Send;
    /// Ends the client politely (close the session).
    fn finish(self) -> impl Future<Output = ()> + Send;
}

/// Bounds of one load run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub(crate) warmup: Duration,
    pub(crate) measure: Duration,
    /// Most operations recorded in the measured window (all clients together).
    pub(crate) max_ops: u64,
    /// One operation taking longer than this is an error.
    pub(crate) op_timeout: Duration,
}

/// What one load run measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LoadResult {
    pub(crate) clients: usize,
    pub(crate) clients_failed_to_open: usize,
    pub(crate) ops: u64,
    pub(crate) errors: u64,
    pub(crate) seconds: f64,
    pub(crate) rate: f64,
    pub(crate) p50_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) max_us: u64,
    pub(crate) mean_us: f64,
    /// CPU seconds used during the measured window by the server's main process, by its
    /// descendants (envtorch's worker processes), and by the load generator.
    pub(crate) cpu_server_main_s: f64,
    pub(crate) cpu_server_children_s: f64,
    pub(crate) cpu_generator_s: f64,
    pub(crate) first_error: Option<String>,
}

struct Outcome {
    hist: Histogram<u64>,
    ops: u64,
    errors: u64,
    last: Instant,
    first_error: Option<String>,
}

/// Runs `clients` against the server whose main process is `server_pid`.
pub(crate) async fn closed_loop<C: Client>(
    clients: Vec<C>,
    failed_to_open: usize,
    window: Window,
    server_pid: u32,
) -> anyhow::Result<LoadResult> {
    let template = new_hist()?;
    let n = clients.len();
    let start = Instant::now() + Duration::from_millis(20);
    let t_measure = start + window.warmup;
    let t_end = t_measure + window.measure;
    let budget = Arc::new(AtomicI64::new(window.max_ops as i64));
    let sampler = tokio::spawn(async move {
        tokio::time::sleep_until(t_measure.into()).await;
        let a = (crate::sys::tree_cpu_ticks(server_pid), self_ticks());
        tokio::time::sleep_until(t_end.into()).await;
        let b = (crate::sys::tree_cpu_ticks(server_pid), self_ticks());
        (a, b)
    });
    let mut tasks = Vec::with_capacity(n);
    for c in clients {
        let budget = Arc::clone(&budget);
        tasks.push(tokio::spawn(drive(
            c,
            template.clone(),
            start,
            t_measure,
            t_end,
            budget,
            window.op_timeout,
        )));
    }
    let mut hist = template;
    let (mut ops, mut errors) = (0u64, 0u64);
    let mut last = t_measure;
    let mut first_error = None;
    for t in tasks {
        if let Ok(o) = t.await {
            let _ = hist.add(&o.hist);
            ops += o.ops;
            errors += o.errors;
            last = last.max(o.last);
            if first_error.is_none() {
                first_error = o.first_error;
            }
        } else {
            errors += 1;
        }
    }
    let seconds = last
        .saturating_duration_since(t_measure)
        .as_secs_f64()
        .max(1e-9);
    let ((cpu_main, cpu_children, cpu_gen), _) = match sampler.await {
        Ok((((am, ac), ag), ((bm, bc), bg))) => (
            (
                ticks_s(bm.saturating_sub(am)),
                ticks_s(bc.saturating_sub(ac)),
                ticks_s(bg.saturating_sub(ag)),
            ),
            (),
        ),
        Err(_) => ((0.0, 0.0, 0.0), ()),
    };
    Ok(LoadResult {
        clients: n,
        clients_failed_to_open: failed_to_open,
        ops,
        errors,
        seconds,
        rate: ops as f64 / seconds,
        p50_us: hist.value_at_quantile(0.5),
        p99_us: hist.value_at_quantile(0.99),
        max_us: hist.max(),
        mean_us: hist.mean(),
        cpu_server_main_s: cpu_main,
        cpu_server_children_s: cpu_children,
        cpu_generator_s: cpu_gen,
        first_error,
    })
}

fn self_ticks() -> u64 {
    crate::sys::cpu_ticks(std::process::id()).unwrap_or(0)
}

fn ticks_s(t: u64) -> f64 {
    t as f64 / 100.0
}

async fn drive<C: Client>(
    mut c: C,
    hist: Histogram<u64>,
    start: Instant,
    t_measure: Instant,
    t_end: Instant,
    budget: Arc<AtomicI64>,
    op_timeout: Duration,
) -> Outcome {
    let mut o = Outcome {
        hist,
        ops: 0,
        errors: 0,
        last: t_measure,
        first_error: None,
    };
    tokio::time::sleep_until(start.into()).await;
    loop {
        let sent = Instant::now();
        if sent >= t_end {
            break;
        }
        let r = tokio::time::timeout(op_timeout, c.op()).await;
        let done = Instant::now();
        let failure = match r {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("{e:#}")),
            Err(_) => Some(format!("no reply within {op_timeout:?}")),
        };
        match failure {
            None => {
                if sent >= t_measure {
                    record(&mut o.hist, done - sent);
                    o.ops += 1;
                    o.last = done;
                    if budget.fetch_sub(1, Ordering::Relaxed) <= 1 {
                        break;
                    }
                }
            }
            Some(e) => {
                if sent >= t_measure {
                    o.errors += 1;
                }
                if o.first_error.is_none() {
                    o.first_error = Some(e);
                }
                if !c.recover().await {
                    break;
                }
            }
        }
    }
    tokio::time::timeout(Duration::from_secs(3), c.finish())
        .await
        .ok();
    o
}
