//! MPTCP sockets against the real kernel, in network namespaces the tests create.

#[macro_use]
extern crate mptcp_testnet;
use mptcp_testnet as common;

use common::{data, sha256, wait_for, Topology, PATHS};
use mptcp::{Error, Mode, MptcpSocket, NoConnection, NotMptcp, Unavailable};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

const LEN: usize = 2 * 1024 * 1024;

fn addr(ip: &str, port: u16) -> SocketAddr {
    if ip.contains(':') {
        format!("[{ip}]:{port}").parse().expect("addr")
    } else {
        format!("{ip}:{port}").parse().expect("addr")
    }
}

/// What the server thread saw.
struct Served {
    hash: [u8; 32],
    bytes: usize,
    status: mptcp::Status,
    rcv_nxt_delta: Option<u64>,
}

/// Accepts one connection; records its status and info; reads to EOF once told to.
fn serve(listener: TcpListener, go: mpsc::Sender<()>) -> Served {
    let (mut conn, _) = listener.accept().expect("accept");
    let status = mptcp::status(&conn).expect("status of accepted socket");
    let before = mptcp::info(&conn).ok();
    go.send(()).expect("signal");
    let mut buf = Vec::new();
    conn.read_to_end(&mut buf).expect("read");
    let after = mptcp::info(&conn).ok();
    let rcv_nxt_delta = match (before, after) {
        (Some(b), Some(a)) => Some(a.rcv_nxt() - b.rcv_nxt()),
        _ => None,
    };
    Served {
        hash: sha256(&buf),
        bytes: buf.len(),
        status,
        rcv_nxt_delta,
    }
}

/// Runs one transfer from client to server: returns the client stream (still open for
/// inspection after the data) and the server's report.
fn transfer(
    t: &Topology,
    server_ip: &'static str,
    server_mode: Mode,
    client_mode: Mode,
    before_shutdown: impl FnOnce(&TcpStream),
) -> (TcpStream, Served) {
    let sa = addr(server_ip, 4000);
    // A wildcard listener, so that joins to the server's other addresses are accepted.
    let wild = addr(if sa.is_ipv6() { "::" } else { "0.0.0.0" }, 4000);
    let listener = t
        .server
        .run(move || mptcp::listen_with(wild, server_mode))
        .expect("listen");
    let (go_tx, go_rx) = mpsc::channel();
    let server = std::thread::spawn(move || serve(listener, go_tx));
    let mut client = t
        .client
        .run(move || mptcp::connect_with(sa, client_mode))
        .expect("connect");
    go_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("server ready");
    let payload = data(LEN);
    let before = mptcp::info(&client).ok();
    client.write_all(&payload).expect("write");
    if let Some(b) = before {
        let a = mptcp::info(&client).expect("info after write");
        assert_eq!(
            a.write_seq() - b.write_seq(),
            LEN as u64,
            "write_seq must advance by exactly the bytes written"
        );
    }
    before_shutdown(&client);
    client.shutdown(Shutdown::Write).expect("shutdown");
    let served = server.join().expect("server thread");
    assert_eq!(served.bytes, LEN);
    assert_eq!(served.hash, sha256(&payload), "data must arrive intact");
    (client, served)
}

/// Local/remote pairs of the established TCP sockets (subflows) `ss` shows in a netns.
fn ss_pairs(t: &Topology) -> BTreeSet<(SocketAddr, SocketAddr)> {
    ss_pairs_of(&t.client.exec(&["ss", "-tnH", "state", "established"]))
        .into_iter()
        .collect()
}

