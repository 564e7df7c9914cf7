//! `mptcp-pm` against `ip mptcp`, in both directions, in network namespaces.

#[macro_use]
extern crate mptcp_testnet;
use mptcp_testnet as common;

use common::{wait_for, Netns, Topology, PATHS};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PM: &str = env!("CARGO_BIN_EXE_mptcp-pm");

fn pm(ns: &Netns, args: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", &ns.name, PM])
        .args(args)
        .output()
        .expect("run mptcp-pm")
}

fn pm_ok(ns: &Netns, args: &[&str]) -> String {
    let o = pm(ns, args);
    assert!(
        o.status.success(),
        "mptcp-pm {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn endpoints_and_limits_both_ways() {
    require_netns!();
    let t = Topology::new(2);
    let ns = &t.client;
    pm_ok(
        ns,
        &[
            "endpoint",
            "add",
            PATHS[0].client4,
            "dev",
            "eth0",
            "subflow",
            "backup",
        ],
    );
    pm_ok(
        ns,
        &[
            "endpoint",
            "add",
            PATHS[1].client4,
            "port",
            "1234",
            "id",
            "7",
            "signal",
        ],
    );
    pm_ok(
        ns,
        &["endpoint", "add", PATHS[1].client6, "subflow", "fullmesh"],
    );
    let ip = ns.ip(&["mptcp", "endpoint", "show"]);
    assert_eq!(
        pm_ok(ns, &["endpoint", "show"]),
        ip,
        "mptcp-pm adds, ip shows the same"
    );
    ns.ip(&[
        "mptcp",
        "endpoint",
        "add",
        "203.0.113.1",
        "id",
        "30",
        "signal",
    ]);
    ns.ip(&["mptcp", "endpoint", "change", "id", "1", "nobackup"]);
    pm_ok(ns, &["endpoint", "change", "id", "8", "nofullmesh"]);
    pm_ok(ns, &["endpoint", "change", "id", "30", "backup"]);
    assert_eq!(
        pm_ok(ns, &["endpoint", "show"]),
        ns.ip(&["mptcp", "endpoint", "show"])
    );
    assert_eq!(
        pm_ok(ns, &["endpoint", "show", "id", "7"]),
        ns.ip(&["mptcp", "endpoint", "show", "id", "7"])
    );
    let json: Vec<Value> = pm_ok(ns, &["--json", "endpoint", "show"])
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(json.len(), 4);
    assert!(json
        .iter()
        .any(|j| j["id"] == 7 && j["port"] == 1234 && j["flags"][0] == "signal"));
    assert!(json.iter().any(|j| j["id"] == 1 && j["dev"] == "eth0"));
    pm_ok(ns, &["endpoint", "delete", "id", "30"]);
    assert!(!ns
        .ip(&["mptcp", "endpoint", "show"])
        .contains("203.0.113.1"));
    pm_ok(ns, &["endpoint", "flush"]);
    assert_eq!(ns.ip(&["mptcp", "endpoint", "show"]).trim(), "");
    pm_ok(
        ns,
        &["limits", "set", "subflows", "6", "add_addr_accepted", "4"],
    );
    assert_eq!(
        pm_ok(ns, &["limits", "show"]),
        ns.ip(&["mptcp", "limits", "show"])
    );
    ns.ip(&["mptcp", "limits", "set", "subflows", "1"]);
    assert_eq!(
        pm_ok(ns, &["limits", "show"]).trim(),
        "add_addr_accepted 4 subflows 1"
    );
    let j: Value =
        serde_json::from_str(pm_ok(ns, &["--json", "limits", "show"]).trim()).expect("JSON");
    assert_eq!(j["subflows"], 1);
    // Errors: one line, non-zero exit.
    let o = pm(ns, &["endpoint", "add", "not-an-address"]);
    assert!(!o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stderr).lines().count(), 1);
}

