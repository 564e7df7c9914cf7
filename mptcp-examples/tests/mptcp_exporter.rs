//! `mptcp-exporter` on live two-path connections in network namespaces: its per-path
//! series against `ss` and `mptcp-stat --json`, byte counters that keep what closed
//! subflows carried, path-manager events, HTTP errors and formats (checked by
//! `promtool`), and a real Prometheus scraping it during a transfer (its subflow and
//! byte series against `ss` and `mptcp-stat --json`, its rate against the transfer's), with the shipped
//! Grafana dashboard's queries.

#[macro_use]
extern crate mptcp_testnet;
use mptcp_testnet as common;

use common::{wait_for, Netns, Topology, PATHS};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const EXPORTER: &str = env!("CARGO_BIN_EXE_mptcp-exporter");
const STAT: &str = env!("CARGO_BIN_EXE_mptcp-stat");

/// A process killed (and reaped) when dropped, even when the test fails.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the exporter in `ns` on 127.0.0.1:`port` and waits until it answers.
fn exporter(ns: &Netns, port: u16, extra: &[&str]) -> Killed {
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.name, EXPORTER, "--listen", &listen])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start mptcp-exporter");
    let k = Killed(child);
    wait_for(Duration::from_secs(10), || {
        (http(ns, port, "GET", "/metrics", None).0 == 200).then_some(())
    })
    .expect("the exporter answers");
    k
}

/// `curl` in `ns`: (status, content type, body).
fn http(
    ns: &Netns,
    port: u16,
    method: &str,
    path: &str,
    accept: Option<&str>,
) -> (u16, String, String) {
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns", "exec", &ns.name, "curl", "-sS", "-m", "10", "-X", method,
    ]);
    if let Some(a) = accept {
        cmd.args(["-H", &format!("Accept: {a}")]);
    }
    let out = cmd
        .args(["-w", "\n%{http_code} %{content_type}", &url])
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, last) = text.rsplit_once('\n').unwrap_or(("", &text));
    let (code, ctype) = last.split_once(' ').unwrap_or((last, ""));
    (
        code.parse().unwrap_or(0),
        ctype.to_string(),
        body.to_string(),
    )
}

/// One sample of the text format: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|kv| !kv.is_empty())
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k.to_string(), v.trim_matches('"').to_string()))
                })
                .collect();
            Some((name.to_string(), labels, value.parse().ok()?))
        })
        .collect()
}

/// The samples named `name` whose labels include `with`.
fn values<'a>(samples: &'a [Sample], name: &str, with: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && with
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(v))
        })
        .collect()
}

fn sum(samples: &[Sample], name: &str) -> f64 {
    values(samples, name, &[]).iter().map(|s| s.2).sum()
}

fn scrape(ns: &Netns, port: u16) -> Vec<Sample> {
    let (code, _, body) = http(ns, port, "GET", "/metrics", None);
    assert_eq!(code, 200, "{body}");
    parse(&body)
}

/// A free TCP port on loopback of the test's own namespace (a fresh namespace has them
/// all free as well).
fn port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Two paths, the client opening a subflow on the second; the server's listener.
fn topology(port: u16) -> (Topology, TcpListener) {
    let t = Topology::new(2);
    t.client_subflow_endpoints(false);
    let l = t.mptcp_listener(port);
    (t, l)
}

/// The local addresses of the client's established TCP sockets to `port`, as `ss`
/// shows them (the subflows).
fn ss_local_addresses(ns: &Netns, port: u16) -> BTreeSet<String> {
    let filter = format!("( dport = :{port} )");
    ns.exec(&["ss", "-Htn", "state", "established", &filter])
        .lines()
        .filter_map(|l| {
            let local = l.split_whitespace().nth(2)?;
            // "198.51.100.1%eth1:41234": a subflow bound to its device.
            let addr = local.rsplit_once(':')?.0;
            Some(addr.split('%').next().unwrap_or(addr).to_string())
        })
        .collect()
}

/// Bytes sent (`bytes_sent:`) by the client's established TCP sockets to `port`, summed
/// per local address, as `ss -ti` shows them.
fn ss_bytes_sent(ns: &Netns, port: u16) -> BTreeMap<String, u64> {
    let filter = format!("( dport = :{port} )");
    let out = ns.exec(&["ss", "-Htni", "state", "established", &filter]);
    let mut sums = BTreeMap::new();
    let mut addr = None;
    for l in out.lines() {
        if !l.starts_with(char::is_whitespace) {
            addr = l.split_whitespace().nth(2).and_then(|a| {
                let ip = a.rsplit_once(':')?.0;
                Some(ip.split('%').next().unwrap_or(ip).to_string())
            });
        } else if let Some(a) = &addr {
            let n: u64 = l
                .split_whitespace()
                .find_map(|w| w.strip_prefix("bytes_sent:"))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            *sums.entry(a.clone()).or_default() += n;
        }
    }
    sums
}

