//! The system calls of the hot calls, counted on a live loopback MPTCP connection: each
//! call must make at most the number [`BUDGET`] gives it (the same table is in
//! ARCHITECTURE.md). The test runs itself again as a child under `strace -f`; the child
//! brackets each call between two marker system calls, and the parent counts the child
//! thread's system calls between them. Every system call strace reports counts, not only
//! network ones.

use mptcp_testnet as common;

use mptcp::pm::PathManager;
use mptcp::Mode;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

/// A hot call and the most system calls one call may make, on Linux 6.10+ (the host's
/// kernel), on an established loopback connection of one subflow, after a first call of
/// the same kind (which may also set up what a process caches once).
struct Budget {
    call: &'static str,
    max: usize,
    what: &'static str,
}

/// The budget: one place in the code; ARCHITECTURE.md shows the same table.
const BUDGET: &[Budget] = &[
    Budget {
        call: "mptcp::is_mptcp",
        max: 1,
        what: "getsockopt(TCP_IS_MPTCP)",
    },
    Budget {
        call: "mptcp::status",
        max: 2,
        what: "getsockopt(TCP_IS_MPTCP), getsockopt(SO_PROTOCOL)",
    },
    Budget {
        call: "mptcp::info",
        max: 1,
        what: "getsockopt(MPTCP_INFO)",
    },
    Budget {
        call: "mptcp::token",
        max: 1,
        what: "getsockopt(MPTCP_INFO)",
    },
    Budget {
        call: "mptcp::subflows",
        max: 1,
        what: "getsockopt(MPTCP_FULL_INFO), at most 4 subflows",
    },
    Budget {
        call: "mptcp::connection",
        max: 1,
        what: "getsockopt(MPTCP_FULL_INFO), at most 4 subflows",
    },
    Budget {
        call: "PathManager::limits",
        max: 3,
        what: "1 sendto/sendmsg, 2 recvfrom/recvmsg",
    },
    Budget {
        call: "PathManager::endpoints",
        max: 3,
        what: "1 sendto/sendmsg, 2 recvfrom/recvmsg (few endpoints)",
    },
];

/// A window with no call in it, which must hold no system call: proof that the markers
/// and the measuring code add none of their own.
const EMPTY: &str = "(markers only)";

/// The windows: `0..BUDGET.len()` the measured calls, then [`EMPTY`], then the same
/// for the first calls (shown in the table, not budgeted).
const WINDOWS: usize = 2 * (BUDGET.len() + 1);

/// The window of the first call of the call measured in window `w`.
fn first_window(w: usize) -> usize {
    BUDGET.len() + 1 + w
}

/// The level of the marker calls, `getsockopt(-1, MARKER_LEVEL, n, ...)`: an unknown level
/// ("MP") on a descriptor that cannot exist, so the call fails with EBADF and does
/// nothing. `n` is `2 * window` at the start of a window and `2 * window + 1` at its end.
const MARKER_LEVEL: i32 = 0x4d50;

/// How strace prints the start of a marker call.
const MARKER_TEXT: &str = "getsockopt(-1, 0x4d50";

/// Set in the child's environment: run the calls instead of strace.
const CHILD_ENV: &str = "MPTCP_TEST_SYSCALLS_CHILD";

const TEST: &str = "hot_calls_stay_within_their_system_call_budget";

#[test]
fn hot_calls_stay_within_their_system_call_budget() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child();
        return;
    }
    if let Some(why) = cannot_measure() {
        eprintln!("skipped: {why}");
        return;
    }
    let trace = std::env::temp_dir().join(format!("mptcp-syscalls-{}.trace", std::process::id()));
    let trace_arg = trace.to_str().expect("a UTF-8 temporary directory");
    common::rerun_as_child(
        TEST,
        &["strace", "-f", "-qq", "-e", "trace=all", "-o", trace_arg],
        &[(CHILD_ENV, "1")],
    );
    let text = std::fs::read_to_string(&trace).expect("read the strace output");
    let _ = std::fs::remove_file(&trace);
    let windows = windows(&text).unwrap_or_else(|e| panic!("{e}; the trace:\n{text}"));

    let seen = |i: usize| -> &[String] {
        windows
            .get(i)
            .and_then(|w| w.as_deref())
            .unwrap_or_else(|| panic!("no markers for window {i} in the trace:\n{text}"))
    };
    println!(
        "{:<24} {:>6} {:>8} {:>10}  system calls measured",
        "call", "budget", "measured", "first call"
    );
    let mut over = Vec::new();
    for (i, b) in BUDGET.iter().enumerate() {
        let calls = seen(i);
        println!(
            "{:<24} {:>6} {:>8} {:>10}  {}",
            b.call,
            b.max,
            calls.len(),
            seen(first_window(i)).len(),
            names(calls)
        );
        if calls.len() > b.max {
            over.push(format!(
                "{} made {} system calls, budget {} ({}):\n    {}",
                b.call,
                calls.len(),
                b.max,
                b.what,
                calls.join("\n    ")
            ));
        }
    }
    let empty = [seen(BUDGET.len()), seen(first_window(BUDGET.len()))];
    println!(
        "{EMPTY:<24} {:>6} {:>8} {:>10}",
        0,
        empty[0].len(),
        empty[1].len()
    );
    assert!(
        empty.iter().all(|e| e.is_empty()),
        "the measurement itself made system calls between two markers: {empty:?}"
    );
    assert!(
        over.is_empty(),
        "over the system call budget (see ARCHITECTURE.md):\n{}",
        over.join("\n")
    );
}

