//! Kernel mode: the in-kernel path manager's endpoints follow the usable addresses.

use super::{Config, Error, LocalAddress, Policy, State};
use mptcp::pm::{AsyncPathManager, Endpoint, EndpointFlags};
use std::collections::BTreeMap;
use std::net::IpAddr;
use tracing::{info, warn};

/// An endpoint this daemon added: its id, flags and interface.
#[derive(Debug, Clone)]
struct Managed {
    id: u8,
    flags: EndpointFlags,
    ifindex: u32,
}

pub(crate) struct KernelMode {
    pm: AsyncPathManager,
    managed: BTreeMap<IpAddr, Managed>,
}

impl KernelMode {
    /// Opens the path manager and sets the policy's limits.
    pub(crate) async fn start(policy: &impl Policy) -> Result<KernelMode, Error> {
        let pm = AsyncPathManager::new().await?;
        match policy.limits() {
            Some(l) => {
                pm.set_limits(l).await?;
                info!(?l, "limits set");
            }
            // Writing the limits back unchanged fails at once, naming CAP_NET_ADMIN,
            // when the daemon could not change anything.
            None => pm.set_limits(pm.limits().await?).await?,
        }
        Ok(KernelMode {
            pm,
            managed: BTreeMap::new(),
        })
    }

    /// Makes the kernel's endpoints match the usable addresses: removes the ones it
    /// added whose address went away (or whose flags changed), adds one for each new
    /// usable address that has none. Endpoints it did not add are left alone, even for
    /// usable addresses.
    pub(crate) async fn reconcile(&mut self, usable: &[(LocalAddress, EndpointFlags)]) {
        let existing = match self.pm.endpoints().await {
            Ok(e) => e,
            Err(e) => {
                warn!(error = %e, "cannot list endpoints");
                return;
            }
        };
        // Ours that someone else deleted are ours no more.
        self.managed
            .retain(|addr, m| existing.iter().any(|e| e.id == m.id && e.addr == *addr));
        let wanted: BTreeMap<IpAddr, (&LocalAddress, EndpointFlags)> =
            usable.iter().map(|(l, f)| (l.addr, (l, *f))).collect();
        let stale: Vec<(IpAddr, u8)> = self
            .managed
            .iter()
            .filter(|(addr, m)| match wanted.get(addr) {
                Some((l, f)) => *f != m.flags || l.ifindex != m.ifindex,
                None => true,
            })
            .map(|(a, m)| (*a, m.id))
            .collect();
        for (addr, id) in stale {
            match self.pm.delete_endpoint(id).await {
                Ok(()) => info!(%addr, id, "endpoint removed"),
                Err(e) => warn!(%addr, id, error = %e, "cannot remove endpoint"),
            }
            self.managed.remove(&addr);
        }
        for (addr, (l, flags)) in wanted {
            if self.managed.contains_key(&addr) || existing.iter().any(|e| e.addr == addr) {
                continue;
            }
            let ep = Endpoint::new(addr, flags).with_ifindex(l.ifindex as i32);
            match self.pm.add_endpoint(&ep).await {
                Ok(id) => {
                    info!(%addr, id, dev = %l.ifname, ?flags, "endpoint added");
                    self.managed.insert(
                        addr,
                        Managed {
                            id,
                            flags,
                            ifindex: l.ifindex,
                        },
                    );
                }
                Err(e) => warn!(%addr, dev = %l.ifname, error = %e, "cannot add endpoint"),
            }
        }
    }

    /// Removes the endpoints it added (when `cleanup`).
    pub(crate) async fn stop(&mut self, cleanup: bool) {
        if !cleanup {
            return;
        }
        for (addr, m) in std::mem::take(&mut self.managed) {
            match self.pm.delete_endpoint(m.id).await {
                Ok(()) => info!(%addr, id = m.id, "endpoint removed"),
                Err(e) => warn!(%addr, id = m.id, error = %e, "cannot remove endpoint"),
            }
        }
    }

    pub(crate) fn state(&self, config: &Config, usable: &[(LocalAddress, EndpointFlags)]) -> State {
        State {
            mode: config.mode,
            pid: std::process::id(),
            usable: usable.iter().map(|(l, _)| l.clone()).collect(),
            endpoints: self
                .managed
                .iter()
                .map(|(addr, m)| super::state::EndpointState {
                    id: m.id,
                    addr: *addr,
                    flags: m.flags.bits(),
                    ifindex: m.ifindex,
                })
                .collect(),
            connections: Vec::new(),
        }
    }
}
