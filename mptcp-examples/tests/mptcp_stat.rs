//! `mptcp-stat` against the library's own views (`mptcp::token`, `mptcp::subflows`,
//! `mptcp::diag::connections`) on live two-subflow connections in network namespaces;
//! its filters, its argument errors, and `--watch` on a pseudo-terminal and on a pipe.

#[macro_use]
extern crate mptcp_testnet;
use mptcp_testnet as common;

use common::{wait_for, Netns, Topology, PATHS};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const STAT: &str = env!("CARGO_BIN_EXE_mptcp-stat");

/// A live topology for `mptcp-stat` (see [`topology`]), or a skip with the reason on
/// stderr when this kernel has no MPTCP or cannot list MPTCP sockets.
macro_rules! live_topology {
    ($port:expr) => {{
        if !common::caps().mptcp {
            eprintln!("skipped: this kernel has no MPTCP");
            return;
        }
        let (t, l) = topology($port);
        if let Err(e) = t.client.run(mptcp::diag::connections) {
            eprintln!("skipped: cannot list MPTCP sockets: {e}");
            return;
        }
        (t, l)
    }};
}

/// A connection from the client namespace to the server's listener on `port`, with a
/// second subflow (from the client's second path) established.
struct Conn {
    client: TcpStream,
    _server: TcpStream,
    token: String,
}

impl Conn {
    fn open(t: &Topology, listener: &TcpListener, port: u16) -> Conn {
        let (client, server) = t.mptcp_pair(listener, port, 2);
        let token = mptcp::token(&client).expect("token").to_string();
        Conn {
            client,
            _server: server,
            token,
        }
    }

    /// (local, remote) of each subflow, as the socket itself reports them.
    fn subflows(&self) -> BTreeSet<(String, String)> {
        mptcp::subflows(&self.client)
            .expect("subflows")
            .iter()
            .map(|s| (s.local.to_string(), s.remote.to_string()))
            .collect()
    }
}

/// Two paths, the client opening a subflow on the second; a listener in the server
/// namespace on `port`.
fn topology(port: u16) -> (Topology, TcpListener) {
    let t = Topology::new(2);
    t.client_subflow_endpoints(false);
    let l = t.mptcp_listener(port);
    (t, l)
}

/// Runs `mptcp-stat ARGS` in `ns` and waits for it, killing it after 20 s.
fn stat(ns: &Netns, args: &[&str]) -> Output {
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.name, STAT])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mptcp-stat");
    bounded_output(child, Duration::from_secs(20), args)
}

/// The output of `child`, which must end within `limit`.
fn bounded_output(mut child: Child, limit: Duration, what: &[&str]) -> Output {
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = wait_for(limit, || child.try_wait().expect("wait"));
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("mptcp-stat {what:?} did not end within {limit:?}");
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

fn stat_ok(ns: &Netns, args: &[&str]) -> String {
    let o = stat(ns, args);
    assert!(
        o.status.success(),
        "mptcp-stat {args:?}: {:?}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("UTF-8 output")
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("one JSON object per line");
            assert!(v.is_object(), "{l}");
            v
        })
        .collect()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is a string in {v}"))
}