/// The local/remote pair of each socket line of `ss -tn[i]H` output, in order (the
/// indented `-i` lines are skipped).
fn ss_pairs_of(out: &str) -> Vec<(SocketAddr, SocketAddr)> {
    out.lines()
        .filter(|l| !l.starts_with(char::is_whitespace))
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let n = w.len();
            // `ADDR[%IFNAME]:PORT`, IPv6 in brackets.
            let parse = |s: &str| -> Option<SocketAddr> {
                let (ip, port) = s.rsplit_once(':')?;
                let ip = ip.split('%').next()?;
                let ip = ip.trim_start_matches('[').trim_end_matches(']');
                Some(SocketAddr::new(ip.parse().ok()?, port.parse().ok()?))
            };
            Some((parse(w.get(n - 2)?)?, parse(w.get(n - 1)?)?))
        })
        .collect()
}

/// `wscale:S,R` of each established TCP socket (subflow) in the client's netns, by its
/// local/remote pair: `ss -i` prints it on the line after the socket's own.
fn ss_wscales(t: &Topology) -> BTreeMap<(SocketAddr, SocketAddr), (u8, u8)> {
    let out = t.client.exec(&["ss", "-tinH", "state", "established"]);
    let mut pairs = ss_pairs_of(&out).into_iter();
    let mut last = None;
    let mut found = BTreeMap::new();
    for l in out.lines() {
        if !l.starts_with(char::is_whitespace) {
            last = pairs.next();
            continue;
        }
        let ws = l
            .split_whitespace()
            .find_map(|w| w.strip_prefix("wscale:"))
            .and_then(|w| w.split_once(','))
            .and_then(|(s, r)| Some((s.parse().ok()?, r.parse().ok()?)));
        if let (Some(p), Some(ws)) = (last, ws) {
            found.insert(p, ws);
        }
    }
    found
}

#[test]
fn mptcp_one_path_v4() {
    require_netns!();
    mptcp_or_fallback!();
    let t = Topology::new(1);
    let (client, served) = transfer(&t, PATHS[0].server4, Mode::Require, Mode::Require, |c| {
        let subs = mptcp::subflows(c).expect("subflows");
        assert_eq!(subs.len(), 1);
        assert_eq!(subs[0].local, c.local_addr().expect("local"));
        assert_eq!(subs[0].remote, c.peer_addr().expect("peer"));
        let id = if common::caps().full_info {
            Some(1)
        } else {
            None
        };
        assert_eq!(
            subs[0].id, id,
            "the initial subflow has id 1 (no ids before 6.5)"
        );
        assert!(subs[0].tcp_info.bytes_acked() > 0);
    });
    assert!(served.status.using_mptcp && served.status.created_as_mptcp);
    assert_eq!(
        served.rcv_nxt_delta,
        Some(LEN as u64 + 1),
        "rcv_nxt: bytes read + DATA_FIN"
    );
    let st = mptcp::status(&client).expect("status");
    assert!(st.created_as_mptcp && st.using_mptcp);
    assert!(mptcp::is_mptcp(&client).expect("is_mptcp"));
    let token = mptcp::token(&client).expect("token");
    assert_eq!(token, mptcp::info(&client).expect("info").token());
    assert_ne!(token.get(), 0);
}

