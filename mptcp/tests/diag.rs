//! `mptcp::diag` against the kernel: the listing equals what `ss -M` and `ss -tiO` show,
//! counters move, filters run in the kernel, namespaces isolate, and an unprivileged
//! caller gets what the kernel allows. Needs root (namespaces); skips otherwise.

#[macro_use]
extern crate mptcp_testnet;
use mptcp_testnet as common;

use common::{Netns, Topology, PATHS};
use mptcp::diag::{Diag, DiagConnection, Filter, SocketState};
use mptcp::{Error, Mode, Token};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Skips the test (with the reason) when MPTCP or its sock_diag handler is missing.
macro_rules! diag_or_skip {
    ($ns:expr) => {
        if !common::caps().mptcp {
            eprintln!("skipped: no MPTCP in this kernel");
            return;
        }
        match $ns.run(|| mptcp::diag::connections().map(drop)) {
            Err(Error::MissingModule { module, .. }) => {
                eprintln!("skipped: the kernel cannot list MPTCP sockets ({module} missing)");
                return;
            }
            r => r.expect("list connections"),
        }
    };
}

/// (state, local, remote, token) of every MPTCP socket `ss -M` prints.
fn ss_connections(ns: &Netns) -> BTreeSet<(String, SocketAddr, String, Option<String>)> {
    let out = ns.exec(&["ss", "-MHni"]);
    let mut rows = BTreeSet::new();
    let mut last: Option<(String, SocketAddr, String)> = None;
    for line in out.lines() {
        if line.starts_with(char::is_whitespace) {
            // The info line of the socket above: its token.
            if let Some((state, local, remote)) = last.take() {
                let token = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("token:"))
                    .and_then(|t| t.parse::<Token>().ok())
                    .map(|t| t.to_string());
                rows.insert((state, local, remote, token));
            }
            continue;
        }
        if let Some((state, local, remote)) = last.take() {
            rows.insert((state, local, remote, None));
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 5 {
            if let Ok(local) = f[3].parse() {
                last = Some((f[0].to_string(), local, f[4].to_string()));
            }
        }
    }
    if let Some((state, local, remote)) = last {
        rows.insert((state, local, remote, None));
    }
    rows
}

/// (local, remote) of every TCP socket `ss -tiO` shows with the mptcp ULP and this local
/// token.
fn ss_subflows(ns: &Netns, token: Token) -> BTreeSet<(SocketAddr, SocketAddr)> {
    let out = ns.exec(&["ss", "-tinHO"]);
    // ss prints "token:<remote>(id:N)/<local>(id:M)", in hex without leading zeros.
    let local_token = |l: &str| -> Option<Token> {
        let t = l
            .split_whitespace()
            .find_map(|w| w.strip_prefix("token:"))?;
        let (_, local) = t.split_once('/')?;
        local.split('(').next()?.parse().ok()
    };
    out.lines()
        .filter(|l| l.contains("tcp-ulp-mptcp") && local_token(l) == Some(token))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((ss_addr(f.get(3)?)?, ss_addr(f.get(4)?)?))
        })
        .collect()
}

/// An address as ss prints it, without the "%device" of a socket bound to one.
fn ss_addr(s: &str) -> Option<SocketAddr> {
    match s.split_once('%') {
        Some((ip, rest)) => {
            let port = rest.rsplit_once(':')?.1;
            format!("{ip}:{port}").parse().ok()
        }
        None => s.parse().ok(),
    }
}

fn ours(conns: &[DiagConnection], token: Token) -> &DiagConnection {
    conns
        .iter()
        .find(|c| c.token == Some(token))
        .unwrap_or_else(|| panic!("token {token} not listed: {conns:?}"))
}

