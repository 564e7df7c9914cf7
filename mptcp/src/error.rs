//! The crate's one error type.
//!
//! One type for the whole crate, not one per module: a call often crosses domains (a
//! `SubflowHandle` reads socket options and talks netlink; a listing needs sock_diag and
//! decodes `mptcp_info`), and a user matches on what went wrong, not on which module
//! noticed. Each variant's `Display` is the whole message, the OS error's text
//! included; `source()` is therefore `None` (a chained report prints each cause once),
//! and the `io::Error` stays reachable through [`Error::io_error`].

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
    /// The descriptor is not an MPTCP socket.
    #[error("not an MPTCP socket: {0}")]
    NotMptcp(NotMptcp),
    /// An MPTCP socket without a connection to describe: a listener, or not connected
    /// (yet, or any more).
    #[error("no MPTCP connection: {0}")]
    NoConnection(NoConnection),
    /// The socket was created as MPTCP but the connection fell back to plain TCP (the
    /// peer or a middlebox does not speak MPTCP).
    #[error("the connection fell back to plain TCP")]
    FellBack,
    /// The running kernel lacks a feature this call needs.
    #[error("{feature} is {}", match since {
        Some(v) => format!("not supported by this kernel (added in Linux {v})"),
        None => "not offered by upstream Linux".to_string(),
    })]
    Unsupported {
        /// The kernel interface that is missing, e.g. `MPTCP_FULL_INFO`.
        feature: &'static str,
        /// The first Linux version that has it, e.g. `"6.5"`; `None` when no upstream
        /// release has it at all (the feature's text says why).
        since: Option<&'static str>,
    },
    /// MPTCP sockets cannot be created here (and the mode required them).
    #[error("MPTCP is unavailable: {0}")]
    Unavailable(Unavailable),
    /// An MPTCP socket refused an option that plain TCP takes, and the mode was
    /// [`Mode::Require`](crate::Mode::Require) (under `Prefer` the socket would have
    /// become plain TCP instead).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[error("setsockopt({option}) on an MPTCP socket: {error} (plain TCP takes it; Mode::Prefer falls back)")]
    OptionRefused {
        /// The option.
        option: crate::sockopt::SockOpt,
        /// The kernel's error.
        error: io::Error,
    },
    /// The `MPTCP_MODE` environment variable holds something other than a mode name.
    #[error("invalid {var}: {error}")]
    InvalidEnv {
        /// The variable's name.
        var: &'static str,
        /// What is wrong with its value.
        error: ParseModeError,
    },
    /// An argument the kernel would misread or that cannot mean anything (a zero
    /// timeout, endpoint id 0, a Unix socket domain ...).
    #[error("{op}: {reason}")]
    InvalidArgument {
        /// The call, e.g. `set event timeout`.
        op: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The path manager refused a request: the errno, and the kernel's extended-ack
    /// text when it sent one (e.g. "invalid token").
    #[error("{op}: {error}{}", message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Netlink {
        /// The request, e.g. `add endpoint`.
        op: &'static str,
        /// The OS error the kernel returned.
        error: io::Error,
        /// The kernel's extended-ack message.
        message: Option<String>,
    },
    /// The request needs `CAP_NET_ADMIN` in the network namespace (`EPERM`, or
    /// `EACCES` on a sysctl file).
    #[error("{op}: permission denied: CAP_NET_ADMIN is needed in this network namespace{}", message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default())]
    PermissionDenied {
        /// The request.
        op: &'static str,
        /// The kernel's extended-ack message, if any.
        message: Option<String>,
        /// The errno (`EPERM` or `EACCES`).
        errno: i32,
    },
    /// The operation needs the userspace path manager in the connection's network
    /// namespace: see `pm::PmKind` and `pm::set_kind`.
    #[error("{op} needs the userspace path manager in this network namespace (net.mptcp.path_manager=userspace, or net.mptcp.pm_type=1 before Linux 6.15)")]
    NeedsUserspacePm {
        /// The operation.
        op: &'static str,
        /// The errno the kernel answered with.
        errno: i32,
    },
    /// No subflow with this id on the connection.
    #[error("no subflow with id {0} on this connection")]
    NoSuchSubflow(u32),
    /// No MPTCP connection with this token in the network namespace.
    #[error("no MPTCP connection with token {0} in this network namespace")]
    NoSuchConnection(crate::token::Token),
    /// A kernel module the call needs is not loaded and could not be loaded (or the
    /// kernel was built without it, or predates it).
    #[error("{feature} needs the kernel module {module}, which is not loaded and could not be loaded (built without it, or a kernel before it existed)")]
    MissingModule {
        /// The module, e.g. `mptcp_diag`.
        module: &'static str,
        /// What needs it.
        feature: &'static str,
        /// The errno the kernel answered with.
        errno: i32,
    },
    /// An operation did not finish in time.
    #[error("{0}: timed out")]
    TimedOut(&'static str),
    /// The kernel's reply could not be decoded (too short, inconsistent, unknown
    /// address family ...).
    #[error("{what}: cannot decode the kernel's reply: {detail}")]
    Decode {
        /// What was being decoded, e.g. `MPTCP_FULL_INFO`.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// A system call failed; the OS error (with its errno) is kept.
    #[error("{op}: {error}")]
    Os {
        /// What was being done, e.g. `connect` or `getsockopt(MPTCP_INFO)`.
        op: &'static str,
        /// The OS error.
        error: io::Error,
    },
}

impl From<Unavailable> for Error {
    fn from(why: Unavailable) -> Self {
        Error::Unavailable(why)
    }
}

impl Error {
    /// The errno behind this error, when there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Os { error, .. } | Error::Netlink { error, .. } => error.raw_os_error(),
            Error::PermissionDenied { errno, .. }
            | Error::NeedsUserspacePm { errno, .. }
            | Error::MissingModule { errno, .. } => Some(*errno),
            Error::Unavailable(u) => u.errno(),
            _ => None,
        }
    }

    /// The `std::io::ErrorKind` that fits this error, the one that
    /// `io::Error::from(error)` has.
    ///
    /// ```
    /// use std::io::ErrorKind;
    /// let e = mptcp::Error::TimedOut("open subflow");
    /// assert_eq!(e.kind(), ErrorKind::TimedOut);
    /// assert_eq!(std::io::Error::from(e).kind(), ErrorKind::TimedOut);
    /// ```
    pub fn kind(&self) -> io::ErrorKind {
        use io::ErrorKind as K;
        match self {
            Error::NotMptcp(NotMptcp::NotASocket | NotMptcp::NotStream) => K::InvalidInput,
            Error::NotMptcp(NotMptcp::PlainTcp) | Error::FellBack => K::Unsupported,
            Error::NoConnection(_) => K::NotConnected,
            Error::Unsupported { .. } => K::Unsupported,
            Error::Unavailable(Unavailable::Refused(_)) => K::PermissionDenied,
            Error::Unavailable(_) => K::Unsupported,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Error::OptionRefused { .. } => K::Unsupported,
            Error::InvalidEnv { .. } | Error::InvalidArgument { .. } => K::InvalidInput,
            Error::PermissionDenied { .. } => K::PermissionDenied,
            Error::NoSuchSubflow(_) | Error::NoSuchConnection(_) => K::NotFound,
            Error::MissingModule { .. } => K::Unsupported,
            Error::TimedOut(_) => K::TimedOut,
            Error::Decode { .. } => K::InvalidData,
            Error::Os { error, .. } | Error::Netlink { error, .. } => error.kind(),
            Error::NeedsUserspacePm { errno, .. } => io::Error::from_raw_os_error(*errno).kind(),
        }
    }

    /// The OS error behind an [`Error::Os`] or [`Error::Netlink`].
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Error::Os { error, .. } | Error::Netlink { error, .. } => Some(error),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Error::OptionRefused { error, .. } => Some(error),
            _ => None,
        }
    }

    pub(crate) fn os(op: &'static str, error: io::Error) -> Self {
        Error::Os { op, error }
    }

    #[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
    pub(crate) fn decode(what: &'static str, detail: impl Into<String>) -> Self {
        Error::Decode {
            what,
            detail: detail.into(),
        }
    }

    #[cfg_attr(not(any(feature = "pm", feature = "tokio")), allow(dead_code))]
    pub(crate) fn invalid(op: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            op,
            reason: reason.into(),
        }
    }
}

