//! Path policies: which subflows of a connection carry data, decided from what is known
//! of its paths. This module only decides (no descriptor, no system call):
//! [`decide`] turns a connection's subflows and usable local addresses into
//! [`Action`]s, and [`LossDetector`] finds subflows whose path fails silently from
//! their `tcp_info`. `mptcp-pmd` carries the actions out for every connection of a
//! host; [`Steer`] (feature `pm`) does it for one connection a program owns.
//!
//! How each policy maps onto the kernel:
//! * every action is a userspace path-manager command (`SUBFLOW_CREATE`,
//!   `SUBFLOW_DESTROY`, `SET_FLAGS` with a token, which sends MP_PRIO): the network
//!   namespace must use the userspace path manager (`net.mptcp.pm_type = 1`, Linux 5.19+)
//!   and the caller needs CAP_NET_ADMIN. The kernel has no per-socket option that marks a
//!   subflow backup or closes one, so a program cannot steer its own connection with the
//!   in-kernel path manager;
//! * a *backup* subflow gets new data only when no other subflow can send: that is how
//!   `handover` keeps its stand-by paths idle and `backup` its named interfaces;
//! * *closing* a subflow makes the kernel send the data that was in flight on it again
//!   on the others at once (it re-queues everything not yet acknowledged at the
//!   connection level); leaving a dead subflow open leaves that data to its
//!   retransmission timer, which backs off to seconds. So a lost path's subflow is
//!   closed, and a fresh one is opened when the path is usable again, instead of
//!   waiting for the old one's timer.

#[cfg(feature = "pm")]
mod steer;
#[cfg(feature = "pm")]
pub use steer::Steer;

use crate::TcpInfo;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// What a connection's paths are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[non_exhaustive]
pub enum PathPolicy {
    /// Every usable path carries data (the kernel's own behaviour); paths marked
    /// [`standby`](LocalPath::standby) are backups.
    #[default]
    Aggregate,
    /// One path carries data: the first usable one in the order of preference. The
    /// others keep a subflow open as a backup, ready to take over at once; when a more
    /// preferred path returns, a subflow is opened on it and traffic moves back.
    Handover,
    /// Paths marked [`standby`](LocalPath::standby) carry data only while no other path
    /// works; the others aggregate.
    Backup,
}

impl std::fmt::Display for PathPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PathPolicy::Aggregate => "aggregate",
            PathPolicy::Handover => "handover",
            PathPolicy::Backup => "backup",
        })
    }
}

/// A string that names no [`PathPolicy`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a path policy (aggregate, handover, backup)")]
pub struct ParsePolicyError(String);

impl std::str::FromStr for PathPolicy {
    type Err = ParsePolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "aggregate" => Ok(PathPolicy::Aggregate),
            "handover" => Ok(PathPolicy::Handover),
            "backup" => Ok(PathPolicy::Backup),
            _ => Err(ParsePolicyError(s.to_string())),
        }
    }
}

/// A usable local address (one per interface and family), given in the order of
/// preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPath {
    /// The address subflows are opened from.
    pub addr: IpAddr,
    /// The interface subflows from it are bound to (without one, a subflow leaves
    /// wherever the routing table sends its destination, which may be another path).
    pub ifindex: Option<u32>,
    /// Used only when no other path works (`backup`), or as a backup under `aggregate`.
    pub standby: bool,
}

impl LocalPath {
    /// A path that is not a stand-by one.
    pub fn new(addr: IpAddr) -> LocalPath {
        LocalPath {
            addr,
            ifindex: None,
            standby: false,
        }
    }

    /// A path whose subflows are bound to the interface with this index.
    pub fn on_device(addr: IpAddr, ifindex: u32) -> LocalPath {
        LocalPath {
            ifindex: Some(ifindex),
            ..LocalPath::new(addr)
        }
    }
}

/// A subflow of the connection, as the caller knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubflowState {
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
    /// Marked backup now.
    pub backup: bool,
    /// Asked for and not established yet (its port is not known: it cannot be closed).
    pub pending: bool,
    /// Its path fails silently ([`LossDetector`]).
    pub lost: bool,
}

