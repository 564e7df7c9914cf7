//! The configuration's policy: interface rules by name glob, default flags, limits, and
//! how userspace mode opens subflows.

use super::{LocalAddress, Policy};
use mptcp::pm::{EndpointFlags, Limits};
use serde::Deserialize;
use std::net::SocketAddr;

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

/// A subflow to open: from a local address to a remote one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubflowPlan {
    /// The local address (and its interface).
    pub local: LocalAddress,
    /// The remote address and port.
    pub remote: SocketAddr,
    /// Mark it backup once established.
    pub backup: bool,
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

    fn plan(
        &self,
        initial: SocketAddr,
        remotes: &[SocketAddr],
        usable: &[(LocalAddress, EndpointFlags)],
    ) -> Vec<SubflowPlan> {
        match self.subflow_mode {
            SubflowMode::PerInterface => per_interface(initial, remotes, usable, self.max_subflows),
            SubflowMode::Fullmesh => {
                let mut out = Vec::new();
                for (l, f) in usable {
                    for r in remotes {
                        if l.addr == initial.ip() && Some(r) == remotes.first() {
                            continue;
                        }
                        if l.addr.is_ipv4() != r.is_ipv4() {
                            continue;
                        }
                        out.push(SubflowPlan {
                            local: l.clone(),
                            remote: *r,
                            backup: f.contains(EndpointFlags::BACKUP),
                        });
                    }
                }
                out.truncate(self.max_subflows);
                out
            }
        }
    }
}

/// One subflow per usable interface other than the initial subflow's, to the peer's
/// initial address, of the same family.
pub(crate) fn per_interface(
    initial: SocketAddr,
    remotes: &[SocketAddr],
    usable: &[(LocalAddress, EndpointFlags)],
    max: usize,
) -> Vec<SubflowPlan> {
    let Some(remote) = remotes.first() else {
        return Vec::new();
    };
    let initial_if = usable
        .iter()
        .find(|(l, _)| l.addr == initial.ip())
        .map(|(l, _)| l.ifindex);
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for (l, f) in usable {
        if l.addr == initial.ip()
            || Some(l.ifindex) == initial_if
            || seen.contains(&l.ifindex)
            || l.addr.is_ipv4() != remote.is_ipv4()
        {
            continue;
        }
        seen.push(l.ifindex);
        out.push(SubflowPlan {
            local: l.clone(),
            remote: *remote,
            backup: f.contains(EndpointFlags::BACKUP),
        });
    }
    out.truncate(max);
    out
}
