//! `mptcp-doctor` on hosts built in network namespaces: a healthy two-path client has
//! no finding; each misconfiguration, built on its own, gives its finding; the probe
//! sees MP_CAPABLE and MP_JOIN succeed, a server without MPTCP, and a middlebox that
//! strips the MPTCP option (iptables' TCPOPTSTRIP in a namespace between the two).

#[macro_use]
extern crate mptcp_testnet;
use mptcp_testnet as common;

use common::{wait_for, Netns, Topology, PATHS};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DOCTOR: &str = env!("CARGO_BIN_EXE_mptcp-doctor");
const PMD: &str = env!("CARGO_BIN_EXE_mptcp-pmd");

macro_rules! mptcp_or_skip {
    () => {
        require_netns!();
        if !common::caps().mptcp {
            eprintln!("skipped: this kernel has no MPTCP");
            return;
        }
    };
}

/// `mptcp-doctor ARGS --json` in `ns`: (exit code, findings).
fn doctor(ns: &Netns, args: &[&str]) -> (i32, Vec<Value>) {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, DOCTOR])
        .args(args)
        .arg("--json")
        .stdin(Stdio::null())
        .output()
        .expect("run mptcp-doctor");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: JSON: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let findings = v["findings"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        v["problems"].as_u64().map(|n| n as usize),
        Some(
            findings
                .iter()
                .filter(|f| f["level"] == "warn" || f["level"] == "error")
                .count()
        )
    );
    (out.status.code().unwrap_or(-1), findings)
}