/// Two connections with two subflows each between the client and the server, while
/// data flows: the listing equals `ss -M` (tokens, addresses, states) and `ss -tiO`
/// (each connection's subflows), and the byte counters grow between two reads.
#[test]
fn listing_matches_ss_and_counters_grow() {
    require_netns!();
    let t = Topology::new(2);
    diag_or_skip!(t.client);
    t.client_subflow_endpoints(false);
    t.rate_limit("20mbit");
    let port = 4950;
    let l: TcpListener = t
        .server
        .run(move || mptcp::listen_with(format!("0.0.0.0:{port}"), Mode::Require))
        .expect("listen");
    let sa: SocketAddr = format!("{}:{port}", PATHS[0].server4)
        .parse()
        .expect("address");
    let mut clients = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..2 {
        let mut c: TcpStream = t
            .client
            .run(move || mptcp::connect_with(sa, Mode::Require))
            .expect("connect");
        let (mut s, _) = l.accept().expect("accept");
        c.write_all(b"x").expect("write");
        let mut b = [0u8; 1];
        s.read_exact(&mut b).expect("read");
        clients.push(c);
        servers.push(s);
    }
    // Both subflows established: a joining one is listed from SYN_SENT on, and the
    // listings below are compared with `ss`, which would see it change state.
    for c in &clients {
        common::wait_for(Duration::from_secs(5), || {
            let s = mptcp::subflows(c).ok()?;
            (s.len() == 2 && s.iter().all(|f| f.tcp_info.state() == 1)).then_some(())
        })
        .expect("two subflows");
    }
    // Data flows from the first client until the end of the test (at most 60 s: under
    // an emulator the listings below take seconds).
    let mut writer = clients[0].try_clone().expect("clone");
    let sending = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let keep = sending.clone();
    let sender = std::thread::spawn(move || {
        let chunk = vec![7u8; 64 * 1024];
        let end = Instant::now() + Duration::from_secs(60);
        while keep.load(std::sync::atomic::Ordering::Relaxed)
            && Instant::now() < end
            && writer.write_all(&chunk).is_ok()
        {}
    });
    let mut sink = servers[0].try_clone().expect("clone");
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        while matches!(sink.read(&mut buf), Ok(n) if n > 0) {}
    });

    let tokens: Vec<Token> = clients
        .iter()
        .map(|c| mptcp::token(c).expect("token"))
        .collect();
    // Two listings taken at different moments: compared up to three times.
    let mut attempt = 0;
    let (conns, mine_estab, ss_estab) = loop {
        attempt += 1;
        let conns = t.client.run(mptcp::diag::connections).expect("connections");
        let ss = ss_connections(&t.client);
        let mine: BTreeSet<_> = conns
            .iter()
            .map(|c| {
                (
                    c.state.to_string(),
                    c.local,
                    c.remote.to_string(),
                    c.token.map(|t| t.to_string()),
                )
            })
            .collect();
        let ss_estab: BTreeSet<_> = ss.iter().filter(|r| r.0 == "ESTAB").cloned().collect();
        let mine_estab: BTreeSet<_> = mine.iter().filter(|r| r.0 == "ESTAB").cloned().collect();
        if mine_estab == ss_estab || attempt == 3 {
            break (conns, mine_estab, ss_estab);
        }
    };
    assert_eq!(mine_estab, ss_estab, "ESTAB sockets: ours vs ss -M");
    assert_eq!(ss_estab.len(), 2);
    for (c, token) in clients.iter().zip(&tokens) {
        let conn = ours(&conns, *token);
        assert_eq!(conn.state, SocketState::Established);
        assert_eq!(conn.local, c.local_addr().expect("local"));
        assert_eq!(conn.remote, c.peer_addr().expect("peer"));
        let listed: BTreeSet<_> = conn.subflows.iter().map(|s| (s.local, s.remote)).collect();
        assert_eq!(
            listed,
            ss_subflows(&t.client, *token),
            "subflows vs ss -tiO"
        );
        let own: BTreeSet<_> = mptcp::subflows(c)
            .expect("subflows")
            .iter()
            .map(|s| (s.local, s.remote))
            .collect();
        assert_eq!(listed, own, "subflows vs the socket's own MPTCP_FULL_INFO");
        assert!(conn.subflows.iter().all(|s| s.token == Some(*token)));
        assert!(conn.info.is_some(), "mptcp_info is sent");
    }
    // The counters of the sending connection grow between two reads.
    let sent = |c: &DiagConnection| -> u64 {
        c.subflows
            .iter()
            .filter_map(|s| s.tcp_info.as_ref().map(|t| t.bytes_acked()))
            .sum()
    };
    let token = tokens[0];
    let before = t
        .client
        .run(move || mptcp::diag::connection_by_token(token))
        .expect("lookup");
    let grew = common::wait_for(Duration::from_secs(5), || {
        let after = t
            .client
            .run(move || mptcp::diag::connection_by_token(token))
            .ok()?;
        (sent(&after) > sent(&before)).then_some(())
    });
    assert!(
        grew.is_some(),
        "bytes acked grow: {} then never more",
        sent(&before)
    );
    sending.store(false, std::sync::atomic::Ordering::Relaxed);
    drop(clients);
    let _ = sender.join();
    drop(servers);
    let _ = reader.join();
}

/// 200 connections at once on loopback: every one listed once, nothing more.
#[test]
fn two_hundred_connections_are_all_listed_once() {
    require_netns!();
    let ns = Netns::new("many");
    diag_or_skip!(ns);
    let (tokens, conns) = ns.run(|| {
        let l = mptcp::listen_with("127.0.0.1:0", Mode::Require).expect("listen");
        let a = l.local_addr().expect("addr");
        let mut keep = Vec::new();
        let mut tokens = BTreeSet::new();
        for _ in 0..200 {
            let c = mptcp::connect_with(a, Mode::Require).expect("connect");
            let (s, _) = l.accept().expect("accept");
            tokens.insert(mptcp::token(&c).expect("token"));
            tokens.insert(mptcp::token(&s).expect("token"));
            keep.push((c, s));
        }
        let conns = mptcp::diag::connections().expect("connections");
        (tokens, conns)
    });
    let listed: Vec<Token> = conns.iter().filter_map(|c| c.token).collect();
    let unique: BTreeSet<Token> = listed.iter().copied().collect();
    assert_eq!(listed.len(), unique.len(), "no connection listed twice");
    assert_eq!(unique, tokens, "every connection listed, nothing else");
    assert_eq!(tokens.len(), 400);
}

