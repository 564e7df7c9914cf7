//! `mptcp-run` on unmodified programs: Python's `http.server` and `urllib` between two
//! network namespaces (the connection is MPTCP at both ends, the file arrives intact),
//! sockets that must stay as they are, the fallback with `net.mptcp.enabled=0`, the
//! shell's exit codes, and what cannot work (a static program, a direct system call, a
//! setuid program).
//!
//! The first test to run builds the preload library with `cargo build` (next to the
//! `mptcp-run` under test, the same profile), so the library tested is always the one of
//! the current sources, even under `cargo test -p mptcp-examples`, which does not build
//! it by itself.

#[macro_use]
extern crate mptcp_testnet;
use mptcp_testnet as common;

use common::{Netns, Topology, PATHS};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const RUN: &str = env!("CARGO_BIN_EXE_mptcp-run");
const PORT: u16 = 8080;
const FILE_LEN: usize = 1 << 20;

/// Builds `libmptcp_preload.so` next to `mptcp-run` (once per test binary) and returns
/// its path; panics with the reason when it cannot.
fn preload() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = Path::new(RUN).parent().expect("mptcp-run's directory");
            let so = dir.join("libmptcp_preload.so");
            let Some(cargo) = std::env::var_os("CARGO") else {
                // Not run by cargo: use what was built, if anything was.
                assert!(
                so.is_file(),
                "{} is missing and CARGO is unset: build it with `cargo build -p mptcp-preload`",
                so.display()
            );
                return so;
            };
            // target/[TRIPLE/]PROFILE/mptcp-run
            let profile = dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug");
            let mut cmd = Command::new(cargo);
            cmd.arg("build")
                .arg("--manifest-path")
                .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/preload/Cargo.toml"));
            match profile {
                "debug" => {}
                "release" => {
                    cmd.arg("--release");
                }
                p => {
                    cmd.args(["--profile", p]);
                }
            }
            let up = dir.parent().expect("target directory");
            if up.join("CACHEDIR.TAG").exists() {
                cmd.arg("--target-dir").arg(up);
            } else if let (Some(top), Some(triple)) = (up.parent(), up.file_name()) {
                cmd.arg("--target-dir").arg(top).arg("--target").arg(triple);
            }
            let out = bounded(&mut cmd, Duration::from_secs(600));
            assert!(
                out.status.success(),
                "cargo build of the preload library failed ({:?}):\n{}",
                cmd,
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                so.is_file(),
                "cargo built the preload library, but not as {}",
                so.display()
            );
            so
        })
        .as_path()
}

/// Runs a command to its end, killed after `timeout`.
fn bounded(cmd: &mut Command, timeout: Duration) -> Output {
    let mut p = Proc::spawn(cmd);
    drop(p.stdin.take());
    let end = Instant::now() + timeout;
    loop {
        if let Some(status) = p.child.try_wait().expect("wait") {
            let stdout = p.rest_of_stdout(end);
            // All of stderr, unless a process left behind still holds it.
            while !p.stderr_reader.is_finished() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(5));
            }
            return Output {
                status,
                stdout: stdout.into_bytes(),
                stderr: p.stderr().into_bytes(),
            };
        }
        assert!(
            Instant::now() < end,
            "{cmd:?} still running after {timeout:?}; stderr: {}",
            p.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process in a process group of its own (killed with its descendants on
/// drop), its stdout as lines read with a timeout, its stderr collected.
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    stderr_reader: std::thread::JoinHandle<()>,
}

impl Proc {
    fn spawn(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("stderr");
        let collected = stderr.clone();
        let stderr_reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                collected.lock().expect("stderr lock").push_str(&text);
            }
        });
        let stdin = child.stdin.take();
        Proc {
            child,
            stdin,
            lines,
            stderr,
            stderr_reader,
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// The next line of stdout; panics (with stderr) after `timeout`.
    fn line(&mut self, timeout: Duration) -> String {
        match self.lines.recv_timeout(timeout) {
            Ok(l) => l,
            Err(e) => panic!(
                "no line on stdout within {timeout:?} ({e}); stderr: {}",
                self.stderr()
            ),
        }
    }

    /// Whatever stdout still gives until it closes or `end`.
    fn rest_of_stdout(&mut self, end: Instant) -> String {
        let mut s = String::new();
        while let Ok(l) = self
            .lines
            .recv_timeout(end.saturating_duration_since(Instant::now()))
        {
            s.push_str(&l);
            s.push('\n');
        }
        s
    }

    fn send(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin");
        stdin.write_all(text.as_bytes()).expect("write to stdin");
        stdin.flush().expect("flush stdin");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: kill has no memory effects; the group is the child's own
        // (process_group(0)), so nothing else is signalled.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// A directory of this test run, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("mptcp-run-{}-{n}-{what}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the temporary directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The Python interpreter itself (not a wrapper script such as pyenv's shim), or why
/// there is none.
fn python() -> Result<&'static str, &'static str> {
    static PY: OnceLock<Option<String>> = OnceLock::new();
    PY.get_or_init(|| {
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .ok()?;
        let exe = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (out.status.success() && !exe.is_empty()).then_some(exe)
    })
    .as_deref()
    .ok_or("needs python3")
}

macro_rules! require_python {
    () => {
        match python() {
            Ok(p) => p,
            Err(why) => {
                eprintln!("skipped: {why}");
                return;
            }
        }
    };
}

/// `ip netns exec NS mptcp-run [OPTS] PROGRAM ARGS...` as a `Command`.
fn run_in(ns: &Netns, opts: &[&str], program: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &ns.name, RUN])
        .env_remove("MPTCP_MODE")
        .args(opts)
        .arg(program)
        .args(args);
    c
}