/// What to do to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum Action {
    /// Open a subflow from `local` (the kernel picks the port) to `remote`.
    Open {
        /// Local address.
        local: IpAddr,
        /// Remote address and port.
        remote: SocketAddr,
        /// Mark it backup once it is established.
        backup: bool,
    },
    /// Close the subflow (its unacknowledged data is sent again on the others).
    Close {
        /// Local address and port.
        local: SocketAddr,
        /// Remote address and port.
        remote: SocketAddr,
    },
    /// Set or clear the subflow's backup flag (MP_PRIO).
    SetBackup {
        /// Local address and port.
        local: SocketAddr,
        /// Remote address and port.
        remote: SocketAddr,
        /// The new flag.
        backup: bool,
    },
}

/// The actions that bring a connection to what `policy` wants, for a connection that
/// opens its own subflows to `remote` (the peer's address its subflows go to) from the
/// usable local addresses `paths` (in the order of preference). Stateless: call it again
/// after every change (a path gone or back, a subflow established or closed, a loss
/// found) with what is known then.
///
/// * A subflow whose local address is not usable, or that is [`lost`](SubflowState::lost),
///   is closed, unless no other subflow could carry the data.
/// * A usable path with no subflow gets one.
/// * Established subflows get the backup flag their path's role asks for.
///
/// ```
/// use mptcp::policy::{decide, Action, LocalPath, PathPolicy, SubflowState};
/// let (wifi, lte) = ("192.0.2.1".parse()?, "198.51.100.1".parse()?);
/// let remote = "203.0.113.9:443".parse()?;
/// let sf = |local: &str, backup| SubflowState {
///     local: local.parse().expect("address"), remote, backup, pending: false, lost: false,
/// };
/// // Handover, Wi-Fi preferred: LTE stands by as a backup subflow.
/// let paths = [LocalPath::new(wifi), LocalPath::new(lte)];
/// let now = [sf("192.0.2.1:40000", false), sf("198.51.100.1:40001", false)];
/// assert_eq!(
///     decide(PathPolicy::Handover, &paths, remote, &now),
///     [Action::SetBackup { local: now[1].local, remote, backup: true }]
/// );
/// // Wi-Fi's link goes down: LTE carries the data, Wi-Fi's subflow is closed.
/// let now = [sf("192.0.2.1:40000", false), sf("198.51.100.1:40001", true)];
/// assert_eq!(
///     decide(PathPolicy::Handover, &paths[1..], remote, &now),
///     [
///         Action::SetBackup { local: now[1].local, remote, backup: false },
///         Action::Close { local: now[0].local, remote },
///     ]
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decide(
    policy: PathPolicy,
    paths: &[LocalPath],
    remote: SocketAddr,
    subflows: &[SubflowState],
) -> Vec<Action> {
    let usable = |ip: IpAddr| paths.iter().any(|p| p.addr == ip);
    let healthy = |s: &SubflowState| !s.lost && usable(s.local.ip());
    // Subflows to close: over an unusable address or lost, when another can carry on.
    let carriers = subflows.iter().filter(|s| healthy(s) && !s.pending).count();
    let mut out = Vec::new();
    let mut closed = Vec::new();
    if carriers > 0 {
        for s in subflows.iter().filter(|s| !s.pending && !healthy(s)) {
            out.push(Action::Close {
                local: s.local,
                remote: s.remote,
            });
            closed.push(s.local);
        }
    }
    let live: Vec<&SubflowState> = subflows
        .iter()
        .filter(|s| !closed.contains(&s.local) && (healthy(s) || s.pending))
        .collect();
    let established = |p: &LocalPath| {
        live.iter()
            .any(|s| !s.pending && !s.lost && s.local.ip() == p.addr)
    };
    // The paths that should carry data.
    let family = |p: &&LocalPath| p.addr.is_ipv4() == remote.is_ipv4();
    let active = |p: &LocalPath| -> bool {
        match policy {
            PathPolicy::Aggregate => !p.standby,
            PathPolicy::Handover => {
                // The most preferred path with an established subflow; a more
                // preferred one that is being opened is active too (it takes over as
                // soon as it is established).
                let first = paths.iter().filter(family).position(established);
                let me = paths.iter().filter(family).position(|q| q == p);
                match (me, first) {
                    (Some(m), Some(f)) => m <= f,
                    (Some(m), None) => m == 0,
                    _ => false,
                }
            }
            PathPolicy::Backup => {
                let others = paths
                    .iter()
                    .filter(family)
                    .any(|q| !q.standby && established(q));
                !p.standby || !others
            }
        }
    };
    for p in paths.iter().filter(family) {
        if !live.iter().any(|s| s.local.ip() == p.addr) {
            out.push(Action::Open {
                local: p.addr,
                remote,
                backup: !active(p),
            });
        }
    }
    for s in live.iter().filter(|s| !s.pending) {
        let Some(p) = paths.iter().find(|p| p.addr == s.local.ip()) else {
            continue;
        };
        let backup = !active(p);
        if backup != s.backup {
            out.push(Action::SetBackup {
                local: s.local,
                remote: s.remote,
                backup,
            });
        }
    }
    // The order to carry them out in: the subflows that take over first (backup
    // cleared), then new ones, then the closes (the data they had is sent again on
    // subflows already allowed to carry it), the new backups last.
    out.sort_by_key(|a| match a {
        Action::SetBackup { backup: false, .. } => 0,
        Action::Open { .. } => 1,
        Action::Close { .. } => 2,
        Action::SetBackup { backup: true, .. } => 3,
    });
    out
}

