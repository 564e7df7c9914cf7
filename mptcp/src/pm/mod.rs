//! The MPTCP path manager over Generic Netlink (family `mptcp_pm`): what
//! `ip mptcp endpoint|limits|monitor` does, the userspace path manager's per-connection
//! commands, and events.
//!
//! ```no_run
//! use mptcp::pm::{Endpoint, EndpointFlags, PathManager};
//! let mut pm = PathManager::new()?;
//! let id = pm.add_endpoint(&Endpoint::new("198.51.100.1".parse().expect("address"), EndpointFlags::SUBFLOW))?;
//! for ep in pm.endpoints()? {
//!     println!("{} id {} {:?}", ep.addr, ep.id, ep.flags);
//! }
//! pm.delete_endpoint(id)?;
//! # Ok::<(), mptcp::Error>(())
//! ```
//!
//! Reading (endpoints, limits) needs no privilege; changing anything and subscribing to
//! events needs `CAP_NET_ADMIN` in the network namespace
//! ([`Error::PermissionDenied`](crate::Error::PermissionDenied)).

#[cfg(test)]
mod abi_tests;
mod event;
mod netlink;
mod ops;
#[cfg(test)]
mod prop_tests;

#[cfg(feature = "tokio")]
pub use event::EventStream;
pub use event::{
    ConnectionEvent, Event, EventFlags, EventItem, EventKind, Events, RawEvent, SubflowEvent,
};
pub use ops::SubflowHandle;

use crate::error::{Error, Result};
use crate::Token;
use mptcp_sys as sys;
use netlink::{Attr, Conn, Family, PmMessage};
use netlink_packet_generic::GenlMessage;
use std::net::{IpAddr, SocketAddr};

bitflags::bitflags! {
    /// Endpoint flags (`MPTCP_PM_ADDR_FLAG_*`). Bits this crate does not know are kept.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct EndpointFlags: u32 {
        /// Announce the address to peers (ADD_ADDR).
        const SIGNAL = sys::MPTCP_PM_ADDR_FLAG_SIGNAL;
        /// Open subflows from the address.
        const SUBFLOW = sys::MPTCP_PM_ADDR_FLAG_SUBFLOW;
        /// Subflows over it are backups.
        const BACKUP = sys::MPTCP_PM_ADDR_FLAG_BACKUP;
        /// Subflows to every announced address (Linux 5.15+).
        const FULLMESH = sys::MPTCP_PM_ADDR_FLAG_FULLMESH;
        /// Created by the kernel for a subflow it accepted (Linux 5.18+).
        const IMPLICIT = sys::MPTCP_PM_ADDR_FLAG_IMPLICIT;
        /// Laminar endpoint (Linux 6.18+).
        const LAMINAR = sys::MPTCP_PM_ADDR_FLAG_LAMINAR;
        const _ = !0;
    }
}

/// An endpoint of the in-kernel path manager (or an address of the userspace one).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Endpoint {
    /// The endpoint id (0: let the kernel choose, when adding).
    pub id: u8,
    /// The address.
    pub addr: IpAddr,
    /// The port, if any.
    pub port: Option<u16>,
    /// Flags.
    pub flags: EndpointFlags,
    /// Interface index, if bound to one.
    pub ifindex: Option<i32>,
}

impl Endpoint {
    /// An endpoint with an address and flags; id chosen by the kernel, no port or device.
    pub fn new(addr: IpAddr, flags: EndpointFlags) -> Endpoint {
        Endpoint {
            id: 0,
            addr,
            port: None,
            flags,
            ifindex: None,
        }
    }

    /// Sets the id.
    pub fn with_id(mut self, id: u8) -> Self {
        self.id = id;
        self
    }

    /// Sets the port.
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Binds to an interface index.
    pub fn with_ifindex(mut self, ifindex: i32) -> Self {
        self.ifindex = Some(ifindex);
        self
    }

