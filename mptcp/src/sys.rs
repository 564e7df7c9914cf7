//! The crate's only `unsafe` code: raw socket-option calls and copying kernel structs out
//! of byte buffers. Everything here borrows descriptors; nothing duplicates them.
//!
//! One function per kernel call, as rustix has: each names its option (and says which
//! kernel added it); none takes a level and option name from its caller but
//! [`int_option`]/[`set_int_option`], whose one-`int` value is too short for any option
//! that carries pointers. [`set_known_option`]/[`known_option`] take a
//! [`SockOpt`](crate::sockopt::SockOpt), a closed list of options whose values are plain
//! data.
//!
//! No Rust struct is ever viewed as bytes by Rust code (its padding would be
//! uninitialised): the kernel writes replies straight into structs ([`mptcp_info`]) or
//! into byte buffers they are copied out of ([`read_prefix`]), and structs are read by
//! field. The requests that carry user pointers (`MPTCP_FULL_INFO`, the out-of-tree
//! `MPTCP_SUB_GETSOCKOPT`) are built only here, next to the call that hands them to the
//! kernel ([`getsockopt_raw`]).

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, BorrowedFd};

/// C structs that are valid for every bit pattern (integers, arrays and unions of them),
/// so they may be filled from bytes the kernel wrote.
///
/// # Safety
/// Implementors must be `repr(C)` and contain no references, `bool`s, enums or other
/// types with invalid bit patterns.
pub(crate) unsafe trait Plain: Copy {}

// SAFETY: generated `repr(C)` structs of integer fields, arrays and unions of those only.
unsafe impl Plain for mptcp_sys::mptcp_info {}
// SAFETY: as above.
unsafe impl Plain for mptcp_sys::tcp_info {}
// SAFETY: as above (the unions hold sockaddr structs made of integers).
unsafe impl Plain for mptcp_sys::mptcp_subflow_addrs {}
// SAFETY: as above.
unsafe impl Plain for mptcp_sys::mptcp_subflow_data {}
// SAFETY: as above; the two u64 fields are user pointers stored as integers.
unsafe impl Plain for mptcp_sys::mptcp_full_info {}

// SAFETY: an id byte and a bit-field byte; every pattern is valid.
unsafe impl Plain for mptcp_sys::legacy::mptcp_sub_status {}

/// A `T` of zero bytes (usable in constants).
pub(crate) const fn zeroed<T: Plain>() -> T {
    // SAFETY: all-zero bytes are a valid `T: Plain`.
    unsafe { MaybeUninit::zeroed().assume_init() }
}

/// A value of `T` whose first bytes are `bytes` (at most `size_of::<T>()` of them) and
/// whose remaining bytes are zero.
pub(crate) fn read_prefix<T: Plain>(bytes: &[u8]) -> T {
    if bytes.len() >= size_of::<T>() {
        // SAFETY: `bytes` holds at least size_of::<T>() readable bytes; the read is
        // unaligned-safe; any bytes are a valid `T: Plain`.
        return unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) };
    }
    let mut v = MaybeUninit::<T>::zeroed();
    let n = bytes.len();
    // SAFETY: `v` is a writable `T` of size_of::<T>() > n bytes; the regions cannot
    // overlap (one is a fresh local); all-zero and any other bytes are valid for `T: Plain`.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), v.as_mut_ptr().cast::<u8>(), n);
        v.assume_init()
    }
}

/// A buffer with the size and alignment of `T`, zeroed, to build a request for the
/// kernel field by field and to decode its reply (the out-of-tree API's requests).
#[cfg(feature = "legacy")]
#[repr(C)]
pub(crate) struct Request<T> {
    _align: [T; 0],
    bytes: [u8; 256],
}

#[cfg(feature = "legacy")]
impl<T> Request<T> {
    /// A zeroed request (`T` must fit in 256 bytes; checked at compile time).
    pub(crate) fn new() -> Self {
        const { assert!(size_of::<T>() <= 256) };
        Request {
            _align: [],
            bytes: [0; 256],
        }
    }

