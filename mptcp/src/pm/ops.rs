//! The go-mptcp-api seed's six subflow operations on upstream kernels, built on the
//! socket's subflow list and the userspace path manager.

use super::{Endpoint, Event, EventItem, PathManager, SubflowEvent};
use crate::error::{Error, Result};
use crate::sys;
use crate::token::Token;
use crate::wire::subflow::SubflowTuple;
use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// `tcp_info.tcpi_state` of an established subflow.
const TCP_ESTABLISHED: u8 = 1;

/// An MPTCP connection plus what the seed's subflow operations need of the path
/// manager. Borrow any `AsFd` socket (`&TcpStream`, a tokio stream, ...).
///
/// Opening, closing and prioritising subflows go through the userspace path manager,
/// which must be selected in the connection's network namespace
/// ([`set_kind`](super::set_kind)); otherwise they fail with
/// [`Error::NeedsUserspacePm`].
///
/// ```no_run
/// use std::time::Duration;
/// let stream = mptcp::connect("192.0.2.2:8080")?;
/// let mut h = mptcp::pm::SubflowHandle::new(&stream)?;
/// let id = h.open_subflow(
///     "198.51.100.1:0".parse().expect("address"),
///     "198.51.100.2:8080".parse().expect("address"),
///     Duration::from_secs(5),
/// )?;
/// h.set_subflow_backup(id, true)?;
/// println!("subflows: {:?}", h.subflow_ids()?);
/// h.close_subflow(id, std::net::Shutdown::Both)?;
/// # Ok::<(), mptcp::Error>(())
/// ```
///
/// The async form (feature `tokio`) is `AsyncSubflowHandle`: the same operations, with
/// the path-manager requests and the wait for the subflow's event as futures.
#[derive(Debug)]
pub struct SubflowHandle<S: AsFd, P = PathManager> {
    socket: S,
    pm: P,
    token: Token,
    backups: HashMap<u32, bool>,
    next_local_id: u8,
}

/// [`SubflowHandle`] for async code (feature `tokio`), on an
/// [`AsyncPathManager`](super::AsyncPathManager).
///
/// ```no_run
/// # async fn f(stream: tokio::net::TcpStream) -> mptcp::Result<()> {
/// use std::time::Duration;
/// let mut h = mptcp::pm::AsyncSubflowHandle::new_async(&stream).await?;
/// let id = h
///     .open_subflow(
///         "198.51.100.1:0".parse().expect("address"),
///         "198.51.100.2:8080".parse().expect("address"),
///         Duration::from_secs(5),
///     )
///     .await?;
/// h.set_subflow_backup(id, true).await?;
/// h.close_subflow(id, std::net::Shutdown::Both).await?;
/// # Ok(()) }
/// ```
#[cfg(feature = "tokio")]
pub type AsyncSubflowHandle<S> = SubflowHandle<S, super::AsyncPathManager>;

impl<S: AsFd> SubflowHandle<S> {
    /// Wraps a connected MPTCP socket (reads its token; opens a path-manager client in
    /// the calling thread's network namespace).
    pub fn new(socket: S) -> Result<Self> {
        SubflowHandle::with_path_manager(socket, PathManager::new()?)
    }
}

#[cfg(feature = "tokio")]
impl<S: AsFd> SubflowHandle<S, super::AsyncPathManager> {
    /// Wraps a connected MPTCP socket for async code (reads its token; opens an async
    /// path-manager client in the calling thread's network namespace).
    pub async fn new_async(socket: S) -> Result<Self> {
        let pm = super::AsyncPathManager::new().await?;
        SubflowHandle::with_path_manager(socket, pm)
    }
}

impl<S: AsFd, P> SubflowHandle<S, P> {
    /// Wraps a connected MPTCP socket with a path-manager client of your own (a
    /// [`PathManager`], or an `AsyncPathManager` (feature `tokio`) shared with
    /// other tasks).
    pub fn with_path_manager(socket: S, pm: P) -> Result<Self> {
        let token = crate::info::token(&socket)?;
        Ok(SubflowHandle {
            socket,
            pm,
            token,
            backups: HashMap::new(),
            next_local_id: 100,
        })
    }

    /// The socket.
    pub fn socket(&self) -> &S {
        &self.socket
    }

    /// The connection's local token.
    pub fn token(&self) -> Token {
        self.token
    }

    /// The path-manager client, for the other commands.
    pub fn path_manager(&mut self) -> &mut P {
        &mut self.pm
    }

    fn tuples(&self) -> Result<Vec<SubflowTuple>> {
        crate::subflow::subflows(&self.socket)?
            .into_iter()
            .map(|s| {
                let id = s.id.ok_or(Error::Unsupported {
                    feature: "subflow ids (MPTCP_FULL_INFO)",
                    since: Some("6.5"),
                })?;
                Ok(SubflowTuple {
                    id,
                    local: s.local,
                    remote: s.remote,
                    backup: self.backups.get(&id).copied(),
                })
            })
            .collect()
    }