/// The problems (warnings and errors) among the findings, as (check, message).
fn problems(findings: &[Value]) -> Vec<(String, String)> {
    findings
        .iter()
        .filter(|f| f["level"] == "warn" || f["level"] == "error")
        .map(|f| {
            (
                f["check"].as_str().unwrap_or("").to_string(),
                f["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// A healthy two-path client: an endpoint per extra path bound to its interface,
/// limits that allow it, a default route through path 1 and, for path 2's address, a
/// table of its own with a default route through path 2 (source routing).
fn healthy() -> Topology {
    let t = Topology::new(2);
    t.client_subflow_endpoints(false);
    t.client.ip(&[
        "route",
        "add",
        "default",
        "via",
        PATHS[0].server4,
        "dev",
        "eth0",
    ]);
    t.client.ip(&[
        "route",
        "add",
        "default",
        "via",
        PATHS[1].server4,
        "dev",
        "eth1",
        "table",
        "100",
    ]);
    t.client
        .ip(&["rule", "add", "from", PATHS[1].client4, "table", "100"]);
    t
}

#[test]
fn a_healthy_two_path_client_has_no_problem() {
    mptcp_or_skip!();
    let t = healthy();
    let (code, findings) = doctor(&t.client, &[]);
    assert_eq!(problems(&findings), vec![], "{findings:?}");
    assert_eq!(code, 0);
    // The text form: one line per finding, and the summary.
    let out = t.client.exec(&[DOCTOR, "--all"]);
    assert!(
        out.lines().any(|l| l.starts_with("ok    kernel: Linux")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("ok    features:")),
        "{out}"
    );
    assert!(out.trim_end().ends_with("checks)"), "{out}");
}

#[test]
fn each_misconfiguration_is_found() {
    mptcp_or_skip!();
    let dev2 = "eth1";
    let found = |ns: &Netns, check: &str, words: &str| {
        let (code, findings) = doctor(ns, &[]);
        let p = problems(&findings);
        assert!(
            p.iter().any(|(c, m)| c == check && m.contains(words)),
            "{check} ({words}) expected among {p:?}"
        );
        assert_eq!(code, 1, "a problem: exit code 1");
        p
    };
    // A subflows limit of 0 with a subflow endpoint.
    let t = healthy();
    t.client.ip(&["mptcp", "limits", "set", "subflows", "0"]);
    found(&t.client, "limits", "no extra subflow will ever open");
    drop(t);
    // The endpoint's interface is down.
    let t = healthy();
    t.client.ip(&["link", "set", dev2, "down"]);
    found(&t.client, "endpoint", "is down");
    drop(t);
    // Strict reverse-path filtering on the endpoint's interface.
    let t = healthy();
    t.client
        .sysctl(&format!("net.ipv4.conf.{dev2}.rp_filter"), "1");
    found(
        &t.client,
        "rp_filter",
        "strict reverse-path filtering on eth1",
    );
    drop(t);
    // The second address without its source-routing rule: its packets leave through
    // path 1.
    let t = healthy();
    t.client
        .ip(&["rule", "del", "from", PATHS[1].client4, "table", "100"]);
    found(&t.client, "routing", "leave through eth0, not eth1");
    drop(t);
    // An endpoint without a device on a host with two interfaces.
    let t = healthy();
    t.client.ip(&["mptcp", "endpoint", "flush"]);
    t.client
        .ip(&["mptcp", "endpoint", "add", PATHS[1].client4, "subflow"]);
    found(
        &t.client,
        "endpoint",
        "has no interface on a host with several",
    );
    drop(t);
    // Two path managers in one namespace (two mptcp-pmd with their own state files).
    let t = healthy();
    let dir = std::env::temp_dir().join(format!("mptcp-doctor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let start = |n: u32| -> Killed {
        Killed(
            Command::new("ip")
                .args(["netns", "exec", &t.client.name, PMD, "--state"])
                .arg(dir.join(format!("pmd{n}.json")))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start mptcp-pmd"),
        )
    };
    let (_a, _b) = (start(1), start(2));
    wait_for(Duration::from_secs(10), || {
        let (_, f) = doctor(&t.client, &[]);
        problems(&f)
            .iter()
            .any(|(c, _)| c == "managers")
            .then_some(())
    })
    .expect("the two daemons found");
    drop((_a, _b));
    let _ = std::fs::remove_dir_all(&dir);
    drop(t);
    // MPTCP turned off.
    let t = healthy();
    t.client.sysctl("net.mptcp.enabled", "0");
    found(&t.client, "enabled", "MPTCP is turned off");
}

/// A process killed (and reaped) when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A server in `ns` on every address, port `port`, that greets each connection and
/// keeps it open until the test ends (at most 60 s); MPTCP or plain TCP.
fn greeter(ns: &Netns, port: u16, mptcp: bool) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let l: TcpListener = ns.run(move || {
        if mptcp {
            mptcp::listen_with(format!("0.0.0.0:{port}"), mptcp::Mode::Require).expect("listen")
        } else {
            TcpListener::bind(("0.0.0.0", port)).expect("listen")
        }
    });
    l.set_nonblocking(true).expect("nonblocking");
    let flag = Arc::clone(&stop);
    std::thread::spawn(move || {
        let mut keep = Vec::new();
        let end = Instant::now() + Duration::from_secs(60);
        while !flag.load(Ordering::Relaxed) && Instant::now() < end {
            match l.accept() {
                Ok((mut s, _)) => {
                    let _ = s.set_nonblocking(false);
                    let _ = s.write_all(b"hello\n");
                    keep.push(s);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        for mut s in keep {
            let mut b = [0u8; 64];
            let _ = s.set_read_timeout(Some(Duration::from_millis(1)));
            let _ = s.read(&mut b);
        }
    });
    stop
}

/// The probe's findings about one source address.
fn about<'a>(findings: &'a [Value], addr: &str) -> Vec<&'a Value> {
    findings
        .iter()
        .filter(|f| {
            f["check"] == "probe"
                && f["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(&format!("from {addr} ")))
        })
        .collect()
}

#[test]
fn probe_sees_mp_capable_and_mp_join_succeed() {
    mptcp_or_skip!();
    let t = healthy();
    let port = 8094;
    let stop = greeter(&t.server, port, true);
    let (code, findings) = doctor(&t.client, &["probe", PATHS[0].server4, &port.to_string()]);
    stop.store(true, Ordering::Relaxed);
    assert_eq!(problems(&findings), vec![], "{findings:?}");
    assert_eq!(code, 0);
    for p in PATHS {
        let f = about(&findings, p.client4);
        assert!(
            f.iter().any(|f| f["message"]
                .as_str()
                .is_some_and(|m| m.contains("MP_CAPABLE succeeded"))),
            "MP_CAPABLE from {}: {findings:?}",
            p.client4
        );
    }
    let join = about(&findings, PATHS[1].client4);
    assert!(
        join.iter().any(|f| f["message"]
            .as_str()
            .is_some_and(|m| m.contains("MP_JOIN succeeded"))),
        "MP_JOIN from path 2: {findings:?}"
    );
}

#[test]
fn probe_explains_a_server_without_mptcp() {
    mptcp_or_skip!();
    let t = healthy();
    let port = 8095;
    let stop = greeter(&t.server, port, false);
    let (code, findings) = doctor(
        &t.client,
        &[
            "probe",
            PATHS[0].server4,
            &port.to_string(),
            "--timeout",
            "2",
        ],
    );
    stop.store(true, Ordering::Relaxed);
    assert_eq!(code, 1);
    let f = about(&findings, PATHS[0].client4);
    assert!(
        f.iter().any(|f| f["message"]
            .as_str()
            .is_some_and(|m| m.contains("fell back to TCP")
                && m.contains("SYN/ACK came without MP_CAPABLE")
                && m.contains("MPCapableFallbackSYNACK +1"))),
        "{findings:?}"
    );
}

/// client (192.0.2.1) -- mid -- server (198.51.100.2): mid routes between the two and
/// strips TCP option 30 (MPTCP) from what it forwards.
#[test]
fn probe_explains_a_middlebox_that_strips_the_option() {
    mptcp_or_skip!();
    if Command::new("iptables").arg("--version").output().is_err() {
        panic!("iptables is missing: cargo xtask test installs it");
    }
    let client = Netns::new("doc-c");
    let mid = Netns::new("doc-m");
    let server = Netns::new("doc-s");
    for (a, b, dev_a, dev_b, addr_a, addr_b) in [
        (&client, &mid, "eth0", "c0", "192.0.2.1/24", "192.0.2.2/24"),
        (
            &mid,
            &server,
            "s0",
            "eth0",
            "198.51.100.1/24",
            "198.51.100.2/24",
        ),
    ] {
        a.ip(&[
            "link", "add", dev_a, "type", "veth", "peer", "name", dev_b, "netns", &b.name,
        ]);
        a.ip(&["addr", "add", addr_a, "dev", dev_a]);
        b.ip(&["addr", "add", addr_b, "dev", dev_b]);
        a.ip(&["link", "set", dev_a, "up"]);
        b.ip(&["link", "set", dev_b, "up"]);
    }
    client.ip(&["route", "add", "default", "via", "192.0.2.2"]);
    server.ip(&["route", "add", "default", "via", "198.51.100.1"]);
    mid.sysctl("net.ipv4.ip_forward", "1");
    let port = 8096;
    let stop = greeter(&server, port, true);
    // Without the middlebox's rule: MPTCP end to end.
    let (_, clean) = doctor(
        &client,
        &["probe", "198.51.100.2", &port.to_string(), "--timeout", "2"],
    );
    assert!(
        about(&clean, "192.0.2.1").iter().any(|f| f["message"]
            .as_str()
            .is_some_and(|m| m.contains("MP_CAPABLE succeeded"))),
        "{clean:?}"
    );
    mid.exec(&[
        "iptables",
        "-t",
        "mangle",
        "-A",
        "FORWARD",
        "-p",
        "tcp",
        "-j",
        "TCPOPTSTRIP",
        "--strip-options",
        "30",
    ]);
    let (code, findings) = doctor(
        &client,
        &["probe", "198.51.100.2", &port.to_string(), "--timeout", "2"],
    );
    stop.store(true, Ordering::Relaxed);
    assert_eq!(code, 1);
    assert!(
        about(&findings, "192.0.2.1").iter().any(|f| f["message"]
            .as_str()
            .is_some_and(|m| m.contains("fell back to TCP")
                && m.contains("a middlebox on this path strips the option"))),
        "{findings:?}"
    );
}