    /// Writes a field's bytes at its offset.
    pub(crate) fn put(&mut self, offset: usize, value: &[u8]) {
        self.bytes[offset..offset + value.len()].copy_from_slice(value);
    }

    /// The request's bytes (`size_of::<T>()` of them).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes[..size_of::<T>()]
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[..size_of::<T>()]
    }
}

/// `getsockopt` into `len` bytes at `value`; returns the length the kernel reported.
///
/// # Safety
/// `value` must be valid for writes of `len` bytes for the duration of the call, and
/// when the option's value carries user pointers (`MPTCP_FULL_INFO`,
/// `TCP_ZEROCOPY_RECEIVE`, the out-of-tree `MPTCP_SUB_GETSOCKOPT`), each must be valid
/// for the writes the kernel makes through it.
unsafe fn getsockopt_raw(
    fd: BorrowedFd<'_>,
    level: i32,
    name: i32,
    value: *mut u8,
    len: usize,
) -> io::Result<usize> {
    let mut len =
        libc::socklen_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: the caller guarantees `value` (and any pointer inside it) for `len` bytes;
    // `len` lives across the call; the descriptor is borrowed for its duration.
    let r = unsafe { libc::getsockopt(fd.as_raw_fd(), level, name, value.cast(), &mut len) };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(len as usize)
}

/// `getsockopt` into `buf`; returns the length the kernel reported.
///
/// # Safety
/// The option's value must carry no user pointers: the kernel then writes only into
/// `buf`, at most its length.
unsafe fn getsockopt_bytes(
    fd: BorrowedFd<'_>,
    level: i32,
    name: i32,
    buf: &mut [u8],
) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of its length; the caller guarantees the option
    // carries no pointers.
    unsafe { getsockopt_raw(fd, level, name, buf.as_mut_ptr(), buf.len()) }
}

/// `setsockopt` with the bytes of `value`.
fn setsockopt_bytes(fd: BorrowedFd<'_>, level: i32, name: i32, value: &[u8]) -> io::Result<()> {
    let len = libc::socklen_t::try_from(value.len())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `value` is valid for reads of `len` bytes; the kernel only reads the value
    // (and, for options that carry pointers, reads through them: a bad pointer is its
    // EFAULT, never a write into this process); the descriptor is borrowed for the call.
    let r = unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, value.as_ptr().cast(), len) };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `setsockopt` of one of the options [`SockOpt`](crate::sockopt::SockOpt) names, with
/// the bytes of its value.
#[doc(alias = "setsockopt")]
pub(crate) fn set_known_option(
    fd: BorrowedFd<'_>,
    opt: crate::sockopt::SockOpt,
    value: &[u8],
) -> io::Result<()> {
    let (level, name) = opt.raw();
    setsockopt_bytes(fd, level, name, value)
}

/// `getsockopt` of one of the options [`SockOpt`](crate::sockopt::SockOpt) names, into
/// `buf`; how many bytes the kernel wrote.
#[doc(alias = "getsockopt")]
pub(crate) fn known_option(
    fd: BorrowedFd<'_>,
    opt: crate::sockopt::SockOpt,
    buf: &mut [u8],
) -> io::Result<usize> {
    let (level, name) = opt.raw();
    // SAFETY: every option `SockOpt` names has a value of plain data (ints, a name, a
    // `struct linger`, a `struct tcp_md5sig`): none carries a pointer the kernel would
    // follow, so it writes only into `buf`, at most its length.
    unsafe { getsockopt_bytes(fd, level, name, buf) }
}

/// `SO_COOKIE` (Linux 4.7): the socket's 64-bit id, never reused while the system runs.
#[doc(alias = "SO_COOKIE")]
pub(crate) fn so_cookie(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut buf = [0u8; 8];
    #[cfg(target_os = "android")]
    const SO_COOKIE: i32 = 57; // the generic asm/socket.h number, which every Android ABI uses
    #[cfg(not(target_os = "android"))]
    use libc::SO_COOKIE;
    // SAFETY: SO_COOKIE writes one u64 into the 8-byte `buf`.
    let len = unsafe { getsockopt_bytes(fd, libc::SOL_SOCKET, SO_COOKIE, &mut buf) }?;
    if len != 8 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    Ok(u64::from_ne_bytes(buf))
}

