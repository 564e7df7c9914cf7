//! Runs every program of `mptcp/examples/` the way a user would, against the real
//! kernel: the echo server and client on loopback, the tokio echo server, the subflow
//! watcher, and the userspace path manager in a two-path namespace topology.
#![cfg(all(feature = "tokio", feature = "pm"))]

#[macro_use]
extern crate mptcp_testnet;
use mptcp_testnet as common;

use common::{wait_for, Topology, PATHS};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// An example's binary, built by `cargo test` next to the test binaries: the newest of
/// `examples/NAME` and `examples/NAME-HASH` (cargo keeps both, and `cargo test` may
/// refresh only the second). A missing one fails the test: `cargo test` always builds
/// the examples, so missing means a broken build or a copied test binary without them.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("this test's path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("the test binary's directory")
        .join("examples");
    let newest = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let f = e.file_name().to_string_lossy().to_string();
            let hashed = f
                .strip_prefix(name)
                .and_then(|r| r.strip_prefix('-'))
                .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()));
            f == name || hashed
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max()
        .map(|(_, p)| p);
    newest.unwrap_or_else(|| {
        panic!(
            "the example {name} is not built next to this test binary (in {}); \
             `cargo test -p mptcp --all-features` builds it",
            dir.display()
        )
    })
}

/// A child process that is killed when dropped (bounded tests leave nothing behind).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    fn start(cmd: &mut Command) -> Running {
        Running(
            cmd.stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start example"),
        )
    }

    /// The first stdout line that starts with `prefix` (at most 10 s).
    fn line_starting(&mut self, prefix: &str) -> String {
        let out = self.0.stdout.take().expect("stdout");
        let prefix = prefix.to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(out).lines();
            for l in lines.by_ref().map_while(|l| l.ok()) {
                if l.starts_with(&prefix) {
                    let _ = tx.send(l);
                    break;
                }
            }
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the example printed its ready line")
    }

    /// Waits (at most 10 s) for the process to exit by itself; its exit status.
    fn finish(&mut self) -> std::process::ExitStatus {
        let s = wait_for(Duration::from_secs(10), || self.0.try_wait().ok().flatten());
        s.expect("the example exits by itself")
    }
}

fn output(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run example");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn echo_with(server_example: &str) {
    let (server, client) = (example(server_example), example("echo_client"));
    let mut srv = Running::start(Command::new(server).args(["127.0.0.1:0", "--max", "1"]));
    let line = srv.line_starting("listening on ");
    let addr = line.trim_start_matches("listening on ").to_string();
    let out = output(Command::new(client).args([addr.as_str(), "hello over mptcp"]));
    assert!(out.contains("echo: hello over mptcp"), "{out}");
    let mptcp = common::caps().mptcp;
    assert!(out.contains(&format!("MPTCP: {mptcp}")), "{out}");
    if mptcp {
        // Subflow ids come with MPTCP_FULL_INFO (Linux 6.5+); older kernels give none.
        let id = if common::caps().full_info {
            "Some(1)"
        } else {
            "None"
        };
        assert!(out.contains(&format!("subflow {id}: 127.0.0.1:")), "{out}");
    }
    assert!(srv.finish().success());
}

#[test]
fn echo_server_and_client() {
    echo_with("echo_server");
}

#[test]
fn tokio_echo_server_and_client() {
    echo_with("tokio_echo_server");
}

#[test]
fn subflow_watch_prints_counters() {
    let (server, watch) = (example("echo_server"), example("subflow_watch"));
    if !common::caps().mptcp {
        eprintln!("skipped: no MPTCP in this kernel, nothing to watch");
        return;
    }
    let mut srv = Running::start(Command::new(server).args(["127.0.0.1:0", "--max", "1"]));
    let line = srv.line_starting("listening on ");
    let addr = line.trim_start_matches("listening on ");
    let out = output(Command::new(watch).args([addr, "--count", "2"]));
    let ticks: Vec<&str> = out.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(ticks.len(), 2, "{out}");
    assert!(ticks[1].ends_with("1 subflows"), "{out}");
    let acked: Vec<u64> = out
        .lines()
        .filter_map(|l| l.split("acked ").nth(1))
        .filter_map(|r| r.split(' ').next()?.parse().ok())
        .collect();
    assert_eq!(acked.len(), 2, "{out}");
    assert!(
        acked[1] > acked[0] && acked[0] > 0,
        "bytes acked grow: {acked:?}"
    );
}

