//! The socket-diagnostics client for async code (feature `tokio`).

use super::{on_datagram, DiagConnection, DiagRequest, Filter, Listing};
use crate::error::{Error, Result};
use crate::netlink::recv;
use crate::token::Token;
use crate::wire::netlink::RECV_BUF;
use netlink_sys::Socket;
use tokio::io::unix::AsyncFd;

/// [`Diag`](super::Diag) for async code (feature `tokio`): the same listings as futures
/// on tokio's reactor; nothing blocks a runtime thread. One listing runs at a time per
/// client (the kernel runs one dump per socket); open more clients for parallel ones.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mptcp::Result<()> {
/// let diag = mptcp::diag::AsyncDiag::new().await?;
/// # match diag.connections(&mptcp::diag::Filter::new()).await {
/// #   Err(mptcp::Error::MissingModule { .. }) => return Ok(()), // no mptcp_diag here
/// #   r => { r?; }
/// # }
/// for c in diag.connections(&mptcp::diag::Filter::new()).await? {
///     println!("{:?} {} -> {}", c.token, c.local, c.remote);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AsyncDiag {
    inner: tokio::sync::Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    fd: AsyncFd<Socket>,
    seq: u32,
    buf: Vec<u8>,
}

impl AsyncDiag {
    /// Opens a non-blocking `NETLINK_SOCK_DIAG` socket on the current tokio runtime
    /// (outside one: [`Error::InvalidArgument`]). `async`, as
    /// [`AsyncPathManager::new`](crate::pm::AsyncPathManager::new) is, although
    /// nothing here waits.
    pub async fn new() -> Result<AsyncDiag> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::invalid(
                "open an async sock_diag client",
                "not called from inside a tokio runtime",
            ));
        }
        let sock = super::open_socket()?;
        sock.set_non_blocking(true)
            .map_err(|e| Error::os("fcntl(O_NONBLOCK)", e))?;
        let fd =
            crate::sys::register_netlink(sock).map_err(|e| Error::os("register with tokio", e))?;
        Ok(AsyncDiag {
            inner: tokio::sync::Mutex::new(Inner {
                fd,
                seq: 0,
                buf: Vec::with_capacity(RECV_BUF),
            }),
        })
    }

    /// [`Diag::connections`](super::Diag::connections).
    #[doc(alias = "mptcp_diag")]
    pub async fn connections(&self, filter: &Filter) -> Result<Vec<DiagConnection>> {
        let mut inner = self.inner.lock().await;
        let mut l = Listing::new(filter);
        while let Some(req) = l.next_request() {
            let r = inner.transact(&req, |p| l.on_reply(p)).await;
            l.on_done(r)?;
        }
        Ok(l.finish().0)
    }

    /// [`Diag::connection_by_token`](super::Diag::connection_by_token).
    pub async fn connection_by_token(&self, token: Token) -> Result<DiagConnection> {
        self.connections(&Filter::new().token(token))
            .await?
            .pop()
            .ok_or(Error::NoSuchConnection(token))
    }
}

impl Inner {
    async fn transact(
        &mut self,
        req: &DiagRequest,
        mut each: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let (seq, bytes) = super::serialize_next(&mut self.seq, req);
        loop {
            let mut guard = self
                .fd
                .writable()
                .await
                .map_err(|e| Error::os("send sock_diag request", e))?;
            match guard.try_io(|s| s.get_ref().send(&bytes, 0)) {
                Ok(r) => {
                    r.map_err(|e| Error::os("send sock_diag request", e))?;
                    break;
                }
                Err(_would_block) => continue,
            }
        }
        loop {
            let mut guard = self
                .fd
                .readable()
                .await
                .map_err(|e| Error::os("receive sock_diag reply", e))?;
            let buf = &mut self.buf;
            match guard.try_io(|s| recv(s.get_ref(), buf)) {
                Ok(r) => {
                    r.map_err(|e| Error::os("receive sock_diag reply", e))?;
                }
                Err(_would_block) => continue,
            }
            if on_datagram(&self.buf, seq, req, &mut each)? {
                return Ok(());
            }
        }
    }
}
