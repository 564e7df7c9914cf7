//! One `recv` per netlink datagram, into a reused buffer (the framing is
//! `wire::netlink`).

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
