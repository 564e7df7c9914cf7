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

mod output;
mod table;
mod watch;

use clap::Parser;
use mptcp::diag::{Diag, DiagConnection, Filter, SocketState};
use mptcp::Token;
use output::*;
use std::collections::HashSet;
use std::ffi::OsString;
use std::io::{self, Write};
use std::time::Duration;
use watch::watch;

pub(crate) const TOOL: &str = "mptcp-stat";

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
pub(crate) struct Query {
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
pub(crate) fn list(diag: &mut Diag, q: &Query) -> mptcp::Result<Vec<DiagConnection>> {
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

/// Writes to stdout; a closed pipe (`mptcp-stat | head`) ends quietly.
pub(crate) fn emit(out: &mut impl Write, text: &[u8]) -> Result<bool, String> {
    match out.write_all(text).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(format!("cannot write to stdout: {e}")),
    }
}

fn once(q: &Query, as_json: bool) -> Result<(), String> {
    let mut diag = Diag::new().map_err(|e| e.to_string())?;
    let conns = list(&mut diag, q).map_err(|e| e.to_string())?;
    let out = if as_json {
        let mut out = Vec::with_capacity(conns.len() * 1024);
        for c in &conns {
            connection_json(&mut out, c);
        }
        out
    } else {
        text(&conns).into_bytes()
    };
    if hidden_subflows(&diag) {
        eprintln!("{TOOL}: {HIDDEN_NOTE}");
    }
    emit(&mut io::stdout().lock(), &out).map(drop)
}

// ---- --watch ----
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
    use super::output::*;
    use super::table::*;
    use super::*;
    use mptcp::InfoFlags;

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
