//! Operating-system helpers: file-descriptor limits, process-tree memory, machine facts.

use std::collections::HashMap;
use std::fs;

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use serde::Serialize;

/// Raises RLIMIT_NOFILE for this process (and so for every child it starts, which inherit
/// it) to `want`, or as high as allowed. Returns the soft limit now in force.
pub(crate) fn raise_nofile(want: u64) -> u64 {
    let cur = getrlimit(Resource::Nofile);
    let hard = cur.maximum.unwrap_or(u64::MAX);
    // Root may raise the hard limit too; try that first, then fall back to the hard limit.
    if want > hard {
        let raised = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(want),
                maximum: Some(want),
            },
        );
        if raised.is_ok() {
            return want;
        }
    }
    let soft = want.min(hard);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(soft),
            maximum: cur.maximum,
        },
    );
    getrlimit(Resource::Nofile).current.unwrap_or(soft)
}

/// The parent pid of every process, from /proc/<pid>/stat.
fn parents() -> HashMap<u32, u32> {
    let mut map = HashMap::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return map;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name is in parentheses and may contain spaces: split after the last ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let _state = fields.next();
        if let Some(ppid) = fields.next().and_then(|s| s.parse::<u32>().ok()) {
            map.insert(pid, ppid);
        }
    }
    map
}

/// `root` and all its descendants.
pub(crate) fn process_tree(root: u32) -> Vec<u32> {
    let parents = parents();
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|&(_, &pp)| pp == p)
                .map(|(&pid, _)| pid),
        );
        i += 1;
    }
    tree
}

/// VmRSS of one process, in KiB.
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// RSS of a process tree: (total KiB, number of processes, per-process KiB).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TreeRss {
    pub(crate) total_kib: u64,
    pub(crate) processes: Vec<(u32, u64)>,
}

pub(crate) fn tree_rss(root: u32) -> TreeRss {
    let processes: Vec<(u32, u64)> = process_tree(root)
        .into_iter()
        .filter_map(|p| rss_kib(p).map(|r| (p, r)))
        .collect();
    TreeRss {
        total_kib: processes.iter().map(|(_, r)| r).sum(),
        processes,
    }
}

/// What the results were measured on.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Machine {
    pub(crate) cores: usize,
    pub(crate) cpu_model: String,
    pub(crate) mem_total_gib: f64,
    pub(crate) kernel: String,
    pub(crate) loadavg_start: String,
    pub(crate) loadavg_end: String,
    pub(crate) nofile_limit: u64,
}

pub(crate) fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub(crate) fn machine(nofile_limit: u64) -> Machine {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let mem_total_gib = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    Machine {
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        cpu_model,
        mem_total_gib,
        kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default(),
        loadavg_start: loadavg(),
        loadavg_end: String::new(),
        nofile_limit,
    }
}

/// CPU time (user + system, in clock ticks of 1/100 s) consumed so far by one process.
pub(crate) fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the command name: state is 3rd overall, utime 14th, stime 15th.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU ticks of a server process tree: (root process, all its descendants).
pub(crate) fn tree_cpu_ticks(root: u32) -> (u64, u64) {
    let tree = process_tree(root);
    let main = cpu_ticks(root).unwrap_or(0);
    let rest = tree.iter().skip(1).filter_map(|&p| cpu_ticks(p)).sum();
    (main, rest)
}

/// The CPU affinity this thread had before [`pin_to_one_cpu`].
pub(crate) struct Pinned(rustix::thread::CpuSet);

/// Pins the calling thread (the load generator; processes started from it inherit the
/// affinity) to its first allowed CPU. Returns the previous affinity.
pub(crate) fn pin_to_one_cpu() -> anyhow::Result<(Pinned, usize)> {
    use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};
    let before = sched_getaffinity(None)?;
    let cpu = (0..CpuSet::MAX_CPU)
        .find(|&c| before.is_set(c))
        .ok_or_else(|| anyhow::anyhow!("no CPU in the affinity mask"))?;
    let mut one = CpuSet::new();
    one.set(cpu);
    sched_setaffinity(None, &one)?;
    Ok((Pinned(before), cpu))
}

/// Restores the affinity saved by [`pin_to_one_cpu`].
pub(crate) fn unpin(p: Pinned) {
    let _ = rustix::thread::sched_setaffinity(None, &p.0);
}
