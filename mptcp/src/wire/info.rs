//! `struct mptcp_info` as the kernel returned it ([`MptcpInfo`]) and its flags.

use super::versioned::versioned;
use crate::token::Token;

bitflags::bitflags! {
    /// `MPTCP_INFO_FLAG_*`: the state bits of [`MptcpInfo::flags`].
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct InfoFlags: u32 {
        /// The connection fell back to TCP.
        const FALLBACK = mptcp_sys::MPTCP_INFO_FLAG_FALLBACK;
        /// The peer's key was received.
        const REMOTE_KEY_RECEIVED = mptcp_sys::MPTCP_INFO_FLAG_REMOTE_KEY_RECEIVED;
        // Bits a newer kernel may set are kept.
        const _ = !0;
    }
}

impl From<u32> for InfoFlags {
    fn from(v: u32) -> Self {
        InfoFlags::from_bits_retain(v)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for InfoFlags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_u32(self.bits())
    }
}

versioned! {
    /// `struct mptcp_info`: the state of an MPTCP connection, as the kernel returned it;
    /// each field is a method that reads it (nothing is decoded until asked).
    ///
    /// The kernel returns 48 bytes up to Linux 6.4, 80 on 6.5-6.7, 88 on 6.8-6.9 and 96
    /// from 6.10 (44 and 84 instead of 48 and 88 on 32-bit x86, which aligns 64-bit
    /// integers to 4 bytes: the lengths tell the version on each architecture). The 48-byte fields are plain values; the later ones are `None` when
    /// the reply is too short to hold them (a field inside it is what the kernel wrote,
    /// which may be 0 where the kernel does not fill it in that state). [`as_raw`](Self::as_raw)
    /// gives the C struct itself ([`sys_bindings`](crate::sys_bindings)`::mptcp_info`). The `*_max` limit fields are
    /// only filled under the in-kernel path manager.
    ///
    /// ```
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let listener = mptcp::listen("127.0.0.1:0")?; // loopback: no namespace needed
    ///     let stream = mptcp::connect(listener.local_addr()?)?;
    ///     if !mptcp::is_mptcp(&stream)? {
    ///         return Ok(()); // this machine has no MPTCP
    ///     }
    ///     let info = mptcp::info(&stream)?;
    ///     println!("token {}, {} extra subflows", info.token(), info.extra_subflows());
    ///     match info.bytes_acked() {
    ///         Some(n) => println!("{n} bytes acknowledged"),
    ///         None => println!("Linux before 6.5: {} bytes of mptcp_info", info.reply_len()),
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub struct MptcpInfo from mptcp_sys::mptcp_info, base 48 {
        /// Extra subflows: those beyond the initial one that the path manager accounts
        /// for (`mptcpi_subflows`). A connection with two paths in use reads 1.
        extra_subflows: u8 = mptcpi_subflows,
        /// Addresses announced to the peer (ADD_ADDR sent).
        add_addr_signal: u8 = mptcpi_add_addr_signal,
        /// Addresses the peer announced that were accepted.
        add_addr_accepted: u8 = mptcpi_add_addr_accepted,
        /// Limit on extra subflows (in-kernel path manager).
        extra_subflows_max: u8 = mptcpi_subflows_max,
        /// Limit on addresses to announce (in-kernel path manager).
        add_addr_signal_max: u8 = mptcpi_add_addr_signal_max,
        /// Limit on accepted announced addresses (in-kernel path manager).
        add_addr_accepted_max: u8 = mptcpi_add_addr_accepted_max,
        /// State bits.
        flags: InfoFlags = mptcpi_flags,
        /// The local connection token (what the path manager's commands take).
        token: Token = mptcpi_token,
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
    }
    later {
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
        subflows_total: u8 = mptcpi_subflows_total,
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
