//! Diagnostics for envtorch alone: the cost of the environment worker by itself, spoken to
//! directly over its stdin/stdout worker protocol (no server, no sockets), so the hop through
//! the server can be told apart from the environment's own work.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use envtorch_worker_protocol::{Op, Request};
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::load::{new_hist, record};

/// Direct worker measurements.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct WorkerDirect {
    /// One step at a time: steps/s and latency (write request line, read reply line).
    pub(crate) sequential_rate: f64,
    pub(crate) sequential_p50_us: u64,
    pub(crate) sequential_p99_us: u64,
    /// `depth` steps in flight, written in batches: steps/s (what the server's batching
    /// writer can get from one worker at best).
    pub(crate) pipelined_rate: f64,
    pub(crate) pipelined_depth: usize,
    /// RSS of the worker: fresh, and with `sessions` sessions open, and KiB per session.
    pub(crate) rss_fresh_kib: u64,
    pub(crate) rss_with_sessions_kib: u64,
    pub(crate) sessions: usize,
    pub(crate) worker_kib_per_session: f64,
}

pub(crate) async fn worker_direct(
    echo_bin: &Path,
    duration: Duration,
    sessions: usize,
) -> anyhow::Result<WorkerDirect> {
    let mut child = Command::new(echo_bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {}", echo_bin.display()))?;
    let pid = child.id().context("worker pid")?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let mut stdout = BufReader::new(child.stdout.take().context("stdout")?);
    let mut line = String::new();
    stdout.read_line(&mut line).await?; // the handshake
    let action = RawValue::from_string(crate::http::ACTION.to_owned())?;
    let mut id = 0u64;
    let mut send = |op: Op, session: &str, data: Option<&RawValue>| {
        id += 1;
        let mut r = Request::new(id, op, Some(session));
        r.data = data;
        r.to_line()
    };
    stdin.write_all(&send(Op::Open, "bench-0", None)).await?;
    line.clear();
    stdout.read_line(&mut line).await?;
    if !line.contains("\"ok\"") {
        bail!("worker open failed: {line}");
    }
    let rss_fresh_kib = crate::sys::rss_kib(pid).unwrap_or(0);
    let step = send(Op::Step, "bench-0", Some(&action));
    // Sequential.
    let mut hist = new_hist()?;
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < duration && n < 5_000_000 {
        let s = Instant::now();
        stdin.write_all(&step).await?;
        line.clear();
        stdout.read_line(&mut line).await?;
        record(&mut hist, s.elapsed());
        n += 1;
    }
    if !line.contains("\"ok\"") {
        bail!("worker step failed: {line}");
    }
    let sequential_rate = n as f64 / t0.elapsed().as_secs_f64();
    // Pipelined: `depth` requests per write, then read as many replies.
    let depth = 64;
    let batch: Vec<u8> = std::iter::repeat_n(step.as_slice(), depth)
        .flatten()
        .copied()
        .collect();
    let t1 = Instant::now();
    let mut m = 0u64;
    while t1.elapsed() < duration && m < 50_000_000 {
        stdin.write_all(&batch).await?;
        for _ in 0..depth {
            line.clear();
            stdout.read_line(&mut line).await?;
        }
        m += depth as u64;
    }
    let pipelined_rate = m as f64 / t1.elapsed().as_secs_f64();
    // Sessions: open many, then RSS.
    let opens: Vec<u8> = (1..=sessions)
        .flat_map(|i| send(Op::Open, &format!("bench-{i}"), None))
        .collect();
    stdin.write_all(&opens).await?;
    for _ in 0..sessions {
        line.clear();
        stdout.read_line(&mut line).await?;
    }
    let resets: Vec<u8> = (1..=sessions)
        .flat_map(|i| {
            let empty = RawValue::from_string("{}".to_owned()).ok();
            send(Op::Reset, &format!("bench-{i}"), empty.as_deref())
        })
        .collect();
    stdin.write_all(&resets).await?;
    for _ in 0..sessions {
        line.clear();
        stdout.read_line(&mut line).await?;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_with_sessions_kib = crate::sys::rss_kib(pid).unwrap_or(0);
    drop(stdin);
    let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
    let _ = child.start_kill();
    Ok(WorkerDirect {
        sequential_rate,
        sequential_p50_us: hist.value_at_quantile(0.5),
        sequential_p99_us: hist.value_at_quantile(0.99),
        pipelined_rate,
        pipelined_depth: depth,
        rss_fresh_kib,
        rss_with_sessions_kib,
        sessions,
        worker_kib_per_session: rss_with_sessions_kib.saturating_sub(rss_fresh_kib) as f64
            / sessions.max(1) as f64,
    })
}
