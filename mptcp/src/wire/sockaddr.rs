//! The crate's one `struct sockaddr_in`/`sockaddr_in6` encoder and decoder (subflow
//! addresses of `MPTCP_FULL_INFO` and `MPTCP_SUBFLOW_ADDRS`, the out-of-tree API's
//! tuples): bytes in, addresses out, no descriptor and no `unsafe`. The family is in
//! host order, the port and address in network order, `sin6_flowinfo` and
//! `sin6_scope_id` passed through as std passes them.

use std::mem::size_of;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// `sizeof(struct sockaddr_in)`.
pub(crate) const SIN_LEN: usize = size_of::<libc::sockaddr_in>();
/// `sizeof(struct sockaddr_in6)`.
pub(crate) const SIN6_LEN: usize = size_of::<libc::sockaddr_in6>();

/// Decodes a `struct sockaddr_in`/`sockaddr_in6` stored at the start of `b`.
#[inline(always)]
pub(crate) fn decode(b: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes([*b.first()?, *b.get(1)?]);
    let port = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
    match i32::from(family) {
        libc::AF_INET => {
            let ip: [u8; 4] = b.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
        }
        libc::AF_INET6 => {
            // Passed through unconverted, as std does (SocketAddrV6::flowinfo is the
            // raw `sin6_flowinfo`), so that addresses equal std's for the same socket.
            let flow = u32::from_ne_bytes(b.get(4..8)?.try_into().ok()?);
            let ip: [u8; 16] = b.get(8..24)?.try_into().ok()?;
            let scope = u32::from_ne_bytes(b.get(24..28)?.try_into().ok()?);
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                flow,
                scope,
            )))
        }
        _ => None,
    }
}

/// Encodes a `struct sockaddr_in`/`sockaddr_in6` (port and address in network order).
pub(crate) fn encode(a: &SocketAddr) -> Vec<u8> {
    match a {
        SocketAddr::V4(v4) => {
            let mut b = vec![0u8; SIN_LEN];
            b[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            b[2..4].copy_from_slice(&v4.port().to_be_bytes());
            b[4..8].copy_from_slice(&v4.ip().octets());
            b
        }
        SocketAddr::V6(v6) => {
            let mut b = vec![0u8; SIN6_LEN];
            b[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            b[2..4].copy_from_slice(&v6.port().to_be_bytes());
            // Unconverted, as std does.
            b[4..8].copy_from_slice(&v6.flowinfo().to_ne_bytes());
            b[8..24].copy_from_slice(&v6.ip().octets());
            b[24..28].copy_from_slice(&v6.scope_id().to_ne_bytes());
            b
        }
    }
}
