//! The socket options programs commonly set, and whether this kernel's MPTCP sockets
//! take them: asked of the running kernel once per process ([`support`]), never read
//! from a table. The socket builders use the same knowledge to fall back to plain TCP
//! under [`Mode::Prefer`](crate::Mode::Prefer) when MPTCP refuses an option.

use crate::error::{Error, Result};
use crate::sys;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::OnceLock;

/// `TCP_TX_DELAY` (Linux 5.3), which the `libc` crate does not name.
const TCP_TX_DELAY: i32 = 37;

/// The protocol level of an option (`setsockopt`'s second argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// `SOL_SOCKET`.
    Socket,
    /// `SOL_TCP` (`IPPROTO_TCP`), which MPTCP sockets answer too.
    Tcp,
    /// `SOL_IP` (`IPPROTO_IP`): IPv4 sockets.
    Ip,
    /// `SOL_IPV6` (`IPPROTO_IPV6`): IPv6 sockets.
    Ipv6,
}

impl Level {
    fn raw(self) -> i32 {
        match self {
            Level::Socket => libc::SOL_SOCKET,
            Level::Tcp => libc::IPPROTO_TCP,
            Level::Ip => libc::IPPROTO_IP,
            Level::Ipv6 => libc::IPPROTO_IPV6,
        }
    }
}

/// What an option's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueKind {
    /// One C `int`.
    Int,
    /// A name: a device (`SO_BINDTODEVICE`), a congestion control (`TCP_CONGESTION`), an
    /// upper-layer protocol (`TCP_ULP`).
    Name,
    /// `struct linger`.
    Linger,
    /// `struct tcp_md5sig`: a peer address and a key.
    Md5Sig,
}

macro_rules! sockopts {
    ($($var:ident = $level:ident $name:ident $sample:expr;)*) => {
        /// A socket option that programs commonly set on TCP sockets.
        ///
        /// ```
        /// use mptcp::sockopt::SockOpt;
        /// assert_eq!(SockOpt::TcpUserTimeout.name(), "TCP_USER_TIMEOUT");
        /// assert_eq!("tcp_user_timeout".parse::<SockOpt>().unwrap(), SockOpt::TcpUserTimeout);
        /// assert!("TCP_NO_SUCH".parse::<SockOpt>().is_err());
        /// assert!(SockOpt::ALL.contains(&SockOpt::IpTtl));
        /// ```
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        #[allow(missing_docs)] // each is its C name, given by `name()`
        pub enum SockOpt {
            $($var,)*
        }

        impl SockOpt {
            /// Every option this crate knows, in the order of its tables.
            pub const ALL: &'static [SockOpt] = &[$(SockOpt::$var),*];

            /// The C name, e.g. `"TCP_USER_TIMEOUT"`.
            pub fn name(self) -> &'static str {
                match self { $(SockOpt::$var => stringify!($name),)* }
            }

            /// The protocol level.
            pub fn level(self) -> Level {
                match self { $(SockOpt::$var => Level::$level,)* }
            }


            /// `(level, optname)` as the kernel numbers them on this target.
            pub fn raw(self) -> (i32, i32) {
                match self { $(SockOpt::$var => (Level::$level.raw(), $name),)* }
            }

            /// `"setsockopt(NAME)"`, for error messages.
            pub(crate) fn set_op(self) -> &'static str {
                match self { $(SockOpt::$var => concat!("setsockopt(", stringify!($name), ")"),)* }
            }

            /// `"getsockopt(NAME)"`, for error messages.
            pub(crate) fn get_op(self) -> &'static str {
                match self { $(SockOpt::$var => concat!("getsockopt(", stringify!($name), ")"),)* }
            }

            /// A value plain TCP takes, to ask the kernel with.
            fn sample(self) -> Sample {
                match self { $(SockOpt::$var => $sample,)* }
            }
        }
    };
}

