//! The listing as text blocks and as JSON lines.

use mptcp::diag::{Diag, DiagConnection, DiagSubflow, SocketState, SubflowFlags};
use mptcp::TcpInfo;
use mptcp::{InfoFlags, MptcpInfo};
use serde::Serialize;
use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::SocketAddr;

pub(crate) fn dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// `fallback`, `remote_key` and any other bit in hex; `-` for none.
pub(crate) fn info_flag_names(f: InfoFlags) -> String {
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
pub(crate) fn subflow_flag_words(sf: &DiagSubflow) -> Vec<&'static str> {
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

pub(crate) fn info_line(i: &MptcpInfo) -> String {
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

pub(crate) fn subflow_line(sf: &DiagSubflow) -> String {
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
pub(crate) fn text(conns: &[DiagConnection]) -> String {
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

/// A subflow's JSON object (keys in alphabetical order), borrowed from the listing.
#[derive(Serialize)]
struct SubflowJson<'a> {
    backup: Option<bool>,
    flags: Option<u32>,
    fully_established: Option<bool>,
    local: SocketAddr,
    local_id: Option<u8>,
    remote: SocketAddr,
    remote_id: Option<u8>,
    remote_token: Option<String>,
    state: Cow<'static, str>,
    tcp_info: &'a Option<TcpInfo>,
}

/// A socket's JSON object (keys in alphabetical order), borrowed from the listing.
#[derive(Serialize)]
struct ConnectionJson<'a> {
    cookie: u64,
    info: &'a Option<MptcpInfo>,
    inode: u64,
    local: SocketAddr,
    remote: SocketAddr,
    state: Cow<'static, str>,
    subflows: Vec<SubflowJson<'a>>,
    token: Option<String>,
    uid: u32,
}

/// The state as `ss` names it (`Display`), without an allocation for the known ones.
fn state_name(s: SocketState) -> Cow<'static, str> {
    match s {
        SocketState::Unknown(_) => Cow::Owned(s.to_string()),
        s => Cow::Borrowed(s.name()),
    }
}

fn subflow_json(sf: &DiagSubflow) -> SubflowJson<'_> {
    SubflowJson {
        backup: sf.is_backup(),
        flags: sf.flags.map(|f| f.bits()),
        fully_established: sf
            .flags
            .map(|f| f.contains(SubflowFlags::FULLY_ESTABLISHED)),
        local: sf.local,
        local_id: sf.local_id,
        remote: sf.remote,
        remote_id: sf.remote_id,
        remote_token: sf.remote_token.map(|t| t.to_string()),
        state: state_name(sf.state),
        tcp_info: &sf.tcp_info,
    }
}

/// Appends a socket's JSON object and a newline to `out`.
pub(crate) fn connection_json(out: &mut Vec<u8>, c: &DiagConnection) {
    let record = ConnectionJson {
        cookie: c.cookie,
        info: &c.info,
        inode: c.inode,
        local: c.local,
        remote: c.remote,
        state: state_name(c.state),
        subflows: c.subflows.iter().map(subflow_json).collect(),
        token: c.token.map(|t| t.to_string()),
        uid: c.uid,
    };
    // Writing into a Vec fails only if a Serialize impl does, and these cannot.
    if serde_json::to_writer(&mut *out, &record).is_ok() {
        out.push(b'\n');
    }
}

pub(crate) const HIDDEN_NOTE: &str =
    "note: subflows are hidden: listing them needs CAP_NET_ADMIN (before Linux 6.15)";

pub(crate) fn hidden_subflows(diag: &Diag) -> bool {
    diag.subflows_visible() == Some(false)
}
