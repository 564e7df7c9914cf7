//! Every MPTCP connection of the network namespace, as data (feature `diag`, on by
//! default): what `ss -M` and `ss -tiO` print for people, through the kernel's socket
//! diagnostics (`NETLINK_SOCK_DIAG`).
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = mptcp::listen("127.0.0.1:0")?; // loopback: no namespace needed
//! let stream = mptcp::connect(listener.local_addr()?)?;
//! # if !mptcp::is_mptcp(&stream)? { return Ok(()) } // this machine has no MPTCP
//! # let token = mptcp::token(&stream)?;
//! # match mptcp::diag::connections() {
//! #   Err(mptcp::Error::MissingModule { .. }) => return Ok(()), // no mptcp_diag here
//! #   r => { r?; }
//! # }
//! for c in mptcp::diag::connections()? {
//!     println!("{:?} {} {} -> {}", c.token, c.state, c.local, c.remote);
//!     for sf in &c.subflows {
//!         println!("    {} -> {} ids {:?}/{:?}", sf.local, sf.remote, sf.local_id, sf.remote_id);
//!     }
//! }
//! let ours = mptcp::diag::connection_by_token(token)?;
//! assert_eq!(ours.local, stream.local_addr()?);
//! # Ok(()) }
//! ```
//!
//! Connections come from `mptcp_diag` (one message per MPTCP socket, with its
//! `mptcp_info`); subflows are TCP sockets whose upper-layer protocol is MPTCP, from a
//! TCP dump, joined to their connection by token.
//!
//! # Errors
//!
//! A kernel before 5.9 cannot list MPTCP sockets: [`Error::Unsupported`]. A later
//! kernel without the `mptcp_diag` handler (built without it, or the module missing and
//! not loadable): [`Error::MissingModule`] naming `mptcp_diag`.
//!
//! # What the kernel shows to whom
//!
//! Every caller sees every MPTCP socket of its network namespace with its state,
//! addresses and `mptcp_info`. A subflow's MPTCP attributes (tokens, address ids,
//! flags, mapping) are sent only to callers with `CAP_NET_ADMIN` in the namespace: an
//! unprivileged caller gets connections with an empty `subflows` list, and
//! [`Diag::subflows_visible`] says which case applies.

#[cfg(feature = "tokio")]
mod async_diag;
mod closed;
mod reply;
mod request;
mod state;
#[cfg(test)]
mod tests;

#[cfg(feature = "tokio")]
pub use async_diag::AsyncDiag;
pub use closed::{ClosedItem, ClosedTcpSockets};
pub use state::{ParseStateError, SocketState, States};

use crate::error::{Error, Result};
use crate::netlink::recv;
use crate::token::Token;
use crate::wire::info::MptcpInfo;
use crate::wire::netlink::{messages, Msg, RECV_BUF};
use crate::wire::subflow::TcpInfo;
use netlink_packet_core::{NLMSG_DONE, NLMSG_ERROR};
use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr as NlAddr};
use request::{DiagRequest, Proto};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

bitflags::bitflags! {
    /// `MPTCP_SUBFLOW_FLAG_*`: a subflow's handshake and state bits.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct SubflowFlags: u32 {
        /// The peer sent MP_CAPABLE on it.
        const MCAP_REM = mptcp_sys::MPTCP_SUBFLOW_FLAG_MCAP_REM;
        /// This side sent MP_CAPABLE on it.
        const MCAP_LOC = mptcp_sys::MPTCP_SUBFLOW_FLAG_MCAP_LOC;
        /// The peer sent MP_JOIN on it.
        const JOIN_REM = mptcp_sys::MPTCP_SUBFLOW_FLAG_JOIN_REM;
        /// This side sent MP_JOIN on it.
        const JOIN_LOC = mptcp_sys::MPTCP_SUBFLOW_FLAG_JOIN_LOC;
        /// The peer marked it backup.
        const BKUP_REM = mptcp_sys::MPTCP_SUBFLOW_FLAG_BKUP_REM;
        /// This side marked it backup.
        const BKUP_LOC = mptcp_sys::MPTCP_SUBFLOW_FLAG_BKUP_LOC;
        /// The MPTCP handshake on it completed.
        const FULLY_ESTABLISHED = mptcp_sys::MPTCP_SUBFLOW_FLAG_FULLY_ESTABLISHED;
        /// It is connected.
        const CONNECTED = mptcp_sys::MPTCP_SUBFLOW_FLAG_CONNECTED;
        /// It has a valid data-sequence mapping.
        const MAPVALID = mptcp_sys::MPTCP_SUBFLOW_FLAG_MAPVALID;
        // Bits a newer kernel may set are kept.
        const _ = !0;
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for SubflowFlags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_u32(self.bits())
    }
}

