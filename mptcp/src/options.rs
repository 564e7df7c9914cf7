//! The socket builders' shared surface, written once: the options every unconnected
//! socket takes, set and read on the one [`Core`] both builders hold, and the
//! [`socket_api!`] macro that gives [`MptcpSocket`](crate::MptcpSocket) and
//! [`tokio::MptcpSocket`](crate::tokio::MptcpSocket) the same constructors, setters,
//! getters and conversions, with the same documentation.
//!
//! No type of socket2 appears in these signatures: options this list lacks are set on
//! the borrowed descriptor (`AsFd`), e.g. with `socket2::SockRef::from(&sock)` of
//! whatever socket2 version the program uses.

use crate::error::{Error, Result};
use crate::fallback::Opt;
use crate::socket::Core;
use std::net::SocketAddr;
use std::time::Duration;

fn os(op: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::os(op, e)
}

/// The [`Opt`] of a setter: `opt!(TcpNodelay, "TCP_NODELAY")`.
macro_rules! opt {
    ($var:ident, $name:literal) => {
        Opt {
            op: concat!("setsockopt(", $name, ")"),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            opt: crate::sockopt::SockOpt::$var,
        }
    };
}

impl Core {
    pub(crate) fn set_nodelay(&self, on: bool) -> Result<()> {
        self.apply(opt!(TcpNodelay, "TCP_NODELAY"), move |s| {
            s.set_tcp_nodelay(on)
        })
    }
    pub(crate) fn nodelay(&self) -> Result<bool> {
        self.socket
            .tcp_nodelay()
            .map_err(os("getsockopt(TCP_NODELAY)"))
    }
    pub(crate) fn set_reuseaddr(&self, on: bool) -> Result<()> {
        self.apply(opt!(SoReuseaddr, "SO_REUSEADDR"), move |s| {
            s.set_reuse_address(on)
        })
    }
    pub(crate) fn reuseaddr(&self) -> Result<bool> {
        let r = self.socket.reuse_address();
        r.map_err(os("getsockopt(SO_REUSEADDR)"))
    }
    #[cfg(unix)]
    pub(crate) fn set_reuseport(&self, on: bool) -> Result<()> {
        self.apply(opt!(SoReuseport, "SO_REUSEPORT"), move |s| {
            s.set_reuse_port(on)
        })
    }
    #[cfg(unix)]
    pub(crate) fn reuseport(&self) -> Result<bool> {
        let r = self.socket.reuse_port();
        r.map_err(os("getsockopt(SO_REUSEPORT)"))
    }
    pub(crate) fn set_keepalive(&self, on: bool) -> Result<()> {
        self.apply(opt!(SoKeepalive, "SO_KEEPALIVE"), move |s| {
            s.set_keepalive(on)
        })
    }
    pub(crate) fn keepalive(&self) -> Result<bool> {
        let r = self.socket.keepalive();
        r.map_err(os("getsockopt(SO_KEEPALIVE)"))
    }
    pub(crate) fn set_send_buffer_size(&self, size: u32) -> Result<()> {
        let size = size as usize;
        self.apply(opt!(SoSndbuf, "SO_SNDBUF"), move |s| {
            s.set_send_buffer_size(size)
        })
    }
    pub(crate) fn send_buffer_size(&self) -> Result<u32> {
        let r = self.socket.send_buffer_size();
        r.map(saturate).map_err(os("getsockopt(SO_SNDBUF)"))
    }
    pub(crate) fn set_recv_buffer_size(&self, size: u32) -> Result<()> {
        let size = size as usize;
        self.apply(opt!(SoRcvbuf, "SO_RCVBUF"), move |s| {
            s.set_recv_buffer_size(size)
        })
    }
    pub(crate) fn recv_buffer_size(&self) -> Result<u32> {
        let r = self.socket.recv_buffer_size();
        r.map(saturate).map_err(os("getsockopt(SO_RCVBUF)"))
    }
    pub(crate) fn set_linger(&self, linger: Option<Duration>) -> Result<()> {
        self.apply(opt!(SoLinger, "SO_LINGER"), move |s| s.set_linger(linger))
    }
    pub(crate) fn linger(&self) -> Result<Option<Duration>> {
        let r = self.socket.linger();
        r.map_err(os("getsockopt(SO_LINGER)"))
    }
    pub(crate) fn set_tos(&self, tos: u32) -> Result<()> {
        self.apply(opt!(IpTos, "IP_TOS"), move |s| s.set_tos_v4(tos))
    }
    pub(crate) fn tos(&self) -> Result<u32> {
        let r = self.socket.tos_v4();
        r.map_err(os("getsockopt(IP_TOS)"))
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(crate) fn bind_device(&self, interface: Option<&[u8]>) -> Result<()> {
        let dev = interface.map(<[u8]>::to_vec);
        self.apply(opt!(SoBindtodevice, "SO_BINDTODEVICE"), move |s| {
            s.bind_device(dev.as_deref())
        })
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(crate) fn device(&self) -> Result<Option<Vec<u8>>> {
        let r = self.socket.device();
        r.map_err(os("getsockopt(SO_BINDTODEVICE)"))
    }
    pub(crate) fn bind(&self, addr: SocketAddr) -> Result<()> {
        let r = self.socket.bind(&addr.into());
        r.map_err(os("bind"))?;
        self.bound(addr);
        Ok(())
    }
    pub(crate) fn local_addr(&self) -> Result<SocketAddr> {
        let a = self.socket.local_addr().map_err(os("getsockname"))?;
        a.as_socket()
            .ok_or_else(|| Error::decode("getsockname", "not an IPv4 or IPv6 address"))
    }
    /// Sets any option [`SockOpt`](crate::sockopt::SockOpt) names.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(crate) fn set_option(
        &self,
        opt: crate::sockopt::SockOpt,
        value: &crate::sockopt::Value,
    ) -> Result<()> {
        use std::os::fd::AsFd;
        let bytes = value.encode(opt)?;
        let o = Opt {
            op: opt.set_op(),
            opt,
        };
        self.apply(o, move |s| {
            crate::sys::set_known_option(s.as_fd(), opt, &bytes)
        })
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(crate) fn option(&self, opt: crate::sockopt::SockOpt) -> Result<crate::sockopt::Value> {
        use std::os::fd::AsFd;
        crate::sockopt::get(self.socket.as_fd(), opt)
    }
    pub(crate) fn take_error(&self) -> Result<Option<std::io::Error>> {
        let r = self.socket.take_error();
        r.map_err(os("getsockopt(SO_ERROR)"))
    }
}

/// A buffer size the kernel reports, as the `u32` the setters take.
fn saturate(v: usize) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// The constructors, options and conversions of an unconnected socket type that holds a
/// [`Core`] in its field `core` and makes itself from one with `from_core()`.
macro_rules! socket_api {
    ($ty:ident) => {
        impl $ty {
            fn core(&self) -> &crate::socket::Core {
                &self.core
            }

            #[cfg_attr(not(unix), allow(dead_code))]
            fn into_core(self) -> crate::socket::Core {
                self.core
            }

            /// A socket of the family, MPTCP when possible under `mode` (see [`Mode`](crate::Mode)).
            pub fn new(domain: crate::Domain, mode: crate::Mode) -> crate::error::Result<Self> {
                crate::socket::Core::new(domain, mode).and_then(Self::from_core)
            }

            /// An IPv4 socket, MPTCP when possible under `mode`.
            pub fn new_v4(mode: crate::Mode) -> crate::error::Result<Self> {
                Self::new(crate::Domain::Ipv4, mode)
            }

            /// An IPv6 socket, MPTCP when possible under `mode`.
            pub fn new_v6(mode: crate::Mode) -> crate::error::Result<Self> {
                Self::new(crate::Domain::Ipv6, mode)
            }

            /// A socket of the family of `addr`.
            pub fn for_addr(
                addr: std::net::SocketAddr,
                mode: crate::Mode,
            ) -> crate::error::Result<Self> {
                Self::new(crate::Domain::of(&addr), mode)
            }

            /// True when the socket was created as MPTCP (whether a connection then
            /// uses MPTCP depends on the peer: see `mptcp::status` and
            /// `mptcp::is_mptcp`).
            #[doc(alias = "is_mptcp")]
            pub fn created_as_mptcp(&self) -> bool {
                self.core().unavailable().is_none()
            }

            /// Why the socket is plain TCP, when it is.
            pub fn unavailable(&self) -> Option<crate::Unavailable> {
                self.core().unavailable()
            }

            /// Sets any option [`SockOpt`](crate::sockopt::SockOpt) names, with a value
            /// of its [`kind`](crate::sockopt::SockOpt::kind). Under
            /// [`Mode::Prefer`](crate::Mode::Prefer), when MPTCP refuses the option and
            /// plain TCP takes it, the socket becomes plain TCP in the same descriptor
            /// (the options set through this builder and the bind carried over) and
            /// [`unavailable`](Self::unavailable) says
            /// [`Unavailable::OptionRefused`](crate::Unavailable::OptionRefused); under
            /// `Require` that is [`Error::OptionRefused`](crate::Error::OptionRefused).
            /// Every setter of this builder does the same.
            #[cfg(any(target_os = "linux", target_os = "android"))]
            #[doc(alias = "setsockopt")]
            pub fn set_option(
                &self,
                opt: crate::sockopt::SockOpt,
                value: &crate::sockopt::Value,
            ) -> crate::error::Result<()> {
                self.core().set_option(opt, value)
            }

            /// Reads any option [`SockOpt`](crate::sockopt::SockOpt) names (the kernel
            /// cannot read back `TCP_MD5SIG`).
            #[cfg(any(target_os = "linux", target_os = "android"))]
            #[doc(alias = "getsockopt")]
            pub fn option(
                &self,
                opt: crate::sockopt::SockOpt,
            ) -> crate::error::Result<crate::sockopt::Value> {
                self.core().option(opt)
            }

            /// Sets `TCP_USER_TIMEOUT`: how long sent data may stay unacknowledged
            /// before the connection is dropped (`None`: the system's default). MPTCP
            /// sockets refuse it on some kernels; see [`set_option`](Self::set_option)
            /// for what the builder then does.
            #[cfg(any(target_os = "linux", target_os = "android"))]
            #[doc(alias = "TCP_USER_TIMEOUT")]
            pub fn set_user_timeout(
                &self,
                timeout: Option<std::time::Duration>,
            ) -> crate::error::Result<()> {
                let ms = timeout.map_or(0, |d| i32::try_from(d.as_millis()).unwrap_or(i32::MAX));
                self.set_option(
                    crate::sockopt::SockOpt::TcpUserTimeout,
                    &crate::sockopt::Value::Int(ms),
                )
            }

            /// `TCP_USER_TIMEOUT` (`None`: the system's default).
            #[cfg(any(target_os = "linux", target_os = "android"))]
            pub fn user_timeout(&self) -> crate::error::Result<Option<std::time::Duration>> {
                match self.option(crate::sockopt::SockOpt::TcpUserTimeout)? {
                    crate::sockopt::Value::Int(ms) if ms > 0 => {
                        Ok(Some(std::time::Duration::from_millis(ms as u64)))
                    }
                    _ => Ok(None),
                }
            }

            /// Sets `TCP_NODELAY` (on MPTCP, every subflow's).
            #[doc(alias = "TCP_NODELAY")]
            pub fn set_nodelay(&self, on: bool) -> crate::error::Result<()> {
                self.core().set_nodelay(on)
            }

            /// `TCP_NODELAY`.
            pub fn nodelay(&self) -> crate::error::Result<bool> {
                self.core().nodelay()
            }

            /// Sets `SO_REUSEADDR`.
            #[doc(alias = "SO_REUSEADDR")]
            pub fn set_reuseaddr(&self, on: bool) -> crate::error::Result<()> {
                self.core().set_reuseaddr(on)
            }

            /// `SO_REUSEADDR`.
            pub fn reuseaddr(&self) -> crate::error::Result<bool> {
                self.core().reuseaddr()
            }

            /// Sets `SO_REUSEPORT`.
            #[cfg(unix)]
            #[doc(alias = "SO_REUSEPORT")]
            pub fn set_reuseport(&self, on: bool) -> crate::error::Result<()> {
                self.core().set_reuseport(on)
            }

            /// `SO_REUSEPORT`.
            #[cfg(unix)]
            pub fn reuseport(&self) -> crate::error::Result<bool> {
                self.core().reuseport()
            }

            /// Sets `SO_KEEPALIVE` (on MPTCP, every subflow's).
            #[doc(alias = "SO_KEEPALIVE")]
            pub fn set_keepalive(&self, on: bool) -> crate::error::Result<()> {
                self.core().set_keepalive(on)
            }

            /// `SO_KEEPALIVE`.
            pub fn keepalive(&self) -> crate::error::Result<bool> {
                self.core().keepalive()
            }

            /// Sets `SO_SNDBUF` (the kernel doubles it for its bookkeeping).
            #[doc(alias = "SO_SNDBUF")]
            pub fn set_send_buffer_size(&self, size: u32) -> crate::error::Result<()> {
                self.core().set_send_buffer_size(size)
            }

            /// `SO_SNDBUF`, as the kernel reports it.
            pub fn send_buffer_size(&self) -> crate::error::Result<u32> {
                self.core().send_buffer_size()
            }

            /// Sets `SO_RCVBUF` (the kernel doubles it for its bookkeeping).
            #[doc(alias = "SO_RCVBUF")]
            pub fn set_recv_buffer_size(&self, size: u32) -> crate::error::Result<()> {
                self.core().set_recv_buffer_size(size)
            }

            /// `SO_RCVBUF`, as the kernel reports it.
            pub fn recv_buffer_size(&self) -> crate::error::Result<u32> {
                self.core().recv_buffer_size()
            }

            /// Sets `SO_LINGER`.
            #[doc(alias = "SO_LINGER")]
            pub fn set_linger(
                &self,
                linger: Option<std::time::Duration>,
            ) -> crate::error::Result<()> {
                self.core().set_linger(linger)
            }

            /// `SO_LINGER`.
            pub fn linger(&self) -> crate::error::Result<Option<std::time::Duration>> {
                self.core().linger()
            }

            /// Sets `IP_TOS` (IPv4 sockets).
            #[doc(alias = "IP_TOS")]
            pub fn set_tos(&self, tos: u32) -> crate::error::Result<()> {
                self.core().set_tos(tos)
            }

            /// `IP_TOS` (IPv4 sockets).
            pub fn tos(&self) -> crate::error::Result<u32> {
                self.core().tos()
            }

            /// Binds to a network device (`SO_BINDTODEVICE`), e.g. `b"eth1"`; `None`
            /// unbinds. On MPTCP this binds the initial subflow; the path manager
            /// chooses the others' devices.
            #[cfg(any(target_os = "linux", target_os = "android"))]
            #[doc(alias = "SO_BINDTODEVICE")]
            pub fn bind_device(&self, interface: Option<&[u8]>) -> crate::error::Result<()> {
                self.core().bind_device(interface)
            }

            /// The device the socket is bound to (`SO_BINDTODEVICE`).
            #[cfg(any(target_os = "linux", target_os = "android"))]
            pub fn device(&self) -> crate::error::Result<Option<Vec<u8>>> {
                self.core().device()
            }

            /// Binds to a local address.
            pub fn bind(&self, addr: std::net::SocketAddr) -> crate::error::Result<()> {
                self.core().bind(addr)
            }

            /// The local address (after `bind`).
            pub fn local_addr(&self) -> crate::error::Result<std::net::SocketAddr> {
                self.core().local_addr()
            }

            /// The pending socket error (`SO_ERROR`), cleared by reading it.
            pub fn take_error(&self) -> crate::error::Result<Option<std::io::Error>> {
                self.core().take_error()
            }
        }

        #[cfg(unix)]
        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(&self.core().socket)
            }
        }

        #[cfg(unix)]
        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                std::os::fd::AsRawFd::as_raw_fd(&self.core().socket)
            }
        }

        #[cfg(windows)]
        impl std::os::windows::io::AsSocket for $ty {
            fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
                std::os::windows::io::AsSocket::as_socket(&self.core().socket)
            }
        }

        /// The descriptor, still unconnected.
        #[cfg(unix)]
        impl From<$ty> for std::os::fd::OwnedFd {
            fn from(s: $ty) -> Self {
                s.into_core().socket.into()
            }
        }

        /// Adopts a socket created elsewhere (an IPv4 or IPv6 stream socket): MPTCP
        /// when it was created with `IPPROTO_MPTCP`, else plain TCP with
        /// [`Unavailable::CreatedAsTcp`](crate::Unavailable::CreatedAsTcp). Any other
        /// descriptor is [`Error::NotMptcp`](crate::Error::NotMptcp).
        #[cfg(unix)]
        impl TryFrom<std::os::fd::OwnedFd> for $ty {
            type Error = crate::Error;
            fn try_from(fd: std::os::fd::OwnedFd) -> crate::error::Result<Self> {
                crate::socket::Core::adopt(fd.into()).and_then(Self::from_core)
            }
        }
    };
}

pub(crate) use socket_api;
