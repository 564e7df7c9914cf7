//! Subflows: `MPTCP_FULL_INFO` (Linux 6.5+), or `MPTCP_SUBFLOW_ADDRS` with
//! `MPTCP_TCPINFO` (Linux 5.16-6.4).

use crate::error::{Error, Result};
use crate::info::raw_info;
use crate::kernel::{classify, features, no_connection};
use crate::sys;
use crate::wire::subflow::{
    addrs, decode_full_info_into, grew, plausible, Connection, Previous, Subflow, TcpInfo,
};
use std::mem::{offset_of, size_of};
use std::os::fd::{AsFd, BorrowedFd};

/// Attempts when the subflow count grows between the sizing and the reading call.
const RETRIES: usize = 8;

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

/// [`MptcpInfo`](crate::MptcpInfo) and subflows together (one system call on Linux 6.5+).
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

    /// Reads the connection's [`MptcpInfo`](crate::MptcpInfo) and subflows (see [`connection`]).
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
    use crate::wire::info::MptcpInfo;
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
