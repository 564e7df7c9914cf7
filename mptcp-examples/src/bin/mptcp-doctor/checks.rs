//! The host checks: each looks at the facts and says what is wrong, with its evidence
//! and how to fix it, or that it is fine.

use crate::facts::{sysctl, Facts, Rt};
use mptcp::pm::{EndpointFlags, PmKind};
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Fine, said for completeness.
    Ok,
    /// Worth knowing; nothing to fix.
    Info,
    /// Something that makes MPTCP do less than configured.
    Warn,
    /// MPTCP cannot work as configured.
    Error,
}

impl Level {
    pub fn word(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// How bad.
    pub level: Level,
    /// Which check (a stable word: kernel, enabled, limits, endpoint, rp_filter ...).
    pub check: &'static str,
    /// What is wrong (or fine).
    pub message: String,
    /// What it was read from.
    pub evidence: String,
    /// How to fix it, when there is something to fix.
    pub fix: Option<String>,
}

fn f(
    level: Level,
    check: &'static str,
    message: String,
    evidence: String,
    fix: Option<String>,
) -> Finding {
    Finding {
        level,
        check,
        message,
        evidence,
        fix,
    }
}

/// A destination beyond every local subnet (a documentation address), for the route
/// lookups: where a subflow to a remote host would leave.
pub fn remote_of(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::new(203, 0, 113, 77)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0x77)),
    }
}

/// Every host check, in order.
pub fn host(facts: &Facts, rt: &Rt) -> Vec<Finding> {
    let mut out = Vec::new();
    kernel(facts, &mut out);
    if facts.enabled.is_none() {
        return out;
    }
    path_manager(facts, &mut out);
    endpoints(facts, rt, &mut out);
    managers(facts, &mut out);
    counters(facts, &mut out);
    out
}

fn kernel(facts: &Facts, out: &mut Vec<Finding>) {
    let k = &facts.kernel;
    match facts.enabled {
        None => out.push(f(
            Level::Error,
            "kernel",
            format!("Linux {k} has no MPTCP"),
            "/proc/sys/net/mptcp does not exist".into(),
            Some(
                "a kernel built with CONFIG_MPTCP (Linux 5.6+; 5.15+ for most of the features)"
                    .into(),
            ),
        )),
        Some(false) => out.push(f(
            Level::Error,
            "enabled",
            "MPTCP is turned off: new MPTCP sockets are refused (programs fall back to TCP)".into(),
            "net.mptcp.enabled = 0".into(),
            Some("sysctl -w net.mptcp.enabled=1".into()),
        )),
        Some(true) => {
            let sock = mptcp::MptcpSocket::new_v4(mptcp::Mode::Require);
            out.push(match sock {
                Ok(_) => f(
                    Level::Ok,
                    "kernel",
                    format!("Linux {k}: MPTCP sockets work"),
                    "net.mptcp.enabled = 1; socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP) succeeded"
                        .into(),
                    None,
                ),
                Err(e) => f(
                    Level::Error,
                    "kernel",
                    format!("Linux {k}: MPTCP sockets cannot be created"),
                    format!("socket(IPPROTO_MPTCP): {e}"),
                    None,
                ),
            });
            out.push(features());
            match mptcp::diag::connections() {
                Ok(_) => {}
                Err(e) => out.push(f(
                    Level::Info,
                    "diag",
                    "MPTCP connections cannot be listed (ss -M, mptcp-stat)".into(),
                    e.to_string(),
                    Some("load the mptcp_diag module (Linux 5.9+)".into()),
                )),
            }
        }
    }
}

