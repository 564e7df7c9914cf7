//! tokio versions of [`connect`](crate::connect), [`listen`](crate::listen) and
//! [`MptcpSocket`](crate::socket::MptcpSocket).
//!
//! The status, info and subflow functions of the crate take any `AsFd`, so they work on
//! tokio's sockets directly:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), mptcp::Error> {
//! let listener = mptcp::tokio::listen("127.0.0.1:0").await?;
//! let addr = listener.local_addr().expect("address");
//! let stream = mptcp::tokio::connect(addr).await?;
//! # #[cfg(any(target_os = "linux", target_os = "android"))]
//! println!("MPTCP: {}", mptcp::is_mptcp(&stream)?);
//! # Ok(()) }
//! ```

use crate::error::{Error, Result};
use crate::socket::{each_addr, each_addr_async, Core, Mode};
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};

/// An MPTCP socket that is not connected yet, in the shape of tokio's `TcpSocket`: set
/// options and bind, then [`connect`](Self::connect) (async) or [`listen`](Self::listen).
/// Its constructors, options and conversions are those of the blocking
/// [`MptcpSocket`](crate::MptcpSocket) (generated from one list); it converts into and
/// from that one, and into tokio's `TcpSocket`.
///
/// ```
/// use mptcp::{tokio::MptcpSocket, Mode};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mptcp::Error> {
/// let server = MptcpSocket::new_v4(Mode::Prefer)?;
/// server.set_reuseaddr(true)?;
/// server.bind("127.0.0.1:0".parse().expect("address"))?;
/// let listener = server.listen(16)?;
/// let addr = listener.local_addr().expect("address");
///
/// let client = MptcpSocket::for_addr(addr, Mode::Prefer)?;
/// client.set_nodelay(true)?;
/// let stream = client.connect(addr).await?;
/// assert!(stream.nodelay().expect("nodelay"));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MptcpSocket {
    /// Non-blocking from the start, as tokio's sockets are.
    core: Core,
}

crate::options::socket_api!(MptcpSocket);

fn os(op: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::os(op, e)
}

impl MptcpSocket {
    /// Made non-blocking; refused outside a tokio runtime (where `connect` and `listen`
    /// could not register it): [`Error::InvalidArgument`].
    fn from_core(core: Core) -> Result<Self> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::invalid(
                "create a tokio MPTCP socket",
                "not called from inside a tokio runtime",
            ));
        }
        core.socket
            .set_nonblocking(true)
            .map_err(os("fcntl(O_NONBLOCK)"))?;
        Ok(MptcpSocket { core })
    }

    /// Connects (one attempt).
    pub async fn connect(self, addr: SocketAddr) -> Result<TcpStream> {
        let std: std::net::TcpStream = self.core.socket.into();
        tokio::net::TcpSocket::from_std_stream(std)
            .connect(addr)
            .await
            .map_err(os("connect"))
    }

    /// Starts listening with the given backlog.
    pub fn listen(self, backlog: u32) -> Result<TcpListener> {
        let std: std::net::TcpStream = self.core.socket.into();
        tokio::net::TcpSocket::from_std_stream(std)
            .listen(backlog)
            .map_err(os("listen"))
    }
}

/// A socket made by the blocking builder, made non-blocking for tokio (inside a tokio
/// runtime only).
impl TryFrom<crate::socket::MptcpSocket> for MptcpSocket {
    type Error = Error;
    fn try_from(s: crate::socket::MptcpSocket) -> Result<Self> {
        Self::from_core(s.into_core_for_tokio())
    }
}

/// The blocking builder's form of the same socket (made blocking again).
impl TryFrom<MptcpSocket> for crate::socket::MptcpSocket {
    type Error = Error;
    fn try_from(s: MptcpSocket) -> Result<Self> {
        s.core
            .socket
            .set_nonblocking(false)
            .map_err(os("fcntl(O_NONBLOCK)"))?;
        Ok(crate::socket::MptcpSocket::from_core_for_tokio(s.core))
    }
}

/// tokio's own unconnected socket, for what only it offers.
impl From<MptcpSocket> for tokio::net::TcpSocket {
    fn from(s: MptcpSocket) -> Self {
        let std: std::net::TcpStream = s.core.socket.into();
        tokio::net::TcpSocket::from_std_stream(std)
    }
}

/// Connects over MPTCP ([`Mode::Prefer`]); one attempt per resolved address.
pub async fn connect(addr: impl ToSocketAddrs) -> Result<TcpStream> {
    connect_with(addr, Mode::Prefer).await
}

/// [`connect`] with an explicit [`Mode`].
pub async fn connect_with(addr: impl ToSocketAddrs, mode: Mode) -> Result<TcpStream> {
    each_addr_async(tokio::net::lookup_host(addr).await, |a| async move {
        Ok(MptcpSocket::for_addr(a, mode)?.connect(a).await)
    })
    .await
}

/// Listens on an MPTCP socket ([`Mode::Prefer`], backlog 1024, `SO_REUSEADDR`).
pub async fn listen(addr: impl ToSocketAddrs) -> Result<TcpListener> {
    listen_with(addr, Mode::Prefer).await
}

/// [`listen`] with an explicit [`Mode`].
pub async fn listen_with(addr: impl ToSocketAddrs, mode: Mode) -> Result<TcpListener> {
    let bound = each_addr(tokio::net::lookup_host(addr).await, |a| {
        let s = MptcpSocket::for_addr(a, mode)?;
        s.set_reuseaddr(true)?;
        Ok(s.bind(a).map(|()| s))
    })?;
    bound.listen(1024)
}
