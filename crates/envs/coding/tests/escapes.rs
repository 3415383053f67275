//! Each escape must fail and be contained, while another session keeps working.

mod common;

use std::io::ErrorKind;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::Bystander;

fn assert_denied(out: &coding_env::StepOutput, what: &str) {
    assert_eq!(out.exit_code, 1, "{what} was not denied: {out:?}");
    assert!(
        out.stderr.contains("PermissionError") || out.stderr.contains("Operation not permitted"),
        "{what}: {out:?}"
    );
}

#[test]
fn sandbox_is_fully_enforced_here() {
    let mut s = common::session();
    s.step("1", None).unwrap();
    let report = s.isolation().expect("report");
    assert!(report.seccomp && report.no_new_privs, "{report:?}");
    if std::env::var("CODING_ENV_ALLOW_NO_LANDLOCK").is_err() {
        assert_eq!(report.landlock, "fully_enforced", "{report:?}");
    }
    assert_ne!(report.uid, 0);
}

#[test]
fn no_network() {
    let bystander = Bystander::start();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut s = common::session();
    let out = s
        .step(
            &format!("import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=3)"),
            None,
        )
        .unwrap();
    assert_denied(&out, "tcp connect");
    let out = s
        .step(
            "import socket\nsocket.socket(socket.AF_INET6, socket.SOCK_DGRAM)",
            None,
        )
        .unwrap();
    assert_denied(&out, "udp6 socket");
    let out = s.step("import socket\nsocket.socket(socket.AF_INET, socket.SOCK_STREAM).bind(('127.0.0.1', 0))", None).unwrap();
    assert_denied(&out, "bind");
    let out = s.step("import subprocess\nsubprocess.run(['python3', '-c', f\"import socket; socket.create_connection(('127.0.0.1', {port}))\"]).returncode", None);
    assert_ne!(out.unwrap().stdout, "0", "subprocess connected");
    // Unix socketpairs (multiprocessing, asyncio) still work.
    let out = s
        .step(
            "import socket\na, b = socket.socketpair()\na.send(b'hi')\nb.recv(2)",
            None,
        )
        .unwrap();
    assert_eq!(out.exit_code, 0, "{out:?}");
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the listener got a connection: {other:?}"),
    }
    bystander.finish();
}

#[test]
fn filesystem_confined_to_scratch() {
    let mut s = common::session();
    let outside = std::env::temp_dir().join(format!("coding-env-escape-{}", std::process::id()));
    let out = s
        .step(
            &format!("open({:?}, 'w').write('x')", outside.to_string_lossy()),
            None,
        )
        .unwrap();
    assert_denied(&out, "write to /tmp");
    assert!(!outside.exists());
    let here = env!("CARGO_MANIFEST_DIR");
    let out = s
        .step(&format!("open({here:?} + '/Cargo.toml').read()"), None)
        .unwrap();
    assert_denied(&out, "read the server's files");
    let out = s.step("import os\nos.listdir('/proc')", None).unwrap();
    assert_denied(&out, "list /proc");
    let out = s.step("open('/etc/shadow').read()", None).unwrap();
    assert_eq!(out.exit_code, 1);
    let out = s.step("import os\nos.mkdir('/usr/evil')", None).unwrap();
    assert_denied(&out, "write to /usr");
    // Python's own tree is readable, not writable.
    let out = s
        .step("import os\nopen(os.__file__).read(10)", None)
        .unwrap();
    assert_eq!(out.exit_code, 0, "{out:?}");
    let out = s.step("open(os.__file__, 'a').write('#')", None).unwrap();
    assert_denied(&out, "modify the stdlib");
    // Symlinks and hard links out of the scratch directory do not help.
    let out = s
        .step(&format!("os.symlink({here:?}, 'l')\nos.listdir('l')"), None)
        .unwrap();
    assert_denied(&out, "symlink");
}

#[test]
fn other_sessions_files_are_unreachable() {
    let mut a = common::session();
    let mut b = common::session();
    b.step("open('secret.txt', 'w').write('b-secret')", None)
        .unwrap();
    let b_dir = b.scratch_dir().unwrap().to_string_lossy().into_owned();
    let out = a
        .step(
            &format!("open({:?}).read()", format!("{b_dir}/secret.txt")),
            None,
        )
        .unwrap();
    assert_denied(&out, "read another session's file");
    let out = a
        .step(
            &format!("open({:?}, 'w').write('x')", format!("{b_dir}/planted.py")),
            None,
        )
        .unwrap();
    assert_denied(&out, "write into another session");
    let out = a.step("import os\nos.listdir('..')", None).unwrap();
    assert_denied(&out, "list the scratch root");
    // b is untouched.
    let out = b.step("import os\nsorted(os.listdir('.'))", None).unwrap();
    assert_eq!(out.stdout, "[\"secret.txt\"]");
}

