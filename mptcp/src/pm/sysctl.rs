//! Which path manager a network namespace uses: the `net.mptcp` sysctls.

use crate::error::{Error, Result};

/// Which path manager a network namespace uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PmKind {
    /// The in-kernel path manager, driven by endpoints and limits.
    Kernel,
    /// The userspace path manager: a daemon (or this crate) drives each connection.
    Userspace,
}

/// The path manager of the calling thread's network namespace, from
/// `net.mptcp.path_manager` (Linux 6.15+) or `net.mptcp.pm_type` (5.19+).
#[doc(alias = "net.mptcp.path_manager")]
#[doc(alias = "net.mptcp.pm_type")]
pub fn kind() -> Result<PmKind> {
    if let Ok(v) = std::fs::read_to_string("/proc/sys/net/mptcp/path_manager") {
        return Ok(if v.trim() == "userspace" {
            PmKind::Userspace
        } else {
            PmKind::Kernel
        });
    }
    match std::fs::read_to_string("/proc/sys/net/mptcp/pm_type") {
        Ok(v) => Ok(if v.trim() == "1" {
            PmKind::Userspace
        } else {
            PmKind::Kernel
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PmKind::Kernel),
        Err(e) => Err(Error::os("read net.mptcp.pm_type", e)),
    }
}

/// Selects the path manager of the calling thread's network namespace (for new
/// connections), writing `net.mptcp.path_manager` (6.15+) or else `net.mptcp.pm_type`
/// (5.19+). Needs CAP_NET_ADMIN (or root) in that namespace.
///
/// ```no_run
/// mptcp::pm::set_kind(mptcp::pm::PmKind::Userspace)?;
/// # Ok::<(), mptcp::Error>(())
/// ```
#[doc(alias = "net.mptcp.path_manager")]
#[doc(alias = "net.mptcp.pm_type")]
pub fn set_kind(kind: PmKind) -> Result<()> {
    let (name, value) = match kind {
        PmKind::Kernel => ("kernel", "0"),
        PmKind::Userspace => ("userspace", "1"),
    };
    let write = |path: &str, v: &str| std::fs::write(path, v);
    match write("/proc/sys/net/mptcp/path_manager", name) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match write("/proc/sys/net/mptcp/pm_type", value) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Unsupported {
                    feature: "selecting the path manager (net.mptcp.pm_type)",
                    since: Some("5.19"),
                }),
                Err(e) => Err(sysctl_error("write net.mptcp.pm_type", e)),
            }
        }
        Err(e) => Err(sysctl_error("write net.mptcp.path_manager", e)),
    }
}

/// A sysctl write refused for lack of privilege is the same error as a refused netlink
/// request: it names CAP_NET_ADMIN.
fn sysctl_error(op: &'static str, e: std::io::Error) -> Error {
    match e.raw_os_error() {
        Some(errno @ (libc::EACCES | libc::EPERM)) => Error::PermissionDenied {
            op,
            message: None,
            errno,
        },
        _ => Error::os(op, e),
    }
}
