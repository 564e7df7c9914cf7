//! Path-manager events (multicast group `mptcp_pm_events`) as typed values: one
//! variant per event type with exactly the data the kernel sends, decoded from a
//! datagram's bytes (no socket here: the subscription is `events.rs`).

use super::netlink::{messages, Reply};
use crate::error::{Error, Result};
use crate::token::Token;
use mptcp_sys as sys;
use netlink_packet_core::{DecodeError, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

/// Which event, without its data (for filtering).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub enum EventKind {
    /// A connection was created (MP_CAPABLE handshake started).
    Created,
    /// A connection is fully established.
    Established,
    /// A connection was closed.
    Closed,
    /// The peer announced an address (ADD_ADDR).
    Announced,
    /// The peer withdrew an address (REMOVE_ADDR).
    Removed,
    /// A subflow was established.
    SubEstablished,
    /// A subflow was closed.
    SubClosed,
    /// A subflow's backup priority changed (MP_PRIO).
    SubPriority,
    /// A listener was created (Linux 6.2+).
    ListenerCreated,
    /// A listener was closed (Linux 6.2+).
    ListenerClosed,
    /// An event type this crate does not know (the kernel's number).
    Unknown(u8),
}

impl EventKind {
    fn from_cmd(cmd: u8) -> EventKind {
        match u32::from(cmd) {
            sys::MPTCP_EVENT_CREATED => EventKind::Created,
            sys::MPTCP_EVENT_ESTABLISHED => EventKind::Established,
            sys::MPTCP_EVENT_CLOSED => EventKind::Closed,
            sys::MPTCP_EVENT_ANNOUNCED => EventKind::Announced,
            sys::MPTCP_EVENT_REMOVED => EventKind::Removed,
            sys::MPTCP_EVENT_SUB_ESTABLISHED => EventKind::SubEstablished,
            sys::MPTCP_EVENT_SUB_CLOSED => EventKind::SubClosed,
            sys::MPTCP_EVENT_SUB_PRIORITY => EventKind::SubPriority,
            sys::MPTCP_EVENT_LISTENER_CREATED => EventKind::ListenerCreated,
            sys::MPTCP_EVENT_LISTENER_CLOSED => EventKind::ListenerClosed,
            _ => EventKind::Unknown(cmd),
        }
    }

    /// The name `ip mptcp monitor` prints for it.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Created => "CREATED",
            EventKind::Established => "ESTABLISHED",
            EventKind::Closed => "CLOSED",
            EventKind::Announced => "ANNOUNCED",
            EventKind::Removed => "REMOVED",
            EventKind::SubEstablished => "SF_ESTABLISHED",
            EventKind::SubClosed => "SF_CLOSED",
            EventKind::SubPriority => "SF_PRIO",
            EventKind::ListenerCreated => "LISTENER_CREATED",
            EventKind::ListenerClosed => "LISTENER_CLOSED",
            EventKind::Unknown(_) => "UNKNOWN",
        }
    }
}

bitflags::bitflags! {
    /// `MPTCP_PM_EV_FLAG_*`: flags of a connection's CREATED and ESTABLISHED events.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct EventFlags: u16 {
        /// The peer must not open subflows to address id 0 (its initial address).
        const DENY_JOIN_ID0 = sys::MPTCP_PM_EV_FLAG_DENY_JOIN_ID0 as u16;
        /// This side accepted the connection (Linux 6.18+; older kernels send the
        /// separate `server_side` attribute).
        const SERVER_SIDE = sys::MPTCP_PM_EV_FLAG_SERVER_SIDE as u16;
        // Bits a newer kernel may set are kept.
        const _ = !0;
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for EventFlags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_u16(self.bits())
    }
}

