//! One transfer: a sender (the client's socket) that writes pseudo-random data for a
//! fixed time and hashes it, a receiver (accepted in the server namespace) that hashes
//! what arrives and notes when each read returned, and the sampling of the sender's
//! per-path byte counters from `tcp_info`: `mptcp::connection()` for MPTCP (one
//! `tcp_info` per subflow), `getsockopt(TCP_INFO)` for plain TCP.

use super::topology::{path_of, PATHS};
use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest a read or write may block before the transfer counts as failed.
const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// `tcpi_bytes_acked` of a connection this end opened counts its SYN as one byte.
const SYN: u64 = 1;
/// Size of each write and of the receiver's buffer.
const CHUNK: usize = 256 * 1024;

/// What the sender wrote.
#[derive(Debug)]
pub struct Sent {
    pub bytes: u64,
    pub sha256: [u8; 32],
}

/// What the receiver read, and when.
#[derive(Debug)]
pub struct Received {
    pub bytes: u64,
    pub sha256: [u8; 32],
    /// (seconds since the transfer started, bytes received so far) after each read.
    pub reads: Vec<(f64, u64)>,
}

impl Received {
    /// How long the receiving application got (almost) nothing, in seconds: the longest
    /// run of consecutive 50 ms bins, from `from` to `to`, in each of which it read less
    /// than `floor_mbps`. (The longest gap between two reads would miss a stall in which
    /// a few retransmitted segments trickle in.)
    pub fn stall(&self, from: f64, to: f64, floor_mbps: f64) -> f64 {
        const BIN: f64 = 0.05;
        let floor = floor_mbps * 1e6 / 8.0 * BIN;
        let at = |t: f64| {
            let i = self.reads.partition_point(|r| r.0 <= t);
            if i == 0 {
                0
            } else {
                self.reads[i - 1].1
            }
        };
        let (mut longest, mut run) = (0.0f64, 0.0);
        let mut t = from;
        while t < to {
            let end = (t + BIN).min(to);
            if ((at(end) - at(t)) as f64) < floor * (end - t) / BIN {
                run += end - t;
                longest = longest.max(run);
            } else {
                run = 0.0;
            }
            t = end;
        }
        longest
    }
}

/// One subflow (or the TCP connection) as sampled.
#[derive(Debug, Clone)]
pub struct SubflowView {
    pub path: usize,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// TCP state name.
    pub state: &'static str,
    pub rtt_us: u32,
    pub cwnd: u32,
    pub retrans: u32,
    pub bytes_acked: u64,
    /// Either end marked the subflow backup (from `mptcp::diag`: the kernel's BKUP_LOC
    /// and BKUP_REM flags); `None` when unknown.
    pub backup: Option<bool>,
}

/// The connection as sampled.
#[derive(Debug, Clone, Default)]
pub struct ConnView {
    /// The MPTCP token, if MPTCP.
    pub token: Option<mptcp::Token>,
    /// Bytes sent, acknowledged and retransmitted at the connection level (MPTCP,
    /// Linux 6.5+).
    pub bytes_sent: Option<u64>,
    pub bytes_acked: Option<u64>,
    pub bytes_retrans: Option<u64>,
    /// Milliseconds since the last ack (Linux 6.10+).
    pub last_ack_ms: Option<u32>,
}

/// One sample of the sender's counters.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Seconds since the transfer started.
    pub t: f64,
    /// Bytes acknowledged per path so far (subflows that closed keep their last count).
    pub paths: [u64; 2],
    /// Bytes the receiving application has read.
    pub received: u64,
    pub subflows: Vec<SubflowView>,
    pub conn: ConnView,
}

/// A transfer in progress.
pub struct Transfer {
    pub mptcp: bool,
    pub t0: Instant,
    stream: Arc<TcpStream>,
    sender: Option<JoinHandle<Result<Sent>>>,
    receiver: Option<JoinHandle<Result<Received>>>,
    received: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    /// Last bytes_acked of every subflow seen, by (local, remote).
    seen: HashMap<(SocketAddr, SocketAddr), (usize, u64)>,
    /// Socket diagnostics of the client namespace, for the subflows' backup flags.
    diag: Option<mptcp::diag::Diag>,
    token: Option<mptcp::Token>,
}