/// The same command lines, abbreviated as people type them to `ip`, given to `ip mptcp`
/// in one namespace and to `mptcp-pm` in another: after each, both namespaces hold the
/// same endpoints and limits, and the show commands print the same.
#[test]
fn abbreviations_and_change_by_address_as_ip_takes_them() {
    require_netns!();
    let (theirs, ours) = (Netns::new("ab-ip"), Netns::new("ab-pm"));
    for ns in [&theirs, &ours] {
        for a in ["192.0.2.1/24", "192.0.2.2/24", "2001:db8::1/64"] {
            ns.ip(&["addr", "add", a, "dev", "lo", "nodad"]);
        }
    }
    let steps: &[&[&str]] = &[
        &["endp", "add", "192.0.2.1", "dev", "lo", "subflow"],
        &["e", "a", "192.0.2.2", "signal", "i", "9", "p", "1234"],
        &["e", "a", "2001:db8::1", "d", "lo", "subflow", "id", "4"],
        &["e", "c", "192.0.2.1", "backup"],
        &["endpoint", "change", "192.0.2.1", "nobackup"],
        &["e", "ch", "id", "1", "fullmesh"],
        &["endp", "change", "id", "1", "nofullmesh"],
        &["e", "c", "id", "1", "backup", "fullmesh"],
        &["endpoint", "change", "192.0.2.2", "port", "1234", "backup"],
        &["e", "c", "2001:db8::1", "backup"],
        &["limits", "s", "subflows", "3", "add_addr_accepted", "2"],
        &["l", "set", "sub", "5", "a", "1"],
        &["e", "d", "i", "9"],
        &["e", "del", "id", "4"],
    ];
    let shows: &[&[&str]] = &[
        &["endpoint"],
        &["e"],
        &["endp", "sh"],
        &["e", "s", "id", "1"],
        &["limits"],
        &["l"],
        &["limits", "sh"],
    ];
    for step in steps {
        let mut ip_args = vec!["mptcp"];
        ip_args.extend_from_slice(step);
        theirs.ip(&ip_args);
        pm_ok(&ours, step);
        for show in shows {
            let mut ip_args = vec!["mptcp"];
            ip_args.extend_from_slice(show);
            let ip_out = theirs.ip(&ip_args);
            assert_eq!(
                pm_ok(&ours, show),
                ip_out,
                "after {step:?}: {show:?} shows what ip shows for the same commands"
            );
        }
    }
    assert!(
        pm_ok(&ours, &["e"]).contains("192.0.2.1 id 1 subflow backup fullmesh dev lo"),
        "the last flags stuck"
    );
    assert_eq!(
        pm_ok(&ours, &["l"]).trim(),
        "add_addr_accepted 1 subflows 5"
    );
    // By address with another endpoint's id: refused, nothing changes.
    let before = pm_ok(&ours, &["e"]);
    let o = pm(&ours, &["e", "c", "id", "7", "192.0.2.1", "nobackup"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("endpoint 7 does not have address 192.0.2.1"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(pm_ok(&ours, &["e"]), before);
}

#[test]
fn endpoint_delete_refuses_another_endpoints_address() {
    require_netns!();
    let ns = Netns::new("delete");
    ns.ip(&["mptcp", "endpoint", "add", "192.0.2.1", "id", "4", "signal"]);
    ns.ip(&[
        "mptcp",
        "endpoint",
        "add",
        "203.0.113.99",
        "id",
        "5",
        "subflow",
    ]);
    let before = ns.ip(&["mptcp", "endpoint", "show"]);
    // The kernel would delete endpoint 4 whatever the address; mptcp-pm refuses.
    let o = pm(&ns, &["endpoint", "delete", "id", "4", "203.0.113.99"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "mptcp-pm: error: endpoint 4 has address 192.0.2.1, not 203.0.113.99: nothing deleted\n"
    );
    assert_eq!(ns.ip(&["mptcp", "endpoint", "show"]), before, "untouched");
    // As `ip mptcp` does.
    let ip = Command::new("ip")
        .args([
            "-n",
            &ns.name,
            "mptcp",
            "endpoint",
            "delete",
            "id",
            "4",
            "203.0.113.99",
        ])
        .output()
        .expect("ip");
    assert!(!ip.status.success());
    assert_eq!(ns.ip(&["mptcp", "endpoint", "show"]), before, "untouched");
    // No such endpoint: the id is named.
    let o = pm(&ns, &["endpoint", "delete", "id", "9", "192.0.2.1"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("mptcp-pm: error: endpoint 9: "), "{err:?}");
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert_eq!(ns.ip(&["mptcp", "endpoint", "show"]), before, "untouched");
    // The matching address deletes that endpoint only.
    pm_ok(&ns, &["endpoint", "delete", "id", "4", "192.0.2.1"]);
    assert_eq!(
        ns.ip(&["mptcp", "endpoint", "show"]),
        "203.0.113.99 id 5 subflow \n"
    );
}

#[test]
fn without_cap_net_admin_writes_fail_reads_work() {
    require_netns!();
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipped: setpriv (util-linux) is not installed");
        return;
    }
    let ns = Netns::new("nocap");
    ns.ip(&["mptcp", "endpoint", "add", "192.0.2.1", "signal"]);
    let drop_cap = |args: &[&str]| {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.name,
                "setpriv",
                "--inh-caps=-net_admin",
                "--bounding-set=-net_admin",
                PM,
            ])
            .args(args)
            .output()
            .expect("setpriv")
    };
    for write in [
        &["endpoint", "add", "192.0.2.2", "signal"][..],
        &["endpoint", "flush"],
        &["limits", "set", "subflows", "2"],
        &["monitor"],
    ] {
        let o = drop_cap(write);
        assert!(
            !o.status.success(),
            "{write:?} must fail without CAP_NET_ADMIN"
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("CAP_NET_ADMIN"), "{write:?}: {err}");
    }
    let o = drop_cap(&["endpoint", "show"]);
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        ns.ip(&["mptcp", "endpoint", "show"])
    );
    assert!(drop_cap(&["limits", "show"]).status.success());
}

/// A process whose stdout lines are collected as they come.
struct Watched {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

fn watch(ns: &Netns, cmd: &[&str]) -> Watched {
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .args(cmd)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn monitor");
    let out = child.stdout.take().expect("stdout");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            sink.lock().expect("lines").push(l);
        }
    });
    Watched { child, lines }
}