/// A program's output, which must have succeeded.
fn ok(mut cmd: Command) -> String {
    let out = bounded(&mut cmd, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{cmd:?}: {:?}; stderr: {stderr}",
        out.status
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The HTTP server, in the server namespace, serving `dir`; returns once it listens.
fn http_server(t: &Topology, opts: &[&str], dir: &Path) -> Proc {
    let py = python().expect("python3");
    let dir = dir.to_str().expect("UTF-8 path");
    let port = PORT.to_string();
    let args = [
        "-u",
        "-m",
        "http.server",
        &port,
        "--bind",
        PATHS[0].server4,
        "--directory",
        dir,
    ];
    let server = Proc::spawn(&mut run_in(&t.server, opts, py, &args));
    let listening = common::wait_for(Duration::from_secs(10), || {
        let ss = t
            .server
            .exec(&["ss", "-HltMn", &format!("sport = :{PORT}")]);
        (!ss.trim().is_empty()).then_some(())
    });
    assert!(
        listening.is_some(),
        "http.server does not listen within 10 s; stderr: {}",
        server.stderr()
    );
    server
}

/// The client: opens the URL, prints `proto N` (the socket's `SO_PROTOCOL`), waits for
/// a line on stdin, then reads the body and prints `LEN SHA256`.
const CLIENT: &str = r#"
import hashlib, socket, sys, urllib.request
r = urllib.request.urlopen(sys.argv[1], timeout=30)
print("proto", r.fp.raw._sock.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL), flush=True)
sys.stdin.readline()
data = r.read()
print(len(data), hashlib.sha256(data).hexdigest(), flush=True)
"#;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Serves a 1 MiB file from the server namespace to the client namespace, both under
/// `mptcp-run OPTS`; `during` runs while the connection is open (the client holds it
/// until then). Checks the bytes; returns the client socket's `SO_PROTOCOL`.
fn download(t: &Topology, opts: &[&str], during: impl FnOnce()) -> i32 {
    let py = python().expect("python3");
    let dir = TempDir::new("www");
    let data = common::data(FILE_LEN);
    std::fs::write(dir.0.join("file.bin"), &data).expect("write the file");
    let _server = http_server(t, opts, &dir.0);
    let url = format!("http://{}:{PORT}/file.bin", PATHS[0].server4);
    let mut client = Proc::spawn(&mut run_in(&t.client, opts, py, &["-c", CLIENT, &url]));
    let line = client.line(Duration::from_secs(20));
    let proto: i32 = line
        .strip_prefix("proto ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("client said {line:?}; stderr: {}", client.stderr()));
    during();
    client.send("\n");
    let result = client.line(Duration::from_secs(30));
    assert_eq!(
        result,
        format!("{FILE_LEN} {}", hex(&common::sha256(&data))),
        "the bytes arrive intact"
    );
    proto
}

/// `ss -HMn` (MPTCP sockets) in a namespace: the lines with `port` on either side.
fn ss_mptcp(ns: &Netns, state: &str) -> Vec<String> {
    ns.exec(&["ss", "-HMn", "state", state])
        .lines()
        .filter(|l| l.contains(&format!(":{PORT}")))
        .map(str::to_string)
        .collect()
}

#[test]
fn http_server_and_client_use_mptcp() {
    require_netns!();
    let py = require_python!();
    if !common::caps().mptcp {
        eprintln!("skipped: the kernel has no MPTCP (the fallback is tested without it)");
        return;
    }
    let _ = (py, preload());
    let t = Topology::new(1);
    let proto = download(&t, &[], || {
        // ss -M at both ends: the connection and the server's listener are MPTCP.
        let client = ss_mptcp(&t.client, "established");
        assert_eq!(client.len(), 1, "ss -M in the client namespace: {client:?}");
        assert!(client[0].contains(&format!("{}:{PORT}", PATHS[0].server4)));
        let server = ss_mptcp(&t.server, "established");
        assert_eq!(server.len(), 1, "ss -M in the server namespace: {server:?}");
        assert_eq!(
            ss_mptcp(&t.server, "listening").len(),
            1,
            "an MPTCP listener"
        );
        // The library's own listing agrees, with the subflow.
        let conns = t
            .client
            .run(mptcp::diag::connections)
            .expect("mptcp::diag::connections");
        let c = conns
            .iter()
            .find(|c| c.remote.port() == PORT)
            .unwrap_or_else(|| panic!("no MPTCP connection to port {PORT}: {conns:?}"));
        assert_eq!(c.state, mptcp::diag::SocketState::Established);
        assert_eq!(c.subflows.len(), 1, "{c:?}");
    });
    assert_eq!(proto, mptcp::IPPROTO_MPTCP, "the client's socket");
}

/// `SO_PROTOCOL` of sockets created in several ways, one line: stream sockets of both
/// families (with flags, with `IPPROTO_TCP`), UDP (which also carries a datagram), a
/// Unix socket and an explicit `IPPROTO_MPTCP` one.
const SOCKETS: &str = r#"
import socket
S = socket
kinds = [
    (S.AF_INET, S.SOCK_DGRAM, 0),
    (S.AF_INET6, S.SOCK_DGRAM, S.IPPROTO_UDP),
    (S.AF_INET, S.SOCK_STREAM, 0),
    (S.AF_INET6, S.SOCK_STREAM | S.SOCK_NONBLOCK | S.SOCK_CLOEXEC, 0),
    (S.AF_INET, S.SOCK_STREAM, S.IPPROTO_TCP),
    (S.AF_UNIX, S.SOCK_STREAM, 0),
    (S.AF_INET, S.SOCK_STREAM, 262),
]
out = []
for fam, ty, proto in kinds:
    try:
        s = S.socket(fam, ty, proto)
        out.append(str(s.getsockopt(S.SOL_SOCKET, S.SO_PROTOCOL)))
    except OSError as e:
        out.append("errno%d" % e.errno)
u = S.socket(S.AF_INET, S.SOCK_DGRAM)
u.bind(("127.0.0.1", 0))
u.sendto(b"udp", u.getsockname())
out.append(u.recv(16).decode())
print(" ".join(out))
"#;

#[test]
fn only_tcp_sockets_change() {
    require_netns!();
    let py = require_python!();
    let _ = preload();
    let ns = Netns::new("sockets");
    let sockets = |opts: &[&str]| {
        ok(run_in(&ns, opts, py, &["-c", SOCKETS]))
            .trim()
            .to_string()
    };
    // Without mptcp-run: what the program does by itself.
    let plain = ok({
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &ns.name, py, "-c", SOCKETS]);
        c
    });
    if !common::caps().mptcp {
        assert_eq!(
            sockets(&[]),
            plain.trim(),
            "prefer without MPTCP: nothing changes"
        );
        eprintln!("no MPTCP in this kernel: checked that prefer changes nothing");
        return;
    }
    assert_eq!(plain.trim(), "17 17 6 6 6 0 262 udp");
    assert_eq!(sockets(&[]), "17 17 262 262 262 0 262 udp");
    assert_eq!(
        sockets(&["--mptcp", "require"]),
        "17 17 262 262 262 0 262 udp"
    );
    assert_eq!(sockets(&["--mptcp", "off"]), "17 17 6 6 6 0 262 udp");
}