/// A connection's CREATED or ESTABLISHED event: its token and initial subflow.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ConnectionEvent {
    /// The connection's local token.
    pub token: Token,
    /// Local address and port of the initial subflow (port in host order).
    pub local: SocketAddr,
    /// Remote address and port of the initial subflow.
    pub remote: SocketAddr,
    /// The initial subflow's local address id (`MPTCP_ATTR_LOC_ID`; `None` when not
    /// sent).
    pub local_id: Option<u8>,
    /// The initial subflow's remote address id (`MPTCP_ATTR_REM_ID`; `None` when not
    /// sent).
    pub remote_id: Option<u8>,
    /// True on the accepting side (Linux 5.19+; `None` when not sent).
    pub server_side: Option<bool>,
    /// Flags (Linux 6.x; empty when not sent).
    pub flags: EventFlags,
}

/// A subflow's SUB_ESTABLISHED, SUB_CLOSED or SUB_PRIORITY event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct SubflowEvent {
    /// The connection's local token.
    pub token: Token,
    /// Local address id.
    pub local_id: u8,
    /// Remote address id.
    pub remote_id: u8,
    /// Local address and port (port in host order; the kernel sends network order).
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
    /// The subflow is a backup.
    pub backup: bool,
    /// The interface the subflow is bound to, when it is.
    pub ifindex: Option<i32>,
    /// The subflow's socket error (`sk_err`), when there is one.
    pub error: Option<u8>,
    /// MP_TCPRST reason (`MPTCP_RST_*`) of a reset subflow.
    pub reset_reason: Option<u32>,
    /// MP_TCPRST flags of a reset subflow.
    pub reset_flags: Option<u32>,
}

/// An event of a type this crate does not know: its number and raw attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct RawEvent {
    /// The kernel's event number (`MPTCP_EVENT_*`).
    pub kind: u8,
    /// (attribute type, payload) as the kernel sent them.
    pub attrs: Vec<(u16, Vec<u8>)>,
}

/// One path-manager event, with exactly the data the kernel sends for its type.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub enum Event {
    /// A connection was created (MP_CAPABLE handshake started).
    Created(ConnectionEvent),
    /// A connection is fully established: subflows can be added.
    Established(ConnectionEvent),
    /// A connection was closed.
    Closed {
        /// The connection's local token.
        token: Token,
    },
    /// The peer announced an address (ADD_ADDR).
    Announced {
        /// The connection's local token.
        token: Token,
        /// The address id the peer gave it.
        remote_id: u8,
        /// The address, and its port (0 when the peer announced none).
        addr: SocketAddr,
    },
    /// The peer withdrew an address (REMOVE_ADDR).
    Removed {
        /// The connection's local token.
        token: Token,
        /// The withdrawn address id.
        remote_id: u8,
    },
    /// A subflow was established.
    SubEstablished(SubflowEvent),
    /// A subflow was closed.
    SubClosed(SubflowEvent),
    /// A subflow's backup priority changed (MP_PRIO).
    SubPriority(SubflowEvent),
    /// A listener was created (Linux 6.2+).
    ListenerCreated {
        /// The listening address and port.
        local: SocketAddr,
    },
    /// A listener was closed (Linux 6.2+).
    ListenerClosed {
        /// The listening address and port.
        local: SocketAddr,
    },
    /// An event type this crate does not know yet.
    Unknown(RawEvent),
}

