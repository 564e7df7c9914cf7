//! The listing as text blocks and as JSON lines.

use mptcp::diag::{Diag, DiagConnection, DiagSubflow, SocketState, SubflowFlags};
use mptcp::{InfoFlags, MptcpInfo};
use serde_json::{json, Value};
use std::fmt::Write as _;

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

pub(crate) fn subflow_json(sf: &DiagSubflow) -> Value {
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

pub(crate) fn connection_json(c: &DiagConnection) -> Value {
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

pub(crate) const HIDDEN_NOTE: &str =
    "note: subflows are hidden: listing them needs CAP_NET_ADMIN (before Linux 6.15)";

pub(crate) fn hidden_subflows(diag: &Diag) -> bool {
    diag.subflows_visible() == Some(false)
}
