//! The Generic Netlink plumbing of the path manager, shared by the blocking client, the
//! async client and the event subscription: requests built from
//! [`DefaultNla`]s and serialized by the rust-netlink crates, one framing path for every
//! received datagram ([`messages`]), attributes read in place ([`nlas`]), extended-ack
//! errors, and the family lookup.

use crate::error::{Error, Result};
pub(crate) use crate::netlink::recv;
pub(crate) use crate::wire::netlink::{
    messages, nla_bytes, nla_i32, nla_nested, nla_u16, nla_u32, nla_u8, nlas, Msg, Nla, RECV_BUF,
};
use netlink_packet_core::{
    DecodeError, DefaultNla, DoneBuffer, Emitable, ErrorBuffer, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, ParseableParametrized, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLM_F_ACK,
    NLM_F_CAPPED, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_generic::ctrl::nlas::{GenlCtrlAttrs, McastGrpAttrs, OpAttrs};
use netlink_packet_generic::ctrl::GenlCtrl;
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};

const NLMSGERR_ATTR_MSG: u16 = 1;
const GENL_ID_CTRL: u16 = 16;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_NAME: u32 = 2;
const CTRL_VERSION: u8 = 2;
const GENL_HDRLEN: usize = 4;

// ---- requests ---------------------------------------------------------------------------

/// One request: a Generic Netlink command with its attributes.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// What it does, for errors.
    pub op: &'static str,
    pub cmd: u8,
    pub version: u8,
    pub nlas: Vec<DefaultNla>,
    /// A dump (`NLM_F_DUMP`): replies until `NLMSG_DONE`.
    pub dump: bool,
}

impl Request {
    /// A request of the `mptcp_pm` family.
    pub fn pm(op: &'static str, cmd: u32, nlas: Vec<DefaultNla>) -> Request {
        Request {
            op,
            cmd: cmd as u8,
            version: mptcp_sys::MPTCP_PM_VER as u8,
            nlas,
            dump: false,
        }
    }

    /// The same request as a dump.
    pub fn dump(mut self) -> Request {
        self.dump = true;
        self
    }

    /// The controller's GETFAMILY for `name`.
    fn get_family(name: &str) -> Request {
        let mut value = name.as_bytes().to_vec();
        value.push(0);
        Request {
            op: "resolve Generic Netlink family",
            cmd: CTRL_CMD_GETFAMILY,
            version: CTRL_VERSION,
            nlas: vec![DefaultNla::new(CTRL_ATTR_FAMILY_NAME as u16, value)],
            dump: false,
        }
    }

    /// The request as bytes, for family `family` with sequence number `seq`.
    pub fn serialize(&self, family: u16, seq: u32) -> Vec<u8> {
        let genl = GenlMessage::new(
            GenlHeader {
                cmd: self.cmd,
                version: self.version,
            },
            Payload(&self.nlas),
            family,
        );
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | if self.dump { NLM_F_DUMP } else { 0 };
        header.sequence_number = seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::from(genl));
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        buf
    }
}

/// A request's attributes as a Generic Netlink payload (command and version are in the
/// header the message is built with).
#[derive(Debug)]
struct Payload<'a>(&'a [DefaultNla]);

impl GenlFamily for Payload<'_> {
    fn family_name() -> &'static str {
        ""
    }
    fn command(&self) -> u8 {
        0
    }
    fn version(&self) -> u8 {
        0
    }
}

impl Emitable for Payload<'_> {
    fn buffer_len(&self) -> usize {
        self.0.buffer_len()
    }
    fn emit(&self, buffer: &mut [u8]) {
        self.0.emit(buffer)
    }
}

// ---- replies ----------------------------------------------------------------------------

/// One Generic Netlink message: its command and its attributes (unparsed).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reply<'a> {
    pub cmd: u8,
    pub version: u8,
    pub attrs: &'a [u8],
}

impl<'a> Reply<'a> {
    /// The Generic Netlink message in a netlink message's payload.
    pub fn parse(payload: &'a [u8]) -> std::result::Result<Reply<'a>, DecodeError> {
        let header = GenlHeader::parse(payload)?;
        Ok(Reply {
            cmd: header.cmd,
            version: header.version,
            attrs: payload.get(GENL_HDRLEN..).unwrap_or(&[]),
        })
    }

    /// The attributes, borrowed.
    pub fn nlas(&self) -> impl Iterator<Item = std::result::Result<Nla<'a>, DecodeError>> {
        nlas(self.attrs)
    }
}

