//! The protocol's facts that every layer needs (the socket builders, the kernel probes,
//! the status and diag code), below all of them: this module imports nothing of the
//! crate.

/// The protocol number of MPTCP sockets (`IPPROTO_MPTCP`, 262 in Linux's UAPI; the
/// value is defined on every OS so that portable code can name it).
pub const IPPROTO_MPTCP: i32 = 262;

#[cfg(any(target_os = "linux", target_os = "android"))]
const _: () = assert!(IPPROTO_MPTCP == mptcp_sys::IPPROTO_MPTCP as i32);

/// socket2's `Protocol::MPTCP`, which it defines for Linux only; the same number on
/// Android.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn mptcp_protocol() -> socket2::Protocol {
    #[cfg(target_os = "linux")]
    return socket2::Protocol::MPTCP;
    #[cfg(target_os = "android")]
    return socket2::Protocol::from(IPPROTO_MPTCP);
}