impl Transfer {
    /// Starts sending data on `stream` (connected from the client namespace) to the
    /// next connection `listener` accepts, until `secs` seconds after `t0`.
    /// `diag`, opened in the client namespace, tells which subflows are backups.
    pub fn start(
        stream: TcpStream,
        listener: Arc<TcpListener>,
        diag: Option<mptcp::diag::Diag>,
        t0: Instant,
        secs: f64,
    ) -> Result<Transfer> {
        let mptcp = mptcp::is_mptcp(&stream).context("is the demo's socket MPTCP?")?;
        let token = if mptcp {
            Some(mptcp::token(&stream).context("the connection's token")?)
        } else {
            None
        };
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        let stream = Arc::new(stream);
        let received = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let receiver = {
            let received = received.clone();
            std::thread::spawn(move || receive(&listener, t0, &received))
        };
        let sender = {
            let stream = stream.clone();
            let stop = stop.clone();
            let until = t0 + Duration::from_secs_f64(secs);
            std::thread::spawn(move || send(&stream, until, &stop))
        };
        Ok(Transfer {
            mptcp,
            t0,
            stream,
            sender: Some(sender),
            receiver: Some(receiver),
            received,
            stop,
            seen: HashMap::new(),
            diag,
            token,
        })
    }

    /// Seconds since the start.
    pub fn elapsed(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    /// The MPTCP connection's token (None for TCP).
    pub fn token(&self) -> Option<mptcp::Token> {
        self.token
    }

    /// Both ends are done.
    pub fn finished(&self) -> bool {
        self.sender.as_ref().is_none_or(|h| h.is_finished())
            && self.receiver.as_ref().is_none_or(|h| h.is_finished())
    }

    /// Reads the sender's counters now.
    pub fn sample(&mut self) -> Snapshot {
        // The counters' time: the middle of the call that reads them (on a busy
        // machine the thread may be descheduled on either side of it).
        let before = self.elapsed();
        let (mut subflows, conn) = if self.mptcp {
            read_mptcp(&self.stream)
        } else {
            read_tcp(&self.stream)
        };
        let t = (before + self.elapsed()) / 2.0;
        if let (Some(diag), Some(token)) = (&mut self.diag, self.token) {
            if let Ok(c) = diag.connection_by_token(token) {
                for v in &mut subflows {
                    v.backup = c
                        .subflows
                        .iter()
                        .find(|d| d.local == v.local && d.remote == v.remote)
                        .and_then(|d| d.is_backup());
                }
            }
        }
        for s in &subflows {
            let e = self.seen.entry((s.local, s.remote)).or_insert((s.path, 0));
            e.1 = e.1.max(s.bytes_acked);
        }
        let mut paths = [0u64; 2];
        for (path, bytes) in self.seen.values() {
            paths[*path] += bytes;
        }
        Snapshot {
            t,
            paths,
            received: self.received.load(Ordering::Relaxed),
            subflows,
            conn,
        }
    }

    /// Waits for both ends (polling `interrupted`) and returns what each saw.
    pub fn join(&mut self, interrupted: impl Fn() -> bool) -> Result<(Sent, Received)> {
        while !self.finished() {
            if interrupted() {
                self.stop.store(true, Ordering::Relaxed);
                bail!("interrupted");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let sender = self.sender.take().context("joined twice")?;
        let receiver = self.receiver.take().context("joined twice")?;
        let sent = sender.join().map_err(|_| anyhow!("the sender panicked"))?;
        let received = receiver
            .join()
            .map_err(|_| anyhow!("the receiver panicked"))?;
        Ok((sent.context("sender")?, received.context("receiver")?))
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// Deterministic pseudo-random bytes (xorshift), so that nothing compresses or repeats
/// within a chunk.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// Writes until `until` (or `stop`), then closes the write side and waits for the
/// peer's close, so that everything written was received.
fn send(stream: &TcpStream, until: Instant, stop: &AtomicBool) -> Result<Sent> {
    // A 1 MiB pattern written in 64 KiB slices at an offset that advances by a prime
    // step: a different slice each time, and the hash covers exactly what was sent.
    let data = pattern(1 << 20);
    let mut sha = Sha256::new();
    let mut bytes = 0u64;
    let mut offset = 0usize;
    let mut w = stream;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        let chunk = &data[offset..offset + CHUNK];
        w.write_all(chunk).context("send")?;
        sha.update(chunk);
        bytes += CHUNK as u64;
        offset = (offset + 7919) % (data.len() - CHUNK);
    }
    stream
        .shutdown(Shutdown::Write)
        .context("close the write side")?;
    // The receiver closes once it has read everything.
    let mut b = [0u8; 1];
    let _ = (&*stream).read(&mut b);
    Ok(Sent {
        bytes,
        sha256: sha.finalize().into(),
    })
}

/// Accepts one connection and reads it to the end.
fn receive(listener: &TcpListener, t0: Instant, received: &AtomicU64) -> Result<Received> {
    let (mut s, _) = listener.accept().context("accept")?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut bytes = 0u64;
    let mut reads = Vec::with_capacity(1 << 14);
    loop {
        let n = s.read(&mut buf).context("receive")?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        bytes += n as u64;
        received.store(bytes, Ordering::Relaxed);
        reads.push((t0.elapsed().as_secs_f64(), bytes));
    }
    drop(s);
    Ok(Received {
        bytes,
        sha256: sha.finalize().into(),
        reads,
    })
}

/// TCP state names, by `tcpi_state`.
fn state_name(state: u8) -> &'static str {
    match state {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        _ => "?",
    }
}

fn read_mptcp(stream: &TcpStream) -> (Vec<SubflowView>, ConnView) {
    let Ok(c) = mptcp::connection(stream) else {
        return (Vec::new(), ConnView::default());
    };
    let subflows = c
        .subflows
        .iter()
        .filter_map(|s| {
            Some(SubflowView {
                path: path_of(s.local.ip())?,
                local: s.local,
                remote: s.remote,
                state: state_name(s.tcp_info.state()),
                rtt_us: s.tcp_info.rtt(),
                cwnd: s.tcp_info.snd_cwnd(),
                retrans: s.tcp_info.total_retrans(),
                bytes_acked: s.tcp_info.bytes_acked().saturating_sub(SYN),
                backup: None,
            })
        })
        .collect();
    let conn = ConnView {
        token: Some(c.info.token()),
        bytes_sent: c.info.bytes_sent(),
        bytes_acked: c.info.bytes_acked(),
        bytes_retrans: c.info.bytes_retrans(),
        last_ack_ms: c.info.last_ack_recv(),
    };
    (subflows, conn)
}

/// `getsockopt(TCP_INFO)` on a plain TCP socket.
fn tcp_info(stream: &TcpStream) -> Option<mptcp::sys_bindings::tcp_info> {
    // SAFETY: tcp_info is plain integers, for which all-zero bytes are a valid value.
    let mut info: mptcp::sys_bindings::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: the pointer and length describe `info`, alive for the call; the kernel
    // writes at most `len` bytes.
    let r = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            std::ptr::addr_of_mut!(info).cast(),
            &mut len,
        )
    };
    (r == 0).then_some(info)
}

fn read_tcp(stream: &TcpStream) -> (Vec<SubflowView>, ConnView) {
    let (Some(i), Ok(local), Ok(remote)) =
        (tcp_info(stream), stream.local_addr(), stream.peer_addr())
    else {
        return (Vec::new(), ConnView::default());
    };
    let view = SubflowView {
        path: path_of(local.ip()).unwrap_or(0),
        local,
        remote,
        state: state_name(i.tcpi_state),
        rtt_us: i.tcpi_rtt,
        cwnd: i.tcpi_snd_cwnd,
        retrans: i.tcpi_total_retrans,
        bytes_acked: i.tcpi_bytes_acked.saturating_sub(SYN),
        backup: Some(false),
    };
    (vec![view], ConnView::default())
}

/// The server's address on path 1, at `port`.
pub fn server_addr(port: u16) -> SocketAddr {
    SocketAddr::new(PATHS[0].server_ip(), port)
}
