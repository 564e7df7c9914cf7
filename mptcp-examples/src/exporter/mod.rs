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
        };
        metrics::report(&s, &self.accounts, &events, &options).encode()
    }
}
