//! `mptcp-cat` end to end through a two-path topology of network namespaces.

#[macro_use]
extern crate mptcp_testnet;
use mptcp_testnet as common;

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

/// `-l PORT` listens on every address, as netcat's does: an IPv4 and an IPv6 client
/// both reach it (the IPv4 one as a mapped address), with `-4`/`-6` choosing the family
/// of a client's address.
#[test]
fn cat_listen_on_port_alone() {
    require_netns!();
    let t = Topology::new(1);
    for (port, family, server_ip) in [
        (4311u16, "-4", PATHS[0].server4),
        (4312, "-6", PATHS[0].server6),
    ] {
        let server = cat_in(&t.server, &["-l", "--json", &port.to_string()], Vec::new());
        wait_listening(&t, port);
        let payload = data(64 * 1024);
        let client = cat_in(
            &t.client,
            &[family, "--json", server_ip, &port.to_string()],
            payload.clone(),
        );
        let server = std::thread::spawn(move || server.wait_with_output().expect("server"));
        let c = client.wait_with_output().expect("client");
        let s = server.join().expect("server thread");
        assert!(
            c.status.success() && s.status.success(),
            "{family}: {c:?} {s:?}"
        );
        assert_eq!(
            sha256(&s.stdout),
            sha256(&payload),
            "{family}: bytes intact"
        );
    }
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

/// A process in a namespace whose output is collected as it comes; killed (and waited
/// for) if it is still running when dropped, so a failed test leaves nothing behind.
struct Proc {
    child: std::process::Child,
    stdout: Option<std::thread::JoinHandle<Vec<u8>>>,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
}

/// What a finished `Proc` left: exit status, stdout (when piped), stderr.
struct Finished {
    status: std::process::ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

fn collect(mut r: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

impl Proc {
    fn spawn(ns: &common::Netns, args: &[&str], stdin: Stdio, stdout: Stdio) -> Proc {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name, CAT])
            .args(args)
            .stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mptcp-cat");
        let stdout = child.stdout.take().map(collect);
        let stderr = child.stderr.take().map(collect);
        Proc {
            child,
            stdout,
            stderr,
        }
    }

    /// Waits until the process exits; fails the test if that takes longer than `limit`.
    fn finish(&mut self, what: &str, limit: Duration) -> Finished {
        let status = common::wait_for(limit, || self.child.try_wait().ok().flatten());
        let Some(status) = status else {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let err = self.stderr.take().map(|h| h.join().unwrap_or_default());
            panic!(
                "{what} still running after {limit:?}; stderr: {}",
                String::from_utf8_lossy(&err.unwrap_or_default())
            );
        };
        let join = |h: Option<std::thread::JoinHandle<Vec<u8>>>| {
            h.map(|h| h.join().expect("reader thread"))
                .unwrap_or_default()
        };
        Finished {
            status,
            stdout: join(self.stdout.take()),
            stderr: join(self.stderr.take()),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A file in the temporary directory, removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(tag: &str) -> TempFile {
        let name = format!("mptcp-cat-test-{}-{tag}", std::process::id());
        TempFile(std::env::temp_dir().join(name))
    }

    /// The file, created empty, as a process's stdout (`> file`).
    fn as_stdout(&self) -> Stdio {
        Stdio::from(std::fs::File::create(&self.0).expect("create the output file"))
    }

    fn read(&self) -> Vec<u8> {
        std::fs::read(&self.0).expect("read the output file")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn assert_ok(what: &str, f: &Finished) {
    assert!(
        f.status.success(),
        "{what}: {:?}: {}",
        f.status,
        String::from_utf8_lossy(&f.stderr)
    );
}

fn subflows(j: &Value) -> usize {
    j["subflows"].as_array().map_or(0, Vec::len)
}

/// `mptcp-cat -l > file < /dev/null`, the usual receiving server: an empty stdin must not
/// close the server's side while the client sends, or the client's second subflow is
/// never made (the kernel adds none once the peer has closed its side).
#[test]
fn cat_server_with_empty_stdin_gets_both_subflows() {
    require_netns!();
    mptcp_or_fallback!();
    let t = Topology::new(2);
    t.rate_limit("50mbit");
    t.client_subflow_endpoints(false);
    let file = TempFile::new("empty-stdin");
    let mut server = Proc::spawn(
        &t.server,
        &["-l", "--json", "0.0.0.0", "4310"],
        Stdio::null(),
        file.as_stdout(),
    );
    wait_listening(&t, 4310);
    let payload = data(8 * 1024 * 1024);
    let mut client = Proc::spawn(
        &t.client,
        &["--json", PATHS[0].server4, "4310"],
        Stdio::piped(),
        Stdio::piped(),
    );
    // The data starts a moment after the connection, as from a producer that needs a
    // moment (`tar c dir | mptcp-cat ...`); the connection is then fully established
    // only by the first data, which is after the server's stdin has ended.
    let mut input = client.child.stdin.take().expect("stdin");
    let sent = payload.clone();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let _ = input.write_all(&sent);
    });
    let c = client.finish("client", Duration::from_secs(60));
    let s = server.finish("server", Duration::from_secs(10));
    writer.join().expect("writer");
    assert_ok("client", &c);
    assert_ok("server", &s);
    assert_eq!(sha256(&file.read()), sha256(&payload), "bytes intact");
    let sj = json_line(&s.stderr);
    let cj = json_line(&c.stderr);
    assert_eq!(sj["mptcp"], Value::Bool(true), "{sj}");
    assert_eq!(subflows(&sj), 2, "server saw both subflows: {sj}");
    assert_eq!(subflows(&cj), 2, "client used both paths: {cj}");
}

/// ncat's flags: a `--recv-only` server never reads its stdin (left open here, as with
/// `sleep 60 | mptcp-cat -l --recv-only`) and finishes when the `--send-only` client has
/// sent everything; the client prints nothing of what it could have received.
#[test]
fn cat_recv_only_and_send_only_finish_promptly() {
    require_netns!();
    mptcp_or_fallback!();
    let t = Topology::new(2);
    t.rate_limit("50mbit");
    t.client_subflow_endpoints(false);
    let file = TempFile::new("recv-only");
    let mut server = Proc::spawn(
        &t.server,
        &["-l", "--recv-only", "--json", "0.0.0.0", "4311"],
        Stdio::piped(),
        file.as_stdout(),
    );
    let mut server_input = server.child.stdin.take().expect("stdin");
    wait_listening(&t, 4311);
    let payload = data(8 * 1024 * 1024);
    let started = std::time::Instant::now();
    let mut client = Proc::spawn(
        &t.client,
        &["--send-only", "--json", PATHS[0].server4, "4311"],
        Stdio::piped(),
        Stdio::piped(),
    );
    let mut input = client.child.stdin.take().expect("stdin");
    let sent = payload.clone();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&sent);
    });
    let c = client.finish("client", Duration::from_secs(30));
    let s = server.finish("server, with its stdin still open", Duration::from_secs(10));
    let took = started.elapsed();
    writer.join().expect("writer");
    // Written only now: the server never read it.
    let _ = server_input.write_all(b"never sent");
    drop(server_input);
    assert_ok("client", &c);
    assert_ok("server", &s);
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert_eq!(sha256(&file.read()), sha256(&payload), "bytes intact");
    assert!(c.stdout.is_empty(), "the client printed nothing");
    let sj = json_line(&s.stderr);
    assert_eq!(subflows(&sj), 2, "server saw both subflows: {sj}");
    assert_eq!(subflows(&json_line(&c.stderr)), 2);
}