/// Keeps the kind ([`Error::kind`]) and the whole message: the operation, the OS
/// error's text and the kernel's extended-ack text, as `Display` shows them. The
/// `mptcp::Error` itself stays reachable through `get_ref()` (and its errno through
/// [`Error::errno`]); `raw_os_error()` of the converted error is `None`, since an
/// `io::Error` holds either a bare errno or a message, not both.
///
/// So a program can return `std::io::Result` and use `?` on this crate's calls and on
/// std's I/O alike:
///
/// ```
/// use std::io::{self, ErrorKind, Write};
/// fn send(addr: std::net::SocketAddr) -> io::Result<()> {
///     let mut s = mptcp::connect(addr)?; // mptcp::Error -> io::Error
///     s.write_all(b"hello")?; // io::Error
///     Ok(())
/// }
/// let listener = mptcp::listen("127.0.0.1:0")?;
/// send(listener.local_addr()?)?;
///
/// let e = io::Error::from(mptcp::Error::TimedOut("open subflow"));
/// assert_eq!(e.kind(), ErrorKind::TimedOut);
/// assert_eq!(e.to_string(), "open subflow: timed out");
/// let inner = e.get_ref().and_then(|i| i.downcast_ref::<mptcp::Error>());
/// assert!(matches!(inner, Some(mptcp::Error::TimedOut(_))));
/// # Ok::<(), io::Error>(())
/// ```
impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        io::Error::new(e.kind(), e)
    }
}

