//! Byte counters per path (interface and local address) that keep counting after
//! subflows close: each subflow's own TCP counters are followed from one look to the
//! next, and what a subflow had counted when it was last seen is kept once it is gone.
//!
//! When the kernel frees a subflow it broadcasts its last counters (sock_diag's destroy
//! groups): [`Accounts::closed`] then counts what it carried to its
//! end. Without that broadcast, what it carried after the last look is not counted (the
//! sampler's interval bounds the window). A subflow that opens and closes between two
//! looks is not counted at all (the broadcast does not say which TCP sockets were
//! subflows: only those a look saw are known).

use mptcp::diag::DiagConnection;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};

/// The most paths (label pairs) followed; later ones are counted under `other`.
pub const MAX_PATHS: usize = 256;

/// A path's labels: the interface of the local address and the address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Path {
    /// The interface name, `unknown` when no interface has the address (any more).
    pub interface: String,
    /// The local address, or `other` past [`MAX_PATHS`].
    pub address: String,
}

/// A subflow's or a path's byte counters (`tcp_info`: `tcpi_bytes_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bytes {
    /// Sent, retransmissions included (`tcpi_bytes_sent`, Linux 4.19+).
    pub sent: u64,
    /// Acknowledged by the peer (`tcpi_bytes_acked`).
    pub acked: u64,
    /// Retransmitted (`tcpi_bytes_retrans`, Linux 4.19+).
    pub retransmitted: u64,
    /// Received (`tcpi_bytes_received`).
    pub received: u64,
}

impl Bytes {
    /// A subflow's counters from its `tcp_info`.
    pub fn of(t: &mptcp::TcpInfo) -> Bytes {
        Bytes {
            sent: t.bytes_sent(),
            acked: t.bytes_acked(),
            retransmitted: t.bytes_retrans(),
            received: t.bytes_received(),
        }
    }

    fn add(&mut self, o: &Bytes) {
        // Counters from the kernel: saturate rather than overflow.
        self.sent = self.sent.saturating_add(o.sent);
        self.acked = self.acked.saturating_add(o.acked);
        self.retransmitted = self.retransmitted.saturating_add(o.retransmitted);
        self.received = self.received.saturating_add(o.received);
    }

    /// Whether every counter is at least `o`'s (the same subflow, later).
    fn covers(&self, o: &Bytes) -> bool {
        self.sent >= o.sent
            && self.acked >= o.acked
            && self.retransmitted >= o.retransmitted
            && self.received >= o.received
    }
}

/// A path's totals, and how many of its subflows are open now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathTotals {
    /// Bytes of the open subflows plus those of the closed ones.
    pub bytes: Bytes,
    /// Subflows open at the last look.
    pub open: u64,
}

/// A subflow, by its two addresses (unique among the namespace's open TCP sockets).
type SubflowKey = (SocketAddr, SocketAddr);

#[derive(Debug)]
struct Live {
    path: Path,
    last: Bytes,
    seen: u64,
}

/// The per-path accounts.
#[derive(Debug, Default)]
pub struct Accounts {
    live: HashMap<SubflowKey, Live>,
    closed: BTreeMap<Path, Bytes>,
    paths: BTreeSet<Path>,
    round: u64,
}

impl Accounts {
    /// Follows the subflows of one look at the host; `interface` names the interface of
    /// a local address.
    pub fn update(&mut self, conns: &[DiagConnection], interface: impl Fn(IpAddr) -> String) {
        self.round += 1;
        let round = self.round;
        for c in conns {
            for sf in &c.subflows {
                let Some(t) = &sf.tcp_info else { continue };
                let now = Bytes::of(t);
                let key = (sf.local, sf.remote);
                match self.live.get_mut(&key) {
                    Some(l) if now.covers(&l.last) => {
                        l.last = now;
                        l.seen = round;
                    }
                    Some(l) => {
                        // Counters went back: a new subflow with the same addresses.
                        self.closed.entry(l.path.clone()).or_default().add(&l.last);
                        l.last = now;
                        l.seen = round;
                    }
                    None => {
                        let addr = sf.local.ip().to_canonical();
                        let path = self.path(interface(addr), addr);
                        self.live.insert(
                            key,
                            Live {
                                path,
                                last: now,
                                seen: round,
                            },
                        );
                    }
                }
            }
        }
        let closed = &mut self.closed;
        self.live.retain(|_, l| {
            if l.seen == round {
                return true;
            }
            closed.entry(l.path.clone()).or_default().add(&l.last);
            false
        });
    }

    /// The labels of a new subflow's path, within [`MAX_PATHS`].
    fn path(&mut self, interface: String, addr: IpAddr) -> Path {
        let p = Path {
            interface,
            address: addr.to_string(),
        };
        if self.paths.contains(&p) {
            return p;
        }
        if self.paths.len() < MAX_PATHS {
            self.paths.insert(p.clone());
            return p;
        }
        Path {
            interface: "other".into(),
            address: "other".into(),
        }
    }

    /// Every path seen so far with its totals (open subflows and closed ones).
    pub fn totals(&self) -> BTreeMap<Path, PathTotals> {
        let mut out: BTreeMap<Path, PathTotals> = BTreeMap::new();
        for (p, b) in &self.closed {
            out.entry(p.clone()).or_default().bytes.add(b);
        }
        for l in self.live.values() {
            let t = out.entry(l.path.clone()).or_default();
            t.bytes.add(&l.last);
            t.open += 1;
        }
        out
    }

    /// The path an open subflow is counted under.
    pub fn path_of(&self, local: SocketAddr, remote: SocketAddr) -> Option<&Path> {
        self.live.get(&(local, remote)).map(|l| &l.path)
    }

    /// A TCP socket the kernel destroyed, with its last counters: if it is a subflow a
    /// look saw, its path keeps what it carried to the end. Returns whether it was one.
    pub fn closed(&mut self, local: SocketAddr, remote: SocketAddr, last: Option<Bytes>) -> bool {
        let Some(l) = self.live.remove(&(local, remote)) else {
            return false;
        };
        let bytes = match last {
            Some(b) if b.covers(&l.last) => b,
            _ => l.last,
        };
        self.closed.entry(l.path).or_default().add(&bytes);
        true
    }
}