    fn attrs(&self) -> Vec<Attr> {
        let mut v = vec![Attr::u16(
            sys::MPTCP_PM_ADDR_ATTR_FAMILY,
            family_of(&self.addr),
        )];
        match self.addr {
            IpAddr::V4(a) => v.push(Attr::bytes(sys::MPTCP_PM_ADDR_ATTR_ADDR4, &a.octets())),
            IpAddr::V6(a) => v.push(Attr::bytes(sys::MPTCP_PM_ADDR_ATTR_ADDR6, &a.octets())),
        }
        if self.id != 0 {
            v.push(Attr::u8(sys::MPTCP_PM_ADDR_ATTR_ID, self.id));
        }
        if let Some(p) = self.port {
            v.push(Attr::u16(sys::MPTCP_PM_ADDR_ATTR_PORT, p));
        }
        if !self.flags.is_empty() {
            v.push(Attr::u32(sys::MPTCP_PM_ADDR_ATTR_FLAGS, self.flags.bits()));
        }
        if let Some(i) = self.ifindex {
            v.push(Attr::i32(sys::MPTCP_PM_ADDR_ATTR_IF_IDX, i));
        }
        v
    }

    pub(crate) fn decode(nested: &Attr) -> Result<Endpoint> {
        let mut ep = Endpoint::new(IpAddr::from([0u8, 0, 0, 0]), EndpointFlags::empty());
        let children = nested.children().map_err(|e| bad(e.to_string()))?;
        for a in children {
            match a.id() {
                sys::MPTCP_PM_ADDR_ATTR_ID => ep.id = a.as_u8().unwrap_or(0),
                sys::MPTCP_PM_ADDR_ATTR_ADDR4 => {
                    let b: [u8; 4] = a
                        .value
                        .get(..4)
                        .and_then(|b| b.try_into().ok())
                        .ok_or_else(|| bad("short IPv4 address"))?;
                    ep.addr = IpAddr::from(b);
                }
                sys::MPTCP_PM_ADDR_ATTR_ADDR6 => {
                    let b: [u8; 16] = a
                        .value
                        .get(..16)
                        .and_then(|b| b.try_into().ok())
                        .ok_or_else(|| bad("short IPv6 address"))?;
                    ep.addr = IpAddr::from(b);
                }
                sys::MPTCP_PM_ADDR_ATTR_PORT => ep.port = a.as_u16().filter(|p| *p != 0),
                sys::MPTCP_PM_ADDR_ATTR_FLAGS => {
                    ep.flags = EndpointFlags::from_bits_retain(a.as_u32().unwrap_or(0))
                }
                sys::MPTCP_PM_ADDR_ATTR_IF_IDX => ep.ifindex = a.as_i32().filter(|i| *i != 0),
                _ => {}
            }
        }
        Ok(ep)
    }
}

fn family_of(a: &IpAddr) -> u16 {
    match a {
        IpAddr::V4(_) => libc::AF_INET as u16,
        IpAddr::V6(_) => libc::AF_INET6 as u16,
    }
}

/// A local address for the userspace path manager's commands: address, optional port, and
/// its address id.
fn local_attrs(addr: &SocketAddr, id: Option<u8>, flags: EndpointFlags) -> Vec<Attr> {
    let mut ep = Endpoint::new(addr.ip(), flags);
    if addr.port() != 0 {
        ep.port = Some(addr.port());
    }
    if let Some(id) = id {
        ep.id = id;
    }
    ep.attrs()
}

fn bad(msg: impl Into<String>) -> Error {
    Error::decode("path manager reply", msg)
}

/// The in-kernel path manager's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Maximum additional subflows per connection (`subflows`, at most 8).
    pub subflows: Option<u32>,
    /// Maximum accepted ADD_ADDR per connection (`add_addr_accepted`, at most 8).
    pub add_addr_accepted: Option<u32>,
}

/// Which path manager a network namespace uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PmKind {
    /// The in-kernel path manager, driven by endpoints and limits.
    Kernel,
    /// The userspace path manager: a daemon (or this crate) drives each connection.
    Userspace,
}

