//! Userspace mode: the daemon is the path manager. Per connection, from the kernel's
//! events: subflows from the other usable addresses when a connection this host started
//! is established, backup marks, announcements on connections it accepted; on link
//! changes, subflows over vanished addresses are closed and missing ones recreated.

use super::{Config, Error, LocalAddress, Policy, State, SubflowPlan};
use mptcp::pm::{
    AsyncPathManager, EndpointFlags, Event, EventFlags, EventItem, EventStream, PmKind,
};
use mptcp::Token;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use tracing::{debug, info, warn};

/// An item of the event stream.
pub(crate) type Item = mptcp::Result<EventItem>;

/// A connection the daemon follows.
#[derive(Debug, Clone)]
struct Conn {
    server_side: bool,
    /// The initial subflow's local address.
    initial: SocketAddr,
    /// The peer's addresses: the initial one, then the ones it announced.
    remotes: Vec<SocketAddr>,
    /// Established subflows other than the initial one: (local, remote).
    subflows: Vec<(SocketAddr, SocketAddr)>,
    /// Addresses announced on it (server side): address -> id.
    announced: BTreeMap<IpAddr, u8>,
    /// Subflows asked for and not yet reported (local address, remote) -> backup.
    pending: BTreeMap<(IpAddr, SocketAddr), bool>,
}

pub(crate) struct UserspaceMode {
    pm: AsyncPathManager,
    events: EventStream,
    previous: PmKind,
    conns: HashMap<Token, Conn>,
    /// Local address ids, stable for the daemon's life.
    ids: BTreeMap<IpAddr, u8>,
    announce: bool,
}

impl UserspaceMode {
    /// Selects the userspace path manager (remembering the one it replaces) and
    /// subscribes to the events. When an earlier instance in userspace mode did not
    /// stop cleanly (`earlier`), the userspace path manager selected now is its doing:
    /// the one to restore is the one it replaced, and its connections are followed
    /// from `mptcp::diag`. Endpoints an earlier instance in kernel mode left are
    /// removed (kept with `cleanup = false`), as its clean stop would have done.
    pub(crate) async fn start(
        config: &Config,
        earlier: Option<&State>,
    ) -> Result<UserspaceMode, Error> {
        let pm = AsyncPathManager::new().await?;
        let events = pm.events()?;
        // A burst of connections must not overflow the subscription.
        let _ = events.set_receive_buffer(4 << 20);
        let current = mptcp::pm::kind()?;
        let previous = earlier
            .and_then(|e| super::state::replaced_pm(e, current))
            .unwrap_or(current);
        // Endpoints an earlier daemon in kernel mode left: what its clean stop would
        // have done (removed them, with `cleanup`), since this mode uses none.
        if let Some(e) = earlier.filter(|e| e.mode == super::Mode::Kernel) {
            let left = super::kernel::take_over(&pm, e).await?;
            if config.cleanup {
                super::kernel::remove(&pm, left).await;
            } else if !left.is_empty() {
                info!(
                    endpoints = left.len(),
                    "the earlier instance's endpoints are kept (cleanup = false)"
                );
            }
        }
        mptcp::pm::set_kind(PmKind::Userspace)?;
        info!(?previous, "userspace path manager selected");
        let mut me = UserspaceMode {
            pm,
            events,
            previous,
            conns: HashMap::new(),
            ids: BTreeMap::new(),
            announce: config.rules.announce,
        };
        if earlier.is_some_and(|e| e.mode == super::Mode::Userspace) {
            // Its connections are followed from here on (subflows, announcements).
            me.resync().await;
        }
        Ok(me)
    }

    pub(crate) async fn next_event(&mut self) -> Option<Item> {
        self.events.next().await
    }

    fn id_for(&mut self, addr: IpAddr) -> u8 {
        let next = self.ids.values().max().map_or(1, |m| m.saturating_add(1));
        *self.ids.entry(addr).or_insert(next)
    }