/// Numbers the `libc` crate does not name for Android: every Android ABI (arm, arm64,
/// x86, x86_64) uses the kernel's generic `asm/socket.h` numbers.
#[cfg(target_os = "android")]
mod android {
    pub(super) const SO_MAX_PACING_RATE: i32 = 47;
    pub(super) const SO_INCOMING_CPU: i32 = 49;
    pub(super) const SO_ZEROCOPY: i32 = 60;
}
#[cfg(target_os = "android")]
use android::{SO_INCOMING_CPU, SO_MAX_PACING_RATE, SO_ZEROCOPY};
#[cfg(not(target_os = "android"))]
use libc::{SO_INCOMING_CPU, SO_MAX_PACING_RATE, SO_ZEROCOPY};

use libc::{
    IPV6_RECVERR, IPV6_TCLASS, IPV6_UNICAST_HOPS, IPV6_V6ONLY, IP_BIND_ADDRESS_NO_PORT,
    IP_FREEBIND, IP_MTU_DISCOVER, IP_RECVERR, IP_TOS, IP_TRANSPARENT, IP_TTL, SO_BINDTODEVICE,
    SO_BUSY_POLL, SO_KEEPALIVE, SO_LINGER, SO_MARK, SO_PRIORITY, SO_RCVBUF, SO_RCVLOWAT,
    SO_REUSEADDR, SO_REUSEPORT, SO_SNDBUF, SO_TIMESTAMP, SO_TIMESTAMPING, SO_TIMESTAMPNS,
    TCP_CONGESTION, TCP_CORK, TCP_DEFER_ACCEPT, TCP_FASTOPEN, TCP_FASTOPEN_CONNECT, TCP_INQ,
    TCP_KEEPCNT, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_LINGER2, TCP_MAXSEG, TCP_MD5SIG, TCP_NODELAY,
    TCP_NOTSENT_LOWAT, TCP_QUICKACK, TCP_SYNCNT, TCP_ULP, TCP_USER_TIMEOUT, TCP_WINDOW_CLAMP,
};

/// A value to ask the kernel with.
enum Sample {
    Int(i32),
    Name(&'static [u8]),
    Linger,
    Md5Sig,
}
use Sample::{Int, Linger, Md5Sig, Name};

sockopts! {
    SoKeepalive = Socket SO_KEEPALIVE Int(1);
    SoReuseaddr = Socket SO_REUSEADDR Int(1);
    SoReuseport = Socket SO_REUSEPORT Int(1);
    SoSndbuf = Socket SO_SNDBUF Int(1 << 16);
    SoRcvbuf = Socket SO_RCVBUF Int(1 << 16);
    SoLinger = Socket SO_LINGER Linger;
    SoBindtodevice = Socket SO_BINDTODEVICE Name(b"lo");
    SoMark = Socket SO_MARK Int(1);
    SoPriority = Socket SO_PRIORITY Int(1);
    SoRcvlowat = Socket SO_RCVLOWAT Int(1);
    SoTimestamp = Socket SO_TIMESTAMP Int(1);
    SoTimestampns = Socket SO_TIMESTAMPNS Int(1);
    SoTimestamping = Socket SO_TIMESTAMPING Int(1);
    SoMaxPacingRate = Socket SO_MAX_PACING_RATE Int(1 << 20);
    SoBusyPoll = Socket SO_BUSY_POLL Int(10);
    SoIncomingCpu = Socket SO_INCOMING_CPU Int(0);
    SoZerocopy = Socket SO_ZEROCOPY Int(1);
    TcpNodelay = Tcp TCP_NODELAY Int(1);
    TcpCork = Tcp TCP_CORK Int(1);
    TcpKeepidle = Tcp TCP_KEEPIDLE Int(60);
    TcpKeepintvl = Tcp TCP_KEEPINTVL Int(10);
    TcpKeepcnt = Tcp TCP_KEEPCNT Int(3);
    TcpUserTimeout = Tcp TCP_USER_TIMEOUT Int(5000);
    TcpMd5sig = Tcp TCP_MD5SIG Md5Sig;
    TcpQuickack = Tcp TCP_QUICKACK Int(1);
    TcpSyncnt = Tcp TCP_SYNCNT Int(3);
    TcpLinger2 = Tcp TCP_LINGER2 Int(10);
    TcpWindowClamp = Tcp TCP_WINDOW_CLAMP Int(1 << 16);
    TcpCongestion = Tcp TCP_CONGESTION Name(b"reno");
    TcpUlp = Tcp TCP_ULP Name(b"tls");
    TcpFastopen = Tcp TCP_FASTOPEN Int(5);
    TcpFastopenConnect = Tcp TCP_FASTOPEN_CONNECT Int(1);
    TcpNotsentLowat = Tcp TCP_NOTSENT_LOWAT Int(1 << 14);
    TcpMaxseg = Tcp TCP_MAXSEG Int(1200);
    TcpDeferAccept = Tcp TCP_DEFER_ACCEPT Int(5);
    TcpInq = Tcp TCP_INQ Int(1);
    TcpTxDelay = Tcp TCP_TX_DELAY Int(10);
    IpTos = Ip IP_TOS Int(0x10);
    IpTtl = Ip IP_TTL Int(32);
    IpRecverr = Ip IP_RECVERR Int(1);
    IpMtuDiscover = Ip IP_MTU_DISCOVER Int(1);
    IpFreebind = Ip IP_FREEBIND Int(1);
    IpTransparent = Ip IP_TRANSPARENT Int(1);
    IpBindAddressNoPort = Ip IP_BIND_ADDRESS_NO_PORT Int(1);
    Ipv6V6only = Ipv6 IPV6_V6ONLY Int(1);
    Ipv6Tclass = Ipv6 IPV6_TCLASS Int(0x10);
    Ipv6UnicastHops = Ipv6 IPV6_UNICAST_HOPS Int(32);
    Ipv6Recverr = Ipv6 IPV6_RECVERR Int(1);
}

/// Parses an option's C name (`"TCP_USER_TIMEOUT"`, in any case).
impl std::str::FromStr for SockOpt {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        SockOpt::ALL
            .iter()
            .copied()
            .find(|o| o.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::InvalidArgument {
                op: "socket option",
                reason: format!("{s:?} is not an option this crate knows"),
            })
    }
}

