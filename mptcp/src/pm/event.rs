//! Path-manager events (multicast group `mptcp_pm_events`).

use super::netlink::{Attr, PmMessage};
use crate::error::{Error, Result};
use crate::Token;
use mptcp_sys as sys;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_generic::GenlMessage;
use netlink_sys::{protocols::NETLINK_GENERIC, Socket};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

/// What happened.
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
    /// An event type this crate does not know.
    Other(u8),
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
            _ => EventKind::Other(cmd),
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
            EventKind::Other(_) => "UNKNOWN",
        }
    }
}

/// One path-manager event with every attribute the kernel sent (`None`: not sent).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Event {
    /// The event type.
    pub kind: EventKind,
    /// The connection's local token.
    pub token: Option<Token>,
    /// Address family (`AF_INET` or `AF_INET6`).
    pub family: Option<u16>,
    /// Local address id.
    pub local_id: Option<u8>,
    /// Remote address id.
    pub remote_id: Option<u8>,
    /// Local address and port (the port is in host order here; the kernel sends it in
    /// network order).
    pub local: Option<SocketAddr>,
    /// Remote address and port.
    pub remote: Option<SocketAddr>,
    /// Backup flag of the subflow.
    pub backup: Option<bool>,
    /// The error of a closed subflow.
    pub error: Option<u8>,
    /// `MPTCP_PM_EV_FLAG_*` bits (deny join id 0; server side since 6.18).
    pub flags: Option<u16>,
    /// Timeout of the connection, seconds.
    pub timeout: Option<u32>,
    /// Interface index.
    pub ifindex: Option<i32>,
    /// MP_TCPRST reason (`MPTCP_RST_*`).
    pub reset_reason: Option<u32>,
    /// MP_TCPRST flags.
    pub reset_flags: Option<u32>,
    /// True on the passive (server) side.
    pub server_side: Option<bool>,
}

fn ip4(a: &Attr) -> Option<IpAddr> {
    let b: [u8; 4] = a.value.get(..4)?.try_into().ok()?;
    Some(IpAddr::from(b))
}

fn ip6(a: &Attr) -> Option<IpAddr> {
    let b: [u8; 16] = a.value.get(..16)?.try_into().ok()?;
    Some(IpAddr::from(b))
}

