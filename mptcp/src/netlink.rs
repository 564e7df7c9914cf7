//! One `recv` per netlink datagram, into a reused buffer (the framing is
//! `wire::netlink`).

use crate::error::{Error, Result};
use crate::wire::netlink::RECV_BUF;
use netlink_sys::Socket;
use std::io;

/// Receives one datagram into `buf` (cleared first; its capacity is kept between calls)
/// with a single `recv`. A datagram larger than the buffer is an error (`MSG_TRUNC` tells
/// its real length), never a silently cut one.
pub(crate) fn recv(sock: &Socket, buf: &mut Vec<u8>) -> io::Result<usize> {
    buf.clear();
    if buf.capacity() < RECV_BUF {
        buf.reserve(RECV_BUF);
    }
    let cap = buf.capacity();
    let n = sock.recv(buf, libc::MSG_TRUNC)?;
    if n > cap {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a netlink datagram of {n} bytes does not fit the {cap}-byte buffer"),
        ));
    }
    Ok(n)
}

/// `SO_RCVBUFFORCE` where allowed, else `SO_RCVBUF`, on a netlink subscription's
/// socket; the size the kernel granted.
pub(crate) fn set_receive_buffer(fd: std::os::fd::BorrowedFd<'_>, bytes: usize) -> Result<usize> {
    let v = i32::try_from(bytes).map_err(|_| {
        Error::invalid(
            "set the receive buffer",
            format!("{bytes} bytes is more than the kernel takes"),
        )
    })?;
    match crate::sys::set_so_rcvbuf(fd, v, true) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => crate::sys::set_so_rcvbuf(fd, v, false)
            .map_err(|e| Error::os("setsockopt(SO_RCVBUF)", e))?,
        Err(e) => return Err(Error::os("setsockopt(SO_RCVBUFFORCE)", e)),
    }
    receive_buffer(fd)
}

/// The socket's receive buffer size (`getsockopt(SO_RCVBUF)`).
pub(crate) fn receive_buffer(fd: std::os::fd::BorrowedFd<'_>) -> Result<usize> {
    crate::sys::so_rcvbuf(fd)
        .map(|v| usize::try_from(v).unwrap_or(0))
        .map_err(|e| Error::os("getsockopt(SO_RCVBUF)", e))
}
