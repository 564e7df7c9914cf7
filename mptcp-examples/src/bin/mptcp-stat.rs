//! `mptcp-stat`: the MPTCP connections of the network namespace with their subflows and
//! counters (what `ss -M` and `ss -tiO` show), through `mptcp::diag`: as text, as JSON,
//! or as a live table.
//!
//! ```text
//! mptcp-stat [--json] [--watch [SECS]] [token T] [port P] [state S]...
//! ```
//!
//! See `DETAILS` below (also printed by `--help`) for the filters, the output and
//! `--watch`.

use clap::Parser;
use mptcp::diag::{Diag, DiagConnection, DiagSubflow, Filter, SocketState, SubflowFlags};
use mptcp::{InfoFlags, MptcpInfo, Token};
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::crossterm::{cursor, execute, terminal};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::{Frame, Terminal};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TOOL: &str = "mptcp-stat";

/// The filters, the output and `--watch`, for `--help`.
const DETAILS: &str = "\
Filters (ip-style words; all those given must match):
  token T   the connection with local token T (hexadecimal, as ip mptcp monitor prints it)
  port P    sockets whose local or remote port is P (listeners on P included)
  state S   sockets in state S, named as ss names them: established (estab), syn-sent,
            syn-recv, fin-wait-1, fin-wait-2, time-wait, close, close-wait, last-ack,
            listen, closing; give it several times for any of several states
A filter that matches nothing prints nothing, with exit code 0.

Output: for each connection a line with its state, token and addresses, a line of its
mptcp_info counters (- where the kernel has none), then one indented line per subflow:
addresses, state, local and remote address ids, backup or active, fully-established,
join, and the subflow's TCP bytes sent (retransmissions included) and received (- when
absent). Listeners take one line each. Before Linux 6.15, subflows are shown only to
callers with CAP_NET_ADMIN: without it, a note on stderr says they are hidden.
--json: one object per line per socket, with keys token (hex string or null), state,
local, remote, uid, inode, cookie, info (mptcp_info or null) and subflows (an array of
objects with state, local, remote, local_id, remote_id, backup, fully_established, flags,
remote_token and tcp_info).

--watch [SECS]: a live table refreshed every SECS seconds (default 1; fractions such as
0.5 are allowed, down to 0.01), with the bytes per second each connection and each
subflow sent and received since the last refresh. A subflow or connection marked + has
appeared since the last refresh; one marked - has closed (shown for one refresh). Keys q,
Esc and Ctrl-C quit. When stdout is not a terminal, the same table is printed as plain
text every SECS seconds, each after a line `--- HH:MM:SS.mmm UTC, every SECS s ---` and
followed by an empty line. SIGINT and SIGTERM end --watch with exit code 0 (in plain-text
mode a second one exits at once with code 130).

Exit codes: 0 success, 1 error from the kernel, 2 wrong command line.";

#[derive(Parser)]
#[command(
    name = "mptcp-stat",
    about = "MPTCP connections and subflows of the network namespace (like ss -M)",
    version,
    after_help = DETAILS
)]
struct Args {
    /// One JSON object per socket per line.
    #[arg(long, conflicts_with = "watch")]
    json: bool,
    /// Refresh a live table every SECS seconds (default 1).
    #[arg(
        long,
        value_name = "SECS",
        num_args = 0..=1,
        default_missing_value = "1",
        allow_negative_numbers = true,
        value_parser = parse_interval
    )]
    watch: Option<Duration>,
    /// Filters: token T, port P, state S (see below).
    #[arg(value_name = "FILTER")]
    words: Vec<String>,
}

/// The shortest `--watch` interval.
const MIN_INTERVAL: f64 = 0.01;

fn parse_interval(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| "expected a number of seconds, such as 1 or 0.5".to_string())?;
    if !secs.is_finite() || secs <= 0.0 {
        return Err("the interval must be more than 0 seconds".into());
    }
    if secs < MIN_INTERVAL {
        return Err(format!("the interval must be at least {MIN_INTERVAL} s"));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| "the interval is too long".into())
}

