//! The sandbox applied by `coding-env sandbox-exec` to itself just before it `exec`s Python.
//!
//! Order matters and is: `setsid` (own session and process group, so a timeout can kill the
//! whole tree with one `killpg`), nice, rlimits, drop root (development only), landlock,
//! seccomp (last, so it may forbid syscalls the earlier steps needed), then `exec`. Every
//! step is a safe API (`rustix`, `landlock`, `seccompiler`, std's `CommandExt::exec`), so
//! the crate needs no `unsafe`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, LandlockStatus, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, path_beneath_rules,
};
use rustix::process::{Pid, Resource, Rlimit};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use serde::{Deserialize, Serialize};

use crate::config::Limits;

/// What `sandbox-exec` is told to do; passed as one JSON argument by the session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SandboxSpec {
    /// Program to `exec` (the Python interpreter).
    pub(crate) program: PathBuf,
    /// Its arguments.
    pub(crate) args: Vec<String>,
    /// The session's private directory: cwd, `HOME`, `TMPDIR`, and the only writable place.
    pub(crate) scratch: PathBuf,
    /// Directories and files the code may read and execute.
    pub(crate) read_paths: Vec<PathBuf>,
    /// rlimits and nice.
    pub(crate) limits: Limits,
    /// uid/gid to switch to when started as root.
    pub(crate) run_as_if_root: (u32, u32),
    /// Process ids the code must not signal (the worker, the server, init); only needed
    /// when landlock's signal scoping is unavailable.
    pub(crate) protected_pids: Vec<i32>,
    /// Process groups the code must not signal (the worker's and the server's).
    pub(crate) protected_groups: Vec<i32>,
    /// Run even if landlock cannot be enforced at all (seccomp-only fallback).
    #[serde(default)]
    pub(crate) allow_without_landlock: bool,
    /// The `coding-env` binary, to start the lifeline watcher (see [`lifeline`]); `None`
    /// for the probe.
    #[serde(default)]
    pub(crate) lifeline: Option<PathBuf>,
}

/// Name of the hidden subcommand that runs [`lifeline`].
pub const LIFELINE_SUBCOMMAND: &str = "lifeline";

/// Start the lifeline watcher for this (new) process group: `coding-env lifeline` with our
/// stdin (the request pipe), which starts `coding-env lifeline --watch` and exits at once,
/// so the watcher is not a child of the interpreter (user code calling `os.wait()` must not
/// find it) and stays in the session's process group (a timeout's `killpg` ends it too).
fn start_lifeline(launcher: &Path) -> Result<(), SandboxError> {
    let status = Command::new(launcher)
        .arg(LIFELINE_SUBCOMMAND)
        .env_clear()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|source| SandboxError::Sys {
            what: "start lifeline",
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(SandboxError::Sys {
            what: "start lifeline",
            source: std::io::Error::other(status.to_string()),
        })
    }
}

/// `coding-env lifeline [--watch]`: without `--watch`, start the watcher and return;
/// with it, wait until the request pipe on stdin hangs up (the session was dropped or the
/// worker died, possibly while the code is busy), then kill the whole process group, so
/// nothing a session started outlives it.
pub fn lifeline(watch: bool) -> std::io::Result<()> {
    // The watcher is not sandboxed (it must outlive nothing and kill the group), so make
    // it untouchable for the code running as the same uid: no ptrace, no /proc/<pid>/mem.
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)?;
    if !watch {
        let exe = std::env::current_exe()?;
        Command::new(exe)
            .args([LIFELINE_SUBCOMMAND, "--watch"])
            .env_clear()
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        return Ok(());
    }
    use rustix::event::{PollFd, PollFlags, poll};
    let stdin = std::io::stdin();
    loop {
        // No events requested: only hang-up and errors are reported; nothing is read.
        let mut fds = [PollFd::new(&stdin, PollFlags::empty())];
        poll(&mut fds, None)?;
        let revents = fds[0].revents();
        if revents.intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL) {
            let group = rustix::process::getpgrp();
            rustix::process::kill_process_group(group, rustix::process::Signal::KILL)?;
            return Ok(());
        }
    }
}

