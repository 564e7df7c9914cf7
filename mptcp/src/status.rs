//! Is this socket MPTCP, and is its connection really using MPTCP?

use crate::error::{Error, NoConnection, NotMptcp, Result};
use crate::sys;
use socket2::{Domain, SockRef, Type};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::OnceLock;

/// How [`status`] found its answer: the best signal the running kernel offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Detection {
    /// `getsockopt(SOL_TCP, TCP_IS_MPTCP)`, Linux 6.10 and later: exact.
    TcpIsMptcp,
    /// The errno of `getsockopt(SOL_MPTCP, ...)`, Linux 5.16 and later: exact.
    SolMptcp,
    /// `SO_PROTOCOL` only (older kernels): says how the socket was *created*. A client
    /// socket created as MPTCP whose connection fell back to TCP is still reported as
    /// MPTCP; this cannot be detected from userspace on those kernels.
    SoProtocol,
}

/// What a socket is, as far as MPTCP goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// The socket was created with `IPPROTO_MPTCP` (its `SO_PROTOCOL` is 262). A socket
    /// accepted by an MPTCP listener from a plain TCP client is created as TCP.
    pub created_as_mptcp: bool,
    /// The connection uses MPTCP: false for plain TCP sockets and after a fallback to
    /// TCP. For [`Detection::SoProtocol`] this is `created_as_mptcp`.
    pub using_mptcp: bool,
    /// Which signal gave the answer.
    pub detection: Detection,
}

fn is_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EOPNOTSUPP) | Some(libc::ENOPROTOOPT)
    )
}

/// Checks that a descriptor is an IPv4/IPv6 stream socket; returns its `SO_PROTOCOL`.
pub(crate) fn stream_protocol(fd: BorrowedFd<'_>) -> Result<i32> {
    let sock = SockRef::from(&fd);
    let ty = sock.r#type().map_err(|e| match e.raw_os_error() {
        Some(libc::ENOTSOCK) => Error::NotMptcp(NotMptcp::NotASocket),
        _ => Error::os("getsockopt(SO_TYPE)", e),
    })?;
    let domain = sock
        .domain()
        .map_err(|e| Error::os("getsockopt(SO_DOMAIN)", e))?;
    if ty != Type::STREAM || (domain != Domain::IPV4 && domain != Domain::IPV6) {
        return Err(Error::NotMptcp(NotMptcp::NotStream));
    }
    sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL)
        .map_err(|e| Error::os("getsockopt(SO_PROTOCOL)", e))
}

/// Kernel-wide facts, probed once on a fresh, unconnected MPTCP socket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Features {
    /// `getsockopt(SOL_MPTCP, MPTCP_INFO)` works (Linux 5.16+).
    pub sol_mptcp: bool,
    /// `MPTCP_FULL_INFO` is known (Linux 6.5+): EINVAL on an unconnected socket rather
    /// than the EOPNOTSUPP of an unknown option.
    pub full_info: bool,
}

/// The kernel's features; `None` when no MPTCP socket can be created here to ask.
pub(crate) fn features() -> Option<Features> {
    static FEATURES: OnceLock<Features> = OnceLock::new();
    if let Some(f) = FEATURES.get() {
        return Some(*f);
    }
    let s = socket2::Socket::new(
        Domain::IPV4,
        Type::STREAM,
        Some(crate::socket::mptcp_protocol()),
    )
    .ok()?;
    let mut empty = [0u8; 0];
    let sol_mptcp = sys::getsockopt_buf(
        s.as_fd(),
        mptcp_sys::SOL_MPTCP as i32,
        mptcp_sys::MPTCP_INFO as i32,
        &mut empty,
    )
    .is_ok();
    let mut full = mptcp_sys::mptcp_full_info::default();
    let full_info = match sys::get_full_info(s.as_fd(), &mut full, &mut [], &mut []) {
        Ok(_) => true,
        Err(e) => !is_unsupported(&e),
    };
    Some(*FEATURES.get_or_init(|| Features {
        sol_mptcp,
        full_info,
    }))
}

pub(crate) fn kernel_has_sol_mptcp() -> Option<bool> {
    features().map(|f| f.sol_mptcp)
}