/// `dup3(with, fd, O_CLOEXEC)`: the descriptor number `fd` now refers to the socket
/// `with` refers to (the one it referred to before is closed, atomically), and `with`
/// is closed. The crate's socket builders use it to turn a socket into another in the
/// same descriptor number.
#[doc(alias = "dup3")]
pub(crate) fn replace_socket(fd: BorrowedFd<'_>, with: std::os::fd::OwnedFd) -> io::Result<()> {
    // SAFETY: both descriptors are open for the whole call (`fd` is borrowed, `with`
    // owned). dup3 swaps what `fd` refers to in one step: at no moment is the number
    // closed or free for another open to take, so whoever owns or borrows `fd` keeps a
    // valid descriptor, now to the new socket. `with` is dropped (closed) afterwards.
    #[cfg(not(target_os = "android"))]
    let r = unsafe { libc::dup3(with.as_raw_fd(), fd.as_raw_fd(), libc::O_CLOEXEC) };
    // The `libc` crate has no dup3 for Android: dup2, then close-on-exec (bionic's
    // dup2 makes the number refer to the new socket in one step too).
    #[cfg(target_os = "android")]
    // SAFETY: as above; fcntl only sets the descriptor flag of the number we own.
    let r = unsafe {
        match libc::dup2(with.as_raw_fd(), fd.as_raw_fd()) {
            -1 => -1,
            n => libc::fcntl(n, libc::F_SETFD, libc::FD_CLOEXEC),
        }
    };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The value of an `int` option from the bytes the kernel wrote: 4 in native order, or
/// a single byte (which the kernel writes for some `IP_*` options), whatever the byte
/// order.
fn int_from_reply(buf: [u8; 4], len: usize) -> io::Result<i32> {
    match len {
        4 => Ok(i32::from_ne_bytes(buf)),
        1 => Ok(i32::from(buf[0])),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("an int option's reply of {len} bytes"),
        )),
    }
}

/// `getsockopt` of an `int` option the caller names (the subflow option calls of the
/// path manager).
///
/// Safe for any option: the value handed to the kernel is one `int`, and every option
/// whose value carries a user pointer needs more (`TCP_ZEROCOPY_RECEIVE` at least 12
/// bytes, `MPTCP_FULL_INFO` its whole header, the out-of-tree `MPTCP_SUB_GETSOCKOPT` a
/// struct of two pointers): given 4 bytes, the kernel refuses them with `EINVAL` before
/// reading any pointer.
pub(crate) fn int_option(fd: BorrowedFd<'_>, level: i32, name: i32) -> io::Result<i32> {
    let mut buf = [0u8; 4];
    // SAFETY: a 4-byte value cannot hold the request of a pointer-carrying option (see
    // above), so the kernel writes only into `buf`.
    let len = unsafe { getsockopt_bytes(fd, level, name, &mut buf) }?;
    int_from_reply(buf, len)
}

/// `setsockopt` of an `int` option the caller names.
#[cfg_attr(not(feature = "pm"), allow(dead_code))]
pub(crate) fn set_int_option(
    fd: BorrowedFd<'_>,
    level: i32,
    name: i32,
    value: i32,
) -> io::Result<()> {
    setsockopt_bytes(fd, level, name, &value.to_ne_bytes())
}

/// `getsockopt(SOL_SOCKET, SO_PROTOCOL)`: the protocol the socket was created with.
#[doc(alias = "SO_PROTOCOL")]
pub(crate) fn so_protocol(fd: BorrowedFd<'_>) -> io::Result<i32> {
    int_option(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL)
}

/// `getsockopt(SOL_TCP, TCP_IS_MPTCP)` (Linux 6.10+): whether the connection uses MPTCP.
#[doc(alias = "TCP_IS_MPTCP")]
pub(crate) fn tcp_is_mptcp(fd: BorrowedFd<'_>) -> io::Result<bool> {
    int_option(fd, libc::SOL_TCP, mptcp_sys::TCP_IS_MPTCP as i32).map(|v| v != 0)
}

