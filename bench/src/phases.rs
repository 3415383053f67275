//! The benchmark's phases, in order: throughput scenarios (both servers up, interleaved runs),
//! cold starts (interleaved), held sessions (a fresh server each), envtorch diagnostics.

use std::time::Duration;

use anyhow::Context;

use crate::held::{RampConfig, ramp};
use crate::load::{LoadResult, Window, closed_loop};
use crate::report::{Cold, Document, Scenario, Target};
use crate::server::{Kind, Running, Spec};
use crate::stats::{Spread, now_utc};
use crate::{Cli, Settings, http, sys, ws};

/// What a scenario does.
#[derive(Debug, Clone, Copy)]
enum Load {
    Ws,
    HttpStep,
    HttpReset,
    HttpHealth,
    Churn,
}

struct Plan {
    id: String,
    title: String,
    unit: &'static str,
    load: Load,
    clients: usize,
}

fn plans(s: &Settings) -> Vec<Plan> {
    let mut p = vec![Plan {
        id: "ws_seq".into(),
        title: "/ws sequential, 1 session".into(),
        unit: "steps/s",
        load: Load::Ws,
        clients: 1,
    }];
    for &n in &s.ws_sessions {
        p.push(Plan {
            id: format!("ws_{n}"),
            title: format!("/ws {n} sessions"),
            unit: "steps/s",
            load: Load::Ws,
            clients: n,
        });
    }
    for &n in &s.http_connections {
        p.push(Plan {
            id: format!("http_step_{n}"),
            title: format!("POST /step, {n} conn"),
            unit: "req/s",
            load: Load::HttpStep,
            clients: n,
        });
    }
    for &n in &s.http_connections {
        p.push(Plan {
            id: format!("http_reset_{n}"),
            title: format!("POST /reset, {n} conn"),
            unit: "req/s",
            load: Load::HttpReset,
            clients: n,
        });
    }
    for &n in &s.churn_loops {
        p.push(Plan {
            id: format!("churn_{n}"),
            title: format!("session churn (open+reset+close), {n} loops"),
            unit: "sessions/s",
            load: Load::Churn,
            clients: n,
        });
    }
    if let Some(only) = &s.scenarios {
        p.retain(|x| only.iter().any(|o| o == &x.id));
    }
    p
}

async fn measure(
    server: &Running,
    load: Load,
    clients: usize,
    w: Window,
) -> anyhow::Result<LoadResult> {
    let port = server.port;
    match load {
        Load::Ws => {
            let (sessions, failed, err) =
                ws::open_many(port, clients, 64, Duration::from_secs(20)).await;
            if sessions.is_empty() {
                anyhow::bail!("no session opened: {}", err.unwrap_or_default());
            }
            let c = sessions
                .into_iter()
                .map(|w| ws::Stepper { ws: Some(w) })
                .collect();
            let mut r = closed_loop(c, failed, w, server.pid).await?;
            if r.first_error.is_none() {
                r.first_error = err;
            }
            Ok(r)
        }
        Load::HttpStep | Load::HttpReset | Load::HttpHealth => {
            let req = match load {
                Load::HttpStep => http::post("/step", http::STEP_BODY),
                Load::HttpReset => http::post("/reset", http::RESET_BODY),
                _ => http::get("/health"),
            };
            let (conns, failed, err) = http::connect_many(port, clients, &req).await;
            if conns.is_empty() {
                anyhow::bail!("no connection: {}", err.unwrap_or_default());
            }
            closed_loop(conns, failed, w, server.pid).await
        }
        Load::Churn => {
            let c = (0..clients).map(|_| ws::Churner { port }).collect();
            closed_loop(c, 0, w, server.pid).await
        }
    }
}

fn log(msg: &str) {
    eprintln!("[{}] {msg}", now_utc());
}

fn summary_line(k: Kind, r: &LoadResult) -> String {
    format!(
        "{:<9} {:>10.0}/s p50 {:.3} ms p99 {:.3} ms max {:.3} ms ops {} errors {}{}",
        k.label(),
        r.rate,
        r.p50_us as f64 / 1000.0,
        r.p99_us as f64 / 1000.0,
        r.max_us as f64 / 1000.0,
        r.ops,
        r.errors,
        r.first_error
            .as_ref()
            .map(|e| format!(" (first error: {})", ws::truncate(e, 160)))
            .unwrap_or_default()
    )
}

