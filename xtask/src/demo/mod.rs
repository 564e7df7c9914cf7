//! `cargo xtask demo`: what MPTCP does, live and measured, between two network
//! namespaces joined by two rate-limited paths, with the `mptcp` library itself
//! (sockets, per-subflow `tcp_info`, the path manager and its events):
//!
//! 1. aggregation: the same timed transfer over single-path TCP and over MPTCP;
//! 2. failover: path 1's link goes down mid-transfer and comes back;
//! 3. backup: path 2 is a backup endpoint, used once path 1 is gone.
//!
//! Files: `topology.rs` (namespaces, links, rates, entering a namespace),
//! `transfer.rs` (sender, receiver, sampling the counters), `acts.rs` (the three acts
//! and their schedules), `display.rs` (progress bars, or plain lines off a terminal),
//! `plot.rs` (the SVG), `report.rs` (summary table and JSON).

mod acts;
mod display;
mod plot;
mod report;
mod topology;
mod transfer;

use crate::packages::ensure_packages;
use crate::sys::{is_root, root, target_dir};
use acts::{Stage, MPTCP_PORT, RATE_MBIT, TCP_PORT};
use anyhow::{bail, Context, Result};
use display::Display;
use mptcp::pm::{EventItem, PathManager};
use mptcp::Mode;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use topology::{Topology, PATHS};

/// Set by the first Ctrl-C (or SIGTERM): the acts stop at their next step and
/// everything is cleaned up on the way out. A second one cleans up and exits at once.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// `cargo xtask demo [--json] [--without-mptcp]`.
pub fn run(json: bool, without_mptcp: bool) -> Result<()> {
    if !is_root() {
        bail!(
            "the demo needs root: it creates network namespaces and veth links (ip netns, \
             ip link), limits their rate (tc) and sets MPTCP endpoints and limits, which \
             take CAP_SYS_ADMIN and CAP_NET_ADMIN; run it as root (e.g. sudo -E cargo xtask demo)"
        );
    }
    ensure_packages(&["iproute2"])?;
    ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::Relaxed) {
            topology::delete_all();
            display::restore_terminal();
            eprintln!("\nxtask demo: interrupted twice; namespaces removed");
            std::process::exit(130);
        }
    })
    .context("install the Ctrl-C handler")?;
    let result = demo(json, without_mptcp);
    if interrupted() {
        // The display and the namespaces were dropped on the way out of `demo`.
        eprintln!("xtask demo: interrupted; the demo's namespaces were removed");
        std::process::exit(130);
    }
    result
}

fn demo(json: bool, without_mptcp: bool) -> Result<()> {
    let started = Instant::now();
    let topo = Topology::new(RATE_MBIT)?;
    if without_mptcp {
        for ns in [&topo.client, &topo.server] {
            topo.sysctl(ns, "net.mptcp.enabled", "0")?;
        }
    }
    let mut display = Display::new(RATE_MBIT);
    display.say(&format!(
        "MPTCP demo: namespaces {} and {}, joined by two veth paths of {RATE_MBIT} Mbit/s each way (tbf):",
        topo.client, topo.server
    ));
    for (i, p) in PATHS.iter().enumerate() {
        display.say(&format!(
            "  path {}: {} <-> {} ({})",
            i + 1,
            p.client4,
            p.server4,
            p.dev
        ));
    }
    let missing = probe(&topo)?;
    let server = topo.server.clone();
    let tcp_listener = Topology::run_in(&server, || {
        Ok(TcpListener::bind(SocketAddr::from((
            [0, 0, 0, 0],
            TCP_PORT,
        )))?)
    })
    .context("listen for TCP")?;
    let mptcp_listener = match &missing {
        Some(what) => {
            display.say(&format!(
                "No MPTCP here: {what}. MPTCP needs Linux 5.6+ built with CONFIG_MPTCP \
                 (its path manager: 5.7+) and net.mptcp.enabled = 1. Only the TCP act runs."
            ));
            None
        }
        None => Some(Arc::new(
            Topology::run_in(&server, || {
                let any = SocketAddr::from(([0, 0, 0, 0], MPTCP_PORT));
                Ok(mptcp::listen_with(any, Mode::Require)?)
            })
            .context("listen for MPTCP")?,
        )),
    };
    // The client's path-manager events, read on a thread of their own.
    let stop_events = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let event_thread = if missing.is_none() {
        let ev = Topology::run_in(&topo.client, || {
            let ev = PathManager::new()?.events()?;
            ev.set_timeout(Some(Duration::from_millis(100)))?;
            Ok(ev)
        })
        .context("subscribe to the path manager's events")?;
        let stop = stop_events.clone();
        Some(std::thread::spawn(move || {
            for item in ev {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(EventItem::Event(e)) = item {
                    if tx.send((Instant::now(), e)).is_err() {
                        break;
                    }
                }
            }
        }))
    } else {
        None
    };
    let mut stage = Stage {
        topo: &topo,
        display: &mut display,
        events: event_thread.as_ref().map(|_| rx),
        interrupted: &interrupted,
        tcp_listener: Arc::new(tcp_listener),
        mptcp_listener,
    };
    if missing.is_none() {
        stage.endpoints(false)?;
        stage.display.say(&format!(
            "The client's in-kernel path manager has a subflow endpoint {} bound to {}: once a connection is fully established, it opens a second subflow from there, over path 2, to the server's address {} (the only one the server gives).",
            PATHS[1].client4, PATHS[1].dev, PATHS[0].server4
        ));
    }
    let mut acts = Vec::new();
    let (aggregation, act) = stage.aggregation()?;
    acts.push(act);
    let (mut failover, mut backup) = (None, None);
    if missing.is_none() {
        let (f, act) = stage.failover()?;
        failover = Some(f);
        acts.push(act);
        let (b, act) = stage.backup()?;
        backup = Some(b);
        acts.push(act);
    }
    drop(stage);
    stop_events.store(true, Ordering::Relaxed);
    if let Some(t) = event_thread {
        let _ = t.join();
    }
    drop(topo);

    let dir = target_dir().join("demo");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let svg = dir.join("throughput.svg");
    plot::draw(&acts, RATE_MBIT, &svg)?;
    let shown = svg
        .strip_prefix(root())
        .unwrap_or(&svg)
        .display()
        .to_string();
    let report = report::Report {
        aggregation,
        failover,
        backup,
        plot: Some(shown),
        secs: started.elapsed().as_secs_f64(),
    };
    println!();
    for line in report.table() {
        println!("{line}");
    }
    if json {
        println!("{}", report.json());
    }
    Ok(())
}

/// What is missing for MPTCP in the client namespace, if anything: MPTCP sockets, or
/// the path manager's Generic Netlink family.
fn probe(topo: &Topology) -> Result<Option<String>> {
    Topology::run_in(&topo.client, || {
        if let Err(e) = mptcp::MptcpSocket::new_v4(Mode::Require) {
            return Ok(Some(match e {
                mptcp::Error::Unavailable(why) => format!("MPTCP sockets are unavailable: {why}"),
                other => format!("MPTCP sockets are unavailable: {other}"),
            }));
        }
        if let Err(e) = PathManager::new() {
            return Ok(Some(format!(
                "the MPTCP path manager (Generic Netlink family mptcp_pm) is unavailable: {e}"
            )));
        }
        Ok(None)
    })
}
