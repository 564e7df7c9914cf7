//! `mptcp-exporter`'s engine: a look at the host ([`sample`]), per-path accounts that
//! outlive subflows ([`accounts`]), path-manager events ([`events`]), the metrics of a
//! scrape ([`metrics`]) and their HTTP serving ([`http`]). The binary runs it; the
//! benchmarks call [`Exporter::scrape`] directly.

pub mod accounts;
pub mod events;
pub mod http;
pub mod metrics;
pub mod sample;

use accounts::Accounts;
use events::{lock, EventCounts};
use sample::{Host, Sample};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use mptcp::diag::{ClosedItem, ClosedTcpSockets};

/// Follows the kernel's broadcast of destroyed TCP sockets on a new thread, handing
/// each to the exporter; where the kernel refuses the subscription it logs why and the
/// exporter goes on with its looks alone.
pub fn follow_closes(exporter: Arc<Mutex<Exporter>>) {
    let sub = match ClosedTcpSockets::subscribe() {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "mptcp-exporter: no broadcast of closed subflows ({e}): what a subflow \
                 carries after the last look before it closes is not counted"
            );
            return;
        }
    };
    // Every TCP socket of the namespace is broadcast: room for a burst of closes.
    let _ = sub.set_receive_buffer(4 << 20);
    lock(&exporter).closes.subscribed = true;
    std::thread::spawn(move || {
        for item in sub {
            match item {
                Ok(i) => lock(&exporter).on_close(i),
                Err(e) => {
                    lock(&exporter).closes.subscribed = false;
                    eprintln!("mptcp-exporter: the broadcast of closed subflows stopped: {e}");
                    return;
                }
            }
        }
    });
}

/// What the sampler and the scrapes share.
#[derive(Debug)]
pub struct Exporter {
    host: Host,
    accounts: Accounts,
    events: Arc<Mutex<EventCounts>>,
    /// Per-connection series for this many connections (the largest by bytes).
    top_connections: usize,
    /// The errors already logged (each once).
    logged: HashSet<String>,
    /// The destroy broadcast's state.
    closes: Closes,
}

/// How the kernel's broadcast of destroyed TCP sockets is followed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Closes {
    /// Whether the subscription runs.
    pub subscribed: bool,
    /// Subflows whose last counters it gave.
    pub subflows: u64,
    /// Times broadcasts were lost (a full receive buffer).
    pub lost: u64,
}

impl Exporter {
    /// An exporter of the calling thread's network namespace; `events` is filled by
    /// [`events::follow`] (or stays empty).
    pub fn new(events: Arc<Mutex<EventCounts>>, top_connections: usize) -> Exporter {
        Exporter {
            host: Host::new(),
            accounts: Accounts::default(),
            events,
            top_connections,
            logged: HashSet::new(),
            closes: Closes::default(),
        }
    }

    /// A broadcast of the kernel's destroy groups: a closed subflow's last counters go
    /// to its path.
    pub fn on_close(&mut self, item: ClosedItem) {
        match item {
            ClosedItem::Closed(c) => {
                let last = c.tcp_info.as_ref().map(accounts::Bytes::of);
                if self.accounts.closed(c.local, c.remote, last) {
                    self.closes.subflows += 1;
                }
            }
            ClosedItem::Lost => self.closes.lost += 1,
            _ => {}
        }
    }

    /// One look at the host, followed by the accounts; errors not seen before are
    /// logged on stderr.
    pub fn look(&mut self) -> Sample {
        let s = self.host.sample();
        self.accounts.update(&s.connections, |a| s.interface(a));
        for e in &s.errors {
            if self.logged.insert(e.clone()) {
                eprintln!("mptcp-exporter: cannot read {e}");
            }
        }
        if s.subflows_visible == Some(false) && self.logged.insert("subflows".into()) {
            eprintln!(
                "mptcp-exporter: subflows are hidden from this process (before Linux 6.15 \
                 they need CAP_NET_ADMIN): the per-path metrics stay empty"
            );
        }
        s
    }

    /// A scrape: a fresh look, then the metrics in the OpenMetrics text format.
    pub fn scrape(&mut self) -> Result<String, std::fmt::Error> {
        let start = Instant::now();
        let s = self.look();
        let events = lock(&self.events).clone();
        let options = metrics::Options {
            top_connections: self.top_connections,
            sample_seconds: start.elapsed().as_secs_f64(),
            closes: self.closes,
        };
        metrics::report(&s, &self.accounts, &events, &options).encode()
    }
}
