//! What the daemon manages, as JSON: written to the state file after every change and
//! printed by `mptcp-pmd status`.

use super::{LocalAddress, Mode};
use mptcp::pm::PmKind;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// A snapshot of what the daemon manages.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
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
    /// The daemon's network namespace (`net:[INODE]`, as `/proc/PID/ns/net` names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
}

/// The state file's lock, held for the daemon's life: a second daemon with the same
/// state file is refused while it is held, and the kernel lets it go when the process
/// ends, however it ends.
#[derive(Debug)]
pub(crate) struct Lock {
    _file: nix::fcntl::Flock<std::fs::File>,
}

/// What the daemon finds at start: the lock, and what an earlier daemon that did not
/// stop cleanly (its state file is still there) left, for this one to take over.
#[derive(Debug)]
pub(crate) struct Claim {
    pub(crate) lock: Option<Lock>,
    pub(crate) earlier: Option<State>,
}

/// The lock beside the state file (`FILE.lock`; not the state file itself, which is
/// replaced by a rename at every write).
fn lock_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// The network namespace this process is in (`net:[INODE]`), recorded in the state so
/// that a daemon in another namespace sharing the file does not take over endpoints
/// that are not in its namespace.
/// Read once: the daemon never changes namespace, and the state is written often.
pub(crate) fn netns() -> Option<String> {
    static NETNS: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    NETNS
        .get_or_init(|| {
            std::fs::read_link("/proc/self/ns/net")
                .ok()
                .map(|p| p.to_string_lossy().into_owned())
        })
        .clone()
}

/// Locks the state file (refusing to run beside another daemon that holds it) and
/// reads what an earlier daemon left: nothing without a state file (`path` is `None`),
/// when there is none, or when it is from another network namespace; a file that does
/// not parse is moved aside (`FILE.corrupt`).
pub(crate) fn claim(path: Option<&Path>) -> Result<Claim, super::Error> {
    let Some(path) = path else {
        return Ok(Claim {
            lock: None,
            earlier: None,
        });
    };
    // A lock that cannot be made (a directory this user cannot write: the state file
    // will not be written either) is a warning, as a state file that cannot be written
    // is: the daemon runs, without takeover (and a missing capability is then named).
    let file = match std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path(path))
    {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(path = %lock_path(path).display(), error = %e, "cannot make the state file's lock: no takeover, no check for another daemon");
            return Ok(Claim {
                lock: None,
                earlier: None,
            });
        }
    };
    let lock = match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(l) => Lock { _file: l },
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            return Err(super::Error::AlreadyRunning {
                pid: read(path).ok().flatten().map(|s| s.pid),
                state_file: path.to_path_buf(),
            })
        }
        Err((_, e)) => {
            return Err(super::Error::Io(
                "lock the state file",
                std::io::Error::from_raw_os_error(e as i32),
            ))
        }
    };
    let earlier = match read(path) {
        Ok(Some(s)) if s.netns.is_some() && s.netns != netns() => {
            tracing::warn!(path = %path.display(), pid = s.pid, netns = ?s.netns, "the state file is from a daemon in another network namespace: nothing taken over (give each namespace its own --state)");
            None
        }
        Ok(s) => s,
        Err(e) => {
            let aside = path.with_extension("corrupt");
            let _ = std::fs::rename(path, &aside);
            tracing::warn!(path = %path.display(), error = %e, aside = %aside.display(), "not a state file: moved aside, nothing taken over");
            None
        }
    };
    Ok(Claim {
        lock: Some(lock),
        earlier,
    })
}

/// The state in `path`: `None` when there is no file; an error when it is not one.
fn read(path: &Path) -> Result<Option<State>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| e.to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
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
fn pm_kind(name: &str) -> Option<PmKind> {
    match name {
        "kernel" => Some(PmKind::Kernel),
        "userspace" => Some(PmKind::Userspace),
        _ => None,
    }
}

/// The path manager to restore for an earlier daemon in userspace mode that did not
/// stop cleanly: the one it replaced, when the userspace path manager it selected is
/// still the `current` one (otherwise someone chose since, or there is nothing to do).
pub(crate) fn replaced_pm(earlier: &State, current: PmKind) -> Option<PmKind> {
    if earlier.mode != Mode::Userspace || current != PmKind::Userspace {
        return None;
    }
    earlier.previous_path_manager.as_deref().and_then(pm_kind)
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
    /// Its path policy (`aggregate`, `handover`, `backup`).
    #[serde(default)]
    pub policy: String,
    /// Its subflows other than the initial one: (local, remote).
    pub subflows: Vec<(SocketAddr, SocketAddr)>,
    /// The local addresses of its subflows marked backup.
    #[serde(default)]
    pub backup: Vec<SocketAddr>,
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