    /// The ids of the connection's subflows.
    #[doc(alias = "GetSubIDS")]
    pub fn subflow_ids(&self) -> Result<Vec<u32>> {
        Ok(self.tuples()?.into_iter().map(|t| t.id).collect())
    }

    /// One subflow: id, addresses, backup.
    #[doc(alias = "GetSubTuple")]
    pub fn subflow(&self, id: u32) -> Result<SubflowTuple> {
        self.tuples()?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or(Error::NoSuchSubflow(id))
    }

    /// What opening a subflow from `local` starts from: the subflows there are now, and
    /// the address id to open it with (the one `local` was announced with, else a fresh
    /// one).
    fn plan_open(
        &mut self,
        local: SocketAddr,
        announced: Result<Vec<Endpoint>>,
    ) -> Result<(Vec<u32>, u8)> {
        Ok((self.subflow_ids()?, self.local_id_for(local, announced)?))
    }

    fn local_id_for(&mut self, local: SocketAddr, announced: Result<Vec<Endpoint>>) -> Result<u8> {
        let announced = match announced {
            // Older kernels cannot list them: choose a fresh id below.
            Err(Error::Unsupported { .. }) => Vec::new(),
            r => r?,
        };
        Ok(match announced.iter().find(|e| e.addr == local.ip()) {
            Some(e) => e.id,
            None => {
                let used = announced.iter().map(|e| e.id).max().unwrap_or(0);
                let id = self.next_local_id.max(used.saturating_add(1));
                self.next_local_id = id.saturating_add(1);
                id
            }
        })
    }

    /// What one item of the event stream means for the subflow being opened: its id,
    /// its error, or nothing yet.
    fn opened(
        &self,
        item: Result<EventItem>,
        before: &[u32],
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Option<Result<u32>> {
        let ours = |sf: &SubflowEvent| {
            sf.token == self.token
                && sf.local.ip() == local.ip()
                && (local.port() == 0 || sf.local.port() == local.port())
                && sf.remote == remote
        };
        match item {
            Ok(EventItem::Event(Event::SubEstablished(sf))) if ours(&sf) => {
                Some(self.find_new(before, local, remote).and_then(|id| {
                    id.ok_or_else(|| {
                        Error::decode(
                            "subflows",
                            "the kernel reported the subflow established but does not list it",
                        )
                    })
                }))
            }
            Ok(EventItem::Event(Event::SubClosed(sf))) if ours(&sf) => {
                let errno = sf.error.map_or(libc::ECONNABORTED, i32::from);
                Some(Err(Error::os(
                    "open subflow",
                    std::io::Error::from_raw_os_error(errno),
                )))
            }
            Ok(EventItem::Event(_)) => None,
            // Lost events or an undecodable one: ours may be among them; the subflow
            // list still tells.
            Ok(_) | Err(Error::Decode { .. }) => self.find_new(before, local, remote).transpose(),
            Err(Error::TimedOut(_)) => Some(Err(Error::TimedOut("open subflow"))),
            Err(e) => Some(Err(e)),
        }
    }

    /// The id of an established subflow from `local` to `remote` that is not in `before`.
    fn find_new(
        &self,
        before: &[u32],
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<Option<u32>> {
        Ok(crate::subflow::subflows(&self.socket)?
            .into_iter()
            .find(|s| {
                s.id.is_some_and(|id| !before.contains(&id))
                    && s.local.ip() == local.ip()
                    && (local.port() == 0 || s.local.port() == local.port())
                    && s.remote == remote
                    && s.tcp_info.state() == TCP_ESTABLISHED
            })
            .and_then(|s| s.id))
    }

    /// The subflow `close_subflow` closes, after checking `how`.
    fn closing(&self, id: u32, how: Shutdown) -> Result<SubflowTuple> {
        if how != Shutdown::Both {
            return Err(Error::Unsupported {
                feature: "half-closing one subflow (upstream MPTCP closes a subflow \
                          entirely: use Shutdown::Both)",
                since: None,
            });
        }
        self.subflow(id)
    }

    /// Reads an integer socket option "of a subflow". Upstream has no per-subflow
    /// `getsockopt`: after checking the subflow exists, this reads the option on the
    /// MPTCP socket, which answers from the connection (`SO_*`, `TCP_NODELAY`, ...) or
    /// from the first subflow (`TCP_MAXSEG`, `TCP_INFO`-based values). Options the
    /// MPTCP socket refuses give the OS error.
    #[doc(alias = "GetSubSockoptInt")]
    pub fn subflow_sockopt_int(&self, id: u32, level: i32, name: i32) -> Result<i32> {
        self.subflow(id)?;
        sys::int_option(self.socket.as_fd(), level, name).map_err(|e| Error::os("getsockopt", e))
    }

    /// Sets an integer socket option "on a subflow". Upstream has no per-subflow
    /// `setsockopt`: after checking the subflow exists, this sets it on the MPTCP socket,
    /// which passes `SO_KEEPALIVE`, `SO_PRIORITY`, `SO_MARK`, `SO_SNDBUF`/`SO_RCVBUF`,
    /// `IP_TOS`, `TCP_NODELAY`, `TCP_CORK`, `TCP_KEEPIDLE`/`KEEPINTVL`/`KEEPCNT`,
    /// `TCP_MAXSEG` ... to *all* subflows, present and future.
    #[doc(alias = "SetSubSockoptInt")]
    pub fn set_subflow_sockopt_int(
        &self,
        id: u32,
        level: i32,
        name: i32,
        value: i32,
    ) -> Result<()> {
        self.subflow(id)?;
        sys::set_int_option(self.socket.as_fd(), level, name, value)
            .map_err(|e| Error::os("setsockopt", e))
    }
}

impl<S: AsFd> SubflowHandle<S> {
    /// Opens a subflow from `local` (port 0: any) to `remote` and returns its id once the
    /// kernel reports it established (its `SUB_ESTABLISHED` event; a `SUB_CLOSED` event
    /// gives the subflow's error), or [`Error::TimedOut`]. The connection must be fully
    /// established (MPTCP gets there once data has been acknowledged); before that the
    /// kernel answers `ENOTCONN`.
    #[doc(alias = "OpenSub")]
    pub fn open_subflow(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        timeout: Duration,
    ) -> Result<u32> {
        let announced = self.pm.announced_addresses(self.token);
        let (before, local_id) = self.plan_open(local, announced)?;
        // Subscribe first, so the subflow's event cannot be missed.
        let mut events = self.pm.events()?;
        self.pm
            .create_subflow(self.token, local_id, local, remote)?;
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::TimedOut("open subflow"));
            }
            events.set_timeout(Some(left))?;
            let item = events
                .next()
                .unwrap_or(Err(Error::TimedOut("open subflow")));
            if let Some(result) = self.opened(item, &before, local, remote) {
                return result;
            }
        }
    }

    /// Closes a subflow. Upstream can only close a subflow entirely (the path manager's
    /// SUBFLOW_DESTROY: FIN, then RST if needed), so `how` must be `Shutdown::Both`;
    /// `Read`/`Write` (the seed's half-closes) give [`Error::Unsupported`].
    #[doc(alias = "CloseSub")]
    pub fn close_subflow(&mut self, id: u32, how: Shutdown) -> Result<()> {
        let t = self.closing(id, how)?;
        self.pm.destroy_subflow(self.token, t.local, t.remote)?;
        self.backups.remove(&id);
        Ok(())
    }

    /// Sets or clears backup (low) priority on a subflow; the kernel tells the peer with
    /// MP_PRIO.
    #[doc(alias = "Prio")]
    pub fn set_subflow_backup(&mut self, id: u32, backup: bool) -> Result<()> {
        let t = self.subflow(id)?;
        self.pm
            .set_subflow_backup(self.token, t.local, t.remote, backup)?;
        self.backups.insert(id, backup);
        Ok(())
    }
}

