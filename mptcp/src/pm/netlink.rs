//! The Generic Netlink plumbing of the path manager: message type, requests, replies,
//! extended-ack errors. Framing and attribute parsing come from the rust-netlink crates.

use crate::error::{Error, Result};
use netlink_packet_core::{
    DecodeError, Emitable, NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    NetlinkSerializable, Nla, NlaBuffer, NlasIterator, ParseableParametrized, NLM_F_ACK,
    NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_generic::ctrl::nlas::{GenlCtrlAttrs, McastGrpAttrs, OpAttrs};
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};
use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};
use std::fmt::Debug;
use std::io;

const NLA_F_NESTED: u16 = 1 << 15;
const NLM_F_CAPPED: u16 = 0x100;
const NLMSGERR_ATTR_MSG: u16 = 1;

/// One attribute: its type and raw value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attr {
    pub kind: u16,
    pub value: Vec<u8>,
}

impl Nla for Attr {
    fn value_len(&self) -> usize {
        self.value.len()
    }
    fn kind(&self) -> u16 {
        self.kind
    }
    fn emit_value(&self, buffer: &mut [u8]) {
        buffer.copy_from_slice(&self.value);
    }
}

impl Attr {
    pub fn u8(kind: u32, v: u8) -> Attr {
        Attr {
            kind: kind as u16,
            value: vec![v],
        }
    }
    pub fn u16(kind: u32, v: u16) -> Attr {
        Attr {
            kind: kind as u16,
            value: v.to_ne_bytes().to_vec(),
        }
    }
    pub fn u32(kind: u32, v: u32) -> Attr {
        Attr {
            kind: kind as u16,
            value: v.to_ne_bytes().to_vec(),
        }
    }
    pub fn i32(kind: u32, v: i32) -> Attr {
        Attr {
            kind: kind as u16,
            value: v.to_ne_bytes().to_vec(),
        }
    }
    pub fn bytes(kind: u32, v: &[u8]) -> Attr {
        Attr {
            kind: kind as u16,
            value: v.to_vec(),
        }
    }
    pub fn nested(kind: u32, children: &[Attr]) -> Attr {
        let mut value = vec![0u8; children.buffer_len()];
        children.emit(&mut value);
        Attr {
            kind: kind as u16 | NLA_F_NESTED,
            value,
        }
    }
    /// The attribute type without the nested / byte-order flags.
    pub fn id(&self) -> u32 {
        u32::from(self.kind & 0x3fff)
    }
    pub fn as_u8(&self) -> Option<u8> {
        self.value.first().copied()
    }
    pub fn as_u16(&self) -> Option<u16> {
        Some(u16::from_ne_bytes(self.value.get(..2)?.try_into().ok()?))
    }
    pub fn as_u16_be(&self) -> Option<u16> {
        Some(u16::from_be_bytes(self.value.get(..2)?.try_into().ok()?))
    }
    pub fn as_u32(&self) -> Option<u32> {
        Some(u32::from_ne_bytes(self.value.get(..4)?.try_into().ok()?))
    }
    pub fn as_i32(&self) -> Option<i32> {
        Some(i32::from_ne_bytes(self.value.get(..4)?.try_into().ok()?))
    }
    /// The attributes nested in this one.
    pub fn children(&self) -> std::result::Result<Vec<Attr>, DecodeError> {
        parse_attrs(&self.value)
    }
}

pub(crate) fn parse_attrs(buf: &[u8]) -> std::result::Result<Vec<Attr>, DecodeError> {
    NlasIterator::new(buf)
        .map(|nla| {
            let nla: NlaBuffer<&[u8]> = nla?;
            Ok(Attr {
                kind: nla.kind(),
                value: nla.value().to_vec(),
            })
        })
        .collect()
}

/// A message of the `mptcp_pm` family: a command (or event type) and its attributes.
#[derive(Debug, Clone)]
pub(crate) struct PmMessage {
    pub cmd: u8,
    pub attrs: Vec<Attr>,
}

impl GenlFamily for PmMessage {
    fn family_name() -> &'static str {
        "mptcp_pm"
    }
    fn command(&self) -> u8 {
        self.cmd
    }
    fn version(&self) -> u8 {
        mptcp_sys::MPTCP_PM_VER as u8
    }
}

impl Emitable for PmMessage {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }
    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for PmMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> std::result::Result<Self, DecodeError> {
        Ok(PmMessage {
            cmd: header.cmd,
            attrs: parse_attrs(buf)?,
        })
    }
}

/// The family's id and its multicast groups, from the Generic Netlink controller.
#[derive(Debug, Clone)]
pub(crate) struct Family {
    pub id: u16,
    pub groups: Vec<(String, u32)>,
    /// The commands the kernel's family offers (its op list); empty when the
    /// controller did not send one.
    pub ops: Vec<u32>,
}

/// A Generic Netlink socket talking to the kernel.
#[derive(Debug)]
pub(crate) struct Conn {
    pub sock: Socket,
    seq: u32,
}

fn decode_err(e: DecodeError) -> Error {
    Error::decode("netlink message", e.to_string())
}