/// The connections example lists a loopback connection of its namespace, both ends and
/// the listener, with their subflows.
#[test]
fn connections_lists_the_namespace() {
    require_netns!();
    let list = example("connections");
    if !common::caps().mptcp {
        eprintln!("skipped: no MPTCP in this kernel, nothing to list");
        return;
    }
    let ns = common::Netns::new("exconn");
    let (token, _keep) = ns.run(|| {
        let l = mptcp::listen_with("127.0.0.1:4960", mptcp::Mode::Require).expect("listen");
        let c = mptcp::connect_with("127.0.0.1:4960", mptcp::Mode::Require).expect("connect");
        let s = l.accept().expect("accept");
        (mptcp::token(&c).expect("token"), (l, c, s))
    });
    let bin = list.to_string_lossy().to_string();
    let out = ns.exec(&[&bin, "4960"]);
    if out.contains("mptcp_diag") {
        eprintln!("skipped: {out}");
        return;
    }
    assert!(out.contains(&format!("{token} ESTAB 127.0.0.1:")), "{out}");
    assert!(out.contains(" ids 0/0"), "the initial subflow: {out}");
    assert!(
        out.lines().any(|l| l.contains("LISTEN 127.0.0.1:4960")) || !out.contains("LISTEN"),
        "{out}"
    );
    assert!(out.trim_end().ends_with("MPTCP sockets"), "{out}");
    let everything = ns.exec(&[&bin]);
    assert!(everything.contains(&token.to_string()), "{everything}");
}

/// The userspace path manager example opens a second subflow on a new connection.
#[test]
fn userspace_pm_adds_a_subflow() {
    require_netns!();
    let pm = example("userspace_pm");
    if !common::caps().mptcp {
        eprintln!("skipped: no MPTCP in this kernel");
        return;
    }
    let t = Topology::new(2);
    let mut daemon = Running::start(
        Command::new("ip")
            .args(["netns", "exec", &t.client.name])
            .arg(pm)
            .args([PATHS[1].client4, "--max", "1"]),
    );
    daemon.line_starting("userspace path manager ready");
    let server: std::net::SocketAddr = format!("{}:7100", PATHS[0].server4)
        .parse()
        .expect("address");
    let listener = t.server.run(move || mptcp::listen(server).expect("listen"));
    let accept = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
        sink.len()
    });
    let mut client = t
        .client
        .run(move || mptcp::connect(server).expect("connect"));
    client.write_all(&[1u8; 64 * 1024]).expect("write");
    let two = wait_for(Duration::from_secs(10), || {
        let n = mptcp::subflows(&client).ok()?.len();
        (n == 2).then_some(n)
    });
    assert_eq!(two, Some(2), "the example opened a second subflow");
    let sf = mptcp::subflows(&client).expect("subflows");
    assert!(
        sf.iter()
            .any(|s| s.local.ip().to_string() == PATHS[1].client4),
        "{sf:?}"
    );
    assert!(daemon.finish().success());
    client
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    assert_eq!(accept.join().expect("server"), 64 * 1024);
}

/// The axum example serves HTTP over an MPTCP connection.
#[test]
fn http_server_answers_over_mptcp() {
    let server = example("http_server");
    let mut srv = Running::start(Command::new(server).arg("127.0.0.1:0"));
    let line = srv.line_starting("listening on ");
    let addr = line.trim_start_matches("listening on ").to_string();
    let mut c = mptcp::connect(addr.as_str()).expect("connect");
    c.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut reply = String::new();
    c.read_to_string(&mut reply).expect("reply");
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(reply.ends_with("hello over MPTCP\n"), "{reply}");
    assert_eq!(
        mptcp::is_mptcp(&c).expect("status"),
        common::caps().mptcp,
        "MPTCP end to end where the kernel has it"
    );
}
