//! What the daemon manages, as JSON: written to the state file after every change and
//! printed by `mptcp-pmd status`.

use super::{LocalAddress, Mode};
use mptcp::pm::PmKind;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// A snapshot of what the daemon manages.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// Kernel or userspace mode.
    pub mode: Mode,
    /// The daemon's process id.
    pub pid: u32,
    /// The usable local addresses.
    pub usable: Vec<LocalAddress>,
    /// Kernel mode: the endpoints it added.
    pub endpoints: Vec<EndpointState>,
    /// Userspace mode: the connections it follows and the subflows it opened.
    pub connections: Vec<ConnectionState>,
    /// Userspace mode: the path manager it replaced (`kernel` or `userspace`), which it
    /// restores when it stops, and which a later instance restores for it if it did not
    /// stop cleanly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_path_manager: Option<String>,
}

/// What a daemon that did not stop cleanly (its state file is still there, its
/// process is gone) left behind, for this one to take over; `None` when there is no
/// such file. Another daemon still running with the same state file is an error: two
/// would fight over the same endpoints.
pub(crate) fn earlier(path: Option<&Path>) -> Result<Option<State>, super::Error> {
    let Some(path) = path else { return Ok(None) };
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(None);
    };
    let s: State = match serde_json::from_str(&text) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "not a state file: ignored");
            return Ok(None);
        }
    };
    if s.pid != std::process::id() && is_pmd(s.pid) {
        return Err(super::Error::AlreadyRunning {
            pid: s.pid,
            state_file: path.to_path_buf(),
        });
    }
    Ok(Some(s))
}

/// Whether `pid` is a running mptcp-pmd (not just any process that reused the number).
fn is_pmd(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "mptcp-pmd")
}

/// The state file's name for a path manager.
pub(crate) fn pm_name(k: PmKind) -> String {
    match k {
        PmKind::Kernel => "kernel",
        PmKind::Userspace => "userspace",
    }
    .to_string()
}

/// The path manager a state file names.
pub(crate) fn pm_kind(name: &str) -> Option<PmKind> {
    match name {
        "kernel" => Some(PmKind::Kernel),
        "userspace" => Some(PmKind::Userspace),
        _ => None,
    }
}

/// An endpoint the daemon added.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointState {
    /// The endpoint id.
    pub id: u8,
    /// The address.
    pub addr: IpAddr,
    /// `MPTCP_PM_ADDR_FLAG_*` bits.
    pub flags: u32,
    /// The interface.
    pub ifindex: u32,
}

/// A connection the daemon follows (userspace mode).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionState {
    /// The local token, in hex.
    pub token: String,
    /// This side accepted it.
    pub server_side: bool,
    /// The subflows it opened: (local, remote).
    pub subflows: Vec<(SocketAddr, SocketAddr)>,
}

pub(crate) struct Writer {
    path: Option<PathBuf>,
}

impl Writer {
    pub(crate) fn new(path: Option<PathBuf>) -> Writer {
        Writer { path }
    }

    /// Replaces the file atomically (a reader never sees half of it).
    pub(crate) fn write(&self, s: &State) {
        let Some(path) = &self.path else { return };
        let tmp = path.with_extension("json.tmp");
        let ok = serde_json::to_vec_pretty(s)
            .ok()
            .and_then(|b| std::fs::write(&tmp, b).ok())
            .and_then(|()| std::fs::rename(&tmp, path).ok());
        if ok.is_none() {
            tracing::warn!(path = %path.display(), "cannot write the state file");
        }
    }

    pub(crate) fn remove(&self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}