impl Event {
    /// Which event this is.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Created(_) => EventKind::Created,
            Event::Established(_) => EventKind::Established,
            Event::Closed { .. } => EventKind::Closed,
            Event::Announced { .. } => EventKind::Announced,
            Event::Removed { .. } => EventKind::Removed,
            Event::SubEstablished(_) => EventKind::SubEstablished,
            Event::SubClosed(_) => EventKind::SubClosed,
            Event::SubPriority(_) => EventKind::SubPriority,
            Event::ListenerCreated { .. } => EventKind::ListenerCreated,
            Event::ListenerClosed { .. } => EventKind::ListenerClosed,
            Event::Unknown(r) => EventKind::Unknown(r.kind),
        }
    }

    /// The connection's token: every event but the listeners' (and unknown ones).
    pub fn token(&self) -> Option<Token> {
        match self {
            Event::Created(c) | Event::Established(c) => Some(c.token),
            Event::Closed { token }
            | Event::Announced { token, .. }
            | Event::Removed { token, .. } => Some(*token),
            Event::SubEstablished(s) | Event::SubClosed(s) | Event::SubPriority(s) => Some(s.token),
            _ => None,
        }
    }

    /// The local address of the (initial) subflow or listener, when the event has one.
    pub fn local(&self) -> Option<SocketAddr> {
        match self {
            Event::Created(c) | Event::Established(c) => Some(c.local),
            Event::SubEstablished(s) | Event::SubClosed(s) | Event::SubPriority(s) => Some(s.local),
            Event::ListenerCreated { local } | Event::ListenerClosed { local } => Some(*local),
            _ => None,
        }
    }

    /// The remote address of the (initial) subflow, or the announced address.
    pub fn remote(&self) -> Option<SocketAddr> {
        match self {
            Event::Created(c) | Event::Established(c) => Some(c.remote),
            Event::SubEstablished(s) | Event::SubClosed(s) | Event::SubPriority(s) => {
                Some(s.remote)
            }
            Event::Announced { addr, .. } => Some(*addr),
            _ => None,
        }
    }

    /// The subflow data of a SUB_* event.
    pub fn subflow(&self) -> Option<&SubflowEvent> {
        match self {
            Event::SubEstablished(s) | Event::SubClosed(s) | Event::SubPriority(s) => Some(s),
            _ => None,
        }
    }
}

/// The attributes of one event message, as sent.
#[derive(Default)]
struct Attrs {
    token: Option<Token>,
    local_id: Option<u8>,
    remote_id: Option<u8>,
    saddr: Option<IpAddr>,
    daddr: Option<IpAddr>,
    sport: Option<u16>,
    dport: Option<u16>,
    backup: Option<bool>,
    error: Option<u8>,
    flags: Option<u16>,
    ifindex: Option<i32>,
    reset_reason: Option<u32>,
    reset_flags: Option<u32>,
    server_side: Option<bool>,
}

impl Attrs {
    fn parse(r: &Reply<'_>) -> std::result::Result<Attrs, DecodeError> {
        let mut v = Attrs::default();
        for a in r.nlas() {
            let a = a?;
            match a.id() {
                sys::MPTCP_ATTR_TOKEN => v.token = Some(Token::new(a.u32()?)),
                sys::MPTCP_ATTR_LOC_ID => v.local_id = Some(a.u8()?),
                sys::MPTCP_ATTR_REM_ID => v.remote_id = Some(a.u8()?),
                sys::MPTCP_ATTR_SADDR4 => v.saddr = Some(a.ipv4()?),
                sys::MPTCP_ATTR_SADDR6 => v.saddr = Some(a.ipv6()?),
                sys::MPTCP_ATTR_DADDR4 => v.daddr = Some(a.ipv4()?),
                sys::MPTCP_ATTR_DADDR6 => v.daddr = Some(a.ipv6()?),
                sys::MPTCP_ATTR_SPORT => v.sport = Some(a.u16_be()?),
                sys::MPTCP_ATTR_DPORT => v.dport = Some(a.u16_be()?),
                sys::MPTCP_ATTR_BACKUP => v.backup = Some(a.u8()? != 0),
                sys::MPTCP_ATTR_ERROR => v.error = Some(a.u8()?),
                sys::MPTCP_ATTR_FLAGS => v.flags = Some(a.u16()?),
                sys::MPTCP_ATTR_IF_IDX => v.ifindex = Some(a.i32()?),
                sys::MPTCP_ATTR_RESET_REASON => v.reset_reason = Some(a.u32()?),
                sys::MPTCP_ATTR_RESET_FLAGS => v.reset_flags = Some(a.u32()?),
                sys::MPTCP_ATTR_SERVER_SIDE => v.server_side = Some(a.u8()? != 0),
                _ => {}
            }
        }
        Ok(v)
    }
}