impl std::fmt::Display for SockOpt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A value for an option, as the kernel takes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// For [`ValueKind::Int`].
    Int(i32),
    /// For [`ValueKind::Name`]: the name's bytes, without a terminating NUL.
    Name(Vec<u8>),
    /// For [`ValueKind::Linger`]: `None` turns lingering off.
    Linger(Option<std::time::Duration>),
    /// For [`ValueKind::Md5Sig`]: the peer and the key (at most 80 bytes; empty removes
    /// the peer's key).
    Md5Sig {
        /// The peer the key is for.
        peer: IpAddr,
        /// The key.
        key: Vec<u8>,
    },
}

impl Value {
    /// The bytes `setsockopt` takes for `opt`, or why this value does not fit it.
    pub(crate) fn encode(&self, opt: SockOpt) -> Result<Vec<u8>> {
        let wrong = || Error::InvalidArgument {
            op: "setsockopt",
            reason: format!("{opt} takes a {:?} value, not {self:?}", opt.kind()),
        };
        match (opt.kind(), self) {
            (ValueKind::Int, Value::Int(v)) => Ok(v.to_ne_bytes().to_vec()),
            (ValueKind::Name, Value::Name(n)) => Ok(n.clone()),
            (ValueKind::Linger, Value::Linger(l)) => {
                let secs = l.map_or(0, |d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX));
                let mut b = i32::from(l.is_some()).to_ne_bytes().to_vec();
                b.extend_from_slice(&secs.to_ne_bytes());
                Ok(b)
            }
            (ValueKind::Md5Sig, Value::Md5Sig { peer, key }) => md5sig(*peer, key),
            _ => Err(wrong()),
        }
    }
}

/// `struct tcp_md5sig`: a `sockaddr_storage` (128 bytes), flags, prefix length, key
/// length (u16), ifindex (int), then the key (80 bytes).
fn md5sig(peer: IpAddr, key: &[u8]) -> Result<Vec<u8>> {
    const MAX_KEY: usize = 80;
    if key.len() > MAX_KEY {
        return Err(Error::InvalidArgument {
            op: "setsockopt(TCP_MD5SIG)",
            reason: format!(
                "a key of {} bytes; the kernel takes at most {MAX_KEY}",
                key.len()
            ),
        });
    }
    let mut b = crate::wire::sockaddr::encode(&SocketAddr::new(peer, 0));
    b.resize(128, 0);
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&(key.len() as u16).to_ne_bytes());
    b.extend_from_slice(&0i32.to_ne_bytes());
    b.extend_from_slice(key);
    b.resize(128 + 8 + MAX_KEY, 0);
    Ok(b)
}

