//! Connection-level information: `getsockopt(SOL_MPTCP, MPTCP_INFO)` (the type and its
//! decoding are `wire::info`).

use crate::error::{Error, Result};
use crate::kernel::{classify, no_connection};
use crate::sys;
use crate::token::Token;
pub(crate) use crate::wire::info::MptcpInfo;
use std::mem::offset_of;
use std::os::fd::AsFd;

/// Reads `MPTCP_INFO` (a token of 0 included: the callers decide what it means). The
/// kernel writes into the value returned: no buffer, no copy.
pub(crate) fn raw_info(fd: std::os::fd::BorrowedFd<'_>) -> Result<MptcpInfo> {
    let mut info = MptcpInfo::empty();
    let len = sys::mptcp_info(fd, info.raw_mut())
        .map_err(|e| classify(fd, e, "getsockopt(MPTCP_INFO)", "MPTCP_INFO", Some("5.16")))?;
    info.set_reply_len(len)?;
    Ok(info)
}

/// Reads the first `buf.len()` bytes of `MPTCP_INFO` (fewer if the kernel has fewer);
/// returns how many the kernel wrote.
fn read_info(fd: std::os::fd::BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize> {
    sys::mptcp_info_prefix(fd, buf)
        .map_err(|e| classify(fd, e, "getsockopt(MPTCP_INFO)", "MPTCP_INFO", Some("5.16")))
}

/// The [`MptcpInfo`] of a connected MPTCP socket, borrowed.
///
/// Errors: [`Error::NotMptcp`] for a non-socket, a UDP socket or a plain TCP socket;
/// [`Error::NoConnection`] for a listener or an unconnected socket;
/// [`Error::FellBack`] when the connection fell back to TCP; [`Error::Unsupported`]
/// before Linux 5.16.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = mptcp::listen("127.0.0.1:0")?; // loopback: no namespace needed
/// let stream = mptcp::connect(listener.local_addr()?)?;
/// # if !mptcp::is_mptcp(&stream)? { return Ok(()) } // this machine has no MPTCP
/// let info = mptcp::info(&stream)?;
/// assert_ne!(info.token().get(), 0);
/// println!("token {}, {} extra subflows", info.token(), info.extra_subflows());
/// # Ok(()) }
/// ```
#[doc(alias = "MPTCP_INFO")]
#[doc(alias = "mptcp_info")]
pub fn info(fd: impl AsFd) -> Result<MptcpInfo> {
    let fd = fd.as_fd();
    let info = raw_info(fd)?;
    if info.token().get() == 0 {
        return Err(no_connection(fd));
    }
    Ok(info)
}

/// The local connection token alone: what the path manager's netlink commands take.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = mptcp::listen("127.0.0.1:0")?; // loopback: no namespace needed
/// let stream = mptcp::connect(listener.local_addr()?)?;
/// # if !mptcp::is_mptcp(&stream)? { return Ok(()) } // this machine has no MPTCP
/// let token = mptcp::token(&stream)?;
/// assert_eq!(token, mptcp::info(&stream)?.token());
/// println!("token {token}"); // hex, as `ip mptcp monitor` prints it
/// # Ok(()) }
/// ```
#[doc(alias = "MPTCP_INFO")]
#[doc(alias = "mptcpi_token")]
pub fn token(fd: impl AsFd) -> Result<Token> {
    let fd = fd.as_fd();
    const AT: usize = offset_of!(mptcp_sys::mptcp_info, mptcpi_token);
    let mut buf = [0u8; AT + 4];
    let len = read_info(fd, &mut buf)?;
    let bytes: [u8; 4] = buf
        .get(AT..len)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::decode("MPTCP_INFO", format!("{len} bytes, no token")))?;
    match u32::from_ne_bytes(bytes) {
        0 => Err(no_connection(fd)),
        t => Ok(Token::new(t)),
    }
}