impl Event {
    pub(crate) fn decode(r: Reply<'_>) -> Result<Event> {
        let kind = EventKind::from_cmd(r.cmd);
        let what = "path manager event";
        let a =
            Attrs::parse(&r).map_err(|e| Error::decode(what, format!("{}: {e}", kind.name())))?;
        let missing = |attr: &str| {
            Error::decode(
                what,
                format!("{} without its {attr} attribute", kind.name()),
            )
        };
        let token = || a.token.ok_or_else(|| missing("token"));
        let local = || match (a.saddr, a.sport) {
            (Some(ip), Some(port)) => Ok(SocketAddr::new(ip, port)),
            _ => Err(missing("saddr/sport")),
        };
        let remote = || match (a.daddr, a.dport) {
            (Some(ip), Some(port)) => Ok(SocketAddr::new(ip, port)),
            _ => Err(missing("daddr/dport")),
        };
        let connection = || -> Result<ConnectionEvent> {
            Ok(ConnectionEvent {
                token: token()?,
                local: local()?,
                remote: remote()?,
                local_id: a.local_id,
                remote_id: a.remote_id,
                server_side: a.server_side,
                flags: EventFlags::from_bits_retain(a.flags.unwrap_or(0)),
            })
        };
        let subflow = || -> Result<SubflowEvent> {
            Ok(SubflowEvent {
                token: token()?,
                local_id: a.local_id.ok_or_else(|| missing("loc_id"))?,
                remote_id: a.remote_id.ok_or_else(|| missing("rem_id"))?,
                local: local()?,
                remote: remote()?,
                backup: a.backup.unwrap_or(false),
                ifindex: a.ifindex.filter(|i| *i != 0),
                error: a.error.filter(|e| *e != 0),
                reset_reason: a.reset_reason,
                reset_flags: a.reset_flags,
            })
        };
        let listener = || match (a.saddr, a.sport) {
            (Some(ip), Some(port)) => Ok(SocketAddr::new(ip, port)),
            _ => Err(missing("saddr/sport")),
        };
        Ok(match kind {
            EventKind::Created => Event::Created(connection()?),
            EventKind::Established => Event::Established(connection()?),
            EventKind::Closed => Event::Closed { token: token()? },
            EventKind::Announced => Event::Announced {
                token: token()?,
                remote_id: a.remote_id.ok_or_else(|| missing("rem_id"))?,
                addr: SocketAddr::new(
                    a.daddr.ok_or_else(|| missing("daddr"))?,
                    a.dport.unwrap_or(0),
                ),
            },
            EventKind::Removed => Event::Removed {
                token: token()?,
                remote_id: a.remote_id.ok_or_else(|| missing("rem_id"))?,
            },
            EventKind::SubEstablished => Event::SubEstablished(subflow()?),
            EventKind::SubClosed => Event::SubClosed(subflow()?),
            EventKind::SubPriority => Event::SubPriority(subflow()?),
            EventKind::ListenerCreated => Event::ListenerCreated { local: listener()? },
            EventKind::ListenerClosed => Event::ListenerClosed { local: listener()? },
            EventKind::Unknown(k) => Event::Unknown(RawEvent {
                kind: k,
                attrs: r
                    .nlas()
                    .map(|a| a.map(|a| (a.kind, a.value.to_vec())))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| Error::decode(what, format!("event {k}: {e}")))?,
            }),
        })
    }
}

/// An item of the event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventItem {
    /// An event.
    Event(Event),
    /// The socket buffer overflowed (`ENOBUFS`): some events were lost. The stream goes
    /// on with the next events.
    Lost,
}

/// The events of one datagram: each message decoded, or an error item for one that
/// cannot be (never dropped silently).
pub(crate) fn decode_datagram(data: &[u8], out: &mut VecDeque<Result<EventItem>>) {
    let what = "path manager event";
    for m in messages(data) {
        out.push_back(match m {
            Err(e) => Err(Error::decode(what, e.to_string())),
            Ok(m) => match m.message_type() {
                NLMSG_NOOP | NLMSG_DONE | NLMSG_ERROR | NLMSG_OVERRUN => Err(Error::decode(
                    what,
                    format!(
                        "netlink control message {} instead of an event",
                        m.message_type()
                    ),
                )),
                _ => Reply::parse(m.payload())
                    .map_err(|e| Error::decode(what, e.to_string()))
                    .and_then(Event::decode)
                    .map(EventItem::Event),
            },
        });
    }
}
