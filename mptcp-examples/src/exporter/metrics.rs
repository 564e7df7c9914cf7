//! The metrics of one scrape: built from a look at the host, the per-path accounts and
//! the path-manager events counted so far, then encoded by prometheus-client.

use super::accounts::Accounts;
use super::events::EventCounts;
use super::sample::Sample;
use mptcp::diag::SocketState;
use mptcp::pm::{EndpointFlags, PmKind};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::collections::BTreeMap;

type Labels = Vec<(&'static str, String)>;

/// A sample's value: counts as integers, the rest as floating point.
#[derive(Debug, Clone, Copy)]
enum V {
    U(u64),
    F(f64),
}

/// One metric family and its samples.
#[derive(Debug)]
struct Family {
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
    counter: bool,
    samples: Vec<(Labels, V)>,
}

/// The metrics of one scrape, owned (the registry wants a `'static` collector).
#[derive(Debug, Default)]
pub struct Report {
    families: Vec<Family>,
}

impl Report {
    fn family(
        &mut self,
        name: &'static str,
        help: &'static str,
        unit: Option<Unit>,
        counter: bool,
    ) -> &mut Vec<(Labels, V)> {
        self.families.push(Family {
            name,
            help,
            unit,
            counter,
            samples: Vec::new(),
        });
        let last = self.families.len() - 1;
        &mut self.families[last].samples
    }

    fn gauge(&mut self, name: &'static str, help: &'static str, value: u64) {
        self.family(name, help, None, false)
            .push((Vec::new(), V::U(value)));
    }

    /// Encodes the report in the OpenMetrics text format.
    pub fn encode(self) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry)?;
        Ok(out)
    }
}

impl Collector for Report {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.families {
            let kind = if f.counter {
                MetricType::Counter
            } else {
                MetricType::Gauge
            };
            let mut m = encoder.encode_descriptor(f.name, f.help, f.unit.as_ref(), kind)?;
            if let [(labels, v)] = f.samples.as_slice() {
                if labels.is_empty() {
                    // One sample without labels: `name 1`, not `name{} 1`.
                    encode_value(m, *v, f.counter)?;
                    continue;
                }
            }
            for (labels, v) in &f.samples {
                encode_value(m.encode_family(labels)?, *v, f.counter)?;
            }
        }
        Ok(())
    }
}

/// Encodes one value as the family's type.
fn encode_value(e: MetricEncoder, v: V, counter: bool) -> Result<(), std::fmt::Error> {
    match (v, counter) {
        (V::U(n), true) => ConstCounter::new(n).encode(e),
        (V::F(x), true) => ConstCounter::new(x).encode(e),
        (V::U(n), false) => ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX)).encode(e),
        (V::F(x), false) => ConstGauge::new(x).encode(e),
    }
}

/// What the scrape reports beyond the host: the exporter's own state.
#[derive(Debug)]
pub struct Options {
    /// Per-connection series for this many connections, the largest by bytes.
    pub top_connections: usize,
    /// Seconds the scrape's look at the host took.
    pub sample_seconds: f64,
    /// The broadcast of closed subflows.
    pub closes: super::Closes,
}

/// Builds the report of one scrape.
pub fn report(s: &Sample, accounts: &Accounts, events: &EventCounts, o: &Options) -> Report {
    let mut r = Report::default();
    host(&mut r, s);
    connections(&mut r, s);
    paths(&mut r, s, accounts);
    let f = r.family(
        "mptcp_pm_events",
        "Path-manager events seen since the exporter started, by type (as ip mptcp monitor names them)",
        None,
        true,
    );
    for (kind, n) in &events.by_type {
        f.push((vec![("type", kind.to_string())], V::U(*n)));
    }
    r.gauge(
        "mptcp_exporter_pm_events_subscribed",
        "1 when the exporter receives path-manager events (it needs CAP_NET_ADMIN; Linux 5.12+)",
        u64::from(events.subscribed),
    );
    r.family(
        "mptcp_pm_events_lost",
        "Times path-manager events were lost (the socket's receive buffer was full)",
        None,
        true,
    )
    .push((Vec::new(), V::U(events.lost)));
    r.gauge(
        "mptcp_exporter_closes_subscribed",
        "1 when the exporter receives the kernel's broadcast of closed TCP sockets, which gives a closing subflow's last counters",
        u64::from(o.closes.subscribed),
    );
    r.family(
        "mptcp_exporter_closed_subflows",
        "Subflows whose last counters the kernel's broadcast gave",
        None,
        true,
    )
    .push((Vec::new(), V::U(o.closes.subflows)));
    r.family(
        "mptcp_exporter_closes_lost",
        "Times broadcasts of closed TCP sockets were lost (the receive buffer was full)",
        None,
        true,
    )
    .push((Vec::new(), V::U(o.closes.lost)));
    if o.top_connections > 0 {
        top_connections(&mut r, s, o.top_connections);
    }
    r.gauge(
        "mptcp_exporter_subflows_visible",
        "1 when the subflows of the connections are listed (before Linux 6.15 they need CAP_NET_ADMIN)",
        u64::from(s.subflows_visible != Some(false)),
    );
    r.family(
        "mptcp_exporter_sample_duration",
        "How long this scrape's look at the host took",
        Some(Unit::Seconds),
        false,
    )
    .push((Vec::new(), V::F(o.sample_seconds)));
    r.gauge(
        "mptcp_exporter_sample_errors",
        "Parts of the host this scrape could not read (the exporter logs each)",
        s.errors.len() as u64,
    );
    r
}

