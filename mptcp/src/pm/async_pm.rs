//! The path manager for async code (feature `tokio`).

use super::async_netlink::AsyncConn;
use super::command::{Command, Probes};
use super::netlink::Family;
use super::{classify, EventStream};
use crate::error::Result;
use std::sync::Arc;

/// The path-manager client for async code (feature `tokio`): the requests of
/// [`PathManager`](super::PathManager) as `Send` futures on tokio's reactor.
///
/// It is cheap to clone, its methods take `&self`, and requests from many tasks run
/// concurrently on one netlink socket, each reply matched to its request by sequence
/// number. Nothing blocks a runtime thread. Its operations are
/// [`PathManager`](super::PathManager)'s, generated from the same list and running the
/// same commands. Events are a separate subscription: [`events`](Self::events).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mptcp::Result<()> {
/// let pm = mptcp::pm::AsyncPathManager::new().await?;
/// // Two requests at once on one client.
/// let (limits, endpoints) = tokio::join!(pm.limits(), pm.endpoints());
/// println!("{:?}, {} endpoints", limits?, endpoints?.len());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AsyncPathManager {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    conn: AsyncConn,
    family: Family,
    probes: Probes,
}

impl AsyncPathManager {
    /// Opens a client in the calling thread's network namespace and resolves the
    /// `mptcp_pm` family, without blocking. Outside a tokio runtime this is
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument).
    pub async fn new() -> Result<Self> {
        let conn = AsyncConn::open()?;
        let (req, ctrl) = Family::request("mptcp_pm");
        let mut family = Family::default();
        let outcome = match conn.transact(ctrl, &req).await {
            Ok(replies) => replies.iter().try_for_each(|r| family.add_reply(r.get())),
            Err(e) => Err(e),
        };
        Ok(AsyncPathManager {
            inner: Arc::new(Inner {
                conn,
                family: family.finish(outcome)?,
                probes: Probes::default(),
            }),
        })
    }

    /// The Generic Netlink id the kernel assigned to the `mptcp_pm` family.
    pub fn family_id(&self) -> u16 {
        self.inner.family.id
    }

    pub(super) fn probes(&self) -> &Probes {
        &self.inner.probes
    }

    /// The async driver: runs a command's requests in turn, each until its ACK or DONE
    /// (other tasks' requests go on meanwhile), handing the replies to the command.
    pub(super) async fn run<C: Command>(&self, mut cmd: C) -> Result<C::Output> {
        let family = &self.inner.family;
        while let Some(req) = cmd.next_request()? {
            let outcome = match self.inner.conn.transact(family.id, &req).await {
                Ok(replies) => replies.iter().try_for_each(|r| cmd.on_reply(r.get())),
                Err(e) => Err(classify(family, &req, e)),
            };
            cmd.on_done(outcome)?;
        }
        cmd.finish()
    }

    /// Subscribes to the path manager's events (needs CAP_NET_ADMIN): a tokio `Stream`
    /// (its items with [`EventStream::next`], or any `StreamExt`).
    #[doc(alias = "mptcp_pm_events")]
    pub fn events(&self) -> Result<EventStream> {
        super::subscribe(&self.inner.family)?.into_stream()
    }
}