/// Why this machine cannot measure the budget, if it cannot.
fn cannot_measure() -> Option<String> {
    let strace = Command::new("strace").arg("-V").output();
    if !strace.is_ok_and(|o| o.status.success()) {
        return Some("strace not installed (cargo xtask test installs it)".into());
    }
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let kernel = kernel.trim();
    let caps = common::caps();
    if !caps.mptcp {
        return Some(format!("no MPTCP in Linux {kernel}"));
    }
    if !caps.tcp_is_mptcp || !caps.full_info {
        return Some(format!(
            "the budget is for Linux 6.10+ (TCP_IS_MPTCP, MPTCP_FULL_INFO); this is {kernel}"
        ));
    }
    if let Err(e) = Live::new() {
        return Some(format!("no MPTCP connection on loopback: {e}"));
    }
    match Command::new("strace")
        .args(["-qq", "-o", "/dev/null", "true"])
        .output()
    {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "strace cannot trace here: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("strace cannot run: {e}")),
    }
}

/// An established loopback MPTCP connection and an open path manager client.
struct Live {
    client: TcpStream,
    _server: TcpStream,
    pm: PathManager,
}

impl Live {
    fn new() -> Result<Live, String> {
        let text = |e: &dyn std::fmt::Display| e.to_string();
        let listener = mptcp::listen_with("127.0.0.1:0", Mode::Require).map_err(|e| text(&e))?;
        let addr = listener.local_addr().map_err(|e| text(&e))?;
        let mut client = mptcp::connect_with(addr, Mode::Require).map_err(|e| text(&e))?;
        let (mut server, _) = listener.accept().map_err(|e| text(&e))?;
        // One byte each way: the connection is fully established on both sides.
        let mut b = [0u8; 1];
        for s in [&client, &server] {
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .map_err(|e| text(&e))?;
        }
        client.write_all(b"c").map_err(|e| text(&e))?;
        server.read_exact(&mut b).map_err(|e| text(&e))?;
        server.write_all(b"s").map_err(|e| text(&e))?;
        client.read_exact(&mut b).map_err(|e| text(&e))?;
        if !mptcp::is_mptcp(&client).map_err(|e| text(&e))? {
            return Err("the connection fell back to TCP".into());
        }
        let pm = PathManager::new().map_err(|e| text(&e))?;
        Ok(Live {
            client,
            _server: server,
            pm,
        })
    }
}

/// The marker system call: window `n / 2` starts (`n` even) or ends (`n` odd).
fn marker(n: usize) {
    let mut v = 0i32;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    let name = i32::try_from(n).expect("a small marker number");
    // SAFETY: the value and length pointers are live locals; the descriptor -1 is
    // invalid, so the kernel fails with EBADF before reading or writing either.
    let r = unsafe {
        libc::getsockopt(
            -1,
            MARKER_LEVEL,
            name,
            (&mut v as *mut i32).cast(),
            &mut len,
        )
    };
    assert_eq!(r, -1, "the marker call must fail");
}

/// The window of a call in [`BUDGET`] (or [`EMPTY`], the last one).
fn window(call: &str) -> usize {
    if call == EMPTY {
        return BUDGET.len();
    }
    BUDGET
        .iter()
        .position(|b| b.call == call)
        .unwrap_or_else(|| panic!("{call} is not in BUDGET"))
}

/// Calls `$call` twice, each time between markers: the first call (which may set up
/// what the process caches once), then the measured one, in the window of `$name`.
/// Results are dropped after the closing markers.
macro_rules! measure {
    ($name:expr, $call:expr) => {{
        let w = window($name);
        marker(2 * first_window(w));
        let first = std::hint::black_box($call);
        marker(2 * first_window(w) + 1);
        let _ = first.unwrap_or_else(|e| panic!("{} (first call): {e}", $name));
        marker(2 * w);
        let r = std::hint::black_box($call);
        marker(2 * w + 1);
        let _ = r.unwrap_or_else(|e| panic!("{}: {e}", $name));
    }};
}