/// The path manager of the calling thread's network namespace, from
/// `net.mptcp.path_manager` (Linux 6.15+) or `net.mptcp.pm_type` (5.19+).
#[doc(alias = "net.mptcp.path_manager")]
#[doc(alias = "net.mptcp.pm_type")]
pub fn kind() -> Result<PmKind> {
    if let Ok(v) = std::fs::read_to_string("/proc/sys/net/mptcp/path_manager") {
        return Ok(if v.trim() == "userspace" {
            PmKind::Userspace
        } else {
            PmKind::Kernel
        });
    }
    match std::fs::read_to_string("/proc/sys/net/mptcp/pm_type") {
        Ok(v) => Ok(if v.trim() == "1" {
            PmKind::Userspace
        } else {
            PmKind::Kernel
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PmKind::Kernel),
        Err(e) => Err(Error::os("read net.mptcp.pm_type", e)),
    }
}

/// Selects the path manager of the calling thread's network namespace (for new
/// connections), writing `net.mptcp.path_manager` (6.15+) or else `net.mptcp.pm_type`
/// (5.19+). Needs CAP_NET_ADMIN (or root) in that namespace.
///
/// ```no_run
/// mptcp::pm::set_kind(mptcp::pm::PmKind::Userspace)?;
/// # Ok::<(), mptcp::Error>(())
/// ```
#[doc(alias = "net.mptcp.path_manager")]
#[doc(alias = "net.mptcp.pm_type")]
pub fn set_kind(kind: PmKind) -> Result<()> {
    let (name, value) = match kind {
        PmKind::Kernel => ("kernel", "0"),
        PmKind::Userspace => ("userspace", "1"),
    };
    let write = |path: &str, v: &str| std::fs::write(path, v);
    match write("/proc/sys/net/mptcp/path_manager", name) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match write("/proc/sys/net/mptcp/pm_type", value) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Unsupported {
                    feature: "selecting the path manager (net.mptcp.pm_type)",
                    since: Some("5.19"),
                }),
                Err(e) => Err(sysctl_error("write net.mptcp.pm_type", e)),
            }
        }
        Err(e) => Err(sysctl_error("write net.mptcp.path_manager", e)),
    }
}

/// A sysctl write refused for lack of privilege is the same error as a refused netlink
/// request: it names CAP_NET_ADMIN.
fn sysctl_error(op: &'static str, e: std::io::Error) -> Error {
    match e.raw_os_error() {
        Some(errno @ (libc::EACCES | libc::EPERM)) => Error::PermissionDenied {
            op,
            message: None,
            errno,
        },
        _ => Error::os(op, e),
    }
}

/// A client of the path manager of the network namespace it was created in.
#[derive(Debug)]
#[doc(alias = "mptcp_pm")]
#[doc(alias = "MPTCP_PM_NAME")]
pub struct PathManager {
    conn: Conn,
    family: Family,
    /// Whether GET_ADDR honours a token (probed on first use).
    token_dump: Option<bool>,
}

impl PathManager {
    /// Opens a Generic Netlink socket and resolves the `mptcp_pm` family.
    pub fn new() -> Result<PathManager> {
        let mut conn = Conn::open()?;
        let family = conn.family("mptcp_pm")?;
        Ok(PathManager {
            conn,
            family,
            token_dump: None,
        })
    }

    /// The Generic Netlink id the kernel assigned to the `mptcp_pm` family.
    pub fn family_id(&self) -> u16 {
        self.family.id
    }