/// The errno that `socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP)` gives in a namespace,
/// asked of the kernel directly.
fn kernel_errno(ns: &Netns) -> Option<i32> {
    ns.run(|| {
        socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::STREAM,
            Some(socket2::Protocol::from(mptcp::IPPROTO_MPTCP)),
        )
        .err()
        .and_then(|e| e.raw_os_error())
    })
}

#[test]
fn disabled_mptcp_prefer_falls_back_require_fails() {
    require_netns!();
    let py = require_python!();
    let _ = preload();
    let t = Topology::new(1);
    for ns in [&t.client, &t.server] {
        if common::caps().mptcp {
            ns.sysctl("net.mptcp.enabled", "0");
        }
    }
    let errno = kernel_errno(&t.client).expect("MPTCP sockets are refused");
    if common::caps().mptcp {
        assert_eq!(errno, libc::ENOPROTOOPT, "net.mptcp.enabled=0");
    }
    // prefer: plain TCP at both ends, and the download works.
    let proto = download(&t, &[], || {
        if common::caps().mptcp {
            assert!(
                ss_mptcp(&t.client, "established").is_empty(),
                "no MPTCP socket"
            );
        }
        let tcp = t.client.exec(&["ss", "-Htn", "state", "established"]);
        assert!(tcp.contains(&format!(":{PORT}")), "a TCP connection: {tcp}");
    });
    assert_eq!(proto, libc::IPPROTO_TCP, "prefer falls back to TCP");
    // require: socket() fails with the kernel's errno; UDP is unaffected.
    let script = r#"
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
print("udp", u.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL))
try:
    socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    print("created")
except OSError as e:
    print("errno", e.errno)
"#;
    let out = ok(run_in(
        &t.client,
        &["--mptcp", "require"],
        py,
        &["-c", script],
    ));
    assert_eq!(out, format!("udp 17\nerrno {errno}\n"));
    // MPTCP_MODE=require does the same under the default prefer, as in the library.
    let mut cmd = run_in(&t.client, &[], py, &["-c", script]);
    cmd.env("MPTCP_MODE", "require");
    assert_eq!(ok(cmd), format!("udp 17\nerrno {errno}\n"));
    // prefer explicitly, MPTCP_MODE unset: TCP.
    let out = ok(run_in(
        &t.client,
        &["--mptcp", "prefer"],
        py,
        &["-c", script],
    ));
    assert_eq!(out, "udp 17\ncreated\n");
}

/// Runs mptcp-run here (no namespace: nothing is started) and returns (code, stdout,
/// stderr).
fn run_here(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(RUN);
    cmd.args(args).env_remove("MPTCP_MODE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = bounded(&mut cmd, Duration::from_secs(30));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn missing_program_and_bad_arguments() {
    let _ = preload();
    let fail = |args: &[&str], env: &[(&str, &str)], code: i32, line: &str| {
        let (c, out, err) = run_here(args, env);
        assert_eq!(c, Some(code), "{args:?}: exit code; stderr {err:?}");
        assert_eq!(out, "", "{args:?}: nothing on stdout");
        assert_eq!(err, format!("{line}\n"), "{args:?}: one line on stderr");
    };
    // As a shell: 127 not found, 126 found but not executable.
    fail(
        &["mptcp-run-no-such-program", "-x"],
        &[],
        127,
        "mptcp-run: mptcp-run-no-such-program: command not found",
    );
    fail(
        &["/nonexistent/program"],
        &[],
        127,
        "mptcp-run: /nonexistent/program: No such file or directory",
    );
    let dir = TempDir::new("exec");
    let file = dir.0.join("not-executable");
    std::fs::write(&file, "#!/bin/sh\n").expect("write");
    let file = file.to_str().expect("UTF-8 path");
    fail(
        &[file],
        &[],
        126,
        &format!("mptcp-run: {file}: Permission denied"),
    );
    let d = dir.0.to_str().expect("UTF-8 path");
    fail(&[d], &[], 126, &format!("mptcp-run: {d}: Is a directory"));
    // A program found in PATH keeps the name it was given as argv[0].
    let (c, out, _) = run_here(
        &["sh", "-c", "echo \"$0 $1 $MPTCP_RUN_MODE\"", "--mptcp", "x"],
        &[],
    );
    assert_eq!((c, out.as_str()), (Some(0), "--mptcp x prefer\n"));
    // Usage errors: exit 2, one line naming what is wrong.
    fail(
        &["--mptcp", "sometimes", "true"],
        &[],
        2,
        "mptcp-run: invalid value 'sometimes' for '--mptcp <MODE>': \"sometimes\" is not a \
         mode: expected prefer, require or off (see --help)",
    );
    fail(
        &[],
        &[],
        2,
        "mptcp-run: the following required arguments were not provided: <PROGRAM>... (see --help)",
    );
    fail(
        &["--bogus", "true"],
        &[],
        2,
        "mptcp-run: unexpected argument '--bogus' found (see --help)",
    );
    fail(
        &["true"],
        &[("MPTCP_MODE", "sometimes")],
        2,
        "mptcp-run: invalid MPTCP_MODE: \"sometimes\" is not a mode: expected prefer, \
         require or off (see --help)",
    );
    // --bpf and --cgroup: what goes with what.
    fail(
        &["--pin", "/sys/fs/bpf/x", "true"],
        &[],
        2,
        "mptcp-run: --pin needs --cgroup PATH (see --help)",
    );
    fail(
        &["--cgroup", "/sys/fs/cgroup", "true"],
        &[],
        2,
        "mptcp-run: the argument '--cgroup <PATH>' cannot be used with '[PROGRAM]...' (see --help)",
    );
    fail(
        &["--bpf", "--preload", "/x.so", "true"],
        &[],
        2,
        "mptcp-run: the argument '--bpf' cannot be used with '--preload <PATH>' (see --help)",
    );
    // A cgroup that does not exist: 125, named (with BPF support built in; else the
    // error says how to build it).
    let (c, _, err) = run_here(&["--cgroup", "/nonexistent/cgroup"], &[]);
    assert_eq!(c, Some(125), "{err}");
    assert!(
        err.contains("/nonexistent/cgroup")
            || err.contains("update_socket_protocol")
            || err.contains("refused to load"),
        "{err}"
    );
    // No library: 125, before anything runs.
    fail(
        &["--preload", "/nonexistent/lib.so", "true"],
        &[],
        125,
        "mptcp-run: --preload /nonexistent/lib.so: No such file or directory",
    );
    // The program's own status comes back.
    assert_eq!(run_here(&["sh", "-c", "exit 7"], &[]).0, Some(7));
}

#[test]
fn ld_preload_is_kept_and_found_by_path() {
    let so = preload();
    let echo = ["sh", "-c", "echo \"$LD_PRELOAD\""];
    let (_, out, _) = run_here(&echo, &[]);
    assert_eq!(out.trim(), so.to_str().expect("UTF-8 path"));
    let dir = TempDir::new("lib");
    let copy = dir.0.join("copy.so");
    std::fs::copy(so, &copy).expect("copy the library");
    // An existing LD_PRELOAD stays, after ours.
    let other = copy.to_str().expect("UTF-8 path");
    let (_, out, _) = run_here(&echo, &[("LD_PRELOAD", other)]);
    assert_eq!(out.trim(), format!("{}:{other}", so.display()));
    // MPTCP_RUN_PRELOAD, then --preload, name it instead.
    let (_, out, _) = run_here(
        &echo,
        &[("MPTCP_RUN_PRELOAD", copy.to_str().expect("UTF-8"))],
    );
    assert_eq!(out.trim(), copy.to_str().expect("UTF-8"));
    let (c, out, err) = run_here(
        &["--preload", "/nonexistent.so", echo[0], echo[1], echo[2]],
        &[("MPTCP_RUN_PRELOAD", copy.to_str().expect("UTF-8"))],
    );
    assert_eq!(c, Some(125), "--preload wins: {out} {err}");
}

/// A C program: the `SO_PROTOCOL` of a TCP socket from `socket()`, of one from the raw
/// system call, and the effective user id.
const C_PROGRAM: &str = r#"
#include <stdio.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <netinet/in.h>
#include <unistd.h>
static int proto(int fd) {
    int p = -1; socklen_t l = sizeof p;
    if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &p, &l) < 0) return -1;
    return p;
}
int main(void) {
    int a = socket(AF_INET, SOCK_STREAM, 0);
    int b = syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
    printf("%d %d %u\n", proto(a), proto(b), (unsigned)geteuid());
    return 0;
}
"#;

