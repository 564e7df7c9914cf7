//! Creating MPTCP sockets, with a fallback policy.

use crate::error::{Error, ParseModeError, Result, Unavailable};
#[cfg(any(target_os = "linux", target_os = "android"))]
use crate::proto::{mptcp_protocol, IPPROTO_MPTCP};
use socket2::{Socket, Type};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::OnceLock;
use std::time::Duration;

#[cfg(any(target_os = "linux", target_os = "android"))]
use linux::{cached_refusal, netns_cookie, refusals, remember_refusal};

/// The environment variable that sets the mode of the sockets a program creates with
/// [`Mode::Prefer`], the default: `prefer`, `require` or `off` (case-insensitive; empty
/// means unset).
///
/// It lets an operator turn MPTCP off (or make it mandatory) without rebuilding, like
/// Go's `GODEBUG=multipathtcp`. It never overrides a program that asked for
/// [`Mode::Require`] or [`Mode::Off`] itself: those are the program's decisions, and
/// the variable is not even read for them, so an invalid value cannot make them fail.
/// It is read once, the first time a `Prefer` socket is created; an invalid value makes
/// those sockets fail with [`Error::InvalidEnv`] rather than silently guess.
pub const MODE_ENV: &str = "MPTCP_MODE";

/// What to do when MPTCP sockets cannot be created.
///
/// ```
/// assert_eq!(mptcp::Mode::default(), mptcp::Mode::Prefer);
/// assert_eq!("require".parse::<mptcp::Mode>().unwrap(), mptcp::Mode::Require);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// Use MPTCP; use plain TCP only when the kernel cannot create MPTCP sockets here
    /// (never after a failed connect: one attempt, one error).
    #[default]
    Prefer,
    /// Use MPTCP or fail with [`Error::Unavailable`].
    Require,
    /// Plain TCP.
    Off,
}

/// Parses `prefer`, `require` or `off`, in any case.
///
/// ```
/// use mptcp::Mode;
/// assert_eq!("Require".parse::<Mode>(), Ok(Mode::Require));
/// let err = "sometimes".parse::<Mode>().unwrap_err();
/// assert_eq!(err.value, "sometimes");
/// ```
impl std::str::FromStr for Mode {
    type Err = ParseModeError;
    fn from_str(s: &str) -> std::result::Result<Self, ParseModeError> {
        match s.to_ascii_lowercase().as_str() {
            "prefer" => Ok(Mode::Prefer),
            "require" => Ok(Mode::Require),
            "off" => Ok(Mode::Off),
            _ => Err(ParseModeError {
                value: s.to_string(),
            }),
        }
    }
}

impl Mode {
    /// The mode set by [`MODE_ENV`], if any (read once per process).
    pub fn from_env() -> Result<Option<Mode>> {
        static ENV: OnceLock<std::result::Result<Option<Mode>, ParseModeError>> = OnceLock::new();
        let v = ENV.get_or_init(|| match std::env::var(MODE_ENV) {
            Ok(v) if v.is_empty() => Ok(None),
            Ok(v) => v.parse().map(Some),
            Err(_) => Ok(None),
        });
        match v {
            Ok(m) => Ok(*m),
            Err(e) => Err(Error::InvalidEnv {
                var: MODE_ENV,
                error: e.clone(),
            }),
        }
    }

    /// The mode in effect: for [`Mode::Prefer`], the environment's when [`MODE_ENV`] is
    /// set; `Require` and `Off` as they are.
    ///
    /// ```
    /// use mptcp::Mode;
    /// // Whatever MPTCP_MODE holds, the program's own Require and Off stand.
    /// assert_eq!(Mode::Off.effective()?, Mode::Off);
    /// assert_eq!(Mode::Require.effective()?, Mode::Require);
    /// # Ok::<(), mptcp::Error>(())
    /// ```
    pub fn effective(self) -> Result<Mode> {
        match self {
            Mode::Prefer => Ok(Mode::from_env()?.unwrap_or(self)),
            explicit => Ok(explicit),
        }
    }
}