/// The MPTCP status of any socket, borrowed (`std`, `tokio`, `socket2`, raw `BorrowedFd`
/// ...): how it was created and whether its connection uses MPTCP.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = mptcp::listen("127.0.0.1:0")?; // loopback: no namespace needed
/// let stream = mptcp::connect(listener.local_addr()?)?;
/// # if !mptcp::is_mptcp(&stream)? { return Ok(()) } // this machine has no MPTCP
/// let st = mptcp::status(&stream)?;
/// assert!(st.created_as_mptcp && st.using_mptcp);
/// // A plain TCP client of the same MPTCP listener:
/// let tcp = std::net::TcpStream::connect(listener.local_addr()?)?;
/// assert!(!mptcp::status(&tcp)?.created_as_mptcp);
/// # Ok(()) }
/// ```
#[doc(alias = "TCP_IS_MPTCP")]
#[doc(alias = "SO_PROTOCOL")]
pub fn status(fd: impl AsFd) -> Result<Status> {
    let fd = fd.as_fd();
    // Linux 6.10+: one call answers for every TCP/MPTCP socket.
    let fast = sys::getsockopt_int(fd, libc::SOL_TCP, mptcp_sys::TCP_IS_MPTCP as i32);
    let protocol = match fast {
        Err(e) if e.raw_os_error() == Some(libc::ENOTSOCK) => {
            return Err(Error::NotMptcp(NotMptcp::NotASocket))
        }
        Err(e) if !is_unsupported(&e) => return Err(Error::os("getsockopt(TCP_IS_MPTCP)", e)),
        _ => stream_protocol(fd)?,
    };
    let created_as_mptcp = protocol == crate::IPPROTO_MPTCP;
    if let Ok(v) = fast {
        return Ok(Status {
            created_as_mptcp,
            using_mptcp: v != 0,
            detection: Detection::TcpIsMptcp,
        });
    }
    if !created_as_mptcp {
        return Ok(Status {
            created_as_mptcp,
            using_mptcp: false,
            detection: Detection::SoProtocol,
        });
    }
    // Linux 5.16+: SOL_MPTCP options fail on a socket that fell back. An empty buffer
    // makes this a probe that copies nothing.
    let mut empty = [0u8; 0];
    match sys::getsockopt_buf(
        fd,
        mptcp_sys::SOL_MPTCP as i32,
        mptcp_sys::MPTCP_INFO as i32,
        &mut empty,
    ) {
        Ok(_) => Ok(Status {
            created_as_mptcp,
            using_mptcp: true,
            detection: Detection::SolMptcp,
        }),
        Err(e) if is_unsupported(&e) => match kernel_has_sol_mptcp() {
            Some(true) => Ok(Status {
                created_as_mptcp,
                using_mptcp: false,
                detection: Detection::SolMptcp,
            }),
            _ => Ok(Status {
                created_as_mptcp,
                using_mptcp: true,
                detection: Detection::SoProtocol,
            }),
        },
        Err(e) => Err(Error::os("getsockopt(MPTCP_INFO)", e)),
    }
}

/// Whether the connection of a socket uses MPTCP (see [`status`] for the details and
/// what older kernels cannot tell). On Linux 6.10+ this is one system call.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = mptcp::listen("127.0.0.1:0")?; // loopback: no namespace needed
/// let stream = mptcp::connect(listener.local_addr()?)?;
/// # if !mptcp::is_mptcp(&stream)? { return Ok(()) } // this machine has no MPTCP
/// assert!(mptcp::is_mptcp(&stream)?);
/// let (accepted, _) = listener.accept()?;
/// assert!(mptcp::is_mptcp(&accepted)?, "the server side too");
/// # Ok(()) }
/// ```
#[doc(alias = "TCP_IS_MPTCP")]
pub fn is_mptcp(fd: impl AsFd) -> Result<bool> {
    let fd = fd.as_fd();
    match sys::getsockopt_int(fd, libc::SOL_TCP, mptcp_sys::TCP_IS_MPTCP as i32) {
        Ok(v) => Ok(v != 0),
        Err(_) => status(fd).map(|s| s.using_mptcp),
    }
}

/// Turns the errno of a failed `getsockopt(SOL_MPTCP, ...)` into the error it means.
pub(crate) fn classify(
    fd: BorrowedFd<'_>,
    e: io::Error,
    op: &'static str,
    feature: &'static str,
    since: Option<&'static str>,
) -> Error {
    if e.raw_os_error() == Some(libc::ENOTSOCK) {
        return Error::NotMptcp(NotMptcp::NotASocket);
    }
    if !is_unsupported(&e) {
        return Error::os(op, e);
    }
    match stream_protocol(fd) {
        Err(err) => err,
        Ok(p) if p != crate::IPPROTO_MPTCP => Error::NotMptcp(NotMptcp::PlainTcp),
        Ok(_) => match kernel_has_sol_mptcp() {
            Some(true) => Error::FellBack,
            _ => Error::Unsupported { feature, since },
        },
    }
}

/// For a call that succeeded but found no connection (token 0): listener or unconnected.
pub(crate) fn no_connection(fd: BorrowedFd<'_>) -> Error {
    match SockRef::from(&fd).is_listener() {
        Ok(true) => Error::NoConnection(NoConnection::Listener),
        _ => Error::NoConnection(NoConnection::Unconnected),
    }
}