#[test]
fn what_cannot_work() {
    require_netns!();
    let _ = preload();
    if !common::caps().mptcp {
        eprintln!("skipped: the kernel has no MPTCP");
        return;
    }
    let dir = TempDir::new("c");
    let src = dir.0.join("p.c");
    std::fs::write(&src, C_PROGRAM).expect("write the C program");
    let cc = |out: &str, extra: &[&str]| -> Option<String> {
        let exe = dir.0.join(out);
        let status = Command::new("gcc")
            .args(extra)
            .arg("-o")
            .arg(&exe)
            .arg(&src)
            .stderr(Stdio::null())
            .status()
            .ok()?;
        status
            .success()
            .then(|| exe.to_str().expect("UTF-8 path").to_string())
    };
    let Some(dynamic) = cc("dynamic", &[]) else {
        eprintln!("skipped: needs gcc");
        return;
    };
    let ns = Netns::new("limits");
    let run = |exe: &str| -> (String, String) {
        let mut cmd = run_in(&ns, &[], exe, &[]);
        let out = bounded(&mut cmd, Duration::from_secs(30));
        assert!(out.status.success(), "{exe}: {:?}", out.status);
        (
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Dynamic: socket() is wrapped; the direct system call is not.
    assert_eq!(run(&dynamic), ("262 6 0".to_string(), String::new()));
    // Static: nothing is wrapped, and mptcp-run says so.
    match cc("static", &["-static"]) {
        Some(stat) => {
            let (out, err) = run(&stat);
            assert_eq!(out, "6 6 0");
            assert_eq!(
                err,
                format!(
                    "mptcp-run: warning: {stat} is statically linked: LD_PRELOAD has no \
                     effect on it, so its sockets stay TCP (mptcp-run --bpf reaches it, \
                     Linux 6.6+)\n"
                )
            );
        }
        None => eprintln!("not checked: a static program (gcc -static failed: no libc.a?)"),
    }
    // Setuid to another user: the loader ignores LD_PRELOAD, and mptcp-run says so.
    let setuid = dir.0.join("setuid");
    std::fs::copy(&dynamic, &setuid).expect("copy");
    let setuid = setuid.to_str().expect("UTF-8 path");
    common::sh(&["chown", "65534", setuid]);
    common::sh(&["chmod", "4755", setuid]);
    let (out, err) = run(setuid);
    if out.ends_with(" 0") {
        eprintln!("not checked: setuid has no effect here (a nosuid file system?)");
    } else {
        assert_eq!(out, "6 6 65534");
        assert_eq!(
            err,
            format!(
                "mptcp-run: warning: {setuid} is setuid or setgid: the loader ignores \
                 LD_PRELOAD for it, so its sockets stay TCP (mptcp-run --bpf reaches it, \
                 Linux 6.6+)\n"
            )
        );
    }
}

/// A program that sets `TCP_USER_TIMEOUT` on a listener before `listen`, on a client
/// before `connect` (with `TCP_NODELAY` and a bind before it), and on a second client
/// after `connect`; it sends 256 KiB through the first connection and prints, space
/// separated: the two early results, the listener's and the client's `SO_PROTOCOL`,
/// the client's user timeout, its `TCP_NODELAY`, whether its bind stayed, whether the
/// bytes arrived intact, and the late result.
const OPTIONS: &str = r#"
import hashlib, socket
S = socket
def try_set(s, value):
    try:
        s.setsockopt(S.IPPROTO_TCP, S.TCP_USER_TIMEOUT, value)
        return "ok"
    except OSError as e:
        return "errno%d" % e.errno
def get(s, level, name):
    try:
        return s.getsockopt(level, name)
    except OSError as e:
        return "errno%d" % e.errno
l = S.socket(); l.bind(("127.0.0.1", 0))
early_l = try_set(l, 3000)
l.listen()
c = S.socket(); c.setsockopt(S.IPPROTO_TCP, S.TCP_NODELAY, 1)
c.bind(("127.0.0.1", 0)); bound = c.getsockname()
early_c = try_set(c, 5000)
c.connect(l.getsockname()); a, _ = l.accept()
protos = (l.getsockopt(S.SOL_SOCKET, S.SO_PROTOCOL), c.getsockopt(S.SOL_SOCKET, S.SO_PROTOCOL))
uto = get(c, S.IPPROTO_TCP, S.TCP_USER_TIMEOUT)
nodelay = get(c, S.IPPROTO_TCP, S.TCP_NODELAY)
same = c.getsockname() == bound
data = bytes(range(256)) * 1024
c.sendall(data); c.close()
got = b""
while True:
    d = a.recv(65536)
    if not d:
        break
    got += d
l2 = S.socket(); l2.bind(("127.0.0.1", 0)); l2.listen()
c2 = S.socket(); c2.connect(l2.getsockname())
late = try_set(c2, 1000)
print(early_l, early_c, protos[0], protos[1], uto, nodelay, same,
      hashlib.sha256(got).digest() == hashlib.sha256(data).digest(), late)
"#;

/// `mptcp-run` and a refused option: under prefer the program never sees the error
/// before connect or listen (one notice per option), after connect it gets the
/// kernel's; under require it gets the kernel's; `--quiet` hides the notice.
#[test]
fn refused_options_fall_back_per_socket() {
    require_netns!();
    let py = require_python!();
    let _ = preload();
    let ns = Netns::new("run-options");
    let refused = ns.run(|| {
        mptcp::MptcpSocket::new_v4(mptcp::Mode::Require)
            .ok()
            .map(|_| mptcp::sockopt::support(mptcp::sockopt::SockOpt::TcpUserTimeout))
    });
    let Some(Ok(c)) = refused else {
        eprintln!("skipped: no MPTCP sockets here");
        return;
    };
    if !c.mptcp_refuses() {
        eprintln!("skipped: this kernel's MPTCP takes TCP_USER_TIMEOUT ({c:?})");
        return;
    }
    let errno = match c.mptcp {
        mptcp::sockopt::Support::Refused(e) => e,
        other => panic!("{other:?}"),
    };
    let run = |opts: &[&str]| -> (String, String) {
        let mut cmd = run_in(&ns, opts, py, &["-c", OPTIONS]);
        let out = bounded(&mut cmd, Duration::from_secs(30));
        assert!(out.status.success(), "{opts:?}: {out:?}");
        (
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (out, err) = run(&[]);
    assert_eq!(
        out,
        format!("ok ok 6 6 5000 1 True True errno{errno}"),
        "stderr: {err}"
    );
    let notices: Vec<&str> = err.lines().collect();
    assert_eq!(notices.len(), 1, "one notice for the option: {err}");
    assert!(
        notices[0].starts_with("mptcp-run: MPTCP refused TCP_USER_TIMEOUT ("),
        "{err}"
    );
    let (out, err) = run(&["--quiet"]);
    assert!(out.starts_with("ok ok 6 6 "), "{out}");
    assert_eq!(err, "", "--quiet");
    let (out, err) = run(&["--mptcp", "require"]);
    let fields: Vec<&str> = out.split(' ').collect();
    let e = format!("errno{errno}");
    assert_eq!(
        [0, 1, 2, 3, 5, 6, 7, 8].map(|i| fields.get(i).copied().unwrap_or("")),
        [&*e, &*e, "262", "262", "1", "True", "True", &*e],
        "require: the kernel's errors, MPTCP sockets: {out}; stderr: {err}"
    );
    assert_eq!(err, "");
}

/// The Go toolchain (1.21 or later), or why there is none.
fn go() -> Result<PathBuf, String> {
    let mut candidates = vec![PathBuf::from("go")];
    if let Ok(rd) = std::fs::read_dir("/usr/lib") {
        let mut dirs: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("go-1."))
            })
            .collect();
        dirs.sort();
        candidates.extend(dirs.into_iter().rev().map(|d| d.join("bin/go")));
    }
    for go in candidates {
        let Ok(out) = Command::new(&go).args(["env", "GOVERSION"]).output() else {
            continue;
        };
        let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let minor = v
            .strip_prefix("go1.")
            .and_then(|m| m.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|m| m.parse::<u32>().ok());
        if minor.is_some_and(|m| m >= 21) {
            return Ok(go);
        }
    }
    Err("needs a Go toolchain 1.21 or later (cargo xtask test installs golang-1.23-go from backports)".into())
}

/// A Go program (static, as Go builds are): listens, dials itself, sends 1 MiB and
/// prints whether its dialed and accepted connections are MPTCP, as Go's own
/// `TCPConn.MultipathTCP` reports, and whether the bytes arrived intact.
const GO_PROGRAM: &str = r#"package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net"
)

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	type result struct {
		mptcp bool
		sum   [32]byte
	}
	done := make(chan result)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			panic(err)
		}
		m, _ := c.(*net.TCPConn).MultipathTCP()
		b, _ := io.ReadAll(c)
		done <- result{m, sha256.Sum256(b)}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		panic(err)
	}
	dialed, _ := c.(*net.TCPConn).MultipathTCP()
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if _, err := c.Write(data); err != nil {
		panic(err)
	}
	c.Close()
	r := <-done
	fmt.Printf("dial=%v accept=%v intact=%v\n", dialed, r.mptcp, r.sum == sha256.Sum256(data))
}
"#;