/// Which protections actually took effect; printed by `sandbox-exec` on stderr (one line,
/// prefixed by [`REPORT_PREFIX`]) before `exec`, and by `coding-env probe`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxReport {
    /// `"fully_enforced"`, `"partially_enforced"` or `"not_enforced"` (landlock).
    pub landlock: String,
    /// The kernel's landlock ABI if landlock is available.
    pub landlock_abi: Option<i32>,
    /// Whether the seccomp filter was installed.
    pub seccomp: bool,
    /// Whether `PR_SET_NO_NEW_PRIVS` is set.
    pub no_new_privs: bool,
    /// The uid the code runs as.
    pub uid: u32,
    /// The `RLIMIT_NPROC` value set (absolute).
    pub nproc_limit: u64,
}

/// Prefix of the report line `sandbox-exec` writes to its stderr.
pub const REPORT_PREFIX: &str = "coding-env-sandbox-report ";

/// Directories any Python needs to read (shared libraries, the dynamic loader, `/bin/sh`
/// for `subprocess`), plus a few harmless files. Missing paths are skipped.
const SYSTEM_READ_PATHS: &[&str] = &[
    "/usr",
    "/lib",
    "/lib64",
    "/bin",
    "/nix/store",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/localtime",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/dev/urandom",
    "/dev/random",
    "/sys/devices/system/cpu",
];

/// Device files the code may also write.
const DEVICE_RW_PATHS: &[&str] = &["/dev/null", "/dev/zero", "/dev/full"];

