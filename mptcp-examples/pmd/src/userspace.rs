//! Userspace mode: the daemon is the path manager. Per connection, from the kernel's
//! events: each connection this host started gets a path policy ([`Policy::choose`]),
//! and `mptcp::policy::decide` says which subflows to open, close and mark backup
//! whenever something changes: an event, a link or address change, a silent loss found
//! from the subflows' `tcp_info`. Connections it accepted get announcements.

use super::{Config, ConnectionFacts, Error, LocalAddress, PathChoice, Policy, State, SubflowMode};
use futures_util::FutureExt;
use mptcp::diag::{AsyncDiag, DiagConnection, Filter, SocketState, SubflowFlags};
use mptcp::pm::{
    AsyncPathManager, EndpointFlags, Event, EventFlags, EventItem, EventStream, PmKind,
};
use mptcp::policy::{decide, Action, LocalPath, LossDetector, SubflowState};
use mptcp::Token;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// An item of the event stream.
pub(crate) type Item = mptcp::Result<EventItem>;

/// A subflow asked for and not established is asked for again after this long.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// The same path is not asked for again on a connection sooner than this (a peer that
/// refuses joins must not make the daemon loop), unless the local addresses changed.
const RETRY: Duration = Duration::from_secs(1);

/// An established subflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sub {
    local: SocketAddr,
    remote: SocketAddr,
    backup: bool,
}

/// A connection the daemon follows.
#[derive(Debug, Clone)]
struct Conn {
    server_side: bool,
    choice: PathChoice,
    /// The initial subflow's local address.
    initial: SocketAddr,
    /// The peer's addresses: the initial one, then the ones it announced.
    remotes: Vec<SocketAddr>,
    /// Its established subflows, the initial one included while it is open.
    subflows: Vec<Sub>,
    /// Addresses announced on it (server side): address -> id.
    announced: BTreeMap<IpAddr, u8>,
    /// Subflows asked for and not yet established: (local address, remote) -> when.
    pending: BTreeMap<(IpAddr, SocketAddr), Instant>,
    /// The last time each (local address, remote) was asked for.
    tried: BTreeMap<(IpAddr, SocketAddr), Instant>,
    detector: LossDetector,
}

impl Conn {
    fn new(
        server_side: bool,
        choice: PathChoice,
        local: SocketAddr,
        remote: SocketAddr,
        after: Duration,
    ) -> Conn {
        Conn {
            server_side,
            choice,
            initial: local,
            remotes: vec![remote],
            subflows: vec![Sub {
                local,
                remote,
                backup: false,
            }],
            announced: BTreeMap::new(),
            pending: BTreeMap::new(),
            tried: BTreeMap::new(),
            detector: LossDetector::new(after),
        }
    }
}