/// What the kernel's MPTCP offers, seen on a connection over loopback (the feature
/// table's rows that one connection shows).
fn features() -> Finding {
    let probe =
        || -> Result<String, Box<dyn std::error::Error>> {
            let l = mptcp::listen_with("127.0.0.1:0", mptcp::Mode::Require)?;
            let addr = l.local_addr()?;
            let c = mptcp::connect_with(addr, mptcp::Mode::Require)?;
            let _server = l.accept()?;
            let info = mptcp::info(&c)?;
            let st = mptcp::status(&c)?;
            let ids = mptcp::subflows(&c)
                .ok()
                .and_then(|v| v.first().map(|s| s.id.is_some()));
            let events = mptcp::pm::PathManager::new()
                .and_then(|pm| pm.events())
                .is_ok();
            Ok(format!(
            "mptcp_info {} bytes; fallback detection {:?}; subflow ids {}; path-manager events {}",
            info.reply_len(),
            st.detection,
            match ids {
                Some(true) => "yes",
                Some(false) => "no (Linux 6.5+)",
                None => "- (no subflow list: Linux 5.16+)",
            },
            if events { "yes" } else { "no (CAP_NET_ADMIN, Linux 5.12+)" },
        ))
        };
    match probe() {
        Ok(text) => f(
            Level::Ok,
            "features",
            "what this kernel's MPTCP offers".into(),
            text,
            None,
        ),
        Err(e) => f(
            Level::Info,
            "features",
            "an MPTCP connection over loopback could not be made to see the features".into(),
            e.to_string(),
            None,
        ),
    }
}

fn path_manager(facts: &Facts, out: &mut Vec<Finding>) {
    let kind = match facts.pm_kind {
        Some(PmKind::Userspace) => "userspace",
        _ => "kernel",
    };
    out.push(f(
        Level::Ok,
        "path-manager",
        format!("the {kind} path manager is in use"),
        sysctl("net/mptcp/path_manager")
            .map(|v| format!("net.mptcp.path_manager = {v}"))
            .or_else(|| sysctl("net/mptcp/pm_type").map(|v| format!("net.mptcp.pm_type = {v}")))
            .unwrap_or_else(|| "no path-manager sysctl (Linux before 5.19: the kernel one)".into()),
        None,
    ));
    if facts.pm_kind == Some(PmKind::Userspace) {
        if facts.managers.iter().all(|(n, _)| n == "NetworkManager") {
            out.push(f(
                Level::Warn,
                "path-manager",
                "the userspace path manager is selected but no daemon runs to drive it: no connection gets a second subflow".into(),
                format!("net.mptcp.path_manager = userspace; managers running: {}", names(facts)),
                Some("start mptcp-pmd (mode = \"userspace\") or mptcpd, or select the kernel path manager".into()),
            ));
        }
        return;
    }
    let (Ok(limits), Ok(eps)) = (&facts.limits, &facts.endpoints) else {
        if let Err(e) = &facts.endpoints {
            out.push(f(
                Level::Warn,
                "limits",
                "the in-kernel path manager cannot be read".into(),
                e.clone(),
                None,
            ));
        }
        return;
    };
    let subflow_eps = eps
        .iter()
        .filter(|e| e.flags.contains(EndpointFlags::SUBFLOW))
        .count();
    let signal_eps = eps
        .iter()
        .filter(|e| e.flags.contains(EndpointFlags::SIGNAL))
        .count();
    let subflows = limits.subflows.unwrap_or(0);
    let accepted = limits.add_addr_accepted.unwrap_or(0);
    let evidence = format!(
        "ip mptcp limits: subflows {subflows} add_addr_accepted {accepted}; {} endpoints ({subflow_eps} subflow, {signal_eps} signal)",
        eps.len()
    );
    if subflow_eps > 0 && subflows == 0 {
        out.push(f(
            Level::Error,
            "limits",
            format!("{subflow_eps} subflow endpoint(s) but a subflows limit of 0: no extra subflow will ever open"),
            evidence,
            Some(format!("ip mptcp limits set subflows {subflow_eps}")),
        ));
    } else if (subflow_eps as u32) > subflows {
        out.push(f(
            Level::Warn,
            "limits",
            format!("{subflow_eps} subflow endpoints but a subflows limit of {subflows}: the endpoints beyond it are not used"),
            evidence,
            Some(format!("ip mptcp limits set subflows {subflow_eps}")),
        ));
    } else if eps.is_empty() && accepted == 0 {
        out.push(f(
            Level::Info,
            "limits",
            "no endpoints and add_addr_accepted 0: connections stay on one path (fine for a server with one address)".into(),
            evidence,
            Some("ip mptcp endpoint add ADDR dev IF subflow (a client), or signal (a server); or run mptcp-pmd".into()),
        ));
    } else {
        out.push(f(
            Level::Ok,
            "limits",
            "the limits allow the endpoints' subflows".into(),
            evidence,
            None,
        ));
    }
}