#[test]
fn fork_bomb_is_contained() {
    let bystander = Bystander::start();
    let mut s = common::session();
    let t = Instant::now();
    let out = s
        .step(
            "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
            Some(Duration::from_secs(4)),
        )
        .unwrap();
    assert!(out.timed_out && out.state_lost, "{out:?}");
    assert!(t.elapsed() < Duration::from_secs(10));
    // The whole group is gone and the next step works.
    let out = s.step("import os\nlen(os.listdir('.'))", None).unwrap();
    assert_eq!(out.stdout, "0", "{out:?}");
    bystander.finish();
}

#[test]
fn subprocesses_cannot_leave_the_group() {
    let mut s = common::session();
    let out = s.step("import os\nos.setsid()", None).unwrap();
    assert_denied(&out, "setsid");
    let out = s
        .step(
            "import subprocess\nsubprocess.Popen(['sleep', '1000'], start_new_session=True)",
            None,
        )
        .unwrap();
    assert_eq!(out.exit_code, 1, "{out:?}");
    // A background child is killed with the interpreter on timeout.
    let out = s
        .step(
            "import subprocess\np = subprocess.Popen(['sleep', '1000'])\np.pid",
            None,
        )
        .unwrap();
    let pid: i32 = out.stdout.parse().expect("pid");
    let out = s
        .step("while True: pass", Some(Duration::from_secs(1)))
        .unwrap();
    assert!(out.timed_out);
    std::thread::sleep(Duration::from_millis(200));
    let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|st| !st.contains(") Z "))
        .unwrap_or(false);
    assert!(!alive, "background child {pid} survived the kill");
}

#[test]
fn memory_bomb_is_contained() {
    let bystander = Bystander::start();
    let mut s = common::session();
    let out = s.step("x = bytearray(8 * 1024**3)", None).unwrap();
    assert_eq!(out.exit_code, 1);
    assert!(out.stderr.contains("MemoryError"), "{out:?}");
    let out = s
        .step(
            "l = []\nwhile True:\n    l.append(bytearray(50 * 1024**2))",
            None,
        )
        .unwrap();
    assert_eq!(out.exit_code, 1);
    assert!(
        out.stderr.contains("MemoryError") || out.state_lost,
        "{out:?}"
    );
    let out = s.step("del l\n6 * 7", None).unwrap();
    assert!(out.stdout == "42" || out.state_lost, "{out:?}");
    assert_eq!(s.step("6 * 7", None).unwrap().stdout, "42");
    bystander.finish();
}