/// The filter words of the command line.
#[derive(Debug, Default)]
struct Query {
    token: Option<Token>,
    port: Option<u16>,
    states: Vec<SocketState>,
}

const KEYWORDS: [&str; 3] = ["token", "port", "state"];

fn parse_query(words: &[String]) -> Result<Query, String> {
    let mut q = Query::default();
    let mut it = words.iter();
    while let Some(w) = it.next() {
        if !KEYWORDS.contains(&w.as_str()) {
            return Err(format!("unexpected argument {w:?}"));
        }
        let v = it.next().ok_or_else(|| format!("{w} needs a value"))?;
        match w.as_str() {
            "token" => {
                let t: Token = v
                    .parse()
                    .map_err(|e: mptcp::ParseTokenError| e.to_string())?;
                if q.token.replace(t).is_some() {
                    return Err("token given twice".into());
                }
            }
            "port" => {
                let p = match v.parse::<u16>() {
                    Ok(p) if p != 0 => p,
                    _ => return Err(format!("invalid port {v:?}: expected 1 to 65535")),
                };
                if q.port.replace(p).is_some() {
                    return Err("port given twice".into());
                }
            }
            _ => {
                // (mptcp::diag does not export the error type: it is only displayed.)
                let s = v.parse::<SocketState>().map_err(|e| e.to_string())?;
                q.states.push(s);
            }
        }
    }
    Ok(q)
}

/// `--watch` directly followed by a filter word takes its default interval (rather than
/// the word as its value): `--watch token T` is `--watch=1 token T`.
fn normalize_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let args: Vec<OsString> = args.into_iter().collect();
    let mut out = Vec::with_capacity(args.len());
    for (i, a) in args.iter().enumerate() {
        let next_is_keyword = args
            .get(i + 1)
            .and_then(|n| n.to_str())
            .is_some_and(|n| KEYWORDS.contains(&n));
        if a == "--watch" && next_is_keyword {
            out.push(OsString::from("--watch=1"));
        } else {
            out.push(a.clone());
        }
    }
    out
}

/// The sockets the query selects: listeners first, then connections by address; each
/// connection's subflows by address id.
fn list(diag: &mut Diag, q: &Query) -> mptcp::Result<Vec<DiagConnection>> {
    let mut base = Filter::new();
    for s in &q.states {
        base = base.state(*s);
    }
    if let Some(t) = q.token {
        base = base.token(t);
    }
    let mut conns = match q.port {
        None => diag.connections(&base)?,
        // The kernel's filter has no "or": one listing per side, merged.
        Some(p) => {
            let mut v = diag.connections(&base.clone().local_port(p))?;
            let seen: HashSet<u64> = v.iter().map(|c| c.cookie).collect();
            for c in diag.connections(&base.remote_port(p))? {
                if !seen.contains(&c.cookie) {
                    v.push(c);
                }
            }
            v
        }
    };
    conns.sort_by_key(|c| (c.state != SocketState::Listen, c.local, c.remote, c.cookie));
    for c in &mut conns {
        c.subflows
            .sort_by_key(|s| (s.local_id, s.remote_id, s.local, s.remote));
    }
    Ok(conns)
}

fn dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// `fallback`, `remote_key` and any other bit in hex; `-` for none.
fn info_flag_names(f: InfoFlags) -> String {
    let mut names = Vec::new();
    if f.contains(InfoFlags::FALLBACK) {
        names.push("fallback".to_string());
    }
    if f.contains(InfoFlags::REMOTE_KEY_RECEIVED) {
        names.push("remote_key".to_string());
    }
    let rest = f.bits() & !(InfoFlags::FALLBACK | InfoFlags::REMOTE_KEY_RECEIVED).bits();
    if rest != 0 {
        names.push(format!("{rest:#x}"));
    }
    if names.is_empty() {
        "-".into()
    } else {
        names.join(",")
    }
}

