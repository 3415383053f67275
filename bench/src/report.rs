//! The result document (JSON) and its Markdown table.

use std::fmt::Write as _;

use serde::Serialize;

use crate::Settings;
use crate::held::RampResult;
use crate::load::LoadResult;
use crate::server::Kind;
use crate::stats::Spread;
use crate::sys::Machine;

pub(crate) use crate::phases::run;

/// One server's runs of one scenario.
#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct Side {
    pub(crate) runs: Vec<LoadResult>,
    pub(crate) failures: Vec<String>,
    pub(crate) rate: Option<Spread>,
    pub(crate) p50_ms: Option<Spread>,
    pub(crate) p99_ms: Option<Spread>,
    pub(crate) max_ms: Option<Spread>,
    /// Server CPU per operation (main process, then its worker processes), microseconds.
    pub(crate) cpu_us_per_op_main: Option<Spread>,
    pub(crate) cpu_us_per_op_children: Option<Spread>,
    pub(crate) cpu_us_per_op_generator: Option<Spread>,
}

impl Side {
    pub(crate) fn summarize(&mut self) {
        let ok: Vec<&LoadResult> = self.runs.iter().filter(|r| r.ops > 0).collect();
        let f = |g: &dyn Fn(&LoadResult) -> f64| {
            Spread::of(&ok.iter().map(|r| g(r)).collect::<Vec<_>>())
        };
        self.rate = f(&|r| r.rate);
        self.p50_ms = f(&|r| r.p50_us as f64 / 1000.0);
        self.p99_ms = f(&|r| r.p99_us as f64 / 1000.0);
        self.max_ms = f(&|r| r.max_us as f64 / 1000.0);
        self.cpu_us_per_op_main = f(&|r| r.cpu_server_main_s * 1e6 / r.ops as f64);
        self.cpu_us_per_op_children = f(&|r| r.cpu_server_children_s * 1e6 / r.ops as f64);
        self.cpu_us_per_op_generator = f(&|r| r.cpu_generator_s * 1e6 / r.ops as f64);
    }
}

/// One scenario, both servers.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Scenario {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) unit: String,
    pub(crate) clients: usize,
    pub(crate) envtorch: Option<Side>,
    pub(crate) reference: Option<Side>,
}

impl Scenario {
    pub(crate) fn side_mut(&mut self, k: Kind) -> &mut Side {
        let slot = match k {
            Kind::Ours => &mut self.envtorch,
            Kind::Reference => &mut self.reference,
        };
        slot.get_or_insert_with(Side::default)
    }

    /// envtorch's median rate over the reference's.
    pub(crate) fn ratio(&self) -> Option<f64> {
        let a = self.envtorch.as_ref()?.rate?.median;
        let b = self.reference.as_ref()?.rate?.median;
        (b > 0.0).then(|| a / b)
    }
}

/// Cold starts of one server.
#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct Cold {
    pub(crate) ms: Vec<f64>,
    pub(crate) idle_rss_kib: Vec<f64>,
    pub(crate) idle_rss_processes: Vec<usize>,
    pub(crate) failures: Vec<String>,
    pub(crate) ms_spread: Option<Spread>,
    pub(crate) idle_rss_kib_spread: Option<Spread>,
}

/// A target of the issue, checked against the results.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Target {
    pub(crate) name: String,
    pub(crate) target: String,
    pub(crate) value: String,
    pub(crate) met: Option<bool>,
}

/// The whole result.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Document {
    pub(crate) started: String,
    pub(crate) finished: String,
    pub(crate) command: String,
    /// `git describe` of the tree measured ("-dirty": uncommitted changes under crates/).
    pub(crate) revision: String,
    pub(crate) machine: Machine,
    pub(crate) settings: Settings,
    pub(crate) notes: Vec<String>,
    pub(crate) scenarios: Vec<Scenario>,
    pub(crate) cold_start: Vec<(Kind, Cold)>,
    pub(crate) held: Vec<(Kind, Result<RampResult, String>)>,
    pub(crate) diagnostics: serde_json::Value,
    pub(crate) diag_scenarios: Vec<Scenario>,
    pub(crate) targets: Vec<Target>,
}