    fn request(
        &mut self,
        op: &'static str,
        cmd: u32,
        attrs: Vec<Attr>,
        dump: bool,
    ) -> Result<Vec<PmMessage>> {
        let mut msg = GenlMessage::from_payload(PmMessage {
            cmd: cmd as u8,
            attrs,
        });
        msg.set_resolved_family_id(self.family.id);
        self.conn.transact(op, msg, dump).map_err(|e| match &e {
            // Per-connection commands on a connection of the in-kernel PM.
            Error::Netlink {
                op,
                message: Some(m),
                source,
            } if m.contains("userspace PM not selected") => Error::NeedsUserspacePm {
                op,
                errno: source.raw_os_error().unwrap_or(libc::EINVAL),
            },
            // A command the kernel does not know: Generic Netlink answers EOPNOTSUPP
            // with no extended-ack text. With a text, the kernel knew the command and
            // said what is wrong: keep its words.
            Error::Netlink {
                message: None,
                source,
                ..
            } if source.raw_os_error() == Some(libc::EOPNOTSUPP) => match unsupported_cmd(cmd) {
                Some((feature, since)) => Error::Unsupported {
                    feature,
                    since: Some(since),
                },
                None => e,
            },
            _ => e,
        })
    }

    /// Adds an endpoint (`ip mptcp endpoint add`) and returns its id (the kernel picks
    /// one when `ep.id` is 0).
    #[doc(alias = "MPTCP_PM_CMD_ADD_ADDR")]
    pub fn add_endpoint(&mut self, ep: &Endpoint) -> Result<u8> {
        self.request(
            "add endpoint",
            sys::MPTCP_PM_CMD_ADD_ADDR,
            vec![Attr::nested(sys::MPTCP_PM_ATTR_ADDR, &ep.attrs())],
            false,
        )?;
        if ep.id != 0 {
            return Ok(ep.id);
        }
        // Port 0 means no port: the kernel lists such an endpoint without one.
        let port = ep.port.unwrap_or(0);
        self.endpoints()?
            .into_iter()
            .find(|e| e.addr == ep.addr && e.port.unwrap_or(0) == port)
            .map(|e| e.id)
            .ok_or_else(|| bad("the added endpoint is not listed"))
    }

    /// Deletes the endpoint with this id (`ip mptcp endpoint delete id N`). Id 0 is not
    /// an endpoint: it names the address of connections' initial subflows, which
    /// [`delete_endpoint_addr`](Self::delete_endpoint_addr) takes with that address; here
    /// it is [`Error::InvalidArgument`] (the kernel would answer success and delete
    /// nothing).
    #[doc(alias = "MPTCP_PM_CMD_DEL_ADDR")]
    pub fn delete_endpoint(&mut self, id: u8) -> Result<()> {
        if id == 0 {
            return Err(Error::invalid(
                "delete endpoint",
                "id 0 is no endpoint (it names the initial subflows' address: give that \
                 address with delete_endpoint_addr)",
            ));
        }
        let addr = vec![Attr::u8(sys::MPTCP_PM_ADDR_ATTR_ID, id)];
        self.request(
            "delete endpoint",
            sys::MPTCP_PM_CMD_DEL_ADDR,
            vec![Attr::nested(sys::MPTCP_PM_ATTR_ADDR, &addr)],
            false,
        )
        .map(drop)
    }

    /// Deletes an endpoint given by id and address (`ip mptcp endpoint delete id N ADDR`;
    /// id 0 names the initial subflows' address). For a non-zero id the address must be
    /// that endpoint's, else [`Error::InvalidArgument`] and nothing is deleted (the
    /// kernel itself would go by the id alone).
    #[doc(alias = "MPTCP_PM_CMD_DEL_ADDR")]
    pub fn delete_endpoint_addr(&mut self, id: u8, addr: IpAddr) -> Result<()> {
        if id != 0 {
            let current = self.endpoint(id)?;
            if current.addr != addr {
                return Err(Error::invalid(
                    "delete endpoint",
                    format!("endpoint {id} has the address {}, not {addr}", current.addr),
                ));
            }
        }
        let ep = Endpoint::new(addr, EndpointFlags::empty()).with_id(id);
        let mut attrs = ep.attrs();
        if id == 0 {
            attrs.push(Attr::u8(sys::MPTCP_PM_ADDR_ATTR_ID, 0));
        }
        self.request(
            "delete endpoint",
            sys::MPTCP_PM_CMD_DEL_ADDR,
            vec![Attr::nested(sys::MPTCP_PM_ATTR_ADDR, &attrs)],
            false,
        )
        .map(drop)
    }