/// backup or active, then fully-established and join when set.
fn subflow_flag_words(sf: &DiagSubflow) -> Vec<&'static str> {
    let mut w = vec![match sf.is_backup() {
        Some(true) => "backup",
        Some(false) => "active",
        None => "-",
    }];
    if let Some(f) = sf.flags {
        if f.contains(SubflowFlags::FULLY_ESTABLISHED) {
            w.push("fully-established");
        }
        if f.intersects(SubflowFlags::JOIN_LOC | SubflowFlags::JOIN_REM) {
            w.push("join");
        }
    }
    w
}

fn info_line(i: &MptcpInfo) -> String {
    format!(
        "extra_subflows {} subflows_total {} add_addr_signal {} add_addr_accepted {} \
         bytes_sent {} bytes_received {} bytes_acked {} retransmits {} flags {}",
        i.extra_subflows(),
        dash(i.subflows_total()),
        i.add_addr_signal(),
        i.add_addr_accepted(),
        dash(i.bytes_sent()),
        dash(i.bytes_received()),
        dash(i.bytes_acked()),
        dash(i.retransmits()),
        info_flag_names(i.flags()),
    )
}

fn subflow_line(sf: &DiagSubflow) -> String {
    let tcp = sf.tcp_info.as_ref();
    format!(
        "subflow {} -> {} {} local_id {} remote_id {} {} sent {} received {}",
        sf.local,
        sf.remote,
        sf.state,
        dash(sf.local_id),
        dash(sf.remote_id),
        subflow_flag_words(sf).join(" "),
        dash(tcp.map(|t| t.bytes_sent())),
        dash(tcp.map(|t| t.bytes_received())),
    )
}

/// The default output: a block per connection, a line per listener.
fn text(conns: &[DiagConnection]) -> String {
    let mut out = String::new();
    for c in conns {
        if c.state == SocketState::Listen {
            let _ = writeln!(out, "LISTEN {}", c.local);
            continue;
        }
        let _ = writeln!(
            out,
            "{} token {} {} -> {}",
            c.state,
            dash(c.token),
            c.local,
            c.remote
        );
        match &c.info {
            Some(i) => {
                let _ = writeln!(out, "    {}", info_line(i));
            }
            None => out.push_str("    no mptcp_info from the kernel\n"),
        }
        for sf in &c.subflows {
            let _ = writeln!(out, "    {}", subflow_line(sf));
        }
    }
    out
}

fn subflow_json(sf: &DiagSubflow) -> Value {
    json!({
        "state": sf.state.to_string(),
        "local": sf.local.to_string(),
        "remote": sf.remote.to_string(),
        "local_id": sf.local_id,
        "remote_id": sf.remote_id,
        "backup": sf.is_backup(),
        "fully_established": sf.flags.map(|f| f.contains(SubflowFlags::FULLY_ESTABLISHED)),
        "flags": sf.flags.map(|f| f.bits()),
        "remote_token": sf.remote_token.map(|t| t.to_string()),
        "tcp_info": sf.tcp_info,
    })
}

fn connection_json(c: &DiagConnection) -> Value {
    json!({
        "token": c.token.map(|t| t.to_string()),
        "state": c.state.to_string(),
        "local": c.local.to_string(),
        "remote": c.remote.to_string(),
        "uid": c.uid,
        "inode": c.inode,
        "cookie": c.cookie,
        "info": c.info,
        "subflows": c.subflows.iter().map(subflow_json).collect::<Vec<_>>(),
    })
}

const HIDDEN_NOTE: &str =
    "note: subflows are hidden: listing them needs CAP_NET_ADMIN (before Linux 6.15)";

fn hidden_subflows(diag: &Diag) -> bool {
    diag.subflows_visible() == Some(false)
}

/// Writes to stdout; a closed pipe (`mptcp-stat | head`) ends quietly.
fn emit(out: &mut impl Write, text: &str) -> Result<bool, String> {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(format!("cannot write to stdout: {e}")),
    }
}

