//! Endpoints and limits of the in-kernel path manager (`ip mptcp endpoint|limits`).

use super::netlink::{
    nla_bytes, nla_i32, nla_nested, nla_u16, nla_u32, nla_u8, nlas, Reply, Request,
};
use crate::error::{Error, Result};
use mptcp_sys as sys;
use netlink_packet_core::DefaultNla;
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

    pub(super) fn attrs(&self) -> Vec<DefaultNla> {
        let mut v = vec![nla_u16(
            sys::MPTCP_PM_ADDR_ATTR_FAMILY,
            family_of(&self.addr),
        )];
        match self.addr {
            IpAddr::V4(a) => v.push(nla_bytes(sys::MPTCP_PM_ADDR_ATTR_ADDR4, &a.octets())),
            IpAddr::V6(a) => v.push(nla_bytes(sys::MPTCP_PM_ADDR_ATTR_ADDR6, &a.octets())),
        }
        if self.id != 0 {
            v.push(nla_u8(sys::MPTCP_PM_ADDR_ATTR_ID, self.id));
        }
        if let Some(p) = self.port {
            v.push(nla_u16(sys::MPTCP_PM_ADDR_ATTR_PORT, p));
        }
        if !self.flags.is_empty() {
            v.push(nla_u32(sys::MPTCP_PM_ADDR_ATTR_FLAGS, self.flags.bits()));
        }
        if let Some(i) = self.ifindex {
            v.push(nla_i32(sys::MPTCP_PM_ADDR_ATTR_IF_IDX, i));
        }
        v
    }

    /// Decodes the attributes nested in an `MPTCP_PM_ATTR_ADDR`.
    pub(crate) fn decode(nested: &[u8]) -> Result<Endpoint> {
        let mut ep = Endpoint::new(IpAddr::from([0u8, 0, 0, 0]), EndpointFlags::empty());
        let mut has_addr = false;
        for a in nlas(nested) {
            let a = a.map_err(bad)?;
            match a.id() {
                sys::MPTCP_PM_ADDR_ATTR_ID => ep.id = a.u8().map_err(bad)?,
                sys::MPTCP_PM_ADDR_ATTR_ADDR4 => {
                    ep.addr = a.ipv4().map_err(bad)?;
                    has_addr = true;
                }
                sys::MPTCP_PM_ADDR_ATTR_ADDR6 => {
                    ep.addr = a.ipv6().map_err(bad)?;
                    has_addr = true;
                }
                sys::MPTCP_PM_ADDR_ATTR_PORT => {
                    ep.port = Some(a.u16().map_err(bad)?).filter(|p| *p != 0)
                }
                sys::MPTCP_PM_ADDR_ATTR_FLAGS => {
                    ep.flags = EndpointFlags::from_bits_retain(a.u32().map_err(bad)?)
                }
                sys::MPTCP_PM_ADDR_ATTR_IF_IDX => {
                    ep.ifindex = Some(a.i32().map_err(bad)?).filter(|i| *i != 0)
                }
                _ => {}
            }
        }
        if !has_addr {
            return Err(bad("an endpoint without an address"));
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
pub(super) fn local_attrs(
    addr: &SocketAddr,
    id: Option<u8>,
    flags: EndpointFlags,
) -> Vec<DefaultNla> {
    let mut ep = Endpoint::new(addr.ip(), flags);
    if addr.port() != 0 {
        ep.port = Some(addr.port());
    }
    if let Some(id) = id {
        ep.id = id;
    }
    ep.attrs()
}

pub(super) fn bad(msg: impl ToString) -> Error {
    Error::decode("path manager reply", msg.to_string())
}

/// The in-kernel path manager's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Maximum additional subflows per connection (`subflows`, at most 8).
    pub subflows: Option<u32>,
    /// Maximum accepted ADD_ADDR per connection (`add_addr_accepted`, at most 8).
    pub add_addr_accepted: Option<u32>,
}

/// The requests of this file's commands, shared by [`PathManager`] and the async client.
impl Request {
    pub(super) fn add_endpoint(ep: &Endpoint) -> Request {
        Request::pm(
            "add endpoint",
            sys::MPTCP_PM_CMD_ADD_ADDR,
            vec![nla_nested(sys::MPTCP_PM_ATTR_ADDR, &ep.attrs())],
        )
    }

    pub(super) fn delete_endpoint(id: u8) -> Result<Request> {
        if id == 0 {
            return Err(Error::invalid(
                "delete endpoint",
                "id 0 is no endpoint (it names the initial subflows' address: give that \
                 address with delete_endpoint_addr)",
            ));
        }
        let addr = [nla_u8(sys::MPTCP_PM_ADDR_ATTR_ID, id)];
        Ok(Request::pm(
            "delete endpoint",
            sys::MPTCP_PM_CMD_DEL_ADDR,
            vec![nla_nested(sys::MPTCP_PM_ATTR_ADDR, &addr)],
        ))
    }

    pub(super) fn delete_endpoint_addr(id: u8, addr: IpAddr) -> Request {
        let ep = Endpoint::new(addr, EndpointFlags::empty()).with_id(id);
        let mut attrs = ep.attrs();
        if id == 0 {
            attrs.push(nla_u8(sys::MPTCP_PM_ADDR_ATTR_ID, 0));
        }
        Request::pm(
            "delete endpoint",
            sys::MPTCP_PM_CMD_DEL_ADDR,
            vec![nla_nested(sys::MPTCP_PM_ATTR_ADDR, &attrs)],
        )
    }

    pub(super) fn get_endpoint(id: u8) -> Request {
        let addr = [nla_u8(sys::MPTCP_PM_ADDR_ATTR_ID, id)];
        Request::pm(
            "get endpoint",
            sys::MPTCP_PM_CMD_GET_ADDR,
            vec![nla_nested(sys::MPTCP_PM_ATTR_ADDR, &addr)],
        )
    }

    pub(super) fn dump_endpoints() -> Request {
        Request::pm("dump endpoints", sys::MPTCP_PM_CMD_GET_ADDR, vec![]).dump()
    }

    pub(super) fn flush_endpoints() -> Request {
        Request::pm("flush endpoints", sys::MPTCP_PM_CMD_FLUSH_ADDRS, vec![])
    }

    pub(super) fn set_endpoint_flags(id: u8, flags: EndpointFlags) -> Request {
        let attrs = [
            nla_u8(sys::MPTCP_PM_ADDR_ATTR_ID, id),
            nla_u32(sys::MPTCP_PM_ADDR_ATTR_FLAGS, flags.bits()),
        ];
        Request::pm(
            "change endpoint flags",
            sys::MPTCP_PM_CMD_SET_FLAGS,
            vec![nla_nested(sys::MPTCP_PM_ATTR_ADDR, &attrs)],
        )
    }

    pub(super) fn get_limits() -> Request {
        Request::pm("get limits", sys::MPTCP_PM_CMD_GET_LIMITS, vec![])
    }

    pub(super) fn set_limits(limits: Limits) -> Request {
        let mut attrs = Vec::new();
        if let Some(v) = limits.add_addr_accepted {
            attrs.push(nla_u32(sys::MPTCP_PM_ATTR_RCV_ADD_ADDRS, v));
        }
        if let Some(v) = limits.subflows {
            attrs.push(nla_u32(sys::MPTCP_PM_ATTR_SUBFLOWS, v));
        }
        Request::pm("set limits", sys::MPTCP_PM_CMD_SET_LIMITS, attrs)
    }
}

/// Appends the endpoint of one GET_ADDR reply to `out`.
pub(super) fn endpoints_in(r: Reply<'_>, out: &mut Vec<Endpoint>) -> Result<()> {
    for a in r.nlas() {
        let a = a.map_err(bad)?;
        if a.id() == sys::MPTCP_PM_ATTR_ADDR {
            out.push(Endpoint::decode(a.value)?);
        }
    }
    Ok(())
}

/// Reads the limits of a GET_LIMITS reply into `l`.
pub(super) fn limits_in(r: Reply<'_>, l: &mut Limits) -> Result<()> {
    for a in r.nlas() {
        let a = a.map_err(bad)?;
        match a.id() {
            sys::MPTCP_PM_ATTR_SUBFLOWS => l.subflows = Some(a.u32().map_err(bad)?),
            sys::MPTCP_PM_ATTR_RCV_ADD_ADDRS => l.add_addr_accepted = Some(a.u32().map_err(bad)?),
            _ => {}
        }
    }
    Ok(())
}

/// The id the kernel gave an endpoint added without one: found in the list by address
/// and port (port 0 means none: the kernel lists such an endpoint without one).
pub(super) fn added_id(ep: &Endpoint, listed: &[Endpoint]) -> Result<u8> {
    let port = ep.port.unwrap_or(0);
    listed
        .iter()
        .find(|e| e.addr == ep.addr && e.port.unwrap_or(0) == port)
        .map(|e| e.id)
        .ok_or_else(|| bad("the added endpoint is not listed"))
}

/// The address that [`PathManager::delete_endpoint_addr`] must find at `id`.
pub(super) fn check_endpoint_addr(id: u8, current: &Endpoint, addr: IpAddr) -> Result<()> {
    if current.addr != addr {
        return Err(Error::invalid(
            "delete endpoint",
            format!(
                "endpoint {id} has address {}, not {addr}: nothing deleted",
                current.addr
            ),
        ));
    }
    Ok(())
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