impl Watched {
    fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (type, token) of an `ip mptcp monitor` line; iproute2 6.1 names listener events
/// `UNKNOWN 15/16`.
fn ip_event(l: &str) -> Option<(String, Option<String>)> {
    let (head, rest) = l.strip_prefix('[')?.split_once(']')?;
    let kind = match head.trim() {
        "UNKNOWN 15" => "LISTENER_CREATED".to_string(),
        "UNKNOWN 16" => "LISTENER_CLOSED".to_string(),
        k => k.to_string(),
    };
    let token = rest
        .split_whitespace()
        .find_map(|w| w.strip_prefix("token="))
        .map(str::to_string);
    Some((kind, token))
}

#[test]
fn monitor_json_matches_ip_mptcp_monitor() {
    require_netns!();
    let t = Topology::new(2);
    t.client_subflow_endpoints(false);
    // Both monitors in the client namespace.
    let ip_mon = watch(&t.client, &["ip", "mptcp", "monitor"]);
    let our_mon = watch(&t.client, &[PM, "--json", "monitor"]);
    // Wait until both are subscribed: a listener made and closed again until both saw it.
    let ready = wait_for(Duration::from_secs(10), || {
        let l = t
            .client
            .run(|| mptcp::listen_with("127.0.0.1:0", mptcp::Mode::Require));
        drop(l);
        std::thread::sleep(Duration::from_millis(50));
        (!ip_mon.lines().is_empty() && !our_mon.lines().is_empty()).then_some(())
    });
    assert!(ready.is_some(), "monitors did not start");
    std::thread::sleep(Duration::from_millis(200));
    let (ip_start, our_start) = (ip_mon.lines().len(), our_mon.lines().len());

    let sa: std::net::SocketAddr = format!("{}:4600", PATHS[0].server4)
        .parse()
        .expect("address");
    let l = t
        .server
        .run(|| mptcp::listen_with("0.0.0.0:4600", mptcp::Mode::Require))
        .expect("listen");
    let mut c = t
        .client
        .run(move || mptcp::connect_with(sa, mptcp::Mode::Require))
        .expect("connect");
    let (mut s, _) = l.accept().expect("accept");
    let mut b = [0u8; 1];
    c.write_all(b"x").expect("write");
    s.read_exact(&mut b).expect("read");
    s.write_all(b"y").expect("write");
    c.read_exact(&mut b).expect("read");
    let token = format!("{:08x}", mptcp::token(&c).expect("token"));
    // Both established (a joining subflow is listed from SYN_SENT on): the join's
    // SF_ESTABLISHED comes before the close.
    wait_for(Duration::from_secs(10), || {
        let s = mptcp::subflows(&c).ok()?;
        (s.len() == 2 && s.iter().all(|f| f.tcp_info.state() == 1)).then_some(())
    })
    .expect("second subflow");
    drop(c);
    drop(s);
    let closed = |lines: Vec<String>| {
        lines
            .iter()
            .any(|l| l.contains("CLOSED") && l.contains(&token) && !l.contains("SF_"))
    };
    wait_for(Duration::from_secs(10), || {
        (closed(ip_mon.lines()) && closed(our_mon.lines())).then_some(())
    })
    .expect("both monitors saw the connection close");

    let theirs: Vec<(String, Option<String>)> = ip_mon.lines()[ip_start..]
        .iter()
        .filter_map(|l| ip_event(l))
        .collect();
    let ours: Vec<(String, Option<String>)> = our_mon.lines()[our_start..]
        .iter()
        .map(|l| {
            let j: Value = serde_json::from_str(l).expect("one JSON object per line");
            (
                j["type"].as_str().expect("type").to_string(),
                j["token"].as_str().map(str::to_string),
            )
        })
        .collect();
    let mine = |v: &[(String, Option<String>)]| -> Vec<(String, Option<String>)> {
        v.iter()
            .filter(|(_, t)| t.as_deref() == Some(token.as_str()))
            .cloned()
            .collect()
    };
    assert_eq!(
        mine(&ours),
        mine(&theirs),
        "same events for the connection, in the same order"
    );
    // The address ids of every event of the connection (CREATED and ESTABLISHED carry
    // the initial subflow's too): ip's remid=/locid= and our remote_id/local_id.
    let ip_ids: Vec<(Option<u64>, Option<u64>)> = ip_mon.lines()[ip_start..]
        .iter()
        .filter(|l| l.contains(&format!("token={token}")))
        .map(|l| {
            let id = |key: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(key))
                    .map(|v| v.parse().expect("an id"))
            };
            (id("remid="), id("locid="))
        })
        .collect();
    let our_ids: Vec<(Option<u64>, Option<u64>)> = our_mon.lines()[our_start..]
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON"))
        .filter(|j| j["token"].as_str() == Some(token.as_str()))
        .map(|j| (j["remote_id"].as_u64(), j["local_id"].as_u64()))
        .collect();
    assert_eq!(
        our_ids, ip_ids,
        "the same address ids as ip, event by event"
    );
    let created = ip_mon.lines()[ip_start..]
        .iter()
        .find(|l| l.contains(&token) && ip_event(l).is_some_and(|(k, _)| k == "CREATED"))
        .cloned()
        .expect("ip CREATED");
    if created.contains("locid=") {
        assert!(our_ids[0].1.is_some(), "CREATED's local id: {created}");
    }
    let kinds: Vec<String> = mine(&ours).into_iter().map(|(k, _)| k).collect();
    for k in ["CREATED", "ESTABLISHED", "SF_ESTABLISHED", "CLOSED"] {
        assert!(kinds.iter().any(|x| x == k), "{k} in {kinds:?}");
    }
    // Addresses and ports agree with ip's for the SF_ESTABLISHED event.
    let ip_sf = ip_mon.lines()[ip_start..]
        .iter()
        .find(|l| l.contains("SF_ESTABLISHED") && l.contains(&token))
        .cloned()
        .expect("ip SF_ESTABLISHED");
    let our_sf: Value = our_mon.lines()[our_start..]
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON"))
        .find(|j| j["type"] == "SF_ESTABLISHED")
        .expect("our SF_ESTABLISHED");
    let local: std::net::SocketAddr = our_sf["local"]
        .as_str()
        .expect("local")
        .parse()
        .expect("addr");
    let remote: std::net::SocketAddr = our_sf["remote"]
        .as_str()
        .expect("remote")
        .parse()
        .expect("addr");
    assert!(ip_sf.contains(&format!("saddr4={}", local.ip())), "{ip_sf}");
    assert!(
        ip_sf.contains(&format!("sport={}", local.port())),
        "{ip_sf}"
    );
    assert!(
        ip_sf.contains(&format!("daddr4={}", remote.ip())),
        "{ip_sf}"
    );
    assert!(
        ip_sf.contains(&format!("dport={}", remote.port())),
        "{ip_sf}"
    );
}