fn once(q: &Query, as_json: bool) -> Result<(), String> {
    let mut diag = Diag::new().map_err(|e| e.to_string())?;
    let conns = list(&mut diag, q).map_err(|e| e.to_string())?;
    let out = if as_json {
        conns
            .iter()
            .map(|c| connection_json(c).to_string() + "\n")
            .collect()
    } else {
        text(&conns)
    };
    if hidden_subflows(&diag) {
        eprintln!("{TOOL}: {HIDDEN_NOTE}");
    }
    emit(&mut io::stdout().lock(), &out).map(drop)
}

// ---- --watch ----

/// A connection's identity across refreshes: its token, or its socket cookie when it
/// has none (listeners).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ConnKey {
    Token(Token),
    Cookie(u64),
}

fn conn_key(c: &DiagConnection) -> ConnKey {
    c.token.map_or(ConnKey::Cookie(c.cookie), ConnKey::Token)
}

type SubflowKey = (ConnKey, SocketAddr, SocketAddr);

/// One listing and when it was taken.
struct Sample {
    at: Instant,
    conns: Vec<DiagConnection>,
}

/// Bytes (sent, received): the connection's own counters (Linux 6.5+), else the sum of
/// its subflows' TCP counters.
fn conn_bytes(c: &DiagConnection) -> Option<(u64, u64)> {
    if let Some(i) = &c.info {
        if let (Some(s), Some(r)) = (i.bytes_sent(), i.bytes_received()) {
            return Some((s, r));
        }
    }
    let tcp: Vec<_> = c
        .subflows
        .iter()
        .filter_map(|s| s.tcp_info.as_ref())
        .collect();
    (!tcp.is_empty()).then(|| {
        tcp.iter().fold((0u64, 0u64), |(s, r), t| {
            (
                s.saturating_add(t.bytes_sent()),
                r.saturating_add(t.bytes_received()),
            )
        })
    })
}