/// Lookup by token, an unknown token, listeners, filters the kernel applies, and the
/// async client.
#[test]
fn lookup_listeners_and_filters() {
    require_netns!();
    let ns = Netns::new("lookup");
    diag_or_skip!(ns);
    let r = ns.run(|| -> Result<(), Error> {
        let l = mptcp::listen_with("127.0.0.1:0", Mode::Require)?;
        let a = l.local_addr().expect("addr");
        let c = mptcp::connect_with(a, Mode::Require)?;
        let (_s, _) = l.accept().expect("accept");
        let token = mptcp::token(&c)?;
        let mut d = Diag::new()?;
        let found = d.connection_by_token(token)?;
        assert_eq!(found.local, c.local_addr().expect("local"));
        assert_eq!(found.remote, a);
        match d.connection_by_token(Token::new(token.get() ^ 0x5a5a_5a5a)) {
            Err(Error::NoSuchConnection(t)) => assert_eq!(t.get(), token.get() ^ 0x5a5a_5a5a),
            other => panic!("expected NoSuchConnection, got {other:?}"),
        }
        // Listeners (Linux 5.19+), with their state.
        let listeners = d.connections(&Filter::new().state(SocketState::Listen))?;
        if listeners.is_empty() {
            let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
            let (maj, min) = common::kernel_version(&release);
            assert!((maj, min) < (5, 19), "no listener listed on {release}");
            eprintln!("note: Linux {release} does not list MPTCP listeners");
        } else {
            assert_eq!(listeners.len(), 1, "{listeners:?}");
            assert_eq!(listeners[0].state, SocketState::Listen);
            assert_eq!(listeners[0].local, a);
            assert_eq!(listeners[0].token, None);
        }
        // Established only: no listener.
        let estab = d.connections(&Filter::new().state(SocketState::Established))?;
        assert_eq!(estab.len(), 2);
        assert!(estab.iter().all(|c| c.state == SocketState::Established));
        // Ports and addresses, through the kernel's bytecode.
        let by_remote = d.connections(&Filter::new().remote_port(a.port()))?;
        assert_eq!(by_remote.len(), 1);
        assert_eq!(by_remote[0].token, Some(token));
        let by_local = d.connections(&Filter::new().local_port(a.port()))?;
        assert!(by_local.iter().all(|c| c.local.port() == a.port()));
        assert_eq!(
            by_local
                .iter()
                .filter(|c| c.state == SocketState::Established)
                .count(),
            1,
            "the accepted side"
        );
        let nowhere =
            d.connections(&Filter::new().remote_addr("192.0.2.99".parse().expect("a")))?;
        assert!(nowhere.is_empty());
        let v6 = d.connections(&Filter::new().local_addr("2001:db8::1".parse().expect("a")))?;
        assert!(v6.is_empty());
        let tok = d.connections(&Filter::new().token(token).state(SocketState::Listen))?;
        assert!(tok.is_empty(), "the token's connection is not a listener");
        // The async client lists the same connections.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (a_all, a_one) = rt.block_on(async {
            let d = mptcp::diag::AsyncDiag::new().await?;
            let all = d.connections(&Filter::new()).await?;
            let one = d.connection_by_token(token).await?;
            Ok::<_, Error>((all, one))
        })?;
        let tokens = |v: &[DiagConnection]| -> BTreeSet<Option<Token>> {
            v.iter().map(|c| c.token).collect()
        };
        assert_eq!(tokens(&a_all), tokens(&d.connections(&Filter::new())?));
        assert_eq!(a_one.local, found.local);
        Ok(())
    });
    r.expect("lookups and filters");
}

/// Connections of another namespace are not listed.
#[test]
fn namespaces_isolate() {
    require_netns!();
    let a = Netns::new("isoa");
    let b = Netns::new("isob");
    diag_or_skip!(a);
    let (token, _keep) = a.run(|| {
        let l = mptcp::listen_with("127.0.0.1:0", Mode::Require).expect("listen");
        let c = mptcp::connect_with(l.local_addr().expect("addr"), Mode::Require).expect("connect");
        let s = l.accept().expect("accept");
        (mptcp::token(&c).expect("token"), (l, c, s))
    });
    let in_a = a.run(mptcp::diag::connections).expect("list a");
    let in_b = b.run(mptcp::diag::connections).expect("list b");
    assert!(in_a.iter().any(|c| c.token == Some(token)));
    assert!(in_b.is_empty(), "namespace b sees nothing: {in_b:?}");
}

