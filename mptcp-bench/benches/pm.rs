//! Path-manager request cost: `mptcp::pm` next to the same requests sent as prebuilt raw
//! bytes on a plain netlink socket (the floor), in the same run. Needs root: it builds its
//! own network namespaces (removed at the end).

use mptcp_testnet as common;

use common::interleave::{compare, timed};

use common::{Topology, PATHS};
use criterion::{criterion_group, criterion_main, Criterion};
use mptcp::pm::{Endpoint, EndpointFlags, PathManager, PmKind};
use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr as NlAddr};
use std::hint::black_box;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLA_F_NESTED: u16 = 1 << 15;

fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend(((4 + value.len()) as u16).to_ne_bytes());
    v.extend(kind.to_ne_bytes());
    v.extend(value);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v
}

/// One Generic Netlink request, built by hand: nlmsghdr, genlmsghdr, attributes.
fn message(family: u16, cmd: u8, attrs: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = attrs.concat();
    let len = 16 + 4 + body.len();
    let mut m = Vec::with_capacity(len);
    m.extend((len as u32).to_ne_bytes());
    m.extend(family.to_ne_bytes());
    m.extend((NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    m.extend(1u32.to_ne_bytes()); // sequence
    m.extend(0u32.to_ne_bytes()); // port id
    m.extend([cmd, 1, 0, 0]); // genlmsghdr: command, version 1, reserved
    m.extend(body);
    m
}

fn addr_attrs(a: &SocketAddr, id: Option<u8>) -> Vec<u8> {
    let mut v = Vec::new();
    match a {
        SocketAddr::V4(v4) => {
            v.extend(attr(
                mptcp_sys::MPTCP_PM_ADDR_ATTR_FAMILY as u16,
                &(libc::AF_INET as u16).to_ne_bytes(),
            ));
            v.extend(attr(
                mptcp_sys::MPTCP_PM_ADDR_ATTR_ADDR4 as u16,
                &v4.ip().octets(),
            ));
        }
        SocketAddr::V6(v6) => {
            v.extend(attr(
                mptcp_sys::MPTCP_PM_ADDR_ATTR_FAMILY as u16,
                &(libc::AF_INET6 as u16).to_ne_bytes(),
            ));
            v.extend(attr(
                mptcp_sys::MPTCP_PM_ADDR_ATTR_ADDR6 as u16,
                &v6.ip().octets(),
            ));
        }
    }
    if let Some(id) = id {
        v.extend(attr(mptcp_sys::MPTCP_PM_ADDR_ATTR_ID as u16, &[id]));
    }
    if a.port() != 0 {
        v.extend(attr(
            mptcp_sys::MPTCP_PM_ADDR_ATTR_PORT as u16,
            &a.port().to_ne_bytes(),
        ));
    }
    v
}

const NLM_F_DUMP: u16 = 0x300;

fn is_dump(msg: &[u8]) -> bool {
    u16::from_ne_bytes([msg[6], msg[7]]) & NLM_F_DUMP == NLM_F_DUMP
}

struct Raw {
    sock: Socket,
    buf: Vec<u8>,
}

impl Raw {
    fn new() -> Raw {
        let mut sock = Socket::new(NETLINK_GENERIC).expect("netlink socket");
        sock.bind_auto().expect("bind");
        sock.connect(&NlAddr::new(0, 0)).expect("connect");
        Raw {
            sock,
            buf: vec![0u8; 8192],
        }
    }

    /// Sends one request and reads datagrams until the ACK (or a dump's DONE); returns
    /// the number of messages before it. One `recv` per datagram.
    fn until_done(&mut self, msg: &[u8]) -> usize {
        self.sock.send(msg, 0).expect("send");
        let mut replies = 0;
        loop {
            let n = self.sock.recv(&mut &mut self.buf[..], 0).expect("recv");
            let mut off = 0;
            while off + 16 <= n {
                let len = u32::from_ne_bytes(self.buf[off..off + 4].try_into().expect("len"));
                let kind = u16::from_ne_bytes(self.buf[off + 4..off + 6].try_into().expect("type"));
                match kind {
                    // NLMSG_ERROR (the ACK, code 0) or NLMSG_DONE
                    2 | 3 => {
                        let code = i32::from_ne_bytes(
                            self.buf[off + 16..off + 20].try_into().expect("code"),
                        );
                        assert_eq!(code, 0, "request failed: errno {}", -code);
                        if kind == 3 || !is_dump(msg) {
                            return replies;
                        }
                    }
                    _ => replies += 1,
                }
                off += (len as usize).div_ceil(4) * 4;
            }
        }
    }

    /// Sends one request and checks the kernel's ACK (error code 0).
    fn call(&mut self, msg: &[u8]) {
        self.sock.send(msg, 0).expect("send");
        let n = self.sock.recv(&mut &mut self.buf[..], 0).expect("recv");
        assert!(n >= 20);
        let code = i32::from_ne_bytes(self.buf[16..20].try_into().expect("code"));
        assert_eq!(code, 0, "request failed: errno {}", -code);
    }
}

fn endpoints(c: &mut Criterion) {
    let mut pm = PathManager::new().expect("pm");
    let family = pm.family_id();
    let ep = Endpoint::new(
        "192.0.2.50".parse().expect("address"),
        EndpointFlags::SIGNAL,
    )
    .with_id(50);
    let a: SocketAddr = "192.0.2.50:0".parse().expect("address");
    let mut add_attrs = addr_attrs(&a, Some(50));
    add_attrs.extend(attr(
        mptcp_sys::MPTCP_PM_ADDR_ATTR_FLAGS as u16,
        &EndpointFlags::SIGNAL.bits().to_ne_bytes(),
    ));
    let add = message(
        family,
        mptcp_sys::MPTCP_PM_CMD_ADD_ADDR as u8,
        &[attr(
            mptcp_sys::MPTCP_PM_ATTR_ADDR as u16 | NLA_F_NESTED,
            &add_attrs,
        )],
    );
    let del_attrs = attr(mptcp_sys::MPTCP_PM_ADDR_ATTR_ID as u16, &[50]);
    let del = message(
        family,
        mptcp_sys::MPTCP_PM_CMD_DEL_ADDR as u8,
        &[attr(
            mptcp_sys::MPTCP_PM_ATTR_ADDR as u16 | NLA_F_NESTED,
            &del_attrs,
        )],
    );
    let mut raw = Raw::new();
    let mut g = c.benchmark_group("endpoint add + delete");
    g.bench_function("mptcp", |b| {
        b.iter(|| {
            pm.add_endpoint(&ep).expect("add");
            pm.delete_endpoint(50).expect("delete");
        })
    });
    g.bench_function("floor", |b| {
        b.iter(|| {
            raw.call(&add);
            raw.call(&del);
        })
    });
    g.finish();
}

/// GET_LIMITS and an endpoint dump (two endpoints), each beside the same request as
/// prebuilt bytes read with one `recv` per datagram.
fn reads(c: &mut Criterion) {
    let mut pm = PathManager::new().expect("pm");
    let family = pm.family_id();
    for (id, a) in [(60u8, "192.0.2.60"), (61, "192.0.2.61")] {
        let ep = Endpoint::new(a.parse().expect("address"), EndpointFlags::SIGNAL).with_id(id);
        pm.add_endpoint(&ep).expect("add");
    }
    let mut raw = Raw::new();
    let limits = message(family, mptcp_sys::MPTCP_PM_CMD_GET_LIMITS as u8, &[]);
    assert_eq!(raw.until_done(&limits), 1);
    let mut g = c.benchmark_group("GET_LIMITS");
    g.bench_function("mptcp", |b| b.iter(|| pm.limits().expect("limits")));
    g.bench_function("floor", |b| b.iter(|| raw.until_done(&limits)));
    g.finish();

    let mut dump = message(family, mptcp_sys::MPTCP_PM_CMD_GET_ADDR as u8, &[]);
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP;
    dump[6..8].copy_from_slice(&flags.to_ne_bytes());
    assert_eq!(
        raw.until_done(&dump),
        pm.endpoints().expect("endpoints").len()
    );
    let mut g = c.benchmark_group("endpoint dump");
    g.bench_function("mptcp", |b| b.iter(|| pm.endpoints().expect("endpoints")));
    g.bench_function("floor", |b| b.iter(|| raw.until_done(&dump)));
    g.finish();

    // The ratios `cargo xtask bench` reports: the same pairs, interleaved. (Two
    // clients on one socket each: one closure per side holds its own.)
    let mut pm2 = PathManager::new().expect("pm");
    let mut raw2 = Raw::new();
    compare(
        "GET_LIMITS",
        timed(|| pm.limits().expect("limits")),
        timed(|| raw.until_done(&limits)),
    );
    compare(
        "endpoint dump",
        timed(|| pm2.endpoints().expect("endpoints")),
        timed(|| raw2.until_done(&dump)),
    );
    pm.delete_endpoint(60).expect("delete");
    pm.delete_endpoint(61).expect("delete");
}

/// Fills the event queue (untimed): `n` events, from MPTCP listeners opened and closed
/// on loopback (LISTENER_CREATED and LISTENER_CLOSED, Linux 6.2+).
fn fill_events(n: u64) {
    for _ in 0..n.div_ceil(2) {
        drop(mptcp::listen_with("127.0.0.1:0", mptcp::Mode::Require).expect("listen"));
    }
}

/// Reads `n` events with the library, timed.
fn read_events(ev: &mut mptcp::pm::Events, n: u64) -> Duration {
    let t0 = std::time::Instant::now();
    for _ in 0..n {
        match ev.next() {
            Some(Ok(mptcp::pm::EventItem::Event(e))) => {
                black_box(e);
            }
            other => panic!("expected an event: {other:?}"),
        }
    }
    t0.elapsed()
}

/// The floor: receives datagrams until `n` messages came, counting them, timed.
fn recv_events(sock: &Socket, buf: &mut [u8], n: u64) -> Duration {
    let t0 = std::time::Instant::now();
    let mut got = 0;
    while got < n {
        let len = sock.recv(&mut &mut buf[..], 0).expect("recv");
        // Count the messages of the datagram.
        let mut off = 0;
        while off + 16 <= len {
            let l = u32::from_ne_bytes(buf[off..off + 4].try_into().expect("len"));
            off += (l as usize).div_ceil(4) * 4;
            got += 1;
        }
    }
    t0.elapsed()
}

/// Event decoding from a pre-filled queue: the library's typed events beside one `recv`
/// per datagram into a reused buffer, decoding nothing (the floor). One iteration is one
/// event.
fn events(c: &mut Criterion) {
    const CHUNK: u64 = 2000;
    let pm = PathManager::new().expect("pm");
    let mut ev = pm.events().expect("subscribe");
    // Room for a whole chunk: nothing may be lost while it is filled.
    ev.set_receive_buffer(16 << 20).expect("buffer");
    ev.set_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut g = c.benchmark_group("event decode");
    g.sample_size(30).measurement_time(Duration::from_secs(4));
    g.bench_function("mptcp", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut left = iters.div_ceil(2) * 2;
            while left > 0 {
                let n = left.min(CHUNK);
                fill_events(n);
                spent += read_events(&mut ev, n);
                left -= n;
            }
            spent
        })
    });
    // One subscriber at a time: the floor's events are not also queued for this one.
    drop(ev);
    let group = pm_events_group();
    let mut sock = Socket::new(NETLINK_GENERIC).expect("socket");
    sock.bind_auto().expect("bind");
    sock.add_membership(group).expect("join");
    socket2::SockRef::from(&sock)
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
    let force = (16i32 << 20).to_ne_bytes();
    // SAFETY: `force` is a valid int for the duration of the call.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            force.as_ptr().cast(),
            4,
        )
    };
    let mut buf = vec![0u8; 32 * 1024];
    g.bench_function("floor", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut left = iters.div_ceil(2) * 2;
            while left > 0 {
                let n = left.min(CHUNK);
                fill_events(n);
                spent += recv_events(&sock, &mut buf, n);
                left -= n;
            }
            spent
        })
    });
    g.finish();

    // Interleaved (the ratio `cargo xtask bench` reports): both subscribed at once, so
    // each side first drains, untimed, what the other side's fills queued for it, then
    // fills its own batch and times reading it.
    let mut ev = pm.events().expect("subscribe");
    ev.set_receive_buffer(16 << 20).expect("buffer");
    ev.set_timeout(Some(Duration::from_millis(5)))
        .expect("timeout");
    let lib = |n: u64| {
        while let Some(Ok(_)) = ev.next() {}
        fill_events(n);
        let m = n.div_ceil(2) * 2;
        read_events(&mut ev, m).mul_f64(n as f64 / m as f64)
    };
    let floor = |n: u64| {
        while sock.recv(&mut &mut buf[..], libc::MSG_DONTWAIT).is_ok() {}
        fill_events(n);
        let m = n.div_ceil(2) * 2;
        recv_events(&sock, &mut buf, m).mul_f64(n as f64 / m as f64)
    };
    compare("event decode", lib, floor);
}

