//! Netlink plumbing shared by the path manager (Generic Netlink) and the socket
//! diagnostics (`NETLINK_SOCK_DIAG`): attributes built as netlink-packet-core's
//! [`DefaultNla`] and read in place ([`nlas`]), the one framing path every received
//! datagram goes through ([`messages`]), and one `recv` per datagram ([`recv`]).

// Each feature uses part of this module; only the two together use all of it.
#![cfg_attr(not(all(feature = "pm", feature = "diag")), allow(dead_code))]

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, NetlinkBuffer, NlasIterator, NLA_F_NESTED,
};
use netlink_sys::Socket;
use std::io;

/// The receive buffer: the kernel never builds a dump datagram larger than 32 KiB
/// (`netlink_dump` caps its allocation there), and replies and events are far smaller.
/// A larger datagram is reported, never cut silently ([`recv`]).
pub(crate) const RECV_BUF: usize = 32 * 1024;

pub(crate) fn nla_u8(kind: u32, v: u8) -> DefaultNla {
    DefaultNla::new(kind as u16, vec![v])
}
pub(crate) fn nla_u16(kind: u32, v: u16) -> DefaultNla {
    DefaultNla::new(kind as u16, v.to_ne_bytes().to_vec())
}
pub(crate) fn nla_u32(kind: u32, v: u32) -> DefaultNla {
    DefaultNla::new(kind as u16, v.to_ne_bytes().to_vec())
}
pub(crate) fn nla_i32(kind: u32, v: i32) -> DefaultNla {
    DefaultNla::new(kind as u16, v.to_ne_bytes().to_vec())
}
pub(crate) fn nla_bytes(kind: u32, v: &[u8]) -> DefaultNla {
    DefaultNla::new(kind as u16, v.to_vec())
}
pub(crate) fn nla_nested(kind: u32, children: &[DefaultNla]) -> DefaultNla {
    let mut value = vec![0u8; children.buffer_len()];
    children.emit(&mut value);
    DefaultNla::new(kind as u16 | NLA_F_NESTED, value)
}

/// One received attribute: its type (without the nested / byte-order flags) and a
/// borrowed value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Nla<'a> {
    pub kind: u16,
    pub value: &'a [u8],
}

/// The attributes in `buf`, borrowed; a malformed one ends the iteration with an error.
pub(crate) fn nlas(buf: &[u8]) -> impl Iterator<Item = std::result::Result<Nla<'_>, DecodeError>> {
    NlasIterator::new(buf).map(|nla| {
        let nla = nla?;
        let kind = nla.kind();
        let len = usize::from(nla.length());
        let whole: &[u8] = nla.into_inner();
        Ok(Nla {
            kind,
            value: &whole[4..len],
        })
    })
}

impl<'a> Nla<'a> {
    pub fn id(&self) -> u32 {
        u32::from(self.kind)
    }
    pub fn u8(&self) -> std::result::Result<u8, DecodeError> {
        netlink_packet_core::parse_u8(self.value)
    }
    pub fn u16(&self) -> std::result::Result<u16, DecodeError> {
        netlink_packet_core::parse_u16(self.value)
    }
    pub fn u16_be(&self) -> std::result::Result<u16, DecodeError> {
        netlink_packet_core::parse_u16_be(self.value)
    }
    pub fn u32(&self) -> std::result::Result<u32, DecodeError> {
        netlink_packet_core::parse_u32(self.value)
    }
    #[cfg(feature = "diag")]
    pub fn u64(&self) -> std::result::Result<u64, DecodeError> {
        netlink_packet_core::parse_u64(self.value)
    }
    pub fn i32(&self) -> std::result::Result<i32, DecodeError> {
        netlink_packet_core::parse_i32(self.value)
    }
    pub fn ipv4(&self) -> std::result::Result<std::net::IpAddr, DecodeError> {
        let b: [u8; 4] = self
            .value
            .try_into()
            .map_err(|_| DecodeError::invalid_ip_address(self.value.len()))?;
        Ok(b.into())
    }
    pub fn ipv6(&self) -> std::result::Result<std::net::IpAddr, DecodeError> {
        Ok(netlink_packet_core::parse_ipv6(self.value)?.into())
    }
}

/// The netlink messages of one datagram, in order: the single framing path of requests'
/// replies and of events. A length that does not fit is an error, after which the
/// iteration stops.
pub(crate) fn messages(
    data: &[u8],
) -> impl Iterator<Item = std::result::Result<NetlinkBuffer<&[u8]>, DecodeError>> {
    let mut off = 0;
    std::iter::from_fn(move || {
        let part = data.get(off..).filter(|p| !p.is_empty())?;
        match NetlinkBuffer::new_checked(part) {
            Ok(m) => {
                let len = m.length() as usize;
                off = off.saturating_add((len + 3) & !3);
                Some(Ok(NetlinkBuffer::new(&part[..len])))
            }
            Err(e) => {
                off = data.len();
                Some(Err(e))
            }
        }
    })
}

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