fn endpoints(facts: &Facts, rt: &Rt, out: &mut Vec<Finding>) {
    let (Ok(eps), Ok(links)) = (&facts.endpoints, &facts.links) else {
        return;
    };
    let multi_homed = links
        .values()
        .filter(|l| !l.loopback && l.up && !l.addrs.is_empty())
        .count()
        > 1;
    for e in eps {
        let a = e.addr;
        let ep = format!("endpoint {a} id {}", e.id);
        let owner = facts.link_of(a);
        if let Some(ifindex) = e.ifindex {
            match links.get(&(ifindex as u32)) {
                None => out.push(f(
                    Level::Warn,
                    "endpoint",
                    format!("{ep} is bound to an interface that no longer exists"),
                    format!("ip mptcp endpoint: dev index {ifindex}; no such interface"),
                    Some(format!("ip mptcp endpoint delete id {}", e.id)),
                )),
                Some(l) if !l.up => out.push(f(
                    Level::Warn,
                    "endpoint",
                    format!("{ep}'s interface {} is down: no subflow can use it", l.name),
                    format!("{}: not up and running", l.name),
                    Some(format!(
                        "ip link set {} up (or let mptcp-pmd follow the links)",
                        l.name
                    )),
                )),
                Some(_) => {}
            }
        } else if multi_homed && e.flags.contains(EndpointFlags::SUBFLOW) {
            out.push(f(
                Level::Warn,
                "endpoint",
                format!("{ep} has no interface on a host with several: its subflows leave wherever the routing table sends them"),
                format!("{} interfaces up with addresses; the endpoint has no dev", links.values().filter(|l| !l.loopback && l.up && !l.addrs.is_empty()).count()),
                Some(format!(
                    "ip mptcp endpoint delete id {} && ip mptcp endpoint add {a} dev {} subflow",
                    e.id,
                    owner.map_or("IF", |(_, l)| l.name.as_str())
                )),
            ));
        }
        let Some((ifindex, link)) = owner else {
            out.push(f(
                Level::Warn,
                "endpoint",
                format!("{ep}: no interface has this address"),
                "the address is on no interface of this namespace".into(),
                Some(format!("ip mptcp endpoint delete id {}", e.id)),
            ));
            continue;
        };
        if !link.loopback {
            rp_filter(&link.name, &ep, out);
        }
        if e.flags.contains(EndpointFlags::SUBFLOW) {
            let dst = remote_of(a);
            match rt.route_oif(a, dst) {
                None => out.push(f(
                    Level::Warn,
                    "routing",
                    format!("{ep}: no route from {a} to hosts beyond {}'s subnet: its subflows reach only that subnet", link.name),
                    format!("ip route get {dst} from {a}: no route"),
                    Some(source_routing_fix(a, &link.name)),
                )),
                Some(oif) if oif != ifindex => {
                    let other = links.get(&oif).map_or("?", |l| l.name.as_str());
                    out.push(f(
                        Level::Warn,
                        "routing",
                        format!("{ep}: packets from {a} leave through {other}, not {}: subflows from it take the other path or are dropped", link.name),
                        format!("ip route get {dst} from {a}: dev {other}"),
                        Some(source_routing_fix(a, &link.name)),
                    ));
                }
                Some(_) => {}
            }
        }
    }
}

/// A routing table of the interface's own, selected by the source address.
fn source_routing_fix(a: IpAddr, dev: &str) -> String {
    format!(
        "ip route add default via GATEWAY dev {dev} table 100 && ip rule add from {a} table 100"
    )
}