    /// The endpoint with this id (`ip mptcp endpoint show id N`).
    #[doc(alias = "MPTCP_PM_CMD_GET_ADDR")]
    pub fn endpoint(&mut self, id: u8) -> Result<Endpoint> {
        let addr = vec![Attr::u8(sys::MPTCP_PM_ADDR_ATTR_ID, id)];
        let replies = self.request(
            "get endpoint",
            sys::MPTCP_PM_CMD_GET_ADDR,
            vec![Attr::nested(sys::MPTCP_PM_ATTR_ADDR, &addr)],
            false,
        )?;
        endpoints_of(&replies)?
            .into_iter()
            .next()
            .ok_or_else(|| bad("no endpoint in the reply"))
    }

    /// All endpoints (`ip mptcp endpoint show`).
    #[doc(alias = "MPTCP_PM_CMD_GET_ADDR")]
    pub fn endpoints(&mut self) -> Result<Vec<Endpoint>> {
        let replies = self.request("dump endpoints", sys::MPTCP_PM_CMD_GET_ADDR, vec![], true)?;
        endpoints_of(&replies)
    }

    /// Deletes every endpoint (`ip mptcp endpoint flush`).
    #[doc(alias = "MPTCP_PM_CMD_FLUSH_ADDRS")]
    pub fn flush_endpoints(&mut self) -> Result<()> {
        self.request(
            "flush endpoints",
            sys::MPTCP_PM_CMD_FLUSH_ADDRS,
            vec![],
            false,
        )
        .map(drop)
    }

    /// Changes the flags of an endpoint (`ip mptcp endpoint change id N backup|nobackup
    /// fullmesh|nofullmesh`): the kernel applies `backup` and `fullmesh` from `flags`.
    #[doc(alias = "MPTCP_PM_CMD_SET_FLAGS")]
    pub fn set_endpoint_flags(&mut self, id: u8, flags: EndpointFlags) -> Result<()> {
        let attrs = vec![
            Attr::u8(sys::MPTCP_PM_ADDR_ATTR_ID, id),
            Attr::u32(sys::MPTCP_PM_ADDR_ATTR_FLAGS, flags.bits()),
        ];
        self.request(
            "change endpoint flags",
            sys::MPTCP_PM_CMD_SET_FLAGS,
            vec![Attr::nested(sys::MPTCP_PM_ATTR_ADDR, &attrs)],
            false,
        )
        .map(drop)
    }

    /// The limits (`ip mptcp limits show`).
    #[doc(alias = "MPTCP_PM_CMD_GET_LIMITS")]
    pub fn limits(&mut self) -> Result<Limits> {
        let replies = self.request("get limits", sys::MPTCP_PM_CMD_GET_LIMITS, vec![], false)?;
        let mut l = Limits::default();
        for a in replies.iter().flat_map(|m| &m.attrs) {
            match a.id() {
                sys::MPTCP_PM_ATTR_SUBFLOWS => l.subflows = a.as_u32(),
                sys::MPTCP_PM_ATTR_RCV_ADD_ADDRS => l.add_addr_accepted = a.as_u32(),
                _ => {}
            }
        }
        Ok(l)
    }

    /// Sets the limits given (`ip mptcp limits set`); `None` fields stay as they are.
    #[doc(alias = "MPTCP_PM_CMD_SET_LIMITS")]
    pub fn set_limits(&mut self, limits: Limits) -> Result<()> {
        let mut attrs = Vec::new();
        if let Some(v) = limits.add_addr_accepted {
            attrs.push(Attr::u32(sys::MPTCP_PM_ATTR_RCV_ADD_ADDRS, v));
        }
        if let Some(v) = limits.subflows {
            attrs.push(Attr::u32(sys::MPTCP_PM_ATTR_SUBFLOWS, v));
        }
        self.request("set limits", sys::MPTCP_PM_CMD_SET_LIMITS, attrs, false)
            .map(drop)
    }