fn two_paths(v6: bool) {
    let t = Topology::new(2);
    t.server_signal_endpoints(v6);
    let server_ip = if v6 {
        PATHS[0].server6
    } else {
        PATHS[0].server4
    };
    let (client, served) = transfer(&t, server_ip, Mode::Require, Mode::Require, |c| {
        let subs = wait_for(Duration::from_secs(10), || {
            let s = mptcp::subflows(c).expect("subflows");
            // Both established, so that `ss ... state established` lists them too.
            let up = s.iter().filter(|f| f.tcp_info.state() == 1).count();
            (s.len() == 2 && up == 2).then_some(s)
        })
        .expect("a second subflow within 10 s");
        let ours: BTreeSet<_> = subs.iter().map(|s| (s.local, s.remote)).collect();
        assert_eq!(ours, ss_pairs(&t), "subflows must match what ss shows");
        // The window scales (bit fields of tcp_info) are what ss reads from the same
        // struct.
        let ws: BTreeMap<_, _> = subs
            .iter()
            .map(|s| {
                let i = &s.tcp_info;
                ((s.local, s.remote), (i.snd_wscale(), i.rcv_wscale()))
            })
            .collect();
        assert_eq!(ws, ss_wscales(&t), "window scales must match ss -i");
        assert!(ws.values().all(|&(s, r)| s > 0 && r > 0), "scaled: {ws:?}");
        let (c2, s2) = if v6 {
            (PATHS[1].client6, PATHS[1].server6)
        } else {
            (PATHS[1].client4, PATHS[1].server4)
        };
        assert!(
            subs.iter()
                .any(|s| s.local.ip().to_string() == c2 && s.remote.ip().to_string() == s2),
            "a subflow from the second path: {subs:?}"
        );
        if common::caps().full_info {
            let ids: BTreeSet<_> = subs.iter().map(|s| s.id.expect("id")).collect();
            assert_eq!(ids.len(), 2, "distinct subflow ids");
        } else {
            assert!(subs.iter().all(|s| s.id.is_none()), "no ids before 6.5");
        }
        let info = mptcp::info(c).expect("info");
        assert_eq!(
            info.extra_subflows(),
            1,
            "one subflow beyond the initial one"
        );
    });
    assert!(served.status.using_mptcp);
    assert!(mptcp::is_mptcp(&client).expect("is_mptcp"));
}

#[test]
fn mptcp_two_paths_v4() {
    require_netns!();
    mptcp_or_fallback!();
    two_paths(false);
}

#[test]
fn mptcp_two_paths_v6() {
    require_netns!();
    mptcp_or_fallback!();
    two_paths(true);
}

#[test]
fn mptcp_one_path_v6_rate_limited() {
    require_netns!();
    mptcp_or_fallback!();
    let t = Topology::new(1);
    t.rate_limit("200mbit");
    let (client, served) = transfer(&t, PATHS[0].server6, Mode::Require, Mode::Require, |c| {
        let subs = mptcp::subflows(c).expect("subflows");
        assert_eq!(subs.len(), 1);
        assert_eq!(subs[0].local, c.local_addr().expect("local"));
        assert_eq!(subs[0].remote, c.peer_addr().expect("peer"));
    });
    assert!(served.status.using_mptcp);
    assert!(mptcp::status(&client).expect("status").using_mptcp);
}

#[test]
fn fallback_mptcp_client_to_tcp_server() {
    require_netns!();
    mptcp_or_fallback!();
    let t = Topology::new(1);
    let (client, served) = transfer(&t, PATHS[0].server4, Mode::Off, Mode::Require, |c| {
        assert!(matches!(mptcp::info(c), Err(Error::FellBack)));
        assert!(matches!(mptcp::subflows(c), Err(Error::FellBack)));
    });
    assert!(!served.status.created_as_mptcp && !served.status.using_mptcp);
    let st = mptcp::status(&client).expect("status");
    assert!(st.created_as_mptcp, "created as MPTCP");
    assert!(!st.using_mptcp, "but fell back to TCP");
    assert!(!mptcp::is_mptcp(&client).expect("is_mptcp"));
}

#[test]
fn fallback_tcp_client_to_mptcp_listener() {
    require_netns!();
    mptcp_or_fallback!();
    let t = Topology::new(1);
    let (client, served) = transfer(&t, PATHS[0].server4, Mode::Require, Mode::Off, |c| {
        assert!(matches!(
            mptcp::info(c),
            Err(Error::NotMptcp(NotMptcp::PlainTcp))
        ));
    });
    assert!(
        !served.status.created_as_mptcp && !served.status.using_mptcp,
        "the accepted socket reports TCP"
    );
    assert!(!mptcp::status(&client).expect("status").created_as_mptcp);
}

