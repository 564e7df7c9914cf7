//! `mptcp-cat` end to end through a two-path topology of network namespaces.

#[path = "../../mptcp/tests/common/mod.rs"]
mod common;

use common::{data, sha256, Topology, PATHS};
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const CAT: &str = env!("CARGO_BIN_EXE_mptcp-cat");

/// Starts `mptcp-cat ARGS` in a namespace with `input` on stdin (then closed).
fn cat_in(ns: &common::Netns, args: &[&str], input: Vec<u8>) -> std::process::Child {
    let mut child = cat_open(ns, args);
    let mut stdin = child.stdin.take().expect("stdin");
    std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    child
}

/// Starts `mptcp-cat ARGS` in a namespace with its stdin left open to the caller.
fn cat_open(ns: &common::Netns, args: &[&str]) -> std::process::Child {
    Command::new("ip")
        .args(["netns", "exec", &ns.name, CAT])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mptcp-cat")
}

fn json_line(stderr: &[u8]) -> Value {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON summary in {text:?}"));
    serde_json::from_str(line).expect("valid JSON")
}

/// Waits until something listens on the port in the server namespace (bounded).
fn wait_listening(t: &Topology, port: u16) {
    let found = common::wait_for(Duration::from_secs(10), || {
        let out = t.server.exec(&["ss", "-ltnH", &format!("sport = :{port}")]);
        (!out.trim().is_empty()).then_some(())
    });
    assert!(found.is_some(), "mptcp-cat -l did not start listening");
}

#[test]
fn cat_two_paths_json() {
    require_netns!();
    let t = Topology::new(2);
    t.rate_limit("50mbit");
    t.server_signal_endpoints(false);
    // The server's input stays open until the client is done: a peer that closes its
    // side early puts the connection in CLOSE_WAIT, where no new subflows are made.
    let mut server = cat_open(&t.server, &["-l", "--json", "0.0.0.0", "4300"]);
    let server_input = server.stdin.take().expect("stdin");
    wait_listening(&t, 4300);
    let payload = data(4 * 1024 * 1024);
    let client = cat_in(
        &t.client,
        &["--json", PATHS[0].server4, "4300"],
        payload.clone(),
    );
    // Read the server's output as it comes; once all the data is there, end the server's
    // input so both sides close.
    let mut server_out = server.stdout.take().expect("stdout");
    let want = payload.len();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut told = false;
        loop {
            match std::io::Read::read(&mut server_out, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            if !told && got.len() >= want {
                let _ = tx.send(());
                told = true;
            }
        }
        got
    });
    let client = std::thread::spawn(move || client.wait_with_output().expect("client"));
    let _ = rx.recv_timeout(Duration::from_secs(60));
    drop(server_input);
    let c = client.join().expect("client thread");
    let mut s = server.wait_with_output().expect("server");
    s.stdout = reader.join().expect("reader thread");
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
    assert_eq!(sha256(&s.stdout), sha256(&payload), "bytes intact");
    let cj = json_line(&c.stderr);
    let sj = json_line(&s.stderr);
    for j in [&cj, &sj] {
        assert_eq!(j["mptcp"], Value::Bool(true), "{j}");
        assert!(j["fallback_reason"].is_null());
        // The token is hex without 0x, as ip mptcp monitor prints it.
        let token = j["token"].as_str().expect("token string");
        assert!(
            u32::from_str_radix(token, 16).is_ok_and(|t| t != 0),
            "{token}"
        );
        assert_eq!(token.len(), 8);
        assert!(j["info"].is_object());
        for sf in j["subflows"].as_array().expect("subflows") {
            assert!(sf["id"].as_u64().is_some());
            assert!(sf["local"].is_string() && sf["remote"].is_string());
        }
    }
    let subs = cj["subflows"].as_array().expect("subflows");
    assert_eq!(subs.len(), 2, "client used both paths: {cj}");
    assert!(subs
        .iter()
        .any(|s| s["remote"].as_str() == Some("198.51.100.2:4300")));
    assert_eq!(cj["info"]["token"], cj["token"]);
}

#[test]
fn cat_fallback_json() {
    require_netns!();
    let t = Topology::new(1);
    let server = cat_in(
        &t.server,
        &["-l", "--mptcp", "off", "--json", "0.0.0.0", "4301"],
        Vec::new(),
    );
    wait_listening(&t, 4301);
    let client = cat_in(
        &t.client,
        &["--json", PATHS[0].server4, "4301"],
        b"hello".to_vec(),
    );
    // Drain both at once: a server blocked on a full stdout pipe would stall the client.
    let server = std::thread::spawn(move || server.wait_with_output().expect("server"));
    let c = client.wait_with_output().expect("client");
    let s = server.join().expect("server thread");
    assert!(c.status.success() && s.status.success());
    assert_eq!(s.stdout, b"hello");
    let cj = json_line(&c.stderr);
    assert_eq!(cj["mptcp"], Value::Bool(false));
    assert!(cj["fallback_reason"]
        .as_str()
        .is_some_and(|r| r.contains("fell back")));
    assert_eq!(cj["subflows"], Value::Array(vec![]));
    let sj = json_line(&s.stderr);
    assert_eq!(sj["mptcp"], Value::Bool(false));
}

#[test]
fn cat_errors_are_one_line() {
    require_netns!();
    let t = Topology::new(1);
    let c = cat_in(&t.client, &[PATHS[0].server4, "4302"], Vec::new())
        .wait_with_output()
        .expect("client");
    assert!(!c.status.success());
    let err = String::from_utf8_lossy(&c.stderr);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.contains("refused"), "{err:?}");
    t.client.sysctl("net.mptcp.enabled", "0");
    let c = cat_in(
        &t.client,
        &["--mptcp", "require", PATHS[0].server4, "4302"],
        Vec::new(),
    )
    .wait_with_output()
    .expect("client");
    assert!(!c.status.success());
    let err = String::from_utf8_lossy(&c.stderr);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.contains("net.mptcp.enabled=0"), "{err:?}");
}