#[test]
fn infinite_loop_times_out_and_next_step_is_fresh() {
    let bystander = Bystander::start();
    let mut s = common::session();
    s.step("x = 1", None).unwrap();
    let t = Instant::now();
    let out = s
        .step("while True:\n    pass", Some(Duration::from_secs(2)))
        .unwrap();
    let took = t.elapsed();
    assert!(
        out.timed_out && out.state_lost && out.exit_code != 0,
        "{out:?}"
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert!(out.stderr.contains("time limit"), "{out:?}");
    let out = s.step("x", None).unwrap();
    assert!(
        out.stderr.contains("NameError"),
        "state should be lost: {out:?}"
    );
    assert_eq!(s.step("1 + 1", None).unwrap().stdout, "2");
    // A CPU-bound loop in C (not interruptible by signals) is killed the same way.
    let out = s
        .step(
            "import re\nre.match('(a*)*b', 'a' * 40)",
            Some(Duration::from_secs(1)),
        )
        .unwrap();
    assert!(out.timed_out, "{out:?}");
    bystander.finish();
}

#[test]
fn output_flood_is_capped() {
    let bystander = Bystander::start();
    let cfg = common::config_with(|c| c.max_output_bytes = 10_000);
    let mut s = coding_env::PythonSession::start(cfg).unwrap();
    let out = s.step("print('x' * 1_000_000)", None).unwrap();
    assert!(out.stdout_truncated, "{out:?}");
    assert!(out.stdout.len() < 10_200);
    assert!(
        out.stdout.contains("output truncated: 1000001 bytes"),
        "{}",
        &out.stdout[9_990..]
    );
    let out = s
        .step("import sys\nsys.stderr.write('e' * 50_000)\nNone", None)
        .unwrap();
    assert!(
        out.stderr_truncated && out.stderr.len() < 10_200,
        "{}",
        out.stderr.len()
    );
    let out = s.step("print('x' + '\\u00e9' * 10_000)", None).unwrap();
    assert!(
        out.stdout_truncated && !out.stdout.contains('\u{fffd}'),
        "cut inside a character"
    );
    let out = s.step("'v' * 1_000_000", None).unwrap();
    assert!(out.stdout_truncated && out.stdout.len() < 10_200);
    // An endless flood from Python and from a subprocess: stopped by RLIMIT_FSIZE or the timeout.
    let t = Instant::now();
    let out = s
        .step(
            "while True:\n    print('y' * 65536)",
            Some(Duration::from_secs(10)),
        )
        .unwrap();
    assert_eq!(out.exit_code, 1, "{:?}", &out.stderr);
    assert!(out.stdout.len() < 10_200 && out.stderr.len() < 10_200);
    eprintln!(
        "python flood ended after {:?}: {}",
        t.elapsed(),
        out.stderr.lines().last().unwrap_or("")
    );
    let out = s
        .step(
            "import subprocess\nsubprocess.run(['yes'])\nNone",
            Some(Duration::from_secs(10)),
        )
        .unwrap();
    assert!(out.stdout.len() < 10_200, "{}", out.stdout.len());
    assert_eq!(
        s.step("'still here'", None).unwrap().stdout,
        "\"still here\""
    );
    bystander.finish();
}

#[test]
fn cannot_kill_the_parent_or_its_group() {
    let bystander = Bystander::start();
    let mut s = common::session();
    let out = s.step("import os\nos.kill(os.getppid(), 9)", None).unwrap();
    assert_denied(&out, "kill parent");
    let out = s
        .step("import os\nos.killpg(os.getpgid(os.getppid()), 9)", None)
        .unwrap();
    assert_denied(&out, "killpg parent group");
    let out = s.step("import os\nos.kill(-1, 9)", None).unwrap();
    assert_denied(&out, "kill(-1)");
    let out = s
        .step("import os, signal\nos.kill(1, signal.SIGTERM)", None)
        .unwrap();
    assert_denied(&out, "kill init");
    let out = s.step("import os\nos.getppid()", None).unwrap();
    assert_eq!(out.stdout, std::process::id().to_string());
    // Killing itself is allowed and only loses its own state.
    let out = s.step("import os\nos.kill(os.getpid(), 9)", None).unwrap();
    assert!(out.state_lost, "{out:?}");
    assert_eq!(s.step("'alive'", None).unwrap().stdout, "\"alive\"");
    bystander.finish();
}

#[test]
fn cannot_signal_another_session() {
    let mut a = common::session();
    let mut b = common::session();
    let b_pid = b.step("import os\nos.getpid()", None).unwrap().stdout;
    let out = a
        .step(&format!("import os\nos.kill({b_pid}, 9)"), None)
        .unwrap();
    assert_denied(&out, "kill another session");
    assert_eq!(b.step("'b alive'", None).unwrap().stdout, "\"b alive\"");
}

#[test]
fn server_environment_is_not_visible() {
    let secrets: Vec<(String, String)> = std::env::vars()
        .filter(|(k, v)| k.starts_with("CARGO") && v.len() > 3)
        .collect();
    assert!(
        !secrets.is_empty(),
        "expected cargo's variables in the test's environment"
    );
    let mut s = common::session();
    let out = s.step("import os\nsorted(os.environ)", None).unwrap();
    let names: Vec<String> = serde_json::from_str(&out.stdout).expect("json list");
    for name in &names {
        assert!(
            ["HOME", "LANG", "LC_CTYPE", "PATH", "PWD", "TMPDIR"].contains(&name.as_str()),
            "unexpected variable {name}"
        );
    }
    let out = s
        .step("open(f'/proc/{os.getppid()}/environ', 'rb').read()", None)
        .unwrap();
    assert_denied(&out, "read the worker's environ");
    for (_, value) in &secrets {
        assert!(!out.stdout.contains(value.as_str()));
    }
    let out = s.step("import subprocess\nsubprocess.run(['cat', f'/proc/{os.getppid()}/environ']).returncode", None).unwrap();
    assert_ne!(out.stdout, "0");
}

#[test]
fn many_sessions_in_parallel() {
    let handles: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let mut s = common::session();
                s.step(&format!("v = {i}"), None).unwrap();
                for _ in 0..20 {
                    s.step("v += 1", None).unwrap();
                }
                s.step("v", None).unwrap().stdout
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), (i + 20).to_string());
    }
}

#[test]
fn rlimits_cannot_be_changed() {
    // seccomp returns EPERM, which Python reports as "not allowed to raise maximum limit".
    let mut s = common::session();
    let before = s
        .step(
            "import resource\nresource.getrlimit(resource.RLIMIT_NPROC)",
            None,
        )
        .unwrap()
        .stdout;
    for code in [
        "resource.setrlimit(resource.RLIMIT_NPROC, (1, 1))",
        "soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)\nresource.setrlimit(resource.RLIMIT_NPROC, (hard, hard))",
        "resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))",
        "import ctypes\nctypes.CDLL(None).setrlimit(6, (ctypes.c_ulong * 2)(10**6, 10**6))",
    ] {
        let out = s.step(code, None).unwrap();
        assert!(out.exit_code == 1 || out.stdout == "-1", "{code}: {out:?}");
    }
    let after = s
        .step("resource.getrlimit(resource.RLIMIT_NPROC)", None)
        .unwrap()
        .stdout;
    assert_eq!(before, after);
    let out = s
        .step("resource.getrlimit(resource.RLIMIT_CPU)", None)
        .unwrap();
    assert_eq!(out.stdout, "[600, 601]");
}