/// Errors while building the sandbox; `sandbox-exec` prints them and exits non-zero, so
/// the session reports a spawn failure instead of running unsandboxed code.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The spec argument could not be parsed.
    #[error("bad sandbox spec: {0}")]
    Spec(#[from] serde_json::Error),
    /// A system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// Which step.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// Landlock rejected the ruleset (not: landlock is unsupported, which is best effort).
    #[error("landlock: {0}")]
    Landlock(#[from] landlock::RulesetError),
    /// Landlock is not available here and the configuration does not allow running
    /// without it (see [`crate::SessionConfig::allow_without_landlock`]).
    #[error(
        "landlock is not available (kernel without landlock, or a seccomp profile that blocks \
         its syscalls); refusing to run code with only the seccomp fallback. Set \
         CODING_ENV_ALLOW_NO_LANDLOCK=1 to accept the weaker isolation"
    )]
    LandlockUnavailable,
    /// seccompiler rejected the filter.
    #[error("seccomp: {0}")]
    Seccomp(String),
    /// `exec` of the interpreter failed.
    #[error("exec {program}: {source}")]
    Exec {
        /// The program.
        program: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn sys(what: &'static str) -> impl FnOnce(rustix::io::Errno) -> SandboxError {
    move |e| SandboxError::Sys {
        what,
        source: e.into(),
    }
}

/// Entry point of `coding-env sandbox-exec SPEC`: apply everything, then become Python.
/// Returns only on error.
pub fn sandbox_exec(spec_json: &str) -> Result<Infallible, SandboxError> {
    let spec: SandboxSpec = serde_json::from_str(spec_json)?;
    let report = apply(&spec)?;
    // One line for the session's log; the driver silences fd 2 once it is up.
    let line = serde_json::to_string(&report)?;
    eprintln!("{REPORT_PREFIX}{line}");
    let scratch = spec.scratch.as_os_str();
    let err = Command::new(&spec.program)
        .args(&spec.args)
        .env_clear()
        .env("HOME", scratch)
        .env("TMPDIR", scratch)
        .env("PWD", scratch)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LANG", "C.UTF-8")
        .current_dir(&spec.scratch)
        .exec();
    Err(SandboxError::Exec {
        program: spec.program,
        source: err,
    })
}

/// Apply the whole sandbox to the current (single-threaded) process.
pub(crate) fn apply(spec: &SandboxSpec) -> Result<SandboxReport, SandboxError> {
    // New session: the process becomes leader of a new process group whose id is its pid;
    // descendants stay in it because seccomp forbids setsid/setpgid below.
    let pgid = rustix::process::setsid().map_err(sys("setsid"))?;
    if let Some(launcher) = &spec.lifeline {
        start_lifeline(launcher)?;
    }
    let nice = spec.limits.nice.clamp(0, 19);
    rustix::process::setpriority_process(None, nice).map_err(sys("setpriority"))?;

    let euid = rustix::process::geteuid();
    let uid = if euid.is_root() {
        spec.run_as_if_root.0
    } else {
        euid.as_raw()
    };
    let nproc_limit = nproc_limit(uid, pgid.as_raw_pid(), spec.limits.max_processes);
    let limits = spec.limits;
    set_limit(
        Resource::Cpu,
        limits.cpu_seconds,
        limits.cpu_seconds.saturating_add(1),
    )?;
    set_limit(
        Resource::As,
        limits.address_space_bytes,
        limits.address_space_bytes,
    )?;
    // The hard NPROC limit stays as inherited, so the worker can move the soft limit later
    // (see `nproc_limit`); the code itself cannot, because seccomp forbids changing rlimits.
    let nproc_hard = rustix::process::getrlimit(Resource::Nproc).maximum;
    let nproc_limit = nproc_hard.map_or(nproc_limit, |hard| nproc_limit.min(hard));
    rustix::process::setrlimit(
        Resource::Nproc,
        Rlimit {
            current: Some(nproc_limit),
            maximum: nproc_hard,
        },
    )
    .map_err(sys("setrlimit"))?;
    set_limit(
        Resource::Fsize,
        limits.max_file_size_bytes,
        limits.max_file_size_bytes,
    )?;
    set_limit(
        Resource::Nofile,
        limits.max_open_files,
        limits.max_open_files,
    )?;
    set_limit(Resource::Core, 0, 0)?;

    if euid.is_root() {
        // Development only (the image runs as an unprivileged user): root ignores
        // RLIMIT_NPROC and file permissions, so become an ordinary user. This process is
        // single-threaded, so the per-thread rustix calls change the whole process.
        let (uid, gid) = spec.run_as_if_root;
        let gid = rustix::process::Gid::from_raw(gid);
        let uid_ = rustix::process::Uid::from_raw(uid);
        rustix::thread::set_thread_groups(&[]).map_err(sys("setgroups"))?;
        rustix::thread::set_thread_res_gid(gid, gid, gid).map_err(sys("setresgid"))?;
        rustix::thread::set_thread_res_uid(uid_, uid_, uid_).map_err(sys("setresuid"))?;
    }

    rustix::thread::set_no_new_privs(true).map_err(sys("no_new_privs"))?;
    let (landlock, landlock_abi) = apply_landlock(spec)?;
    if landlock == "not_enforced" && !spec.allow_without_landlock {
        return Err(SandboxError::LandlockUnavailable);
    }
    let filters = seccomp_filters(spec)?;
    for filter in &filters {
        seccompiler::apply_filter(filter).map_err(|e| SandboxError::Seccomp(e.to_string()))?;
    }
    Ok(SandboxReport {
        landlock,
        landlock_abi,
        seccomp: true,
        no_new_privs: true,
        uid,
        nproc_limit,
    })
}

fn set_limit(resource: Resource, current: u64, maximum: u64) -> Result<(), SandboxError> {
    rustix::process::setrlimit(
        resource,
        Rlimit {
            current: Some(current),
            maximum: Some(maximum),
        },
    )
    .map_err(sys("setrlimit"))
}

/// The `RLIMIT_NPROC` value that gives the process group `pgid` a budget of `extra` tasks.
///
/// The kernel compares the limit with the number of tasks (threads included) of the whole
/// uid, which includes the server and every other session. So the limit is "tasks of the
/// uid outside this group + budget"; the worker re-bases it (with `prlimit`) before and
/// during each step, so a session started when few others existed can still create threads
/// when many exist later, and its own leftovers count against its own budget. Between two
/// re-basings (250 ms) growth of other sessions eats into this session's budget; that race
/// is the price of not having a pids cgroup (unavailable to an unprivileged container).
pub(crate) fn nproc_limit(uid: u32, pgid: i32, extra: u64) -> u64 {
    census(uid).limit_for(pgid, extra)
}

/// How many tasks (threads included) a uid has, in total and per process group; what
/// `RLIMIT_NPROC` counts. One pass over `/proc/*/status`.
#[derive(Debug, Default)]
pub(crate) struct Census {
    total: u64,
    by_group: std::collections::HashMap<i32, u64>,
}

impl Census {
    /// The soft `RLIMIT_NPROC` giving group `pgid` a budget of `extra` tasks.
    pub(crate) fn limit_for(&self, pgid: i32, extra: u64) -> u64 {
        let own = self.by_group.get(&pgid).copied().unwrap_or(0);
        self.total.saturating_sub(own).saturating_add(extra)
    }
}

/// Count the tasks of `uid`.
pub(crate) fn census(uid: u32) -> Census {
    let mut census = Census::default();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return census;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let mut real_uid = None;
        let mut group = None;
        let mut threads = 1u64;
        for line in status.lines() {
            let field = |prefix: &str| {
                line.strip_prefix(prefix)
                    .and_then(|rest| rest.split_whitespace().next())
            };
            if let Some(v) = field("Uid:") {
                real_uid = v.parse::<u32>().ok();
            } else if let Some(v) = field("NSpgid:") {
                group = v.parse::<i32>().ok();
            } else if let Some(v) = field("Threads:") {
                // A zombie shows 0 threads but still counts until it is reaped.
                threads = v.parse::<u64>().unwrap_or(1).max(1);
            }
        }
        if real_uid == Some(uid) {
            census.total = census.total.saturating_add(threads);
            if let Some(group) = group {
                let n = census.by_group.entry(group).or_insert(0);
                *n = n.saturating_add(threads);
            }
        }
    }
    census
}