async fn start(kind: Kind, spec: &Spec, tag: &str) -> anyhow::Result<Running> {
    let mut s = Running::launch(kind, spec, tag)?;
    let t = s.wait_ready(Duration::from_secs(90)).await?;
    log(&format!(
        "{} up on 127.0.0.1:{} (pid {}) in {:.1} ms",
        kind.label(),
        s.port,
        s.pid,
        t.as_secs_f64() * 1e3
    ));
    Ok(s)
}

async fn throughput(
    settings: &Settings,
    spec: &Spec,
    kinds: &[Kind],
    plans: &[Plan],
    tag: &str,
) -> Vec<Scenario> {
    let mut servers: Vec<(Kind, Option<Running>, Option<String>)> = Vec::new();
    for &k in kinds {
        match start(k, spec, tag).await {
            Ok(s) => servers.push((k, Some(s), None)),
            Err(e) => {
                log(&format!("{} did not start: {e:#}", k.label()));
                servers.push((k, None, Some(format!("{e:#}"))));
            }
        }
    }
    let mut out = Vec::new();
    for p in plans {
        let mut sc = Scenario {
            id: p.id.clone(),
            title: p.title.clone(),
            unit: p.unit.into(),
            clients: p.clients,
            envtorch: None,
            reference: None,
        };
        log(&format!("scenario {}", p.title));
        for run in 0..settings.runs {
            for (k, server, start_err) in &servers {
                let side = sc.side_mut(*k);
                let Some(server) = server else {
                    if run == 0 {
                        side.failures.push(start_err.clone().unwrap_or_default());
                    }
                    continue;
                };
                match measure(server, p.load, p.clients, settings.window()).await {
                    Ok(r) => {
                        log(&format!("  run {} {}", run + 1, summary_line(*k, &r)));
                        side.runs.push(r);
                    }
                    Err(e) => {
                        log(&format!("  run {} {}: failed: {e:#}", run + 1, k.label()));
                        side.failures.push(format!("{e:#}"));
                    }
                }
                // Let sockets of the previous run finish closing.
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        }
        for side in [&mut sc.envtorch, &mut sc.reference].into_iter().flatten() {
            side.summarize();
        }
        out.push(sc);
    }
    for (_, s, _) in servers {
        if let Some(s) = s {
            s.stop(Duration::from_secs(5)).await;
        }
    }
    out
}

async fn cold_starts(settings: &Settings, spec: &Spec) -> Vec<(Kind, Cold)> {
    let mut out: Vec<(Kind, Cold)> = settings
        .kinds
        .iter()
        .map(|&k| (k, Cold::default()))
        .collect();
    for i in 0..settings.cold_starts {
        for (k, cold) in out.iter_mut() {
            let mut s = match Running::launch(*k, spec, "cold") {
                Ok(s) => s,
                Err(e) => {
                    cold.failures.push(format!("{e:#}"));
                    continue;
                }
            };
            match s.wait_ready(Duration::from_secs(90)).await {
                Ok(t) => {
                    cold.ms.push(t.as_secs_f64() * 1e3);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let rss = sys::tree_rss(s.pid);
                    cold.idle_rss_kib.push(rss.total_kib as f64);
                    cold.idle_rss_processes.push(rss.processes.len());
                    log(&format!(
                        "cold start {} {}: {:.1} ms, idle RSS {:.1} MiB over {} processes",
                        i + 1,
                        k.label(),
                        t.as_secs_f64() * 1e3,
                        rss.total_kib as f64 / 1024.0,
                        rss.processes.len()
                    ));
                }
                Err(e) => cold.failures.push(format!("{e:#}")),
            }
            s.stop(Duration::from_secs(5)).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    for (_, c) in out.iter_mut() {
        c.ms_spread = Spread::of(&c.ms);
        c.idle_rss_kib_spread = Spread::of(&c.idle_rss_kib);
    }
    out
}

fn ramp_config(s: &Settings) -> RampConfig {
    RampConfig {
        levels: s.held_levels.clone(),
        memory_levels: s.memory_levels.clone(),
        step_interval: Duration::from_millis(s.held_step_interval_ms),
        warmup: Duration::from_secs_f64(s.warmup_s.max(0.2)),
        measure: Duration::from_secs_f64((s.measure_s * 1.5).max(1.0)),
        slo_p99: Duration::from_millis(s.held_slo_ms),
        open_parallel: 32,
        open_timeout: Duration::from_secs(30),
        time_budget: Duration::from_secs_f64(s.held_budget_s),
    }
}

/// Runs the benchmark and writes the results.
pub(crate) async fn run(mut cli: Cli) -> anyhow::Result<()> {
    let started = now_utc();
    let out = cli.out.take().unwrap_or_else(|| {
        if cli.smoke {
            "target/bench-smoke".into()
        } else {
            "bench/results".into()
        }
    });
    let nofile = sys::raise_nofile(cli.nofile);
    let reference_available =
        cli.venv.join("bin/uvicorn").exists() && cli.app_dir.join("echo_app.py").exists();
    let settings = Settings::from(&cli, reference_available);
    let mut notes = Vec::new();
    if !reference_available && cli.only != "envtorch" {
        notes.push(format!(
            "the reference was skipped: {} or {} is missing (run scripts/setup-python.sh)",
            cli.venv.join("bin/uvicorn").display(),
            cli.app_dir.join("echo_app.py").display()
        ));
    }
    for b in [&cli.server_bin, &cli.echo_bin] {
        if settings.kinds.contains(&Kind::Ours) && !b.exists() {
            anyhow::bail!(
                "{} is missing: build with cargo build --release -p envtorch-server -p echo-env",
                b.display()
            );
        }
    }
    if nofile < cli.nofile {
        notes.push(format!(
            "RLIMIT_NOFILE raised to {nofile} (wanted {}; the hard limit)",
            cli.nofile
        ));
    }
    let machine = sys::machine(nofile);
    std::fs::create_dir_all(&out).with_context(|| format!("create {}", out.display()))?;
    let spec = Spec {
        server_bin: cli.server_bin.clone(),
        echo_bin: cli.echo_bin.clone(),
        workers: settings.workers,
        venv: std::fs::canonicalize(&cli.venv).unwrap_or_else(|_| cli.venv.clone()),
        app_dir: std::fs::canonicalize(&cli.app_dir).unwrap_or_else(|_| cli.app_dir.clone()),
        max_sessions: settings.max_sessions,
        log_dir: out.join("logs"),
    };
    // Logs of this run only.
    let _ = std::fs::remove_dir_all(&spec.log_dir);
    log(&format!(
        "envtorch-bench ({} mode): servers {:?}, load average {}",
        settings.mode,
        settings.kinds.iter().map(|k| k.label()).collect::<Vec<_>>(),
        machine.loadavg_start
    ));
    let phase = |p: &str| settings.phases.iter().any(|x| x == p);

    let scenarios = if phase("throughput") {
        throughput(
            &settings,
            &spec,
            &settings.kinds,
            &plans(&settings),
            "throughput",
        )
        .await
    } else {
        Vec::new()
    };
    let cold_start = if phase("cold") {
        cold_starts(&settings, &spec).await
    } else {
        Vec::new()
    };
    let mut held = Vec::new();
    if phase("held") {
        let cfg = ramp_config(&settings);
        for &k in &settings.kinds {
            log(&format!("held sessions: {}", k.label()));
            let r = match start(k, &spec, "held").await {
                Ok(s) => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let r = ramp(&s, &cfg).await.map_err(|e| format!("{e:#}"));
                    if let Ok(r) = &r {
                        for l in &r.levels {
                            log(&format!(
                                "  {} {}: {} open in {:.1} s, RSS {:.1} MiB ({:.1} KiB/session), p99 {}",
                                k.label(),
                                l.target,
                                l.held,
                                l.open_seconds,
                                l.rss_tree_kib as f64 / 1024.0,
                                l.kib_per_session,
                                l.step_p99_us.map_or("—".into(), |p| format!(
                                    "{:.2} ms",
                                    p as f64 / 1000.0
                                ))
                            ));
                        }
                        log(&format!("  {} stopped: {}", k.label(), r.stopped_because));
                    }
                    s.stop(Duration::from_secs(10)).await;
                    r
                }
                Err(e) => Err(format!("{e:#}")),
            };
            if let Err(e) = &r {
                log(&format!("  {} failed: {e}", k.label()));
            }
            held.push((k, r));
        }
    }
    let mut diagnostics = serde_json::Value::Null;
    let mut diag_scenarios = Vec::new();
    if phase("diag") && settings.kinds.contains(&Kind::Ours) {
        log("diagnostics: the echo worker alone, over its pipe protocol");
        let dur = Duration::from_secs_f64(settings.measure_s);
        let sessions = if settings.mode == "smoke" {
            100
        } else {
            10_000
        };
        let direct = crate::diag::worker_direct(&cli.echo_bin, dur, sessions)
            .await
            .map_err(|e| format!("{e:#}"));
        let breakdown = match start(Kind::Ours, &spec, "diag-churn").await {
            Ok(s) => {
                let n = if settings.mode == "smoke" { 20 } else { 500 };
                let b = crate::diag::churn_breakdown(s.port, n)
                    .await
                    .map_err(|e| format!("{e:#}"));
                s.stop(Duration::from_secs(5)).await;
                b
            }
            Err(e) => Err(format!("{e:#}")),
        };
        diagnostics = serde_json::json!({ "worker_direct": direct, "churn_breakdown": breakdown });
        log(&format!("  {diagnostics}"));
        // The HTTP stack alone (no worker hop): GET /health, both servers.
        let health: Vec<Plan> = [1usize, 64]
            .iter()
            .map(|&n| Plan {
                id: format!("http_health_{n}"),
                title: format!("GET /health (no environment), {n} conn"),
                unit: "req/s",
                load: Load::HttpHealth,
                clients: n,
            })
            .collect();
        // (envtorch only in smoke mode: the reference's start-up alone takes seconds.)
        let health_kinds = if settings.mode == "smoke" {
            vec![Kind::Ours]
        } else {
            settings.kinds.clone()
        };
        diag_scenarios.extend(throughput(&settings, &spec, &health_kinds, &health, "diag").await);
        // Placement: the same sequential /ws load with the generator and the server (all its
        // processes) on one CPU, so no step needs a cross-CPU wake-up.
        match sys::pin_to_one_cpu() {
            Ok((saved, cpu)) => {
                let pinned = vec![Plan {
                    id: "ws_seq_one_cpu".into(),
                    title: format!("/ws sequential, 1 session, all processes on CPU {cpu}"),
                    unit: "steps/s",
                    load: Load::Ws,
                    clients: 1,
                }];
                diag_scenarios.extend(
                    throughput(&settings, &spec, &health_kinds, &pinned, "diag-pinned").await,
                );
                sys::unpin(saved);
            }
            Err(e) => log(&format!("cannot pin to one CPU: {e:#}")),
        }
        // One worker process instead of one per core.
        let one = Spec {
            workers: Some(1),
            ..spec.clone()
        };
        let plans1: Vec<Plan> = [1usize, 64]
            .iter()
            .map(|&n| Plan {
                id: format!("ws_{n}_one_worker"),
                title: format!("/ws {n} session(s), ENVTORCH_WORKERS=1"),
                unit: "steps/s",
                load: Load::Ws,
                clients: n,
            })
            .collect();
        diag_scenarios
            .extend(throughput(&settings, &one, &[Kind::Ours], &plans1, "diag-1worker").await);
    }

    let mut machine = machine;
    machine.loadavg_end = sys::loadavg();
    let mut doc = Document {
        started,
        finished: now_utc(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        revision: revision(),
        machine,
        settings,
        notes,
        scenarios,
        cold_start,
        held,
        diagnostics,
        diag_scenarios,
        targets: Vec::new(),
    };
    doc.targets = targets(&doc);
    doc.notes.extend(standard_notes());
    let json = serde_json::to_string_pretty(&doc)?;
    let md = doc.markdown();
    let json_path = out.join("latest.json");
    let md_path = out.join("latest.md");
    std::fs::write(&json_path, json).with_context(|| format!("write {}", json_path.display()))?;
    std::fs::write(&md_path, &md).with_context(|| format!("write {}", md_path.display()))?;
    println!("{md}");
    log(&format!(
        "wrote {} and {}",
        json_path.display(),
        md_path.display()
    ));
    if doc.settings.mode == "smoke" {
        let problems = smoke_problems(&doc);
        if !problems.is_empty() {
            anyhow::bail!("smoke check failed:\n  {}", problems.join("\n  "));
        }
        log("smoke check passed (envtorch: every scenario ran without errors)");
    }
    Ok(())
}

/// In smoke mode, envtorch must have worked everywhere (the reference is not checked: it
/// is slow and optional). No ratio is asserted.
fn smoke_problems(doc: &Document) -> Vec<String> {
    let mut p = Vec::new();
    if !doc.settings.kinds.contains(&Kind::Ours) {
        return p;
    }
    for s in doc.scenarios.iter().chain(doc.diag_scenarios.iter()) {
        match &s.envtorch {
            None => {}
            Some(side) => {
                if !side.failures.is_empty() {
                    p.push(format!("{}: {}", s.title, side.failures.join("; ")));
                }
                for r in &side.runs {
                    if r.ops == 0 || r.errors > 0 || r.clients_failed_to_open > 0 {
                        p.push(format!(
                            "{}: {} ops, {} errors, {} clients failed to open ({})",
                            s.title,
                            r.ops,
                            r.errors,
                            r.clients_failed_to_open,
                            r.first_error.clone().unwrap_or_default()
                        ));
                    }
                }
            }
        }
    }
    if let Some(c) = doc.cold(Kind::Ours) {
        if c.ms.is_empty() || !c.failures.is_empty() {
            p.push(format!("cold start: {}", c.failures.join("; ")));
        }
    }
    for (k, r) in &doc.held {
        if *k != Kind::Ours {
            continue;
        }
        match r {
            Err(e) => p.push(format!("held sessions: {e}")),
            Ok(r) => {
                let want = doc.settings.held_levels.iter().copied().max().unwrap_or(0);
                if r.max_open < want {
                    p.push(format!(
                        "held sessions: only {} of {want} opened ({})",
                        r.max_open, r.stopped_because
                    ));
                }
            }
        }
    }
    if let Some(Err(e)) = doc.diagnostics.get("worker_direct").map(|v| {
        if v.get("Err").is_some() {
            Err(v.to_string())
        } else {
            Ok(())
        }
    }) {
        p.push(format!("worker diagnostics: {e}"));
    }
    p
}

/// The commit measured, and whether the server's sources had uncommitted changes.
fn revision() -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = run(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = run(&["status", "--porcelain", "--", "crates", "Cargo.lock"])
        .is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    }
}

fn standard_notes() -> Vec<String> {
    vec![
        "Latency is measured by the load generator from sending a request to reading its whole reply, per session (closed loop: a session sends its next request when the reply arrived; no pipelining).".into(),
        "Held sessions: sessions are opened (connect + reset) in steps; at each step every open session sends one step per interval (open loop, evenly spread); the step count passes if p99 < the objective, no step failed and no session was lost. Memory is the VmRSS sum over the server process and all its descendants, measured 0.5 s after the sessions were opened; KiB/session = (RSS at N − RSS idle) ÷ N.".into(),
        "Cold start: from spawning the server process to the first successful /ws round trip (connect, reset, observation), polling connect every 1 ms.".into(),
        "The reference runs as one uvicorn process (its documented deployment); it has no uvloop/httptools in its venv (openenv-core 0.3.0 does not install them).".into(),
    ]
}

fn targets(doc: &Document) -> Vec<Target> {
    let mut t = Vec::new();
    let find = |id: &str| doc.scenarios.iter().find(|s| s.id == id);
    let ratio_target = |t: &mut Vec<Target>, id: &str, want: f64| {
        if let Some(s) = find(id) {
            let r = s.ratio();
            t.push(Target {
                name: format!("{}: envtorch ÷ reference", s.title),
                target: format!("≥ {want:.0}×"),
                value: r.map_or("—".into(), |r| format!("{r:.1}×")),
                met: r.map(|r| r >= want),
            });
        }
    };
    ratio_target(&mut t, "ws_seq", 50.0);
    for s in &doc.settings.ws_sessions {
        ratio_target(&mut t, &format!("ws_{s}"), 100.0);
    }
    for s in &doc.settings.http_connections {
        ratio_target(&mut t, &format!("http_step_{s}"), 100.0);
        ratio_target(&mut t, &format!("http_reset_{s}"), 100.0);
    }
    if let Some(c) = doc.cold(Kind::Ours) {
        let m = c.ms_spread.map(|s| s.median);
        t.push(Target {
            name: "cold start (median)".into(),
            target: "≤ 50 ms".into(),
            value: m.map_or("—".into(), |m| format!("{m:.1} ms")),
            met: m.map(|m| m <= 50.0),
        });
        let r = c.idle_rss_kib_spread.map(|s| s.median);
        t.push(Target {
            name: "idle RSS, whole process tree (median)".into(),
            target: "≤ 10 MB (10,000,000 bytes)".into(),
            value: r.map_or("—".into(), |r| format!("{:.2} MB", r * 1024.0 / 1e6)),
            met: r.map(|r| r * 1024.0 <= 10e6),
        });
    }
    if let Some(r) = doc.ramp(Kind::Ours) {
        let top = r
            .levels
            .iter()
            .filter(|l| l.held > 0)
            .max_by_key(|l| l.held);
        if let Some(l) = top {
            let bytes = l.kib_per_session * 1024.0;
            t.push(Target {
                name: format!("memory per session at {} sessions", l.held),
                target: "≤ 20 KB (20,000 bytes)".into(),
                value: format!("{:.1} KB", bytes / 1000.0),
                met: Some(bytes <= 20_000.0),
            });
        }
        t.push(Target {
            name: "sessions held with p99 step < objective".into(),
            target: "10,000".into(),
            value: format!(
                "{} (most open at once: {})",
                r.max_held_under_slo, r.max_open
            ),
            met: Some(r.max_held_under_slo >= 10_000),
        });
    }
    t
}