#[cfg(feature = "tokio")]
impl<S: AsFd> SubflowHandle<S, super::AsyncPathManager> {
    /// [`SubflowHandle::open_subflow`], waiting for the subflow's event on tokio.
    #[doc(alias = "OpenSub")]
    pub async fn open_subflow(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        timeout: Duration,
    ) -> Result<u32> {
        let announced = self.pm.announced_addresses(self.token).await;
        let (before, local_id) = self.plan_open(local, announced)?;
        let mut events = self.pm.events()?;
        self.pm
            .create_subflow(self.token, local_id, local, remote)
            .await?;
        let wait = async {
            loop {
                let item = events
                    .next()
                    .await
                    .unwrap_or(Err(Error::TimedOut("open subflow")));
                if let Some(result) = self.opened(item, &before, local, remote) {
                    return result;
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or(Err(Error::TimedOut("open subflow")))
    }

    /// [`SubflowHandle::close_subflow`].
    #[doc(alias = "CloseSub")]
    pub async fn close_subflow(&mut self, id: u32, how: Shutdown) -> Result<()> {
        let t = self.closing(id, how)?;
        self.pm
            .destroy_subflow(self.token, t.local, t.remote)
            .await?;
        self.backups.remove(&id);
        Ok(())
    }

    /// [`SubflowHandle::set_subflow_backup`].
    #[doc(alias = "Prio")]
    pub async fn set_subflow_backup(&mut self, id: u32, backup: bool) -> Result<()> {
        let t = self.subflow(id)?;
        self.pm
            .set_subflow_backup(self.token, t.local, t.remote, backup)
            .await?;
        self.backups.insert(id, backup);
        Ok(())
    }
}