/// A Go program, which `LD_PRELOAD` cannot reach: `mptcp-run` sets `GODEBUG`, and Go's
/// own MPTCP sockets do the rest; a `multipathtcp` the user set is kept.
#[test]
fn go_program_uses_mptcp_through_godebug() {
    require_netns!();
    let _ = preload();
    if !common::caps().mptcp {
        eprintln!("skipped: the kernel has no MPTCP");
        return;
    }
    let go = match go() {
        Ok(g) => g,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let dir = TempDir::new("go");
    std::fs::write(dir.0.join("main.go"), GO_PROGRAM).expect("write the Go program");
    let exe = dir.0.join("gomptcp");
    let out = Command::new(&go)
        .current_dir(&dir.0)
        .args(["build", "-o"])
        .arg(&exe)
        .arg("main.go")
        .env("CGO_ENABLED", "0")
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-buildvcs=false")
        .env("GOCACHE", dir.0.join("cache"))
        .env("GOPATH", dir.0.join("gopath"))
        .env("HOME", &dir.0)
        .output()
        .expect("run go build");
    assert!(out.status.success(), "go build: {out:?}");
    let exe = exe.to_str().expect("UTF-8 path");
    let ns = Netns::new("run-go");
    let run = |opts: Option<&[&str]>, godebug: Option<&str>| -> (String, String) {
        let mut cmd = match opts {
            Some(o) => run_in(&ns, o, exe, &[]),
            None => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns.name, exe]);
                c
            }
        };
        cmd.env_remove("GODEBUG");
        if let Some(g) = godebug {
            cmd.env("GODEBUG", g);
        }
        let out = bounded(&mut cmd, Duration::from_secs(30));
        assert!(out.status.success(), "{opts:?}: {out:?}");
        (
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Go 1.21-1.23 alone: plain TCP (1.24 and later listen with MPTCP by default).
    let (alone, _) = run(None, None);
    assert!(alone.ends_with("intact=true"), "{alone}");
    let (out, err) = run(Some(&[]), None);
    assert_eq!(out, "dial=true accept=true intact=true", "stderr: {err}");
    assert!(
        err.contains("is a Go program: LD_PRELOAD cannot reach its sockets"),
        "{err}"
    );
    let (out, _) = run(Some(&["--mptcp", "off"]), None);
    assert_eq!(out, "dial=false accept=false intact=true");
    // The user's own setting stands; others are kept beside ours.
    let (out, _) = run(Some(&[]), Some("multipathtcp=0"));
    assert_eq!(out, "dial=false accept=false intact=true");
    let (out, _) = run(Some(&[]), Some("http2client=0"));
    assert_eq!(out, "dial=true accept=true intact=true");
    println!("Go alone: {alone}");
    // mptcpd's mptcpize, beside it: LD_PRELOAD only, which a static binary ignores.
    if have("mptcpize") {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns.name, "mptcpize", "run", exe])
            .env_remove("GODEBUG");
        let out = bounded(&mut cmd, Duration::from_secs(30));
        let out = String::from_utf8_lossy(&out.stdout).trim().to_string();
        println!(
            "PROGRAM | a Go 1.23 program (static) | {out} | dial=true accept=true intact=true |"
        );
        assert_eq!(
            out, alone,
            "mptcpize changes nothing for a static Go program"
        );
    }
}