#[cfg(target_os = "linux")]
const SO_NETNS_COOKIE: i32 = libc::SO_NETNS_COOKIE;
/// `libc` does not define it for Android; bionic's kernel headers use the generic value
/// (asm-generic/socket.h) on every Android architecture.
#[cfg(target_os = "android")]
const SO_NETNS_COOKIE: i32 = 71;

/// `getsockopt(SOL_SOCKET, SO_NETNS_COOKIE)` (Linux 5.14+): the id of the socket's
/// network namespace, never reused.
#[doc(alias = "SO_NETNS_COOKIE")]
pub(crate) fn so_netns_cookie(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut b = [0u8; 8];
    // SAFETY: the option's value is a plain u64.
    let n = unsafe { getsockopt_bytes(fd, libc::SOL_SOCKET, SO_NETNS_COOKIE, &mut b) }?;
    match n {
        8 => Ok(u64::from_ne_bytes(b)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("SO_NETNS_COOKIE of {n} bytes"),
        )),
    }
}

/// `getsockopt(SOL_SOCKET, SO_RCVBUF)`.
#[cfg(any(feature = "pm", feature = "diag"))]
#[doc(alias = "SO_RCVBUF")]
pub(crate) fn so_rcvbuf(fd: BorrowedFd<'_>) -> io::Result<i32> {
    int_option(fd, libc::SOL_SOCKET, libc::SO_RCVBUF)
}

/// `setsockopt(SOL_SOCKET, SO_RCVBUF)`, or `SO_RCVBUFFORCE` (which needs `CAP_NET_ADMIN`
/// and may exceed `net.core.rmem_max`) when `force`.
#[cfg(any(feature = "pm", feature = "diag"))]
#[doc(alias = "SO_RCVBUF")]
#[doc(alias = "SO_RCVBUFFORCE")]
pub(crate) fn set_so_rcvbuf(fd: BorrowedFd<'_>, bytes: i32, force: bool) -> io::Result<()> {
    let name = if force {
        libc::SO_RCVBUFFORCE
    } else {
        libc::SO_RCVBUF
    };
    set_int_option(fd, libc::SOL_SOCKET, name, bytes)
}

/// `getsockopt(SOL_MPTCP, MPTCP_INFO)` straight into `info` (Linux 5.16+), as a C
/// caller passes `&info`: the kernel writes at most its size and the length it wrote
/// is returned; bytes past it keep what `info` held.
#[doc(alias = "MPTCP_INFO")]
pub(crate) fn mptcp_info(
    fd: BorrowedFd<'_>,
    info: &mut mptcp_sys::mptcp_info,
) -> io::Result<usize> {
    let size = size_of::<mptcp_sys::mptcp_info>();
    // SAFETY: `info` is valid for writes of its size, and any bytes the kernel writes
    // (padding included) are a valid `mptcp_info` (`Plain`); the option carries no
    // pointers.
    let len = unsafe {
        getsockopt_raw(
            fd,
            mptcp_sys::SOL_MPTCP as i32,
            mptcp_sys::MPTCP_INFO as i32,
            (info as *mut mptcp_sys::mptcp_info).cast(),
            size,
        )
    }?;
    Ok(len.min(size))
}

/// `getsockopt(SOL_MPTCP, MPTCP_INFO)` into the first `buf.len()` bytes (none: a probe
/// that copies nothing); returns how many the kernel wrote.
#[doc(alias = "MPTCP_INFO")]
pub(crate) fn mptcp_info_prefix(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    let sol = mptcp_sys::SOL_MPTCP as i32;
    // SAFETY: `mptcp_info` holds integers only.
    let len = unsafe { getsockopt_bytes(fd, sol, mptcp_sys::MPTCP_INFO as i32, buf) }?;
    Ok(len.min(buf.len()))
}

/// The two `SOL_MPTCP` options that answer with a `mptcp_subflow_data` header and an
/// array of one element per subflow (Linux 5.16+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubflowArray {
    /// `MPTCP_TCPINFO`: a `tcp_info` per subflow.
    TcpInfo,
    /// `MPTCP_SUBFLOW_ADDRS`: a `mptcp_subflow_addrs` per subflow.
    Addrs,
}