impl SockOpt {
    /// What its value is.
    pub fn kind(self) -> ValueKind {
        match self.sample() {
            Int(_) => ValueKind::Int,
            Name(_) => ValueKind::Name,
            Linger => ValueKind::Linger,
            Md5Sig => ValueKind::Md5Sig,
        }
    }

    /// A value plain TCP takes for this option (for a socket of IPv6 when `ipv6`): what
    /// [`check`] and [`support`] ask the kernel with. A name is `lo` (device), `reno`
    /// (congestion control) or `tls` (upper-layer protocol); an MD5 key is for
    /// `192.0.2.1` or `2001:db8::1`.
    pub fn example_value(self, ipv6: bool) -> Value {
        match self.sample() {
            Int(v) => Value::Int(v),
            Name(n) => Value::Name(n.to_vec()),
            Linger => Value::Linger(Some(std::time::Duration::from_secs(1))),
            Md5Sig => Value::Md5Sig {
                peer: if ipv6 {
                    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))
                } else {
                    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))
                },
                key: b"mptcp-sockopt-probe".to_vec(),
            },
        }
    }
}

/// Reads `opt` from a socket.
pub(crate) fn get(fd: BorrowedFd<'_>, opt: SockOpt) -> Result<Value> {
    let failed = |e| Error::os(opt.get_op(), e);
    if opt.kind() == ValueKind::Int {
        // sys's one rule for an int reply (4 bytes, or 1 widened by value).
        let (level, name) = opt.raw();
        return sys::int_option(fd, level, name)
            .map(Value::Int)
            .map_err(failed);
    }
    let mut buf = [0u8; 256];
    let len = sys::known_option(fd, opt, &mut buf)
        .map_err(failed)?
        .min(buf.len());
    let bytes = &buf[..len];
    match opt.kind() {
        ValueKind::Linger => {
            // struct linger: two ints.
            let (Some(on), Some(secs)) = (bytes.get(0..4), bytes.get(4..8)) else {
                return Err(Error::decode(
                    opt.get_op(),
                    format!("a reply of {len} bytes"),
                ));
            };
            let int = |b: &[u8]| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
            Ok(Value::Linger((int(on) != 0).then(|| {
                std::time::Duration::from_secs(int(secs).max(0) as u64)
            })))
        }
        ValueKind::Md5Sig => Err(Error::decode(
            opt.get_op(),
            "the kernel does not return keys",
        )),
        ValueKind::Int | ValueKind::Name => {
            let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
            Ok(Value::Name(bytes[..end].to_vec()))
        }
    }
}

/// Whether a socket takes an option, and what the kernel said when it did not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Support {
    /// `setsockopt` and `getsockopt` both succeed.
    Works,
    /// `setsockopt` succeeds; `getsockopt` fails with this errno (some options cannot
    /// be read back on any TCP socket, e.g. `TCP_MD5SIG`).
    SetOnly(i32),
    /// `setsockopt` fails with this errno.
    Refused(i32),
}

impl Support {
    /// True unless `setsockopt` failed.
    pub fn settable(self) -> bool {
        !matches!(self, Support::Refused(_))
    }
}

impl std::fmt::Display for Support {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Support::Works => f.write_str("works"),
            Support::SetOnly(e) => write!(f, "set only (get: {})", errno_name(*e)),
            Support::Refused(e) => write!(f, "refused ({})", errno_name(*e)),
        }
    }
}

/// The symbolic name of the errnos these calls return, else the number.
pub fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ENOPROTOOPT => "ENOPROTOOPT",
        libc::EINVAL => "EINVAL",
        libc::ENOENT => "ENOENT",
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::ENOTCONN => "ENOTCONN",
        libc::EISCONN => "EISCONN",
        libc::EBUSY => "EBUSY",
        libc::ENODEV => "ENODEV",
        libc::EEXIST => "EEXIST",
        libc::EFAULT => "EFAULT",
        _ => return format!("errno {errno}"),
    };
    name.to_string()
}

