//! The live table's model: each connection and subflow with its byte rates between
//! two samples, and the same table as aligned plain text.

use crate::output::*;
use mptcp::diag::{DiagConnection, DiagSubflow, SocketState};
use mptcp::Token;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A connection's identity across refreshes: its token, or its socket cookie when it
/// has none (listeners).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ConnKey {
    Token(Token),
    Cookie(u64),
}

pub(crate) fn conn_key(c: &DiagConnection) -> ConnKey {
    c.token.map_or(ConnKey::Cookie(c.cookie), ConnKey::Token)
}

pub(crate) type SubflowKey = (ConnKey, SocketAddr, SocketAddr);

/// One listing and when it was taken.
pub(crate) struct Sample {
    pub(crate) at: Instant,
    pub(crate) conns: Vec<DiagConnection>,
}

/// Bytes (sent, received): the connection's own counters (Linux 6.5+), else the sum of
/// its subflows' TCP counters.
pub(crate) fn conn_bytes(c: &DiagConnection) -> Option<(u64, u64)> {
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

pub(crate) fn subflow_bytes(sf: &DiagSubflow) -> Option<(u64, u64)> {
    sf.tcp_info
        .as_ref()
        .map(|t| (t.bytes_sent(), t.bytes_received()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    Same,
    New,
    Gone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Listener,
    Connection,
    Subflow,
}

/// One line of the table.
pub(crate) struct Line {
    pub(crate) kind: Kind,
    pub(crate) mark: Mark,
    pub(crate) cells: Vec<String>,
}

pub(crate) const COLUMNS: [&str; 11] = [
    "", "STATE", "TOKEN", "LOCAL", "REMOTE", "IDS", "FLAGS", "SENT/s", "RECV/s", "SENT", "RECEIVED",
];

/// 1536 -> "1.5 KiB".
pub(crate) fn human(bytes: f64) -> String {
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
pub(crate) fn rate(now: Option<u64>, before: Option<u64>, secs: f64) -> String {
    match (now, before) {
        (Some(n), Some(b)) if n >= b && secs > 0.0 => human((n - b) as f64 / secs) + "/s",
        _ => "-".into(),
    }
}

pub(crate) fn mark_str(m: Mark) -> String {
    match m {
        Mark::Same => "",
        Mark::New => "+",
        Mark::Gone => "-",
    }
    .into()
}

/// Cells of a connection or listener line.
pub(crate) fn conn_cells(
    c: &DiagConnection,
    mark: Mark,
    before: Option<(u64, u64)>,
    secs: f64,
) -> Line {
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

pub(crate) fn subflow_cells(
    sf: &DiagSubflow,
    mark: Mark,
    before: Option<(u64, u64)>,
    secs: f64,
) -> Line {
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
pub(crate) fn table(prev: Option<&Sample>, cur: &Sample) -> Vec<Line> {
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
pub(crate) fn widths(lines: &[Line]) -> Vec<usize> {
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
pub(crate) fn plain_table(lines: &[Line]) -> String {
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
pub(crate) fn clock() -> String {
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