    /// Userspace PM: announces a local address (with a nonzero id) on the connection with
    /// this token (ADD_ADDR).
    #[doc(alias = "MPTCP_PM_CMD_ANNOUNCE")]
    pub fn announce(&mut self, token: Token, id: u8, addr: SocketAddr) -> Result<()> {
        let ep = local_attrs(&addr, Some(id), EndpointFlags::SIGNAL);
        self.request(
            "announce address",
            sys::MPTCP_PM_CMD_ANNOUNCE,
            vec![
                Attr::u32(sys::MPTCP_PM_ATTR_TOKEN, token.get()),
                Attr::nested(sys::MPTCP_PM_ATTR_ADDR, &ep),
            ],
            false,
        )
        .map(drop)
    }

    /// Userspace PM: withdraws the announced address with this id (REMOVE_ADDR).
    #[doc(alias = "MPTCP_PM_CMD_REMOVE")]
    pub fn remove(&mut self, token: Token, id: u8) -> Result<()> {
        self.request(
            "remove address",
            sys::MPTCP_PM_CMD_REMOVE,
            vec![
                Attr::u32(sys::MPTCP_PM_ATTR_TOKEN, token.get()),
                Attr::u8(sys::MPTCP_PM_ATTR_LOC_ID, id),
            ],
            false,
        )
        .map(drop)
    }

    /// A per-subflow userspace-PM command: token, local address (with its attributes),
    /// remote address.
    fn subflow_request(
        &mut self,
        op: &'static str,
        cmd: u32,
        token: Token,
        local: Vec<Attr>,
        remote: &SocketAddr,
    ) -> Result<()> {
        let r = local_attrs(remote, None, EndpointFlags::empty());
        self.request(
            op,
            cmd,
            vec![
                Attr::u32(sys::MPTCP_PM_ATTR_TOKEN, token.get()),
                Attr::nested(sys::MPTCP_PM_ATTR_ADDR, &local),
                Attr::nested(sys::MPTCP_PM_ATTR_ADDR_REMOTE, &r),
            ],
            false,
        )
        .map(drop)
    }