/// Without flags: when the peer has closed and stdin has given nothing, mptcp-cat
/// finishes without waiting for stdin to end; two sides that both have nothing to send
/// do not wait for each other for ever.
#[test]
fn cat_peer_close_does_not_wait_for_stdin() {
    require_netns!();
    let t = Topology::new(1);
    let mut server = Proc::spawn(
        &t.server,
        &["-l", "0.0.0.0", "4312"],
        Stdio::piped(),
        Stdio::piped(),
    );
    let server_input = server.child.stdin.take().expect("stdin");
    wait_listening(&t, 4312);
    let mut client = Proc::spawn(
        &t.client,
        &[PATHS[0].server4, "4312"],
        Stdio::piped(),
        Stdio::piped(),
    );
    let mut input = client.child.stdin.take().expect("stdin");
    input.write_all(b"hello\n").expect("write");
    drop(input);
    let c = client.finish("client", Duration::from_secs(10));
    let s = server.finish("server, with its stdin still open", Duration::from_secs(10));
    drop(server_input);
    assert_ok("client", &c);
    assert_ok("server", &s);
    assert_eq!(s.stdout, b"hello\n");
    assert!(c.stdout.is_empty());

    let mut server = Proc::spawn(
        &t.server,
        &["-l", "0.0.0.0", "4313"],
        Stdio::null(),
        Stdio::piped(),
    );
    wait_listening(&t, 4313);
    let mut client = Proc::spawn(
        &t.client,
        &[PATHS[0].server4, "4313"],
        Stdio::null(),
        Stdio::piped(),
    );
    let c = client.finish("client with < /dev/null", Duration::from_secs(10));
    let s = server.finish("server with < /dev/null", Duration::from_secs(10));
    assert_ok("client", &c);
    assert_ok("server", &s);
    assert!(c.stdout.is_empty() && s.stdout.is_empty());
}
