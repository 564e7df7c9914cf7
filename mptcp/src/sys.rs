//! The crate's only `unsafe` code: raw socket-option calls and copying kernel structs out
//! of byte buffers. Everything here borrows descriptors; nothing duplicates them.

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
// SAFETY: integers and two raw pointers, which are valid for any bit pattern (they are
// only handed to the kernel, never dereferenced here).
unsafe impl Plain for mptcp_sys::legacy::mptcp_sub_getsockopt {}
// SAFETY: as above.
unsafe impl Plain for mptcp_sys::legacy::mptcp_sub_setsockopt {}

/// A value of `T` whose first bytes are `bytes` (at most `size_of::<T>()` of them) and
/// whose remaining bytes are zero.
pub(crate) fn read_prefix<T: Plain>(bytes: &[u8]) -> T {
    let mut v = MaybeUninit::<T>::zeroed();
    let n = bytes.len().min(size_of::<T>());
    // SAFETY: `v` is a writable `T` of size_of::<T>() >= n bytes; the regions cannot
    // overlap (one is a fresh local); all-zero and any other bytes are valid for `T: Plain`.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), v.as_mut_ptr().cast::<u8>(), n);
        v.assume_init()
    }
}

/// The bytes of a `Plain` value, to hand to the kernel.
pub(crate) fn as_bytes_mut<T: Plain>(v: &mut T) -> &mut [u8] {
    // SAFETY: `v` is a valid, exclusively borrowed `T`; every byte pattern written
    // through the slice leaves a valid `T` (`Plain`). Padding bytes are only written.
    unsafe { std::slice::from_raw_parts_mut((v as *mut T).cast::<u8>(), size_of::<T>()) }
}

/// `getsockopt` into `buf`; returns the length the kernel reported.
pub(crate) fn getsockopt_buf(
    fd: BorrowedFd<'_>,
    level: i32,
    name: i32,
    buf: &mut [u8],
) -> io::Result<usize> {
    let mut len = libc::socklen_t::try_from(buf.len())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `buf` is valid for writes of `len` bytes and `len` lives across the call;
    // the descriptor is borrowed, so it stays open for the duration of the call.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(len as usize)
}

/// `getsockopt` of an `int` option.
pub(crate) fn getsockopt_int(fd: BorrowedFd<'_>, level: i32, name: i32) -> io::Result<i32> {
    let mut buf = [0u8; 4];
    let len = getsockopt_buf(fd, level, name, &mut buf)?;
    if len < 4 {
        // Some options write a single byte; widen what the kernel gave.
        let mut v = [0u8; 4];
        v[..len].copy_from_slice(&buf[..len]);
        return Ok(i32::from_ne_bytes(v));
    }
    Ok(i32::from_ne_bytes(buf))
}

/// `setsockopt` with a byte buffer.
#[cfg_attr(not(feature = "legacy"), allow(dead_code))]
pub(crate) fn setsockopt_buf(
    fd: BorrowedFd<'_>,
    level: i32,
    name: i32,
    buf: &[u8],
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(buf.len())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `buf` is valid for reads of `len` bytes; the descriptor is borrowed for the
    // duration of the call.
    let r = unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, buf.as_ptr().cast(), len) };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `setsockopt` of an `int` option.
#[cfg_attr(not(any(feature = "pm", feature = "legacy")), allow(dead_code))]
pub(crate) fn setsockopt_int(
    fd: BorrowedFd<'_>,
    level: i32,
    name: i32,
    value: i32,
) -> io::Result<()> {
    // SAFETY: the value pointer and length describe a live `i32`; the descriptor is
    // borrowed for the duration of the call.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            size_of::<i32>() as libc::socklen_t,
        )
    };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `getsockopt(SOL_MPTCP, MPTCP_FULL_INFO)`: the kernel fills `full` and writes the two
/// arrays through the pointers this function stores in it, pointing at `sfinfo` and
/// `tcpinfo`. Returns the length written to `full`.
pub(crate) fn get_full_info(
    fd: BorrowedFd<'_>,
    full: &mut mptcp_sys::mptcp_full_info,
    sfinfo: &mut [u8],
    tcpinfo: &mut [u8],
) -> io::Result<usize> {
    // The kernel writes at most size_arrays_user elements of the (clamped) user sizes:
    // make sure the buffers hold that many before handing out their addresses.
    let n = full.size_arrays_user as usize;
    if sfinfo.len() < n * full.size_sfinfo_user as usize
        || tcpinfo.len() < n * full.size_tcpinfo_user as usize
    {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    full.subflow_info = sfinfo.as_mut_ptr() as u64;
    full.tcp_info = tcpinfo.as_mut_ptr() as u64;
    let r = getsockopt_buf(
        fd,
        mptcp_sys::SOL_MPTCP as i32,
        mptcp_sys::MPTCP_FULL_INFO as i32,
        as_bytes_mut(full),
    );
    full.subflow_info = 0;
    full.tcp_info = 0;
    r
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