/// The id of the `mptcp_pm_events` multicast group (CTRL_CMD_GETFAMILY, read by hand).
fn pm_events_group() -> u32 {
    // The group id is not public API: ask the Generic Netlink controller, as any
    // netlink client does.
    let mut raw = Raw::new();
    let mut name = b"mptcp_pm".to_vec();
    name.push(0);
    let req = message(0x10, 3, &[attr(2, &name)]);
    raw.sock.send(&req, 0).expect("send");
    let n = raw.sock.recv(&mut &mut raw.buf[..], 0).expect("recv");
    // Walk CTRL_ATTR_MCAST_GROUPS (7) -> group -> (ID 2, NAME 1).
    let attrs = &raw.buf[20..n];
    let mut off = 0;
    while off + 4 <= attrs.len() {
        let len = u16::from_ne_bytes([attrs[off], attrs[off + 1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[off + 2], attrs[off + 3]]) & 0x3fff;
        if kind == 7 {
            let groups = &attrs[off + 4..off + len];
            let mut g = 0;
            while g + 4 <= groups.len() {
                let glen = u16::from_ne_bytes([groups[g], groups[g + 1]]) as usize;
                let inner = &groups[g + 4..g + glen];
                let (mut id, mut is_events) = (None, false);
                let mut i = 0;
                while i + 4 <= inner.len() {
                    let ilen = u16::from_ne_bytes([inner[i], inner[i + 1]]) as usize;
                    let ikind = u16::from_ne_bytes([inner[i + 2], inner[i + 3]]);
                    let v = &inner[i + 4..i + ilen];
                    match ikind {
                        1 => is_events = v.starts_with(b"mptcp_pm_events"),
                        2 => id = Some(u32::from_ne_bytes(v[..4].try_into().expect("id"))),
                        _ => {}
                    }
                    i += ilen.div_ceil(4) * 4;
                }
                if let (true, Some(id)) = (is_events, id) {
                    return id;
                }
                g += glen.div_ceil(4) * 4;
            }
        }
        off += len.div_ceil(4) * 4;
    }
    panic!("no mptcp_pm_events group");
}

fn subflows(c: &mut Criterion, t: &Topology) {
    t.client
        .run(|| mptcp::pm::set_kind(PmKind::Userspace).expect("userspace PM"));
    t.server.ip(&[
        "mptcp",
        "limits",
        "set",
        "subflows",
        "8",
        "add_addr_accepted",
        "8",
    ]);
    let sa: SocketAddr = format!("{}:4800", PATHS[0].server4)
        .parse()
        .expect("address");
    let l = t
        .server
        .run(|| mptcp::listen_with("0.0.0.0:4800", mptcp::Mode::Require))
        .expect("listen");
    let mut conn = mptcp::connect_with(sa, mptcp::Mode::Require).expect("connect");
    let (mut s, _) = l.accept().expect("accept");
    let mut b1 = [0u8; 1];
    conn.write_all(b"x").expect("write");
    s.read_exact(&mut b1).expect("read");
    s.write_all(b"y").expect("write");
    conn.read_exact(&mut b1).expect("read");
    let token = mptcp::token(&conn).expect("token");
    let local: SocketAddr = format!("{}:0", PATHS[1].client4).parse().expect("address");
    let remote: SocketAddr = format!("{}:4800", PATHS[1].server4)
        .parse()
        .expect("address");
    let mut pm = PathManager::new().expect("pm");
    let family = pm.family_id();
    // The new subflow's local port, needed to destroy it: the newest subflow on the
    // second path (the same getsockopt calls in both cases).
    let new_local = |conn: &std::net::TcpStream| {
        common::wait_for(Duration::from_secs(1), || {
            mptcp::subflows(conn)
                .expect("subflows")
                .into_iter()
                .filter(|s| s.local.ip() == local.ip())
                .max_by_key(|s| s.id)
                .map(|s| s.local)
        })
        .expect("the created subflow is listed")
    };
    let tok = attr(
        mptcp_sys::MPTCP_PM_ATTR_TOKEN as u16,
        &token.get().to_ne_bytes(),
    );
    let remote_attr = attr(
        mptcp_sys::MPTCP_PM_ATTR_ADDR_REMOTE as u16 | NLA_F_NESTED,
        &addr_attrs(&remote, None),
    );
    let create = message(
        family,
        mptcp_sys::MPTCP_PM_CMD_SUBFLOW_CREATE as u8,
        &[
            tok.clone(),
            attr(
                mptcp_sys::MPTCP_PM_ATTR_ADDR as u16 | NLA_F_NESTED,
                &addr_attrs(&local, Some(7)),
            ),
            remote_attr.clone(),
        ],
    );
    let mut raw = Raw::new();
    let mut g = c.benchmark_group("subflow create + destroy");
    // Only the two requests are timed; between iterations the benchmark waits (untimed)
    // until the server has dropped the closed subflow, so the server's join limit never
    // rejects the next one.
    let settle = |s: &std::net::TcpStream| {
        common::wait_for(Duration::from_secs(5), || {
            (mptcp::subflows(s).ok()?.len() == 1).then_some(())
        })
        .expect("the server dropped the subflow");
    };
    g.bench_function("mptcp", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let t0 = std::time::Instant::now();
                pm.create_subflow(token, 7, local, remote).expect("create");
                spent += t0.elapsed();
                let l = new_local(&conn);
                let t1 = std::time::Instant::now();
                pm.destroy_subflow(token, l, remote).expect("destroy");
                spent += t1.elapsed();
                settle(&s);
            }
            spent
        })
    });
    g.bench_function("floor", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let t0 = std::time::Instant::now();
                raw.call(&create);
                spent += t0.elapsed();
                let l = new_local(&conn);
                let destroy = message(
                    family,
                    mptcp_sys::MPTCP_PM_CMD_SUBFLOW_DESTROY as u8,
                    &[
                        tok.clone(),
                        attr(
                            mptcp_sys::MPTCP_PM_ATTR_ADDR as u16 | NLA_F_NESTED,
                            &addr_attrs(&l, None),
                        ),
                        remote_attr.clone(),
                    ],
                );
                let t1 = std::time::Instant::now();
                raw.call(&destroy);
                spent += t1.elapsed();
                settle(&s);
            }
            spent
        })
    });
    g.finish();
}

fn all(c: &mut Criterion) {
    if let Some(why) = common::cannot_run() {
        eprintln!("skipped: {why}");
        return;
    }
    let t = Topology::new(2);
    // The benchmark thread itself works in the client namespace.
    t.client.enter_current_thread();
    endpoints(c);
    reads(c);
    events(c);
    subflows(c, &t);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(500));
    targets = all
}
criterion_main!(benches);
