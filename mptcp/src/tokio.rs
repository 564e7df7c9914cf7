//! tokio versions of [`connect`](crate::connect) and [`listen`](crate::listen).
//!
//! The status, info and subflow functions of the crate take any `AsFd`, so they work on
//! tokio's sockets directly:
//!
//! ```no_run
//! # async fn f() -> Result<(), mptcp::Error> {
//! let stream = mptcp::tokio::connect("192.0.2.1:8080").await?;
//! println!("MPTCP: {}", mptcp::is_mptcp(&stream)?);
//! # Ok(()) }
//! ```

use crate::error::{Error, Result};
use crate::socket::{no_address, Mode, MptcpSocket};
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpSocket, TcpStream, ToSocketAddrs};

/// Connects over MPTCP ([`Mode::Prefer`]); one attempt per resolved address.
pub async fn connect(addr: impl ToSocketAddrs) -> Result<TcpStream> {
    connect_with(addr, Mode::Prefer).await
}

/// Converts an unconnected socket into tokio's, non-blocking.
fn tokio_socket(s: MptcpSocket) -> Result<TcpSocket> {
    s.set_nonblocking(true)?;
    let std: std::net::TcpStream = s.into_socket().into();
    Ok(TcpSocket::from_std_stream(std))
}

async fn resolve(addr: impl ToSocketAddrs) -> Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| Error::os("resolve", e))?
        .collect();
    if addrs.is_empty() {
        return Err(no_address());
    }
    Ok(addrs)
}

/// [`connect`] with an explicit [`Mode`].
pub async fn connect_with(addr: impl ToSocketAddrs, mode: Mode) -> Result<TcpStream> {
    let mut last = None;
    for a in resolve(addr).await? {
        let s = tokio_socket(MptcpSocket::for_addr(&a, mode)?)?;
        match s.connect(a).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(Error::os("connect", e)),
        }
    }
    Err(last.unwrap_or_else(no_address))
}

/// Listens on an MPTCP socket ([`Mode::Prefer`], backlog 1024, `SO_REUSEADDR`).
pub async fn listen(addr: impl ToSocketAddrs) -> Result<TcpListener> {
    listen_with(addr, Mode::Prefer).await
}

/// [`listen`] with an explicit [`Mode`].
pub async fn listen_with(addr: impl ToSocketAddrs, mode: Mode) -> Result<TcpListener> {
    let mut last = None;
    for a in resolve(addr).await? {
        let s = MptcpSocket::for_addr(&a, mode)?;
        s.set_reuse_address(true)?;
        if let Err(e) = s.bind(&a) {
            last = Some(e);
            continue;
        }
        let l = s.listen(1024)?;
        l.set_nonblocking(true)
            .map_err(|e| Error::os("fcntl(O_NONBLOCK)", e))?;
        return TcpListener::from_std(l).map_err(|e| Error::os("register with tokio", e));
    }
    Err(last.unwrap_or_else(no_address))
}
