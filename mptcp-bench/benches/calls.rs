//! The socket calls (`info`, `token`, `status`, `is_mptcp`, `subflows`, `connection`) on
//! a live connection with two subflows, each next to its floor in the same run: the same
//! system calls made directly with libc into preallocated buffers, decoding nothing.
//! Needs root: it builds its own network namespaces (removed at the end).
//!
//! Each group has two functions, `mptcp` and `floor`; `cargo xtask bench` prints their
//! ratio.

use mptcp_testnet as common;

use common::{Topology, PATHS};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::io::{Read, Write};
use std::mem::{offset_of, size_of};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// `getsockopt` into `buf`, as a C program would call it; returns the length.
fn getsockopt(fd: RawFd, level: i32, name: i32, buf: &mut [u8]) -> usize {
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: `buf` is valid for `len` bytes for the duration of the call.
    let r = unsafe { libc::getsockopt(fd, level, name, buf.as_mut_ptr().cast(), &mut len) };
    assert_eq!(r, 0, "getsockopt: {}", std::io::Error::last_os_error());
    len as usize
}

/// The floors: the same system calls as each library call, into stack buffers.
fn info_floor(fd: RawFd) -> [u8; size_of::<mptcp_sys::mptcp_info>()] {
    let mut buf = [0u8; size_of::<mptcp_sys::mptcp_info>()];
    let sol_mptcp = mptcp_sys::SOL_MPTCP as i32;
    black_box(getsockopt(
        fd,
        sol_mptcp,
        mptcp_sys::MPTCP_INFO as i32,
        &mut buf,
    ));
    buf
}

fn token_floor(fd: RawFd) -> u32 {
    const AT: usize = offset_of!(mptcp_sys::mptcp_info, mptcpi_token);
    let mut buf = [0u8; AT + 4];
    let sol_mptcp = mptcp_sys::SOL_MPTCP as i32;
    getsockopt(fd, sol_mptcp, mptcp_sys::MPTCP_INFO as i32, &mut buf);
    u32::from_ne_bytes([buf[AT], buf[AT + 1], buf[AT + 2], buf[AT + 3]])
}

fn status_floor(fd: RawFd) -> ([u8; 4], [u8; 4]) {
    let mut v = [0u8; 4];
    let mut p = [0u8; 4];
    getsockopt(fd, libc::SOL_TCP, mptcp_sys::TCP_IS_MPTCP as i32, &mut v);
    getsockopt(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL, &mut p);
    (v, p)
}

fn is_mptcp_floor(fd: RawFd) -> [u8; 4] {
    let mut v = [0u8; 4];
    getsockopt(fd, libc::SOL_TCP, mptcp_sys::TCP_IS_MPTCP as i32, &mut v);
    v
}

/// A client connection with two subflows (the in-kernel path manager adds the second
/// from the client's `subflow` endpoint on path 2), after data went both ways.
fn live(t: &Topology) -> (TcpStream, TcpStream, TcpListener) {
    t.client_subflow_endpoints(false);
    let sa: SocketAddr = format!("{}:4900", PATHS[0].server4)
        .parse()
        .expect("address");
    let l = t
        .server
        .run(|| mptcp::listen_with("0.0.0.0:4900", mptcp::Mode::Require))
        .expect("listen");
    let mut c = mptcp::connect_with(sa, mptcp::Mode::Require).expect("connect");
    let (mut s, _) = l.accept().expect("accept");
    let mut b = [0u8; 1];
    c.write_all(b"x").expect("write");
    s.read_exact(&mut b).expect("read");
    s.write_all(b"y").expect("write");
    c.read_exact(&mut b).expect("read");
    common::wait_for(Duration::from_secs(5), || {
        (mptcp::subflows(&c).ok()?.len() == 2).then_some(())
    })
    .expect("a second subflow");
    (c, s, l)
}