/// How a program is run: under `mptcp-run`, or under mptcpd's `mptcpize run`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Wrapper {
    MptcpRun,
    /// `mptcp-run --mptcp require`: refused options fail as the kernel says.
    MptcpRunRequire,
    Mptcpize,
}

impl Wrapper {
    fn command(self, ns: &Netns, program: &str, args: &[&str]) -> Command {
        match self {
            Wrapper::MptcpRun => run_in(ns, &["--quiet"], program, args),
            Wrapper::MptcpRunRequire => run_in(ns, &["--mptcp", "require"], program, args),
            Wrapper::Mptcpize => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns.name, "mptcpize", "run", program])
                    .args(args);
                c
            }
        }
    }
}

/// One program pair of the side-by-side table: how to start its server (port, output
/// file, input directory), how to run its client, and where the received bytes end up.
struct Case {
    name: &'static str,
    needs: &'static [&'static str],
    server: fn(&Path, u16) -> Vec<String>,
    client: fn(&Path, u16) -> Vec<String>,
    /// The file the transferred bytes land in, relative to the case's directory.
    received: &'static str,
    /// A side sets `TCP_USER_TIMEOUT` (or another option MPTCP refuses) on its listener
    /// before `listen` or on its client before `connect`: plain TCP under mptcp-run
    /// where this kernel's MPTCP refuses `TCP_USER_TIMEOUT`.
    user_timeout: bool,
    /// What the server logs under mptcp-run (on stderr), where it meets a refused
    /// option on a socket that cannot be replaced.
    server_says: Option<&'static str>,
    /// The server serves one connection and exits (waited for before the bytes are
    /// compared); otherwise it serves on until killed.
    server_exits: bool,
}

/// `socat -u TCP-LISTEN:PORT,bind=SERVER,reuseaddr{options} CREATE:DIR/got`.
fn socat_server(dir: &Path, port: u16, options: &str) -> Vec<String> {
    vec![
        "socat".into(),
        "-u".into(),
        format!(
            "TCP-LISTEN:{port},bind={},reuseaddr{options}",
            PATHS[0].server4
        ),
        format!("CREATE:{}", dir.join("got").display()),
    ]
}

/// `socat -u FILE:DIR/file.bin TCP:SERVER:PORT`.
fn socat_client(dir: &Path, port: u16) -> Vec<String> {
    vec![
        "socat".into(),
        "-u".into(),
        format!("FILE:{}", dir.join("file.bin").display()),
        format!("TCP:{}:{port}", PATHS[0].server4),
    ]
}

/// What one case did under one wrapper.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// The transfer ran: MPTCP at both ends or not, and whether the bytes arrived
    /// intact (`None` when the program does not keep them).
    Ran { mptcp: bool, intact: Option<bool> },
    /// The server did not come up; its first line on stderr.
    ServerFailed(String),
    /// The client failed; its last line on stderr.
    ClientFailed(String),
}

impl Outcome {
    fn cell(&self) -> String {
        match self {
            Outcome::Ran { mptcp, intact } => format!(
                "{}{}",
                if *mptcp { "MPTCP" } else { "plain TCP" },
                match intact {
                    Some(true) => ", bytes intact",
                    Some(false) => ", bytes differ",
                    None => "",
                }
            ),
            Outcome::ServerFailed(why) => format!("the server fails: `{why}`"),
            Outcome::ClientFailed(why) => format!("the client fails: `{why}`"),
        }
    }
}

