//! The sock_diag requests: `inet_diag_req_v2` built field by field, the
//! `INET_DIAG_REQ_PROTOCOL` attribute for MPTCP (262 does not fit the request's 8-bit
//! protocol field), and the kernel's filter bytecode for ports and addresses.

use super::Filter;
use crate::wire::netlink::nla_bytes;
use mptcp_sys as sys;
use netlink_packet_core::{
    DefaultNla, Emitable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable,
    NLM_F_DUMP, NLM_F_REQUEST,
};
use std::mem::{offset_of, size_of};
use std::net::IpAddr;

/// Which sockets a dump asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    /// MPTCP sockets (connections and listeners): `mptcp_diag`.
    Mptcp,
    /// TCP sockets, among them the subflows (with their ULP info).
    Tcp,
}

/// One sock_diag request: `inet_diag_req_v2` and its attributes.
#[derive(Debug, Clone)]
pub(crate) struct DiagRequest {
    body: [u8; size_of::<sys::inet_diag_req_v2>()],
    nlas: Vec<DefaultNla>,
    dump: bool,
}

type Req = sys::inet_diag_req_v2;
type Id = sys::inet_diag_sockid;

impl DiagRequest {
    /// A dump of `proto` sockets of one address family, with the filter's states, and
    /// its ports and addresses as kernel bytecode.
    pub fn dump(proto: Proto, family: u8, filter: &Filter) -> DiagRequest {
        let mut r = DiagRequest::new(proto, family);
        r.put(offset_of!(Req, idiag_states), &filter.states.to_ne_bytes());
        let bc = bytecode(filter, family);
        if !bc.is_empty() {
            r.nlas.push(nla_bytes(sys::INET_DIAG_REQ_BYTECODE, &bc));
        }
        r
    }

    /// The MPTCP connection with this token (`mptcp_diag`'s dump-one request looks the
    /// token up in the cookie's first word).
    pub fn by_token(token: u32) -> DiagRequest {
        let mut r = DiagRequest::new(Proto::Mptcp, libc::AF_INET as u8);
        r.dump = false;
        r.put(offset_of!(Req, idiag_states), &u32::MAX.to_ne_bytes());
        let cookie = offset_of!(Req, id) + offset_of!(Id, idiag_cookie);
        r.put(cookie, &token.to_ne_bytes());
        r
    }

    /// A dump that matches no socket (an empty state mask): it succeeds exactly when the
    /// kernel can list MPTCP sockets at all.
    pub fn probe() -> DiagRequest {
        DiagRequest::new(Proto::Mptcp, libc::AF_INET as u8)
    }

    /// A TCP dump that matches no socket but carries `INET_DIAG_REQ_PROTOCOL` = MPTCP:
    /// a kernel that reads the attribute (5.9+) looks for the MPTCP handler and fails
    /// without it; an older one ignores it and answers the TCP dump.
    pub fn protocol_probe() -> DiagRequest {
        let mut r = DiagRequest::new(Proto::Tcp, libc::AF_INET as u8);
        r.nlas.push(nla_bytes(
            sys::INET_DIAG_REQ_PROTOCOL,
            &(crate::proto::IPPROTO_MPTCP as u32).to_ne_bytes(),
        ));
        r
    }

    fn new(proto: Proto, family: u8) -> DiagRequest {
        let mut r = DiagRequest {
            body: [0; size_of::<Req>()],
            nlas: Vec::new(),
            dump: true,
        };
        r.put(offset_of!(Req, sdiag_family), &[family]);
        // Ask for the protocol's info (mptcp_info or tcp_info) in INET_DIAG_INFO.
        let ext = 1u8 << (sys::INET_DIAG_INFO - 1);
        r.put(offset_of!(Req, idiag_ext), &[ext]);
        match proto {
            Proto::Tcp => r.put(offset_of!(Req, sdiag_protocol), &[libc::IPPROTO_TCP as u8]),
            Proto::Mptcp => {
                // The 8-bit field cannot hold 262: the attribute carries the protocol.
                r.nlas.push(nla_bytes(
                    sys::INET_DIAG_REQ_PROTOCOL,
                    &(crate::proto::IPPROTO_MPTCP as u32).to_ne_bytes(),
                ));
            }
        }
        r
    }

