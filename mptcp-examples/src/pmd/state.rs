//! What the daemon manages, as JSON: written to the state file after every change and
//! printed by `mptcp-pmd status`.

use super::{LocalAddress, Mode};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

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