fn cases() -> Vec<Case> {
    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }
    fn url(port: u16) -> String {
        format!("http://{}:{port}/file.bin", PATHS[0].server4)
    }
    fn curl(dir: &Path, port: u16) -> Vec<String> {
        s(&[
            "curl",
            "-sS",
            "-o",
            dir.join("got").to_str().expect("UTF-8"),
            &url(port),
        ])
    }
    fn http_server(dir: &Path, port: u16) -> Vec<String> {
        let py = python().expect("python3").to_string();
        s(&[
            &py,
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            PATHS[0].server4,
            "--directory",
            dir.to_str().expect("UTF-8"),
        ])
    }
    vec![
        Case {
            name: "curl, from Python's http.server",
            needs: &["curl", "python3"],
            server: http_server,
            client: curl,
            received: "got",
            user_timeout: false,
            server_says: None,
            server_exits: false,
        },
        Case {
            name: "wget, from Python's http.server",
            needs: &["wget", "python3"],
            server: http_server,
            client: |dir, port| {
                s(&[
                    "wget",
                    "-q",
                    "-O",
                    dir.join("got").to_str().expect("UTF-8"),
                    &url(port),
                ])
            },
            received: "got",
            user_timeout: false,
            server_says: None,
            server_exits: false,
        },
        Case {
            name: "socat to socat",
            needs: &["socat"],
            server: |dir, port| socat_server(dir, port, ""),
            client: socat_client,
            received: "got",
            user_timeout: false,
            server_says: None,
            server_exits: true,
        },
        Case {
            name: "socat to socat with TCP_USER_TIMEOUT on its listener",
            needs: &["socat"],
            server: |dir, port| socat_server(dir, port, ",setsockopt-listen=6:18:5000"),
            client: socat_client,
            received: "got",
            user_timeout: true,
            server_says: None,
            server_exits: true,
        },
        Case {
            name: "iperf3 to iperf3 -s",
            needs: &["iperf3"],
            server: |_, port| {
                s(&[
                    "iperf3",
                    "-s",
                    "-1",
                    "-B",
                    PATHS[0].server4,
                    "-p",
                    &port.to_string(),
                ])
            },
            client: |_, port| {
                s(&[
                    "iperf3",
                    "-c",
                    PATHS[0].server4,
                    "-p",
                    &port.to_string(),
                    "-n",
                    "1M",
                ])
            },
            received: "",
            user_timeout: false,
            server_says: None,
            server_exits: true,
        },
        Case {
            name: "OpenSSH: ssh HOST cat FILE, from sshd",
            needs: &["/usr/sbin/sshd", "ssh", "ssh-keygen"],
            server: sshd,
            client: |dir, port| {
                let d = dir.display();
                sh_c(&format!(
                    "ssh -i {d}/key -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
                     -o BatchMode=yes -o LogLevel=ERROR -p {port} root@{} cat {d}/file.bin \
                     > {d}/got",
                    PATHS[0].server4
                ))
            },
            received: "got",
            user_timeout: false,
            server_says: None,
            server_exits: false,
        },
        Case {
            name: "curl, through HAProxy (to Python's http.server)",
            needs: &["haproxy", "curl", "python3"],
            server: haproxy,
            client: curl,
            received: "got",
            // HAProxy 2.6 sets TCP_USER_TIMEOUT (0) and TCP_QUICKACK on its listener.
            user_timeout: true,
            server_says: None,
            server_exits: false,
        },
        Case {
            name: "psql, from PostgreSQL 15 with tcp_user_timeout=5000 (the server's)",
            needs: &[POSTGRES, "psql", "base64", "setpriv"],
            server: |dir, port| postgres(dir, port, &["-c", "tcp_user_timeout=5000"]),
            client: |dir, port| psql(dir, port, ""),
            received: "got",
            user_timeout: false,
            // On the accepted MPTCP socket; it logs and serves the session.
            server_says: Some("(TCP_USER_TIMEOUT) failed: Operation not supported"),
            server_exits: false,
        },
        Case {
            name: "psql with tcp_user_timeout=5000 (set before connect), from PostgreSQL 15",
            needs: &[POSTGRES, "psql", "base64", "setpriv"],
            server: |dir, port| postgres(dir, port, &[]),
            client: |dir, port| psql(dir, port, " tcp_user_timeout=5000"),
            received: "got",
            user_timeout: true,
            server_says: None,
            server_exits: false,
        },
    ]
}

/// PostgreSQL's programs (Debian's `postgresql-15`).
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// Its server.
const POSTGRES: &str = "/usr/lib/postgresql/15/bin/postgres";