#[test]
fn mptcp_disabled_in_namespace() {
    require_netns!();
    mptcp_or_fallback!();
    let t = Topology::new(1);
    t.client.sysctl("net.mptcp.enabled", "0");
    let sa = addr(PATHS[0].server4, 4000);
    let listener = t.server.run(move || mptcp::listen(sa)).expect("listen");
    let r = t
        .client
        .run(move || MptcpSocket::for_addr(sa, Mode::Require).map(|_| ()));
    match r {
        Err(Error::Unavailable(Unavailable::Disabled)) => {}
        other => panic!("require must fail with Disabled, got {other:?}"),
    }
    let (sock, mut stream) = t.client.run(move || {
        let s = MptcpSocket::for_addr(sa, Mode::Prefer).expect("prefer socket");
        let why = s.unavailable();
        (why, s.connect(sa).expect("TCP connect"))
    });
    assert_eq!(sock, Some(Unavailable::Disabled));
    let (mut conn, _) = listener.accept().expect("accept");
    stream.write_all(b"ping").expect("write");
    let mut buf = [0u8; 4];
    conn.read_exact(&mut buf).expect("read");
    assert_eq!(&buf, b"ping");
    assert!(!mptcp::status(&stream).expect("status").created_as_mptcp);
    // Connect through the convenience function too: plain TCP, working.
    let s2 = t
        .client
        .run(move || mptcp::connect(sa))
        .expect("prefer connect");
    assert!(!mptcp::is_mptcp(&s2).expect("is_mptcp"));
}

#[test]
fn refused_connect_is_one_attempt() {
    require_netns!();
    let t = Topology::new(1);
    let sa = addr(PATHS[0].server4, 4999); // nothing listens here
    let opens = t.client.counter("Tcp", "ActiveOpens");
    // MPTCP's own counter exists only where MPTCP does.
    let syns = common::caps()
        .mptcp
        .then(|| t.client.counter("MPTcpExt", "MPCapableSYNTX"));
    let r = t.client.run(move || mptcp::connect(sa));
    match r {
        Err(e @ Error::Os { .. }) => assert_eq!(e.errno(), Some(libc::ECONNREFUSED)),
        other => panic!("expected ECONNREFUSED, got {other:?}"),
    }
    assert_eq!(
        t.client.counter("Tcp", "ActiveOpens") - opens,
        1,
        "exactly one connection attempt (no TCP retry)"
    );
    if let Some(syns) = syns {
        assert_eq!(t.client.counter("MPTcpExt", "MPCapableSYNTX") - syns, 1);
    }
}

#[test]
fn typed_errors_for_non_connections() {
    require_netns!();
    let t = Topology::new(1);
    t.client.run(|| {
        let sa = addr(PATHS[0].client4, 4100);
        // Without MPTCP in the kernel, the sockets are plain TCP and say so.
        let mptcp_here = common::caps().mptcp;
        // The kind callers of `?` into io::Error see.
        let expected = |r: &Result<(), Error>, conn: NoConnection| match r {
            Err(Error::NoConnection(c)) if mptcp_here && *c == conn => {
                r.as_ref().map_err(|e| e.kind()) == Err(std::io::ErrorKind::NotConnected)
            }
            Err(Error::NotMptcp(NotMptcp::PlainTcp)) => !mptcp_here,
            _ => false,
        };
        let listener = mptcp::listen_with(sa, Mode::Prefer).expect("listen");
        for r in [
            mptcp::info(&listener).map(|_| ()),
            mptcp::subflows(&listener).map(|_| ()),
            mptcp::token(&listener).map(|_| ()),
        ] {
            assert!(expected(&r, NoConnection::Listener), "{r:?}");
        }
        let unconnected = MptcpSocket::for_addr(sa, Mode::Prefer).expect("socket");
        for r in [
            mptcp::info(&unconnected).map(|_| ()),
            mptcp::subflows(&unconnected).map(|_| ()),
            mptcp::token(&unconnected).map(|_| ()),
        ] {
            assert!(expected(&r, NoConnection::Unconnected), "{r:?}");
        }
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        for r in [
            mptcp::info(&udp).map(|_| ()),
            mptcp::subflows(&udp).map(|_| ()),
            mptcp::status(&udp).map(|_| ()),
        ] {
            assert!(
                matches!(r, Err(Error::NotMptcp(NotMptcp::NotStream))),
                "{r:?}"
            );
        }
        let file = std::fs::File::open("/proc/self/stat").expect("file");
        for r in [
            mptcp::info(&file).map(|_| ()),
            mptcp::subflows(&file).map(|_| ()),
            mptcp::status(&file).map(|_| ()),
            mptcp::is_mptcp(&file).map(|_| ()),
        ] {
            assert!(
                matches!(r, Err(Error::NotMptcp(NotMptcp::NotASocket))),
                "{r:?}"
            );
        }
    });
}

