//! Connection-level information: `getsockopt(SOL_MPTCP, MPTCP_INFO)`.

use crate::error::Result;
use crate::status::{classify, no_connection};
use crate::sys;
use std::mem::{offset_of, size_of};
use std::os::fd::AsFd;

/// Defines an owned, versioned copy of a kernel struct: every field is an `Option`,
/// `None` when the kernel's reply was too short to contain it (an older kernel). A field
/// may name the reply length that first carries it (`@ 80`), for fields that an older,
/// padded struct covered with padding.
macro_rules! versioned {
    (
        $(#[$meta:meta])*
        pub struct $name:ident from $raw:ty {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty = $rawf:ident $(@ $since:literal)?, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize))]
        #[non_exhaustive]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: Option<$ty>, )*
        }

        impl $name {
            /// Decodes the first `len` bytes the kernel returned.
            pub(crate) fn decode(bytes: &[u8]) -> Self {
                let len = bytes.len();
                let raw: $raw = sys::read_prefix(bytes);
                Self {
                    $( $field: {
                        let end = offset_of!($raw, $rawf) + size_of::<$ty>();
                        let needed = [end $(, $since)?].into_iter().max().unwrap_or(end);
                        (needed <= len).then(|| <$ty>::from(raw.$rawf))
                    }, )*
                }
            }
        }
    };
}
pub(crate) use versioned;

versioned! {
    /// `struct mptcp_info`: the state of an MPTCP connection.
    ///
    /// The kernel returns 48 bytes up to Linux 6.4, 80 on 6.5-6.7, 88 on 6.8-6.9 and 96
    /// from 6.10; fields past what it returned are `None`, never zero. The `*_max` limit
    /// fields are only filled under the in-kernel path manager.
    pub struct MptcpInfo from mptcp_sys::mptcp_info {
        /// Extra subflows: those beyond the initial one that the path manager accounts
        /// for (`mptcpi_subflows`). A connection with two paths in use reads 1.
        subflows: u8 = mptcpi_subflows,
        /// Addresses announced to the peer (ADD_ADDR sent).
        add_addr_signal: u8 = mptcpi_add_addr_signal,
        /// Addresses the peer announced that were accepted.
        add_addr_accepted: u8 = mptcpi_add_addr_accepted,
        /// Limit on extra subflows (in-kernel path manager).
        subflows_max: u8 = mptcpi_subflows_max,
        /// Limit on addresses to announce (in-kernel path manager).
        add_addr_signal_max: u8 = mptcpi_add_addr_signal_max,
        /// Limit on accepted announced addresses (in-kernel path manager).
        add_addr_accepted_max: u8 = mptcpi_add_addr_accepted_max,
        /// `MPTCP_INFO_FLAG_*` bits.
        flags: u32 = mptcpi_flags,
        /// The local connection token (what the path manager's commands take).
        token: u32 = mptcpi_token,
        /// Next data sequence number to send.
        write_seq: u64 = mptcpi_write_seq,
        /// Oldest unacknowledged data sequence number.
        snd_una: u64 = mptcpi_snd_una,
        /// Next data sequence number expected from the peer.
        rcv_nxt: u64 = mptcpi_rcv_nxt,
        /// Local endpoints used for subflows (Linux 5.12+).
        local_addr_used: u8 = mptcpi_local_addr_used,
        /// Limit on local endpoints for subflows (Linux 5.12+).
        local_addr_max: u8 = mptcpi_local_addr_max,
        /// 1 when DSS checksums are in use (Linux 5.14+).
        csum_enabled: u8 = mptcpi_csum_enabled,
        /// Retransmitted data-level segments (Linux 6.5+).
        retransmits: u32 = mptcpi_retransmits @ 80,
        /// Retransmitted bytes at the data level (Linux 6.5+).
        bytes_retrans: u64 = mptcpi_bytes_retrans @ 80,
        /// Bytes sent, all subflows (Linux 6.5+).
        bytes_sent: u64 = mptcpi_bytes_sent @ 80,
        /// Bytes received, all subflows (Linux 6.5+).
        bytes_received: u64 = mptcpi_bytes_received @ 80,
        /// Bytes acknowledged at the data level (Linux 6.5+).
        bytes_acked: u64 = mptcpi_bytes_acked @ 80,
        /// The kernel's own count of the connection's subflows (Linux 6.8+): the extra
        /// subflows the path manager currently accounts for, plus one while the
        /// initial subflow is open. It is not a count of subflows ever created, and it
        /// can differ from the number [`subflows`](crate::subflows) lists while
        /// subflows are being set up or torn down (seen on 6.18: 4 while 5 were listed).
        subflows_total: u8 = mptcpi_subflows_total @ 88,
        /// Limit of laminar endpoints (Linux 6.18+). A reserved byte before: 0 on
        /// 6.10-6.17, which return 96 bytes too.
        endp_laminar_max: u8 = mptcpi_endp_laminar_max @ 96,
        /// Limit of fullmesh endpoints (Linux 6.19+). A reserved byte before: 0 on
        /// 6.10-6.18, which return 96 bytes too.
        endp_fullmesh_max: u8 = mptcpi_endp_fullmesh_max @ 96,
        /// Milliseconds since data was last sent (Linux 6.10+).
        last_data_sent: u32 = mptcpi_last_data_sent @ 96,
        /// Milliseconds since data was last received (Linux 6.10+).
        last_data_recv: u32 = mptcpi_last_data_recv,
        /// Milliseconds since an ack was last received (Linux 6.10+).
        last_ack_recv: u32 = mptcpi_last_ack_recv,
    }
}