    /// Whether the kernel answers with a dump (ended by DONE) rather than one message.
    pub fn is_dump(&self) -> bool {
        self.dump
    }

    fn put(&mut self, at: usize, bytes: &[u8]) {
        self.body[at..at + bytes.len()].copy_from_slice(bytes);
    }

    /// The request as bytes, with sequence number `seq`.
    pub fn serialize(&self, seq: u32) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | if self.dump { NLM_F_DUMP } else { 0 };
        header.sequence_number = seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(self.clone()));
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        buf
    }
}

impl NetlinkSerializable for DiagRequest {
    fn message_type(&self) -> u16 {
        sys::SOCK_DIAG_BY_FAMILY as u16
    }
    fn buffer_len(&self) -> usize {
        self.body.len() + self.nlas.as_slice().buffer_len()
    }
    fn serialize(&self, buffer: &mut [u8]) {
        buffer[..self.body.len()].copy_from_slice(&self.body);
        self.nlas.as_slice().emit(&mut buffer[self.body.len()..]);
    }
}

/// One bytecode instruction: `inet_diag_bc_op` (code, yes, no).
fn op(out: &mut Vec<u8>, code: u32, yes: u8, no: u16) {
    out.push(code as u8);
    out.push(yes);
    out.extend(no.to_ne_bytes());
}

/// The filter's ports and addresses as `inet_diag` bytecode: every condition must hold
/// (each jumps past the end, rejecting the socket, when it fails). Empty when there is
/// nothing to filter. Addresses of the other family than the dump's are left to the
/// caller (such a dump matches nothing).
pub(crate) fn bytecode(filter: &Filter, family: u8) -> Vec<u8> {
    let mut conds: Vec<Vec<u8>> = Vec::new();
    for (port, code) in [
        (filter.local_port, sys::INET_DIAG_BC_S_EQ),
        (filter.remote_port, sys::INET_DIAG_BC_D_EQ),
    ] {
        if let Some(p) = port {
            // The port travels in the `no` field of a second instruction.
            let mut c = Vec::with_capacity(8);
            op(&mut c, code, 8, 0);
            op(&mut c, sys::INET_DIAG_BC_NOP, 0, p);
            conds.push(c);
        }
    }
    for (addr, code) in [
        (filter.local_addr, sys::INET_DIAG_BC_S_COND),
        (filter.remote_addr, sys::INET_DIAG_BC_D_COND),
    ] {
        let Some(addr) = addr else { continue };
        let (fam, bytes): (u8, Vec<u8>) = match addr {
            IpAddr::V4(a) => (libc::AF_INET as u8, a.octets().to_vec()),
            IpAddr::V6(a) => (libc::AF_INET6 as u8, a.octets().to_vec()),
        };
        if fam != family {
            continue;
        }
        let mut c = Vec::with_capacity(12 + bytes.len());
        op(&mut c, code, 0, 0);
        // inet_diag_hostcond: family, prefix length, (padding), port (-1: any), address.
        c.push(fam);
        c.push((bytes.len() * 8) as u8);
        c.extend([0u8; 2]);
        c.extend((-1i32).to_ne_bytes());
        c.extend(&bytes);
        let len = c.len() as u8;
        c[1] = len;
        conds.push(c);
    }
    let total: usize = conds.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(total);
    let mut left = total;
    for mut c in conds {
        // On failure, jump 4 bytes past the end: the kernel then rejects the socket.
        let no = (left + 4) as u16;
        c[2..4].copy_from_slice(&no.to_ne_bytes());
        left -= c.len();
        out.extend(c);
    }
    out
}
