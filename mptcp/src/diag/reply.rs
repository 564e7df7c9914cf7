//! Decoding sock_diag replies: `inet_diag_msg`, then attributes (`INET_DIAG_INFO` with
//! `mptcp_info` or `tcp_info`, `INET_DIAG_ULP_INFO` with a subflow's MPTCP attributes).

use super::{ClosedTcp, DiagConnection, DiagSubflow, SocketState, SubflowFlags};
use crate::error::{Error, Result};
use crate::token::Token;
use crate::wire::info::MptcpInfo;
use crate::wire::netlink::nlas;
use crate::wire::subflow::TcpInfo;
use mptcp_sys as sys;
use std::mem::{offset_of, size_of};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

type Msg = sys::inet_diag_msg;
type Id = sys::inet_diag_sockid;

fn bad(detail: impl ToString) -> Error {
    Error::decode("sock_diag reply", detail.to_string())
}

/// The fixed part of a reply: `struct inet_diag_msg`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head {
    pub state: SocketState,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub uid: u32,
    pub inode: u64,
    pub cookie: u64,
}

fn u32_at(b: &[u8], at: usize) -> Result<u32> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_ne_bytes)
        .ok_or_else(|| bad("inet_diag_msg too short"))
}

fn addr(b: &[u8], family: u8, addr_at: usize, port_at: usize, ifindex: u32) -> Result<SocketAddr> {
    let port = b
        .get(port_at..port_at + 2)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
        .ok_or_else(|| bad("inet_diag_msg too short"))?;
    let raw: [u8; 16] = b
        .get(addr_at..addr_at + 16)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| bad("inet_diag_msg too short"))?;
    Ok(match i32::from(family) {
        libc::AF_INET => SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3])),
            port,
        ),
        libc::AF_INET6 => {
            let ip = Ipv6Addr::from(raw);
            // Link-local addresses carry the interface as their scope, as std does.
            let scope = if ip.segments()[0] & 0xffc0 == 0xfe80 {
                ifindex
            } else {
                0
            };
            SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope))
        }
        f => return Err(bad(format!("address family {f}"))),
    })
}

/// Splits one reply into its `inet_diag_msg` and its attributes.
pub(crate) fn head(payload: &[u8]) -> Result<(Head, &[u8])> {
    let len = size_of::<Msg>();
    if payload.len() < len {
        return Err(bad(format!(
            "{} bytes, fewer than inet_diag_msg",
            payload.len()
        )));
    }
    let id = offset_of!(Msg, id);
    let family = payload[offset_of!(Msg, idiag_family)];
    let ifindex = u32_at(payload, id + offset_of!(Id, idiag_if))?;
    let cookie_at = id + offset_of!(Id, idiag_cookie);
    let cookie =
        u64::from(u32_at(payload, cookie_at)?) | (u64::from(u32_at(payload, cookie_at + 4)?) << 32);
    let h = Head {
        state: SocketState::from_raw(payload[offset_of!(Msg, idiag_state)]),
        local: addr(
            payload,
            family,
            id + offset_of!(Id, idiag_src),
            id + offset_of!(Id, idiag_sport),
            ifindex,
        )?,
        remote: addr(
            payload,
            family,
            id + offset_of!(Id, idiag_dst),
            id + offset_of!(Id, idiag_dport),
            ifindex,
        )?,
        uid: u32_at(payload, offset_of!(Msg, idiag_uid))?,
        inode: u64::from(u32_at(payload, offset_of!(Msg, idiag_inode))?),
        cookie,
    };
    // The attributes start at the aligned end of the struct.
    Ok((h, payload.get(len.next_multiple_of(4)..).unwrap_or(&[])))
}

/// One MPTCP socket (connection or listener) of an `mptcp_diag` reply.
pub(crate) fn connection(payload: &[u8]) -> Result<DiagConnection> {
    let (h, attrs) = head(payload)?;
    let mut info = None;
    let mut token = None;
    let mut cgroup_id = None;
    for a in nlas(attrs) {
        let a = a.map_err(bad)?;
        if a.id() == sys::INET_DIAG_CGROUP_ID {
            cgroup_id = a
                .value
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_ne_bytes);
        }
        if a.id() == sys::INET_DIAG_INFO {
            // Kernels before 5.16 send a shorter mptcp_info than the getsockopt's base:
            // then only the token (bytes 12..16) is taken from it.
            const AT: usize = offset_of!(sys::mptcp_info, mptcpi_token);
            token = a
                .value
                .get(AT..AT + 4)
                .and_then(|b| b.try_into().ok())
                .map(|b| Token::new(u32::from_ne_bytes(b)));
            if a.value.len() >= MptcpInfo::BASE_LEN {
                info = Some(MptcpInfo::decode(a.value)?);
            }
        }
    }
    Ok(DiagConnection {
        token: token.filter(|t| t.get() != 0),
        state: h.state,
        local: h.local,
        remote: h.remote,
        uid: h.uid,
        inode: h.inode,
        cookie: h.cookie,
        cgroup_id,
        info,
        subflows: Vec::new(),
    })
}

