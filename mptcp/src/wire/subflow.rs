//! A connection's subflows as `MPTCP_FULL_INFO` (and the older `MPTCP_SUBFLOW_ADDRS`
//! and `MPTCP_TCPINFO`) return them: [`TcpInfo`], [`Subflow`], [`Connection`], and the
//! decoder that reads a reply into a `Connection` in place.

use super::info::MptcpInfo;
use super::sockaddr;
use super::versioned::versioned;
use crate::error::{Error, Result};
use crate::sys;
use std::mem::{offset_of, size_of};
use std::net::SocketAddr;

versioned! {
    /// `struct tcp_info` of one subflow, as the kernel returned it; each field is a
    /// method that reads it (nothing is decoded until asked). The kernel's struct grows
    /// over versions: every kernel with MPTCP's subflow calls (5.16+) returns at least
    /// 232 bytes, up to `snd_wnd`, whose fields are plain values; 6.2 returns 240, 6.7
    /// 248, 6.18 280, and the fields past what the running kernel returned are `None`
    /// (a field inside the reply is what the kernel wrote, 0 where it does not fill it). [`as_raw`](Self::as_raw) gives the C struct itself.
    ///
    /// ```
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let listener = mptcp::listen("127.0.0.1:0")?; // loopback: no namespace needed
    ///     let stream = mptcp::connect(listener.local_addr()?)?;
    ///     if !mptcp::is_mptcp(&stream)? {
    ///         return Ok(()); // this machine has no MPTCP
    ///     }
    ///     for sf in mptcp::subflows(&stream)? {
    ///         let t = &sf.tcp_info;
    ///         println!("{}: rtt {} us, {} bytes acked", sf.local, t.rtt(), t.bytes_acked());
    ///         if let Some(rtos) = t.total_rto() {
    ///             println!("  {rtos} retransmission timeouts");
    ///         }
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub struct TcpInfo from mptcp_sys::tcp_info, base 232 {
        /// Connection state (`TCP_ESTABLISHED` = 1, ...).
        state: u8 = tcpi_state,
        /// Congestion-avoidance state.
        ca_state: u8 = tcpi_ca_state,
        /// Retransmissions of the current segment.
        retransmits: u8 = tcpi_retransmits,
        /// Unanswered zero-window probes.
        probes: u8 = tcpi_probes,
        /// Exponential backoff count.
        backoff: u8 = tcpi_backoff,
        /// `TCPI_OPT_*` bits negotiated.
        options: u8 = tcpi_options,
        /// Retransmission timeout, microseconds.
        rto: u32 = tcpi_rto,
        /// Delayed-ack timeout, microseconds.
        ato: u32 = tcpi_ato,
        /// Sending MSS.
        snd_mss: u32 = tcpi_snd_mss,
        /// Receiving MSS estimate.
        rcv_mss: u32 = tcpi_rcv_mss,
        /// Segments sent and not yet acknowledged.
        unacked: u32 = tcpi_unacked,
        /// Segments selectively acknowledged.
        sacked: u32 = tcpi_sacked,
        /// Segments considered lost.
        lost: u32 = tcpi_lost,
        /// Segments retransmitted and in flight.
        retrans: u32 = tcpi_retrans,
        /// Forward-acknowledged segments (unused by modern kernels).
        fackets: u32 = tcpi_fackets,
        /// Milliseconds since data was last sent.
        last_data_sent: u32 = tcpi_last_data_sent,
        /// Milliseconds since an ack was last sent (unused by the kernel).
        last_ack_sent: u32 = tcpi_last_ack_sent,
        /// Milliseconds since data was last received.
        last_data_recv: u32 = tcpi_last_data_recv,
        /// Milliseconds since an ack was last received.
        last_ack_recv: u32 = tcpi_last_ack_recv,
        /// Path MTU.
        pmtu: u32 = tcpi_pmtu,
        /// Receive slow-start threshold.
        rcv_ssthresh: u32 = tcpi_rcv_ssthresh,
        /// Smoothed round-trip time, microseconds.
        rtt: u32 = tcpi_rtt,
        /// Round-trip time variance, microseconds.
        rttvar: u32 = tcpi_rttvar,
        /// Send slow-start threshold.
        snd_ssthresh: u32 = tcpi_snd_ssthresh,
        /// Congestion window, segments.
        snd_cwnd: u32 = tcpi_snd_cwnd,
        /// Advertised MSS.
        advmss: u32 = tcpi_advmss,
        /// Reordering metric.
        reordering: u32 = tcpi_reordering,
        /// Receiver-side RTT estimate, microseconds.
        rcv_rtt: u32 = tcpi_rcv_rtt,
        /// Receive-buffer space estimate.
        rcv_space: u32 = tcpi_rcv_space,
        /// Retransmissions over the subflow's life.
        total_retrans: u32 = tcpi_total_retrans,
        /// Pacing rate, bytes per second.
        pacing_rate: u64 = tcpi_pacing_rate,
        /// Maximum pacing rate, bytes per second.
        max_pacing_rate: u64 = tcpi_max_pacing_rate,
        /// Bytes acknowledged (RFC 4898 tcpEStatsAppHCThruOctetsAcked).
        bytes_acked: u64 = tcpi_bytes_acked,
        /// Bytes received (RFC 4898 tcpEStatsAppHCThruOctetsReceived).
        bytes_received: u64 = tcpi_bytes_received,
        /// Segments sent.
        segs_out: u32 = tcpi_segs_out,
        /// Segments received.
        segs_in: u32 = tcpi_segs_in,
        /// Bytes queued and not yet sent.
        notsent_bytes: u32 = tcpi_notsent_bytes,
        /// Minimum RTT seen, microseconds.
        min_rtt: u32 = tcpi_min_rtt,
        /// Segments received carrying data.
        data_segs_in: u32 = tcpi_data_segs_in,
        /// Segments sent carrying data.
        data_segs_out: u32 = tcpi_data_segs_out,
        /// Delivery rate, bytes per second.
        delivery_rate: u64 = tcpi_delivery_rate,
        /// Time with data in flight, microseconds.
        busy_time: u64 = tcpi_busy_time,
        /// Time limited by the receive window, microseconds.
        rwnd_limited: u64 = tcpi_rwnd_limited,
        /// Time limited by the send buffer, microseconds.
        sndbuf_limited: u64 = tcpi_sndbuf_limited,
        /// Segments delivered.
        delivered: u32 = tcpi_delivered,
        /// Segments delivered with an ECN CE mark.
        delivered_ce: u32 = tcpi_delivered_ce,
        /// Bytes sent, retransmissions included.
        bytes_sent: u64 = tcpi_bytes_sent,
        /// Bytes retransmitted.
        bytes_retrans: u64 = tcpi_bytes_retrans,
        /// Duplicate segments reported by DSACK.
        dsack_dups: u32 = tcpi_dsack_dups,
        /// Reordering events seen.
        reord_seen: u32 = tcpi_reord_seen,
        /// Out-of-order packets received.
        rcv_ooopack: u32 = tcpi_rcv_ooopack,
        /// Peer's advertised receive window, bytes.
        snd_wnd: u32 = tcpi_snd_wnd,
    }
    // Bytes 6 and 7, within every reply.
    bits {
        /// The window scale the peer announced: the shift of the windows it advertises,
        /// which bound what this side sends (`S` of `wscale:S,R` in `ss -i`); 0 when
        /// window scaling was not negotiated.
        snd_wscale: u8 = tcpi_snd_wscale,
        /// The window scale this side announced: the shift of the windows it
        /// advertises (`R` of `wscale:S,R` in `ss -i`).
        rcv_wscale: u8 = tcpi_rcv_wscale,
        /// The last delivery-rate sample was limited by the application, not the
        /// network (`app_limited` in `ss -i`).
        delivery_rate_app_limited: bool = tcpi_delivery_rate_app_limited,
        /// Why a TCP Fast Open attempt failed (`TFO_STATUS_UNSPEC` = 0, ...; Linux
        /// 5.5+, so present wherever MPTCP's subflow calls are).
        fastopen_client_fail: u8 = tcpi_fastopen_client_fail,
    }
    later {
        /// Local advertised receive window, bytes.
        rcv_wnd: u32 = tcpi_rcv_wnd,
        /// PLB or timeout-triggered rehashes.
        rehash: u32 = tcpi_rehash,
        /// Retransmission timeouts.
        total_rto: u16 = tcpi_total_rto,
        /// Recoveries from retransmission timeouts.
        total_rto_recoveries: u16 = tcpi_total_rto_recoveries,
        /// Time spent in timeout recovery, milliseconds.
        total_rto_time: u32 = tcpi_total_rto_time,
        /// Segments received with an ECN CE mark.
        received_ce: u32 = tcpi_received_ce,
        /// Bytes delivered with ECT(1) (AccECN).
        delivered_e1_bytes: u32 = tcpi_delivered_e1_bytes,
        /// Bytes delivered with ECT(0) (AccECN).
        delivered_e0_bytes: u32 = tcpi_delivered_e0_bytes,
        /// Bytes delivered with CE (AccECN).
        delivered_ce_bytes: u32 = tcpi_delivered_ce_bytes,
        /// Bytes received with ECT(1) (AccECN).
        received_e1_bytes: u32 = tcpi_received_e1_bytes,
        /// Bytes received with ECT(0) (AccECN).
        received_e0_bytes: u32 = tcpi_received_e0_bytes,
        /// Bytes received with CE (AccECN).
        received_ce_bytes: u32 = tcpi_received_ce_bytes,
    }
}

