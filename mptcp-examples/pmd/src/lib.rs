//! A path-manager daemon engine: it keeps the kernel's MPTCP path manager in step with
//! the host's interfaces and addresses as they come and go.
//!
//! * **Kernel mode** (the in-kernel path manager): one endpoint per usable local
//!   address, with the flags the [`Policy`] gives, removed when the address or its link
//!   goes away and added again when it returns. Endpoints it did not create are never
//!   touched (apart from the crash takeover below).
//! * **Userspace mode** (the userspace path manager): per connection, driven by the
//!   kernel's events: subflows from the other usable addresses on `ESTABLISHED`, backup
//!   marks, address announcements as a server, subflows closed on link down and
//!   recreated on link up.
//!
//! The engine is level-triggered: every change notification (and an overflow of the
//! notification socket, and a periodic timer) leads to a comparison of what the kernel
//! has with what the policy wants, so it converges after lost events.
//!
//! The state file records what it manages; one left by an instance that did not stop
//! cleanly is taken over at start (its endpoints, the path manager it replaced, its
//! connections), and a lock beside it (`FILE.lock`) keeps a second daemon from running
//! with the same file ([`Error::AlreadyRunning`]).
//!
//! [`Policy`] is the small trait a program implements to decide; [`Rules`] is the one
//! the `mptcp-pmd` binary builds from its TOML configuration.

#![deny(missing_docs)]
mod config;
mod kernel;
mod links;
mod rules;
mod state;
mod userspace;

pub use config::{Config, ConfigError, Mode};
pub use links::LocalAddress;
pub use rules::{ConnectionFacts, InterfaceRule, PathChoice, PolicyRule, Rules, SubflowMode};
pub use state::State;

use mptcp::pm::{EndpointFlags, Limits};
use std::time::Duration;
use tracing::{info, warn};

/// What to do with local addresses. Implement it to write a policy in Rust; the daemon
/// asks it again on every change, so it may depend on anything.
pub trait Policy: Send + Sync + 'static {
    /// The endpoint flags for a usable local address (`SUBFLOW`, `SIGNAL`, `BACKUP`,
    /// `FULLMESH`, `LAMINAR`), or `None` to leave the address out.
    fn flags(&self, addr: &LocalAddress) -> Option<EndpointFlags>;

    /// Limits to set when the daemon starts in kernel mode (`None`: leave them).
    fn limits(&self) -> Option<Limits> {
        None
    }

    /// Userspace mode: the path policy of a connection this host started, and how its
    /// paths rank (default: `aggregate`).
    fn choose(&self, _connection: &ConnectionFacts) -> PathChoice {
        PathChoice::default()
    }

    /// Whether [`choose`](Self::choose) looks at the owner (uid, cgroup): the daemon
    /// then asks sock_diag for it when a connection is established.
    fn needs_owner(&self) -> bool {
        false
    }
}