/// One MPTCP socket of the namespace: a connection with its subflows, or a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct DiagConnection {
    /// The local token; `None` for listeners and sockets without a connection (and when
    /// the kernel sent no `mptcp_info`).
    pub token: Option<Token>,
    /// The MPTCP socket's state (`Listen` for listeners).
    pub state: SocketState,
    /// Local address and port (of the initial subflow).
    pub local: SocketAddr,
    /// Remote address and port (unspecified for listeners).
    pub remote: SocketAddr,
    /// The owner's uid.
    pub uid: u32,
    /// The socket's inode (`/proc/<pid>/fd` links to `socket:[inode]`).
    pub inode: u64,
    /// The kernel's socket cookie (as `SO_COOKIE` returns it).
    pub cookie: u64,
    /// The owner's cgroup v2 id (the inode number of its directory under
    /// `/sys/fs/cgroup`), when the kernel sent it (`INET_DIAG_CGROUP_ID`, Linux 5.9+).
    pub cgroup_id: Option<u64>,
    /// The connection-level counters, when the kernel sent them.
    pub info: Option<MptcpInfo>,
    /// The subflows, in no particular order (empty for listeners, and for callers
    /// without `CAP_NET_ADMIN`).
    pub subflows: Vec<DiagSubflow>,
}

/// One subflow of a connection: a TCP socket whose upper-layer protocol is MPTCP.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct DiagSubflow {
    /// The TCP state of the subflow.
    pub state: SocketState,
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
    /// The connection's local token (`MPTCP_SUBFLOW_ATTR_TOKEN_LOC`).
    pub token: Option<Token>,
    /// The peer's token (`MPTCP_SUBFLOW_ATTR_TOKEN_REM`); `None` where the kernel sends
    /// 0 (the initial subflow, and joins accepted by this side).
    pub remote_token: Option<Token>,
    /// The local address id.
    pub local_id: Option<u8>,
    /// The remote address id.
    pub remote_id: Option<u8>,
    /// Handshake and state bits (backup, fully established ...).
    pub flags: Option<SubflowFlags>,
    /// The current mapping's data sequence number.
    pub map_seq: Option<u64>,
    /// The current mapping's subflow sequence number (relative).
    pub map_subflow_seq: Option<u32>,
    /// The current mapping's length.
    pub map_data_len: Option<u16>,
    /// The relative write sequence number.
    pub relative_write_seq: Option<u32>,
    /// The subflow's initial sequence number offset.
    pub ssn_offset: Option<u32>,
    /// The subflow's own TCP counters (bytes sent and received, RTT ...).
    pub tcp_info: Option<TcpInfo>,
}

/// A TCP socket as the kernel destroyed it ([`ClosedTcpSockets`]): any TCP socket of
/// the namespace, an MPTCP subflow among them (the broadcast does not say which: match
/// the addresses against the subflows a listing showed).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ClosedTcp {
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
    /// The kernel's socket cookie.
    pub cookie: u64,
    /// Its TCP counters as they ended (bytes sent, acknowledged, received ...).
    pub tcp_info: Option<TcpInfo>,
}

fn unspecified() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

/// An empty record (unspecified addresses, state `Close`, nothing else), for building
/// test data field by field.
impl Default for DiagConnection {
    fn default() -> Self {
        DiagConnection {
            token: None,
            state: SocketState::Close,
            local: unspecified(),
            remote: unspecified(),
            uid: 0,
            inode: 0,
            cookie: 0,
            cgroup_id: None,
            info: None,
            subflows: Vec::new(),
        }
    }
}

/// An empty record (unspecified addresses, state `Close`, nothing else), for building
/// test data field by field.
impl Default for DiagSubflow {
    fn default() -> Self {
        DiagSubflow {
            state: SocketState::Close,
            local: unspecified(),
            remote: unspecified(),
            token: None,
            remote_token: None,
            local_id: None,
            remote_id: None,
            flags: None,
            map_seq: None,
            map_subflow_seq: None,
            map_data_len: None,
            relative_write_seq: None,
            ssn_offset: None,
            tcp_info: None,
        }
    }
}