impl SubflowArray {
    /// The option's name, as error messages give it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            SubflowArray::TcpInfo => "MPTCP_TCPINFO",
            SubflowArray::Addrs => "MPTCP_SUBFLOW_ADDRS",
        }
    }

    /// The call, as error messages give it.
    pub(crate) fn op(self) -> &'static str {
        match self {
            SubflowArray::TcpInfo => "getsockopt(MPTCP_TCPINFO)",
            SubflowArray::Addrs => "getsockopt(MPTCP_SUBFLOW_ADDRS)",
        }
    }
}

/// `getsockopt(SOL_MPTCP, MPTCP_TCPINFO or MPTCP_SUBFLOW_ADDRS)`: `buf` starts with the
/// `mptcp_subflow_data` header the caller filled in (its size and the element size it
/// wants); the kernel writes the header back and the array after it.
#[doc(alias = "MPTCP_TCPINFO")]
#[doc(alias = "MPTCP_SUBFLOW_ADDRS")]
pub(crate) fn mptcp_subflow_array(
    fd: BorrowedFd<'_>,
    which: SubflowArray,
    buf: &mut [u8],
) -> io::Result<usize> {
    let name = match which {
        SubflowArray::TcpInfo => mptcp_sys::MPTCP_TCPINFO,
        SubflowArray::Addrs => mptcp_sys::MPTCP_SUBFLOW_ADDRS,
    };
    // SAFETY: the header and the elements hold integers and addresses only.
    unsafe { getsockopt_bytes(fd, mptcp_sys::SOL_MPTCP as i32, name as i32, buf) }
}

/// The out-of-tree kernel's `getsockopt(SOL_TCP, ...)` calls whose values are ids and
/// socket addresses (no pointers): request in `buf`, reply over it.
#[cfg(feature = "legacy")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OotCall {
    /// `MPTCP_GET_SUB_IDS`
    GetSubIds,
    /// `MPTCP_GET_SUB_TUPLE`
    GetSubTuple,
    /// `MPTCP_OPEN_SUB_TUPLE`
    OpenSubTuple,
    /// `MPTCP_CLOSE_SUB_ID`
    CloseSubId,
}

/// One of the out-of-tree kernel's plain `getsockopt` calls ([`OotCall`]); returns the
/// length the kernel reported.
#[cfg(feature = "legacy")]
#[doc(alias = "MPTCP_GET_SUB_IDS")]
#[doc(alias = "MPTCP_GET_SUB_TUPLE")]
#[doc(alias = "MPTCP_OPEN_SUB_TUPLE")]
#[doc(alias = "MPTCP_CLOSE_SUB_ID")]
pub(crate) fn oot_getsockopt(
    fd: BorrowedFd<'_>,
    call: OotCall,
    buf: &mut [u8],
) -> io::Result<usize> {
    use mptcp_sys::legacy as oot;
    let name = match call {
        OotCall::GetSubIds => oot::MPTCP_GET_SUB_IDS,
        OotCall::GetSubTuple => oot::MPTCP_GET_SUB_TUPLE,
        OotCall::OpenSubTuple => oot::MPTCP_OPEN_SUB_TUPLE,
        OotCall::CloseSubId => oot::MPTCP_CLOSE_SUB_ID,
    };
    // SAFETY: these four options' values are ids, states and socket addresses.
    unsafe { getsockopt_bytes(fd, libc::SOL_TCP, name as i32, buf) }
}

