//! Is this socket MPTCP, and is its connection really using MPTCP?

use crate::error::{Error, NotMptcp, Result, Unavailable};
use crate::kernel::{is_unsupported, kernel_has_sol_mptcp, stream_protocol};
use crate::proto::IPPROTO_MPTCP;
use crate::sys;
use std::os::fd::AsFd;

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
    /// Why a socket builder of this process made the socket plain TCP under
    /// [`Mode::Prefer`](crate::Mode::Prefer), when one did: MPTCP refused an option
    /// ([`Unavailable::OptionRefused`]), or MPTCP sockets could not be created here.
    /// `None` for sockets made elsewhere and for MPTCP sockets.
    pub fallback: Option<Unavailable>,
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
    // Linux 6.10+: TCP_IS_MPTCP answers for every TCP/MPTCP socket, and answering at
    // all proves a TCP-family stream socket: only SO_PROTOCOL is left to ask.
    match sys::tcp_is_mptcp(fd) {
        Ok(using_mptcp) => {
            let protocol =
                sys::so_protocol(fd).map_err(|e| Error::os("getsockopt(SO_PROTOCOL)", e))?;
            let created_as_mptcp = protocol == IPPROTO_MPTCP;
            return Ok(Status {
                created_as_mptcp,
                using_mptcp,
                detection: Detection::TcpIsMptcp,
                fallback: fallback_of(fd, created_as_mptcp),
            });
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTSOCK) => {
            return Err(Error::NotMptcp(NotMptcp::NotASocket))
        }
        Err(e) if !is_unsupported(&e) => return Err(Error::os("getsockopt(TCP_IS_MPTCP)", e)),
        Err(_) => {}
    }
    let created_as_mptcp = stream_protocol(fd)? == IPPROTO_MPTCP;
    if !created_as_mptcp {
        return Ok(Status {
            created_as_mptcp,
            using_mptcp: false,
            detection: Detection::SoProtocol,
            fallback: fallback_of(fd, created_as_mptcp),
        });
    }
    // Linux 5.16+: SOL_MPTCP options fail on a socket that fell back. An empty buffer
    // makes this a probe that copies nothing.
    match sys::mptcp_info_prefix(fd, &mut []) {
        Ok(_) => Ok(Status {
            created_as_mptcp,
            using_mptcp: true,
            detection: Detection::SolMptcp,
            fallback: None,
        }),
        Err(e) if is_unsupported(&e) => match kernel_has_sol_mptcp() {
            Some(true) => Ok(Status {
                created_as_mptcp,
                using_mptcp: false,
                detection: Detection::SolMptcp,
                fallback: None,
            }),
            _ => Ok(Status {
                created_as_mptcp,
                using_mptcp: true,
                detection: Detection::SoProtocol,
                fallback: None,
            }),
        },
        Err(e) => Err(Error::os("getsockopt(MPTCP_INFO)", e)),
    }
}

/// Why this process made a plain TCP socket plain (nothing to look up for MPTCP ones).
fn fallback_of(fd: std::os::fd::BorrowedFd<'_>, created_as_mptcp: bool) -> Option<Unavailable> {
    if created_as_mptcp {
        None
    } else {
        crate::fallback::why_plain(fd)
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
    match sys::tcp_is_mptcp(fd) {
        Ok(v) => Ok(v),
        Err(_) => status(fd).map(|s| s.using_mptcp),
    }
}