#[test]
fn probe_cache_is_per_namespace() {
    require_netns!();
    mptcp_or_fallback!();
    let off = Topology::new(1);
    let on = Topology::new(1);
    off.client.sysctl("net.mptcp.enabled", "0");
    let sa = addr(PATHS[0].server4, 4000);
    let prefer = move || {
        MptcpSocket::for_addr(sa, Mode::Prefer)
            .expect("socket")
            .unavailable()
    };
    // Refused (and remembered) in one namespace, never in another.
    assert_eq!(off.client.run(prefer), Some(Unavailable::Disabled));
    assert_eq!(off.client.run(prefer), Some(Unavailable::Disabled));
    assert_eq!(on.client.run(prefer), None);
    // "require" always asks the kernel.
    off.client.sysctl("net.mptcp.enabled", "1");
    assert!(off
        .client
        .run(move || MptcpSocket::for_addr(sa, Mode::Require).map(|s| s.created_as_mptcp()))
        .expect("require after re-enabling"));
    // A namespace created after another was deleted may reuse its inode: the cookie
    // check tells them apart.
    drop(off);
    let fresh = Topology::new(1);
    assert_eq!(fresh.client.run(prefer), None);
}

/// A non-IP family cannot be asked for (the builders take `mptcp::Domain`, IPv4 or
/// IPv6: a Unix-domain MPTCP socket was once reported as "the kernel was built without
/// MPTCP"); a Unix socket adopted from elsewhere is refused as not a TCP/MPTCP stream,
/// by both builders.
#[test]
fn a_non_ip_socket_is_refused_when_adopted() {
    use std::os::fd::OwnedFd;
    let (a, _b) = std::os::unix::net::UnixStream::pair().expect("pair");
    let r = MptcpSocket::try_from(OwnedFd::from(a));
    match &r {
        Err(e @ Error::NotMptcp(NotMptcp::NotStream)) => {
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        }
        other => panic!("expected NotMptcp(NotStream), got {other:?}"),
    }
    // A plain TCP socket made elsewhere is adopted as TCP, and says so.
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("tcp");
    let adopted = MptcpSocket::try_from(OwnedFd::from(tcp)).expect("a TCP socket");
    assert!(!adopted.created_as_mptcp());
    assert_eq!(adopted.unavailable(), Some(Unavailable::CreatedAsTcp));
    // And the descriptor comes back out unchanged.
    let fd = OwnedFd::from(adopted);
    assert!(mptcp::status(&fd).is_ok());
}