impl MptcpInfo {
    /// True when the kernel says the connection fell back to TCP
    /// (`MPTCP_INFO_FLAG_FALLBACK`; in practice a fallen-back socket refuses
    /// `MPTCP_INFO` altogether, see [`Error::FellBack`]).
    pub fn fallback_flag(&self) -> bool {
        self.flags
            .is_some_and(|f| f & mptcp_sys::MPTCP_INFO_FLAG_FALLBACK != 0)
    }
}

/// Reads `MPTCP_INFO` into a buffer; returns the bytes the kernel returned.
pub(crate) fn raw_info(fd: std::os::fd::BorrowedFd<'_>) -> Result<Vec<u8>> {
    read_info(fd, size_of::<mptcp_sys::mptcp_info>())
}

/// Reads the first `len` bytes of `MPTCP_INFO` (fewer if the kernel has fewer).
fn read_info(fd: std::os::fd::BorrowedFd<'_>, len: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let len = sys::getsockopt_buf(
        fd,
        mptcp_sys::SOL_MPTCP as i32,
        mptcp_sys::MPTCP_INFO as i32,
        &mut buf,
    )
    .map_err(|e| classify(fd, e, "getsockopt(MPTCP_INFO)", "MPTCP_INFO", Some("5.16")))?;
    buf.truncate(len);
    Ok(buf)
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
/// assert_ne!(info.token, Some(0));
/// println!("token {:08x}, {} extra subflows", info.token.unwrap_or(0), info.subflows.unwrap_or(0));
/// # Ok(()) }
/// ```
#[doc(alias = "MPTCP_INFO")]
#[doc(alias = "mptcp_info")]
pub fn info(fd: impl AsFd) -> Result<MptcpInfo> {
    let fd = fd.as_fd();
    let info = MptcpInfo::decode(&raw_info(fd)?);
    if info.token == Some(0) {
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
/// assert_eq!(Some(token), mptcp::info(&stream)?.token);
/// println!("token {token:08x}");
/// # Ok(()) }
/// ```
#[doc(alias = "MPTCP_INFO")]
#[doc(alias = "mptcpi_token")]
pub fn token(fd: impl AsFd) -> Result<u32> {
    let fd = fd.as_fd();
    let buf = read_info(fd, offset_of!(mptcp_sys::mptcp_info, mptcpi_token) + 4)?;
    match MptcpInfo::decode(&buf).token {
        Some(0) | None => Err(no_connection(fd)),
        Some(t) => Ok(t),
    }
}