/// One subflow of an MPTCP connection.
///
/// ```
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let listener = mptcp::listen("127.0.0.1:0")?; // loopback: no namespace needed
///     let stream = mptcp::connect(listener.local_addr()?)?;
///     if !mptcp::is_mptcp(&stream)? {
///         return Ok(()); // this machine has no MPTCP
///     }
///     let subflows = mptcp::subflows(&stream)?;
///     assert_eq!(subflows[0].local, stream.local_addr()?, "the initial subflow");
///     for sf in &subflows {
///         println!("{:?}: {} -> {}", sf.id, sf.local, sf.remote); // id: Linux 6.5+
///     }
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Subflow {
    /// The subflow's id (the initial subflow is 1). `None` on Linux 5.16-6.4, whose
    /// `MPTCP_SUBFLOW_ADDRS` reply carries no ids; `MPTCP_FULL_INFO` (6.5+) does.
    pub id: Option<u32>,
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
    /// The subflow's `tcp_info`.
    pub tcp_info: TcpInfo,
}

/// A subflow's id and addresses: what the seed's `GetSubTuple` returns, from the path
/// manager's [`SubflowHandle::subflow`](crate::pm::SubflowHandle::subflow) on upstream
/// kernels and from `legacy::get_sub_tuple` (feature `legacy`) on the out-of-tree
/// ones. ([`Subflow`] is the full view, with `tcp_info`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct SubflowTuple {
    /// Subflow id (the initial subflow is 1).
    pub id: u32,
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
    /// Backup priority (the seed's `Prio`: true = low priority), when known: upstream
    /// offers no per-subflow priority in `getsockopt`, so it is what a
    /// [`SubflowHandle`](crate::pm::SubflowHandle) set, and `None` otherwise.
    pub backup: Option<bool>,
}