/// The same from `mptcp-stat --json` (each subflow's `tcp_info.bytes_sent`).
fn stat_bytes_sent(ns: &Netns, port: u16) -> BTreeMap<String, u64> {
    let port_s = port.to_string();
    let mut sums = BTreeMap::new();
    for l in ns.exec(&[STAT, "--json", "port", &port_s]).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else {
            continue;
        };
        for sf in v["subflows"].as_array().cloned().unwrap_or_default() {
            let local = sf["local"].as_str().unwrap_or("");
            let ip = local.rsplit_once(':').map_or(local, |(ip, _)| ip);
            *sums.entry(ip.to_string()).or_default() +=
                sf["tcp_info"]["bytes_sent"].as_u64().unwrap_or(0);
        }
    }
    sums
}

/// The subflows `mptcp-stat --json` lists for the client's connections to `port`.
fn stat_subflows(ns: &Netns, port: u16) -> usize {
    let port_s = port.to_string();
    let out = ns.exec(&[STAT, "--json", "port", &port_s]);
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["state"] != "listen")
        .map(|v| v["subflows"].as_array().map_or(0, Vec::len))
        .sum()
}

#[test]
fn exporter_follows_two_paths_and_keeps_what_closed_subflows_carried() {
    require_netns!();
    if !common::caps().mptcp {
        eprintln!("skipped: this kernel has no MPTCP");
        return;
    }
    let app = 8091;
    let (t, l) = topology(app);
    let mport = port();
    let _exp = exporter(
        &t.client,
        mport,
        &["--sample", "0", "--top-connections", "5"],
    );
    let (mut client, mut server) = t.mptcp_pair(&l, app, 2);

    // Two open subflows, one per path, at the addresses ss shows and as many as
    // mptcp-stat lists.
    let m = scrape(&t.client, mport);
    let open: BTreeSet<String> = values(&m, "mptcp_path_subflows", &[])
        .iter()
        .filter(|s| s.2 > 0.0)
        .map(|s| s.1["address"].clone())
        .collect();
    assert_eq!(open, ss_local_addresses(&t.client, app), "exporter vs ss");
    assert_eq!(
        sum(&m, "mptcp_path_subflows") as usize,
        stat_subflows(&t.client, app)
    );
    for (i, p) in PATHS.iter().enumerate() {
        let dev = format!("eth{i}");
        let s = values(
            &m,
            "mptcp_path_subflows",
            &[("interface", &dev), ("address", p.client4)],
        );
        assert_eq!(s.len(), 1, "a series for {dev}: {m:?}");
        assert_eq!(s[0].2, 1.0, "one subflow on {dev}");
    }
    assert_eq!(
        values(&m, "mptcp_connections", &[("state", "estab")])[0].2,
        1.0
    );
    assert_eq!(
        values(&m, "mptcp_connections_by_subflows", &[("subflows", "2")])[0].2,
        1.0
    );
    assert_eq!(
        values(&m, "mptcp_connection_subflows", &[]).len(),
        1,
        "--top-connections"
    );
    assert!(!values(&m, "mptcp_mib_total", &[("counter", "MPJoinSynTx")]).is_empty());
    assert!(values(&m, "mptcp_path_rtt_seconds", &[("stat", "max")])
        .iter()
        .all(|s| s.2 > 0.0));

    // 4 MB through both subflows, received intact; then both sides close.
    let data = common::data(4 << 20);
    let want = common::sha256(&data);
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        server.read_to_end(&mut got).expect("read");
        got
    });
    client.write_all(&data).expect("write");
    // No look at the host between the first scrape and the close (--sample 0): what
    // the subflows carried reaches the exporter through the kernel's broadcast of
    // closed sockets alone.
    drop(client);
    let got = reader.join().expect("reader");
    assert_eq!(common::sha256(&got), want, "the bytes arrived intact");
    wait_for(Duration::from_secs(10), || {
        (sum(&scrape(&t.client, mport), "mptcp_path_subflows") == 0.0).then_some(())
    })
    .expect("the subflows gone");

    // After close: the bytes stay counted.
    let m = scrape(&t.client, mport);
    let sent = sum(&m, "mptcp_path_sent_bytes_total");
    let acked = sum(&m, "mptcp_path_acked_bytes_total");
    assert!(
        sent >= data.len() as f64,
        "sent {sent} of {} after close",
        data.len()
    );
    assert!(acked >= data.len() as f64, "acked {acked} after close");
    assert_eq!(
        values(&m, "mptcp_exporter_closes_subscribed", &[])[0].2,
        1.0
    );
    assert!(
        values(&m, "mptcp_exporter_closed_subflows_total", &[])[0].2 >= 2.0,
        "both subflows' last counters came from the broadcast"
    );
    for kind in ["CREATED", "ESTABLISHED", "SF_ESTABLISHED", "CLOSED"] {
        let n = values(&m, "mptcp_pm_events_total", &[("type", kind)]);
        assert!(
            n.first().is_some_and(|s| s.2 >= 1.0),
            "{kind} counted: {n:?}"
        );
    }
    assert_eq!(
        values(&m, "mptcp_exporter_pm_events_subscribed", &[])[0].2,
        1.0
    );
}

