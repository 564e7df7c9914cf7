//! The crate's one error type.

use std::io;

/// Everything that can go wrong in this crate.
///
/// ```
/// # fn main() {
/// use std::net::UdpSocket;
/// let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
/// match mptcp::info(&udp) {
///     Err(mptcp::Error::NotMptcp(why)) => println!("not MPTCP: {why}"),
///     other => panic!("unexpected: {other:?}"),
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The descriptor is not an MPTCP socket (or not a connected one).
    #[error("not an MPTCP connection: {0}")]
    NotMptcp(NotMptcp),
    /// The socket was created as MPTCP but the connection fell back to plain TCP (the
    /// peer or a middlebox does not speak MPTCP).
    #[error("the connection fell back to plain TCP")]
    FellBack,
    /// The running kernel lacks a feature this call needs.
    #[error("{feature} is not supported by this kernel (added in Linux {since})")]
    Unsupported {
        /// The kernel interface that is missing, e.g. `MPTCP_FULL_INFO`.
        feature: &'static str,
        /// The first Linux version that has it, e.g. `"6.5"`.
        since: &'static str,
    },
    /// MPTCP sockets cannot be created here (and the mode required them).
    #[error("MPTCP is unavailable: {0}")]
    Unavailable(#[from] Unavailable),
    /// The `MPTCP_MODE` environment variable holds something other than a mode name.
    #[error("invalid {var}={value:?}: expected prefer, require or off")]
    InvalidEnv {
        /// The variable's name.
        var: &'static str,
        /// What it holds.
        value: String,
    },
    /// The path manager refused a request: the errno, and the kernel's extended-ack
    /// text when it sent one (e.g. "invalid token").
    #[error("{op}: {source}{}", message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Netlink {
        /// The request, e.g. `add endpoint`.
        op: &'static str,
        /// The OS error the kernel returned.
        #[source]
        source: io::Error,
        /// The kernel's extended-ack message.
        message: Option<String>,
    },
    /// The request needs `CAP_NET_ADMIN` in the network namespace (`EPERM`).
    #[error("{op}: permission denied: CAP_NET_ADMIN is needed in this network namespace{}", message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default())]
    PermissionDenied {
        /// The request.
        op: &'static str,
        /// The kernel's extended-ack message, if any.
        message: Option<String>,
    },
    /// The operation needs the userspace path manager in the connection's network
    /// namespace: see [`pm::PmKind`](crate::pm::PmKind) and
    /// [`pm::set_kind`](crate::pm::set_kind).
    #[error("{op} needs the userspace path manager in this network namespace (net.mptcp.path_manager=userspace, or net.mptcp.pm_type=1 before Linux 6.15)")]
    NeedsUserspacePm {
        /// The operation.
        op: &'static str,
    },
    /// No subflow with this id on the connection.
    #[error("no subflow with id {0} on this connection")]
    NoSuchSubflow(u32),
    /// An operation did not finish in time.
    #[error("{0}: timed out")]
    TimedOut(&'static str),
    /// A system call failed; the OS error (with its errno) is kept.
    #[error("{op}: {source}")]
    Os {
        /// What was being done, e.g. `connect` or `getsockopt(MPTCP_INFO)`.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The errno behind this error, when there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Os { source, .. } | Error::Netlink { source, .. } => source.raw_os_error(),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Error::PermissionDenied { .. } => Some(libc::EPERM),
            Error::Unavailable(u) => u.errno(),
            _ => None,
        }
    }

    pub(crate) fn os(op: &'static str, source: io::Error) -> Self {
        Error::Os { op, source }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Os { source, .. } => source,
            other => io::Error::other(other),
        }
    }
}

/// Why a descriptor is not a (connected) MPTCP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotMptcp {
    /// The descriptor is not a socket (`ENOTSOCK`).
    #[error("not a socket")]
    NotASocket,
    /// A socket, but not an IPv4/IPv6 stream socket (UDP, Unix, ...).
    #[error("not a TCP/MPTCP stream socket")]
    NotStream,
    /// A plain TCP socket: created without MPTCP, or accepted by an MPTCP listener from
    /// a client that did not offer MPTCP.
    #[error("a plain TCP socket")]
    PlainTcp,
    /// A listening socket: it has no connection to describe.
    #[error("a listening socket")]
    Listener,
    /// Not connected (yet, or any more).
    #[error("not connected")]
    NotConnected,
}

/// Why this process cannot create MPTCP sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unavailable {
    /// The kernel was built without MPTCP (`EPROTONOSUPPORT`).
    #[error("the kernel was built without MPTCP (EPROTONOSUPPORT)")]
    NotBuiltIn,
    /// The kernel predates MPTCP sockets, added in Linux 5.6 (`EINVAL`).
    #[error("the kernel predates MPTCP sockets, added in Linux 5.6 (EINVAL)")]
    KernelTooOld,
    /// `net.mptcp.enabled=0` in this network namespace (`ENOPROTOOPT`).
    #[error("disabled in this network namespace: net.mptcp.enabled=0 (ENOPROTOOPT)")]
    Disabled,
    /// A security module (SELinux, AppArmor, seccomp, ...) refused the socket.
    #[error("refused by a security policy (errno {0})")]
    Refused(i32),
    /// The mode in effect is [`Mode::Off`](crate::Mode::Off), from the program or the
    /// `MPTCP_MODE` environment variable.
    #[error("turned off (mode off)")]
    TurnedOff,
    /// The operating system has no MPTCP sockets: only Linux (and Android) do. The
    /// value is the OS, as in `std::env::consts::OS` (`"macos"`, `"freebsd"`,
    /// `"windows"`, ...).
    #[error("MPTCP sockets exist only on Linux and Android, not on {0}")]
    UnsupportedOs(&'static str),
}

impl Unavailable {
    /// Maps a `socket()` errno to the reason it means, if it means "no MPTCP here".
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(crate) fn from_socket_errno(errno: i32) -> Option<Self> {
        match errno {
            libc::EPROTONOSUPPORT => Some(Unavailable::NotBuiltIn),
            libc::EINVAL => Some(Unavailable::KernelTooOld),
            libc::ENOPROTOOPT => Some(Unavailable::Disabled),
            libc::EACCES | libc::EPERM => Some(Unavailable::Refused(errno)),
            _ => None,
        }
    }

    /// The errno `socket()` returned, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Unavailable::NotBuiltIn => Some(libc::EPROTONOSUPPORT),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Unavailable::KernelTooOld => Some(libc::EINVAL),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Unavailable::Disabled => Some(libc::ENOPROTOOPT),
            Unavailable::Refused(e) => Some(*e),
            // The kernel reasons only arise on Linux; elsewhere there is no errno.
            _ => None,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