/// A connection's [`MptcpInfo`] and its subflows, read together.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Connection {
    /// The connection-level info.
    pub info: MptcpInfo,
    /// The subflows, in the kernel's order.
    pub subflows: Vec<Subflow>,
}

impl Connection {
    /// No info, no subflows: what a query holds before its first read (never handed
    /// out as is).
    pub(crate) const fn empty() -> Connection {
        Connection {
            info: MptcpInfo::empty(),
            subflows: Vec::new(),
        }
    }
}

/// More subflows than any connection can have (each is a TCP socket, and the path
/// managers limit them to a handful): a count above it is garbage, not a size to
/// allocate buffers for.
pub(crate) const MAX_SUBFLOWS: usize = 1 << 16;

/// `count` if a connection can have that many subflows, else a decode error.
pub(crate) fn plausible(count: usize) -> Result<usize> {
    if count > MAX_SUBFLOWS {
        return Err(Error::decode(
            "subflows",
            format!("the kernel reported {count} subflows"),
        ));
    }
    Ok(count)
}

/// Local and remote address of a `struct mptcp_subflow_addrs` at the start of `b`.
#[inline(always)]
pub(crate) fn addrs(b: &[u8]) -> Result<(SocketAddr, SocketAddr)> {
    const REMOTE: usize = size_of::<mptcp_sys::mptcp_subflow_addrs>() / 2;
    match (
        sockaddr::decode(b),
        b.get(REMOTE..).and_then(sockaddr::decode),
    ) {
        (Some(l), Some(r)) => Ok((l, r)),
        _ => Err(Error::decode(
            "subflow addresses",
            "an unknown address family",
        )),
    }
}

/// Whether two `struct mptcp_subflow_addrs` hold the same addresses: the bytes
/// [`addrs`] reads (a `sockaddr_in6`'s worth on each side; each side is a
/// `sockaddr_storage`, 128 bytes, mostly unused).
#[inline]
pub(crate) fn same_addrs(a: &[u8], b: &[u8]) -> bool {
    const SIDE: usize = size_of::<mptcp_sys::mptcp_subflow_addrs>() / 2;
    const USED: usize = size_of::<libc::sockaddr_in6>();
    // Compared in place (slices, not copies: a copy to the stack and its reload cost
    // more than the comparison).
    let side = |at: usize| {
        let (x, y) = (a.get(at..at + USED), b.get(at..at + USED));
        x.is_some() && x == y
    };
    side(0) && side(SIDE)
}

