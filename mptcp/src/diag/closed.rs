//! The kernel's broadcast of destroyed TCP sockets (sock_diag's destroy groups): each
//! TCP socket of the namespace, MPTCP subflows included, with its last `tcp_info`, at
//! the moment the kernel frees it. What a listing cannot give: the counters of a
//! subflow that closed between two listings.

use super::reply;
use super::ClosedTcp;
use crate::error::{Error, Result};
use crate::netlink::recv;
use crate::wire::netlink::{messages, RECV_BUF};
use mptcp_sys as sys;
use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket};
use std::collections::VecDeque;

/// `SKNLGRP_INET_TCP_DESTROY` and `SKNLGRP_INET6_TCP_DESTROY` of `linux/sock_diag.h`.
const GROUPS: [u32; 2] = [1, 3];

/// What a [`ClosedTcpSockets`] subscription yields.
// `Lost` is rare and items are moved once, out of the queue: no box per close.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClosedItem {
    /// A TCP socket the kernel destroyed.
    Closed(ClosedTcp),
    /// The socket buffer overflowed (`ENOBUFS`): some were lost; the stream goes on.
    Lost,
}

/// A subscription to the TCP sockets the kernel destroys in the calling thread's
/// network namespace (IPv4 and IPv6), blocking, as an iterator. Any user may join the
/// destroy groups (seen on Linux 6.18, where an unprivileged process receives the
/// broadcast); a kernel that refuses gives [`Error::PermissionDenied`].
///
/// ```no_run
/// use mptcp::diag::{ClosedItem, ClosedTcpSockets};
/// for item in ClosedTcpSockets::subscribe()? {
///     if let ClosedItem::Closed(c) = item? {
///         let acked = c.tcp_info.as_ref().map(|t| t.bytes_acked());
///         println!("{} -> {} closed, {acked:?} bytes acknowledged", c.local, c.remote);
///     }
/// }
/// # Ok::<(), mptcp::Error>(())
/// ```
#[derive(Debug)]
pub struct ClosedTcpSockets {
    sock: Socket,
    queue: VecDeque<Result<ClosedItem>>,
    buf: Vec<u8>,
}

impl ClosedTcpSockets {
    /// Joins the destroy groups of IPv4 and IPv6 TCP sockets.
    #[doc(alias = "SKNLGRP_INET_TCP_DESTROY")]
    #[doc(alias = "SKNLGRP_INET6_TCP_DESTROY")]
    pub fn subscribe() -> Result<ClosedTcpSockets> {
        let mut sock = Socket::new(NETLINK_SOCK_DIAG)
            .map_err(|e| Error::os("socket(NETLINK_SOCK_DIAG)", e))?;
        sock.bind_auto()
            .map_err(|e| Error::os("bind netlink socket", e))?;
        for g in GROUPS {
            sock.add_membership(g).map_err(|e| match e.raw_os_error() {
                Some(errno @ libc::EPERM) => Error::PermissionDenied {
                    op: "subscribe to destroyed TCP sockets",
                    message: None,
                    errno,
                },
                _ => Error::os("subscribe to destroyed TCP sockets", e),
            })?;
        }
        Ok(ClosedTcpSockets {
            sock,
            queue: VecDeque::new(),
            buf: Vec::with_capacity(RECV_BUF),
        })
    }

    /// Sets the socket's receive buffer (`SO_RCVBUFFORCE` where allowed, else
    /// `SO_RCVBUF`), so that a burst of closes is not lost, and returns the size the
    /// kernel granted.
    pub fn set_receive_buffer(&self, bytes: usize) -> Result<usize> {
        crate::netlink::set_receive_buffer(std::os::fd::AsFd::as_fd(&self.sock), bytes)
    }

    fn fill(&mut self) -> Result<()> {
        match recv(&self.sock, &mut self.buf) {
            Ok(_) => {
                for m in messages(&self.buf) {
                    let item = m
                        .map_err(|e| Error::decode("sock_diag broadcast", e.to_string()))
                        .and_then(|m| {
                            if u32::from(m.message_type()) == sys::SOCK_DIAG_BY_FAMILY {
                                reply::closed_tcp(m.payload()).map(Some)
                            } else {
                                Ok(None)
                            }
                        });
                    match item {
                        Ok(Some(c)) => self.queue.push_back(Ok(ClosedItem::Closed(c))),
                        Ok(None) => {}
                        Err(e) => self.queue.push_back(Err(e)),
                    }
                }
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                self.queue.push_back(Ok(ClosedItem::Lost));
                Ok(())
            }
            Err(e) => Err(Error::os("receive destroyed TCP sockets", e)),
        }
    }
}

impl Iterator for ClosedTcpSockets {
    type Item = Result<ClosedItem>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(item);
            }
            if let Err(e) = self.fill() {
                return Some(Err(e));
            }
        }
    }
}
