//! Every `unsafe` of the library: the exported `socket`, the lookup of the next
//! `socket` in the loader's search order, errno, and the environment read at load.
//!
//! The wrapper allocates nothing and takes no lock: it reads two atomics (set once, by
//! the constructor below) and makes one or two system calls, so it is as
//! async-signal-safe as `socket()` itself. Only when a program creates a socket before
//! the constructor has run (from another library's constructor) does the first call look
//! the next `socket` up and read the environment itself.

use crate::{is_tcp, mode_from, mptcp_unavailable, Mode, IPPROTO_MPTCP, RUN_MODE_ENV};
use libc::{c_char, c_int, c_void};
use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, Ordering};

/// The signature of `socket(2)`.
type SocketFn = unsafe extern "C" fn(c_int, c_int, c_int) -> c_int;

/// The next `socket` after this library (the C library's, or another preloaded
/// library's); null until looked up.
static NEXT_SOCKET: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());

/// The mode, one of the constants below; `UNREAD` until the environment was read.
static MODE: AtomicU8 = AtomicU8::new(UNREAD);
const UNREAD: u8 = 0;
const PREFER: u8 = 1;
const REQUIRE: u8 = 2;
const OFF: u8 = 3;
/// `MPTCP_RUN_MODE`, or `MPTCP_MODE`, held an invalid value: TCP sockets fail with
/// `EINVAL`.
const INVALID_RUN_MODE: u8 = 4;
const INVALID_MODE: u8 = 5;

/// Run by the dynamic loader when it maps the library, before the program's `main`
/// (the C library is initialised by then: it is a dependency of this library).
#[used]
#[link_section = ".init_array"]
static CONSTRUCTOR: extern "C" fn() = constructor;

extern "C" fn constructor() {
    let _ = next_socket();
    let _ = mode();
}

/// Set once the invalid mode was reported (once per process, by the first TCP socket).
static REPORTED: AtomicBool = AtomicBool::new(false);

/// The invalid mode: one line on stderr, the first time only; the socket fails.
fn invalid_mode(which: u8) -> c_int {
    if !REPORTED.swap(true, Ordering::Relaxed) {
        let line: &[u8] = match which {
            INVALID_RUN_MODE => {
                b"mptcp-preload: invalid MPTCP_RUN_MODE (expected prefer, require or off): TCP sockets fail with EINVAL\n"
            }
            _ => b"mptcp-preload: invalid MPTCP_MODE (expected prefer, require or off): TCP sockets fail with EINVAL\n",
        };
        // SAFETY: the pointer and length describe a live static byte string; write is
        // async-signal-safe; a failed or short write of a diagnostic is ignored.
        let _ = unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
    }
    set_errno(libc::EINVAL);
    -1
}

/// The `socket(2)` that the program calls: TCP sockets become MPTCP sockets under the
/// mode; everything else goes to the next `socket` unchanged.
#[no_mangle]
pub extern "C" fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    let Some(next) = next_socket() else {
        set_errno(libc::ENOSYS);
        return -1;
    };
    let call = |protocol| {
        // SAFETY: `next` is the address of a function with `socket`'s signature and
        // contract (see `next_socket`); the arguments are plain integers.
        unsafe { next(domain, ty, protocol) }
    };
    if !is_tcp(domain, ty, protocol) {
        return call(protocol);
    }
    let mode = match mode() {
        PREFER => Mode::Prefer,
        REQUIRE => Mode::Require,
        m @ (INVALID_RUN_MODE | INVALID_MODE) => return invalid_mode(m),
        _ => Mode::Off,
    };
    if mode == Mode::Off {
        return call(protocol);
    }
    let saved = errno();
    let fd = call(IPPROTO_MPTCP);
    if fd >= 0 || mode == Mode::Require {
        return fd;
    }
    if !mptcp_unavailable(errno()) {
        // EMFILE, ENOBUFS, ...: the same would happen to a TCP socket.
        return fd;
    }
    let fd = call(protocol);
    if fd >= 0 {
        // The program asked for TCP and got it: errno as it was before the call.
        set_errno(saved);
    }
    fd
}

/// The next `socket` in the loader's search order, looked up once.
fn next_socket() -> Option<SocketFn> {
    let mut p = NEXT_SOCKET.load(Ordering::Acquire);
    if p.is_null() {
        // SAFETY: RTLD_NEXT with a NUL-terminated symbol name; dlsym has no other
        // precondition. It finds the definition after this library's own.
        p = unsafe { libc::dlsym(libc::RTLD_NEXT, c"socket".as_ptr()) };
        if p.is_null() {
            return None;
        }
        NEXT_SOCKET.store(p, Ordering::Release);
    }
    // SAFETY: `p` is the non-null address of the symbol `socket` of a library loaded
    // after this one (the C library's): a function with socket(2)'s C signature, which
    // stays mapped as long as the process runs (the C library is never unloaded).
    Some(unsafe { std::mem::transmute::<*mut c_void, SocketFn>(p) })
}

/// The mode, read from the environment on first use.
fn mode() -> u8 {
    let m = MODE.load(Ordering::Relaxed);
    if m != UNREAD {
        return m;
    }
    let m = match read_mode() {
        Ok(Mode::Prefer) => PREFER,
        Ok(Mode::Require) => REQUIRE,
        Ok(Mode::Off) => OFF,
        Err(RUN_MODE_ENV) => INVALID_RUN_MODE,
        Err(_) => INVALID_MODE,
    };
    MODE.store(m, Ordering::Relaxed);
    m
}

/// The names of [`RUN_MODE_ENV`] and [`MODE_ENV`] for getenv.
const RUN_MODE_C: &CStr = c"MPTCP_RUN_MODE";
const MODE_C: &CStr = c"MPTCP_MODE";

fn read_mode() -> Result<Mode, &'static str> {
    // SAFETY: read when the library is loaded (or on the first socket created before
    // that), before the program runs threads that could change its environment; the
    // values are parsed at once.
    unsafe { mode_from(env(RUN_MODE_C), env(MODE_C)) }
}

/// The bytes of an environment variable, without allocating.
///
/// # Safety
///
/// The environment must not change while the returned bytes are in use.
unsafe fn env<'a>(name: &CStr) -> Option<&'a [u8]> {
    // SAFETY: a NUL-terminated name; the caller keeps the environment unchanged.
    let p: *const c_char = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: getenv returned a NUL-terminated string of the environment, valid while
    // the environment is unchanged, as the caller promises.
    Some(unsafe { CStr::from_ptr(p) }.to_bytes())
}

fn errno() -> c_int {
    // SAFETY: __errno_location returns the calling thread's errno, always valid.
    unsafe { *libc::__errno_location() }
}

fn set_errno(e: c_int) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = e }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MODE_ENV;

    #[test]
    fn variable_names_agree() {
        assert_eq!(RUN_MODE_C.to_bytes(), RUN_MODE_ENV.as_bytes());
        assert_eq!(MODE_C.to_bytes(), MODE_ENV.as_bytes());
    }
}