/// Landlock, best effort: filesystem (read/execute on system and Python directories,
/// everything in the scratch directory, nothing else), TCP bind/connect denied, and scoping
/// of abstract unix sockets and signals to the sandbox (ABI 6), which is what stops the
/// code from killing the worker, the server or other sessions.
fn apply_landlock(spec: &SandboxSpec) -> Result<(String, Option<i32>), SandboxError> {
    let abi = ABI::V6;
    let mut read: Vec<PathBuf> = SYSTEM_READ_PATHS.iter().map(PathBuf::from).collect();
    read.extend(spec.read_paths.iter().cloned());
    let devices: Vec<&Path> = DEVICE_RW_PATHS.iter().map(Path::new).collect();
    let status = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(abi))?
        .handle_access(AccessNet::from_all(abi))?
        .scope(Scope::from_all(abi))?
        .create()?
        .add_rules(path_beneath_rules(&read, AccessFs::from_read(abi)))?
        .add_rules(path_beneath_rules(devices, AccessFs::from_file(abi)))?
        .add_rules(path_beneath_rules([&spec.scratch], AccessFs::from_all(abi)))?
        .restrict_self()?;
    let enforced = match status.ruleset {
        RulesetStatus::FullyEnforced => "fully_enforced",
        RulesetStatus::PartiallyEnforced => "partially_enforced",
        RulesetStatus::NotEnforced => "not_enforced",
    };
    let abi = match status.landlock {
        LandlockStatus::Available { effective_abi, .. } => Some(effective_abi as i32),
        _ => None,
    };
    Ok((enforced.to_string(), abi))
}