/// An invalid `MPTCP_MODE` must not make explicit `Off` or `Require` fail: the variable
/// only sets the mode of `Prefer` sockets. Runs itself again with a bad value.
#[test]
fn an_invalid_mode_variable_only_affects_prefer() {
    if std::env::var_os("MPTCP_TEST_BAD_MODE_CHILD").is_some() {
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let off = MptcpSocket::for_addr(addr, Mode::Off).expect("Off ignores MPTCP_MODE");
        assert_eq!(off.unavailable(), Some(Unavailable::TurnedOff));
        let require = MptcpSocket::for_addr(addr, Mode::Require);
        assert!(
            !matches!(require, Err(Error::InvalidEnv { .. })),
            "Require ignores MPTCP_MODE: {require:?}"
        );
        match MptcpSocket::for_addr(addr, Mode::Prefer) {
            Err(e @ Error::InvalidEnv { .. }) => {
                assert!(e.to_string().contains("sometimes"), "{e}");
                assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
            }
            other => panic!("Prefer reads the bad MPTCP_MODE: {other:?}"),
        }
        return;
    }
    common::rerun_as_child(
        "an_invalid_mode_variable_only_affects_prefer",
        &[],
        &[
            ("MPTCP_TEST_BAD_MODE_CHILD", "1"),
            (mptcp::MODE_ENV, "sometimes"),
        ],
    );
}

/// A reused `SubflowQuery` (its buffers, and the addresses it decoded, kept between
/// reads) follows a connection's subflows as the path manager adds, removes and adds
/// again a subflow on the second path: every read equals what `ss` shows and what the
/// one-line `subflows` returns, and the re-added subflow shows its new port.
#[test]
fn a_reused_query_follows_subflows_as_they_come_and_go() {
    require_netns!();
    mptcp_or_fallback!();
    let t = Topology::new(2);
    let sa = addr(PATHS[0].server4, 4100);
    let listener = t
        .server
        .run(|| mptcp::listen_with("0.0.0.0:4100", Mode::Require))
        .expect("listen");
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).expect("read");
        buf.len()
    });
    let mut c = t
        .client
        .run(move || mptcp::connect_with(sa, Mode::Require))
        .expect("connect");
    c.write_all(b"hello").expect("write");
    let mut q = mptcp::SubflowQuery::new();

    // Reads with the reused query until `n` subflows are established, then checks the
    // read against `ss` and the one-line call.
    let mut settle = |n: usize, what: &str| -> Vec<(SocketAddr, SocketAddr)> {
        let got: Vec<(SocketAddr, SocketAddr)> = wait_for(Duration::from_secs(10), || {
            let s = q.subflows(&c).expect("subflows");
            let up = s.iter().filter(|f| f.tcp_info.state() == 1).count();
            (s.len() == n && up == n).then(|| s.iter().map(|s| (s.local, s.remote)).collect())
        })
        .unwrap_or_else(|| panic!("{what}: {n} established subflows within 10 s"));
        let set: BTreeSet<_> = got.iter().copied().collect();
        assert_eq!(set, ss_pairs(&t), "{what}: the query must match ss");
        let one_line: Vec<_> = mptcp::subflows(&c)
            .expect("subflows")
            .iter()
            .map(|s| (s.local, s.remote))
            .collect();
        assert_eq!(got, one_line, "{what}: the query must match a fresh read");
        assert_eq!(
            q.connection(&c).expect("connection").info.token(),
            mptcp::token(&c).expect("token")
        );
        got
    };

    let first = settle(1, "initial subflow");
    assert_eq!(
        first,
        [(c.local_addr().expect("local"), c.peer_addr().expect("peer"))]
    );
    t.client_subflow_endpoints(false);
    let two = settle(2, "endpoint added");
    // The endpoint's removal closes its subflow.
    t.client.ip(&["mptcp", "endpoint", "flush"]);
    assert_eq!(settle(1, "endpoint removed"), first);
    t.client_subflow_endpoints(false);
    let again = settle(2, "endpoint added again");
    let second = |v: &[(SocketAddr, SocketAddr)]| {
        v.iter()
            .copied()
            .find(|p| p.0.ip().to_string() == PATHS[1].client4)
            .expect("a subflow on path 2")
    };
    assert_ne!(
        second(&two).0.port(),
        second(&again).0.port(),
        "a new subflow, with its own port"
    );
    c.shutdown(Shutdown::Write).expect("shutdown");
    assert_eq!(server.join().expect("server"), 5);
}