/// `getsockopt(SOL_MPTCP, MPTCP_FULL_INFO)` for at most `count` subflows: builds the
/// request (element sizes, count, and the addresses of `sfinfo` and `tcpinfo`, where the
/// kernel writes the arrays) and returns the struct the kernel wrote back in its place.
pub(crate) fn get_full_info(
    fd: BorrowedFd<'_>,
    count: usize,
    sfinfo: &mut [u8],
    tcpinfo: &mut [u8],
) -> io::Result<FullInfoHead> {
    use mptcp_sys::mptcp_full_info as F;
    let sf_size = size_of::<mptcp_sys::mptcp_subflow_info>();
    let tcp_size = size_of::<mptcp_sys::tcp_info>();
    // The kernel writes at most `count` elements of at most these sizes: the buffers
    // must hold that many before their addresses are handed out.
    let too_big = || io::Error::from_raw_os_error(libc::EINVAL);
    let count32 = u32::try_from(count).map_err(|_| too_big())?;
    if sfinfo.len() < count.checked_mul(sf_size).ok_or_else(too_big)?
        || tcpinfo.len() < count.checked_mul(tcp_size).ok_or_else(too_big)?
    {
        return Err(too_big());
    }
    let sf_ptr = if count == 0 {
        0
    } else {
        sfinfo.as_mut_ptr() as u64
    };
    let tcp_ptr = if count == 0 {
        0
    } else {
        tcpinfo.as_mut_ptr() as u64
    };
    // Zeroed as a whole, then filled field by field: the `mptcp_info` the kernel writes
    // back may be shorter than ours (older kernels), and what it leaves must read as
    // zero, as `MptcpInfo`'s accessors promise.
    let mut zeroed = MaybeUninit::<F>::zeroed();
    // SAFETY: all-zero bytes are a valid `F` (`Plain`).
    let head = unsafe { zeroed.assume_init_mut() };
    head.size_tcpinfo_user = tcp_size as u32;
    head.size_sfinfo_user = sf_size as u32;
    head.size_arrays_user = count32;
    head.subflow_info = sf_ptr;
    head.tcp_info = tcp_ptr;
    // SAFETY: `head` is valid for writes of its size (`F: Plain`). The kernel writes at
    // most `count` elements of at most `sf_size`/`tcp_size` bytes through the two
    // pointers, and both buffers were checked above to hold that many; they are
    // exclusively borrowed for the whole call.
    let len = unsafe {
        getsockopt_raw(
            fd,
            mptcp_sys::SOL_MPTCP as i32,
            mptcp_sys::MPTCP_FULL_INFO as i32,
            (head as *mut F).cast(),
            size_of::<F>(),
        )
    }?
    .min(size_of::<F>());
    // The pointers are ours, not the kernel's answer: clear them.
    head.subflow_info = 0;
    head.tcp_info = 0;
    Ok(FullInfoHead { head: *head, len })
}

/// The `struct mptcp_full_info` the kernel returned (without the request's pointers)
/// and how many of its bytes it wrote.
pub(crate) struct FullInfoHead {
    pub(crate) head: mptcp_sys::mptcp_full_info,
    pub(crate) len: usize,
}

impl FullInfoHead {
    /// The header whose first bytes are `bytes` (as the kernel would return them).
    #[cfg(test)]
    pub(crate) fn from_bytes(bytes: &[u8]) -> Self {
        FullInfoHead {
            head: read_prefix(bytes),
            len: bytes.len().min(size_of::<mptcp_sys::mptcp_full_info>()),
        }
    }

    /// How many bytes of its `mptcp_info` (the struct's last field) the kernel wrote.
    pub(crate) fn info_len(&self) -> usize {
        self.len
            .saturating_sub(std::mem::offset_of!(mptcp_sys::mptcp_full_info, mptcp_info))
    }
}

/// The out-of-tree `MPTCP_SUB_GETSOCKOPT` of an `int` option of one subflow: the request
/// carries pointers to the value and its length.
#[cfg(feature = "legacy")]
pub(crate) fn sub_getsockopt_int(
    fd: BorrowedFd<'_>,
    id: u8,
    level: i32,
    name: i32,
) -> io::Result<i32> {
    use mptcp_sys::legacy::mptcp_sub_getsockopt as G;
    use std::mem::offset_of;
    let mut value = 0i32;
    let mut len = size_of::<i32>() as u32;
    let mut req = Request::<G>::new();
    req.put(offset_of!(G, id), &[id]);
    req.put(offset_of!(G, level), &level.to_ne_bytes());
    req.put(offset_of!(G, optname), &name.to_ne_bytes());
    req.put(
        offset_of!(G, optval),
        &((&mut value as *mut i32) as usize).to_ne_bytes(),
    );
    req.put(
        offset_of!(G, optlen),
        &((&mut len as *mut u32) as usize).to_ne_bytes(),
    );
    let buf = req.bytes_mut();
    // SAFETY: `buf` is valid for writes of its length; the kernel writes at most
    // `len` (4) bytes through the value pointer and a `u32` through the length pointer,
    // and `value` and `len` live across the call.
    unsafe {
        getsockopt_raw(
            fd,
            libc::SOL_TCP,
            mptcp_sys::legacy::MPTCP_SUB_GETSOCKOPT as i32,
            buf.as_mut_ptr(),
            buf.len(),
        )
    }?;
    Ok(value)
}