/// Strict reverse-path filtering on an interface with an endpoint drops what arrives
/// for a subflow whose return route is another interface.
fn rp_filter(dev: &str, ep: &str, out: &mut Vec<Finding>) {
    let all = sysctl("net/ipv4/conf/all/rp_filter").and_then(|v| v.parse::<u8>().ok());
    let one = sysctl(&format!("net/ipv4/conf/{dev}/rp_filter")).and_then(|v| v.parse::<u8>().ok());
    // The kernel uses the larger of the two.
    let effective = all.max(one).unwrap_or(0);
    if effective == 1 {
        out.push(f(
            Level::Warn,
            "rp_filter",
            format!("{ep}: strict reverse-path filtering on {dev} drops packets of subflows whose return route is another interface"),
            format!(
                "net.ipv4.conf.all.rp_filter = {}, net.ipv4.conf.{dev}.rp_filter = {}",
                all.unwrap_or(0),
                one.unwrap_or(0)
            ),
            Some(format!("sysctl -w net.ipv4.conf.{dev}.rp_filter=2 net.ipv4.conf.all.rp_filter=2 (loose)")),
        ));
    }
}

fn names(facts: &Facts) -> String {
    if facts.managers.is_empty() {
        return "none".into();
    }
    facts
        .managers
        .iter()
        .map(|(n, p)| format!("{n} (pid {p})"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn managers(facts: &Facts, out: &mut Vec<Finding>) {
    // Two of them, or two instances of one, add and remove each other's endpoints.
    if facts.managers.len() > 1 {
        out.push(f(
            Level::Warn,
            "managers",
            "several programs manage MPTCP endpoints in this namespace: they add and remove each other's".into(),
            format!("running here: {}", names(facts)),
            Some("keep one (for NetworkManager: connection.mptcp-flags disabled on its connections)".into()),
        ));
    } else if let Some((k, _)) = facts.managers.first() {
        out.push(f(
            Level::Ok,
            "managers",
            format!("{k} manages the endpoints"),
            format!("running here: {}", names(facts)),
            None,
        ));
    }
}

/// The kernel's counters of things that went wrong, with what they usually mean.
const COUNTERS: &[(&str, &str)] = &[
    ("MPCapableFallbackSYNACK", "connections this host opened fell back to TCP: the SYN/ACK came without MP_CAPABLE (the server has no MPTCP, or a middlebox strips the option)"),
    ("MPCapableFallbackACK", "connections to this host fell back to TCP: the third ACK came without MP_CAPABLE (a middlebox strips the option)"),
    ("MPCapableSYNTXDisabled", "SYNs sent without MP_CAPABLE because the blackhole detection turned active MPTCP off for a while"),
    ("Blackhole", "times the blackhole detection saw MPTCP SYNs go unanswered (a firewall drops them) and turned active MPTCP off for net.mptcp.blackhole_timeout"),
    ("DSSCorruptionFallback", "connections fell back after the MPTCP data mapping was corrupted on the path (a middlebox rewrote the stream)"),
    ("DSSCorruptionReset", "subflows reset after the MPTCP data mapping was corrupted on the path"),
    ("MPJoinRejected", "joins refused by the path manager (limits, or the userspace path manager)"),
    ("MPJoinSynAckHMacFailure", "joins that failed authentication (a middlebox altered the handshake)"),
    ("MPJoinNoTokenFound", "joins for connections this host does not know (often a load balancer sending subflows to another server)"),
    ("AddAddrDrop", "ADD_ADDR announcements dropped (add_addr_accepted limit reached)"),
    ("MD5SigFallback", "connections that fell back because TCP_MD5SIG is set"),
];

fn counters(facts: &Facts, out: &mut Vec<Finding>) {
    for (name, meaning) in COUNTERS {
        if let Some(n) = facts.counter(name).filter(|n| *n > 0) {
            out.push(f(
                Level::Info,
                "counters",
                format!("{n} {meaning}"),
                format!("MPTcpExt {name} = {n} (since boot or the namespace's creation)"),
                None,
            ));
        }
    }
}