#[test]
fn exporter_answers_http_as_a_server_should() {
    require_netns!();
    let ns = Netns::new("exp-http");
    let mport = port();
    let _exp = exporter(&ns, mport, &["--sample", "0"]);
    let (code, ctype, body) = http(
        &ns,
        mport,
        "GET",
        "/metrics",
        Some("application/openmetrics-text; version=1.0.0"),
    );
    assert_eq!(code, 200);
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    assert!(
        body.trim_end().ends_with("# EOF"),
        "OpenMetrics ends with # EOF"
    );
    let (code, ctype, text) = http(&ns, mport, "GET", "/metrics", None);
    assert_eq!(code, 200);
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    assert!(!text.contains("# EOF") && !text.contains("# UNIT"));
    assert!(text.contains("# TYPE mptcp_mib_total counter"), "{text}");
    // promtool (Prometheus' own checker) parses the text format.
    if let Ok(mut p) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        p.stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write");
        let out = p.wait_with_output().expect("promtool");
        let said = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "promtool check metrics: {said}");
        assert!(!said.contains("error"), "{said}");
    } else {
        panic!("promtool is missing: cargo xtask test installs prometheus");
    }
    assert_eq!(http(&ns, mport, "GET", "/nope", None).0, 404);
    assert_eq!(http(&ns, mport, "POST", "/metrics", None).0, 405);
    // A request that is not HTTP, and a client that goes away: the exporter goes on.
    ns.run(move || {
        let mut s = TcpStream::connect(("127.0.0.1", mport)).expect("connect");
        let _ = s.write_all(b"\x00\x01garbage\r\n\r\n");
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut v = Vec::new();
        let _ = s.read_to_end(&mut v);
        drop(TcpStream::connect(("127.0.0.1", mport)));
    });
    assert_eq!(http(&ns, mport, "GET", "/metrics", None).0, 200);
}