/// The out-of-tree `MPTCP_SUB_SETSOCKOPT` of an `int` option of one subflow: the request
/// carries a pointer to the value.
#[cfg(feature = "legacy")]
pub(crate) fn sub_setsockopt_int(
    fd: BorrowedFd<'_>,
    id: u8,
    level: i32,
    name: i32,
    value: i32,
) -> io::Result<()> {
    use mptcp_sys::legacy::mptcp_sub_setsockopt as S;
    use std::mem::offset_of;
    let mut req = Request::<S>::new();
    req.put(offset_of!(S, id), &[id]);
    req.put(offset_of!(S, level), &level.to_ne_bytes());
    req.put(offset_of!(S, optname), &name.to_ne_bytes());
    req.put(
        offset_of!(S, optval),
        &((&value as *const i32) as usize).to_ne_bytes(),
    );
    req.put(
        offset_of!(S, optlen),
        &(size_of::<i32>() as u32).to_ne_bytes(),
    );
    // `value` lives across the call, which only reads it.
    setsockopt_bytes(
        fd,
        libc::SOL_TCP,
        mptcp_sys::legacy::MPTCP_SUB_SETSOCKOPT as i32,
        req.bytes(),
    )
}

/// Registers an owned netlink socket with tokio's reactor (must run inside a runtime).
#[cfg(all(feature = "pm", feature = "tokio"))]
pub(crate) fn register_netlink(
    sock: netlink_sys::Socket,
) -> io::Result<tokio::io::unix::AsyncFd<netlink_sys::Socket>> {
    // SAFETY: the netlink socket owns its descriptor, keeps it open until it is dropped,
    // and always returns that same descriptor from as_raw_fd; the AsyncFd owns the
    // socket, so the descriptor outlives the registration.
    unsafe { tokio::io::unix::AsyncFd::register(sock) }.map_err(|e| io::Error::other(e.to_string()))
}

/// `if_nametoindex(3)`: the index of a network interface.
#[cfg(feature = "pm")]
pub(crate) fn if_nametoindex(name: &str) -> io::Result<u32> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the name"))?;
    // SAFETY: `c` is a valid NUL-terminated string that lives across the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(i)
}

/// `if_indextoname(3)`: the name of a network interface.
#[cfg(feature = "pm")]
pub(crate) fn if_indextoname(index: u32) -> io::Result<String> {
    let mut buf = [0u8; libc::IF_NAMESIZE];
    // SAFETY: `buf` has room for IF_NAMESIZE bytes, as the call requires, and lives across
    // the call; on success the call wrote a NUL-terminated name into it.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr().cast()) };
    if p.is_null() {
        return Err(io::Error::last_os_error());
    }
    let len = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(&buf[..len]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::int_from_reply;

    /// A one-byte reply is that byte's value on either byte order (reading it into the
    /// first byte of a native-order `int` gave 0x0700_0000 on big-endian targets).
    #[test]
    fn a_short_int_reply_widens_on_every_byte_order() {
        assert_eq!(int_from_reply([7, 0, 0, 0], 1).ok(), Some(7));
        assert_eq!(int_from_reply([0xff, 0xaa, 0xbb, 0xcc], 1).ok(), Some(255));
        let v = 0x0102_0304i32;
        assert_eq!(int_from_reply(v.to_ne_bytes(), 4).ok(), Some(v));
        assert!(int_from_reply([0; 4], 2).is_err());
        assert!(int_from_reply([0; 4], 0).is_err());
    }
}