impl Event {
    pub(crate) fn decode(m: &PmMessage) -> Event {
        let mut ev = Event {
            kind: EventKind::from_cmd(m.cmd),
            token: None,
            family: None,
            local_id: None,
            remote_id: None,
            local: None,
            remote: None,
            backup: None,
            error: None,
            flags: None,
            timeout: None,
            ifindex: None,
            reset_reason: None,
            reset_flags: None,
            server_side: None,
        };
        let (mut saddr, mut daddr, mut sport, mut dport) = (None, None, None, None);
        for a in &m.attrs {
            match a.id() {
                sys::MPTCP_ATTR_TOKEN => ev.token = a.as_u32().map(Token::new),
                sys::MPTCP_ATTR_FAMILY => ev.family = a.as_u16(),
                sys::MPTCP_ATTR_LOC_ID => ev.local_id = a.as_u8(),
                sys::MPTCP_ATTR_REM_ID => ev.remote_id = a.as_u8(),
                sys::MPTCP_ATTR_SADDR4 => saddr = ip4(a),
                sys::MPTCP_ATTR_SADDR6 => saddr = ip6(a),
                sys::MPTCP_ATTR_DADDR4 => daddr = ip4(a),
                sys::MPTCP_ATTR_DADDR6 => daddr = ip6(a),
                sys::MPTCP_ATTR_SPORT => sport = a.as_u16_be(),
                sys::MPTCP_ATTR_DPORT => dport = a.as_u16_be(),
                sys::MPTCP_ATTR_BACKUP => ev.backup = a.as_u8().map(|b| b != 0),
                sys::MPTCP_ATTR_ERROR => ev.error = a.as_u8(),
                sys::MPTCP_ATTR_FLAGS => ev.flags = a.as_u16(),
                sys::MPTCP_ATTR_TIMEOUT => ev.timeout = a.as_u32(),
                sys::MPTCP_ATTR_IF_IDX => ev.ifindex = a.as_i32(),
                sys::MPTCP_ATTR_RESET_REASON => ev.reset_reason = a.as_u32(),
                sys::MPTCP_ATTR_RESET_FLAGS => ev.reset_flags = a.as_u32(),
                sys::MPTCP_ATTR_SERVER_SIDE => ev.server_side = a.as_u8().map(|b| b != 0),
                _ => {}
            }
        }
        ev.local = saddr.map(|ip| SocketAddr::new(ip, sport.unwrap_or(0)));
        ev.remote = daddr.map(|ip| SocketAddr::new(ip, dport.unwrap_or(0)));
        ev
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

/// A subscription to the path manager's events: a blocking iterator.
///
/// ```no_run
/// let pm = mptcp::pm::PathManager::new()?;
/// for item in pm.events()? {
///     match item? {
///         mptcp::pm::EventItem::Event(ev) => println!("{} token {:?}", ev.kind.name(), ev.token),
///         mptcp::pm::EventItem::Lost => eprintln!("events were lost"),
///         _ => {}
///     }
/// }
/// # Ok::<(), mptcp::Error>(())
/// ```
#[derive(Debug)]
pub struct Events {
    sock: Socket,
    queue: VecDeque<EventItem>,
}

impl Events {
    pub(crate) fn subscribe(group: u32) -> Result<Events> {
        let mut sock =
            Socket::new(NETLINK_GENERIC).map_err(|e| Error::os("socket(NETLINK_GENERIC)", e))?;
        sock.bind_auto()
            .map_err(|e| Error::os("bind netlink socket", e))?;
        sock.add_membership(group)
            .map_err(|e| match e.raw_os_error() {
                Some(errno @ libc::EPERM) => Error::PermissionDenied {
                    op: "subscribe to path manager events",
                    message: None,
                    errno,
                },
                _ => Error::os("subscribe to path manager events", e),
            })?;
        Ok(Events {
            sock,
            queue: VecDeque::new(),
        })
    }

    /// Sets the socket's receive buffer (a small one loses events under load).
    pub fn set_receive_buffer(&self, bytes: usize) -> Result<()> {
        self.sock
            .set_rx_buf_sz(bytes)
            .map_err(|e| Error::os("setsockopt(SO_RCVBUF)", e))
    }

    /// Sets a timeout for [`next`](Iterator::next): `None` blocks; a zero duration is
    /// [`Error::InvalidArgument`] (the kernel would read it as "block"); durations
    /// below one microsecond, the kernel's resolution, are rounded up to it.
    pub fn set_timeout(&self, timeout: Option<std::time::Duration>) -> Result<()> {
        // The kernel reads a zero timeval as "no timeout": refuse zero as std's
        // set_read_timeout does, and round what is below its microsecond resolution up.
        let timeout = match timeout {
            Some(d) if d.is_zero() => {
                return Err(Error::invalid(
                    "set event timeout",
                    "a zero timeout would mean none: use None to block",
                ))
            }
            Some(d) => Some(d.max(std::time::Duration::from_micros(1))),
            None => None,
        };
        socket2::SockRef::from(&self.sock)
            .set_read_timeout(timeout)
            .map_err(|e| Error::os("setsockopt(SO_RCVTIMEO)", e))
    }

    /// Receives one datagram and queues what it holds.
    fn fill(&mut self) -> Result<()> {
        match self.sock.recv_from_full() {
            Ok((data, _)) => {
                self.queue.extend(decode_datagram(&data)?);
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                self.queue.push_back(EventItem::Lost);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                Err(Error::TimedOut("receive path manager events"))
            }
            Err(e) => Err(Error::os("receive path manager events", e)),
        }
    }

    /// Turns the subscription into a tokio `Stream` (feature `tokio`). Outside a tokio
    /// runtime (with its I/O driver) this is [`Error::InvalidArgument`], not a panic.
    #[cfg(feature = "tokio")]
    pub fn into_stream(self) -> Result<EventStream> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::invalid(
                "turn events into a stream",
                "not called from inside a tokio runtime",
            ));
        }
        self.sock
            .set_non_blocking(true)
            .map_err(|e| Error::os("fcntl(O_NONBLOCK)", e))?;
        let fd = crate::sys::register_netlink(self.sock)
            .map_err(|e| Error::os("register with tokio", e))?;
        Ok(EventStream {
            fd,
            queue: self.queue,
        })
    }
}

pub(crate) fn decode_datagram(data: &[u8]) -> Result<Vec<EventItem>> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 16 <= data.len() {
        let part = &data[off..];
        let len = u32::from_ne_bytes([part[0], part[1], part[2], part[3]]) as usize;
        if len < 16 || len > part.len() {
            break;
        }
        if let Ok(m) = NetlinkMessage::<GenlMessage<PmMessage>>::deserialize(&part[..len]) {
            if let NetlinkPayload::InnerMessage(g) = m.payload {
                out.push(EventItem::Event(Event::decode(&g.payload)));
            }
        }
        off += (len + 3) & !3;
    }
    Ok(out)
}

impl Iterator for Events {
    type Item = Result<EventItem>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(Ok(item));
            }
            if let Err(e) = self.fill() {
                return Some(Err(e));
            }
        }
    }
}

/// The events as a tokio `Stream` ([`Events::into_stream`]).
#[cfg(feature = "tokio")]
#[derive(Debug)]
pub struct EventStream {
    fd: tokio::io::unix::AsyncFd<Socket>,
    queue: VecDeque<EventItem>,
}

#[cfg(feature = "tokio")]
impl futures_core::Stream for EventStream {
    type Item = Result<EventItem>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = self.get_mut();
        loop {
            if let Some(item) = this.queue.pop_front() {
                return Poll::Ready(Some(Ok(item)));
            }
            let mut guard = match this.fd.poll_read_ready(cx) {
                Poll::Ready(Ok(g)) => g,
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Some(Err(Error::os("poll path manager events", e))))
                }
                Poll::Pending => return Poll::Pending,
            };
            match guard.try_io(|s| s.get_ref().recv_from_full()) {
                Ok(Ok((data, _))) => match decode_datagram(&data) {
                    Ok(items) => this.queue.extend(items),
                    Err(e) => return Poll::Ready(Some(Err(e))),
                },
                Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    this.queue.push_back(EventItem::Lost)
                }
                Ok(Err(e)) => {
                    return Poll::Ready(Some(Err(Error::os("receive path manager events", e))))
                }
                Err(_would_block) => continue,
            }
        }
    }
}