/// Where a subflow's addresses start in the kernel's `struct mptcp_subflow_info`, given
/// the size the kernel reports for it. They follow a `u32` id and are aligned like a
/// pointer (`sockaddr_storage`): at 8 in a 64-bit kernel, at 4 in a 32-bit one. A 32-bit
/// process on a 64-bit kernel (a 32-bit Raspberry Pi OS on its 64-bit kernel, say) gets
/// the kernel's layout, 8 + 256 bytes, not its own 4 + 256.
pub(crate) fn subflow_addrs_offset(size_sfinfo_kernel: usize) -> usize {
    const OURS: usize = offset_of!(mptcp_sys::mptcp_subflow_info, addrs);
    const WIDE: usize = size_of::<u64>() + size_of::<mptcp_sys::mptcp_subflow_addrs>();
    if size_sfinfo_kernel == WIDE {
        size_of::<u64>()
    } else {
        OURS
    }
}

/// Decodes an `MPTCP_FULL_INFO` reply: the bytes the kernel wrote to `struct
/// mptcp_full_info`, and the subflow and `tcp_info` arrays it filled (with the element
/// sizes it reports in the header).
#[cfg(test)]
pub(crate) fn decode_full_info(full: &[u8], sf: &[u8], tcp: &[u8]) -> Result<Connection> {
    let mut conn = Connection::empty();
    let head = sys::FullInfoHead::from_bytes(full);
    decode_full_info_into(&head, sf, tcp, &mut conn, Previous::NONE)?;
    Ok(conn)
}

/// The subflow array a connection's subflows were decoded from last time.
pub(crate) struct Previous<'a> {
    pub(crate) sf: &'a [u8],
    /// How many leading subflows were decoded from `sf` (0: none can be reused).
    pub(crate) count: usize,
}

impl Previous<'_> {
    #[cfg(test)]
    const NONE: Previous<'static> = Previous { sf: &[], count: 0 };
}

/// [`decode_full_info`] in place, over a connection read before: its subflows are
/// overwritten (one copy of each `tcp_info`; addresses are decoded again only when
/// their bytes differ from `prev`'s), added or cut to the kernel's count.
pub(crate) fn decode_full_info_into(
    full: &sys::FullInfoHead,
    sf: &[u8],
    tcp: &[u8],
    conn: &mut Connection,
    prev: Previous<'_>,
) -> Result<()> {
    let head = &full.head;
    conn.info.set_raw(&head.mptcp_info, full.info_len())?;
    let total = head.num_subflows.min(head.size_arrays_user) as usize;
    let sf_stride = head.size_sfinfo_user as usize;
    let tcp_stride = head.size_tcpinfo_user as usize;
    let addrs_off = subflow_addrs_offset(head.size_sfinfo_kernel as usize);
    let short = || Error::decode("MPTCP_FULL_INFO", "subflow arrays shorter than announced");
    // Validate the kernel's counts and sizes before using them (a garbage count must not
    // become a huge allocation).
    let fits =
        |stride: usize, have: usize| total.checked_mul(stride).is_some_and(|need| need <= have);
    if total > 0
        && (sf_stride < addrs_off || !fits(sf_stride, sf.len()) || !fits(tcp_stride, tcp.len()))
    {
        conn.subflows.clear();
        return Err(short());
    }
    let subflows = &mut conn.subflows;
    subflows.truncate(total);
    for i in 0..total {
        let e = sf
            .get(i * sf_stride..(i + 1) * sf_stride)
            .filter(|e| e.len() >= addrs_off)
            .ok_or_else(short)?;
        let t = tcp
            .get(i * tcp_stride..(i + 1) * tcp_stride)
            .ok_or_else(short)?;
        let id = Some(u32::from_ne_bytes([e[0], e[1], e[2], e[3]]));
        match subflows.get_mut(i) {
            Some(s) => {
                s.id = id;
                let same = i < prev.count
                    && prev
                        .sf
                        .get(i * sf_stride..(i + 1) * sf_stride)
                        .is_some_and(|p| same_addrs(&p[addrs_off..], &e[addrs_off..]));
                if !same {
                    (s.local, s.remote) = addrs(&e[addrs_off..])?;
                }
                s.tcp_info.decode_into(t)?;
            }
            None => {
                let (local, remote) = addrs(&e[addrs_off..])?;
                subflows.push(Subflow {
                    id,
                    local,
                    remote,
                    tcp_info: TcpInfo::decode(t)?,
                })
            }
        }
    }
    Ok(())
}

pub(crate) fn grew() -> Error {
    Error::decode(
        "subflows",
        "the number of subflows kept changing between the kernel's replies",
    )
}