    pub(crate) async fn handle(
        &mut self,
        item: Item,
        policy: &impl Policy,
        usable: &[(LocalAddress, EndpointFlags)],
    ) {
        let ev = match item {
            Ok(EventItem::Event(ev)) => ev,
            Ok(EventItem::Lost) => {
                warn!("path-manager events were lost: resynchronising");
                self.resync().await;
                self.reconcile(policy, usable).await;
                return;
            }
            Ok(_) => return,
            Err(e) => {
                warn!(error = %e, "undecodable path-manager event");
                return;
            }
        };
        match ev {
            Event::Established(c) => {
                let server_side =
                    c.server_side.unwrap_or(false) || c.flags.contains(EventFlags::SERVER_SIDE);
                debug!(token = %c.token, server_side, "connection established");
                self.conns.insert(
                    c.token,
                    Conn {
                        server_side,
                        initial: c.local,
                        remotes: vec![c.remote],
                        subflows: Vec::new(),
                        announced: BTreeMap::new(),
                        pending: BTreeMap::new(),
                    },
                );
                self.apply(c.token, policy, usable).await;
            }
            Event::Announced { token, addr, .. } => {
                if let Some(c) = self.conns.get_mut(&token) {
                    if !c.remotes.contains(&addr) {
                        c.remotes.push(addr);
                    }
                    self.apply(token, policy, usable).await;
                }
            }
            Event::SubEstablished(sf) => {
                let Some(c) = self.conns.get_mut(&sf.token) else {
                    return;
                };
                if (sf.local, sf.remote) == (c.initial, c.remotes[0]) {
                    return;
                }
                c.subflows.push((sf.local, sf.remote));
                let backup = c
                    .pending
                    .remove(&(sf.local.ip(), sf.remote))
                    .unwrap_or(false);
                info!(token = %sf.token, local = %sf.local, remote = %sf.remote, backup, "subflow established");
                if backup && !sf.backup {
                    if let Err(e) = self
                        .pm
                        .set_subflow_backup(sf.token, sf.local, sf.remote, true)
                        .await
                    {
                        warn!(error = %e, "cannot mark the subflow backup");
                    }
                }
            }
            Event::SubClosed(sf) => {
                if let Some(c) = self.conns.get_mut(&sf.token) {
                    c.subflows.retain(|s| *s != (sf.local, sf.remote));
                    c.pending.remove(&(sf.local.ip(), sf.remote));
                    debug!(token = %sf.token, local = %sf.local, "subflow closed");
                }
            }
            Event::Closed { token } => {
                self.conns.remove(&token);
            }
            _ => {}
        }
    }

    /// Brings one connection to what the policy wants: subflows (client side) or
    /// announcements (server side).
    async fn apply(
        &mut self,
        token: Token,
        policy: &impl Policy,
        usable: &[(LocalAddress, EndpointFlags)],
    ) {
        let Some(c) = self.conns.get(&token).cloned() else {
            return;
        };
        let usable_ips: Vec<IpAddr> = usable.iter().map(|(l, _)| l.addr).collect();
        if c.server_side {
            if !self.announce {
                return;
            }
            for (l, _) in usable {
                if l.addr == c.initial.ip()
                    || c.announced.contains_key(&l.addr)
                    || l.addr.is_ipv4() != c.initial.is_ipv4()
                {
                    continue;
                }
                let id = self.id_for(l.addr);
                match self
                    .pm
                    .announce_address(token, id, SocketAddr::new(l.addr, 0))
                    .await
                {
                    Ok(()) => {
                        info!(%token, addr = %l.addr, id, "address announced");
                        if let Some(c) = self.conns.get_mut(&token) {
                            c.announced.insert(l.addr, id);
                        }
                    }
                    Err(e) => warn!(%token, addr = %l.addr, error = %e, "cannot announce"),
                }
            }
            for (addr, id) in c.announced.iter().filter(|(a, _)| !usable_ips.contains(a)) {
                match self.pm.remove_address(token, *id).await {
                    Ok(()) => info!(%token, %addr, "announcement withdrawn"),
                    Err(e) => warn!(%token, %addr, error = %e, "cannot withdraw"),
                }
                if let Some(c) = self.conns.get_mut(&token) {
                    c.announced.remove(addr);
                }
            }
            return;
        }
        // Subflows over addresses that are no longer usable: closed.
        for (local, remote) in c
            .subflows
            .iter()
            .filter(|(l, _)| !usable_ips.contains(&l.ip()))
        {
            match self.pm.destroy_subflow(token, *local, *remote).await {
                Ok(()) => info!(%token, %local, %remote, "subflow closed (address gone)"),
                Err(e) => debug!(%token, %local, error = %e, "cannot close subflow"),
            }
            if let Some(c) = self.conns.get_mut(&token) {
                c.subflows.retain(|s| s != &(*local, *remote));
            }
        }
        // Planned subflows that are missing: opened.
        let plan: Vec<SubflowPlan> = policy.plan(c.initial, &c.remotes, usable);
        for p in plan {
            let have = c
                .subflows
                .iter()
                .any(|(l, r)| l.ip() == p.local.addr && *r == p.remote)
                || c.pending.contains_key(&(p.local.addr, p.remote));
            if have {
                continue;
            }
            let id = self.id_for(p.local.addr);
            let local = SocketAddr::new(p.local.addr, 0);
            match self.pm.create_subflow(token, id, local, p.remote).await {
                Ok(()) => {
                    debug!(%token, local = %p.local.addr, remote = %p.remote, "subflow requested");
                    if let Some(c) = self.conns.get_mut(&token) {
                        c.pending.insert((p.local.addr, p.remote), p.backup);
                    }
                }
                Err(e) => {
                    warn!(%token, local = %p.local.addr, remote = %p.remote, error = %e, "cannot open subflow")
                }
            }
        }
    }