pub(crate) struct UserspaceMode {
    pm: AsyncPathManager,
    events: EventStream,
    diag: Option<AsyncDiag>,
    previous: PmKind,
    conns: HashMap<Token, Conn>,
    /// Local address ids, stable for the daemon's life.
    ids: BTreeMap<IpAddr, u8>,
    announce: bool,
    subflow_mode: SubflowMode,
    max_subflows: usize,
    loss_after: Duration,
    /// The usable addresses of the last reconcile (a change clears the retry delays).
    last_usable: BTreeSet<IpAddr>,
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
        policy: &impl Policy,
        earlier: Option<&State>,
    ) -> Result<UserspaceMode, Error> {
        let pm = AsyncPathManager::new().await?;
        let events = pm.events()?;
        // A burst of connections must not overflow the subscription.
        let _ = events.set_receive_buffer(config.pm_event_buffer.unwrap_or(4 << 20));
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
        let diag = match AsyncDiag::new().await {
            Ok(d) => Some(d),
            Err(e) => {
                warn!(error = %e, "no socket diagnostics: no resynchronisation after lost events, no silent-loss detection, no uid or cgroup rules");
                None
            }
        };
        let mut me = UserspaceMode {
            pm,
            events,
            diag,
            previous,
            conns: HashMap::new(),
            ids: BTreeMap::new(),
            announce: config.rules.announce,
            subflow_mode: config.rules.subflow_mode,
            max_subflows: config.rules.max_subflows,
            loss_after: config.loss_after,
            last_usable: BTreeSet::new(),
        };
        if earlier.is_some_and(|e| e.mode == super::Mode::Userspace) {
            // Its connections are followed from here on (subflows, announcements).
            me.resync(policy).await;
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
                // What is still queued predates the loss; the listing that follows is
                // newer than all of it.
                let mut dropped = 0usize;
                while let Some(Some(_)) = self.events.next().now_or_never() {
                    dropped += 1;
                }
                debug!(dropped, "queued events dropped before resynchronising");
                self.resync(policy).await;
                self.reconcile(usable).await;
                return;
            }
            Ok(_) => return,
            Err(e) => {
                warn!(error = %e, "undecodable path-manager event");
                return;
            }
        };
        let token = match ev {
            Event::Established(c) => {
                let server_side =
                    c.server_side.unwrap_or(false) || c.flags.contains(EventFlags::SERVER_SIDE);
                let facts = self.facts(policy, c.token, c.local, c.remote).await;
                let choice = if server_side {
                    PathChoice::default()
                } else {
                    policy.choose(&facts)
                };
                debug!(token = %c.token, server_side, policy = %choice.policy, "connection established");
                self.conns.insert(
                    c.token,
                    Conn::new(server_side, choice, c.local, c.remote, self.loss_after),
                );
                c.token
            }
            Event::Announced { token, addr, .. } => {
                let Some(c) = self.conns.get_mut(&token) else {
                    return;
                };
                if !c.remotes.contains(&addr) {
                    c.remotes.push(addr);
                }
                token
            }
            Event::SubEstablished(sf) => {
                let Some(c) = self.conns.get_mut(&sf.token) else {
                    return;
                };
                c.pending.remove(&(sf.local.ip(), sf.remote));
                if !c
                    .subflows
                    .iter()
                    .any(|s| (s.local, s.remote) == (sf.local, sf.remote))
                {
                    c.subflows.push(Sub {
                        local: sf.local,
                        remote: sf.remote,
                        backup: sf.backup,
                    });
                }
                info!(token = %sf.token, local = %sf.local, remote = %sf.remote, backup = sf.backup, "subflow established");
                sf.token
            }
            Event::SubClosed(sf) => {
                let Some(c) = self.conns.get_mut(&sf.token) else {
                    return;
                };
                c.subflows
                    .retain(|s| (s.local, s.remote) != (sf.local, sf.remote));
                c.pending.remove(&(sf.local.ip(), sf.remote));
                debug!(token = %sf.token, local = %sf.local, remote = %sf.remote, "subflow closed");
                sf.token
            }
            Event::Closed { token } => {
                self.conns.remove(&token);
                return;
            }
            _ => return,
        };
        self.apply(token, usable).await;
    }

    /// What a rule can match on: the addresses, and the owner when the policy asks.
    async fn facts(
        &self,
        policy: &impl Policy,
        token: Token,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> ConnectionFacts {
        let mut facts = ConnectionFacts {
            local,
            remote,
            uid: None,
            cgroup_id: None,
        };
        if policy.needs_owner() {
            if let Some(diag) = &self.diag {
                match diag.connection_by_token(token).await {
                    Ok(d) => {
                        facts.uid = Some(d.uid);
                        facts.cgroup_id = d.cgroup_id;
                    }
                    Err(e) => debug!(%token, error = %e, "no owner for the policy rules"),
                }
            }
        }
        facts
    }

    /// The paths of a connection: one usable address per interface, of the peer's
    /// family, preferred first (the policy's `prefer` globs in order, then the initial
    /// subflow's interface, then the others as listed).
    fn paths(
        c: &Conn,
        remote: SocketAddr,
        usable: &[(LocalAddress, EndpointFlags)],
    ) -> Vec<LocalPath> {
        let initial_if = usable
            .iter()
            .find(|(l, _)| l.addr == c.initial.ip())
            .map(|(l, _)| l.ifindex);
        let mut by_if: Vec<(usize, bool, &LocalAddress, bool)> = Vec::new();
        for (l, f) in usable
            .iter()
            .filter(|(l, _)| l.addr.is_ipv4() == remote.is_ipv4())
        {
            // The initial subflow's own address stands for its interface.
            if let Some(i) = by_if.iter().position(|e| e.2.ifindex == l.ifindex) {
                if l.addr == c.initial.ip() {
                    by_if[i].2 = l;
                }
                continue;
            }
            let rank = c
                .choice
                .prefer
                .iter()
                .position(|g| g.matches(&l.ifname))
                .unwrap_or(c.choice.prefer.len());
            let standby = f.contains(EndpointFlags::BACKUP)
                || c.choice.standby.iter().any(|g| g.matches(&l.ifname));
            by_if.push((rank, Some(l.ifindex) != initial_if, l, standby));
        }
        by_if.sort_by_key(|e| (e.0, e.1));
        by_if
            .into_iter()
            .map(|(_, _, l, standby)| LocalPath {
                addr: l.addr,
                ifindex: Some(l.ifindex),
                standby,
            })
            .collect()
    }

    /// Brings one connection to what its policy wants: subflows (client side) or
    /// announcements (server side).
    async fn apply(&mut self, token: Token, usable: &[(LocalAddress, EndpointFlags)]) {
        let Some(c) = self.conns.get(&token).cloned() else {
            return;
        };
        if c.server_side {
            self.announce(token, &c, usable).await;
            return;
        }
        let remotes = match self.subflow_mode {
            SubflowMode::PerInterface => &c.remotes[..1],
            SubflowMode::Fullmesh => &c.remotes[..],
        };
        let now = Instant::now();
        let mut extra = c.subflows.len().saturating_sub(1) + c.pending.len();
        for remote in remotes {
            let paths = Self::paths(&c, *remote, usable);
            let mut state: Vec<SubflowState> = c
                .subflows
                .iter()
                .filter(|s| s.remote == *remote)
                .map(|s| SubflowState {
                    local: s.local,
                    remote: s.remote,
                    backup: s.backup,
                    pending: false,
                    lost: c.detector.is_lost(s.local, s.remote),
                })
                .collect();
            for ((ip, r), at) in &c.pending {
                if r == remote && now.duration_since(*at) < OPEN_TIMEOUT {
                    state.push(SubflowState {
                        local: SocketAddr::new(*ip, 0),
                        remote: *r,
                        backup: false,
                        pending: true,
                        lost: false,
                    });
                }
            }
            for action in decide(c.choice.policy, &paths, *remote, &state) {
                if let Action::Open { local, remote, .. } = action {
                    let recent = c
                        .tried
                        .get(&(local, remote))
                        .is_some_and(|t| now.duration_since(*t) < RETRY);
                    if recent || extra >= self.max_subflows {
                        continue;
                    }
                    extra += 1;
                }
                let ifindex = match action {
                    Action::Open { local, .. } => paths
                        .iter()
                        .find(|p| p.addr == local)
                        .and_then(|p| p.ifindex),
                    _ => None,
                };
                if !self.act(token, action, ifindex).await {
                    return;
                }
            }
        }
    }

    /// Carries out one action; false when the connection turned out to be gone.
    async fn act(&mut self, token: Token, action: Action, ifindex: Option<u32>) -> bool {
        let r = match action {
            Action::Open { local, remote, .. } => {
                let id = self.id_for(local);
                let from = SocketAddr::new(local, 0);
                // Bound to the address's interface: the subflow takes that path even
                // where the routing table would send its destination through another.
                let r = match ifindex {
                    Some(i) => self.pm.create_subflow_on(token, id, from, i, remote).await,
                    None => self.pm.create_subflow(token, id, from, remote).await,
                };
                if let Some(c) = self.conns.get_mut(&token) {
                    let now = Instant::now();
                    c.tried.insert((local, remote), now);
                    if r.is_ok() {
                        c.pending.insert((local, remote), now);
                        debug!(%token, %local, %remote, "subflow requested");
                    }
                }
                r
            }
            Action::Close { local, remote } => {
                let r = self.pm.destroy_subflow(token, local, remote).await;
                if let Some(c) = self.conns.get_mut(&token) {
                    c.subflows
                        .retain(|s| (s.local, s.remote) != (local, remote));
                    if r.is_ok() {
                        let lost = c.detector.is_lost(local, remote);
                        info!(%token, %local, %remote, lost, "subflow closed (its path is gone)");
                    }
                }
                r
            }
            Action::SetBackup {
                local,
                remote,
                backup,
            } => {
                let r = self
                    .pm
                    .set_subflow_backup(token, local, remote, backup)
                    .await;
                if let (Ok(()), Some(c)) = (&r, self.conns.get_mut(&token)) {
                    for s in c
                        .subflows
                        .iter_mut()
                        .filter(|s| (s.local, s.remote) == (local, remote))
                    {
                        s.backup = backup;
                    }
                    info!(%token, %local, %remote, backup, "subflow priority set");
                }
                r
            }
        };
        match r {
            Ok(()) => true,
            Err(e) => {
                if self.gone(token).await {
                    debug!(%token, "the connection is gone: forgotten");
                    self.conns.remove(&token);
                    return false;
                }
                warn!(%token, ?action, error = %e, "path-manager request failed");
                true
            }
        }
    }

    /// Whether sock_diag says the connection no longer exists (a request that failed
    /// with "invalid token" is about such a connection).
    async fn gone(&self, token: Token) -> bool {
        match &self.diag {
            Some(d) => matches!(
                d.connection_by_token(token).await,
                Err(mptcp::Error::NoSuchConnection(_))
            ),
            None => false,
        }
    }

    /// Announcements on a connection this host accepted.
    async fn announce(&mut self, token: Token, c: &Conn, usable: &[(LocalAddress, EndpointFlags)]) {
        if !self.announce {
            return;
        }
        let usable_ips: Vec<IpAddr> = usable.iter().map(|(l, _)| l.addr).collect();
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
    }

    /// After a change of interfaces (or on the periodic timer): every connection again.
    pub(crate) async fn reconcile(&mut self, usable: &[(LocalAddress, EndpointFlags)]) {
        let now: BTreeSet<IpAddr> = usable.iter().map(|(l, _)| l.addr).collect();
        if now != self.last_usable {
            // A path that came back is asked for at once.
            for c in self.conns.values_mut() {
                c.tried.clear();
            }
            self.last_usable = now;
        }
        let tokens: Vec<Token> = self.conns.keys().copied().collect();
        for t in tokens {
            self.apply(t, usable).await;
        }
    }

    /// Whether any connection has more than one subflow (the silent-loss detection
    /// looks only at those).
    pub(crate) fn watching(&self) -> bool {
        self.conns
            .values()
            .any(|c| !c.server_side && c.subflows.len() > 1)
    }

    /// One look for silent losses: a listing of the established connections (one
    /// sock_diag dump, whatever their number), each watched connection's subflows fed
    /// to its detector; a connection whose verdicts changed is brought to its policy.
    pub(crate) async fn detect(&mut self, usable: &[(LocalAddress, EndpointFlags)]) -> bool {
        if !self.watching() {
            return false;
        }
        let Some(diag) = &self.diag else {
            return false;
        };
        let listed = match diag
            .connections(&Filter::new().state(SocketState::Established))
            .await
        {
            Ok(l) => l,
            Err(e) => {
                debug!(error = %e, "cannot list connections for loss detection");
                return false;
            }
        };
        let mut changed = Vec::new();
        for d in &listed {
            let Some(token) = d.token else { continue };
            let Some(c) = self.conns.get_mut(&token) else {
                continue;
            };
            if c.server_side || c.subflows.len() < 2 {
                continue;
            }
            let seen = d
                .subflows
                .iter()
                .filter_map(|s| s.tcp_info.as_ref().map(|t| (s.local, s.remote, t)));
            for ch in c.detector.observe(seen) {
                if ch.lost {
                    info!(%token, local = %ch.local, remote = %ch.remote, "subflow lost: data in flight and no acknowledgement while another subflow works");
                } else {
                    info!(%token, local = %ch.local, remote = %ch.remote, "subflow makes progress again");
                }
                changed.push(token);
            }
        }
        changed.dedup();
        for t in &changed {
            self.apply(*t, usable).await;
        }
        !changed.is_empty()
    }

    /// After lost events, at start after a crash, and on the periodic timer: the
    /// connections and their subflows as the kernel lists them now (a connection is
    /// this host's when its local port is not a listener's). What is known of a
    /// connection that is still there is kept.
    pub(crate) async fn resync(&mut self, policy: &impl Policy) {
        let Some(diag) = &self.diag else { return };
        let conns = match diag.connections(&Filter::new()).await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "cannot list connections to resynchronise");
                return;
            }
        };
        let listening: Vec<u16> = conns
            .iter()
            .filter(|c| c.state == SocketState::Listen)
            .map(|c| c.local.port())
            .collect();
        let mut fresh = HashMap::new();
        for d in conns.iter().filter(|c| c.state == SocketState::Established) {
            let Some(token) = d.token else { continue };
            let subflows = listed_subflows(d);
            let conn = match self.conns.remove(&token) {
                Some(mut old) => {
                    old.subflows = subflows;
                    old
                }
                None => {
                    let server_side = listening.contains(&d.local.port());
                    let facts = ConnectionFacts {
                        local: d.local,
                        remote: d.remote,
                        uid: Some(d.uid),
                        cgroup_id: d.cgroup_id,
                    };
                    let choice = if server_side {
                        PathChoice::default()
                    } else {
                        policy.choose(&facts)
                    };
                    let mut c = Conn::new(server_side, choice, d.local, d.remote, self.loss_after);
                    c.subflows = subflows;
                    c
                }
            };
            fresh.insert(token, conn);
        }
        let forgotten = self.conns.len();
        if forgotten > 0 {
            info!(forgotten, "connections that no longer exist forgotten");
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
                    policy: c.choice.policy.to_string(),
                    subflows: c
                        .subflows
                        .iter()
                        .filter(|s| (s.local, s.remote) != (c.initial, c.remotes[0]))
                        .map(|s| (s.local, s.remote))
                        .collect(),
                    backup: c
                        .subflows
                        .iter()
                        .filter(|s| s.backup)
                        .map(|s| s.local)
                        .collect(),
                })
                .collect(),
        }
    }
}

/// A listed connection's subflows, with the backup flag this host set.
fn listed_subflows(d: &DiagConnection) -> Vec<Sub> {
    d.subflows
        .iter()
        .filter(|s| s.state == SocketState::Established)
        .map(|s| Sub {
            local: s.local,
            remote: s.remote,
            backup: s.flags.is_some_and(|f| f.contains(SubflowFlags::BKUP_LOC)),
        })
        .collect()
}