fn subflow_bytes(sf: &DiagSubflow) -> Option<(u64, u64)> {
    sf.tcp_info
        .as_ref()
        .map(|t| (t.bytes_sent(), t.bytes_received()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Same,
    New,
    Gone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Listener,
    Connection,
    Subflow,
}

/// One line of the table.
struct Line {
    kind: Kind,
    mark: Mark,
    cells: Vec<String>,
}

const COLUMNS: [&str; 11] = [
    "", "STATE", "TOKEN", "LOCAL", "REMOTE", "IDS", "FLAGS", "SENT/s", "RECV/s", "SENT", "RECEIVED",
];

/// 1536 -> "1.5 KiB".
fn human(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Bytes per second between two readings of a counter (none across a reset).
fn rate(now: Option<u64>, before: Option<u64>, secs: f64) -> String {
    match (now, before) {
        (Some(n), Some(b)) if n >= b && secs > 0.0 => human((n - b) as f64 / secs) + "/s",
        _ => "-".into(),
    }
}

fn mark_str(m: Mark) -> String {
    match m {
        Mark::Same => "",
        Mark::New => "+",
        Mark::Gone => "-",
    }
    .into()
}

/// Cells of a connection or listener line.
fn conn_cells(c: &DiagConnection, mark: Mark, before: Option<(u64, u64)>, secs: f64) -> Line {
    if c.state == SocketState::Listen {
        let mut cells = vec![mark_str(mark), "LISTEN".into(), String::new()];
        cells.push(c.local.to_string());
        cells.resize(COLUMNS.len(), String::new());
        return Line {
            kind: Kind::Listener,
            mark,
            cells,
        };
    }
    let now = conn_bytes(c);
    let (gone, secs) = (
        mark == Mark::Gone,
        if mark == Mark::Gone { 0.0 } else { secs },
    );
    let flags = c.info.as_ref().map(|i| info_flag_names(i.flags()));
    Line {
        kind: Kind::Connection,
        mark,
        cells: vec![
            mark_str(mark),
            c.state.to_string(),
            dash(c.token),
            c.local.to_string(),
            c.remote.to_string(),
            format!("{} sf", c.subflows.len()),
            flags.unwrap_or_else(|| "-".into()),
            if gone {
                "-".into()
            } else {
                rate(now.map(|b| b.0), before.map(|b| b.0), secs)
            },
            if gone {
                "-".into()
            } else {
                rate(now.map(|b| b.1), before.map(|b| b.1), secs)
            },
            dash(now.map(|b| human(b.0 as f64))),
            dash(now.map(|b| human(b.1 as f64))),
        ],
    }
}

fn subflow_cells(sf: &DiagSubflow, mark: Mark, before: Option<(u64, u64)>, secs: f64) -> Line {
    let now = subflow_bytes(sf);
    let gone = mark == Mark::Gone;
    Line {
        kind: Kind::Subflow,
        mark,
        cells: vec![
            mark_str(mark),
            format!("  {}", sf.state),
            String::new(),
            format!("  {}", sf.local),
            sf.remote.to_string(),
            format!("{}/{}", dash(sf.local_id), dash(sf.remote_id)),
            subflow_flag_words(sf).join(" "),
            if gone {
                "-".into()
            } else {
                rate(now.map(|b| b.0), before.map(|b| b.0), secs)
            },
            if gone {
                "-".into()
            } else {
                rate(now.map(|b| b.1), before.map(|b| b.1), secs)
            },
            dash(now.map(|b| human(b.0 as f64))),
            dash(now.map(|b| human(b.1 as f64))),
        ],
    }
}

/// The table of `cur`, with rates and marks against `prev`: every current socket (its
/// new subflows marked +, then its closed ones marked -), then the closed connections.
fn table(prev: Option<&Sample>, cur: &Sample) -> Vec<Line> {
    let secs = prev.map_or(0.0, |p| cur.at.duration_since(p.at).as_secs_f64());
    let prev_conns: HashMap<ConnKey, &DiagConnection> = prev
        .map(|p| p.conns.iter().map(|c| (conn_key(c), c)).collect())
        .unwrap_or_default();
    let prev_subflows: HashMap<SubflowKey, &DiagSubflow> = prev
        .map(|p| {
            p.conns
                .iter()
                .flat_map(|c| {
                    c.subflows
                        .iter()
                        .map(move |s| ((conn_key(c), s.local, s.remote), s))
                })
                .collect()
        })
        .unwrap_or_default();
    let appeared = |known: bool| {
        if prev.is_some() && !known {
            Mark::New
        } else {
            Mark::Same
        }
    };
    let mut lines = Vec::new();
    let mut cur_keys = HashSet::new();
    for c in &cur.conns {
        let key = conn_key(c);
        cur_keys.insert(key);
        let before = prev_conns.get(&key);
        lines.push(conn_cells(
            c,
            appeared(before.is_some()),
            before.and_then(|b| conn_bytes(b)),
            secs,
        ));
        let mut here = HashSet::new();
        for sf in &c.subflows {
            let k = (key, sf.local, sf.remote);
            here.insert(k);
            let b = prev_subflows.get(&k);
            lines.push(subflow_cells(
                sf,
                appeared(b.is_some()),
                b.and_then(|b| subflow_bytes(b)),
                secs,
            ));
        }
        if let Some(b) = before {
            for sf in &b.subflows {
                if !here.contains(&(key, sf.local, sf.remote)) {
                    lines.push(subflow_cells(sf, Mark::Gone, None, 0.0));
                }
            }
        }
    }
    for c in prev.map_or(&[][..], |p| &p.conns[..]) {
        if !cur_keys.contains(&conn_key(c)) {
            lines.push(conn_cells(c, Mark::Gone, None, 0.0));
            for sf in &c.subflows {
                lines.push(subflow_cells(sf, Mark::Gone, None, 0.0));
            }
        }
    }
    lines
}

/// Column widths of the header and lines, in characters.
fn widths(lines: &[Line]) -> Vec<usize> {
    COLUMNS
        .iter()
        .enumerate()
        .map(|(i, h)| {
            lines
                .iter()
                .filter_map(|l| l.cells.get(i))
                .map(|c| c.chars().count())
                .chain([h.len()])
                .max()
                .unwrap_or(0)
        })
        .collect()
}

/// The table as aligned plain text, the header first.
fn plain_table(lines: &[Line]) -> String {
    let w = widths(lines);
    let row = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let mut s = String::new();
        for (i, c) in cells.enumerate() {
            let _ = write!(s, "{c:<width$}  ", width = w.get(i).copied().unwrap_or(0));
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = row(&mut COLUMNS.iter().copied());
    for l in lines {
        out += &row(&mut l.cells.iter().map(String::as_str));
    }
    out
}

/// The wall clock in UTC, `HH:MM:SS.mmm`.
fn clock() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let s = now.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        now.subsec_millis()
    )
}

/// What one refresh shows.
struct View {
    lines: Vec<Line>,
    connections: usize,
    listeners: usize,
    hidden_subflows: bool,
}

/// The listings of `--watch`, each compared with the one before.
struct Watcher {
    diag: Diag,
    query: Query,
    interval: Duration,
    prev: Option<Sample>,
}

impl Watcher {
    fn refresh(&mut self) -> Result<View, String> {
        let conns = list(&mut self.diag, &self.query).map_err(|e| e.to_string())?;
        let cur = Sample {
            at: Instant::now(),
            conns,
        };
        let listeners = cur
            .conns
            .iter()
            .filter(|c| c.state == SocketState::Listen)
            .count();
        let view = View {
            lines: table(self.prev.as_ref(), &cur),
            connections: cur.conns.len() - listeners,
            listeners,
            hidden_subflows: hidden_subflows(&self.diag),
        };
        self.prev = Some(cur);
        Ok(view)
    }

    fn every(&self) -> String {
        format!("every {} s", self.interval.as_secs_f64())
    }
}

/// The terminal's state while the live table is shown: raw mode and the alternate
/// screen, undone on drop, and by the panic hook if the program panics.
struct TerminalGuard;

/// Whether the terminal is in the live table's state (so that it is restored once).
static TERMINAL_TAKEN: AtomicBool = AtomicBool::new(false);

fn restore_terminal() {
    if TERMINAL_TAKEN.swap(false, Ordering::SeqCst) {
        let _ = terminal::disable_raw_mode();
        let _ = execute!(io::stdout(), terminal::LeaveAlternateScreen, cursor::Show);
    }
}

impl TerminalGuard {
    fn take() -> io::Result<TerminalGuard> {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            previous(info);
        }));
        TERMINAL_TAKEN.store(true, Ordering::SeqCst);
        // From here on, a failure drops the guard, which undoes what was done.
        let guard = TerminalGuard;
        terminal::enable_raw_mode()?;
        execute!(io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

fn line_style(l: &Line) -> Style {
    let s = match l.kind {
        Kind::Connection => Style::new().add_modifier(Modifier::BOLD),
        Kind::Listener => Style::new().add_modifier(Modifier::DIM),
        Kind::Subflow => Style::new(),
    };
    match l.mark {
        Mark::Same => s,
        Mark::New => s.fg(Color::Green),
        Mark::Gone => s.fg(Color::Red),
    }
}

fn draw(f: &mut Frame, view: &View, every: &str) {
    let [head, body, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(f.area());
    let title = format!(
        "mptcp-stat  {} UTC  {every}  {} connections, {} listeners",
        clock(),
        view.connections,
        view.listeners
    );
    f.render_widget(
        Paragraph::new(title).style(Style::new().add_modifier(Modifier::BOLD)),
        head,
    );
    let w = widths(&view.lines);
    let header = Row::new(COLUMNS.iter().map(|h| Cell::from(*h)))
        .style(Style::new().add_modifier(Modifier::REVERSED));
    let rows = view
        .lines
        .iter()
        .map(|l| Row::new(l.cells.iter().map(|c| Cell::from(c.as_str()))).style(line_style(l)));
    let constraints = w
        .iter()
        .map(|n| Constraint::Length(u16::try_from(*n).unwrap_or(u16::MAX)));
    f.render_widget(
        Table::new(rows, constraints)
            .header(header)
            .column_spacing(2),
        body,
    );
    let mut help =
        "q, Esc or Ctrl-C: quit   + appeared, - closed since the last refresh".to_string();
    if view.hidden_subflows {
        help = format!("{HIDDEN_NOTE}   {help}");
    }
    f.render_widget(Paragraph::new(help), foot);
}

fn is_quit_key(k: &KeyEvent) -> bool {
    match k.code {
        KeyCode::Char('q') | KeyCode::Char('Q') | KeyCode::Esc => true,
        KeyCode::Char('c') => k.modifiers.contains(KeyModifiers::CONTROL),
        _ => false,
    }
}

/// The live table on the terminal, until a quit key or a signal.
fn watch_terminal(w: &mut Watcher, quit: &AtomicBool) -> Result<(), String> {
    let io_err = |e: io::Error| format!("terminal: {e}");
    let guard = TerminalGuard::take().map_err(io_err)?;
    let mut term = Terminal::new(CrosstermBackend::new(io::stdout())).map_err(io_err)?;
    let every = w.every();
    let mut view = w.refresh()?;
    term.draw(|f| draw(f, &view, &every)).map_err(io_err)?;
    let mut next = Instant::now() + w.interval;
    while !quit.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now >= next {
            view = w.refresh()?;
            term.draw(|f| draw(f, &view, &every)).map_err(io_err)?;
            next += w.interval;
            if next <= now {
                next = now + w.interval;
            }
            continue;
        }
        // Short waits, so that a signal is seen soon.
        let wait = (next - now).min(Duration::from_millis(100));
        if event::poll(wait).map_err(io_err)? {
            match event::read().map_err(io_err)? {
                Event::Key(k) if k.kind != KeyEventKind::Release && is_quit_key(&k) => break,
                Event::Resize(..) => {
                    term.draw(|f| draw(f, &view, &every)).map_err(io_err)?;
                }
                _ => {}
            }
        }
    }
    drop(term);
    drop(guard);
    Ok(())
}

/// `--watch` when stdout is not a terminal: plain text blocks, no escape sequences.
fn watch_plain(w: &mut Watcher, quit: &AtomicBool) -> Result<(), String> {
    let mut out = io::stdout().lock();
    let mut noted = false;
    let mut next = Instant::now();
    loop {
        let view = w.refresh()?;
        if quit.load(Ordering::SeqCst) {
            return Ok(());
        }
        if view.hidden_subflows && !noted {
            eprintln!("{TOOL}: {HIDDEN_NOTE}");
            noted = true;
        }
        let block = format!(
            "--- {} UTC, {} ---\n{}\n",
            clock(),
            w.every(),
            plain_table(&view.lines)
        );
        if !emit(&mut out, &block)? {
            return Ok(());
        }
        let now = Instant::now();
        next += w.interval;
        if next <= now {
            next = now + w.interval;
        }
        while let Some(left) = next.checked_duration_since(Instant::now()) {
            if quit.load(Ordering::SeqCst) {
                return Ok(());
            }
            std::thread::sleep(left.min(Duration::from_millis(20)));
        }
    }
}

fn watch(query: Query, interval: Duration) -> Result<(), String> {
    let tty = io::stdout().is_terminal();
    let quit = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if !tty {
            // A second signal while a write is stuck (a full pipe): out at once. Not on
            // a terminal, which must be restored first.
            signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&quit))
                .map_err(|e| format!("signal handler: {e}"))?;
        }
        signal_hook::flag::register(sig, Arc::clone(&quit))
            .map_err(|e| format!("signal handler: {e}"))?;
    }
    let mut w = Watcher {
        diag: Diag::new().map_err(|e| e.to_string())?,
        query,
        interval,
        prev: None,
    };
    if tty {
        watch_terminal(&mut w, &quit)
    } else {
        watch_plain(&mut w, &quit)
    }
}