/// The child, under strace: every hot call, each between its markers.
fn child() {
    let mut live = Live::new().expect("a loopback MPTCP connection");
    let c = &live.client;
    measure!(EMPTY, Ok::<(), mptcp::Error>(()));
    measure!("mptcp::is_mptcp", mptcp::is_mptcp(c));
    measure!("mptcp::status", mptcp::status(c));
    measure!("mptcp::info", mptcp::info(c));
    measure!("mptcp::token", mptcp::token(c));
    measure!("mptcp::subflows", mptcp::subflows(c));
    measure!("mptcp::connection", mptcp::connection(c));
    measure!("PathManager::limits", live.pm.limits());
    measure!("PathManager::endpoints", live.pm.endpoints());
}

/// The system calls of each window (indexed as [`window`]), from `strace -f -o` output:
/// lines `TID name(args) = result`. Only the thread that made a window's markers counts;
/// a call another thread's output interrupted is printed `<unfinished ...>` and later
/// `<... name resumed>`, and counts once. Signals (`---`) and exits (`+++`) are not calls.
fn windows(trace: &str) -> Result<Vec<Option<Vec<String>>>, String> {
    let mut out: Vec<Option<Vec<String>>> = vec![None; WINDOWS];
    let mut open: Option<(&str, usize, Vec<String>)> = None;
    for line in trace.lines() {
        let Some((tid, call)) = line.split_once(' ') else {
            continue;
        };
        let call = call.trim_start();
        if let Some(rest) = call.strip_prefix(MARKER_TEXT) {
            let n: usize = rest
                .split_once(',')
                .map(|(_, after)| after.trim_start())
                .map(|a| {
                    a.chars()
                        .take_while(char::is_ascii_digit)
                        .collect::<String>()
                })
                .and_then(|d| d.parse().ok())
                .ok_or_else(|| format!("a marker line without its number: {line}"))?;
            let w = n / 2;
            if w >= out.len() {
                return Err(format!("a marker of no window: {line}"));
            }
            if n % 2 == 0 {
                if let Some((_, other, _)) = &open {
                    return Err(format!("window {w} opened inside window {other}"));
                }
                open = Some((tid, w, Vec::new()));
            } else {
                match open.take() {
                    Some((t, o, calls)) if t == tid && o == w => out[w] = Some(calls),
                    _ => return Err(format!("window {w} closed but not opened: {line}")),
                }
            }
            continue;
        }
        if let Some((t, _, calls)) = &mut open {
            let not_a_call =
                call.starts_with("<...") || call.starts_with("---") || call.starts_with("+++");
            if *t == tid && !not_a_call {
                calls.push(call.to_string());
            }
        }
    }
    if let Some((_, w, _)) = open {
        return Err(format!("window {w} never closed"));
    }
    Ok(out)
}

/// `getsockopt x2, sendto` for a list of strace lines.
fn names(calls: &[String]) -> String {
    let mut counted: Vec<(&str, usize)> = Vec::new();
    for c in calls {
        let name = c.split('(').next().unwrap_or(c);
        match counted.iter_mut().find(|(n, _)| *n == name) {
            Some((_, k)) => *k += 1,
            None => counted.push((name, 1)),
        }
    }
    let parts: Vec<String> = counted
        .iter()
        .map(|(n, k)| {
            if *k == 1 {
                n.to_string()
            } else {
                format!("{n} x{k}")
            }
        })
        .collect();
    parts.join(", ")
}

/// The parser on a hand-written trace: two threads, an interrupted call, a signal.
#[test]
fn the_trace_parser_counts_one_thread_between_markers() {
    let mut trace = String::new();
    for w in 0..WINDOWS {
        trace += &format!("7 getsockopt(-1, 0x4d50 /* SOL_?? */, {}, 0x1, [4]) = -1 EBADF (Bad file descriptor)\n", 2 * w);
        if w == 1 {
            trace += "7 getsockopt(3, SOL_TCP, 0x2b, [1], [4]) = 0\n";
            trace += "8 futex(0x2, FUTEX_WAIT_PRIVATE, 0, NULL <unfinished ...>\n";
            trace += "7 getsockopt(3, SOL_SOCKET, SO_TYPE <unfinished ...>\n";
            trace += "8 <... futex resumed>) = 0\n";
            trace += "7 <... getsockopt resumed>, [1], [4]) = 0\n";
            trace += "7 --- SIGCHLD {si_signo=SIGCHLD} ---\n";
        }
        trace += &format!("7 getsockopt(-1, 0x4d50 /* SOL_?? */, {}, 0x1, [4]) = -1 EBADF (Bad file descriptor)\n", 2 * w + 1);
    }
    let w = windows(&trace).expect("parse");
    let counts: Vec<usize> = w.iter().map(|c| c.as_ref().map_or(99, Vec::len)).collect();
    let mut want = vec![0; WINDOWS];
    want[1] = 2;
    assert_eq!(counts, want);
    assert_eq!(names(w[1].as_deref().expect("window 1")), "getsockopt x2");
    assert!(windows("7 getsockopt(-1, 0x4d50 /* SOL_?? */, 0, 0x1, [4]) = -1\n").is_err());
}