/// Runs the daemon until SIGTERM or SIGINT: the engine for `config.mode`, with `policy`.
/// On the way out it removes what it added (kernel mode, when `config.cleanup` is
/// set) or restores the previous path manager (userspace mode).
pub async fn run(config: Config, policy: impl Policy) -> Result<(), Error> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| Error::Io("SIGTERM handler", e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| Error::Io("SIGINT handler", e))?;
    let mut usr1 =
        signal(SignalKind::user_defined1()).map_err(|e| Error::Io("SIGUSR1 handler", e))?;
    let mut changes = links::Changes::subscribe(config.event_buffer)?;
    let links = links::Links::new()?;
    let names = links.names().await?;
    for r in &config.rules.interfaces {
        if !names.iter().any(|n| r.glob.matches(n)) {
            warn!(glob = %r.pattern, "no interface matches this rule (yet)");
        }
    }
    // The state file's lock, held until the process ends; what an earlier daemon that
    // did not stop cleanly left is taken over.
    let state::Claim {
        lock: _lock,
        earlier,
    } = state::claim(config.state_file.as_deref())?;
    if let Some(e) = &earlier {
        info!(pid = e.pid, mode = ?e.mode, "an earlier instance did not stop cleanly: taking over what it left");
    }
    let mut engine = match config.mode {
        Mode::Kernel => Engine::Kernel(kernel::KernelMode::start(&policy, earlier.as_ref()).await?),
        Mode::Userspace => Engine::Userspace(Box::new(
            userspace::UserspaceMode::start(&config, &policy, earlier.as_ref()).await?,
        )),
    };
    // Silent-loss detection (userspace mode): bounded polling, only while a connection
    // has more than one subflow.
    let detecting = config.mode == Mode::Userspace && !config.detect_interval.is_zero();
    let mut detect = tokio::time::interval(config.detect_interval.max(Duration::from_millis(5)));
    detect.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut resync = tokio::time::interval(config.resync_interval.max(Duration::from_millis(100)));
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = state::Writer::new(config.state_file.clone());
    let mut usable = links.usable(&policy, &config).await?;
    engine.reconcile(&policy, &usable).await;
    state.write(&engine.state(&config, &usable));
    info!(mode = ?config.mode, addresses = usable.len(), "started");
    loop {
        let mut dirty = false;
        // A link or an address came or went: no waiting for the burst to settle (a
        // lost path's subflows are closed, a returned one's opened, at once).
        let mut urgent = false;
        tokio::select! {
            c = changes.next() => match c {
                links::Change::Changed { links } => {
                    dirty = true;
                    urgent = links;
                }
                links::Change::Overflow => {
                    notifications_lost();
                    dirty = true;
                }
                links::Change::Failed(e) => return Err(e),
            },
            ev = engine.next_event() => {
                if let Some(ev) = ev {
                    engine.handle(ev, &policy, &usable).await;
                    state.write(&engine.state(&config, &usable));
                }
            }
            _ = detect.tick(), if detecting => {
                if engine.detect(&usable).await {
                    state.write(&engine.state(&config, &usable));
                }
            }
            _ = resync.tick() => {
                engine.periodic(&policy).await;
                dirty = true;
            }
            _ = usr1.recv() => info!(state = %serde_json::to_string(&engine.state(&config, &usable)).unwrap_or_default(), "state"),
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
        if dirty {
            if !urgent {
                // Changes come in bursts (an address and its routes): let them settle.
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            if changes.drain() {
                notifications_lost();
            }
            usable = links.usable(&policy, &config).await?;
            engine.reconcile(&policy, &usable).await;
            state.write(&engine.state(&config, &usable));
        }
    }
    info!("stopping");
    engine.stop(&config).await;
    state.remove();
    Ok(())
}

/// Reported when the rtnetlink queue overflowed; the dump that follows resynchronises.
fn notifications_lost() {
    warn!("interface notifications were lost (socket buffer overflow): resynchronising");
}

/// One of the two engines.
enum Engine {
    Kernel(kernel::KernelMode),
    Userspace(Box<userspace::UserspaceMode>),
}

impl Engine {
    async fn reconcile(&mut self, _policy: &impl Policy, usable: &[(LocalAddress, EndpointFlags)]) {
        match self {
            Engine::Kernel(k) => k.reconcile(usable).await,
            Engine::Userspace(u) => u.reconcile(usable).await,
        }
    }

    /// The periodic timer's comparison with sock_diag (userspace mode; the reconcile
    /// that follows covers kernel mode).
    async fn periodic(&mut self, policy: &impl Policy) {
        if let Engine::Userspace(u) = self {
            u.resync(policy).await;
        }
    }

    /// One look for silent losses; true when a connection changed.
    async fn detect(&mut self, usable: &[(LocalAddress, EndpointFlags)]) -> bool {
        match self {
            Engine::Kernel(_) => false,
            Engine::Userspace(u) => u.detect(usable).await,
        }
    }

    async fn next_event(&mut self) -> Option<userspace::Item> {
        match self {
            Engine::Kernel(_) => std::future::pending().await,
            Engine::Userspace(u) => u.next_event().await,
        }
    }

    async fn handle(
        &mut self,
        ev: userspace::Item,
        policy: &impl Policy,
        usable: &[(LocalAddress, EndpointFlags)],
    ) {
        if let Engine::Userspace(u) = self {
            u.handle(ev, policy, usable).await
        }
    }

    fn state(&self, config: &Config, usable: &[(LocalAddress, EndpointFlags)]) -> State {
        match self {
            Engine::Kernel(k) => k.state(config, usable),
            Engine::Userspace(u) => u.state(config, usable),
        }
    }

    async fn stop(&mut self, config: &Config) {
        match self {
            Engine::Kernel(k) => k.stop(config.cleanup).await,
            Engine::Userspace(u) => u.stop().await,
        }
    }
}

/// What can stop the daemon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request to the MPTCP path manager failed.
    #[error(transparent)]
    Mptcp(#[from] mptcp::Error),
    /// rtnetlink (interfaces, addresses, routes) failed.
    #[error("rtnetlink: {0}")]
    Rtnetlink(String),
    /// A system call failed.
    #[error("{0}: {1}")]
    Io(&'static str, #[source] std::io::Error),
    /// Another mptcp-pmd holds the lock of the same state file.
    #[error("another mptcp-pmd{} is running with the state file {} (give each daemon its own --state)", pid.map(|p| format!(" (pid {p})")).unwrap_or_default(), state_file.display())]
    AlreadyRunning {
        /// Its process id, from the state file, when it has written one.
        pid: Option<u32>,
        /// The state file.
        state_file: std::path::PathBuf,
    },
}
