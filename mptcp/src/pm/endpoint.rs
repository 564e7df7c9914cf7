//! Endpoints and limits of the in-kernel path manager (`ip mptcp endpoint|limits`).

use super::netlink::{Attr, PmMessage};
use super::PathManager;
use crate::error::{Error, Result};
use mptcp_sys as sys;
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

    /// Binds to a network interface by name (`ip mptcp endpoint add ... dev NAME`).
    pub fn with_device(self, name: &str) -> Result<Self> {
        Ok(self.with_ifindex(interface_index(name)?))
    }

    /// Binds to an interface index.
    pub fn with_ifindex(mut self, ifindex: i32) -> Self {
        self.ifindex = Some(ifindex);
        self
    }

    pub(super) fn attrs(&self) -> Vec<Attr> {
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

pub(super) fn family_of(a: &IpAddr) -> u16 {
    match a {
        IpAddr::V4(_) => libc::AF_INET as u16,
        IpAddr::V6(_) => libc::AF_INET6 as u16,
    }
}

/// A local address for the userspace path manager's commands: address, optional port, and
/// its address id.
pub(super) fn local_attrs(addr: &SocketAddr, id: Option<u8>, flags: EndpointFlags) -> Vec<Attr> {
    let mut ep = Endpoint::new(addr.ip(), flags);
    if addr.port() != 0 {
        ep.port = Some(addr.port());
    }
    if let Some(id) = id {
        ep.id = id;
    }
    ep.attrs()
}

pub(super) fn bad(msg: impl Into<String>) -> Error {
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

impl PathManager {
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
                    format!(
                        "endpoint {id} has address {}, not {addr}: nothing deleted",
                        current.addr
                    ),
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
}

pub(super) fn endpoints_of(replies: &[PmMessage]) -> Result<Vec<Endpoint>> {
    replies
        .iter()
        .flat_map(|m| &m.attrs)
        .filter(|a| a.id() == sys::MPTCP_PM_ATTR_ADDR)
        .map(Endpoint::decode)
        .collect()
}

/// The index of a network interface in the calling thread's network namespace
/// (`if_nametoindex`); [`Error::InvalidArgument`] naming it when there is none.
#[doc(alias = "if_nametoindex")]
pub fn interface_index(name: &str) -> Result<i32> {
    crate::sys::if_nametoindex(name)
        .ok()
        .and_then(|i| i32::try_from(i).ok())
        .ok_or_else(|| Error::invalid("find network interface", format!("no device {name:?}")))
}

/// The name of a network interface (`if_indextoname`).
#[doc(alias = "if_indextoname")]
pub fn interface_name(index: i32) -> Result<String> {
    let i = u32::try_from(index)
        .map_err(|_| Error::invalid("find network interface", format!("index {index}")))?;
    crate::sys::if_indextoname(i).map_err(|e| Error::os("if_indextoname", e))
}
