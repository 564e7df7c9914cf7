//! `mptcp-doctor probe HOST PORT`: MP_CAPABLE from each local address, then MP_JOIN
//! from each subflow endpoint on one connection, each with what the kernel's counters
//! say about a failure.

use crate::checks::{Finding, Level};
use crate::facts::{Facts, Rt};
use mptcp::pm::{EndpointFlags, PmKind};
use mptcp::{Mode, MptcpSocket};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The counters a probe reads before and after, with what a rise means.
const FALLBACK: &[(&str, &str)] = &[
    ("MPCapableFallbackSYNACK", "the SYN/ACK came without MP_CAPABLE: the server has no MPTCP, or a middlebox on this path strips the option"),
    ("MPCapableSYNTXDisabled", "the SYN went out without MP_CAPABLE: the kernel's blackhole detection has turned active MPTCP off for a while"),
    ("DSSCorruptionFallback", "the MPTCP data mapping was corrupted on the path (a middlebox rewrote the stream)"),
    ("MPCapableDataFallback", "the peer's first data came without an MPTCP mapping"),
];

const JOIN: &[(&str, &str)] = &[
    ("MPJoinSynTx", "MP_JOIN SYNs sent"),
    ("MPJoinSynAckRx", "MP_JOIN SYN/ACKs received"),
    (
        "MPJoinSynAckHMacFailure",
        "SYN/ACKs that failed authentication (a middlebox altered them)",
    ),
    (
        "MPJoinSynTxConnectErr",
        "joins the kernel could not start (no route from the address)",
    ),
    (
        "MPJoinSynTxBindErr",
        "joins the kernel could not bind to their address",
    ),
];

fn delta(before: &[(String, u64)], after: &[(String, u64)], name: &str) -> u64 {
    let get = |v: &[(String, u64)]| v.iter().find(|(n, _)| n == name).map_or(0, |(_, x)| *x);
    get(after).saturating_sub(get(before))
}

fn counters() -> Vec<(String, u64)> {
    mptcp_examples::netstat::mptcp_counters().unwrap_or_default()
}

fn finding(level: Level, message: String, evidence: String, fix: Option<String>) -> Finding {
    Finding {
        level,
        check: "probe",
        message,
        evidence,
        fix,
    }
}

/// Connects from `src` (any address when `None`) with MPTCP required.
fn connect(
    src: Option<IpAddr>,
    target: SocketAddr,
    timeout: Duration,
) -> Result<TcpStream, String> {
    let sock = MptcpSocket::for_addr(target, Mode::Require).map_err(|e| e.to_string())?;
    if let Some(a) = src {
        sock.bind(SocketAddr::new(a, 0))
            .map_err(|e| format!("bind {a}: {e}"))?;
    }
    sock.connect_timeout(target, timeout)
        .map_err(|e| e.to_string())
}

/// The probe's findings.
pub fn run(
    facts: &Facts,
    rt: &Rt,
    target: SocketAddr,
    timeout: Duration,
    send: Option<&[u8]>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let links = facts.links.as_ref().ok();
    let name_of = |a: IpAddr| {
        facts
            .link_of(a)
            .map_or("?".to_string(), |(_, l)| l.name.clone())
    };
    // Sources: the addresses of the interfaces that are up, of the target's family;
    // loopback only for a loopback target.
    let mut sources: Vec<IpAddr> = links
        .into_iter()
        .flat_map(|ls| ls.values())
        .filter(|l| l.up && l.loopback == target.ip().is_loopback())
        .flat_map(|l| l.addrs.iter().copied())
        .filter(|a| a.is_ipv4() == target.is_ipv4())
        .collect();
    sources.sort();
    sources.dedup();
    for a in &sources {
        let via = name_of(*a);
        let route = rt.route_oif(*a, target.ip());
        let before = counters();
        match connect(Some(*a), target, timeout) {
            Err(e) => out.push(finding(
                Level::Warn,
                format!("from {a} ({via}): cannot connect to {target}"),
                e,
                route
                    .is_none()
                    .then(|| format!("no route from {a} to {}", target.ip())),
            )),
            Ok(s) => {
                let st = mptcp::status(&s);
                let after = counters();
                match st {
                    Ok(st) if st.using_mptcp => out.push(finding(
                        Level::Ok,
                        format!(
                            "from {a} ({via}): MP_CAPABLE succeeded, the connection uses MPTCP"
                        ),
                        format!("{:?}: using MPTCP", st.detection),
                        None,
                    )),
                    other => {
                        let why: Vec<String> = FALLBACK
                            .iter()
                            .filter(|(n, _)| delta(&before, &after, n) > 0)
                            .map(|(n, m)| format!("{m} ({n} +{})", delta(&before, &after, n)))
                            .collect();
                        out.push(finding(
                            Level::Warn,
                            format!(
                                "from {a} ({via}): the connection fell back to TCP: {}",
                                if why.is_empty() {
                                    "the kernel's counters do not say why".to_string()
                                } else {
                                    why.join("; ")
                                }
                            ),
                            match other {
                                Ok(st) => format!("{:?}: plain TCP", st.detection),
                                Err(e) => e.to_string(),
                            },
                            Some("check the server (does it listen with MPTCP?) and middleboxes on this path".into()),
                        ));
                    }
                }
            }
        }
    }
    joins(facts, target, timeout, send, &name_of, &mut out);
    out
}

