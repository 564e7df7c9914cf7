//! Netlink framing shared by the path manager (Generic Netlink) and the socket
//! diagnostics (`NETLINK_SOCK_DIAG`): attributes built as netlink-packet-core's
//! [`DefaultNla`] and read in place ([`nlas`]), and the one framing path every received
//! datagram goes through ([`messages`]). Bytes only: receiving them is
//! `crate::netlink::recv`.

// Each feature uses part of this module; only the two together use all of it.
#![cfg_attr(not(all(feature = "pm", feature = "diag")), allow(dead_code))]

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, NLA_F_NESTED, NLA_HEADER_SIZE, NLA_TYPE_MASK,
};

/// The receive buffer: the kernel never builds a dump datagram larger than 32 KiB
/// (`netlink_dump` caps its allocation there), and replies and events are far smaller.
/// A larger datagram is reported, never cut silently (`crate::netlink::recv`).
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
///
/// The same walk and checks as netlink-packet-core's `NlasIterator` (a header of 4
/// bytes, a length that covers it and fits, values padded to 4 bytes; a property test
/// compares the two), reading each header once in place: the crate's iterator reads
/// every header field through out-of-line parsers, several times per attribute. With
/// [`messages`] doing the same for message headers, the event-decode benchmark's ratio
/// to its floor went from 1.28 to 1.13-1.18 (`cargo xtask bench`, x86_64).
pub(crate) fn nlas(buf: &[u8]) -> impl Iterator<Item = std::result::Result<Nla<'_>, DecodeError>> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (len, kind) = match *rest {
            [l0, l1, k0, k1, ..] => (
                usize::from(u16::from_ne_bytes([l0, l1])),
                u16::from_ne_bytes([k0, k1]),
            ),
            _ => {
                let have = rest.len();
                rest = &[];
                return Some(Err(DecodeError::nla_buffer_too_small(
                    have,
                    NLA_HEADER_SIZE,
                )));
            }
        };
        if len < NLA_HEADER_SIZE || len > rest.len() {
            let have = rest.len();
            rest = &[];
            return Some(Err(if len < NLA_HEADER_SIZE {
                DecodeError::nla_invalid_length(have, len)
            } else {
                DecodeError::nla_length_mismatch(have, len)
            }));
        }
        let value = &rest[NLA_HEADER_SIZE..len];
        // Past the value's padding (the last attribute's padding may be missing).
        rest = rest.get(len.next_multiple_of(4)..).unwrap_or(&[]);
        Some(Ok(Nla {
            kind: kind & NLA_TYPE_MASK,
            value,
        }))
    })
}

impl<'a> Nla<'a> {
    pub fn id(&self) -> u32 {
        u32::from(self.kind)
    }
    /// The value as exactly `N` bytes (a number's size).
    #[inline]
    fn exactly<const N: usize>(&self) -> std::result::Result<[u8; N], DecodeError> {
        self.value
            .try_into()
            .map_err(|_| DecodeError::invalid_number(N, self.value.len()))
    }
    pub fn u8(&self) -> std::result::Result<u8, DecodeError> {
        self.exactly().map(u8::from_ne_bytes)
    }
    pub fn u16(&self) -> std::result::Result<u16, DecodeError> {
        self.exactly().map(u16::from_ne_bytes)
    }
    pub fn u16_be(&self) -> std::result::Result<u16, DecodeError> {
        self.exactly().map(u16::from_be_bytes)
    }
    pub fn u32(&self) -> std::result::Result<u32, DecodeError> {
        self.exactly().map(u32::from_ne_bytes)
    }
    #[cfg(feature = "diag")]
    pub fn u64(&self) -> std::result::Result<u64, DecodeError> {
        self.exactly().map(u64::from_ne_bytes)
    }
    pub fn i32(&self) -> std::result::Result<i32, DecodeError> {
        self.exactly().map(i32::from_ne_bytes)
    }
    pub fn ipv4(&self) -> std::result::Result<std::net::IpAddr, DecodeError> {
        let b: [u8; 4] = self
            .value
            .try_into()
            .map_err(|_| DecodeError::invalid_ip_address(self.value.len()))?;
        Ok(b.into())
    }
    pub fn ipv6(&self) -> std::result::Result<std::net::IpAddr, DecodeError> {
        let b: [u8; 16] = self
            .value
            .try_into()
            .map_err(|_| DecodeError::invalid_ip_address(self.value.len()))?;
        Ok(b.into())
    }
}

/// One received netlink message, its header read once: what the framing path hands on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Msg<'a> {
    kind: u16,
    flags: u16,
    seq: u32,
    payload: &'a [u8],
}

impl<'a> Msg<'a> {
    /// `nlmsg_type`.
    pub fn message_type(&self) -> u16 {
        self.kind
    }
    /// `nlmsg_flags`.
    pub fn flags(&self) -> u16 {
        self.flags
    }
    /// `nlmsg_seq`.
    pub fn sequence_number(&self) -> u32 {
        self.seq
    }
    /// What follows the header, up to the message's length.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }
}

/// The size of `struct nlmsghdr`.
const NLMSG_HDRLEN: usize = 16;

/// The netlink messages of one datagram, in order: the single framing path of requests'
/// replies, events and diagnostics. A length that does not fit is an error, after which
/// the iteration stops. (The same checks as netlink-packet-core's `NetlinkBuffer::
/// new_checked`, with the header read once in place, as [`nlas`] does.)
pub(crate) fn messages(
    data: &[u8],
) -> impl Iterator<Item = std::result::Result<Msg<'_>, DecodeError>> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let header = rest.get(..NLMSG_HDRLEN).map(|h| {
            let u16_at = |i: usize| u16::from_ne_bytes([h[i], h[i + 1]]);
            let u32_at = |i: usize| u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
            (u32_at(0) as usize, u16_at(4), u16_at(6), u32_at(8))
        });
        let have = rest.len();
        match header {
            Some((len, kind, flags, seq)) if (NLMSG_HDRLEN..=have).contains(&len) => {
                let payload = &rest[NLMSG_HDRLEN..len];
                rest = rest.get(len.next_multiple_of(4)..).unwrap_or(&[]);
                Some(Ok(Msg {
                    kind,
                    flags,
                    seq,
                    payload,
                }))
            }
            other => {
                rest = &[];
                Some(Err(DecodeError::from(match other {
                    None => format!(
                        "a netlink message needs a {NLMSG_HDRLEN}-byte header, {have} bytes left"
                    ),
                    Some((len, ..)) => {
                        format!("a netlink message of length {len} where {have} bytes are left")
                    }
                })))
            }
        }
    })
}