impl DiagSubflow {
    /// Whether either side marked the subflow backup.
    pub fn is_backup(&self) -> Option<bool> {
        self.flags
            .map(|f| f.intersects(SubflowFlags::BKUP_LOC | SubflowFlags::BKUP_REM))
    }
}

/// Which MPTCP sockets to list. The states and the ports and addresses are filtered by
/// the kernel (its state mask and filter bytecode); a token asks the kernel for that one
/// connection.
///
/// ```
/// use mptcp::diag::{Filter, SocketState};
/// let f = Filter::new().state(SocketState::Established).remote_port(443);
/// # let _ = f;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    states: u32,
    local_port: Option<u16>,
    remote_port: Option<u16>,
    local_addr: Option<IpAddr>,
    remote_addr: Option<IpAddr>,
    token: Option<Token>,
}

impl Default for Filter {
    fn default() -> Self {
        Filter::new()
    }
}

impl Filter {
    /// Every MPTCP socket, listeners included.
    pub fn new() -> Filter {
        Filter {
            states: States::ALL.bits(),
            local_port: None,
            remote_port: None,
            local_addr: None,
            remote_addr: None,
            token: None,
        }
    }

    /// Only sockets in these states (replaces the states chosen before).
    pub fn states(mut self, states: States) -> Filter {
        self.states = states.bits();
        self
    }

    /// Only sockets in this state (added to the states chosen with this method; the
    /// first call replaces "all states").
    pub fn state(mut self, state: SocketState) -> Filter {
        if self.states == States::ALL.bits() {
            self.states = 0;
        }
        self.states |= States::of(state).bits();
        self
    }

    /// Only sockets with this local port.
    pub fn local_port(mut self, port: u16) -> Filter {
        self.local_port = Some(port);
        self
    }

    /// Only sockets with this remote port.
    pub fn remote_port(mut self, port: u16) -> Filter {
        self.remote_port = Some(port);
        self
    }

    /// Only sockets with this local address.
    pub fn local_addr(mut self, addr: IpAddr) -> Filter {
        self.local_addr = Some(addr);
        self
    }

    /// Only sockets with this remote address.
    pub fn remote_addr(mut self, addr: IpAddr) -> Filter {
        self.remote_addr = Some(addr);
        self
    }

    /// Only the connection with this local token.
    pub fn token(mut self, token: Token) -> Filter {
        self.token = Some(token);
        self
    }

    /// The address families worth a dump: both, or the one the addresses name.
    fn families(&self) -> Vec<u8> {
        let named = [self.local_addr, self.remote_addr]
            .into_iter()
            .flatten()
            .map(|a| match a {
                IpAddr::V4(_) => libc::AF_INET as u8,
                IpAddr::V6(_) => libc::AF_INET6 as u8,
            })
            .collect::<Vec<_>>();
        match named.as_slice() {
            [] => vec![libc::AF_INET as u8, libc::AF_INET6 as u8],
            [f, rest @ ..] if rest.iter().all(|r| r == f) => vec![*f],
            // A local address of one family and a remote one of the other: nothing.
            _ => Vec::new(),
        }
    }

    /// What the kernel cannot check itself: the token of a dump (not a lookup).
    fn matches(&self, c: &DiagConnection) -> bool {
        self.token.is_none_or(|t| c.token == Some(t))
    }
}

/// A socket-diagnostics client in the caller's network namespace.
///
/// ```
/// use mptcp::diag::{Diag, Filter};
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let listener = mptcp::listen("127.0.0.1:0")?; // loopback: no namespace needed
///     let stream = mptcp::connect(listener.local_addr()?)?;
///     if !mptcp::is_mptcp(&stream)? {
///         return Ok(()); // this machine has no MPTCP
///     }
///     let mut diag = Diag::new()?;
///     let mine = Filter::new().local_port(stream.local_addr()?.port());
///     let conns = diag.connections(&mine)?; // subflows too, with CAP_NET_ADMIN
///     assert_eq!(conns.len(), 1, "the connection just made");
///     println!("{:?} {} -> {}", conns[0].token, conns[0].local, conns[0].remote);
///     Ok(())
/// }
/// ```
#[derive(Debug)]
pub struct Diag {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
    /// Whether the last TCP dump carried ULP information (see
    /// [`subflows_visible`](Self::subflows_visible)).
    ulp_seen: Option<bool>,
}