/// A TCP socket of a `tcp_diag` reply, if it is an MPTCP subflow (its ULP is "mptcp").
/// Without `CAP_NET_ADMIN` the kernel sends no ULP information, so no subflow is seen.
pub(crate) fn subflow(payload: &[u8]) -> Result<Option<DiagSubflow>> {
    let (h, attrs) = head(payload)?;
    let mut tcp_info = None;
    let mut mptcp: Option<&[u8]> = None;
    for a in nlas(attrs) {
        let a = a.map_err(bad)?;
        match a.id() {
            sys::INET_DIAG_INFO => tcp_info = Some(a.value),
            sys::INET_DIAG_ULP_INFO => {
                let mut name_is_mptcp = false;
                let mut nested = None;
                for u in nlas(a.value) {
                    let u = u.map_err(bad)?;
                    match u.id() {
                        sys::INET_ULP_INFO_NAME => {
                            name_is_mptcp = u.value.split(|b| *b == 0).next() == Some(b"mptcp")
                        }
                        sys::INET_ULP_INFO_MPTCP => nested = Some(u.value),
                        _ => {}
                    }
                }
                if name_is_mptcp {
                    mptcp = nested.or(Some(&[]));
                }
            }
            _ => {}
        }
    }
    let Some(m) = mptcp else { return Ok(None) };
    let mut sf = DiagSubflow {
        state: h.state,
        local: h.local,
        remote: h.remote,
        tcp_info: match tcp_info {
            // tcp_diag sends the kernel's whole tcp_info; older kernels a shorter one.
            Some(t) if t.len() >= TcpInfo::BASE_LEN => Some(TcpInfo::decode(t)?),
            _ => None,
        },
        // The MPTCP attributes below fill the rest.
        ..DiagSubflow::default()
    };
    for a in nlas(m) {
        let a = a.map_err(bad)?;
        match a.id() {
            sys::MPTCP_SUBFLOW_ATTR_TOKEN_LOC => {
                sf.token = Some(Token::new(a.u32().map_err(bad)?)).filter(|t| t.get() != 0)
            }
            sys::MPTCP_SUBFLOW_ATTR_TOKEN_REM => {
                sf.remote_token = Some(Token::new(a.u32().map_err(bad)?)).filter(|t| t.get() != 0)
            }
            sys::MPTCP_SUBFLOW_ATTR_ID_LOC => sf.local_id = Some(a.u8().map_err(bad)?),
            sys::MPTCP_SUBFLOW_ATTR_ID_REM => sf.remote_id = Some(a.u8().map_err(bad)?),
            sys::MPTCP_SUBFLOW_ATTR_FLAGS => {
                sf.flags = Some(SubflowFlags::from_bits_retain(a.u32().map_err(bad)?))
            }
            sys::MPTCP_SUBFLOW_ATTR_MAP_SEQ => sf.map_seq = Some(a.u64().map_err(bad)?),
            sys::MPTCP_SUBFLOW_ATTR_MAP_SFSEQ => sf.map_subflow_seq = Some(a.u32().map_err(bad)?),
            sys::MPTCP_SUBFLOW_ATTR_MAP_DATALEN => sf.map_data_len = Some(a.u16().map_err(bad)?),
            sys::MPTCP_SUBFLOW_ATTR_RELWRITE_SEQ => {
                sf.relative_write_seq = Some(a.u32().map_err(bad)?)
            }
            sys::MPTCP_SUBFLOW_ATTR_SSN_OFFSET => sf.ssn_offset = Some(a.u32().map_err(bad)?),
            _ => {}
        }
    }
    Ok(Some(sf))
}

/// A TCP socket of a destroy broadcast: its addresses, cookie and last `tcp_info` (the
/// kernel sends `INET_DIAG_PROTOCOL` and `INET_DIAG_INFO`, no ULP information).
pub(crate) fn closed_tcp(payload: &[u8]) -> Result<ClosedTcp> {
    let (h, attrs) = head(payload)?;
    let mut tcp_info = None;
    for a in nlas(attrs) {
        let a = a.map_err(bad)?;
        if a.id() == sys::INET_DIAG_INFO && a.value.len() >= TcpInfo::BASE_LEN {
            tcp_info = Some(TcpInfo::decode(a.value)?);
        }
    }
    Ok(ClosedTcp {
        local: h.local,
        remote: h.remote,
        cookie: h.cookie,
        tcp_info,
    })
}