/// Finds subflows whose path fails silently: a subflow that has unacknowledged data and
/// has received no acknowledgement for [`after`](Self::after) (at least a few of its
/// round trips) while another subflow of the connection is not stalled. It counts as
/// lost until its acknowledged bytes grow again. Feed it each subflow's `tcp_info`
/// every few tens of milliseconds (from [`subflows`](crate::subflows) on one's own
/// socket, or `mptcp::diag` for any connection).
#[derive(Debug, Clone)]
pub struct LossDetector {
    after: Duration,
    rtts: u32,
    /// Per subflow: its acknowledged bytes when it was found lost.
    lost: HashMap<(SocketAddr, SocketAddr), u64>,
}

impl Default for LossDetector {
    fn default() -> Self {
        LossDetector::new(Duration::from_millis(100))
    }
}

/// A subflow's loss found or over ([`LossDetector::observe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LossChange {
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
    /// Lost now (`false`: it made progress again).
    pub lost: bool,
}

impl LossDetector {
    /// A detector for which a subflow is lost after `after` without an
    /// acknowledgement, or four of its smoothed round trips plus four deviations if
    /// that is longer.
    pub fn new(after: Duration) -> LossDetector {
        LossDetector {
            after,
            rtts: 4,
            lost: HashMap::new(),
        }
    }

    /// The shortest time without an acknowledgement after which a subflow is lost.
    pub fn after(&self) -> Duration {
        self.after
    }

    /// Whether this subflow counts as lost now.
    pub fn is_lost(&self, local: SocketAddr, remote: SocketAddr) -> bool {
        self.lost.contains_key(&(local, remote))
    }

    fn stalled(&self, t: &TcpInfo) -> bool {
        let rtt_us = u64::from(t.rtt()) + 4 * u64::from(t.rttvar());
        let limit = self
            .after
            .max(Duration::from_micros(rtt_us * u64::from(self.rtts)));
        t.unacked() > 0 && Duration::from_millis(u64::from(t.last_ack_recv())) >= limit
    }

    /// Looks at one connection's subflows now; returns the subflows whose verdict
    /// changed. Subflows not given are forgotten.
    pub fn observe<'a>(
        &mut self,
        subflows: impl IntoIterator<Item = (SocketAddr, SocketAddr, &'a TcpInfo)>,
    ) -> Vec<LossChange> {
        let all: Vec<_> = subflows.into_iter().collect();
        self.lost
            .retain(|k, _| all.iter().any(|(l, r, _)| (*l, *r) == *k));
        let stalled: Vec<bool> = all.iter().map(|(_, _, t)| self.stalled(t)).collect();
        let mut out = Vec::new();
        for (i, (local, remote, t)) in all.iter().enumerate() {
            let key = (*local, *remote);
            match self.lost.get(&key) {
                Some(&acked) if t.bytes_acked() > acked => {
                    self.lost.remove(&key);
                    out.push(LossChange {
                        local: *local,
                        remote: *remote,
                        lost: false,
                    });
                }
                Some(_) => {}
                None => {
                    let other_fine = stalled.iter().enumerate().any(|(j, s)| j != i && !s);
                    if stalled[i] && other_fine {
                        self.lost.insert(key, t.bytes_acked());
                        out.push(LossChange {
                            local: *local,
                            remote: *remote,
                            lost: true,
                        });
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