/// The kernel module that lists MPTCP sockets.
const MODULE: &str = "mptcp_diag";
const FEATURE: &str = "listing MPTCP sockets (sock_diag)";

impl Diag {
    /// Opens a `NETLINK_SOCK_DIAG` socket.
    pub fn new() -> Result<Diag> {
        Ok(Diag {
            sock: open_socket()?,
            seq: 0,
            buf: Vec::with_capacity(RECV_BUF),
            ulp_seen: None,
        })
    }

    /// Whether the kernel showed this caller the subflows' MPTCP attributes in the last
    /// listing that had established connections to show them for (`None` before one):
    /// `false` means no TCP socket came with MPTCP information although connections
    /// exist, i.e. the caller lacks `CAP_NET_ADMIN` (before Linux 6.15) and connections
    /// are listed without subflows.
    pub fn subflows_visible(&self) -> Option<bool> {
        self.ulp_seen
    }

    /// Every MPTCP connection and listener matching `filter`, each connection with its
    /// subflows.
    #[doc(alias = "mptcp_diag")]
    #[doc(alias = "SOCK_DIAG_BY_FAMILY")]
    #[doc(alias = "INET_DIAG_REQ_PROTOCOL")]
    pub fn connections(&mut self, filter: &Filter) -> Result<Vec<DiagConnection>> {
        let mut l = Listing::new(filter);
        while let Some(req) = l.next_request() {
            let r = self.transact(&req, |p| l.on_reply(p));
            l.on_done(r)?;
        }
        let (conns, ulp) = l.finish();
        if ulp.is_some() {
            self.ulp_seen = ulp;
        }
        Ok(conns)
    }

    /// The connection with this local token, with its subflows;
    /// [`Error::NoSuchConnection`] when there is none.
    #[doc(alias = "mptcp_diag_dump_one")]
    pub fn connection_by_token(&mut self, token: Token) -> Result<DiagConnection> {
        self.connections(&Filter::new().token(token))?
            .pop()
            .ok_or(Error::NoSuchConnection(token))
    }

    /// Sends a request and hands each reply's payload to `each` until the dump ends.
    fn transact(
        &mut self,
        req: &DiagRequest,
        mut each: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let (seq, bytes) = serialize_next(&mut self.seq, req);
        self.sock
            .send(&bytes, 0)
            .map_err(|e| Error::os("send sock_diag request", e))?;
        loop {
            recv(&self.sock, &mut self.buf).map_err(|e| Error::os("receive sock_diag reply", e))?;
            if on_datagram(&self.buf, seq, req, &mut each)? {
                return Ok(());
            }
        }
    }
}

/// Which part of a listing a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The MPTCP connections (dumps per family, or a probe and a lookup by token).
    Connections,
    /// Asked after a connection request found no MPTCP handler: does the kernel read
    /// `INET_DIAG_REQ_PROTOCOL` at all?
    ProtocolProbe,
    /// The TCP dumps the subflows are among.
    Subflows,
}

/// The request's bytes with the client's next sequence number (both clients').
pub(crate) fn serialize_next(seq: &mut u32, req: &DiagRequest) -> (u32, Vec<u8>) {
    *seq = seq.wrapping_add(1);
    (*seq, req.serialize(*seq))
}

/// A `NETLINK_SOCK_DIAG` socket bound and connected to the kernel (both clients').
pub(crate) fn open_socket() -> Result<Socket> {
    let mut sock =
        Socket::new(NETLINK_SOCK_DIAG).map_err(|e| Error::os("socket(NETLINK_SOCK_DIAG)", e))?;
    sock.bind_auto()
        .map_err(|e| Error::os("bind netlink socket", e))?;
    sock.connect(&NlAddr::new(0, 0))
        .map_err(|e| Error::os("connect netlink socket", e))?;
    Ok(sock)
}

