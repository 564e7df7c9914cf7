//! Every `unsafe` of the library: the exported `socket`, `setsockopt`, `bind`,
//! `connect`, `listen` and `close`, the lookup of the next definitions in the loader's
//! search order, errno, the environment read at load, and the replacement of a socket.
//!
//! Under `off` and `require`, and for every socket the library did not make MPTCP, the
//! wrappers read atomics and call the next definition. Under `prefer`, `socket()` of a
//! TCP socket records it in `track.rs` (one allocation, a `try_lock`), and the others
//! update that record while the socket is tracked. Only when a program creates a socket
//! before the constructor has run (from another library's constructor) does the first
//! call look the next `socket` up and read the environment itself.

use crate::track::{self, Tracked};
use crate::{is_tcp, mode_from, mptcp_unavailable, Mode, IPPROTO_MPTCP, RUN_MODE_ENV};
use libc::{c_char, c_int, c_void};
use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, Ordering};

/// The signature of `socket(2)`.
type SocketFn = unsafe extern "C" fn(c_int, c_int, c_int) -> c_int;
/// `setsockopt(2)`.
type SetsockoptFn =
    unsafe extern "C" fn(c_int, c_int, c_int, *const c_void, libc::socklen_t) -> c_int;
/// `bind(2)` and `connect(2)`.
type AddrFn = unsafe extern "C" fn(c_int, *const libc::sockaddr, libc::socklen_t) -> c_int;
/// `listen(2)`.
type ListenFn = unsafe extern "C" fn(c_int, c_int) -> c_int;
/// `close(2)`.
type CloseFn = unsafe extern "C" fn(c_int) -> c_int;

/// The next `socket` after this library (the C library's, or another preloaded
/// library's); null until looked up.
static NEXT_SOCKET: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
static NEXT_SETSOCKOPT: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
static NEXT_BIND: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
static NEXT_CONNECT: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
static NEXT_LISTEN: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
static NEXT_CLOSE: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());

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
    let _ = QUIET.set(read_quiet());
}

/// `MPTCP_RUN_QUIET` set (to anything but empty): no notice on stderr.
static QUIET: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

fn read_quiet() -> bool {
    // SAFETY: read at load, as `read_mode` is.
    unsafe { env(c"MPTCP_RUN_QUIET") }.is_some_and(|v| !v.is_empty())
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
    if fd >= 0 && mode == Mode::Prefer {
        let socket = Tracked {
            domain,
            ty,
            protocol,
            options: Vec::new(),
            bound: false,
        };
        track::created(fd, Some(socket));
    }
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
        track::created(fd, None);
    }
    fd
}

/// `setsockopt(2)`: on a tracked socket, a success is remembered and a refusal that
/// plain TCP would not make is answered by a plain TCP socket in its place.
#[no_mangle]
pub extern "C" fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *const c_void,
    len: libc::socklen_t,
) -> c_int {
    let Some(next) = next_fn::<SetsockoptFn>(&NEXT_SETSOCKOPT, c"setsockopt") else {
        set_errno(libc::ENOSYS);
        return -1;
    };
    // SAFETY: `next` is the C library's setsockopt; the arguments are the program's,
    // passed on unchanged, under the contract the program called us with.
    let r = unsafe { next(fd, level, name, value, len) };
    if track::empty() {
        return r;
    }
    let bytes: &[u8] = if value.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: the program handed setsockopt `len` readable bytes at `value` (the
        // call's contract); they are only read, while the call lasts.
        unsafe { std::slice::from_raw_parts(value.cast::<u8>(), len as usize) }
    };
    if r == 0 {
        track::set(fd, level, name, bytes);
        return 0;
    }
    let refused = errno();
    let Some(socket) = track::get(fd) else {
        return r;
    };
    if !unconnected_mptcp(fd) {
        track::forget(fd);
        set_errno(refused);
        return r;
    }
    match replace(fd, &socket, next, level, name, bytes) {
        Ok(()) => {
            track::forget(fd);
            notice(fd, level, name, refused);
            0
        }
        Err(Replace::NotTaken) => {
            set_errno(refused);
            r
        }
        Err(Replace::Failed(e)) => {
            // The socket is plain TCP now but could not be bound again.
            track::forget(fd);
            set_errno(e);
            -1
        }
    }
}

/// Why a socket was not replaced.
enum Replace {
    /// Plain TCP refuses the option, or something set before: nothing changed.
    NotTaken,
    /// The replacement took the descriptor but could not bind the address (errno).
    Failed(c_int),
}