/// The cache of refusals: Linux keeps one MPTCP switch per network namespace.
#[cfg(any(target_os = "linux", target_os = "android"))]
mod linux {
    use super::*;
    use std::collections::HashMap;
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    /// A network namespace that refused MPTCP sockets: why, and its cookie (a 64-bit id the
    /// kernel never reuses, Linux 5.14+), read from the TCP socket created instead.
    #[derive(Clone, Copy)]
    pub(super) struct Refusal {
        pub(super) cookie: Option<u64>,
        pub(super) why: Unavailable,
    }

    /// Refusals by network namespace inode. Only failures are recorded, so the common case
    /// (MPTCP available) costs no extra system call. Inodes of deleted namespaces are
    /// reused, so a hit is confirmed with the namespace cookie of the fallback socket that
    /// is created anyway; a mismatch means a new namespace, which is asked again.
    static UNAVAILABLE: Mutex<Option<HashMap<u64, Refusal>>> = Mutex::new(None);
    static ANY_UNAVAILABLE: AtomicBool = AtomicBool::new(false);

    pub(super) fn netns_inode() -> Option<u64> {
        std::fs::metadata("/proc/thread-self/ns/net")
            .or_else(|_| std::fs::metadata("/proc/self/ns/net"))
            .ok()
            .map(|m| m.ino())
    }

    pub(super) fn netns_cookie(s: &Socket) -> Option<u64> {
        crate::sys::so_netns_cookie(s.as_fd()).ok()
    }

    pub(super) fn refusals() -> std::sync::MutexGuard<'static, Option<HashMap<u64, Refusal>>> {
        UNAVAILABLE.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn cached_refusal() -> Option<(u64, Refusal)> {
        if !ANY_UNAVAILABLE.load(Ordering::Relaxed) {
            return None;
        }
        let ns = netns_inode()?;
        refusals().as_ref()?.get(&ns).map(|r| (ns, *r))
    }

    pub(super) fn remember_refusal(fallback: &Socket, why: Unavailable) {
        if let Some(ns) = netns_inode() {
            let r = Refusal {
                cookie: netns_cookie(fallback),
                why,
            };
            refusals().get_or_insert_with(HashMap::new).insert(ns, r);
            ANY_UNAVAILABLE.store(true, Ordering::Relaxed);
        }
    }

    pub(crate) fn forget() {
        *refusals() = None;
        ANY_UNAVAILABLE.store(false, Ordering::Relaxed);
    }
}

/// Forgets which network namespaces refused MPTCP sockets, so the next socket tries
/// again (for example after `net.mptcp.enabled` was set back to 1).
pub fn forget_unavailable() {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    linux::forget();
}

/// The address family of a socket to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Domain {
    /// IPv4 (`AF_INET`).
    Ipv4,
    /// IPv6 (`AF_INET6`; IPv4 peers too, as mapped addresses, unless `IPV6_V6ONLY`).
    Ipv6,
}

impl Domain {
    /// The family of `addr`.
    pub fn of(addr: &SocketAddr) -> Domain {
        match addr {
            SocketAddr::V4(_) => Domain::Ipv4,
            SocketAddr::V6(_) => Domain::Ipv6,
        }
    }

    pub(crate) fn raw(self) -> socket2::Domain {
        match self {
            Domain::Ipv4 => socket2::Domain::IPV4,
            Domain::Ipv6 => socket2::Domain::IPV6,
        }
    }
}