fn main() {
    let args: Args = mptcp_examples::parse_args_from(TOOL, normalize_args(std::env::args_os()));
    let query = parse_query(&args.words).unwrap_or_else(|e| mptcp_examples::usage_error(TOOL, &e));
    let r = match args.watch {
        Some(interval) => watch(query, interval),
        None => once(&query, args.json),
    };
    if let Err(e) = r {
        eprintln!("{TOOL}: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("1"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_interval("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_interval(".25"), Ok(Duration::from_millis(250)));
        for bad in [
            "0", "-1", "0.0", "nan", "inf", "-inf", "abc", "", "0.001", "1e300",
        ] {
            assert!(parse_interval(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn watch_before_a_filter_word_takes_the_default() {
        let args = |s: &str| s.split_whitespace().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            normalize_args(args("mptcp-stat --watch token 1a")),
            args("mptcp-stat --watch=1 token 1a")
        );
        assert_eq!(
            normalize_args(args("mptcp-stat --watch 0.5 port 80")),
            args("mptcp-stat --watch 0.5 port 80")
        );
        assert_eq!(
            normalize_args(args("mptcp-stat --watch")),
            args("mptcp-stat --watch")
        );
    }

    #[test]
    fn filter_words() {
        let q =
            parse_query(&words("token 0x1A2b port 443 state estab state listen")).expect("valid");
        assert_eq!(q.token, Some(Token::new(0x1a2b)));
        assert_eq!(q.port, Some(443));
        assert_eq!(q.states, [SocketState::Established, SocketState::Listen]);
        assert!(parse_query(&[]).expect("empty").token.is_none());
        for (bad, named) in [
            ("token", "token needs a value"),
            ("token 123456789", "\"123456789\""),
            ("port 0", "\"0\""),
            ("port 1 port 2", "port given twice"),
            ("state sleeping", "\"sleeping\""),
            ("estab", "\"estab\""),
        ] {
            let e = parse_query(&words(bad)).expect_err(bad);
            assert!(e.contains(named), "{bad}: {e}");
        }
    }

    #[test]
    fn units_and_rates() {
        assert_eq!(human(0.0), "0 B");
        assert_eq!(human(1023.0), "1023 B");
        assert_eq!(human(1536.0), "1.5 KiB");
        assert_eq!(human(5.0 * 1024.0 * 1024.0), "5.0 MiB");
        assert_eq!(rate(Some(3000), Some(1000), 2.0), "1000 B/s");
        // A counter that went back (a new socket under the same key): no rate.
        assert_eq!(rate(Some(10), Some(20), 1.0), "-");
        assert_eq!(rate(Some(10), None, 1.0), "-");
        assert_eq!(rate(Some(10), Some(0), 0.0), "-");
    }

    #[test]
    fn info_flags_by_name() {
        assert_eq!(info_flag_names(InfoFlags::empty()), "-");
        assert_eq!(
            info_flag_names(InfoFlags::FALLBACK | InfoFlags::REMOTE_KEY_RECEIVED),
            "fallback,remote_key"
        );
        assert_eq!(
            info_flag_names(InfoFlags::from_bits_retain(0x2 | 0x100)),
            "remote_key,0x100"
        );
    }

    #[test]
    fn plain_table_is_aligned() {
        let lines = vec![Line {
            kind: Kind::Listener,
            mark: Mark::New,
            cells: {
                let mut c = vec!["+".to_string(), "LISTEN".into(), String::new()];
                c.push("0.0.0.0:80".into());
                c.resize(COLUMNS.len(), String::new());
                c
            },
        }];
        let t = plain_table(&lines);
        let rows: Vec<&str> = t.lines().collect();
        assert_eq!(rows.len(), 2);
        assert!(rows[0].starts_with("   STATE   TOKEN  LOCAL"), "{t}");
        assert!(rows[1].starts_with("+  LISTEN         0.0.0.0:80"), "{t}");
        assert!(!t.contains('\x1b'));
    }
}