fn calls(c: &mut Criterion, conn: &TcpStream) {
    let fd = conn.as_raw_fd();
    let sol_mptcp = mptcp_sys::SOL_MPTCP as i32;

    let mut g = c.benchmark_group("info");
    g.bench_function("mptcp", |b| {
        b.iter(|| mptcp::info(black_box(conn)).expect("info"))
    });
    g.bench_function("floor", |b| b.iter(|| info_floor(fd)));
    g.finish();

    let mut g = c.benchmark_group("token");
    g.bench_function("mptcp", |b| {
        b.iter(|| mptcp::token(black_box(conn)).expect("token"))
    });
    g.bench_function("floor", |b| b.iter(|| token_floor(fd)));
    g.finish();

    let mut g = c.benchmark_group("status");
    g.bench_function("mptcp", |b| {
        b.iter(|| mptcp::status(black_box(conn)).expect("status"))
    });
    g.bench_function("floor", |b| b.iter(|| status_floor(fd)));
    g.finish();

    let mut g = c.benchmark_group("is_mptcp");
    g.bench_function("mptcp", |b| {
        b.iter(|| mptcp::is_mptcp(black_box(conn)).expect("is_mptcp"))
    });
    g.bench_function("floor", |b| b.iter(|| is_mptcp_floor(fd)));
    g.finish();

    // MPTCP_FULL_INFO into buffers allocated once, as a C monitoring loop would.
    let sf_size = size_of::<mptcp_sys::mptcp_subflow_info>();
    let tcp_size = size_of::<mptcp_sys::tcp_info>();
    let mut sf = vec![0u8; 4 * sf_size];
    let mut tcp = vec![0u8; 4 * tcp_size];
    let mut full_info_floor = || {
        type F = mptcp_sys::mptcp_full_info;
        let mut req = [0u64; size_of::<F>().div_ceil(8)];
        // SAFETY: `req` is at least as large as `F` and 8-aligned; plain integers.
        let head: &mut F = unsafe { &mut *req.as_mut_ptr().cast::<F>() };
        head.size_tcpinfo_user = tcp_size as u32;
        head.size_sfinfo_user = sf_size as u32;
        head.size_arrays_user = 4;
        head.subflow_info = sf.as_mut_ptr() as u64;
        head.tcp_info = tcp.as_mut_ptr() as u64;
        let mut len = size_of::<F>() as libc::socklen_t;
        // SAFETY: the request and the two arrays it points to (4 elements each) are
        // valid for writes for the duration of the call.
        let r = unsafe {
            libc::getsockopt(
                fd,
                sol_mptcp,
                mptcp_sys::MPTCP_FULL_INFO as i32,
                req.as_mut_ptr().cast(),
                &mut len,
            )
        };
        assert_eq!(r, 0, "MPTCP_FULL_INFO: {}", std::io::Error::last_os_error());
        black_box(head.num_subflows)
    };
    assert_eq!(full_info_floor(), 2, "two subflows");

    let mut g = c.benchmark_group("subflows");
    g.bench_function("mptcp", |b| {
        b.iter(|| mptcp::subflows(black_box(conn)).expect("subflows"))
    });
    g.bench_function("floor", |b| b.iter(&mut full_info_floor));
    g.finish();

    let mut g = c.benchmark_group("connection");
    g.bench_function("mptcp", |b| {
        b.iter(|| mptcp::connection(black_box(conn)).expect("connection"))
    });
    g.bench_function("floor", |b| b.iter(&mut full_info_floor));
    g.finish();

    let mut g = c.benchmark_group("SubflowQuery::connection");
    let mut q = mptcp::SubflowQuery::new();
    g.bench_function("mptcp", |b| {
        b.iter(|| {
            q.connection(black_box(conn))
                .expect("connection")
                .subflows
                .len()
        })
    });
    g.bench_function("floor", |b| b.iter(&mut full_info_floor));
    g.finish();

    interleaved(conn, &mut full_info_floor);
}

/// The same comparisons, interleaved (`mptcp_testnet::interleave`): the ratio
/// `cargo xtask bench` reports for each group.
fn interleaved(conn: &TcpStream, full_info_floor: &mut impl FnMut() -> u32) {
    use common::interleave::{compare, timed};
    let fd = conn.as_raw_fd();
    compare(
        "info",
        timed(|| mptcp::info(black_box(conn)).expect("info")),
        timed(|| info_floor(fd)),
    );
    compare(
        "token",
        timed(|| mptcp::token(black_box(conn)).expect("token")),
        timed(|| token_floor(fd)),
    );
    compare(
        "status",
        timed(|| mptcp::status(black_box(conn)).expect("status")),
        timed(|| status_floor(fd)),
    );
    compare(
        "is_mptcp",
        timed(|| mptcp::is_mptcp(black_box(conn)).expect("is_mptcp")),
        timed(|| is_mptcp_floor(fd)),
    );
    // The three share one floor; `timed` needs it by value, so each takes turns.
    let mut floor = || full_info_floor();
    compare(
        "subflows",
        timed(|| mptcp::subflows(black_box(conn)).expect("subflows")),
        timed(&mut floor),
    );
    compare(
        "connection",
        timed(|| mptcp::connection(black_box(conn)).expect("connection")),
        timed(&mut floor),
    );
    let mut q = mptcp::SubflowQuery::new();
    compare(
        "SubflowQuery::connection",
        timed(|| {
            black_box(
                q.connection(black_box(conn))
                    .expect("connection")
                    .subflows
                    .len(),
            );
        }),
        timed(&mut floor),
    );
}

fn all(c: &mut Criterion) {
    if let Some(why) = common::cannot_run() {
        eprintln!("skipped: {why}");
        return;
    }
    let t = Topology::new(2);
    // The benchmark thread itself works in the client namespace.
    t.client.enter_current_thread();
    let (conn, _s, _l) = live(&t);
    calls(c, &conn);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    targets = all
}
criterion_main!(benches);
