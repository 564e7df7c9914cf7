//! [`Steer`]: a path policy carried out on one connection a program owns.

use super::{decide, Action, LocalPath, LossDetector, PathPolicy, SubflowState};
use crate::error::Result;
use crate::pm::PathManager;
use crate::token::Token;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// How long an opened subflow may take to appear before it is asked for again.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`PathPolicy`] for one connection of this program: each [`step`](Self::step) reads
/// the connection's subflows (one `MPTCP_FULL_INFO`), looks for silent losses, and makes
/// the path-manager requests [`decide`] asks for. Call it every few tens of
/// milliseconds, and [`set_paths`](Self::set_paths) when the usable local addresses
/// change. Needs what the userspace path manager needs: the namespace's
/// `net.mptcp.pm_type = 1` and CAP_NET_ADMIN (see [the module](super)).
///
/// ```no_run
/// use mptcp::policy::{LocalPath, PathPolicy, Steer};
/// # fn f(stream: std::net::TcpStream) -> mptcp::Result<()> {
/// let paths = vec![
///     LocalPath::new("192.0.2.1".parse().expect("address")),    // preferred
///     LocalPath::new("198.51.100.1".parse().expect("address")), // stand-by
/// ];
/// let mut steer = Steer::new(&stream, PathPolicy::Handover, paths)?;
/// loop {
///     for action in steer.step(&stream)? {
///         println!("{action:?}");
///     }
///     std::thread::sleep(std::time::Duration::from_millis(25));
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct Steer {
    pm: PathManager,
    token: Token,
    policy: PathPolicy,
    paths: Vec<LocalPath>,
    remote: SocketAddr,
    detector: LossDetector,
    /// The backup flag this driver set on each subflow.
    backup: HashMap<(SocketAddr, SocketAddr), bool>,
    /// Subflows asked for: local address -> when.
    pending: HashMap<IpAddr, Instant>,
    /// Address ids, one per local address (the initial subflow's is 0).
    ids: HashMap<IpAddr, u8>,
}

impl Steer {
    /// Steers the connection of `socket` (connected; its subflows go to the peer's
    /// address) with `policy` over `paths` (usable local addresses, preferred first).
    pub fn new(socket: impl AsFd, policy: PathPolicy, paths: Vec<LocalPath>) -> Result<Steer> {
        let token = crate::info::token(&socket)?;
        let first = crate::subflow::subflows(&socket)?;
        let remote = first
            .first()
            .map(|s| s.remote)
            .ok_or_else(|| crate::kernel::no_connection(socket.as_fd()))?;
        Ok(Steer {
            pm: PathManager::new()?,
            token,
            policy,
            paths,
            remote,
            detector: LossDetector::default(),
            backup: HashMap::new(),
            pending: HashMap::new(),
            ids: HashMap::new(),
        })
    }

    /// Replaces the usable local addresses (preferred first).
    pub fn set_paths(&mut self, paths: Vec<LocalPath>) {
        self.paths = paths;
    }

    /// The loss detector (to change its threshold, [`LossDetector::new`]).
    pub fn detector_mut(&mut self) -> &mut LossDetector {
        &mut self.detector
    }

    /// One look at the connection and the requests it calls for; returns what was done.
    #[doc(alias = "MPTCP_PM_CMD_SUBFLOW_CREATE")]
    #[doc(alias = "MPTCP_PM_CMD_SUBFLOW_DESTROY")]
    #[doc(alias = "MPTCP_PM_CMD_SET_FLAGS")]
    pub fn step(&mut self, socket: impl AsFd) -> Result<Vec<Action>> {
        let subflows = crate::subflow::subflows(&socket)?;
        self.detector
            .observe(subflows.iter().map(|s| (s.local, s.remote, &s.tcp_info)));
        let now = Instant::now();
        self.pending.retain(|ip, at| {
            now.duration_since(*at) < OPEN_TIMEOUT && !subflows.iter().any(|s| s.local.ip() == *ip)
        });
        let mut state: Vec<SubflowState> = subflows
            .iter()
            .map(|s| SubflowState {
                local: s.local,
                remote: s.remote,
                backup: self
                    .backup
                    .get(&(s.local, s.remote))
                    .copied()
                    .unwrap_or(false),
                pending: false,
                lost: self.detector.is_lost(s.local, s.remote),
            })
            .collect();
        for ip in self.pending.keys() {
            state.push(SubflowState {
                local: SocketAddr::new(*ip, 0),
                remote: self.remote,
                backup: false,
                pending: true,
                lost: false,
            });
        }
        let actions = decide(self.policy, &self.paths, self.remote, &state);
        for a in &actions {
            match *a {
                Action::Open { local, remote, .. } => {
                    let next = self.ids.values().max().map_or(1, |m| m.saturating_add(1));
                    let id = *self.ids.entry(local).or_insert(next);
                    let from = SocketAddr::new(local, 0);
                    match self
                        .paths
                        .iter()
                        .find(|p| p.addr == local)
                        .and_then(|p| p.ifindex)
                    {
                        Some(i) => self.pm.create_subflow_on(self.token, id, from, i, remote)?,
                        None => self.pm.create_subflow(self.token, id, from, remote)?,
                    }
                    self.pending.insert(local, now);
                }
                Action::Close { local, remote } => {
                    self.pm.destroy_subflow(self.token, local, remote)?;
                    self.backup.remove(&(local, remote));
                }
                Action::SetBackup {
                    local,
                    remote,
                    backup,
                } => {
                    self.pm
                        .set_subflow_backup(self.token, local, remote, backup)?;
                    self.backup.insert((local, remote), backup);
                }
            }
        }
        Ok(actions)
    }
}