/// What both socket builders hold: the socket, and why it is plain TCP when it is.
/// Created here (MPTCP under the mode's rule, the refusal cache), configured through
/// the option methods of `options.rs`, which all go through [`Core::apply`]: under
/// `Prefer`, an option MPTCP refuses and plain TCP takes turns the socket into plain TCP
/// in the same descriptor, with everything set before (see `fallback.rs`).
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) socket: Socket,
    /// Why the socket is plain TCP: set when it is created so, or once, by a fallback.
    pub(crate) plain: OnceLock<Unavailable>,
    #[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
    pub(crate) domain: Domain,
    /// The mode in effect (`Prefer` resolved through `MPTCP_MODE`).
    #[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
    pub(crate) mode: Mode,
    /// What was set and bound so far, to do again on a plain TCP socket: kept only on
    /// an MPTCP socket under `Prefer`.
    pub(crate) replay: Option<std::sync::Mutex<crate::fallback::Replay>>,
}

impl Core {
    pub(crate) fn new(domain: Domain, mode: Mode) -> Result<Self> {
        let mode = mode.effective()?;
        if mode == Mode::Off {
            return Ok(Self::plain(
                tcp(domain.raw())?,
                domain,
                mode,
                Unavailable::TurnedOff,
            ));
        }
        Self::new_mptcp(domain, mode)
    }

    fn plain(socket: Socket, domain: Domain, mode: Mode, why: Unavailable) -> Self {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if mode == Mode::Prefer {
            use std::os::fd::AsFd;
            crate::fallback::remember(socket.as_fd(), why);
        }
        Core {
            socket,
            plain: OnceLock::from(why),
            domain,
            mode,
            replay: None,
        }
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn mptcp(socket: Socket, domain: Domain, mode: Mode) -> Self {
        Core {
            socket,
            plain: OnceLock::new(),
            domain,
            mode,
            replay: (mode == Mode::Prefer).then(Default::default),
        }
    }

    /// Why the socket is plain TCP, when it is.
    pub(crate) fn unavailable(&self) -> Option<Unavailable> {
        self.plain.get().copied()
    }

    /// No MPTCP on this OS: plain TCP under `Prefer`, as Go's `net` does.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn new_mptcp(domain: Domain, mode: Mode) -> Result<Self> {
        let why = Unavailable::UnsupportedOs(std::env::consts::OS);
        if mode == Mode::Require {
            return Err(Error::Unavailable(why));
        }
        Ok(Self::plain(tcp(domain.raw())?, domain, mode, why))
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn new_mptcp(family: Domain, mode: Mode) -> Result<Self> {
        let domain = family.raw();
        // "Prefer" trusts an earlier refusal in this namespace; "require" always asks the
        // kernel, so its error is current.
        if mode == Mode::Prefer {
            if let Some((ns, r)) = cached_refusal() {
                let socket = tcp(domain)?;
                if r.cookie.is_none() || netns_cookie(&socket) == r.cookie {
                    return Ok(Self::plain(socket, family, mode, r.why));
                }
                if let Some(map) = refusals().as_mut() {
                    map.remove(&ns);
                }
            }
        }
        match Socket::new(domain, Type::STREAM, Some(mptcp_protocol())) {
            Ok(socket) => Ok(Self::mptcp(socket, family, mode)),
            Err(e) => {
                let Some(why) = e.raw_os_error().and_then(Unavailable::from_socket_errno) else {
                    return Err(Error::os("socket(IPPROTO_MPTCP)", e));
                };
                if mode == Mode::Require {
                    return Err(Error::Unavailable(why));
                }
                let socket = tcp(domain)?;
                remember_refusal(&socket, why);
                Ok(Self::plain(socket, family, mode, why))
            }
        }
    }

    /// A socket created elsewhere: MPTCP when created with `IPPROTO_MPTCP`.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(crate) fn adopt(socket: Socket) -> Result<Self> {
        use std::os::fd::AsFd;
        let protocol = crate::kernel::stream_protocol(socket.as_fd())?;
        let domain = adopted_domain(&socket)?;
        // An adopted socket keeps what it is: no fallback (its earlier options are not
        // known), so its mode is the one that never falls back.
        Ok(if protocol == IPPROTO_MPTCP {
            Self::mptcp(socket, domain, Mode::Require)
        } else {
            Self::plain(socket, domain, Mode::Off, Unavailable::CreatedAsTcp)
        })
    }

