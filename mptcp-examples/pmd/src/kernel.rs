//! Kernel mode: the in-kernel path manager's endpoints follow the usable addresses.

use super::{Config, Error, LocalAddress, Policy, State};
use mptcp::pm::{AsyncPathManager, Endpoint, EndpointFlags, PmKind};
use std::collections::BTreeMap;
use std::net::IpAddr;
use tracing::{info, warn};

/// An endpoint this daemon added: its id, flags and interface.
#[derive(Debug, Clone)]
pub(crate) struct Managed {
    id: u8,
    flags: EndpointFlags,
    ifindex: u32,
}

pub(crate) struct KernelMode {
    pm: AsyncPathManager,
    managed: BTreeMap<IpAddr, Managed>,
}

impl KernelMode {
    /// Opens the path manager and sets the policy's limits. What an earlier instance
    /// that did not stop cleanly left (`earlier`) is taken over: the path manager it
    /// replaced in userspace mode is restored, and its endpoints that are still there
    /// as it made them (same id, address, flags and interface) become this one's, to
    /// keep or remove like its own.
    pub(crate) async fn start(
        policy: &impl Policy,
        earlier: Option<&State>,
    ) -> Result<KernelMode, Error> {
        let pm = AsyncPathManager::new().await?;
        if let Some(e) = earlier {
            restore_earlier_pm(e);
        }
        match policy.limits() {
            Some(l) => {
                pm.set_limits(l).await?;
                info!(?l, "limits set");
            }
            // Writing the limits back unchanged fails at once, naming CAP_NET_ADMIN,
            // when the daemon could not change anything.
            None => pm.set_limits(pm.limits().await?).await?,
        }
        let managed = match earlier {
            Some(e) => take_over(&pm, e).await?,
            None => BTreeMap::new(),
        };
        Ok(KernelMode { pm, managed })
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
        if cleanup {
            remove(&self.pm, std::mem::take(&mut self.managed)).await;
        }
    }

    pub(crate) fn state(&self, config: &Config, usable: &[(LocalAddress, EndpointFlags)]) -> State {
        State {
            mode: config.mode,
            pid: std::process::id(),
            netns: super::state::netns(),
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
            previous_path_manager: None,
        }
    }
}

/// An earlier instance in userspace mode that did not stop cleanly left the userspace
/// path manager selected: the one it replaced is selected again.
fn restore_earlier_pm(earlier: &State) {
    let Some(prev) = mptcp::pm::kind()
        .ok()
        .and_then(|current| super::state::replaced_pm(earlier, current))
        .filter(|p| *p != PmKind::Userspace)
    else {
        return;
    };
    match mptcp::pm::set_kind(prev) {
        Ok(()) => {
            info!(pid = earlier.pid, previous = ?prev, "path manager the earlier instance replaced restored")
        }
        Err(e) => {
            warn!(error = %e, "cannot restore the path manager the earlier instance replaced")
        }
    }
}

/// The endpoints an earlier daemon that did not stop cleanly added (from its state
/// file) and that are still as it made them: same id, address, flags and interface.
/// (The kernel cannot tell one of them from an endpoint someone re-created identically
/// after the crash: that one is taken over too.)
pub(crate) async fn take_over(
    pm: &AsyncPathManager,
    earlier: &State,
) -> Result<BTreeMap<IpAddr, Managed>, Error> {
    let mut managed = BTreeMap::new();
    if earlier.endpoints.is_empty() {
        return Ok(managed);
    }
    for ep in pm.endpoints().await? {
        let same = |l: &&super::state::EndpointState| {
            l.id == ep.id
                && l.addr == ep.addr
                && l.flags == ep.flags.bits()
                && i64::from(l.ifindex) == i64::from(ep.ifindex.unwrap_or(0))
        };
        let Some(left) = earlier.endpoints.iter().find(same) else {
            continue;
        };
        info!(addr = %left.addr, id = left.id, pid = earlier.pid, "endpoint taken over from the earlier instance");
        managed.insert(
            left.addr,
            Managed {
                id: left.id,
                flags: ep.flags,
                ifindex: left.ifindex,
            },
        );
    }
    Ok(managed)
}

/// Deletes endpoints this daemon manages.
pub(crate) async fn remove(pm: &AsyncPathManager, managed: BTreeMap<IpAddr, Managed>) {
    for (addr, m) in managed {
        match pm.delete_endpoint(m.id).await {
            Ok(()) => info!(%addr, id = m.id, "endpoint removed"),
            Err(e) => warn!(%addr, id = m.id, error = %e, "cannot remove endpoint"),
        }
    }
}