/// One listing in progress, without a socket: the requests to make, in turn, and what
/// their replies add up to. The blocking [`Diag`] and the tokio `AsyncDiag` drive it the
/// same way: take [`next_request`](Self::next_request), hand it each reply payload
/// ([`on_reply`](Self::on_reply)), then its outcome ([`on_done`](Self::on_done)).
pub(crate) struct Listing<'f> {
    filter: &'f Filter,
    queue: std::collections::VecDeque<(Stage, DiagRequest)>,
    /// The request in flight.
    current: Option<(Stage, DiagRequest)>,
    conns: Vec<DiagConnection>,
    by_token: HashMap<Token, usize>,
    tcp_seen: bool,
    ulp_seen: bool,
    /// The error a protocol probe decides about.
    pending: Option<Error>,
}

impl<'f> Listing<'f> {
    pub(crate) fn new(filter: &'f Filter) -> Self {
        let first: Vec<DiagRequest> = match filter.token {
            // A token is looked up by the kernel. The lookup answers an unknown token
            // with ENOENT, as a missing module does: an empty dump first tells the two
            // apart.
            Some(t) => vec![DiagRequest::probe(), DiagRequest::by_token(t.get())],
            // Anything else is a dump per address family with the kernel's state mask
            // and bytecode.
            None => filter
                .families()
                .into_iter()
                .map(|f| DiagRequest::dump(Proto::Mptcp, f, filter))
                .collect(),
        };
        Listing {
            filter,
            queue: first.into_iter().map(|r| (Stage::Connections, r)).collect(),
            current: None,
            conns: Vec::new(),
            by_token: HashMap::new(),
            tcp_seen: false,
            ulp_seen: false,
            pending: None,
        }
    }

    /// The next request to send; `None` when the listing is complete.
    pub(crate) fn next_request(&mut self) -> Option<DiagRequest> {
        self.current = self.queue.pop_front();
        self.current.as_ref().map(|(_, r)| r.clone())
    }

    /// One reply of the request in flight.
    pub(crate) fn on_reply(&mut self, payload: &[u8]) -> Result<()> {
        match self.current.as_ref().map(|(s, _)| *s) {
            Some(Stage::Connections) => self.add_connection(payload),
            Some(Stage::Subflows) => self.add_subflow(payload),
            Some(Stage::ProtocolProbe) | None => Ok(()),
        }
    }

    /// The outcome of the request in flight; an error ends the listing.
    pub(crate) fn on_done(&mut self, r: Result<()>) -> Result<()> {
        let Some((stage, req)) = self.current.take() else {
            return r;
        };
        match (stage, r) {
            // A lookup's ENOENT (after the probe found the handler): no such connection.
            (Stage::Connections, Err(Error::MissingModule { .. })) if !req.is_dump() => {}
            // No MPTCP handler: a missing module, or a kernel before 5.9, which ignores
            // the protocol attribute. A TCP dump carrying it tells them apart.
            (Stage::Connections, Err(e @ Error::MissingModule { .. })) => {
                self.queue.clear();
                self.queue
                    .push_back((Stage::ProtocolProbe, DiagRequest::protocol_probe()));
                self.current = None;
                self.pending = Some(e);
                return Ok(());
            }
            (Stage::ProtocolProbe, Ok(())) => {
                return Err(Error::Unsupported {
                    feature: "listing MPTCP sockets (mptcp_diag, INET_DIAG_REQ_PROTOCOL)",
                    since: Some("5.9"),
                })
            }
            (Stage::ProtocolProbe, Err(_)) => {
                return Err(self.pending.take().unwrap_or(Error::MissingModule {
                    module: MODULE,
                    feature: FEATURE,
                    errno: libc::ENOENT,
                }))
            }
            (_, r) => r?,
        }
        if stage == Stage::Connections
            && !self.queue.iter().any(|(s, _)| *s == Stage::Connections)
            && !self.by_token.is_empty()
        {
            // TCP dumps of both families: the subflows are among them.
            for f in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
                let req = DiagRequest::dump(Proto::Tcp, f, &Filter::new());
                self.queue.push_back((Stage::Subflows, req));
            }
        }
        Ok(())
    }

    fn add_connection(&mut self, payload: &[u8]) -> Result<()> {
        let c = reply::connection(payload)?;
        let keep = match self.filter.token {
            // The kernel found it by token: the rest of the filter is checked here.
            Some(_) => filter_accepts(self.filter, &c),
            None => self.filter.matches(&c),
        };
        if keep {
            if let Some(t) = c.token {
                self.by_token.insert(t, self.conns.len());
            }
            self.conns.push(c);
        }
        Ok(())
    }

    fn add_subflow(&mut self, payload: &[u8]) -> Result<()> {
        self.tcp_seen = true;
        let Some(sf) = reply::subflow(payload)? else {
            return Ok(());
        };
        self.ulp_seen = true;
        if let Some(&i) = sf.token.as_ref().and_then(|t| self.by_token.get(t)) {
            if let Some(c) = self.conns.get_mut(i) {
                c.subflows.push(sf);
            }
        }
        Ok(())
    }

    /// The connections, and whether subflow information was visible (when there were
    /// established connections whose subflows it would show).
    pub(crate) fn finish(self) -> (Vec<DiagConnection>, Option<bool>) {
        let established = self
            .conns
            .iter()
            .any(|c| c.token.is_some() && c.state == SocketState::Established);
        let ulp = (self.ulp_seen || (self.tcp_seen && established)).then_some(self.ulp_seen);
        (self.conns, ulp)
    }
}

