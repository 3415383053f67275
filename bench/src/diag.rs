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
    // Sessions: open many and reset each, in chunks (so neither pipe fills up), then RSS.
    let empty = RawValue::from_string("{}".to_owned())?;
    let mut i = 1;
    while i <= sessions {
        let chunk: Vec<usize> = (i..=sessions.min(i + 255)).collect();
        let mut lines: Vec<u8> = Vec::new();
        for &k in &chunk {
            let sid = format!("bench-{k}");
            lines.extend(send(Op::Open, &sid, None));
            lines.extend(send(Op::Reset, &sid, Some(&empty)));
        }
        stdin.write_all(&lines).await?;
        for _ in 0..chunk.len() * 2 {
            line.clear();
            stdout.read_line(&mut line).await?;
        }
        i += chunk.len();
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

/// Where the time of one session churn cycle goes (medians over `n` cycles, microseconds).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ChurnBreakdown {
    pub(crate) cycles: usize,
    pub(crate) tcp_connect_us: u64,
    pub(crate) ws_handshake_us: u64,
    pub(crate) first_reset_us: u64,
    pub(crate) second_reset_us: u64,
    pub(crate) close_until_server_closed_us: u64,
    pub(crate) total_us: u64,
}

pub(crate) async fn churn_breakdown(port: u16, n: usize) -> anyhow::Result<ChurnBreakdown> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let mut parts: [Vec<u64>; 6] = Default::default();
    for _ in 0..n {
        let t0 = Instant::now();
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        tcp.set_nodelay(true)?;
        let t1 = Instant::now();
        let request = format!("ws://127.0.0.1:{port}/ws").into_client_request()?;
        let (mut ws, _) = tokio_tungstenite::client_async(request, tcp).await?;
        let t2 = Instant::now();
        crate::ws::call(&mut ws, crate::ws::RESET_FRAME).await?;
        let t3 = Instant::now();
        crate::ws::call(&mut ws, crate::ws::RESET_FRAME).await?;
        let t4 = Instant::now();
        ws.send(Message::text(r#"{"type":"close"}"#)).await?;
        while let Some(Ok(_)) = ws.next().await {}
        let t5 = Instant::now();
        for (i, (a, b)) in [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5), (t0, t5)]
            .into_iter()
            .enumerate()
        {
            parts[i].push((b - a).as_micros() as u64);
        }
    }
    let med = |v: &mut Vec<u64>| {
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0)
    };
    let [a, b, c, d, e, f] = &mut parts;
    Ok(ChurnBreakdown {
        cycles: n,
        tcp_connect_us: med(a),
        ws_handshake_us: med(b),
        first_reset_us: med(c),
        second_reset_us: med(d),
        close_until_server_closed_us: med(e),
        total_us: med(f),
    })
}