fn spread(s: Option<Spread>, digits: usize) -> String {
    match s {
        None => "—".into(),
        Some(s) if s.n == 1 => format!("{:.*}", digits, s.median),
        Some(s) => format!(
            "{:.*} ({:.*}–{:.*})",
            digits, s.median, digits, s.min, digits, s.max
        ),
    }
}

fn big(x: f64) -> String {
    let digits = if x >= 100.0 {
        0
    } else if x >= 10.0 {
        1
    } else {
        2
    };
    format!("{x:.digits$}")
}

fn spread_big(s: Option<Spread>) -> String {
    match s {
        None => "—".into(),
        Some(s) if s.n == 1 => big(s.median),
        Some(s) => format!("{} ({}–{})", big(s.median), big(s.min), big(s.max)),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a > 0.0 => format!("{:.1}×", a / b),
        _ => "—".into(),
    }
}

fn med(s: &Option<Spread>) -> Option<f64> {
    s.map(|s| s.median)
}

impl Document {
    pub(crate) fn cold(&self, k: Kind) -> Option<&Cold> {
        self.cold_start
            .iter()
            .find(|(kk, _)| *kk == k)
            .map(|(_, c)| c)
    }

    pub(crate) fn ramp(&self, k: Kind) -> Option<&RampResult> {
        self.held
            .iter()
            .find(|(kk, _)| *kk == k)
            .and_then(|(_, r)| r.as_ref().ok())
    }