/// Hands the replies in one datagram that answer request `seq` to `each`; whether the
/// request is complete (its DONE, its error, or a lookup's one answer).
pub(crate) fn on_datagram(
    buf: &[u8],
    seq: u32,
    req: &DiagRequest,
    each: &mut impl FnMut(&[u8]) -> Result<()>,
) -> Result<bool> {
    for m in messages(buf) {
        let m = m.map_err(|e| Error::decode("sock_diag reply", e.to_string()))?;
        if m.sequence_number() != seq {
            continue;
        }
        match step(&m)? {
            Step::Reply(p) => each(p)?,
            Step::Done => return Ok(true),
        }
    }
    Ok(!req.is_dump() && !buf.is_empty())
}

/// What one message means for a sock_diag request.
pub(crate) enum Step<'a> {
    Reply(&'a [u8]),
    Done,
}

pub(crate) fn step<'a>(m: &Msg<'a>) -> Result<Step<'a>> {
    let payload: &'a [u8] = m.payload();
    match m.message_type() {
        // A dump ends with DONE, a lookup's failure is an ERROR: both carry the code
        // first (negative errno, or 0).
        NLMSG_DONE | NLMSG_ERROR => {
            let code = payload
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .map(i32::from_ne_bytes)
                .unwrap_or(0);
            if code < 0 {
                Err(diag_error(-code))
            } else {
                Ok(Step::Done)
            }
        }
        _ => Ok(Step::Reply(payload)),
    }
}

/// The typed error for a sock_diag refusal.
fn diag_error(errno: i32) -> Error {
    match errno {
        // No handler for IPPROTO_MPTCP: the module is not built, not loaded and could
        // not be loaded, or (a probe tells, see `Listing::on_done`) a kernel before 5.9.
        libc::ENOENT => Error::MissingModule {
            module: MODULE,
            feature: FEATURE,
            errno,
        },
        libc::EPERM | libc::EACCES => Error::PermissionDenied {
            op: "list sockets (sock_diag)",
            message: None,
            errno,
        },
        _ => Error::os(
            "list sockets (sock_diag)",
            std::io::Error::from_raw_os_error(errno),
        ),
    }
}

/// Whether a looked-up connection passes the rest of the filter.
fn filter_accepts(f: &Filter, c: &DiagConnection) -> bool {
    fn ok<T: PartialEq>(want: Option<T>, have: T) -> bool {
        want.is_none_or(|w| w == have)
    }
    f.states & States::of(c.state).bits() != 0
        && ok(f.local_port, c.local.port())
        && ok(f.remote_port, c.remote.port())
        && ok(f.local_addr, c.local.ip())
        && ok(f.remote_addr, c.remote.ip())
}

/// Every MPTCP connection and listener of the caller's network namespace, each
/// connection with its subflows ([`Diag::connections`] with no filter).
#[doc(alias = "mptcp_diag")]
pub fn connections() -> Result<Vec<DiagConnection>> {
    Diag::new()?.connections(&Filter::new())
}

/// The connection with this local token ([`Diag::connection_by_token`]).
pub fn connection_by_token(token: Token) -> Result<DiagConnection> {
    Diag::new()?.connection_by_token(token)
}
