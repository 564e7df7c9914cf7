//! What the checks look at, read once: interfaces and addresses and route lookups
//! (rtnetlink), the path manager (Generic Netlink), sysctls, the kernel's MPTCP
//! counters, and the processes that manage endpoints in this network namespace.

use futures_util::TryStreamExt;
use mptcp::pm::{Endpoint, Limits, PathManager, PmKind};
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{LinkAttribute, LinkFlags};
use netlink_packet_route::route::RouteAttribute;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An interface of the namespace.
#[derive(Debug, Clone)]
pub struct Link {
    /// Its name.
    pub name: String,
    /// Administratively up and with a carrier (IFF_UP and IFF_RUNNING).
    pub up: bool,
    /// The loopback interface.
    pub loopback: bool,
    /// Its addresses (IPv6 link-local ones left out).
    pub addrs: Vec<IpAddr>,
}

/// The facts, each `Err(text)` when it could not be read.
#[derive(Debug)]
pub struct Facts {
    /// The kernel release.
    pub kernel: String,
    /// `net.mptcp.enabled`, `None` without MPTCP (no /proc/sys/net/mptcp).
    pub enabled: Option<bool>,
    /// The path manager in use.
    pub pm_kind: Option<PmKind>,
    /// The in-kernel path manager's limits and endpoints.
    pub limits: Result<Limits, String>,
    /// The endpoints.
    pub endpoints: Result<Vec<Endpoint>, String>,
    /// Interfaces by index.
    pub links: Result<BTreeMap<u32, Link>, String>,
    /// `MPTcpExt` counters.
    pub counters: Vec<(String, u64)>,
    /// Processes of this namespace that manage MPTCP endpoints: (name, pid).
    pub managers: Vec<(String, u32)>,
}

impl Facts {
    /// The interface index that has `addr`.
    pub fn link_of(&self, addr: IpAddr) -> Option<(u32, &Link)> {
        let links = self.links.as_ref().ok()?;
        links
            .iter()
            .find(|(_, l)| l.addrs.contains(&addr))
            .map(|(i, l)| (*i, l))
    }

    /// A counter by its kernel name.
    pub fn counter(&self, name: &str) -> Option<u64> {
        self.counters
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }
}

/// A sysctl of this namespace, trimmed.
pub fn sysctl(path: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/sys/{path}"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Reads every fact.
pub fn gather(rt: &Rt) -> Facts {
    let enabled = sysctl("net/mptcp/enabled").map(|v| v == "1");
    let pm = PathManager::new().map_err(|e| e.to_string());
    let (limits, endpoints) = match pm {
        Ok(mut pm) => (
            pm.limits().map_err(|e| e.to_string()),
            pm.endpoints().map_err(|e| e.to_string()),
        ),
        Err(e) => (Err(e.clone()), Err(e)),
    };
    Facts {
        kernel: sysctl("kernel/osrelease").unwrap_or_else(|| "?".into()),
        enabled,
        pm_kind: enabled.and_then(|_| mptcp::pm::kind().ok()),
        limits,
        endpoints,
        links: rt.links(),
        counters: mptcp_examples::netstat::mptcp_counters().unwrap_or_default(),
        managers: managers(),
    }
}

/// The programs known to manage MPTCP endpoints, running in this network namespace.
fn managers() -> Vec<(String, u32)> {
    const NAMES: [&str; 3] = ["NetworkManager", "mptcpd", "mptcp-pmd"];
    let ours = std::fs::read_link("/proc/self/ns/net").ok();
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
            continue;
        };
        let comm = comm.trim();
        if !NAMES.contains(&comm) {
            continue;
        }
        let ns = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
        if ns.is_some() && ns == ours {
            out.push((comm.to_string(), pid));
        }
    }
    out.sort();
    out
}

/// An rtnetlink connection on a current-thread tokio runtime of its own.
pub struct Rt {
    runtime: tokio::runtime::Runtime,
    handle: rtnetlink::Handle,
}

impl Rt {
    /// Opens the connection.
    pub fn new() -> Result<Rt, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        let handle = runtime.block_on(async {
            let (conn, handle, _) = rtnetlink::new_connection()?;
            tokio::spawn(conn);
            Ok::<_, std::io::Error>(handle)
        });
        let handle = handle.map_err(|e| format!("rtnetlink socket: {e}"))?;
        Ok(Rt { runtime, handle })
    }

    /// Every interface with its addresses.
    pub fn links(&self) -> Result<BTreeMap<u32, Link>, String> {
        self.runtime.block_on(async {
            let mut out = BTreeMap::new();
            let mut links = self.handle.link().get().execute();
            while let Some(l) = links.try_next().await.map_err(|e| e.to_string())? {
                let f = l.header.flags;
                let name = l
                    .attributes
                    .iter()
                    .find_map(|a| match a {
                        LinkAttribute::IfName(n) => Some(n.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
                out.insert(
                    l.header.index,
                    Link {
                        name,
                        up: f.contains(LinkFlags::Up) && f.contains(LinkFlags::Running),
                        loopback: f.contains(LinkFlags::Loopback),
                        addrs: Vec::new(),
                    },
                );
            }
            let mut addrs = self.handle.address().get().execute();
            while let Some(a) = addrs.try_next().await.map_err(|e| e.to_string())? {
                let ip = a
                    .attributes
                    .iter()
                    .find_map(|x| match x {
                        AddressAttribute::Local(ip) => Some(*ip),
                        _ => None,
                    })
                    .or_else(|| {
                        a.attributes.iter().find_map(|x| match x {
                            AddressAttribute::Address(ip) => Some(*ip),
                            _ => None,
                        })
                    });
                let Some(ip) = ip else { continue };
                if matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80) {
                    continue;
                }
                if let Some(l) = out.get_mut(&a.header.index) {
                    l.addrs.push(ip);
                }
            }
            Ok(out)
        })
    }

    /// The interface a packet from `src` to `dst` leaves through (`ip route get DST
    /// from SRC`), `None` when there is no route.
    pub fn route_oif(&self, src: IpAddr, dst: IpAddr) -> Option<u32> {
        let msg = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => rtnetlink::RouteMessageBuilder::<Ipv4Addr>::new()
                .source_prefix(s, 32)
                .destination_prefix(d, 32)
                .build(),
            (IpAddr::V6(s), IpAddr::V6(d)) => rtnetlink::RouteMessageBuilder::<Ipv6Addr>::new()
                .source_prefix(s, 128)
                .destination_prefix(d, 128)
                .build(),
            _ => return None,
        };
        self.runtime.block_on(async {
            let mut r = self.handle.route().get(msg).execute();
            let m = r.try_next().await.ok()??;
            m.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(i) => Some(*i),
                _ => None,
            })
        })
    }
}