/// A real Prometheus (Debian's) scrapes the exporter every second during a two-path
/// transfer at a known rate; its view must agree with `ss`, `mptcp-stat --json` and the
/// transfer's own rate.
#[test]
fn prometheus_scrapes_the_exporter_during_a_transfer() {
    require_netns!();
    if !common::caps().mptcp {
        eprintln!("skipped: this kernel has no MPTCP");
        return;
    }
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("prometheus is missing: cargo xtask test installs it");
    }
    let app = 8092;
    let (t, l) = topology(app);
    // 2 x 16 Mbit/s: about 4 MB/s together.
    t.rate_limit("16mbit");
    let mport = port();
    let pport = port();
    let _exp = exporter(&t.client, mport, &["--sample", "0.5"]);
    let dir = std::env::temp_dir().join(format!("mptcp-exporter-prom-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("prometheus dir");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: mptcp\n    static_configs:\n      - targets: ['127.0.0.1:{mport}']\n"
        ),
    )
    .expect("write the config");
    let listen = format!("127.0.0.1:{pport}");
    let prom = Command::new("ip")
        .args(["netns", "exec", &t.client.name, "prometheus"])
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={listen}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    // Dropped in reverse: Prometheus stops, then its directory goes.
    let _cleanup = RemoveDir(dir.clone());
    let _prom = Killed(prom);
    let query = |q: &str| -> serde_json::Value {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &t.client.name,
                "curl",
                "-sS",
                "-m",
                "10",
                "-G",
            ])
            .arg(format!("http://{listen}/api/v1/query"))
            .arg("--data-urlencode")
            .arg(format!("query={q}"))
            .output()
            .expect("run curl");
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    };
    wait_for(Duration::from_secs(30), || {
        (query("up{job=\"mptcp\"}")["data"]["result"][0]["value"][1] == "1").then_some(())
    })
    .expect("Prometheus scrapes the exporter");

    let (mut client, mut server) = t.mptcp_pair(&l, app, 2);
    let total = 24usize << 20;
    let reader = std::thread::spawn(move || {
        let mut got = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        let start = Instant::now();
        while got < total {
            match server.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        (got, start.elapsed(), server)
    });
    let writer = std::thread::spawn(move || {
        let chunk = vec![7u8; 1 << 16];
        let mut sent = 0;
        while sent < total {
            if client.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
        client
    });
    // Mid-transfer, after several scrapes: Prometheus' view against ss and mptcp-stat.
    std::thread::sleep(Duration::from_secs(4));
    let wait_scrapes = |n: f64| {
        wait_for(Duration::from_secs(20), || {
            let v = query("count_over_time(mptcp_path_subflows[4s])");
            let c: f64 = v["data"]["result"][0]["value"][1].as_str()?.parse().ok()?;
            (c >= n).then_some(())
        })
    };
    wait_scrapes(2.0).expect("two scrapes during the transfer");
    let v = query("mptcp_path_subflows > 0");
    let mut prom_addrs = BTreeSet::new();
    let mut prom_subflows = 0.0;
    for r in v["data"]["result"].as_array().cloned().unwrap_or_default() {
        prom_addrs.insert(r["metric"]["address"].as_str().unwrap_or("").to_string());
        prom_subflows += r["value"][1]
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    }
    assert_eq!(
        prom_addrs,
        ss_local_addresses(&t.client, app),
        "Prometheus vs ss"
    );
    assert_eq!(
        prom_subflows as usize,
        stat_subflows(&t.client, app),
        "Prometheus vs mptcp-stat --json"
    );
    let rate = query("sum(rate(mptcp_path_sent_bytes_total[3s]))");
    let prom_rate: f64 = rate["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    // The shipped Grafana dashboard: every query is valid PromQL for this Prometheus,
    // and the per-path panels have data.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/dist/grafana-mptcp.json"
        ))
        .expect("read the dashboard"),
    )
    .expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().cloned().unwrap_or_default();
    assert!(panels.len() >= 8, "the dashboard's panels");
    for p in &panels {
        for target in p["targets"].as_array().cloned().unwrap_or_default() {
            let expr = target["expr"].as_str().expect("a query");
            let q = expr
                .replace("$instance", ".*")
                .replace("$__rate_interval", "5s");
            let v = query(&q);
            assert_eq!(v["status"], "success", "{}: {q}: {v}", p["title"]);
            if p["title"] == "Sent per path" || p["title"] == "Open subflows per path" {
                assert!(
                    !v["data"]["result"].as_array().is_none_or(Vec::is_empty),
                    "{}: {q} has data",
                    p["title"]
                );
            }
        }
    }
    let client = writer.join().expect("writer");
    let (got, took, server) = reader.join().expect("reader");
    assert_eq!(got, total, "the whole transfer arrived");
    // Idle, both ends open: after two more scrapes, the byte series Prometheus stored
    // equal what ss and mptcp-stat --json show now, per local address.
    std::thread::sleep(Duration::from_millis(2500));
    let v = query("mptcp_path_sent_bytes_total");
    let mut prom_bytes = BTreeMap::new();
    for r in v["data"]["result"].as_array().cloned().unwrap_or_default() {
        let addr = r["metric"]["address"].as_str().unwrap_or("").to_string();
        let n: u64 = r["value"][1]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        prom_bytes.insert(addr, n);
    }
    let ss = ss_bytes_sent(&t.client, app);
    assert_eq!(
        prom_bytes, ss,
        "bytes sent per address: Prometheus vs ss -ti"
    );
    assert_eq!(
        ss,
        stat_bytes_sent(&t.client, app),
        "ss vs mptcp-stat --json"
    );
    assert!(ss.values().sum::<u64>() >= total as u64);
    drop((client, server));
    let transfer_rate = got as f64 / took.as_secs_f64();
    let ratio = prom_rate / transfer_rate;
    eprintln!(
        "Prometheus: rate(mptcp_path_sent_bytes_total) {:.2} MB/s, the transfer {:.2} MB/s (ratio {ratio:.2})",
        prom_rate / 1e6,
        transfer_rate / 1e6
    );
    assert!(
        (0.6..=1.4).contains(&ratio),
        "rate() of the byte counters {prom_rate:.0} B/s against the transfer's {transfer_rate:.0} B/s"
    );
}

/// Removes a directory when dropped.
struct RemoveDir(std::path::PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