    /// A socket created elsewhere: on this OS, plain TCP.
    #[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
    pub(crate) fn adopt(socket: Socket) -> Result<Self> {
        let domain = adopted_domain(&socket)?;
        Ok(Self::plain(
            socket,
            domain,
            Mode::Off,
            Unavailable::CreatedAsTcp,
        ))
    }
}

/// The family of an adopted socket.
#[cfg(unix)]
fn adopted_domain(socket: &Socket) -> Result<Domain> {
    let d = socket
        .local_addr()
        .map_err(|e| Error::os("getsockname", e))?
        .domain();
    if d == socket2::Domain::IPV6 {
        Ok(Domain::Ipv6)
    } else if d == socket2::Domain::IPV4 {
        Ok(Domain::Ipv4)
    } else {
        Err(Error::NotMptcp(crate::NotMptcp::NotStream))
    }
}

/// A new, unconnected stream socket: MPTCP when possible under its [`Mode`], plain TCP
/// otherwise. Set options on it, then [`connect`](Self::connect) or
/// [`listen`](Self::listen). Its methods are those of
/// `tokio::MptcpSocket` (feature `tokio`), which has the shape of tokio's
/// `TcpSocket`; options it lacks are set on the borrowed descriptor (it is `AsFd`), for
/// instance with `socket2::SockRef`.
///
/// ```
/// use mptcp::{Mode, MptcpSocket};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = MptcpSocket::new_v4(Mode::Prefer)?;
/// server.set_reuseaddr(true)?;
/// server.bind("127.0.0.1:0".parse()?)?;
/// let listener = server.listen(16)?;
///
/// let addr = listener.local_addr()?;
/// let sock = MptcpSocket::for_addr(addr, Mode::Prefer)?;
/// sock.set_nodelay(true)?;
/// println!("MPTCP: {}", sock.created_as_mptcp());
/// let stream = sock.connect(addr)?;
/// assert!(stream.nodelay()?);
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[doc(alias = "IPPROTO_MPTCP")]
pub struct MptcpSocket {
    core: Core,
}

crate::options::socket_api!(MptcpSocket);

impl MptcpSocket {
    fn from_core(core: Core) -> Result<Self> {
        Ok(MptcpSocket { core })
    }

    /// For the conversions of `tokio::MptcpSocket`.
    #[cfg(feature = "tokio")]
    pub(crate) fn into_core_for_tokio(self) -> Core {
        self.core
    }

    /// For the conversions of `tokio::MptcpSocket`.
    #[cfg(feature = "tokio")]
    pub(crate) fn from_core_for_tokio(core: Core) -> Self {
        MptcpSocket { core }
    }

    /// Connects (one attempt) and returns the stream.
    pub fn connect(self, addr: SocketAddr) -> Result<TcpStream> {
        let s = self.core.socket;
        s.connect(&addr.into())
            .map_err(|e| Error::os("connect", e))?;
        Ok(s.into())
    }

    /// Connects with a timeout (one attempt) and returns the stream. (Under tokio, wrap
    /// the connect future in `tokio::time::timeout` instead.)
    pub fn connect_timeout(self, addr: SocketAddr, timeout: Duration) -> Result<TcpStream> {
        let s = self.core.socket;
        s.connect_timeout(&addr.into(), timeout)
            .map_err(|e| Error::os("connect", e))?;
        Ok(s.into())
    }

    /// Starts listening with the given backlog (capped at `i32::MAX`) and returns the
    /// listener.
    pub fn listen(self, backlog: u32) -> Result<TcpListener> {
        let s = self.core.socket;
        s.listen(i32::try_from(backlog).unwrap_or(i32::MAX))
            .map_err(|e| Error::os("listen", e))?;
        Ok(s.into())
    }
}

/// A plain TCP socket of the family.
pub(crate) fn tcp(domain: socket2::Domain) -> Result<Socket> {
    Socket::new(domain, Type::STREAM, Some(socket2::Protocol::TCP))
        .map_err(|e| Error::os("socket", e))
}

