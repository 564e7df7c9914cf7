//! The path manager for async code (feature `tokio`).

use super::async_netlink::{AsyncConn, OwnedReply};
use super::connection::NO_TOKEN_DUMP;
use super::endpoint::{added_id, check_endpoint_addr, endpoints_in, limits_in};
use super::netlink::{Family, Request};
use super::{classify, Endpoint, EndpointFlags, Events, Limits};
use crate::error::Result;
use crate::token::Token;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// The path-manager client for async code (feature `tokio`): the requests of
/// [`PathManager`](super::PathManager) as `Send` futures on tokio's reactor.
///
/// It is cheap to clone, its methods take `&self`, and requests from many tasks run
/// concurrently on one netlink socket, each reply matched to its request by sequence
/// number. Nothing blocks a runtime thread. Events are a separate subscription:
/// [`events`](Self::events).
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
    /// Whether GET_ADDR honours a token: 0 unknown, 1 yes, 2 no.
    token_dump: AtomicU8,
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
                token_dump: AtomicU8::new(0),
            }),
        })
    }

    /// The Generic Netlink id the kernel assigned to the `mptcp_pm` family.
    pub fn family_id(&self) -> u16 {
        self.inner.family.id
    }

    async fn run(&self, req: Request) -> Result<Vec<OwnedReply>> {
        let family = &self.inner.family;
        self.inner
            .conn
            .transact(family.id, &req)
            .await
            .map_err(|e| classify(family, &req, e))
    }

    async fn exec(&self, req: Request) -> Result<()> {
        self.run(req).await.map(drop)
    }

    async fn endpoints_of(&self, req: Request) -> Result<Vec<Endpoint>> {
        let mut out = Vec::new();
        for r in self.run(req).await? {
            endpoints_in(r.get(), &mut out)?;
        }
        Ok(out)
    }

    /// [`PathManager::add_endpoint`](super::PathManager::add_endpoint).
    #[doc(alias = "MPTCP_PM_CMD_ADD_ADDR")]
    pub async fn add_endpoint(&self, ep: &Endpoint) -> Result<u8> {
        self.exec(Request::add_endpoint(ep)).await?;
        if ep.id != 0 {
            return Ok(ep.id);
        }
        added_id(ep, &self.endpoints().await?)
    }

    /// [`PathManager::delete_endpoint`](super::PathManager::delete_endpoint).
    #[doc(alias = "MPTCP_PM_CMD_DEL_ADDR")]
    pub async fn delete_endpoint(&self, id: u8) -> Result<()> {
        self.exec(Request::delete_endpoint(id)?).await
    }

    /// [`PathManager::delete_endpoint_addr`](super::PathManager::delete_endpoint_addr).
    #[doc(alias = "MPTCP_PM_CMD_DEL_ADDR")]
    pub async fn delete_endpoint_addr(&self, id: u8, addr: IpAddr) -> Result<()> {
        if id != 0 {
            check_endpoint_addr(id, &self.endpoint(id).await?, addr)?;
        }
        self.exec(Request::delete_endpoint_addr(id, addr)).await
    }

    /// [`PathManager::endpoint`](super::PathManager::endpoint).
    #[doc(alias = "MPTCP_PM_CMD_GET_ADDR")]
    pub async fn endpoint(&self, id: u8) -> Result<Endpoint> {
        self.endpoints_of(Request::get_endpoint(id))
            .await?
            .pop()
            .ok_or_else(|| super::endpoint::bad("no endpoint in the reply"))
    }

    /// [`PathManager::endpoints`](super::PathManager::endpoints).
    #[doc(alias = "MPTCP_PM_CMD_GET_ADDR")]
    pub async fn endpoints(&self) -> Result<Vec<Endpoint>> {
        self.endpoints_of(Request::dump_endpoints()).await
    }

    /// [`PathManager::flush_endpoints`](super::PathManager::flush_endpoints).
    #[doc(alias = "MPTCP_PM_CMD_FLUSH_ADDRS")]
    pub async fn flush_endpoints(&self) -> Result<()> {
        self.exec(Request::flush_endpoints()).await
    }

    /// [`PathManager::set_endpoint_flags`](super::PathManager::set_endpoint_flags).
    #[doc(alias = "MPTCP_PM_CMD_SET_FLAGS")]
    pub async fn set_endpoint_flags(&self, id: u8, flags: EndpointFlags) -> Result<()> {
        self.exec(Request::set_endpoint_flags(id, flags)).await
    }

    /// [`PathManager::limits`](super::PathManager::limits).
    #[doc(alias = "MPTCP_PM_CMD_GET_LIMITS")]
    pub async fn limits(&self) -> Result<Limits> {
        let mut l = Limits::default();
        for r in self.run(Request::get_limits()).await? {
            limits_in(r.get(), &mut l)?;
        }
        Ok(l)
    }

    /// [`PathManager::set_limits`](super::PathManager::set_limits).
    #[doc(alias = "MPTCP_PM_CMD_SET_LIMITS")]
    pub async fn set_limits(&self, limits: Limits) -> Result<()> {
        self.exec(Request::set_limits(limits)).await
    }

    /// [`PathManager::announce_address`](super::PathManager::announce_address).
    #[doc(alias = "MPTCP_PM_CMD_ANNOUNCE")]
    pub async fn announce_address(&self, token: Token, id: u8, addr: SocketAddr) -> Result<()> {
        self.exec(Request::announce_address(token, id, addr)).await
    }

    /// [`PathManager::remove_address`](super::PathManager::remove_address).
    #[doc(alias = "MPTCP_PM_CMD_REMOVE")]
    pub async fn remove_address(&self, token: Token, id: u8) -> Result<()> {
        self.exec(Request::remove_address(token, id)).await
    }

    /// [`PathManager::create_subflow`](super::PathManager::create_subflow).
    #[doc(alias = "MPTCP_PM_CMD_SUBFLOW_CREATE")]
    pub async fn create_subflow(
        &self,
        token: Token,
        local_id: u8,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<()> {
        self.exec(Request::create_subflow(token, local_id, local, remote))
            .await
    }

    /// [`PathManager::destroy_subflow`](super::PathManager::destroy_subflow).
    #[doc(alias = "MPTCP_PM_CMD_SUBFLOW_DESTROY")]
    pub async fn destroy_subflow(
        &self,
        token: Token,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<()> {
        self.exec(Request::destroy_subflow(token, local, remote))
            .await
    }

    /// [`PathManager::set_subflow_backup`](super::PathManager::set_subflow_backup).
    #[doc(alias = "MPTCP_PM_CMD_SET_FLAGS")]
    pub async fn set_subflow_backup(
        &self,
        token: Token,
        local: SocketAddr,
        remote: SocketAddr,
        backup: bool,
    ) -> Result<()> {
        self.exec(Request::set_subflow_backup(token, local, remote, backup))
            .await
    }

    /// [`PathManager::announced_addresses`](super::PathManager::announced_addresses).
    #[doc(alias = "MPTCP_PM_CMD_GET_ADDR")]
    pub async fn announced_addresses(&self, token: Token) -> Result<Vec<Endpoint>> {
        let known = self.inner.token_dump.load(Ordering::Relaxed);
        let honoured = match known {
            1 => true,
            2 => false,
            _ => {
                let probe = self.exec(Request::dump_announced(Token::new(0))).await;
                let honoured = probe.is_err();
                self.inner
                    .token_dump
                    .store(if honoured { 1 } else { 2 }, Ordering::Relaxed);
                honoured
            }
        };
        if !honoured {
            return Err(NO_TOKEN_DUMP);
        }
        self.endpoints_of(Request::dump_announced(token)).await
    }

    /// Subscribes to the path manager's events (needs CAP_NET_ADMIN); turn them into a
    /// stream with [`Events::into_stream`].
    #[doc(alias = "mptcp_pm_events")]
    pub fn events(&self) -> Result<Events> {
        super::subscribe(&self.inner.family)
    }
}
