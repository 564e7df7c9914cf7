//! `libmptcp_preload.so`, the `LD_PRELOAD` library of `mptcp-run`: it wraps `socket()`
//! so that the TCP sockets of an unmodified, dynamically linked program are created as
//! MPTCP sockets (`IPPROTO_MPTCP`), as mptcpd's `mptcpize` does.
//!
//! * Only `socket(AF_INET or AF_INET6, SOCK_STREAM [| SOCK_NONBLOCK | SOCK_CLOEXEC],
//!   0 or IPPROTO_TCP)` is changed; every other socket is created as asked.
//! * The mode comes from `MPTCP_RUN_MODE` (set by `mptcp-run`), else from the library's
//!   `MPTCP_MODE`, else `prefer`; read once, when the loader maps the library.
//!   - `prefer`: when the kernel refuses the MPTCP socket with an errno that means "no
//!     MPTCP here" (`EPROTONOSUPPORT`, `EINVAL`, `ENOPROTOOPT`, `EACCES`, `EPERM`: the
//!     rule of the `mptcp` crate's `Mode::Prefer`), the socket is created as plain TCP;
//!     any other error (`EMFILE`, `ENOBUFS`, ...) is returned as it is.
//!   - `require`: a refused MPTCP socket fails with the kernel's errno.
//!   - `off`: nothing is changed.
//!   - anything else: TCP sockets fail with `EINVAL` (and one line on stderr at load), as
//!     the library's sockets fail on an invalid `MPTCP_MODE` rather than guess.
//! * Every call asks the kernel again (no refusal is remembered), so a change of
//!   `net.mptcp.enabled` is seen by the next socket.
//! * Under `prefer`, a socket option that the MPTCP socket refuses and plain TCP takes
//!   (`TCP_USER_TIMEOUT`, `TCP_MD5SIG`, `IP_TTL`, ... on many kernels) does not fail:
//!   while the socket has not connected or listened, the library puts a plain TCP socket
//!   in its descriptor number (same type flags, `O_NONBLOCK`, close-on-exec, every
//!   option the program set on it, its bind) and sets the option there
//!   (`track.rs`). One line on stderr per option says so, unless `MPTCP_RUN_QUIET` is
//!   set. After `connect` or `listen` nothing is replaced: the error is the kernel's.
//!   `require` keeps every error.
//!
//! What cannot work: statically linked programs (Go binaries, musl static builds) and
//! programs that make the system call directly never call this `socket()`; setuid and
//! setgid programs run without `LD_PRELOAD` (the loader ignores it in secure-execution
//! mode); a program that checks `SO_PROTOCOL` sees 262, not 6.
//!
//! The safe decisions are here; every `unsafe` (the exported function, the lookup of the
//! next `socket`, errno, the environment) is in `sys.rs`.

#[cfg(target_os = "linux")]
mod sys;
#[cfg(target_os = "linux")]
mod track;

/// `IPPROTO_MPTCP` in Linux's UAPI.
pub const IPPROTO_MPTCP: i32 = 262;

/// The variable `mptcp-run` sets: `prefer`, `require` or `off`.
pub const RUN_MODE_ENV: &str = "MPTCP_RUN_MODE";

/// The `mptcp` crate's variable, read when [`RUN_MODE_ENV`] is unset (the library used
/// with `LD_PRELOAD` directly).
pub const MODE_ENV: &str = "MPTCP_MODE";

/// What to do with a TCP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// MPTCP, plain TCP when the kernel cannot create MPTCP sockets here.
    Prefer,
    /// MPTCP or the kernel's error.
    Require,
    /// Plain TCP: nothing is changed.
    Off,
}

impl Mode {
    /// `prefer`, `require` or `off`, in any case, without allocating.
    fn parse(value: &[u8]) -> Option<Mode> {
        if value.eq_ignore_ascii_case(b"prefer") {
            Some(Mode::Prefer)
        } else if value.eq_ignore_ascii_case(b"require") {
            Some(Mode::Require)
        } else if value.eq_ignore_ascii_case(b"off") {
            Some(Mode::Off)
        } else {
            None
        }
    }
}