/// The value of [`Mode`](crate::Mode)'s `FromStr` when it names no mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a mode: expected prefer, require or off")]
pub struct ParseModeError {
    /// The text that was parsed.
    pub value: String,
}

/// An MPTCP socket that has no connection: why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoConnection {
    /// A listening socket.
    #[error("a listening socket")]
    Listener,
    /// Not connected (yet, or any more).
    #[error("not connected")]
    Unconnected,
}

/// Why a descriptor is not an MPTCP socket.
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
    /// The socket was created as plain TCP elsewhere and adopted
    /// (`MptcpSocket::try_from(OwnedFd)`).
    #[error("the socket was created as plain TCP")]
    CreatedAsTcp,
    /// The operating system has no MPTCP sockets: only Linux (and Android) do. The
    /// value is the OS, as in `std::env::consts::OS` (`"macos"`, `"freebsd"`,
    /// `"windows"`, ...).
    #[error("MPTCP sockets exist only on Linux and Android, not on {0}")]
    UnsupportedOs(&'static str),
    /// The socket was MPTCP, refused an option that plain TCP takes, and became plain
    /// TCP under [`Mode::Prefer`](crate::Mode::Prefer) (see
    /// [`MptcpSocket::set_option`](crate::MptcpSocket::set_option)).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[error("MPTCP refused {option} ({}), which plain TCP takes", crate::sockopt::errno_name(*errno))]
    OptionRefused {
        /// The option.
        option: crate::sockopt::SockOpt,
        /// The errno of MPTCP's refusal.
        errno: i32,
    },
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
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Unavailable::OptionRefused { errno, .. } => Some(*errno),
            // The kernel reasons only arise on Linux; elsewhere there is no errno.
            _ => None,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind as K;

    /// Every variant keeps its kind and its whole message through `io::Error`, and its
    /// errno (through `get_ref()`); in a chained report each cause appears once.
    #[test]
    fn io_error_keeps_kind_message_and_errno() {
        let cases: Vec<(Error, K, Option<i32>)> = vec![
            (Error::NotMptcp(NotMptcp::NotASocket), K::InvalidInput, None),
            (Error::NotMptcp(NotMptcp::PlainTcp), K::Unsupported, None),
            (
                Error::NoConnection(NoConnection::Listener),
                K::NotConnected,
                None,
            ),
            (
                Error::NoConnection(NoConnection::Unconnected),
                K::NotConnected,
                None,
            ),
            (Error::FellBack, K::Unsupported, None),
            (
                Error::Unsupported {
                    feature: "x",
                    since: Some("6.5"),
                },
                K::Unsupported,
                None,
            ),
            (Error::TimedOut("open subflow"), K::TimedOut, None),
            (Error::NoSuchSubflow(3), K::NotFound, None),
            (
                Error::NoSuchConnection(crate::Token::new(7)),
                K::NotFound,
                None,
            ),
            (
                Error::MissingModule {
                    module: "mptcp_diag",
                    feature: "x",
                    errno: 2,
                },
                K::Unsupported,
                Some(2),
            ),
            (Error::decode("x", "short"), K::InvalidData, None),
            (Error::invalid("x", "zero"), K::InvalidInput, None),
            (
                Error::PermissionDenied {
                    op: "add endpoint",
                    message: None,
                    errno: 1,
                },
                K::PermissionDenied,
                Some(1),
            ),
            (
                Error::NeedsUserspacePm {
                    op: "create subflow",
                    errno: 22,
                },
                K::InvalidInput,
                Some(22),
            ),
            (
                Error::Netlink {
                    op: "get endpoint",
                    error: io::Error::from_raw_os_error(2),
                    message: Some("address not found".into()),
                },
                K::NotFound,
                Some(2),
            ),
            (
                Error::os("connect", io::Error::from_raw_os_error(111)),
                K::ConnectionRefused,
                Some(111),
            ),
        ];
        for (e, kind, errno) in cases {
            let shown = e.to_string();
            assert_eq!(e.kind(), kind, "{shown}");
            assert_eq!(e.errno(), errno, "{shown}");
            // A report that walks the chain (anyhow's `{:#}`) shows the OS text once.
            assert!(std::error::Error::source(&e).is_none(), "{shown}");
            if let Some(os) = e.io_error() {
                assert_eq!(shown.matches(&os.to_string()).count(), 1, "{shown}");
            }
            let io = io::Error::from(e);
            assert_eq!(io.kind(), kind, "{shown}");
            assert_eq!(io.to_string(), shown, "the operation and the kernel's text");
            let inner = io.get_ref().and_then(|i| i.downcast_ref::<Error>());
            assert_eq!(inner.and_then(Error::errno), errno, "{shown}");
        }
        let e = Error::Netlink {
            op: "get endpoint",
            error: io::Error::from_raw_os_error(2),
            message: Some("address not found".into()),
        };
        let shown = io::Error::from(e).to_string();
        assert!(shown.starts_with("get endpoint: "), "{shown}");
        assert!(shown.ends_with(": address not found"), "{shown}");
        let env = Error::InvalidEnv {
            var: "MPTCP_MODE",
            error: ParseModeError { value: "x".into() },
        };
        assert!(std::error::Error::source(&env).is_none());
        assert!(std::error::Error::source(&Error::Unavailable(Unavailable::Disabled)).is_none());
    }

    #[test]
    fn unsupported_says_only_true_things() {
        let e = Error::Unsupported {
            feature: "MPTCP_FULL_INFO",
            since: Some("6.5"),
        };
        assert_eq!(
            e.to_string(),
            "MPTCP_FULL_INFO is not supported by this kernel (added in Linux 6.5)"
        );
        let e = Error::Unsupported {
            feature: "half-closing one subflow",
            since: None,
        };
        assert_eq!(
            e.to_string(),
            "half-closing one subflow is not offered by upstream Linux"
        );
        assert!(!e.to_string().contains("Linux none"));
    }
}