/// Asks the kernel whether a socket takes `opt`: sets it to
/// [`example_value`](SockOpt::example_value) (for the socket's family) and reads it
/// back. This changes the socket: use one made for the question, in the state (before
/// connect, connected, listening) the question is about.
pub fn check(fd: impl AsFd, opt: SockOpt) -> Support {
    let fd = fd.as_fd();
    let ipv6 = socket2::SockRef::from(&fd)
        .local_addr()
        .is_ok_and(|a| a.is_ipv6());
    let Ok(bytes) = opt.example_value(ipv6).encode(opt) else {
        return Support::Refused(libc::EINVAL);
    };
    if let Err(e) = sys::set_known_option(fd, opt, &bytes) {
        return Support::Refused(e.raw_os_error().unwrap_or(libc::EINVAL));
    }
    let mut buf = [0u8; 256];
    match sys::known_option(fd, opt, &mut buf) {
        Ok(_) => Support::Works,
        Err(e) => Support::SetOnly(e.raw_os_error().unwrap_or(libc::EINVAL)),
    }
}

/// What this kernel's MPTCP sockets and its plain TCP sockets do with one option, on a
/// fresh, unconnected socket of the option's family (IPv6 for `SOL_IPV6`, else IPv4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Compat {
    /// The option.
    pub option: SockOpt,
    /// On an MPTCP socket.
    pub mptcp: Support,
    /// On a plain TCP socket.
    pub tcp: Support,
}

impl Compat {
    /// True when plain TCP takes the option and MPTCP does not: the case
    /// [`Mode::Prefer`](crate::Mode::Prefer) falls back for.
    pub fn mptcp_refuses(&self) -> bool {
        self.tcp.settable() && !self.mptcp.settable()
    }
}

/// Whether this kernel's MPTCP sockets take `opt` where plain TCP does: asked of the
/// running kernel the first time each option is asked about (two throwaway sockets),
/// then remembered for the process.
///
/// ```
/// use mptcp::sockopt::{support, SockOpt};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let c = support(SockOpt::TcpNodelay)?;
/// assert!(c.tcp.settable());
/// # if mptcp::MptcpSocket::new_v4(mptcp::Mode::Require).is_err() { return Ok(()) }
/// assert!(c.mptcp.settable(), "every MPTCP kernel takes TCP_NODELAY");
/// println!("TCP_USER_TIMEOUT on MPTCP: {}", support(SockOpt::TcpUserTimeout)?.mptcp);
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::Unavailable`] when MPTCP sockets cannot be created here, or the error of
/// creating a socket.
pub fn support(opt: SockOpt) -> Result<Compat> {
    static CACHE: OnceLock<Vec<OnceLock<Compat>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| SockOpt::ALL.iter().map(|_| OnceLock::new()).collect());
    // The macro numbers the variants in the order of `ALL`.
    let i = opt as usize;
    if let Some(c) = cache.get(i).and_then(OnceLock::get) {
        return Ok(*c);
    }
    let c = probe(opt)?;
    if let Some(slot) = cache.get(i) {
        let _ = slot.set(c);
    }
    Ok(c)
}

/// Asks the kernel, on two fresh sockets (no cache; see [`support`]).
pub fn probe(opt: SockOpt) -> Result<Compat> {
    let ipv6 = opt.level() == Level::Ipv6;
    let domain = if ipv6 {
        crate::Domain::Ipv6
    } else {
        crate::Domain::Ipv4
    };
    let m = crate::MptcpSocket::new(domain, crate::Mode::Require)?;
    let t = crate::MptcpSocket::new(domain, crate::Mode::Off)?;
    Ok(Compat {
        option: opt,
        mptcp: check(&m, opt),
        tcp: check(&t, opt),
    })
}

/// Every option's [`Compat`] (see [`support`]).
pub fn table() -> Result<Vec<Compat>> {
    SockOpt::ALL.iter().map(|o| support(*o)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `support` indexes its cache by discriminant: the table's order is `ALL`'s.
    #[test]
    fn all_is_in_variant_order_and_names_parse_back() {
        for (i, o) in SockOpt::ALL.iter().enumerate() {
            assert_eq!(*o as usize, i);
            assert_eq!(o.name().parse::<SockOpt>().expect("its own name"), *o);
        }
    }
}