/// The mode from the values of [`RUN_MODE_ENV`] and [`MODE_ENV`] (`None`: unset; empty
/// counts as unset, as in the library): the first one set, else `Prefer`. `Err` names
/// the variable whose value is invalid.
fn mode_from(run: Option<&[u8]>, lib: Option<&[u8]>) -> Result<Mode, &'static str> {
    match (run, lib) {
        (Some(v), _) if !v.is_empty() => Mode::parse(v).ok_or(RUN_MODE_ENV),
        (_, Some(v)) if !v.is_empty() => Mode::parse(v).ok_or(MODE_ENV),
        _ => Ok(Mode::Prefer),
    }
}

/// True for the sockets that are created as MPTCP: IPv4 or IPv6, stream (whatever the
/// `SOCK_NONBLOCK`/`SOCK_CLOEXEC` flags), protocol 0 or `IPPROTO_TCP`.
#[cfg(target_os = "linux")]
fn is_tcp(domain: i32, ty: i32, protocol: i32) -> bool {
    (domain == libc::AF_INET || domain == libc::AF_INET6)
        && ty & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) == libc::SOCK_STREAM
        && (protocol == 0 || protocol == libc::IPPROTO_TCP)
}

/// True when `socket(..., IPPROTO_MPTCP)` failing with `errno` means "no MPTCP here",
/// the errnos on which the `mptcp` crate's `Mode::Prefer` falls back to TCP (its
/// `Unavailable::from_socket_errno`): not built in, a kernel before 5.6, disabled by
/// `net.mptcp.enabled=0`, refused by a security policy.
#[cfg(target_os = "linux")]
fn mptcp_unavailable(errno: i32) -> bool {
    matches!(
        errno,
        libc::EPROTONOSUPPORT | libc::EINVAL | libc::ENOPROTOOPT | libc::EACCES | libc::EPERM
    )
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn only_tcp_sockets_change() {
        use libc::*;
        for domain in [AF_INET, AF_INET6] {
            for flags in [0, SOCK_NONBLOCK, SOCK_CLOEXEC, SOCK_NONBLOCK | SOCK_CLOEXEC] {
                assert!(is_tcp(domain, SOCK_STREAM | flags, 0));
                assert!(is_tcp(domain, SOCK_STREAM | flags, IPPROTO_TCP));
                assert!(!is_tcp(domain, SOCK_STREAM | flags, IPPROTO_MPTCP));
                assert!(!is_tcp(domain, SOCK_STREAM | flags, IPPROTO_SCTP));
                assert!(!is_tcp(domain, SOCK_DGRAM | flags, 0));
                assert!(!is_tcp(domain, SOCK_DGRAM | flags, IPPROTO_UDP));
                assert!(!is_tcp(domain, SOCK_SEQPACKET | flags, 0));
                assert!(!is_tcp(domain, SOCK_RAW | flags, IPPROTO_TCP));
            }
        }
        for domain in [AF_UNIX, AF_NETLINK, AF_PACKET, AF_UNSPEC] {
            assert!(!is_tcp(domain, SOCK_STREAM, 0));
        }
    }

    #[test]
    fn the_library_fallback_rule() {
        use libc::*;
        for e in [EPROTONOSUPPORT, EINVAL, ENOPROTOOPT, EACCES, EPERM] {
            assert!(mptcp_unavailable(e), "{e}");
        }
        for e in [EMFILE, ENFILE, ENOBUFS, ENOMEM, EAFNOSUPPORT, EINTR] {
            assert!(!mptcp_unavailable(e), "{e}");
        }
    }

    #[test]
    fn mode_variables() {
        assert_eq!(mode_from(None, None), Ok(Mode::Prefer));
        assert_eq!(mode_from(Some(b""), Some(b"")), Ok(Mode::Prefer));
        assert_eq!(mode_from(Some(b"Require"), None), Ok(Mode::Require));
        assert_eq!(mode_from(Some(b"off"), Some(b"require")), Ok(Mode::Off));
        assert_eq!(mode_from(None, Some(b"REQUIRE")), Ok(Mode::Require));
        assert_eq!(mode_from(Some(b""), Some(b"off")), Ok(Mode::Off));
        assert_eq!(mode_from(Some(b"sometimes"), None), Err(RUN_MODE_ENV));
        assert_eq!(mode_from(None, Some(b"yes")), Err(MODE_ENV));
    }
}
