//! Subflows: `MPTCP_FULL_INFO` (Linux 6.5+), or `MPTCP_SUBFLOW_ADDRS` with
//! `MPTCP_TCPINFO` (Linux 5.16-6.4).

use crate::error::{Error, Result};
use crate::info::{raw_info, versioned, MptcpInfo};
use crate::kernel::{classify, features, no_connection};
use crate::sockaddr;
use crate::sys;
use std::mem::{offset_of, size_of};
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};

versioned! {
    /// `struct tcp_info` of one subflow, as the kernel returned it; each field is a
    /// method that reads it (nothing is decoded until asked). The kernel's struct grows
    /// over versions: every kernel with MPTCP's subflow calls (5.16+) returns at least
    /// 232 bytes, up to `snd_wnd`, whose fields are plain values; 6.2 returns 240, 6.7
    /// 248, 6.18 280, and the fields past what the running kernel returned are `None`
    /// (a field inside the reply is what the kernel wrote, 0 where it does not fill it). [`as_raw`](Self::as_raw) gives the C struct itself.
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
/// kernels and from [`legacy::get_sub_tuple`](crate::legacy::get_sub_tuple) on the
/// out-of-tree ones. ([`Subflow`] is the full view, with `tcp_info`.)
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

/// Attempts when the subflow count grows between the sizing and the reading call.
const RETRIES: usize = 8;

/// More subflows than any connection can have (each is a TCP socket, and the path
/// managers limit them to a handful): a count above it is garbage, not a size to
/// allocate buffers for.
const MAX_SUBFLOWS: usize = 1 << 16;

/// `count` if a connection can have that many subflows, else a decode error.
fn plausible(count: usize) -> Result<usize> {
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
fn same_addrs(a: &[u8], b: &[u8]) -> bool {
    const SIDE: usize = size_of::<mptcp_sys::mptcp_subflow_addrs>() / 2;
    const USED: usize = size_of::<libc::sockaddr_in6>();
    let part =
        |x: &[u8], at: usize| -> Option<[u8; USED]> { x.get(at..at + USED)?.try_into().ok() };
    match (part(a, 0), part(b, 0), part(a, SIDE), part(b, SIDE)) {
        (Some(la), Some(lb), Some(ra), Some(rb)) => la == lb && ra == rb,
        _ => false,
    }
}

/// The subflows of a connected MPTCP socket, borrowed. One `MPTCP_FULL_INFO` call on
/// Linux 6.5+, else `MPTCP_SUBFLOW_ADDRS` + `MPTCP_TCPINFO` (without ids). Buffers are
/// sized from the count the kernel reports (more than 65 536 is taken as garbage).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = mptcp::listen("127.0.0.1:0")?; // loopback: no namespace needed
/// let stream = mptcp::connect(listener.local_addr()?)?;
/// # if !mptcp::is_mptcp(&stream)? { return Ok(()) } // this machine has no MPTCP
/// let subflows = mptcp::subflows(&stream)?;
/// assert_eq!(subflows.len(), 1, "loopback: the initial subflow only");
/// assert_eq!(subflows[0].local, stream.local_addr()?);
/// assert_eq!(subflows[0].remote, stream.peer_addr()?);
/// for sf in &subflows {
///     println!("{:?}: {} -> {}, rtt {:?} us", sf.id, sf.local, sf.remote, sf.tcp_info.rtt());
/// }
/// # Ok(()) }
/// ```
#[doc(alias = "MPTCP_FULL_INFO")]
#[doc(alias = "MPTCP_SUBFLOW_ADDRS")]
#[doc(alias = "MPTCP_TCPINFO")]
pub fn subflows(fd: impl AsFd) -> Result<Vec<Subflow>> {
    with_thread_query(|q| q.subflows(fd.as_fd()).map(<[Subflow]>::to_vec))
}

/// Runs `f` with this thread's [`SubflowQuery`] (a fresh one in the impossible case of
/// reentry): the one-line calls reuse its buffers and copy out what it read in one
/// piece (`Subflow` is `Copy`).
fn with_thread_query<T>(f: impl FnOnce(&mut SubflowQuery) -> T) -> T {
    thread_local! {
        static QUERY: std::cell::RefCell<SubflowQuery> =
            const { std::cell::RefCell::new(SubflowQuery::new()) };
    }
    QUERY.with(|q| match q.try_borrow_mut() {
        Ok(mut q) => f(&mut q),
        Err(_) => f(&mut SubflowQuery::new()),
    })
}

/// [`MptcpInfo`] and subflows together (one system call on Linux 6.5+).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = mptcp::listen("127.0.0.1:0")?; // loopback: no namespace needed
/// let stream = mptcp::connect(listener.local_addr()?)?;
/// # if !mptcp::is_mptcp(&stream)? { return Ok(()) } // this machine has no MPTCP
/// let c = mptcp::connection(&stream)?;
/// assert_eq!(c.info.token(), mptcp::token(&stream)?);
/// assert_eq!(c.subflows.len(), 1);
/// # Ok(()) }
/// ```
#[doc(alias = "MPTCP_FULL_INFO")]
#[doc(alias = "MPTCP_SUBFLOW_ADDRS")]
#[doc(alias = "MPTCP_TCPINFO")]
pub fn connection(fd: impl AsFd) -> Result<Connection> {
    with_thread_query(|q| q.connection(fd.as_fd()).cloned())
}

/// Reusable buffers for reading a connection's info and subflows again and again, as a
/// monitoring loop does. It keeps two subflow buffers that swap after each read (the
/// previous read's is what a subflow's addresses are compared with), so the first two
/// reads allocate one each; after them, a read makes its system call and allocates
/// nothing, until the number of subflows grows past what the buffers hold. [`connection`] and [`subflows`]
/// are the one-line forms (they reuse a per-thread query and copy the result out).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = mptcp::listen("127.0.0.1:0")?; // loopback: no namespace needed
/// let stream = mptcp::connect(listener.local_addr()?)?;
/// # if !mptcp::is_mptcp(&stream)? { return Ok(()) } // this machine has no MPTCP
/// let mut query = mptcp::SubflowQuery::new();
/// for _ in 0..3 {
///     let c = query.connection(&stream)?;
///     for sf in &c.subflows {
///         println!("{} -> {}: {} bytes acked", sf.local, sf.remote, sf.tcp_info.bytes_acked());
///     }
/// }
/// assert_eq!(query.subflows(&stream)?.len(), 1);
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[doc(alias = "MPTCP_FULL_INFO")]
pub struct SubflowQuery {
    sf: Vec<u8>,
    /// The subflow array of the previous read (the two swap after each read): a
    /// subflow whose addresses' bytes did not change keeps its decoded addresses.
    prev_sf: Vec<u8>,
    /// How many leading subflows of `conn` were decoded from `prev_sf`.
    cached: usize,
    tcp: Vec<u8>,
    /// The number of subflows the buffers hold.
    slots: usize,
    /// Read in place, again and again; handed out only after a read succeeded.
    conn: Connection,
}

impl Default for SubflowQuery {
    fn default() -> Self {
        Self::new()
    }
}

impl SubflowQuery {
    /// An empty query; its buffers are sized on first use (nothing is allocated here,
    /// and it can be made in a `const` or `static`).
    pub const fn new() -> Self {
        SubflowQuery {
            sf: Vec::new(),
            prev_sf: Vec::new(),
            cached: 0,
            tcp: Vec::new(),
            slots: 0,
            conn: Connection::empty(),
        }
    }

    /// Reads the connection's [`MptcpInfo`] and subflows (see [`connection`]).
    #[doc(alias = "MPTCP_FULL_INFO")]
    pub fn connection(&mut self, fd: impl AsFd) -> Result<&Connection> {
        let fd = fd.as_fd();
        match features() {
            Some(f) if f.full_info => self.full_info(fd)?,
            _ => {
                self.cached = 0;
                self.conn.info = raw_info(fd)?;
                self.conn.subflows.clear();
                if self.conn.info.token().get() != 0 {
                    self.conn.subflows = legacy_subflows(fd)?;
                }
            }
        }
        if self.conn.info.token().get() == 0 {
            return Err(no_connection(fd));
        }
        Ok(&self.conn)
    }

    /// Reads the connection's subflows (see [`subflows`]).
    #[doc(alias = "MPTCP_FULL_INFO")]
    pub fn subflows(&mut self, fd: impl AsFd) -> Result<&[Subflow]> {
        self.connection(fd).map(|c| c.subflows.as_slice())
    }

    /// `MPTCP_FULL_INFO` into the query's buffers, decoded into `self.conn` in place.
    fn full_info(&mut self, fd: BorrowedFd<'_>) -> Result<()> {
        let sf_size = size_of::<mptcp_sys::mptcp_subflow_info>();
        let tcp_size = size_of::<mptcp_sys::tcp_info>();
        let mut want = self.slots.max(4);
        for _ in 0..RETRIES {
            // Grown only, never shrunk or cleared: the kernel overwrites what it reports,
            // and only that is read.
            if self.sf.len() < want * sf_size {
                self.sf.resize(want * sf_size, 0);
                self.tcp.resize(want * tcp_size, 0);
            }
            self.slots = want;
            let head = sys::get_full_info(
                fd,
                want,
                &mut self.sf[..want * sf_size],
                &mut self.tcp[..want * tcp_size],
            )
            .map_err(|e| full_info_error(fd, e))?;
            let total = head.head.num_subflows as usize;
            if total > want {
                want = plausible(total)?;
                continue;
            }
            let prev = Previous {
                sf: &self.prev_sf,
                count: std::mem::take(&mut self.cached),
            };
            decode_full_info_into(&head, &self.sf, &self.tcp, &mut self.conn, prev)?;
            self.cached = self.conn.subflows.len();
            std::mem::swap(&mut self.sf, &mut self.prev_sf);
            return Ok(());
        }
        Err(grew())
    }
}

/// Where a subflow's addresses start in the kernel's `struct mptcp_subflow_info`, given
/// the size the kernel reports for it. They follow a `u32` id and are aligned like a
/// pointer (`sockaddr_storage`): at 8 in a 64-bit kernel, at 4 in a 32-bit one. A 32-bit
/// process on a 64-bit kernel (a 32-bit Raspberry Pi OS on its 64-bit kernel, say) gets
/// the kernel's layout, 8 + 256 bytes, not its own 4 + 256.
fn subflow_addrs_offset(size_sfinfo_kernel: usize) -> usize {
    const OURS: usize = offset_of!(mptcp_sys::mptcp_subflow_info, addrs);
    const WIDE: usize = size_of::<u64>() + size_of::<mptcp_sys::mptcp_subflow_addrs>();
    if size_sfinfo_kernel == WIDE {
        size_of::<u64>()
    } else {
        OURS
    }
}

/// What a failed `MPTCP_FULL_INFO` means (out of the hot path).
#[cold]
#[inline(never)]
fn full_info_error(fd: BorrowedFd<'_>, e: std::io::Error) -> Error {
    if e.raw_os_error() == Some(libc::EINVAL) {
        // The kernel refuses FULL_INFO on a socket without a connection.
        no_connection(fd)
    } else {
        classify(
            fd,
            e,
            "getsockopt(MPTCP_FULL_INFO)",
            "MPTCP_FULL_INFO",
            Some("6.5"),
        )
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

fn grew() -> Error {
    Error::decode(
        "subflows",
        "the number of subflows kept changing between the kernel's replies",
    )
}

/// One array option (`MPTCP_SUBFLOW_ADDRS` or `MPTCP_TCPINFO`): the elements with the
/// stride the kernel used.
fn subflow_array(
    fd: BorrowedFd<'_>,
    which: sys::SubflowArray,
    elem: usize,
    want: usize,
) -> Result<(usize, usize, Vec<u8>)> {
    let hdr = size_of::<mptcp_sys::mptcp_subflow_data>();
    let mut buf = vec![0u8; hdr + want * elem];
    // The header the kernel reads: its size and the element size wanted.
    let at = offset_of!(mptcp_sys::mptcp_subflow_data, size_subflow_data);
    buf[at..at + 4].copy_from_slice(&(hdr as u32).to_ne_bytes());
    let at = offset_of!(mptcp_sys::mptcp_subflow_data, size_user);
    buf[at..at + 4].copy_from_slice(&(elem as u32).to_ne_bytes());
    sys::mptcp_subflow_array(fd, which, &mut buf)
        .map_err(|e| classify(fd, e, which.op(), which.name(), Some("5.16")))?;
    let head: mptcp_sys::mptcp_subflow_data = sys::read_prefix(&buf[..hdr]);
    Ok((
        head.num_subflows as usize,
        head.size_user as usize,
        buf.split_off(hdr),
    ))
}

fn legacy_subflows(fd: BorrowedFd<'_>) -> Result<Vec<Subflow>> {
    let a_size = size_of::<mptcp_sys::mptcp_subflow_addrs>();
    let t_size = size_of::<mptcp_sys::tcp_info>();
    let mut want = 4usize;
    for _ in 0..RETRIES {
        let (n, a_stride, a) = subflow_array(fd, sys::SubflowArray::Addrs, a_size, want)?;
        if n > want {
            want = plausible(n)?;
            continue;
        }
        let (m, t_stride, t) = subflow_array(fd, sys::SubflowArray::TcpInfo, t_size, want)?;
        if m != n {
            want = want.max(plausible(m)?);
            continue;
        }
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let (local, remote) = addrs(&a[i * a_stride..(i + 1) * a_stride])?;
            out.push(Subflow {
                id: None,
                local,
                remote,
                tcp_info: TcpInfo::decode(&t[i * t_stride..(i + 1) * t_stride])?,
            });
        }
        return Ok(out);
    }
    Err(grew())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    /// A loopback MPTCP connection (no namespace needed), or `None` with the reason.
    fn pair() -> Option<(TcpStream, TcpStream)> {
        let l: TcpListener = match crate::listen_with("127.0.0.1:0", crate::Mode::Require) {
            Ok(l) => l,
            Err(e) => {
                let kernel =
                    std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
                eprintln!("skipped: no MPTCP sockets on Linux {}: {e}", kernel.trim());
                return None;
            }
        };
        let a = l.local_addr().ok()?;
        let c = crate::connect_with(a, crate::Mode::Require).ok()?;
        let (s, _) = l.accept().ok()?;
        // Under a user-mode emulator (qemu-user, as `cargo xtask cross` runs these
        // tests), socket options of level SOL_MPTCP may not reach the kernel.
        if let Err(e) = raw_info(c.as_fd()) {
            eprintln!("skipped: MPTCP socket options do not reach the kernel here ({e}); an emulator that does not pass SOL_MPTCP through?");
            return None;
        }
        Some((c, s))
    }

    /// The 5.16-6.4 path (two array options, no ids) agrees with MPTCP_FULL_INFO.
    #[test]
    fn legacy_and_full_info_agree() {
        let Some((c, _s)) = pair() else { return };
        let legacy = legacy_subflows(c.as_fd()).expect("legacy subflows");
        assert_eq!(legacy.len(), 1);
        assert_eq!(legacy[0].id, None);
        assert_eq!(legacy[0].local, c.local_addr().expect("local"));
        assert_eq!(legacy[0].remote, c.peer_addr().expect("peer"));
        assert_eq!(legacy[0].tcp_info.state(), 1, "TCP_ESTABLISHED");
        if features().is_some_and(|f| f.full_info) {
            let mut q = SubflowQuery::new();
            let full = q.connection(c.as_fd()).expect("full info");
            assert_eq!(full.subflows.len(), 1);
            assert_eq!(full.subflows[0].local, legacy[0].local);
            assert_eq!(full.subflows[0].remote, legacy[0].remote);
            assert_eq!(full.subflows[0].id, Some(1));
        }
    }

    /// Fields past the returned length are `None`, not a zero.
    #[test]
    fn short_replies_give_none() {
        let raw = [7u8; 48];
        let info = MptcpInfo::decode(&raw).expect("48 bytes");
        assert_eq!(info.extra_subflows(), 7);
        assert_eq!(info.csum_enabled(), 7);
        assert_eq!(
            info.retransmits(),
            None,
            "80-byte field absent from a 48-byte reply"
        );
        assert_eq!(info.last_ack_recv(), None);
        let info = MptcpInfo::decode(&[0u8; 80]).expect("80 bytes");
        assert_eq!(info.bytes_acked(), Some(0));
        assert_eq!(info.subflows_total(), None);
        let info = MptcpInfo::decode(&[0u8; 88]).expect("88 bytes");
        assert_eq!(info.subflows_total(), Some(0));
        assert_eq!(info.last_data_sent(), None);
        let info = MptcpInfo::decode(&[0u8; 96]).expect("96 bytes");
        assert_eq!(info.last_ack_recv(), Some(0));
        assert!(
            TcpInfo::decode(&[0u8; 104]).is_err(),
            "below 5.16's 232 bytes"
        );
        let tcp = TcpInfo::decode(&[0u8; 240]).expect("6.2's 240 bytes");
        assert_eq!(tcp.total_retrans(), 0);
        assert_eq!(tcp.rehash(), Some(0));
        assert_eq!(tcp.total_rto(), None);
    }
}