    /// After a change of interfaces: every connection again.
    pub(crate) async fn reconcile(
        &mut self,
        policy: &impl Policy,
        usable: &[(LocalAddress, EndpointFlags)],
    ) {
        // Requests the kernel never answered (the address went away) are dropped.
        for c in self.conns.values_mut() {
            c.pending.clear();
        }
        let tokens: Vec<Token> = self.conns.keys().copied().collect();
        for t in tokens {
            self.apply(t, policy, usable).await;
        }
    }

    /// After lost events: the connections and their subflows as the kernel lists them
    /// now (a connection is this host's when its local port is not a listener's).
    async fn resync(&mut self) {
        let conns = match mptcp::diag::connections() {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "cannot list connections to resynchronise");
                return;
            }
        };
        let listening: Vec<u16> = conns
            .iter()
            .filter(|c| c.state == mptcp::diag::SocketState::Listen)
            .map(|c| c.local.port())
            .collect();
        let mut fresh = HashMap::new();
        for d in conns
            .iter()
            .filter(|c| c.state == mptcp::diag::SocketState::Established)
        {
            let Some(token) = d.token else { continue };
            let old = self.conns.remove(&token);
            let subflows = d
                .subflows
                .iter()
                .filter(|s| (s.local, s.remote) != (d.local, d.remote))
                .map(|s| (s.local, s.remote))
                .collect();
            fresh.insert(
                token,
                Conn {
                    server_side: old
                        .as_ref()
                        .map_or(listening.contains(&d.local.port()), |o| o.server_side),
                    initial: d.local,
                    remotes: old.as_ref().map_or(vec![d.remote], |o| o.remotes.clone()),
                    subflows,
                    announced: old.map(|o| o.announced).unwrap_or_default(),
                    pending: BTreeMap::new(),
                },
            );
        }
        self.conns = fresh;
    }

    /// Restores the path manager that was selected before.
    pub(crate) async fn stop(&mut self) {
        match mptcp::pm::set_kind(self.previous) {
            Ok(()) => info!(previous = ?self.previous, "path manager restored"),
            Err(e) => warn!(error = %e, "cannot restore the path manager"),
        }
    }

    pub(crate) fn state(&self, config: &Config, usable: &[(LocalAddress, EndpointFlags)]) -> State {
        State {
            mode: config.mode,
            pid: std::process::id(),
            netns: super::state::netns(),
            usable: usable.iter().map(|(l, _)| l.clone()).collect(),
            endpoints: Vec::new(),
            previous_path_manager: Some(super::state::pm_name(self.previous)),
            connections: self
                .conns
                .iter()
                .map(|(t, c)| super::state::ConnectionState {
                    token: t.to_string(),
                    server_side: c.server_side,
                    subflows: c.subflows.clone(),
                })
                .collect(),
        }
    }
}
