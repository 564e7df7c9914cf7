//! What the running kernel offers, and what its answers mean: the feature probes and
//! the classification of `getsockopt` errors. The public calls (`status`, `info`,
//! `subflows`) use this layer, and it uses `sys`: each call walks down once.

use crate::error::{Error, NoConnection, NotMptcp, Result};
use crate::proto::{mptcp_protocol, IPPROTO_MPTCP};
use crate::sys;
use socket2::{Domain, SockRef, Type};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::OnceLock;

pub(crate) fn is_unsupported(e: &io::Error) -> bool {
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
    sys::so_protocol(fd).map_err(|e| Error::os("getsockopt(SO_PROTOCOL)", e))
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
    let s = socket2::Socket::new(Domain::IPV4, Type::STREAM, Some(mptcp_protocol())).ok()?;
    let sol_mptcp = sys::mptcp_info_prefix(s.as_fd(), &mut []).is_ok();
    let full_info = match sys::get_full_info(s.as_fd(), 0, &mut [], &mut []) {
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
        Ok(p) if p != IPPROTO_MPTCP => Error::NotMptcp(NotMptcp::PlainTcp),
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