fn host(r: &mut Report, s: &Sample) {
    let f = r.family(
        "mptcp_mib",
        "The kernel's MPTCP counters (MPTcpExt of /proc/net/netstat, per network namespace), under the kernel's names",
        None,
        true,
    );
    for (name, v) in &s.counters {
        f.push((vec![("counter", name.clone())], V::U(*v)));
    }
    if let Some(e) = s.enabled {
        r.gauge(
            "mptcp_enabled",
            "net.mptcp.enabled: 1 when new sockets may use MPTCP",
            u64::from(e),
        );
    }
    if let Some(k) = s.pm_kind {
        let name = match k {
            PmKind::Kernel => "kernel",
            PmKind::Userspace => "userspace",
        };
        r.family(
            "mptcp_path_manager",
            "The path manager in use (net.mptcp.path_manager or pm_type): 1 for the one named",
            None,
            false,
        )
        .push((vec![("kind", name.to_string())], V::U(1)));
    }
    if let Some(l) = &s.limits {
        let f = r.family(
            "mptcp_limit",
            "The in-kernel path manager's limits (ip mptcp limits)",
            None,
            false,
        );
        if let Some(v) = l.subflows {
            f.push((vec![("limit", "subflows".into())], V::U(u64::from(v))));
        }
        if let Some(v) = l.add_addr_accepted {
            f.push((
                vec![("limit", "add_addr_accepted".into())],
                V::U(u64::from(v)),
            ));
        }
    }
    if let Some(eps) = &s.endpoints {
        r.gauge(
            "mptcp_endpoints",
            "The in-kernel path manager's endpoints (ip mptcp endpoint show)",
            eps.len() as u64,
        );
        let f = r.family(
            "mptcp_endpoints_with_flag",
            "Endpoints with each flag",
            None,
            false,
        );
        for (flag, name) in [
            (EndpointFlags::SUBFLOW, "subflow"),
            (EndpointFlags::SIGNAL, "signal"),
            (EndpointFlags::BACKUP, "backup"),
            (EndpointFlags::FULLMESH, "fullmesh"),
        ] {
            let n = eps.iter().filter(|e| e.flags.contains(flag)).count();
            f.push((vec![("flag", name.to_string())], V::U(n as u64)));
        }
    }
}

fn connections(r: &mut Report, s: &Sample) {
    let mut by_state: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut by_subflows: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut fallback = 0u64;
    let mut listeners = 0u64;
    for c in &s.connections {
        if c.state == SocketState::Listen {
            listeners += 1;
            continue;
        }
        *by_state.entry(c.state.name()).or_default() += 1;
        if c.info
            .as_ref()
            .is_some_and(|i| i.flags().contains(mptcp::InfoFlags::FALLBACK))
        {
            fallback += 1;
        }
        if s.subflows_visible != Some(false) {
            let n = match c.subflows.len() {
                0 => "0",
                1 => "1",
                2 => "2",
                3 => "3",
                _ => "4+",
            };
            *by_subflows.entry(n).or_default() += 1;
        }
    }
    let f = r.family(
        "mptcp_connections",
        "MPTCP connections (listeners not included), by state as ss names it, in lower case (estab, syn-sent, time-wait ...)",
        None,
        false,
    );
    for (state, n) in by_state {
        f.push((vec![("state", state.to_ascii_lowercase())], V::U(n)));
    }
    r.gauge("mptcp_listeners", "MPTCP listening sockets", listeners);
    r.gauge(
        "mptcp_connections_fallback",
        "MPTCP sockets that fell back to TCP (MPTCP_INFO_FLAG_FALLBACK)",
        fallback,
    );
    let f = r.family(
        "mptcp_connections_by_subflows",
        "MPTCP connections by their number of subflows",
        None,
        false,
    );
    for (n, c) in by_subflows {
        f.push((vec![("subflows", n.to_string())], V::U(c)));
    }
}