/// What one received message means for the request waiting for it.
#[derive(Debug)]
pub(crate) enum Step<'a> {
    /// A reply message.
    Reply(Reply<'a>),
    /// The request is complete (its ACK, or the dump's DONE).
    Done,
    /// Nothing for the request (a dump's ACK, a NOOP).
    Skip,
}

/// Interprets one message received for `req`.
pub(crate) fn step<'a>(req: &Request, m: &Msg<'a>) -> Result<Step<'a>> {
    let payload: &'a [u8] = m.payload();
    match m.message_type() {
        NLMSG_NOOP => Ok(Step::Skip),
        // A dump that failed ends with DONE carrying the error (and its extended-ack
        // attributes right after the code).
        NLMSG_DONE => {
            let done = DoneBuffer::new_checked(payload).map_err(decode_err)?;
            match done.code() {
                code if code < 0 => {
                    let text = ext_ack_text(done.extended_ack());
                    Err(netlink_error(req.op, -code, text))
                }
                _ => Ok(Step::Done),
            }
        }
        NLMSG_ERROR => {
            let err = ErrorBuffer::new_checked(payload).map_err(decode_err)?;
            match err.code() {
                None if req.dump => Ok(Step::Skip),
                None => Ok(Step::Done),
                Some(code) => {
                    let text = ext_ack_message(m.flags(), err.payload());
                    Err(netlink_error(req.op, -code.get(), text))
                }
            }
        }
        _ => Reply::parse(payload).map(Step::Reply).map_err(decode_err),
    }
}

pub(crate) fn decode_err(e: DecodeError) -> Error {
    Error::decode("netlink message", e.to_string())
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
    ext_ack_text(payload.get(orig_len..)?)
}

fn ext_ack_text(tlvs: &[u8]) -> Option<String> {
    let msg = nlas(tlvs)
        .map_while(|a| a.ok())
        .find(|a| a.kind == NLMSGERR_ATTR_MSG)?;
    let text = String::from_utf8_lossy(msg.value);
    Some(text.trim_end_matches('\0').to_string())
}

fn netlink_error(op: &'static str, errno: i32, message: Option<String>) -> Error {
    if errno == libc::EPERM {
        return Error::PermissionDenied { op, message, errno };
    }
    Error::Netlink {
        op,
        error: std::io::Error::from_raw_os_error(errno),
        message,
    }
}

/// The family's id and its multicast groups, from the Generic Netlink controller.
#[derive(Debug, Clone, Default)]
pub(crate) struct Family {
    pub id: u16,
    pub groups: Vec<(String, u32)>,
    /// The commands the kernel's family offers (its op list); empty when the
    /// controller did not send one.
    pub ops: Vec<u32>,
}

impl Family {
    /// The request that resolves `name`.
    pub fn request(name: &str) -> (Request, u16) {
        (Request::get_family(name), GENL_ID_CTRL)
    }

    /// Reads one reply of the controller.
    pub fn add_reply(&mut self, r: Reply<'_>) -> Result<()> {
        let ctrl = GenlCtrl::parse_with_param(
            r.attrs,
            GenlHeader {
                cmd: r.cmd,
                version: r.version,
            },
        )
        .map_err(decode_err)?;
        for nla in ctrl.nlas {
            match nla {
                GenlCtrlAttrs::FamilyId(id) => self.id = id,
                GenlCtrlAttrs::Ops(ops) => {
                    self.ops
                        .extend(ops.iter().flatten().filter_map(|a| match a {
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
                            self.groups.push((n, i));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Checks the lookup's outcome: a missing family is [`Error::Unsupported`].
    pub fn finish(self, outcome: Result<()>) -> Result<Family> {
        match outcome {
            Err(e) if e.errno() == Some(libc::ENOENT) => Err(Error::Unsupported {
                feature: "the mptcp_pm Generic Netlink family (no MPTCP in this kernel)",
                since: Some("5.7"),
            }),
            Err(e) => Err(e),
            Ok(()) if self.id == 0 => Err(decode_err(DecodeError::from(
                "the controller returned no family id",
            ))),
            Ok(()) => Ok(self),
        }
    }
}