/// `sh -c SCRIPT`.
fn sh_c(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

/// sshd on the server's address, with a host key and root's authorized key made in
/// `dir` (and the key the client uses), no PAM, no daemon.
fn sshd(dir: &Path, port: u16) -> Vec<String> {
    for name in ["host", "key"] {
        let f = dir.join(name);
        common::sh(&[
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            f.to_str().expect("UTF-8"),
        ]);
    }
    std::fs::copy(dir.join("key.pub"), dir.join("authorized_keys")).expect("authorized_keys");
    std::fs::write(dir.join("sshd_config"), "").expect("sshd_config");
    // Its privilege-separation directory (made by the service unit, which is not used).
    std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
    let d = dir.display();
    sh_c(&format!(
        "exec /usr/sbin/sshd -D -e -f {d}/sshd_config -p {port} -h {d}/host \
         -o ListenAddress={} -o AuthorizedKeysFile={d}/authorized_keys -o StrictModes=no \
         -o PidFile=none -o UsePAM=no",
        PATHS[0].server4
    ))
}

/// HAProxy in HTTP mode on the server's address, forwarding to Python's http.server
/// on the server's loopback (started first, by the same shell, under the same wrapper).
fn haproxy(dir: &Path, port: u16) -> Vec<String> {
    let backend = port + 1000;
    let cfg = format!(
        "global\n  log stderr format raw local0 err\ndefaults\n  mode http\n  timeout connect 5s\n  \
         timeout client 30s\n  timeout server 30s\nfrontend in\n  bind {}:{port}\n  \
         default_backend web\nbackend web\n  server s1 127.0.0.1:{backend}\n",
        PATHS[0].server4
    );
    std::fs::write(dir.join("haproxy.cfg"), cfg).expect("haproxy.cfg");
    let py = python().expect("python3");
    let d = dir.display();
    sh_c(&format!(
        "{py} -m http.server {backend} --bind 127.0.0.1 --directory {d} >/dev/null 2>&1 & \
         for i in $(seq 100); do ss -Hltn 'sport = :{backend}' | grep -q . && break; \
         sleep 0.05; done; exec haproxy -db -f {d}/haproxy.cfg"
    ))
}

/// A fresh PostgreSQL cluster in `dir/pg` (initdb as the user postgres, trust
/// authentication), then its server on the server's address with `extra` settings,
/// as postgres.
fn postgres(dir: &Path, port: u16, extra: &[&str]) -> Vec<String> {
    let pg = dir.join("pg");
    std::fs::create_dir(&pg).expect("the cluster's directory");
    let pg = pg.to_str().expect("UTF-8").to_string();
    common::sh(&["chown", "postgres:postgres", &pg]);
    let as_postgres = [
        "setpriv",
        "--reuid=postgres",
        "--regid=postgres",
        "--clear-groups",
    ];
    let initdb = format!("{PG_BIN}/initdb");
    let data = format!("{pg}/data");
    let mut cmd = Command::new(as_postgres[0]);
    cmd.args(&as_postgres[1..]).args([
        initdb.as_str(),
        "-D",
        &data,
        "-A",
        "trust",
        "-U",
        "postgres",
    ]);
    let out = bounded(&mut cmd, Duration::from_secs(60));
    assert!(out.status.success(), "initdb: {out:?}");
    // The client's address (the documentation range of the topology), trusted.
    let hba = format!("{data}/pg_hba.conf");
    let mut conf = std::fs::read_to_string(&hba).expect("pg_hba.conf");
    conf.push_str("host all all 192.0.2.0/24 trust\n");
    std::fs::write(&hba, conf).expect("pg_hba.conf");
    let mut v: Vec<String> = as_postgres.iter().map(|a| a.to_string()).collect();
    let listen = format!("listen_addresses={}", PATHS[0].server4);
    v.extend(
        [
            POSTGRES,
            "-D",
            &data,
            "-k",
            &pg,
            "-p",
            &port.to_string(),
            "-c",
            &listen,
        ]
        .iter()
        .chain(extra)
        .map(|a| a.to_string()),
    );
    v
}

/// psql reads the case's file through the server (`pg_read_binary_file`, base64) into
/// `dir/got`; `options` go into its connection string.
fn psql(dir: &Path, port: u16, options: &str) -> Vec<String> {
    let d = dir.display();
    sh_c(&format!(
        "psql 'host={} port={port} user=postgres dbname=postgres{options}' -At \
         -o {d}/got.b64 -c \"select encode(pg_read_binary_file('{d}/file.bin'), 'base64')\" \
         && base64 -d {d}/got.b64 > {d}/got",
        PATHS[0].server4
    ))
}

/// True when `program` runs here.
fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs one case under one wrapper: whether the connection was MPTCP at both ends (the
/// client's `MPCapableSYNACKRX` counter: an MP_CAPABLE SYN-ACK came back) and whether
/// the bytes arrived intact.
fn side_by_side(t: &Topology, case: &Case, w: Wrapper, port: u16) -> Outcome {
    side_by_side_logged(t, case, w, port).0
}

/// [`side_by_side`], with what the server wrote on stderr until then.
fn side_by_side_logged(t: &Topology, case: &Case, w: Wrapper, port: u16) -> (Outcome, String) {
    let dir = TempDir::new("programs");
    let data = common::data(FILE_LEN);
    std::fs::write(dir.0.join("file.bin"), &data).expect("write the file");
    let before = t.client.counter("MPTcpExt", "MPCapableSYNACKRX");
    let server_args = (case.server)(&dir.0, port);
    let argv: Vec<&str> = server_args.iter().map(String::as_str).collect();
    let mut server = Proc::spawn(&mut w.command(&t.server, argv[0], &argv[1..]));
    let listening = common::wait_for(Duration::from_secs(10), || {
        if server.child.try_wait().ok().flatten().is_some() {
            return Some(false);
        }
        let ss = t.server.exec(&["ss", "-Hltn", &format!("sport = :{port}")]);
        (!ss.trim().is_empty()).then_some(true)
    });
    if listening != Some(true) {
        std::thread::sleep(Duration::from_millis(100));
        let err = server.stderr();
        // socat's lines start with a date, a time and its name: keep the message.
        let first = err.lines().next().unwrap_or("").to_string();
        let msg = first.split_once(" E ").map_or(first.as_str(), |(_, m)| m);
        return (Outcome::ServerFailed(msg.to_string()), err);
    }
    let client_args = (case.client)(&dir.0, port);
    let argv: Vec<&str> = client_args.iter().map(String::as_str).collect();
    let out = bounded(
        &mut w.command(&t.client, argv[0], &argv[1..]),
        Duration::from_secs(30),
    );
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return (
            Outcome::ClientFailed(last.trim().to_string()),
            server.stderr(),
        );
    }
    if case.server_exits {
        // It finishes after the client's EOF (bounded, as every wait here).
        let end = Instant::now() + Duration::from_secs(10);
        while server.child.try_wait().ok().flatten().is_none() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let mptcp = t.client.counter("MPTcpExt", "MPCapableSYNACKRX") > before;
    let intact = (!case.received.is_empty()).then(|| {
        std::fs::read(dir.0.join(case.received))
            .is_ok_and(|got| common::sha256(&got) == common::sha256(&data))
    });
    (Outcome::Ran { mptcp, intact }, server.stderr())
}

/// Programs people run, between two namespaces, under `mptcp-run` and under mptcpd's
/// `mptcpize` (when installed): every one is MPTCP under `mptcp-run`, its bytes intact.
/// Prints the README's table rows.
#[test]
fn real_programs_side_by_side() {
    require_netns!();
    let _ = preload();
    if !common::caps().mptcp {
        eprintln!("skipped: the kernel has no MPTCP");
        return;
    }
    let t = Topology::new(1);
    let mptcpize = have("mptcpize");
    // Whether this kernel's MPTCP refuses TCP_USER_TIMEOUT (then the listener that sets
    // it falls back to plain TCP under mptcp-run).
    let refuses = t.server.run(|| {
        mptcp::sockopt::support(mptcp::sockopt::SockOpt::TcpUserTimeout)
            .is_ok_and(|c| c.mptcp_refuses())
    });
    let mut port = 5300;
    for case in cases() {
        if let Some(missing) = case.needs.iter().find(|p| !have(p)) {
            eprintln!(
                "skipped: {}: needs {missing} (cargo xtask test installs it)",
                case.name
            );
            continue;
        }
        port += 1;
        let (ours, logged) = side_by_side_logged(&t, &case, Wrapper::MptcpRun, port);
        if let Some(says) = case.server_says {
            assert!(
                logged.contains(says),
                "{}: the server logs {says:?}: {logged}",
                case.name
            );
        }
        let Outcome::Ran { mptcp, intact } = ours else {
            panic!("{} under mptcp-run: {ours:?}", case.name);
        };
        assert_eq!(
            mptcp,
            !(case.user_timeout && refuses),
            "{}: MPTCP under mptcp-run, plain TCP where the listener's option was refused",
            case.name
        );
        assert_ne!(intact, Some(false), "{}: bytes intact", case.name);
        let other = if mptcpize {
            port += 1;
            side_by_side(&t, &case, Wrapper::Mptcpize, port).cell()
        } else {
            "not installed".to_string()
        };
        // Where an option is refused: what the program does when it gets the error.
        let strict = if case.user_timeout && refuses {
            port += 1;
            let strict = side_by_side(&t, &case, Wrapper::MptcpRunRequire, port);
            assert!(
                !matches!(strict, Outcome::Ran { mptcp: false, .. }),
                "{}: under require, MPTCP or the program's own failure: {strict:?}",
                case.name
            );
            strict.cell()
        } else {
            "as mptcp-run".to_string()
        };
        println!(
            "PROGRAM | {} | {other} | {} | {strict} |",
            case.name,
            ours.cell()
        );
    }
}