#[test]
fn json_agrees_with_the_socket_and_the_library() {
    require_netns!();
    let (t, l) = live_topology!(4700);
    let conn = Conn::open(&t, &l, 4700);

    let out = stat_ok(&t.client, &["--json"]);
    let lines = json_lines(&out);
    let lib = t
        .client
        .run(mptcp::diag::connections)
        .expect("diag::connections");
    assert_eq!(lines.len(), lib.len(), "one line per socket: {out}");
    let ours: BTreeSet<(Option<String>, String)> = lines
        .iter()
        .map(|j| {
            (
                j["token"].as_str().map(str::to_string),
                str_of(j, "state").to_string(),
            )
        })
        .collect();
    let theirs: BTreeSet<(Option<String>, String)> = lib
        .iter()
        .map(|c| (c.token.map(|t| t.to_string()), c.state.to_string()))
        .collect();
    assert_eq!(
        ours, theirs,
        "the tokens and states of mptcp::diag::connections()"
    );

    let j = lines
        .iter()
        .find(|j| j["token"] == conn.token.as_str())
        .unwrap_or_else(|| panic!("token {} in {out}", conn.token));
    assert_eq!(str_of(j, "state"), "ESTAB");
    assert_eq!(
        str_of(j, "local"),
        conn.client.local_addr().expect("local").to_string()
    );
    assert_eq!(
        str_of(j, "remote"),
        conn.client.peer_addr().expect("peer").to_string()
    );
    let info = &j["info"];
    assert!(info.is_object(), "info: {j}");
    assert_eq!(info["token"], conn.token.as_str(), "info.token in hex");
    assert_eq!(
        info["extra_subflows"], 1,
        "the subflows beyond the initial one: {j}"
    );
    assert!(
        info.get("subflows").is_none(),
        "one name for the count: {j}"
    );
    let subflows = j["subflows"].as_array().expect("subflows");
    assert_eq!(subflows.len(), 2, "{j}");
    let listed: BTreeSet<(String, String)> = subflows
        .iter()
        .map(|s| {
            (
                str_of(s, "local").to_string(),
                str_of(s, "remote").to_string(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        conn.subflows(),
        "the subflows mptcp::subflows reports"
    );
    for s in subflows {
        for key in ["local_id", "remote_id"] {
            assert!(s[key].is_u64(), "{key} in {s}");
        }
        assert!(s["backup"].is_boolean(), "backup in {s}");
        assert!(s["tcp_info"].is_object(), "tcp_info in {s}");
        assert!(s["tcp_info"]["bytes_sent"].is_u64(), "{s}");
    }
    // The initial subflow has local id 0; the one from the second path does not.
    let ids: BTreeSet<u64> = subflows
        .iter()
        .filter_map(|s| s["local_id"].as_u64())
        .collect();
    assert!(ids.contains(&0) && ids.len() == 2, "{ids:?}");
}

#[test]
fn text_names_the_token_and_both_subflows() {
    require_netns!();
    let (t, l) = live_topology!(4701);
    let conn = Conn::open(&t, &l, 4701);
    let out = stat_ok(&t.client, &[]);
    let head = out
        .lines()
        .find(|l| l.contains(&format!("token {}", conn.token)))
        .unwrap_or_else(|| panic!("token {} in {out}", conn.token));
    assert!(head.starts_with("ESTAB "), "{head}");
    assert!(
        out.contains("bytes_sent "),
        "the mptcp_info counters: {out}"
    );
    // One name for the count, as the library and the JSON have it: the subflows beyond
    // the initial one are `extra_subflows` (1 of the 2), all of them `subflows_total`.
    assert!(out.contains(" extra_subflows 1 "), "{out}");
    assert!(!out.contains(" subflows 1 "), "{out}");
    for (local, remote) in conn.subflows() {
        let line = out
            .lines()
            .find(|l| {
                l.trim_start()
                    .starts_with(&format!("subflow {local} -> {remote} "))
            })
            .unwrap_or_else(|| panic!("subflow {local} -> {remote} in {out}"));
        assert!(line.starts_with("    "), "indented: {line}");
        assert!(
            line.contains(" sent ") && line.contains(" received "),
            "{line}"
        );
    }
}

#[test]
fn filters_select_by_token_state_and_port() {
    require_netns!();
    let (t, l) = live_topology!(4702);
    // A second listener on another port, and two connections to the first.
    let _other = t
        .server
        .run(|| mptcp::listen_with("0.0.0.0:4703", mptcp::Mode::Require))
        .expect("listen");
    let a = Conn::open(&t, &l, 4702);
    let b = Conn::open(&t, &l, 4702);
    assert_ne!(a.token, b.token);

    let all = json_lines(&stat_ok(&t.client, &["--json"]));
    assert_eq!(all.len(), 2, "both connections: {all:?}");

    let one = json_lines(&stat_ok(&t.client, &["--json", "token", &a.token]));
    assert_eq!(one.len(), 1, "{one:?}");
    assert_eq!(one[0]["token"], a.token.as_str());
    assert_eq!(one[0]["subflows"].as_array().map(Vec::len), Some(2));
    // The text form and 0x-prefixed tokens too.
    let text = stat_ok(&t.client, &["token", &format!("0x{}", b.token)]);
    assert!(
        text.contains(&b.token) && !text.contains(&a.token),
        "{text}"
    );
    // A token that no connection has: nothing, and no error.
    let unknown = if a.token == "00000001" || b.token == "00000001" {
        "00000002"
    } else {
        "00000001"
    };
    assert_eq!(stat_ok(&t.client, &["token", unknown]), "");

    // Listeners: both of the server's, nothing else.
    let listeners = json_lines(&stat_ok(&t.server, &["--json", "state", "listen"]));
    let ports: BTreeSet<String> = listeners
        .iter()
        .map(|j| {
            assert_eq!(j["state"], "LISTEN", "{j}");
            assert!(j["token"].is_null(), "{j}");
            str_of(j, "local").to_string()
        })
        .collect();
    assert_eq!(
        ports,
        BTreeSet::from(["0.0.0.0:4702".to_string(), "0.0.0.0:4703".to_string()])
    );
    assert_eq!(
        json_lines(&stat_ok(&t.client, &["--json", "state", "listen"])).len(),
        0
    );
    // Several states: any of them.
    let either = json_lines(&stat_ok(
        &t.server,
        &["--json", "state", "listen", "state", "established"],
    ));
    assert_eq!(
        either.len(),
        4,
        "two listeners and two connections: {either:?}"
    );

    // Port: the local side (the server's listener and connections) ...
    let server_side = json_lines(&stat_ok(&t.server, &["--json", "port", "4702"]));
    let states: Vec<&str> = server_side.iter().map(|j| str_of(j, "state")).collect();
    assert_eq!(states, ["LISTEN", "ESTAB", "ESTAB"], "{server_side:?}");
    for j in &server_side {
        assert!(str_of(j, "local").ends_with(":4702"), "{j}");
    }
    // ... and the remote side (the client's connections).
    let client_side = json_lines(&stat_ok(&t.client, &["--json", "port", "4702"]));
    let tokens: BTreeSet<&str> = client_side.iter().map(|j| str_of(j, "token")).collect();
    assert_eq!(tokens, BTreeSet::from([a.token.as_str(), b.token.as_str()]));
    let other = json_lines(&stat_ok(&t.server, &["--json", "port", "4703"]));
    assert_eq!(other.len(), 1, "{other:?}");
    assert_eq!(other[0]["state"], "LISTEN");
    // Filters combine: the connections on port 4702, without the listener.
    let combined = json_lines(&stat_ok(
        &t.server,
        &["--json", "port", "4702", "state", "estab"],
    ));
    assert_eq!(combined.len(), 2, "{combined:?}");
}

#[test]
fn wrong_words_are_named_with_exit_code_2() {
    require_netns!();
    let ns = Netns::new("stat-args");
    let cases: &[(&[&str], &str)] = &[
        (&["token"], "token needs a value"),
        (&["token", "zz"], "\"zz\" is not a token"),
        (&["bogus"], "unexpected argument \"bogus\""),
        (&["port", "4700", "bogus"], "unexpected argument \"bogus\""),
        (&["port"], "port needs a value"),
        (&["port", "70000"], "invalid port \"70000\""),
        (&["token", "1a", "token", "2b"], "token given twice"),
        (&["--watch", "0"], "invalid value '0' for '--watch"),
        (&["--watch", "-1"], "invalid value '-1' for '--watch"),
        (&["--watch", "soon"], "invalid value 'soon' for '--watch"),
        (&["state", "nope"], "unknown socket state \"nope\""),
        (&["state"], "state needs a value"),
        (&["--json", "--watch"], "'--json' cannot be used with"),
    ];
    for (args, named) in cases {
        let o = stat(&ns, args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}: nothing on stdout");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err:?}");
        assert!(
            err.starts_with("mptcp-stat: ") && err.contains(named),
            "{args:?}: {err:?} names {named:?}"
        );
    }
}

/// Reads everything `r` gives into a shared buffer, until it ends or fails.
fn collect(mut r: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = r.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock().expect("buffer").extend_from_slice(&chunk[..n]);
        }
    });
    buf
}