    /// Userspace PM: opens a subflow from `local` (address id `local_id`; port 0 lets
    /// the kernel choose) to `remote`.
    #[doc(alias = "MPTCP_PM_CMD_SUBFLOW_CREATE")]
    pub fn subflow_create(
        &mut self,
        token: Token,
        local_id: u8,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<()> {
        let l = local_attrs(&local, Some(local_id), EndpointFlags::empty());
        self.subflow_request(
            "create subflow",
            sys::MPTCP_PM_CMD_SUBFLOW_CREATE,
            token,
            l,
            &remote,
        )
    }

    /// Userspace PM: closes the subflow between `local` and `remote` (both with ports).
    #[doc(alias = "MPTCP_PM_CMD_SUBFLOW_DESTROY")]
    pub fn subflow_destroy(
        &mut self,
        token: Token,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<()> {
        let l = local_attrs(&local, None, EndpointFlags::empty());
        self.subflow_request(
            "destroy subflow",
            sys::MPTCP_PM_CMD_SUBFLOW_DESTROY,
            token,
            l,
            &remote,
        )
    }

    /// Userspace PM: sets or clears backup on the subflow between `local` and `remote`;
    /// the kernel sends MP_PRIO to the peer.
    #[doc(alias = "MPTCP_PM_CMD_SET_FLAGS")]
    pub fn set_backup(
        &mut self,
        token: Token,
        local: SocketAddr,
        remote: SocketAddr,
        backup: bool,
    ) -> Result<()> {
        let flags = if backup {
            EndpointFlags::BACKUP
        } else {
            EndpointFlags::empty()
        };
        let mut l = local_attrs(&local, None, EndpointFlags::empty());
        l.push(Attr::u32(sys::MPTCP_PM_ADDR_ATTR_FLAGS, flags.bits()));
        self.subflow_request(
            "set subflow priority",
            sys::MPTCP_PM_CMD_SET_FLAGS,
            token,
            l,
            &remote,
        )
    }

    /// Userspace PM: the addresses announced on the connection with this token.
    ///
    /// Kernels before 6.7 ignore the token of this request and would list the in-kernel
    /// path manager's endpoints instead; that is detected (once per client, by asking
    /// about token 0, which no connection has) and reported as [`Error::Unsupported`].
    #[doc(alias = "MPTCP_PM_CMD_GET_ADDR")]
    pub fn announced(&mut self, token: Token) -> Result<Vec<Endpoint>> {
        if self.token_dump.is_none() {
            let probe = self.request(
                "list announced addresses",
                sys::MPTCP_PM_CMD_GET_ADDR,
                vec![Attr::u32(sys::MPTCP_PM_ATTR_TOKEN, 0)],
                true,
            );
            self.token_dump = Some(probe.is_err());
        }
        if self.token_dump == Some(false) {
            return Err(Error::Unsupported {
                feature: "listing a connection's addresses (MPTCP_PM_CMD_GET_ADDR with a token)",
                since: Some("6.7"),
            });
        }
        let replies = self.request(
            "list announced addresses",
            sys::MPTCP_PM_CMD_GET_ADDR,
            vec![Attr::u32(sys::MPTCP_PM_ATTR_TOKEN, token.get())],
            true,
        )?;
        endpoints_of(&replies)
    }

    /// Subscribes to the path manager's events (needs CAP_NET_ADMIN).
    #[doc(alias = "mptcp_pm_events")]
    #[doc(alias = "MPTCP_PM_EV_GRP_NAME")]
    pub fn events(&self) -> Result<Events> {
        let group = self
            .family
            .groups
            .iter()
            .find(|(n, _)| {
                n.as_bytes() == &sys::MPTCP_PM_EV_GRP_NAME[..sys::MPTCP_PM_EV_GRP_NAME.len() - 1]
            })
            .map(|(_, id)| *id)
            .ok_or(Error::Unsupported {
                feature: "the mptcp_pm_events multicast group",
                since: Some("5.12"),
            })?;
        Events::subscribe(group)
    }
}

fn endpoints_of(replies: &[PmMessage]) -> Result<Vec<Endpoint>> {
    replies
        .iter()
        .flat_map(|m| &m.attrs)
        .filter(|a| a.id() == sys::MPTCP_PM_ATTR_ADDR)
        .map(Endpoint::decode)
        .collect()
}

/// The feature and kernel version of a command, for "not supported" errors.
fn unsupported_cmd(cmd: u32) -> Option<(&'static str, &'static str)> {
    Some(match cmd {
        sys::MPTCP_PM_CMD_SET_FLAGS => ("MPTCP_PM_CMD_SET_FLAGS", "5.12"),
        sys::MPTCP_PM_CMD_ANNOUNCE => ("MPTCP_PM_CMD_ANNOUNCE (userspace path manager)", "5.19"),
        sys::MPTCP_PM_CMD_REMOVE => ("MPTCP_PM_CMD_REMOVE (userspace path manager)", "5.19"),
        sys::MPTCP_PM_CMD_SUBFLOW_CREATE => (
            "MPTCP_PM_CMD_SUBFLOW_CREATE (userspace path manager)",
            "5.19",
        ),
        sys::MPTCP_PM_CMD_SUBFLOW_DESTROY => (
            "MPTCP_PM_CMD_SUBFLOW_DESTROY (userspace path manager)",
            "5.19",
        ),
        _ => return None,
    })
}

/// The path-manager client for async code (feature `tokio`): the same requests as
/// [`PathManager`], as `Send` futures.
///
/// The kernel answers path-manager requests synchronously while they are sent, so each
/// request is a short blocking exchange; it runs on tokio's blocking pool so it never
/// occupies a runtime worker. Events are a real async stream: [`Events::into_stream`].
///
/// ```no_run
/// # async fn f() -> mptcp::Result<()> {
/// let pm = mptcp::pm::AsyncPathManager::new().await?;
/// let limits = pm.limits().await?;
/// println!("{limits:?}");
/// # Ok(()) }
/// ```
#[cfg(feature = "tokio")]
#[derive(Debug, Clone)]
pub struct AsyncPathManager {
    inner: std::sync::Arc<std::sync::Mutex<PathManager>>,
}

#[cfg(feature = "tokio")]
macro_rules! async_pm {
    ($( $(#[$m:meta])* fn $name:ident($($arg:ident : $ty:ty),*) -> $ret:ty => |$pm:ident| $body:expr; )*) => {
        impl AsyncPathManager {
            /// Opens a client (in the calling thread's network namespace).
            pub async fn new() -> Result<Self> {
                Ok(AsyncPathManager {
                    inner: std::sync::Arc::new(std::sync::Mutex::new(PathManager::new()?)),
                })
            }

            async fn call<T: Send + 'static>(
                &self,
                f: impl FnOnce(&mut PathManager) -> Result<T> + Send + 'static,
            ) -> Result<T> {
                let inner = self.inner.clone();
                tokio::task::spawn_blocking(move || {
                    let mut pm = inner.lock().unwrap_or_else(|p| p.into_inner());
                    f(&mut pm)
                })
                .await
                .map_err(|e| Error::os("path manager task", std::io::Error::other(e.to_string())))?
            }

            $( $(#[$m])* pub async fn $name(&self, $($arg: $ty),*) -> Result<$ret> {
                self.call(move |$pm| $body).await
            } )*
        }
    };
}

#[cfg(feature = "tokio")]
async_pm! {
    /// [`PathManager::add_endpoint`].
    fn add_endpoint(ep: Endpoint) -> u8 => |pm| pm.add_endpoint(&ep);
    /// [`PathManager::delete_endpoint`].
    fn delete_endpoint(id: u8) -> () => |pm| pm.delete_endpoint(id);
    /// [`PathManager::delete_endpoint_addr`].
    fn delete_endpoint_addr(id: u8, addr: IpAddr) -> () => |pm| pm.delete_endpoint_addr(id, addr);
    /// [`PathManager::endpoint`].
    fn endpoint(id: u8) -> Endpoint => |pm| pm.endpoint(id);
    /// [`PathManager::endpoints`].
    fn endpoints() -> Vec<Endpoint> => |pm| pm.endpoints();
    /// [`PathManager::flush_endpoints`].
    fn flush_endpoints() -> () => |pm| pm.flush_endpoints();
    /// [`PathManager::set_endpoint_flags`].
    fn set_endpoint_flags(id: u8, flags: EndpointFlags) -> () => |pm| pm.set_endpoint_flags(id, flags);
    /// [`PathManager::limits`].
    fn limits() -> Limits => |pm| pm.limits();
    /// [`PathManager::set_limits`].
    fn set_limits(limits: Limits) -> () => |pm| pm.set_limits(limits);
    /// [`PathManager::announce`].
    fn announce(token: Token, id: u8, addr: SocketAddr) -> () => |pm| pm.announce(token, id, addr);
    /// [`PathManager::remove`].
    fn remove(token: Token, id: u8) -> () => |pm| pm.remove(token, id);
    /// [`PathManager::subflow_create`].
    fn subflow_create(token: Token, local_id: u8, local: SocketAddr, remote: SocketAddr) -> () => |pm| pm.subflow_create(token, local_id, local, remote);
    /// [`PathManager::subflow_destroy`].
    fn subflow_destroy(token: Token, local: SocketAddr, remote: SocketAddr) -> () => |pm| pm.subflow_destroy(token, local, remote);
    /// [`PathManager::set_backup`].
    fn set_backup(token: Token, local: SocketAddr, remote: SocketAddr, backup: bool) -> () => |pm| pm.set_backup(token, local, remote, backup);
    /// [`PathManager::announced`].
    fn announced(token: Token) -> Vec<Endpoint> => |pm| pm.announced(token);
    /// [`PathManager::events`], as a stream (call inside the runtime).
    fn events() -> Events => |pm| pm.events();
}
