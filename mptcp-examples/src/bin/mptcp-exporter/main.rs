//! `mptcp-exporter`: the host's MPTCP state as Prometheus metrics on `/metrics`.
//!
//! ```text
//! mptcp-exporter [--listen ADDR:PORT] [--sample SECS] [--top-connections N]
//! ```
//!
//! Each scrape takes a fresh look at the host (sock_diag, /proc/net/netstat, the path
//! manager); between scrapes a sampler looks every `--sample` seconds so that the
//! per-path byte counters keep what subflows carried before they closed. See `DETAILS`.

use clap::Parser;
use mptcp_examples::exporter::events::{self, lock, EventCounts};
use mptcp_examples::exporter::{http, Exporter};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TOOL: &str = "mptcp-exporter";

const DETAILS: &str = "\
Metrics (each documented on /metrics by its HELP line):
  host         mptcp_mib_total{counter} (every MPTcpExt counter the kernel has, under its
               own name), mptcp_enabled, mptcp_path_manager{kind}, mptcp_limit{limit},
               mptcp_endpoints, mptcp_endpoints_with_flag{flag}
  connections  mptcp_connections{state}, mptcp_listeners, mptcp_connections_fallback,
               mptcp_connections_by_subflows{subflows}
  paths        per interface and local address: mptcp_path_subflows (open now),
               mptcp_path_{sent,acked,retransmitted,received}_bytes_total (closed
               subflows included), mptcp_path_rtt_seconds{stat=min|mean|max}
  events       mptcp_pm_events_total{type}, mptcp_pm_events_lost_total
  connections  with --top-connections N: mptcp_connection_{sent,received}_bytes_total
  (largest)    and mptcp_connection_subflows, labelled by token, for the N largest
  exporter     mptcp_exporter_sample_duration_seconds, mptcp_exporter_sample_errors,
               mptcp_exporter_subflows_visible, mptcp_exporter_pm_events_subscribed,
               mptcp_exporter_closes_subscribed, mptcp_exporter_closed_subflows_total

Per-path counters: each subflow's own TCP counters are followed from one look to the
next (each scrape, and every --sample seconds between scrapes). When the kernel frees a
subflow it broadcasts its last counters (sock_diag's destroy groups),
and its path keeps them: nothing it carried is lost. Without that broadcast, what it
had counted at the last look stays. A subflow that opened and closed between two looks
is not counted.

Privileges: everything but the path-manager events and (before Linux 6.15) the subflows
works unprivileged (the broadcast of closed sockets too, on Linux 6.18); those need
CAP_NET_ADMIN, and the metrics say what is missing (mptcp_exporter_subflows_visible,
mptcp_exporter_pm_events_subscribed, mptcp_exporter_closes_subscribed).

HTTP: GET /metrics (OpenMetrics when the client's Accept asks for it, as Prometheus
does; else the text format 0.0.4). Other paths get 404, other methods 405.";

#[derive(Parser)]
#[command(
    name = "mptcp-exporter",
    about = "The host's MPTCP state as Prometheus metrics",
    version,
    after_help = DETAILS
)]
struct Args {
    /// The address and port to serve /metrics on (loopback unless told otherwise).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:9849")]
    listen: SocketAddr,
    /// Look at the host this often between scrapes (seconds; 0: only at scrapes).
    #[arg(long, value_name = "SECS", default_value_t = 1.0, value_parser = parse_secs)]
    sample: f64,
    /// Per-connection series for the N largest connections (by bytes); 0: none.
    #[arg(long, value_name = "N", default_value_t = 0)]
    top_connections: usize,
}

fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (v == 0.0 || (0.01..=3600.0).contains(&v)) => Ok(v),
        Ok(_) => Err("expected 0, or from 0.01 to 3600 seconds".into()),
        Err(_) => Err("expected a number of seconds, such as 1 or 0.5".into()),
    }
}

fn main() {
    let args: Args = mptcp_examples::parse_args(TOOL);
    let server = match tiny_http::Server::http(args.listen) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{TOOL}: cannot listen on {}: {e}", args.listen);
            std::process::exit(1);
        }
    };
    let counts = Arc::new(Mutex::new(EventCounts::default()));
    events::follow(Arc::clone(&counts));
    let state = Arc::new(Mutex::new(Exporter::new(counts, args.top_connections)));
    mptcp_examples::exporter::follow_closes(Arc::clone(&state));
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            eprintln!("{TOOL}: cannot handle signal {sig}: {e}");
        }
    }
    if args.sample > 0.0 {
        let state = Arc::clone(&state);
        let every = Duration::from_secs_f64(args.sample);
        std::thread::spawn(move || loop {
            std::thread::sleep(every);
            lock(&state).look();
        });
    }
    eprintln!("{TOOL}: serving http://{}/metrics", args.listen);
    while !stop.load(Ordering::Relaxed) {
        let req = match server.recv_timeout(Duration::from_millis(200)) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                eprintln!("{TOOL}: {e}");
                continue;
            }
        };
        match http::route(&req) {
            http::Route::Metrics { openmetrics } => {
                let text = lock(&state).scrape();
                match text {
                    Ok(t) => http::respond_metrics(req, t, openmetrics),
                    Err(e) => http::respond(req, 500, "text/plain", format!("{e}\n")),
                }
            }
            http::Route::Index => http::respond(
                req,
                200,
                "text/plain; charset=utf-8",
                "mptcp-exporter: the metrics are at /metrics\n".into(),
            ),
            http::Route::Refused(status, text) => {
                http::respond(req, status, "text/plain", text.into())
            }
        }
    }
}