fn text_of(buf: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&buf.lock().expect("buffer")).into_owned()
}

fn signal(pid: u32, sig: i32) {
    let pid = libc::pid_t::try_from(pid).expect("pid");
    // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
    let r = unsafe { libc::kill(pid, sig) };
    assert_eq!(r, 0, "kill: {}", std::io::Error::last_os_error());
}

/// How `--watch` on a terminal is ended.
#[derive(Debug, Clone, Copy)]
enum Quit {
    Signal(i32),
    Keys(&'static [u8]),
}

/// Runs `mptcp-stat --watch 0.3` in `ns` on a pseudo-terminal for `run`, ends it with
/// `quit`, and returns what it wrote to the terminal.
fn watch_on_pty(ns: &Netns, run: Duration, quit: Quit, expect: &str) -> String {
    use portable_pty::{native_pty_system, CommandBuilder, PtySize};
    let pair = native_pty_system()
        .openpty(PtySize {
            rows: 30,
            cols: 140,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("openpty");
    let mut cmd = CommandBuilder::new("ip");
    cmd.args(["netns", "exec", &ns.name, STAT, "--watch", "0.3"]);
    cmd.env("TERM", "xterm-256color");
    let mut child = pair.slave.spawn_command(cmd).expect("spawn on the pty");
    drop(pair.slave);
    let out = collect(pair.master.try_clone_reader().expect("pty reader"));
    let mut keys = pair.master.take_writer().expect("pty writer");
    // The table is on the screen ...
    let shown = wait_for(Duration::from_secs(10), || {
        text_of(&out).contains(expect).then_some(())
    });
    if shown.is_none() {
        let _ = child.kill();
        panic!("no {expect:?} on the terminal: {:?}", text_of(&out));
    }
    std::thread::sleep(run);
    // ... until it is told to quit.
    match quit {
        Quit::Signal(sig) => signal(child.process_id().expect("pid"), sig),
        Quit::Keys(k) => {
            keys.write_all(k).expect("type");
            keys.flush().expect("flush");
        }
    }
    let status = wait_for(Duration::from_secs(5), || child.try_wait().expect("wait"));
    let Some(status) = status else {
        let _ = child.kill();
        panic!("--watch did not end after {quit:?}: {:?}", text_of(&out));
    };
    // The last bytes: the reader ends once the terminal has no process left.
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end && !text_of(&out).contains("\x1b[?1049l") {
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = text_of(&out);
    assert!(
        status.success(),
        "{quit:?}: exit status {status:?}: {text:?}"
    );
    text
}

#[test]
fn watch_on_a_terminal_restores_it_on_signal_and_keys() {
    require_netns!();
    let (t, l) = live_topology!(4704);
    let conn = Conn::open(&t, &l, 4704);
    let screen = watch_on_pty(
        &t.client,
        Duration::from_secs(3),
        Quit::Signal(libc::SIGINT),
        &conn.token,
    );
    let enter = screen
        .find("\x1b[?1049h")
        .expect("entered the alternate screen");
    let leave = screen
        .rfind("\x1b[?1049l")
        .unwrap_or_else(|| panic!("left the alternate screen: {screen:?}"));
    assert!(enter < leave);
    assert!(
        screen[leave..].contains("\x1b[?25h"),
        "showed the cursor again: {:?}",
        &screen[leave..]
    );
    assert!(screen.contains("SENT/s"), "the table's header: {screen:?}");
    // Rates need two readings: the table was refreshed in those 3 s.
    assert!(screen.contains("B/s"), "a rate: {screen:?}");
    // The keys that quit, and SIGTERM, restore it too.
    for quit in [
        Quit::Keys(b"q"),
        Quit::Keys(b"\x1b"),
        Quit::Keys(b"\x03"),
        Quit::Signal(libc::SIGTERM),
    ] {
        let screen = watch_on_pty(&t.client, Duration::from_millis(400), quit, &conn.token);
        assert!(screen.contains("\x1b[?1049l"), "{quit:?}: {screen:?}");
    }
}

/// A `--watch` whose stdout is a pipe.
struct Piped {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
}

impl Piped {
    fn start(ns: &Netns, secs: &str) -> Piped {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name, STAT, "--watch", secs])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn --watch");
        let out = collect(child.stdout.take().expect("stdout"));
        let err = collect(child.stderr.take().expect("stderr"));
        Piped { child, out, err }
    }

    fn text(&self) -> String {
        text_of(&self.out)
    }

    /// The whole refresh blocks so far, each without the `--- ` that starts it and with
    /// the empty line that ends it.
    fn blocks(&self) -> Vec<String> {
        self.text()
            .split("--- ")
            .filter(|b| b.ends_with("\n\n"))
            .map(str::to_string)
            .collect()
    }

    /// SIGINT, then the exit code (bounded).
    fn interrupt(mut self) -> (Option<i32>, String) {
        signal(self.child.id(), libc::SIGINT);
        let status = wait_for(Duration::from_secs(5), || {
            self.child.try_wait().expect("wait")
        });
        let Some(status) = status else {
            let _ = self.child.kill();
            let _ = self.child.wait();
            panic!("--watch did not end on SIGINT");
        };
        (status.code(), text_of(&self.err))
    }
}

impl Drop for Piped {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn watch_into_a_pipe_prints_plain_blocks() {
    require_netns!();
    let (t, l) = live_topology!(4705);
    let conn = Conn::open(&t, &l, 4705);
    let w = Piped::start(&t.client, "0.2");
    // The first block once the program runs (its start is not what is tested), then
    // more at the interval: at least one more within 1.5 s (7 are due).
    wait_for(Duration::from_secs(5), || {
        (!w.blocks().is_empty()).then_some(())
    })
    .unwrap_or_else(|| panic!("a first refresh: {:?}", w.text()));
    let first = Instant::now();
    let two = wait_for(Duration::from_millis(1500), || {
        (w.blocks().len() >= 2).then_some(())
    });
    assert!(
        two.is_some(),
        "two refreshes within 1.5 s ({:?}): {:?}",
        first.elapsed(),
        w.text()
    );
    // And a third (due 0.2 s later): it keeps refreshing.
    let three = wait_for(Duration::from_millis(1500), || {
        (w.blocks().len() >= 3).then_some(())
    });
    assert!(three.is_some(), "still refreshing: {:?}", w.text());
    let text = w.text();
    assert!(
        !text.as_bytes().contains(&0x1b),
        "no escape codes: {text:?}"
    );
    for block in w.blocks() {
        let mut lines = block.lines();
        let head = lines.next().unwrap_or_default();
        assert!(head.ends_with("UTC, every 0.2 s ---"), "{head:?}");
        let columns = lines.next().unwrap_or_default();
        assert!(columns.trim_start().starts_with("STATE"), "{columns:?}");
    }
    assert!(text.contains(&conn.token), "{text}");
    for (local, _) in conn.subflows() {
        assert!(text.contains(&local), "{local} in {text}");
    }
    let (code, err) = w.interrupt();
    assert_eq!(code, Some(0), "SIGINT ends it with 0: {err}");
    assert_eq!(err, "", "nothing on stderr");
}

#[test]
fn watch_marks_subflows_that_appear_and_close() {
    require_netns!();
    let (t, l) = live_topology!(4706);
    let w = Piped::start(&t.client, "0.2");
    wait_for(Duration::from_secs(5), || {
        (!w.blocks().is_empty()).then_some(())
    })
    .expect("a first refresh");
    let conn = Conn::open(&t, &l, 4706);
    let joined = conn
        .subflows()
        .into_iter()
        .find(|(local, _)| local.starts_with(PATHS[1].client4))
        .expect("the subflow of the second path")
        .0;
    let marked = |mark: char| {
        let w = &w;
        let joined = joined.clone();
        move || {
            w.text()
                .lines()
                .any(|l| l.starts_with(mark) && l.contains(&joined))
                .then_some(())
        }
    };
    assert!(
        wait_for(Duration::from_secs(5), marked('+')).is_some(),
        "+ for the new subflow {joined}: {}",
        w.text()
    );
    drop(conn);
    assert!(
        wait_for(Duration::from_secs(5), marked('-')).is_some(),
        "- for the closed subflow {joined}: {}",
        w.text()
    );
    let (code, _) = w.interrupt();
    assert_eq!(code, Some(0));
}