    /// The Markdown report.
    pub(crate) fn markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let _ = writeln!(md, "# envtorch vs the Python reference: echo environment\n");
        let _ = writeln!(
            md,
            "- Date: {} to {} ({} mode)\n- Command: `{}` (revision {})\n- Machine: {} cores ({}), {:.0} GiB RAM, Linux {}; load average (1/5/15 min) {} at start, {} at end; RLIMIT_NOFILE {}\n- envtorch: `envtorch-server --env echo-env` (release), ENVTORCH_WORKERS={}; reference: `openenv-core==0.3.0` echo app (`tests/compat/reference/echo_app.py`) under uvicorn, one process, `--no-access-log --log-level warning`; both with MAX_CONCURRENT_ENVS={}\n- Load: one load generator process, one thread (tokio current-thread), on the same {} cores as the server: the generator's CPU competes with the server's. {} measured runs per scenario and server, interleaved (envtorch, reference, envtorch, …), {:.1} s warm-up + {:.1} s measured each; cells are median (min–max) over the runs.\n- Action: `{}` (the same on /ws and HTTP).\n",
            self.started,
            self.finished,
            self.settings.mode,
            self.command,
            self.revision,
            m.cores,
            m.cpu_model,
            m.mem_total_gib,
            m.kernel,
            m.loadavg_start,
            m.loadavg_end,
            m.nofile_limit,
            self.settings
                .workers
                .map_or_else(|| "default (one per core)".to_owned(), |w| w.to_string()),
            self.settings.max_sessions,
            m.cores,
            self.settings.runs,
            self.settings.warmup_s,
            self.settings.measure_s,
            crate::http::ACTION,
        );
        let _ = writeln!(
            md,
            "| metric | envtorch | reference (Python) | envtorch ÷ reference |"
        );
        let _ = writeln!(md, "| --- | ---: | ---: | ---: |");
        for s in &self.scenarios {
            let (a, b) = (s.envtorch.as_ref(), s.reference.as_ref());
            let _ = writeln!(
                md,
                "| {} — {} | {} | {} | {} |",
                s.title,
                s.unit,
                a.map_or("—".into(), |x| spread_big(x.rate)),
                b.map_or("—".into(), |x| spread_big(x.rate)),
                s.ratio().map_or("—".into(), |r| format!("**{r:.1}×**")),
            );
            let lat = |name: &str, get: &dyn Fn(&Side) -> Option<Spread>| {
                let av = a.and_then(get);
                let bv = b.and_then(get);
                format!(
                    "| {} — {name} ms | {} | {} | {} |",
                    s.title,
                    spread(av, 3),
                    spread(bv, 3),
                    ratio(med(&bv), med(&av)),
                )
            };
            let _ = writeln!(md, "{}", lat("p50", &|x: &Side| x.p50_ms));
            let _ = writeln!(md, "{}", lat("p99", &|x: &Side| x.p99_ms));
            if s.clients == 1 && s.id.starts_with("ws") {
                let _ = writeln!(md, "{}", lat("max", &|x: &Side| x.max_ms));
            }
        }
        // Cold start and idle memory.
        let ca = self.cold(Kind::Ours);
        let cb = self.cold(Kind::Reference);
        let _ = writeln!(
            md,
            "| cold start: launch → first /ws reset reply — ms | {} | {} | {} |",
            ca.map_or("—".into(), |c| spread(c.ms_spread, 1)),
            cb.map_or("—".into(), |c| spread(c.ms_spread, 1)),
            ratio(
                cb.and_then(|c| med(&c.ms_spread)),
                ca.and_then(|c| med(&c.ms_spread))
            ),
        );
        let mib = |s: Option<Spread>| {
            s.map(|s| Spread {
                median: s.median / 1024.0,
                min: s.min / 1024.0,
                max: s.max / 1024.0,
                n: s.n,
            })
        };
        let _ = writeln!(
            md,
            "| RSS idle, whole process tree — MiB | {} | {} | {} |",
            ca.map_or("—".into(), |c| spread(mib(c.idle_rss_kib_spread), 1)),
            cb.map_or("—".into(), |c| spread(mib(c.idle_rss_kib_spread), 1)),
            ratio(
                cb.and_then(|c| med(&c.idle_rss_kib_spread)),
                ca.and_then(|c| med(&c.idle_rss_kib_spread))
            ),
        );
        // Held sessions.
        let ra = self.ramp(Kind::Ours);
        let rb = self.ramp(Kind::Reference);
        let levels: Vec<usize> = self.settings.memory_levels.clone();
        for n in levels {
            let find = |r: Option<&RampResult>| {
                r.and_then(|r| r.levels.iter().find(|l| l.target == n && l.held > 0))
                    .map(|l| (l.rss_tree_kib, l.kib_per_session, l.held))
            };
            let (a, b) = (find(ra), find(rb));
            let cell = |x: Option<(u64, f64, usize)>| match x {
                None => "—".to_owned(),
                Some((rss, per, held)) if held == n => {
                    format!("{:.1} MiB; {:.1} KiB/session", rss as f64 / 1024.0, per)
                }
                Some((rss, per, held)) => format!(
                    "{:.1} MiB; {:.1} KiB/session (only {held} open)",
                    rss as f64 / 1024.0,
                    per
                ),
            };
            let _ = writeln!(
                md,
                "| RSS, whole process tree, {n} open sessions (each reset once) | {} | {} | {} |",
                cell(a),
                cell(b),
                ratio(b.map(|x| x.1), a.map(|x| x.1)),
            );
        }
        let held_cell = |r: Option<&RampResult>| match r {
            None => "—".to_owned(),
            Some(r) => format!("{} (most open: {})", r.max_held_under_slo, r.max_open),
        };
        let _ = writeln!(
            md,
            "| sessions held, each stepping every {} ms, p99 < {} ms | {} | {} | {} |",
            self.settings.held_step_interval_ms,
            self.settings.held_slo_ms,
            held_cell(ra),
            held_cell(rb),
            ratio(
                ra.map(|r| r.max_held_under_slo as f64),
                rb.map(|r| r.max_held_under_slo as f64)
            ),
        );
        let _ = writeln!(md);
        // Targets.
        if !self.targets.is_empty() {
            let _ = writeln!(md, "## Targets\n");
            let _ = writeln!(md, "| target | wanted | measured | met |");
            let _ = writeln!(md, "| --- | --- | --- | --- |");
            for t in &self.targets {
                let met = match t.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "n/a",
                };
                let _ = writeln!(md, "| {} | {} | {} | {met} |", t.name, t.target, t.value);
            }
            let _ = writeln!(md);
        }
        // Held ramp details.
        for (k, r) in &self.held {
            let _ = writeln!(md, "## Held sessions: {}\n", k.label());
            match r {
                Err(e) => {
                    let _ = writeln!(md, "failed: {e}\n");
                }
                Ok(r) => {
                    let _ = writeln!(
                        md,
                        "Idle RSS {:.1} MiB over {} processes; stopped: {}.\n",
                        r.idle_rss_kib as f64 / 1024.0,
                        r.idle_rss_processes,
                        r.stopped_because
                    );
                    let _ = writeln!(
                        md,
                        "| target | open | open time s | tree RSS MiB (processes) | KiB/session | steps/s | p50 ms | p99 ms | max ms | errors | p99 < objective | CPU cores: server main / workers / generator |"
                    );
                    let _ = writeln!(
                        md,
                        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"
                    );
                    for l in &r.levels {
                        let o = |x: Option<u64>| {
                            x.map_or("—".into(), |v| format!("{:.2}", v as f64 / 1000.0))
                        };
                        let _ = writeln!(
                            md,
                            "| {} | {} | {:.1} | {:.1} ({}) | {:.1} | {} | {} | {} | {} | {} | {} | {} |",
                            l.target,
                            l.held,
                            l.open_seconds,
                            l.rss_tree_kib as f64 / 1024.0,
                            l.rss_processes,
                            l.kib_per_session,
                            l.step_rate.map_or("—".into(), |r| format!("{r:.0}")),
                            o(l.step_p50_us),
                            o(l.step_p99_us),
                            o(l.step_max_us),
                            l.step_errors.map_or("—".into(), |e| e.to_string()),
                            l.under_slo
                                .map_or("not stepped", |b| if b { "yes" } else { "no" }),
                            match (
                                l.cpu_cores_server_main,
                                l.cpu_cores_server_children,
                                l.cpu_cores_generator,
                            ) {
                                (Some(a), Some(b), Some(c)) => format!("{a:.2} / {b:.2} / {c:.2}"),
                                _ => "—".into(),
                            },
                        );
                    }
                    if let Some(l) = r.levels.iter().rev().find(|l| l.dropped_so_far > 0) {
                        let _ = writeln!(
                            md,
                            "{} held sessions were dropped by the server; the first: {}\n",
                            l.dropped_so_far,
                            l.first_drop.clone().unwrap_or_default()
                        );
                    }
                    let _ = writeln!(md);
                }
            }
        }
        // CPU per operation.
        let _ = writeln!(md, "## Server CPU per operation (µs, median over runs)\n");
        let _ = writeln!(
            md,
            "From /proc CPU times (10 ms ticks) over each measured window: the server's main process, its child processes (envtorch's environment workers), and the load generator.\n"
        );
        let _ = writeln!(
            md,
            "| scenario | envtorch main | envtorch workers | reference | generator (vs envtorch) | generator (vs reference) |"
        );
        let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: | ---: |");
        for s in self.scenarios.iter().chain(self.diag_scenarios.iter()) {
            let g = |x: Option<&Side>, f: &dyn Fn(&Side) -> Option<Spread>| {
                x.and_then(f)
                    .map_or("—".into(), |s| format!("{:.1}", s.median))
            };
            let (a, b) = (s.envtorch.as_ref(), s.reference.as_ref());
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                s.title,
                g(a, &|x| x.cpu_us_per_op_main),
                g(a, &|x| x.cpu_us_per_op_children),
                g(b, &|x| x.cpu_us_per_op_main),
                g(a, &|x| x.cpu_us_per_op_generator),
                g(b, &|x| x.cpu_us_per_op_generator),
            );
        }
        let _ = writeln!(md);
        if !self.diag_scenarios.is_empty() || !self.diagnostics.is_null() {
            let _ = writeln!(md, "## envtorch diagnostics\n");
            for s in &self.diag_scenarios {
                for (label, side) in [("envtorch", &s.envtorch), ("reference", &s.reference)] {
                    if let Some(a) = side {
                        let _ = writeln!(
                            md,
                            "- {}, {label}: {} {}, p50 {} ms, p99 {} ms",
                            s.title,
                            spread_big(a.rate),
                            s.unit,
                            spread(a.p50_ms, 3),
                            spread(a.p99_ms, 3)
                        );
                    }
                }
                if let Some(r) = s.ratio() {
                    let _ = writeln!(md, "  - envtorch ÷ reference: {r:.1}×");
                }
            }
            if !self.diagnostics.is_null() {
                let _ = writeln!(
                    md,
                    "\n```json\n{}\n```",
                    serde_json::to_string_pretty(&self.diagnostics).unwrap_or_default()
                );
            }
            let _ = writeln!(md);
        }
        if !self.notes.is_empty() {
            let _ = writeln!(md, "## Notes\n");
            for n in &self.notes {
                let _ = writeln!(md, "- {n}");
            }
        }
        md
    }
}