impl Conn {
    pub fn open() -> Result<Conn> {
        let mut sock =
            Socket::new(NETLINK_GENERIC).map_err(|e| Error::os("socket(NETLINK_GENERIC)", e))?;
        sock.bind_auto()
            .map_err(|e| Error::os("bind netlink socket", e))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(|e| Error::os("connect netlink socket", e))?;
        // Best effort: older kernels lack these and then send plain errors.
        let _ = sock.set_ext_ack(true);
        let _ = sock.set_cap_ack(true);
        Ok(Conn { sock, seq: 0 })
    }

    /// Sends one request and collects the replies until the ACK (or DONE for dumps).
    pub fn transact<F>(
        &mut self,
        op: &'static str,
        mut msg: GenlMessage<F>,
        dump: bool,
    ) -> Result<Vec<F>>
    where
        F: GenlFamily + Emitable + ParseableParametrized<[u8], GenlHeader> + Debug,
        GenlMessage<F>: NetlinkSerializable + NetlinkDeserializable,
    {
        msg.finalize();
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | if dump { NLM_F_DUMP } else { 0 };
        header.sequence_number = self.seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        self.sock.send(&buf, 0).map_err(|e| Error::os(op, e))?;
        let mut out = Vec::new();
        loop {
            let (data, _) = self.sock.recv_from_full().map_err(|e| Error::os(op, e))?;
            let mut off = 0;
            while off < data.len() {
                let part = &data[off..];
                let nl =
                    netlink_packet_core::NetlinkBuffer::new_checked(part).map_err(decode_err)?;
                let len = nl.length() as usize;
                if len == 0 || len > part.len() {
                    return Err(decode_err(DecodeError::from("bad netlink message length")));
                }
                let m = NetlinkMessage::<GenlMessage<F>>::deserialize(&part[..len])
                    .map_err(decode_err)?;
                off += (len + 3) & !3;
                if m.header.sequence_number != self.seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::InnerMessage(g) => out.push(g.payload),
                    // A dump that failed ends with DONE carrying the error (and its
                    // extended-ack attributes right after the code).
                    NetlinkPayload::Done(d) if d.code < 0 => {
                        let text = parse_attrs(&d.extended_ack).ok().and_then(|attrs| {
                            attrs
                                .iter()
                                .find(|a| a.id() == u32::from(NLMSGERR_ATTR_MSG))
                                .map(|a| {
                                    String::from_utf8_lossy(&a.value)
                                        .trim_end_matches('\0')
                                        .to_string()
                                })
                        });
                        return Err(netlink_error(op, -d.code, text));
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => match e.code {
                        None if !dump => return Ok(out),
                        None => {}
                        Some(code) => {
                            let text = ext_ack_message(m.header.flags, &e.header);
                            return Err(netlink_error(op, -code.get(), text));
                        }
                    },
                    _ => {}
                }
            }
        }
    }

    /// Resolves a Generic Netlink family by name.
    pub fn family(&mut self, name: &str) -> Result<Family> {
        let msg = GenlMessage::from_payload(GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(name.to_string())],
        });
        let replies = match self.transact("resolve Generic Netlink family", msg, false) {
            Err(e) if e.errno() == Some(libc::ENOENT) => {
                return Err(Error::Unsupported {
                    feature: "the mptcp_pm Generic Netlink family (no MPTCP in this kernel)",
                    since: Some("5.7"),
                })
            }
            r => r?,
        };
        let mut fam = Family {
            id: 0,
            groups: Vec::new(),
            ops: Vec::new(),
        };
        for r in replies {
            for nla in r.nlas {
                match nla {
                    GenlCtrlAttrs::FamilyId(id) => fam.id = id,
                    GenlCtrlAttrs::Ops(ops) => {
                        fam.ops.extend(ops.iter().flatten().filter_map(|a| match a {
                            OpAttrs::Id(id) => Some(*id),
                            _ => None,
                        }))
                    }
                    GenlCtrlAttrs::McastGroups(groups) => {
                        for g in groups {
                            let mut gname = None;
                            let mut gid = None;
                            for a in g {
                                match a {
                                    McastGrpAttrs::Name(n) => gname = Some(n),
                                    McastGrpAttrs::Id(i) => gid = Some(i),
                                }
                            }
                            if let (Some(n), Some(i)) = (gname, gid) {
                                fam.groups.push((n, i));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        if fam.id == 0 {
            return Err(decode_err(DecodeError::from(
                "the controller returned no family id",
            )));
        }
        Ok(fam)
    }
}

/// The extended-ack message (`NLMSGERR_ATTR_MSG`) of an error, if the kernel sent one.
pub(crate) fn ext_ack_message(flags: u16, payload: &[u8]) -> Option<String> {
    // The payload is the request's header (or whole request unless capped), then TLVs.
    let orig_len = if flags & NLM_F_CAPPED != 0 {
        16
    } else {
        let len = u32::from_ne_bytes(payload.get(..4)?.try_into().ok()?) as usize;
        (len + 3) & !3
    };
    let attrs = parse_attrs(payload.get(orig_len..)?).ok()?;
    let msg = attrs
        .iter()
        .find(|a| a.id() == u32::from(NLMSGERR_ATTR_MSG))?;
    let text = String::from_utf8_lossy(&msg.value);
    Some(text.trim_end_matches('\0').to_string())
}

fn netlink_error(op: &'static str, errno: i32, message: Option<String>) -> Error {
    if errno == libc::EPERM {
        return Error::PermissionDenied { op, message, errno };
    }
    Error::Netlink {
        op,
        source: io::Error::from_raw_os_error(errno),
        message,
    }
}