/// One connection from the default source, kept open while the path manager adds its
/// subflows: which endpoints got one.
fn joins(
    facts: &Facts,
    target: SocketAddr,
    timeout: Duration,
    send: Option<&[u8]>,
    name_of: &dyn Fn(IpAddr) -> String,
    out: &mut Vec<Finding>,
) {
    if facts.pm_kind == Some(PmKind::Userspace) {
        out.push(finding(
            Level::Info,
            "MP_JOIN: the userspace path manager decides which subflows open (mptcp-pmd or mptcpd)"
                .into(),
            "net.mptcp.path_manager = userspace".into(),
            None,
        ));
    }
    let eps: Vec<IpAddr> = match &facts.endpoints {
        Ok(eps) => eps
            .iter()
            .filter(|e| {
                e.flags.contains(EndpointFlags::SUBFLOW) && e.addr.is_ipv4() == target.is_ipv4()
            })
            .map(|e| e.addr)
            .collect(),
        Err(_) => Vec::new(),
    };
    if eps.is_empty() && facts.pm_kind != Some(PmKind::Userspace) {
        out.push(finding(
            Level::Info,
            "MP_JOIN: no subflow endpoint of this family, so the kernel opens no extra subflow"
                .into(),
            "ip mptcp endpoint show: no subflow endpoint".into(),
            Some("ip mptcp endpoint add ADDR dev IF subflow".into()),
        ));
        return;
    }
    let before = counters();
    let mut s = match connect(None, target, timeout) {
        Ok(s) => s,
        Err(_) => return,
    };
    if !mptcp::is_mptcp(&s).unwrap_or(false) {
        return;
    }
    if let Some(b) = send {
        let _ = s.write_all(b);
    }
    // Read what the server says: it makes the connection fully established, which the
    // path manager waits for before it adds subflows.
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    let start = Instant::now();
    let mut got_data = false;
    let mut buf = [0u8; 4096];
    let want = eps.len() + 1;
    let mut locals: Vec<IpAddr> = Vec::new();
    while start.elapsed() < timeout {
        if let Ok(n) = s.read(&mut buf) {
            got_data |= n > 0;
        }
        locals = mptcp::subflows(&s)
            .map(|v| v.iter().map(|sf| sf.local.ip().to_canonical()).collect())
            .unwrap_or_default();
        if locals.len() >= want {
            break;
        }
    }
    let after = counters();
    let join_counts: Vec<String> = JOIN
        .iter()
        .map(|(n, m)| format!("{m}: +{}", delta(&before, &after, n)))
        .collect();
    let primary = s.local_addr().map(|a| a.ip().to_canonical()).ok();
    for a in eps {
        if Some(a) == primary {
            continue;
        }
        if locals.contains(&a) {
            out.push(finding(
                Level::Ok,
                format!(
                    "from {a} ({}): MP_JOIN succeeded, a subflow joined the connection",
                    name_of(a)
                ),
                format!("subflows of the connection: {}", locals.len()),
                None,
            ));
        } else {
            let quiet = !got_data && send.is_none();
            out.push(finding(
                Level::Warn,
                format!("from {a} ({}): no subflow joined within {:?}", name_of(a), timeout),
                join_counts.join(", "),
                Some(if quiet {
                    "the server sent nothing, and the kernel adds subflows only once the connection is fully established: retry with --send TEXT".into()
                } else {
                    "see the counters: no SYN/ACK means the path drops MP_JOIN or the server refuses joins (its limits); see also mptcp-doctor's routing findings".into()
                }),
            ));
        }
    }
}