fn arch() -> Result<TargetArch, SandboxError> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(|e| SandboxError::Seccomp(e.to_string()))
}

fn cond(
    arg: u8,
    len: SeccompCmpArgLen,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompCondition, SandboxError> {
    SeccompCondition::new(arg, len, op, value).map_err(|e| SandboxError::Seccomp(e.to_string()))
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, SandboxError> {
    SeccompRule::new(conditions).map_err(|e| SandboxError::Seccomp(e.to_string()))
}

/// Two seccomp filters (allow by default, deny listed calls):
///
/// 1. `EPERM` for: changing rlimits (`setrlimit`, `prlimit64` with a new value: the worker
///    adjusts the soft process limit, see [`nproc_limit`]), `socket()` of any family but
///    `AF_UNIX` (no network, and it works where
///    landlock is unavailable; `AF_UNIX` stays because `multiprocessing` and friends need
///    socketpairs), io_uring (it could open sockets without `socket()`), tracing and other
///    processes' memory (`ptrace`, `process_vm_*`, `pidfd_getfd`), leaving the process
///    group (`setsid`, `setpgid`: the timeout kills the group), namespaces and mounts, BPF,
///    perf, userfaultfd, keyrings, and signals aimed at the protected pids/groups and at
///    every process (`kill(-1)`).
/// 2. `ENOSYS` for `clone3` (its flags are behind a pointer BPF cannot read; libc then
///    falls back to `clone`, whose namespace flags filter 1 rejects).
fn seccomp_filters(spec: &SandboxSpec) -> Result<Vec<BpfProgram>, SandboxError> {
    use SeccompCmpArgLen::Dword;
    use SeccompCmpOp::{Eq, MaskedEq, Ne};
    let mut deny: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    deny.insert(
        libc::SYS_socket,
        vec![rule(vec![cond(0, Dword, Ne, libc::AF_UNIX as u64)?])?],
    );
    for nr in [
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_pidfd_getfd,
        libc::SYS_setsid,
        libc::SYS_setpgid,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_fsopen,
        libc::SYS_fsmount,
        libc::SYS_move_mount,
        libc::SYS_open_tree,
        libc::SYS_open_by_handle_at,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_setrlimit,
    ] {
        deny.insert(nr, Vec::new());
    }
    // Reading limits (`prlimit64` with a NULL new value) is fine; changing them is not.
    deny.insert(
        libc::SYS_prlimit64,
        vec![rule(vec![cond(2, SeccompCmpArgLen::Qword, Ne, 0)?])?],
    );
    let ns_flags = (libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWCGROUP) as u64;
    deny.insert(
        libc::SYS_clone,
        ns_flags_rules(ns_flags, |bit| {
            cond(0, SeccompCmpArgLen::Qword, MaskedEq(bit), bit)
        })?,
    );

    // Signals: `kill(-1)` always; the protected pids and groups (defence in depth: landlock
    // ABI >= 6 already confines signals to the sandbox).
    let mut kill_targets: Vec<i32> = vec![-1];
    kill_targets.extend(spec.protected_pids.iter().copied());
    kill_targets.extend(spec.protected_groups.iter().map(|g| g.saturating_neg()));
    let mut kill_rules = Vec::new();
    let mut pid_rules = Vec::new();
    for target in &kill_targets {
        kill_rules.push(rule(vec![cond(0, Dword, Eq, u64::from(*target as u32))?])?);
        if *target > 0 {
            pid_rules.push(rule(vec![cond(0, Dword, Eq, u64::from(*target as u32))?])?);
        }
    }
    deny.insert(libc::SYS_kill, kill_rules.clone());
    deny.insert(libc::SYS_rt_sigqueueinfo, kill_rules);
    for nr in [
        libc::SYS_tgkill,
        libc::SYS_tkill,
        libc::SYS_pidfd_open,
        libc::SYS_rt_tgsigqueueinfo,
    ] {
        if !pid_rules.is_empty() {
            deny.insert(nr, pid_rules.clone());
        }
    }

    let eperm = SeccompFilter::new(
        deny,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch()?,
    )
    .map_err(|e| SandboxError::Seccomp(e.to_string()))?;
    let mut nosys_rules = BTreeMap::new();
    nosys_rules.insert(libc::SYS_clone3, Vec::new());
    let nosys = SeccompFilter::new(
        nosys_rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch()?,
    )
    .map_err(|e| SandboxError::Seccomp(e.to_string()))?;
    let mut programs = Vec::new();
    for filter in [eperm, nosys] {
        programs
            .push(BpfProgram::try_from(filter).map_err(|e| SandboxError::Seccomp(e.to_string()))?);
    }
    Ok(programs)
}

/// One rule per namespace flag bit, so `clone` with any of them matches.
fn ns_flags_rules(
    flags: u64,
    make: impl Fn(u64) -> Result<SeccompCondition, SandboxError>,
) -> Result<Vec<SeccompRule>, SandboxError> {
    let mut rules = Vec::new();
    let mut bit = 1u64;
    while bit != 0 {
        if flags & bit != 0 {
            rules.push(rule(vec![make(bit)?])?);
        }
        bit <<= 1;
    }
    Ok(rules)
}

/// Result of [`probe`]: what the sandbox achieves on this host, checked by trying.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeReport {
    /// What was applied.
    pub applied: SandboxReport,
    /// `socket(AF_INET)` + connect to 127.0.0.1 was refused by the sandbox.
    pub inet_socket_blocked: bool,
    /// Listing `/` failed (landlock confines reads).
    pub root_dir_unreadable: bool,
    /// Writing a file outside the scratch directory (in `/tmp`) failed.
    pub write_outside_scratch_blocked: bool,
    /// Writing inside the scratch directory worked.
    pub scratch_writable: bool,
    /// Signalling the parent process failed (landlock signal scoping or seccomp).
    pub signal_parent_blocked: bool,
}

/// Apply the sandbox to *this* process (it should exit afterwards) and check the effect;
/// used by `coding-env probe` to find out what works on a host or inside a container
/// without needing Python there.
pub fn probe(scratch: &Path) -> Result<ProbeReport, SandboxError> {
    let parent = rustix::process::getppid().map(Pid::as_raw_pid);
    let spec = SandboxSpec {
        program: PathBuf::new(),
        args: Vec::new(),
        scratch: scratch.to_path_buf(),
        read_paths: Vec::new(),
        limits: Limits::default(),
        run_as_if_root: (65534, 65534),
        protected_pids: parent.into_iter().collect(),
        protected_groups: Vec::new(),
        allow_without_landlock: true,
        lifeline: None,
    };
    let applied = apply(&spec)?;
    let inet_socket_blocked = match std::net::TcpStream::connect(("127.0.0.1", 9)) {
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::PermissionDenied,
    };
    let root_dir_unreadable = std::fs::read_dir("/").is_err();
    let outside = std::env::temp_dir().join(format!("coding-env-probe-{}", std::process::id()));
    let write_outside_scratch_blocked = std::fs::write(&outside, b"x").is_err();
    let scratch_writable = std::fs::write(scratch.join("probe"), b"x").is_ok();
    let signal_parent_blocked = match parent {
        // Signal 0 only checks permission; nothing is delivered.
        Some(pid) => match Pid::from_raw(pid) {
            Some(pid) => rustix::process::test_kill_process(pid).is_err(),
            None => true,
        },
        None => true,
    };
    Ok(ProbeReport {
        applied,
        inet_socket_blocked,
        root_dir_unreadable,
        write_outside_scratch_blocked,
        scratch_writable,
        signal_parent_blocked,
    })
}