fn paths(r: &mut Report, s: &Sample, accounts: &Accounts) {
    let totals = accounts.totals();
    let labels = |p: &super::accounts::Path| {
        vec![
            ("interface", p.interface.clone()),
            ("address", p.address.clone()),
        ]
    };
    let f = r.family(
        "mptcp_path_subflows",
        "Open subflows per path (interface and local address)",
        None,
        false,
    );
    for (p, t) in &totals {
        f.push((labels(p), V::U(t.open)));
    }
    for (name, help, pick) in [
        (
            "mptcp_path_sent",
            "Bytes the subflows of a path sent, retransmissions included (tcpi_bytes_sent), closed subflows included",
            (|t: &super::accounts::Bytes| t.sent) as fn(&super::accounts::Bytes) -> u64,
        ),
        (
            "mptcp_path_acked",
            "Bytes of a path's subflows the peer acknowledged (tcpi_bytes_acked), closed subflows included",
            |t| t.acked,
        ),
        (
            "mptcp_path_retransmitted",
            "Bytes a path's subflows retransmitted (tcpi_bytes_retrans), closed subflows included",
            |t| t.retransmitted,
        ),
        (
            "mptcp_path_received",
            "Bytes a path's subflows received (tcpi_bytes_received), closed subflows included",
            |t| t.received,
        ),
    ] {
        let f = r.family(name, help, Some(Unit::Bytes), true);
        for (p, t) in &totals {
            f.push((labels(p), V::U(pick(&t.bytes))));
        }
    }
    // Smoothed RTT of the open subflows, per path.
    let mut rtts: BTreeMap<&super::accounts::Path, (f64, f64, f64, u32)> = BTreeMap::new();
    for c in &s.connections {
        for sf in &c.subflows {
            let (Some(t), Some(p)) = (&sf.tcp_info, accounts.path_of(sf.local, sf.remote)) else {
                continue;
            };
            let v = f64::from(t.rtt()) / 1e6;
            let e = rtts.entry(p).or_insert((f64::MAX, 0.0, 0.0, 0));
            e.0 = e.0.min(v);
            e.1 += v;
            e.2 = e.2.max(v);
            e.3 += 1;
        }
    }
    let f = r.family(
        "mptcp_path_rtt",
        "Smoothed RTT (tcpi_rtt) of a path's open subflows: their minimum, mean and maximum",
        Some(Unit::Seconds),
        false,
    );
    for (p, (min, sum, max, n)) in rtts {
        for (stat, v) in [("min", min), ("mean", sum / f64::from(n)), ("max", max)] {
            let mut l = labels(p);
            l.push(("stat", stat.to_string()));
            f.push((l, V::F(v)));
        }
    }
}

fn top_connections(r: &mut Report, s: &Sample, n: usize) {
    let bytes = |c: &mptcp::diag::DiagConnection| -> (u64, u64) {
        let sum = |f: fn(&mptcp::TcpInfo) -> u64| {
            c.subflows
                .iter()
                .filter_map(|sf| sf.tcp_info.as_ref().map(f))
                .fold(0u64, u64::saturating_add)
        };
        match c
            .info
            .as_ref()
            .and_then(|i| Some((i.bytes_sent()?, i.bytes_received()?)))
        {
            Some(b) => b,
            None => (sum(|t| t.bytes_sent()), sum(|t| t.bytes_received())),
        }
    };
    let mut conns: Vec<_> = s
        .connections
        .iter()
        .filter(|c| c.token.is_some() && c.state != SocketState::Listen)
        .map(|c| (bytes(c), c))
        .collect();
    conns.sort_by_key(|((sent, recv), _)| std::cmp::Reverse(sent.saturating_add(*recv)));
    conns.truncate(n);
    let token = |c: &mptcp::diag::DiagConnection| {
        vec![("token", c.token.map(|t| t.to_string()).unwrap_or_default())]
    };
    let f = r.family(
        "mptcp_connection_sent",
        "Bytes a connection sent (mptcpi_bytes_sent, Linux 6.5+; else its subflows' sum), for the largest connections",
        Some(Unit::Bytes),
        true,
    );
    for ((sent, _), c) in &conns {
        f.push((token(c), V::U(*sent)));
    }
    let f = r.family(
        "mptcp_connection_received",
        "Bytes a connection received (mptcpi_bytes_received, Linux 6.5+; else its subflows' sum), for the largest connections",
        Some(Unit::Bytes),
        true,
    );
    for ((_, recv), c) in &conns {
        f.push((token(c), V::U(*recv)));
    }
    let f = r.family(
        "mptcp_connection_subflows",
        "Subflows of each of the largest connections",
        None,
        false,
    );
    for (_, c) in &conns {
        f.push((token(c), V::U(c.subflows.len() as u64)));
    }
}
