//! The configuration's policy: interface rules by name glob, default flags, limits, and
//! how userspace mode opens subflows.

use super::{LocalAddress, Policy};
use mptcp::pm::{EndpointFlags, Limits};
use mptcp::policy::PathPolicy;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};

/// How userspace mode chooses subflows for a connection this host started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubflowMode {
    /// One subflow per other usable interface, to the peer's initial address.
    PerInterface,
    /// A subflow from every usable address to every address of the peer.
    Fullmesh,
}

/// One `[[interface]]` rule: interfaces whose name matches the glob get these flags (or
/// are skipped). The first matching rule wins.
#[derive(Debug, Clone)]
pub struct InterfaceRule {
    /// The glob as written.
    pub pattern: String,
    /// The compiled glob.
    pub glob: glob::Pattern,
    /// The endpoint flags (`None`: the default flags).
    pub flags: Option<EndpointFlags>,
    /// Leave matching interfaces out.
    pub skip: bool,
}

/// What a connection is: the facts a [`PolicyRule`] matches on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionFacts {
    /// The initial subflow's local address and port.
    pub local: SocketAddr,
    /// The peer's address and port.
    pub remote: SocketAddr,
    /// The owning user (from sock_diag), when asked for.
    pub uid: Option<u32>,
    /// The owning cgroup's id (from sock_diag: the inode of its cgroup2 directory),
    /// when asked for.
    pub cgroup_id: Option<u64>,
}

/// A connection's path policy and how its paths rank.
#[derive(Debug, Clone, Default)]
pub struct PathChoice {
    /// The policy.
    pub policy: PathPolicy,
    /// Interfaces in the order of preference (globs); interfaces no glob matches come
    /// after them, the initial subflow's first.
    pub prefer: Vec<glob::Pattern>,
    /// Interfaces used only when no other path works (`backup`), or as backups.
    pub standby: Vec<glob::Pattern>,
}

/// One `[[policy]]` rule: connections that match every key given get this choice. The
/// first matching rule wins; a rule without match keys matches every connection.
#[derive(Debug, Clone, Default)]
pub struct PolicyRule {
    /// The peer's port.
    pub remote_port: Option<u16>,
    /// The local port.
    pub local_port: Option<u16>,
    /// The peer's address is in this network (address, prefix length).
    pub remote_net: Option<(IpAddr, u8)>,
    /// The owning user.
    pub uid: Option<u32>,
    /// The owning cgroup: its path under /sys/fs/cgroup (cgroup v2), looked up when a
    /// connection is matched (so that it may appear after the daemon started).
    pub cgroup: Option<String>,
    /// What matching connections get.
    pub choice: PathChoice,
}

impl PolicyRule {
    /// Whether the rule looks at the owner (then the daemon asks sock_diag for it).
    pub fn needs_owner(&self) -> bool {
        self.uid.is_some() || self.cgroup.is_some()
    }

    fn matches(&self, c: &ConnectionFacts) -> bool {
        self.remote_port.is_none_or(|p| p == c.remote.port())
            && self.local_port.is_none_or(|p| p == c.local.port())
            && self
                .remote_net
                .is_none_or(|(net, len)| in_net(c.remote.ip(), net, len))
            && self.uid.is_none_or(|u| Some(u) == c.uid)
            && self
                .cgroup
                .as_ref()
                .is_none_or(|path| c.cgroup_id.is_some() && cgroup_id(path) == c.cgroup_id)
    }
}

/// The id the kernel gives a cgroup v2 (the inode of its directory), by its path.
fn cgroup_id(path: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/sys/fs/cgroup{path}"))
        .ok()
        .map(|m| m.ino())
}

/// `ip` is in `net/len`.
fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The policy a configuration file describes.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Flags of addresses no rule names (`None`: such addresses are not used).
    pub default_flags: Option<EndpointFlags>,
    /// Rules by interface name.
    pub interfaces: Vec<InterfaceRule>,
    /// Limits to set (kernel mode).
    pub limits: Option<Limits>,
    /// Userspace mode: how to choose subflows.
    pub subflow_mode: SubflowMode,
    /// Userspace mode: at most this many extra subflows per connection.
    pub max_subflows: usize,
    /// Userspace mode: announce usable addresses on connections this host accepted.
    pub announce: bool,
    /// Userspace mode: path policies by connection (the first that matches wins;
    /// none: `aggregate`).
    pub policies: Vec<PolicyRule>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            default_flags: Some(EndpointFlags::SUBFLOW),
            interfaces: Vec::new(),
            limits: None,
            subflow_mode: SubflowMode::PerInterface,
            max_subflows: 8,
            announce: true,
            policies: Vec::new(),
        }
    }
}

impl Policy for Rules {
    fn flags(&self, addr: &LocalAddress) -> Option<EndpointFlags> {
        match self
            .interfaces
            .iter()
            .find(|r| r.glob.matches(&addr.ifname))
        {
            Some(r) if r.skip => None,
            Some(r) => r.flags.or(self.default_flags),
            None => self.default_flags,
        }
    }

    fn limits(&self) -> Option<Limits> {
        self.limits
    }

    fn choose(&self, c: &ConnectionFacts) -> PathChoice {
        self.policies
            .iter()
            .find(|r| r.matches(c))
            .map(|r| r.choice.clone())
            .unwrap_or_default()
    }

    fn needs_owner(&self) -> bool {
        self.policies.iter().any(PolicyRule::needs_owner)
    }
}