/// Without CAP_NET_ADMIN: connections are listed with their info; subflows show their
/// tokens, ids and flags (Linux 6.15+) but not the sequence mapping, or not at all
/// (older kernels), and `subflows_visible` says which.
#[test]
fn unprivileged_caller_sees_what_the_kernel_allows() {
    if let Ok(hex) = std::env::var("MPTCP_TEST_DIAG_TOKEN") {
        let token: Token = hex.parse().expect("token");
        let mut d = Diag::new().expect("diag");
        let c = d
            .connection_by_token(token)
            .expect("the connection is listed");
        assert!(c.info.is_some(), "mptcp_info is given to everyone");
        // What the documentation says of each kernel: subflows' MPTCP attributes are
        // shown to everyone from 6.15, to CAP_NET_ADMIN only before.
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let visible_from_615 = common::kernel_version(release.trim()) >= (6, 15);
        assert_eq!(
            d.subflows_visible(),
            Some(visible_from_615),
            "subflows visible without CAP_NET_ADMIN on Linux {}",
            release.trim()
        );
        match d.subflows_visible() {
            Some(true) => {
                assert!(!c.subflows.is_empty());
                for sf in &c.subflows {
                    assert_eq!(sf.token, Some(token));
                    assert_eq!(sf.map_seq, None, "the mapping is for CAP_NET_ADMIN only");
                }
            }
            Some(false) => assert!(c.subflows.is_empty()),
            None => panic!("TCP sockets exist: the kernel showed something"),
        }
        return;
    }
    require_netns!();
    if !common::caps().mptcp {
        eprintln!("skipped: no MPTCP in this kernel");
        return;
    }
    let Some(unprivileged) = common::unprivileged() else {
        return;
    };
    // A loopback connection in this (the child's) namespace.
    let l = match mptcp::listen_with("127.0.0.1:0", Mode::Require) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("skipped: no MPTCP listener here: {e}");
            return;
        }
    };
    if let Err(Error::MissingModule { module, .. }) = mptcp::diag::connections() {
        eprintln!("skipped: the kernel cannot list MPTCP sockets ({module} missing)");
        return;
    }
    let c = mptcp::connect_with(l.local_addr().expect("addr"), Mode::Require).expect("connect");
    let _s = l.accept().expect("accept");
    let token = mptcp::token(&c).expect("token");
    common::rerun_as_child(
        "unprivileged_caller_sees_what_the_kernel_allows",
        &unprivileged,
        &[("MPTCP_TEST_DIAG_TOKEN", &token.to_string())],
    );
}

/// The destroy broadcast: every subflow of a two-path connection is reported when the
/// kernel frees it, with its addresses and its last counters (the bytes it carried),
/// and nothing of another namespace.
#[test]
fn closed_subflows_are_broadcast_with_their_last_counters() {
    require_netns!();
    let t = Topology::new(2);
    diag_or_skip!(t.client);
    t.client_subflow_endpoints(false);
    let port = 8093;
    let l = t.mptcp_listener(port);
    let closes = t
        .client
        .run(mptcp::diag::ClosedTcpSockets::subscribe)
        .expect("subscribe to destroyed TCP sockets");
    let (mut client, mut server) = t.mptcp_pair(&l, port, 2);
    let subflows: BTreeSet<(SocketAddr, SocketAddr)> = mptcp::subflows(&client)
        .expect("subflows")
        .iter()
        .map(|s| (s.local, s.remote))
        .collect();
    let data = common::data(2 << 20);
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        server.read_to_end(&mut got).expect("read");
        got.len()
    });
    client.write_all(&data).expect("write");
    drop(client);
    assert_eq!(reader.join().expect("reader"), data.len());
    // A thread reads the broadcast until both subflows are in, for at most 20 s.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for item in closes {
            if tx.send(item).is_err() {
                return;
            }
        }
    });
    let mut seen = BTreeSet::new();
    let mut acked = 0u64;
    let deadline = Instant::now() + common::slow(Duration::from_secs(20));
    while seen.len() < subflows.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let item = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("both subflows broadcast; got {seen:?} of {subflows:?}"));
        if let mptcp::diag::ClosedItem::Closed(c) = item.expect("a broadcast") {
            if subflows.contains(&(c.local, c.remote)) && seen.insert((c.local, c.remote)) {
                acked += c.tcp_info.expect("its tcp_info").bytes_acked();
            }
        }
    }
    assert!(
        acked >= data.len() as u64,
        "the subflows' last counters hold the transfer: {acked} of {}",
        data.len()
    );
}
