//! The host's interfaces and addresses through rtnetlink: a dump when something
//! changed, and a subscription that says when.

use super::{Config, Error, Policy};
use futures_util::TryStreamExt;
use mptcp::pm::EndpointFlags;
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags};
use netlink_packet_route::link::{LinkAttribute, LinkFlags};
use netlink_packet_route::route::{RouteAddress, RouteAttribute};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr as NlAddr};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use tokio::io::unix::AsyncFd;

/// A local address on an interface that is up.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct LocalAddress {
    /// The address.
    pub addr: IpAddr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// The interface index.
    pub ifindex: u32,
    /// The interface name.
    pub ifname: String,
}

/// Dumps of links, addresses and routes (rtnetlink).
pub(crate) struct Links {
    handle: rtnetlink::Handle,
}

fn rt(e: rtnetlink::Error) -> Error {
    Error::Rtnetlink(e.to_string())
}

impl Links {
    pub(crate) fn new() -> Result<Links, Error> {
        let (conn, handle, _) =
            rtnetlink::new_connection().map_err(|e| Error::Io("rtnetlink socket", e))?;
        tokio::spawn(conn);
        Ok(Links { handle })
    }

    /// Interfaces that are up and running: index -> name.
    async fn up_links(&self) -> Result<BTreeMap<u32, (String, bool)>, Error> {
        let mut out = BTreeMap::new();
        let mut links = self.handle.link().get().execute();
        while let Some(l) = links.try_next().await.map_err(rt)? {
            let flags = l.header.flags;
            let name = l
                .attributes
                .iter()
                .find_map(|a| match a {
                    LinkAttribute::IfName(n) => Some(n.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            let up = flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::Running);
            if up {
                out.insert(l.header.index, (name, flags.contains(LinkFlags::Loopback)));
            }
        }
        Ok(out)
    }

    /// (IPv6?, interface) pairs with a route of the main table through the interface,
    /// not counting IPv6's link-local routes (every interface has fe80::/64).
    async fn routed(&self) -> Result<BTreeSet<(bool, u32)>, Error> {
        let mut out = BTreeSet::new();
        for (v6, msg) in [
            (
                false,
                rtnetlink::RouteMessageBuilder::<Ipv4Addr>::new().build(),
            ),
            (
                true,
                rtnetlink::RouteMessageBuilder::<Ipv6Addr>::new().build(),
            ),
        ] {
            let mut routes = self.handle.route().get(msg).execute();
            while let Some(r) = routes.try_next().await.map_err(rt)? {
                if r.header.table != 254 {
                    continue;
                }
                let link_local = r.attributes.iter().any(|a| {
                    matches!(a, RouteAttribute::Destination(RouteAddress::Inet6(d))
                        if d.segments()[0] & 0xffc0 == 0xfe80)
                });
                if link_local {
                    continue;
                }
                for a in &r.attributes {
                    if let RouteAttribute::Oif(i) = a {
                        out.insert((v6, *i));
                    }
                }
            }
        }
        Ok(out)
    }

    /// The usable local addresses and the policy's flags for each: addresses of
    /// interfaces that are up, without loopback and link-local ones (unless the
    /// configuration includes them), IPv6 ones that finished duplicate address
    /// detection, on a routed interface when `require_route` is set.
    pub(crate) async fn usable(
        &self,
        policy: &impl Policy,
        config: &Config,
    ) -> Result<Vec<(LocalAddress, EndpointFlags)>, Error> {
        let links = self.up_links().await?;
        let routed = if config.require_route {
            Some(self.routed().await?)
        } else {
            None
        };
        let mut out = Vec::new();
        let mut addrs = self.handle.address().get().execute();
        while let Some(a) = addrs.try_next().await.map_err(rt)? {
            let Some((ifname, loopback_link)) = links.get(&a.header.index) else {
                continue;
            };
            let flags = a.header.flags;
            if flags.contains(AddressHeaderFlags::Tentative)
                || flags.contains(AddressHeaderFlags::Dadfailed)
            {
                continue;
            }
            let addr = a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let addr = addr.or_else(|| {
                a.attributes.iter().find_map(|x| match x {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })
            });
            let Some(addr) = addr else { continue };
            if (*loopback_link || addr.is_loopback()) && !config.include_loopback {
                continue;
            }
            if is_link_local(&addr) && !config.include_link_local {
                continue;
            }
            if routed
                .as_ref()
                .is_some_and(|r| !r.contains(&(addr.is_ipv6(), a.header.index)))
            {
                continue;
            }
            let local = LocalAddress {
                addr,
                prefix_len: a.header.prefix_len,
                ifindex: a.header.index,
                ifname: ifname.clone(),
            };
            if let Some(f) = policy.flags(&local) {
                out.push((local, f));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// The names of the interfaces that exist (up or not), for configuration checks.
    pub(crate) async fn names(&self) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        let mut links = self.handle.link().get().execute();
        while let Some(l) = links.try_next().await.map_err(rt)? {
            for a in l.attributes {
                if let LinkAttribute::IfName(n) = a {
                    out.push(n);
                }
            }
        }
        Ok(out)
    }
}

fn is_link_local(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

/// What the subscription saw.
pub(crate) enum Change {
    /// Links, addresses or routes changed; `links`: a link or an address did (not only
    /// routes).
    Changed {
        /// A link or an address changed.
        links: bool,
    },
    /// Notifications were lost: the socket's buffer overflowed (`ENOBUFS`).
    Overflow,
    /// The socket failed.
    Failed(Error),
}

/// A subscription to link, address and route changes (rtnetlink multicast groups).
pub(crate) struct Changes {
    fd: AsyncFd<Socket>,
    buf: Vec<u8>,
}

/// Whether a datagram of rtnetlink notifications has a link or address message
/// (`RTM_NEWLINK`, `RTM_DELLINK`, `RTM_NEWADDR`, `RTM_DELADDR`).
fn touches_links(mut buf: &[u8]) -> bool {
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        if matches!(kind, 16 | 17 | 20 | 21) {
            return true;
        }
        let step = len.div_ceil(4) * 4;
        if len < 16 || step > buf.len() {
            break;
        }
        buf = &buf[step..];
    }
    false
}

const RTMGRP_LINK: u32 = 1;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV4_ROUTE: u32 = 0x40;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;
const RTMGRP_IPV6_ROUTE: u32 = 0x400;

impl Changes {
    /// Subscribes; `buffer` sets the socket's receive buffer (bytes) when given.
    pub(crate) fn subscribe(buffer: Option<usize>) -> Result<Changes, Error> {
        let mut sock =
            Socket::new(NETLINK_ROUTE).map_err(|e| Error::Io("socket(NETLINK_ROUTE)", e))?;
        let groups = RTMGRP_LINK
            | RTMGRP_IPV4_IFADDR
            | RTMGRP_IPV6_IFADDR
            | RTMGRP_IPV4_ROUTE
            | RTMGRP_IPV6_ROUTE;
        sock.bind(&NlAddr::new(0, groups))
            .map_err(|e| Error::Io("bind rtnetlink groups", e))?;
        if let Some(b) = buffer {
            sock.set_rx_buf_sz(b)
                .map_err(|e| Error::Io("setsockopt(SO_RCVBUF)", e))?;
        }
        sock.set_non_blocking(true)
            .map_err(|e| Error::Io("fcntl(O_NONBLOCK)", e))?;
        // SAFETY: the netlink socket owns its descriptor and keeps it open until it is
        // dropped; the AsyncFd owns the socket, so the descriptor outlives the
        // registration.
        let fd = unsafe { AsyncFd::register(sock) }
            .map_err(|e| Error::Io("register with tokio", std::io::Error::other(e.to_string())))?;
        Ok(Changes {
            fd,
            buf: vec![0u8; 64 * 1024],
        })
    }

    /// Waits for the next notification.
    pub(crate) async fn next(&mut self) -> Change {
        loop {
            let mut guard = match self.fd.readable().await {
                Ok(g) => g,
                Err(e) => return Change::Failed(Error::Io("poll rtnetlink", e)),
            };
            let buf = &mut self.buf;
            match guard.try_io(|s| s.get_ref().recv(&mut &mut buf[..], 0)) {
                Ok(Ok(n)) => {
                    return Change::Changed {
                        links: touches_links(&self.buf[..n.min(self.buf.len())]),
                    }
                }
                Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => return Change::Overflow,
                Ok(Err(e)) => return Change::Failed(Error::Io("receive rtnetlink", e)),
                Err(_would_block) => continue,
            }
        }
    }

    /// Discards what is queued (a dump follows anyway); true when the queue had
    /// overflowed (notifications were lost: harmless here, since the dump that follows
    /// sees the result, but worth reporting).
    pub(crate) fn drain(&mut self) -> bool {
        let mut overflowed = false;
        loop {
            match self
                .fd
                .get_ref()
                .recv(&mut &mut self.buf[..], libc::MSG_DONTWAIT)
            {
                Ok(_) => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => overflowed = true,
                Err(_) => return overflowed,
            }
        }
    }
}