/// A plain TCP socket made like `socket`, with its options and `level`/`name` set,
/// takes `fd`'s number (its file status and descriptor flags too) and its bind.
fn replace(
    fd: c_int,
    socket: &Tracked,
    setsockopt: SetsockoptFn,
    level: c_int,
    name: c_int,
    value: &[u8],
) -> Result<(), Replace> {
    let Some(make) = next_socket() else {
        return Err(Replace::NotTaken);
    };
    // SAFETY: the C library's socket(), with plain integers.
    let new = unsafe { make(socket.domain, socket.ty, socket.protocol) };
    if new < 0 {
        return Err(Replace::NotTaken);
    }
    let close_new = || {
        // SAFETY: `new` is a descriptor this function opened and no one else knows.
        unsafe { libc::close(new) };
    };
    let set = |level: c_int, name: c_int, v: &[u8]| {
        // SAFETY: `v` is valid for reads of its length, as setsockopt needs.
        unsafe {
            setsockopt(
                new,
                level,
                name,
                v.as_ptr().cast(),
                v.len() as libc::socklen_t,
            ) == 0
        }
    };
    let taken = socket
        .options
        .iter()
        .all(|o| set(o.level, o.name, &o.value))
        && set(level, name, value);
    if !taken {
        close_new();
        return Err(Replace::NotTaken);
    }
    let mut addr: libc::sockaddr_storage = zeroed_storage();
    let mut addr_len = size_of_storage();
    if socket.bound {
        // SAFETY: `addr` is a writable sockaddr_storage of `addr_len` bytes.
        let r = unsafe { libc::getsockname(fd, (&raw mut addr).cast(), &mut addr_len) };
        if r != 0 {
            close_new();
            return Err(Replace::NotTaken);
        }
    }
    // SAFETY: fcntl on two open descriptors, with integer arguments only.
    let (status, cloexec) = unsafe {
        (
            libc::fcntl(fd, libc::F_GETFL),
            libc::fcntl(fd, libc::F_GETFD) & libc::FD_CLOEXEC != 0,
        )
    };
    // SAFETY: as above.
    if status >= 0 && unsafe { libc::fcntl(new, libc::F_SETFL, status) } != 0 {
        close_new();
        return Err(Replace::NotTaken);
    }
    let flags = if cloexec { libc::O_CLOEXEC } else { 0 };
    // SAFETY: both descriptors are open; dup3 makes `fd` refer to the new socket in
    // one step (the MPTCP socket it referred to is closed, which frees its port), so
    // the program's number never dangles.
    let r = unsafe { libc::dup3(new, fd, flags) };
    close_new();
    if r < 0 {
        return Err(Replace::NotTaken);
    }
    if socket.bound {
        let Some(bind) = next_fn::<AddrFn>(&NEXT_BIND, c"bind") else {
            return Err(Replace::Failed(libc::ENOSYS));
        };
        // The closed MPTCP socket's port can be released a moment after the close (its
        // first subflow is freed later): EADDRINUSE is retried for up to 500 ms.
        let start = std::time::Instant::now();
        loop {
            // SAFETY: `addr` holds `addr_len` bytes of the address getsockname wrote.
            if unsafe { bind(fd, (&raw const addr).cast(), addr_len) } == 0 {
                break;
            }
            let e = errno();
            if e != libc::EADDRINUSE || start.elapsed() > std::time::Duration::from_millis(500) {
                return Err(Replace::Failed(e));
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    Ok(())
}

fn zeroed_storage() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain integers; all zero is valid.
    unsafe { std::mem::zeroed() }
}

fn size_of_storage() -> libc::socklen_t {
    std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t
}

/// True for an MPTCP socket that neither listens nor has a peer.
fn unconnected_mptcp(fd: c_int) -> bool {
    let int = |level: c_int, name: c_int| -> Option<c_int> {
        let mut v: c_int = 0;
        let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
        // SAFETY: `v` is a writable int of `len` bytes.
        let r = unsafe { libc::getsockopt(fd, level, name, (&raw mut v).cast(), &mut len) };
        (r == 0).then_some(v)
    };
    let mut addr = zeroed_storage();
    let mut len = size_of_storage();
    // SAFETY: `addr` is a writable sockaddr_storage of `len` bytes.
    let peer = unsafe { libc::getpeername(fd, (&raw mut addr).cast(), &mut len) };
    int(libc::SOL_SOCKET, libc::SO_PROTOCOL) == Some(IPPROTO_MPTCP)
        && int(libc::SOL_SOCKET, libc::SO_ACCEPTCONN) == Some(0)
        && peer != 0
        && errno() == libc::ENOTCONN
}

/// One line on stderr, once per option, unless `MPTCP_RUN_QUIET` is set.
fn notice(fd: c_int, level: c_int, name: c_int, errno: c_int) {
    let quiet = *QUIET.get_or_init(read_quiet);
    if quiet || !track::first_report(level, name) {
        return;
    }
    let line = format!(
        "mptcp-run: MPTCP refused {} ({}) on socket {fd}, which plain TCP takes: that socket is plain TCP now (MPTCP_RUN_QUIET=1 hides this)\n",
        track::option_name(level, name),
        mptcp::sockopt::errno_name(errno)
    );
    // SAFETY: the pointer and length describe the live `line`; a failed write of a
    // diagnostic is ignored.
    let _ = unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
}

/// `bind(2)`: a tracked socket remembers that it is bound.
#[no_mangle]
pub extern "C" fn bind(fd: c_int, addr: *const libc::sockaddr, len: libc::socklen_t) -> c_int {
    let Some(next) = next_fn::<AddrFn>(&NEXT_BIND, c"bind") else {
        set_errno(libc::ENOSYS);
        return -1;
    };
    // SAFETY: the program's arguments, passed on unchanged.
    let r = unsafe { next(fd, addr, len) };
    if r == 0 {
        track::bound(fd);
    }
    r
}

/// `connect(2)`: from here on, the socket is the kernel's to answer for.
#[no_mangle]
pub extern "C" fn connect(fd: c_int, addr: *const libc::sockaddr, len: libc::socklen_t) -> c_int {
    let Some(next) = next_fn::<AddrFn>(&NEXT_CONNECT, c"connect") else {
        set_errno(libc::ENOSYS);
        return -1;
    };
    let saved = errno();
    track::forget(fd);
    set_errno(saved);
    // SAFETY: the program's arguments, passed on unchanged.
    unsafe { next(fd, addr, len) }
}

/// `listen(2)`: as `connect`.
#[no_mangle]
pub extern "C" fn listen(fd: c_int, backlog: c_int) -> c_int {
    let Some(next) = next_fn::<ListenFn>(&NEXT_LISTEN, c"listen") else {
        set_errno(libc::ENOSYS);
        return -1;
    };
    track::forget(fd);
    // SAFETY: the program's arguments, passed on unchanged.
    unsafe { next(fd, backlog) }
}

/// `close(2)`: the number may be reused by anything.
#[no_mangle]
pub extern "C" fn close(fd: c_int) -> c_int {
    let Some(next) = next_fn::<CloseFn>(&NEXT_CLOSE, c"close") else {
        set_errno(libc::ENOSYS);
        return -1;
    };
    track::forget(fd);
    // SAFETY: the program's argument, passed on unchanged.
    unsafe { next(fd) }
}

/// The next `socket` in the loader's search order, looked up once.
fn next_socket() -> Option<SocketFn> {
    next_fn::<SocketFn>(&NEXT_SOCKET, c"socket")
}

/// A function pointer type of one of the wrapped calls (each is `Copy` and pointer
/// sized).
trait NextFn: Copy {}
impl NextFn for SocketFn {}
impl NextFn for SetsockoptFn {}
impl NextFn for AddrFn {}
impl NextFn for ListenFn {}
impl NextFn for CloseFn {}

/// The next definition of `symbol` in the loader's search order, looked up once into
/// `slot`. `F` must be the C signature of `symbol` (the `NextFn` types above, each
/// used with its own call's name).
fn next_fn<F: NextFn>(slot: &AtomicPtr<c_void>, symbol: &CStr) -> Option<F> {
    let mut p = slot.load(Ordering::Acquire);
    if p.is_null() {
        // SAFETY: RTLD_NEXT with a NUL-terminated symbol name; dlsym has no other
        // precondition. It finds the definition after this library's own.
        p = unsafe { libc::dlsym(libc::RTLD_NEXT, symbol.as_ptr()) };
        if p.is_null() {
            return None;
        }
        slot.store(p, Ordering::Release);
    }
    // SAFETY: `p` is the non-null address of `symbol` in a library loaded after this
    // one (the C library's): a function of that call's C signature, which `F` is (the
    // callers pair each type with its name), and which stays mapped as long as the
    // process runs (the C library is never unloaded). `F` is a function pointer, of the
    // size of `p`.
    Some(unsafe { std::mem::transmute_copy::<*mut c_void, F>(&p) })
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
