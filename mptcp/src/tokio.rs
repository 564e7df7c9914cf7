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

use crate::error::{Error, Result, Unavailable};
use crate::socket::{each_addr, each_addr_async, Mode};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};

/// An MPTCP socket that is not connected yet, in the shape of tokio's `TcpSocket`: set
/// options and bind, then [`connect`](Self::connect) (async) or [`listen`](Self::listen).
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
/// let client = MptcpSocket::new_v4(Mode::Prefer)?;
/// client.set_nodelay(true)?;
/// let stream = client.connect(addr).await?;
/// assert!(stream.nodelay().expect("nodelay"));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MptcpSocket {
    socket: tokio::net::TcpSocket,
    unavailable: Option<Unavailable>,
}

fn os(op: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::os(op, e)
}

impl MptcpSocket {
    /// An IPv4 socket: MPTCP when possible under `mode`.
    pub fn new_v4(mode: Mode) -> Result<Self> {
        crate::socket::MptcpSocket::new(socket2::Domain::IPV4, mode).and_then(Self::try_from)
    }

    /// An IPv6 socket: MPTCP when possible under `mode`.
    pub fn new_v6(mode: Mode) -> Result<Self> {
        crate::socket::MptcpSocket::new(socket2::Domain::IPV6, mode).and_then(Self::try_from)
    }

    /// A socket of the family of `addr`.
    pub fn for_addr(addr: &SocketAddr, mode: Mode) -> Result<Self> {
        crate::socket::MptcpSocket::for_addr(addr, mode).and_then(Self::try_from)
    }

    /// True when the socket was created as MPTCP (whether a connection then uses MPTCP
    /// depends on the peer: see [`crate::status`] and [`crate::is_mptcp`]).
    #[doc(alias = "is_mptcp")]
    pub fn created_as_mptcp(&self) -> bool {
        self.unavailable.is_none()
    }

    /// Why the socket is plain TCP, when it is.
    pub fn unavailable(&self) -> Option<Unavailable> {
        self.unavailable
    }

    /// Sets `TCP_NODELAY` (on MPTCP, every subflow).
    pub fn set_nodelay(&self, on: bool) -> Result<()> {
        self.socket
            .set_nodelay(on)
            .map_err(os("setsockopt(TCP_NODELAY)"))
    }

    /// Sets `SO_REUSEADDR`.
    pub fn set_reuseaddr(&self, on: bool) -> Result<()> {
        self.socket
            .set_reuseaddr(on)
            .map_err(os("setsockopt(SO_REUSEADDR)"))
    }

    /// Sets `SO_REUSEPORT`.
    #[cfg(unix)]
    pub fn set_reuseport(&self, on: bool) -> Result<()> {
        self.socket
            .set_reuseport(on)
            .map_err(os("setsockopt(SO_REUSEPORT)"))
    }

    /// Sets `SO_KEEPALIVE` (on MPTCP, every subflow).
    pub fn set_keepalive(&self, on: bool) -> Result<()> {
        self.socket
            .set_keepalive(on)
            .map_err(os("setsockopt(SO_KEEPALIVE)"))
    }

    /// Sets `SO_SNDBUF`.
    pub fn set_send_buffer_size(&self, size: u32) -> Result<()> {
        self.socket
            .set_send_buffer_size(size)
            .map_err(os("setsockopt(SO_SNDBUF)"))
    }

    /// Sets `SO_RCVBUF`.
    pub fn set_recv_buffer_size(&self, size: u32) -> Result<()> {
        self.socket
            .set_recv_buffer_size(size)
            .map_err(os("setsockopt(SO_RCVBUF)"))
    }

    /// Sets `SO_LINGER`.
    pub fn set_linger(&self, linger: Option<Duration>) -> Result<()> {
        #[allow(deprecated)] // tokio warns about blocking close; the choice is the caller's
        self.socket
            .set_linger(linger)
            .map_err(os("setsockopt(SO_LINGER)"))
    }

    /// Binds to a network device (`SO_BINDTODEVICE`), e.g. `b"eth1"`; `None` unbinds.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn bind_device(&self, interface: Option<&[u8]>) -> Result<()> {
        self.socket
            .bind_device(interface)
            .map_err(os("setsockopt(SO_BINDTODEVICE)"))
    }

    /// Binds to a local address.
    pub fn bind(&self, addr: SocketAddr) -> Result<()> {
        self.socket.bind(addr).map_err(os("bind"))
    }

    /// The local address (after `bind`).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.socket.local_addr().map_err(os("getsockname"))
    }

    /// Connects (one attempt).
    pub async fn connect(self, addr: SocketAddr) -> Result<TcpStream> {
        self.socket.connect(addr).await.map_err(os("connect"))
    }

    /// Starts listening.
    pub fn listen(self, backlog: u32) -> Result<TcpListener> {
        self.socket.listen(backlog).map_err(os("listen"))
    }
}

/// A socket made by the blocking builder, registered with tokio as non-blocking.
impl TryFrom<crate::socket::MptcpSocket> for MptcpSocket {
    type Error = Error;
    fn try_from(s: crate::socket::MptcpSocket) -> Result<Self> {
        let unavailable = s.unavailable();
        let socket = s.into_socket();
        socket
            .set_nonblocking(true)
            .map_err(os("fcntl(O_NONBLOCK)"))?;
        let std: std::net::TcpStream = socket.into();
        Ok(MptcpSocket {
            socket: tokio::net::TcpSocket::from_std_stream(std),
            unavailable,
        })
    }
}

#[cfg(unix)]
impl std::os::fd::AsFd for MptcpSocket {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

#[cfg(unix)]
impl std::os::fd::AsRawFd for MptcpSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.socket.as_raw_fd()
    }
}

/// Connects over MPTCP ([`Mode::Prefer`]); one attempt per resolved address.
pub async fn connect(addr: impl ToSocketAddrs) -> Result<TcpStream> {
    connect_with(addr, Mode::Prefer).await
}

/// [`connect`] with an explicit [`Mode`].
pub async fn connect_with(addr: impl ToSocketAddrs, mode: Mode) -> Result<TcpStream> {
    each_addr_async(tokio::net::lookup_host(addr).await, |a| async move {
        Ok(MptcpSocket::for_addr(&a, mode)?.connect(a).await)
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
        let s = MptcpSocket::for_addr(&a, mode)?;
        s.set_reuseaddr(true)?;
        Ok(s.bind(a).map(|()| s))
    })?;
    bound.listen(1024)
}