fn no_address() -> Error {
    Error::os(
        "resolve",
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no addresses to try"),
    )
}

/// The addresses of one `connect` or `listen` (std and tokio), tried in order: the first
/// success wins, else the last failure is reported, else (none resolved) [`no_address`].
struct Attempts<I> {
    addrs: I,
    last: Option<Error>,
}

impl<I: Iterator<Item = SocketAddr>> Attempts<I> {
    /// From a resolver's answer; its error is reported as `resolve`.
    fn new(resolved: std::io::Result<I>) -> Result<Self> {
        Ok(Attempts {
            addrs: resolved.map_err(|e| Error::os("resolve", e))?,
            last: None,
        })
    }

    /// The next address to try, or the error to report when none is left.
    fn next(&mut self) -> Result<SocketAddr> {
        match self.addrs.next() {
            Some(a) => Ok(a),
            None => Err(self.last.take().unwrap_or_else(no_address)),
        }
    }
}

/// Runs `attempt` on each resolved address by the rule of [`Attempts`]. `attempt`
/// answers `Ok(Err(_))` to go on with the next address, `Err(_)` to stop at once (the
/// socket could not be created, say).
pub(crate) fn each_addr<I, T>(
    resolved: std::io::Result<I>,
    mut attempt: impl FnMut(SocketAddr) -> Result<Result<T>>,
) -> Result<T>
where
    I: Iterator<Item = SocketAddr>,
{
    let mut tries = Attempts::new(resolved)?;
    loop {
        match attempt(tries.next()?)? {
            Ok(v) => return Ok(v),
            Err(e) => tries.last = Some(e),
        }
    }
}

/// [`each_addr`] for an async `attempt`.
#[cfg(feature = "tokio")]
pub(crate) async fn each_addr_async<I, T, F>(
    resolved: std::io::Result<I>,
    mut attempt: impl FnMut(SocketAddr) -> F,
) -> Result<T>
where
    I: Iterator<Item = SocketAddr>,
    F: std::future::Future<Output = Result<Result<T>>>,
{
    let mut tries = Attempts::new(resolved)?;
    loop {
        match attempt(tries.next()?).await? {
            Ok(v) => return Ok(v),
            Err(e) => tries.last = Some(e),
        }
    }
}

/// Connects over MPTCP, falling back to TCP only when this machine cannot create MPTCP
/// sockets ([`Mode::Prefer`]). Each resolved address gets one attempt, like std.
///
/// ```
/// use std::io::{Read, Write};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = mptcp::listen("127.0.0.1:0")?;
/// let mut stream = mptcp::connect(listener.local_addr()?)?;
/// stream.write_all(b"hello")?;
/// let (mut server, _) = listener.accept()?;
/// let mut got = [0u8; 5];
/// server.read_exact(&mut got)?;
/// assert_eq!(&got, b"hello");
/// # #[cfg(any(target_os = "linux", target_os = "android"))]
/// println!("using MPTCP: {}", mptcp::is_mptcp(&stream)?);
/// # Ok(()) }
/// ```
#[doc(alias = "IPPROTO_MPTCP")]
pub fn connect(addr: impl ToSocketAddrs) -> Result<TcpStream> {
    connect_with(addr, Mode::Prefer)
}

/// [`connect`] with an explicit [`Mode`].
pub fn connect_with(addr: impl ToSocketAddrs, mode: Mode) -> Result<TcpStream> {
    each_addr(addr.to_socket_addrs(), |a| {
        Ok(MptcpSocket::for_addr(a, mode)?.connect(a))
    })
}

/// Listens on an MPTCP socket (backlog 1024; [`Mode::Prefer`]). The listener accepts
/// MPTCP and plain TCP clients alike.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = mptcp::listen("127.0.0.1:0")?;
/// let _client = mptcp::connect(listener.local_addr()?)?;
/// for conn in listener.incoming().take(1) {
///     let conn = conn?;
///     # #[cfg(any(target_os = "linux", target_os = "android"))]
///     println!("peer uses MPTCP: {}", mptcp::is_mptcp(&conn)?);
/// }
/// # Ok(()) }
/// ```
#[doc(alias = "IPPROTO_MPTCP")]
pub fn listen(addr: impl ToSocketAddrs) -> Result<TcpListener> {
    listen_with(addr, Mode::Prefer)
}

/// [`listen`] with an explicit [`Mode`]; binds with `SO_REUSEADDR` like std.
pub fn listen_with(addr: impl ToSocketAddrs, mode: Mode) -> Result<TcpListener> {
    let bound = each_addr(addr.to_socket_addrs(), |a| {
        let s = MptcpSocket::for_addr(a, mode)?;
        s.set_reuseaddr(true)?;
        Ok(s.bind(a).map(|()| s))
    })?;
    bound.listen(1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn addrs(n: u16) -> io::Result<std::vec::IntoIter<SocketAddr>> {
        let v: Vec<SocketAddr> = (1..=n).map(|p| ([127, 0, 0, 1], p).into()).collect();
        Ok(v.into_iter())
    }

    /// The op and message of an `Error::Os`.
    fn os_of(e: &Error) -> (&'static str, String) {
        match e {
            Error::Os { op, error } => (op, error.to_string()),
            other => panic!("not an OS error: {other:?}"),
        }
    }

    fn fail(a: SocketAddr) -> Error {
        Error::os("connect", io::Error::other(a.port().to_string()))
    }

    #[test]
    fn first_success_after_failures() {
        let mut tried = Vec::new();
        let got = each_addr(addrs(3), |a| {
            tried.push(a.port());
            Ok(if a.port() < 2 { Err(fail(a)) } else { Ok(a) })
        });
        assert_eq!(got.map(|a| a.port()).ok(), Some(2));
        assert_eq!(tried, [1, 2]);
    }

    #[test]
    fn last_failure_is_reported() {
        let got = each_addr(addrs(3), |a| Ok::<Result<()>, _>(Err(fail(a))));
        let e = got.expect_err("every address fails");
        assert_eq!(os_of(&e), ("connect", "3".into()));
    }

    #[test]
    fn hard_error_stops_at_once() {
        let mut tried = 0;
        let got = each_addr(addrs(3), |a| -> Result<Result<()>> {
            tried += 1;
            Err(fail(a))
        });
        assert_eq!(os_of(&got.expect_err("stops")), ("connect", "1".into()));
        assert_eq!(tried, 1);
    }

    #[test]
    fn no_address_and_resolve_errors() {
        let e = each_addr(addrs(0), |_| Ok::<Result<()>, _>(Ok(()))).expect_err("nothing to try");
        assert_eq!(os_of(&e), os_of(&no_address()));
        let failed: io::Result<std::vec::IntoIter<SocketAddr>> = Err(io::Error::other("dns"));
        let e = each_addr(failed, |_| Ok::<Result<()>, _>(Ok(()))).expect_err("resolution failed");
        assert_eq!(os_of(&e), ("resolve", "dns".into()));
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn async_loop_has_the_same_rule() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let got = rt.block_on(each_addr_async(addrs(3), |a| async move {
            Ok(if a.port() < 3 { Err(fail(a)) } else { Ok(a) })
        }));
        assert_eq!(got.map(|a| a.port()).ok(), Some(3));
        let got = rt.block_on(each_addr_async(addrs(2), |a| async move {
            Ok::<Result<()>, _>(Err(fail(a)))
        }));
        assert_eq!(os_of(&got.expect_err("both fail")), ("connect", "2".into()));
        let got = rt.block_on(each_addr_async(addrs(0), |_| async {
            Ok::<Result<()>, _>(Ok(()))
        }));
        assert_eq!(os_of(&got.expect_err("none")), os_of(&no_address()));
    }
}
