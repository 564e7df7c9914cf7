//! The path manager against the real kernel, in network namespaces.
#![cfg(feature = "pm")]

#[macro_use]
extern crate mptcp_testnet;
use mptcp_testnet as common;

use common::{data, sha256, wait_for, Netns, Topology, PATHS};
use mptcp::pm::{
    Endpoint, EndpointFlags, EventItem, EventKind, Events, Limits, PathManager, PmKind,
};
use mptcp::{Error, Mode};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::time::{Duration, Instant};

/// On a kernel without MPTCP there is no `mptcp_pm` family: the client says so with a
/// typed error naming the feature and the version that added it.
macro_rules! pm_or_unsupported {
    () => {
        if !common::caps().mptcp {
            match PathManager::new() {
                Err(Error::Unsupported {
                    since: Some("5.7"), ..
                }) => {}
                other => panic!("expected the missing-family error, got {other:?}"),
            }
            eprintln!("no MPTCP in this kernel: checked the path manager's typed error instead");
            return;
        }
    };
}

/// (address, port, id, flag names, device) as `ip mptcp endpoint show` prints them.
type Row = (IpAddr, Option<u16>, u8, BTreeSet<String>, Option<String>);

fn ip_rows(ns: &Netns) -> BTreeSet<Row> {
    ns.ip(&["mptcp", "endpoint", "show"])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let mut row: Row = (w[0].parse().expect("addr"), None, 0, BTreeSet::new(), None);
            let mut i = 1;
            while i < w.len() {
                match w[i] {
                    "port" => {
                        row.1 = Some(w[i + 1].parse().expect("port"));
                        i += 1;
                    }
                    "id" => {
                        row.2 = w[i + 1].parse().expect("id");
                        i += 1;
                    }
                    "dev" => {
                        row.4 = Some(w[i + 1].to_string());
                        i += 1;
                    }
                    flag => {
                        row.3.insert(flag.to_string());
                    }
                }
                i += 1;
            }
            row
        })
        .collect()
}

fn ifname(ns: &Netns, index: i32) -> String {
    let out = ns.ip(&["-o", "link", "show"]);
    out.lines()
        .find_map(|l| {
            let (idx, rest) = l.split_once(": ")?;
            (idx.trim().parse::<i32>().ok()? == index)
                .then(|| rest.split(['@', ':']).next().unwrap_or("").to_string())
        })
        .expect("interface name")
}

fn our_rows(ns: &Netns, eps: &[Endpoint]) -> BTreeSet<Row> {
    eps.iter()
        .map(|e| {
            let mut flags = BTreeSet::new();
            for (f, n) in [
                (EndpointFlags::SIGNAL, "signal"),
                (EndpointFlags::SUBFLOW, "subflow"),
                (EndpointFlags::BACKUP, "backup"),
                (EndpointFlags::FULLMESH, "fullmesh"),
                (EndpointFlags::IMPLICIT, "implicit"),
            ] {
                if e.flags.contains(f) {
                    flags.insert(n.to_string());
                }
            }
            (
                e.addr,
                e.port,
                e.id,
                flags,
                e.ifindex.map(|i| ifname(ns, i)),
            )
        })
        .collect()
}

fn ifindex(ns: &Netns, name: &str) -> i32 {
    let out = ns.ip(&["-o", "link", "show", "dev", name]);
    out.split(':')
        .next()
        .expect("index")
        .trim()
        .parse()
        .expect("index")
}

#[test]
fn endpoints_and_limits_match_ip_mptcp() {
    require_netns!();
    pm_or_unsupported!();
    let t = Topology::new(2);
    let ns = &t.client;
    let eth0 = ifindex(ns, "eth0");
    let (rows, ours) = ns.run(move || {
        let mut pm = PathManager::new().expect("pm");
        pm.flush_endpoints().expect("flush");
        let a = pm
            .add_endpoint(
                &Endpoint::new(
                    PATHS[0].client4.parse().expect("address"),
                    EndpointFlags::SUBFLOW | EndpointFlags::BACKUP,
                )
                .with_ifindex(eth0),
            )
            .expect("add 1");
        let b = pm
            .add_endpoint(
                &Endpoint::new(
                    PATHS[1].client4.parse().expect("address"),
                    EndpointFlags::SIGNAL,
                )
                .with_port(1234),
            )
            .expect("add 2");
        let c = pm
            .add_endpoint(
                &Endpoint::new(
                    PATHS[1].client6.parse().expect("address"),
                    EndpointFlags::SUBFLOW | EndpointFlags::FULLMESH,
                )
                .with_id(9),
            )
            .expect("add 3");
        assert_eq!(
            (a, b, c),
            (1, 2, 9),
            "ids: kernel-allocated 1, 2, then the one asked for"
        );
        let one = pm.endpoint(9).expect("get id 9");
        assert_eq!(one.flags, EndpointFlags::SUBFLOW | EndpointFlags::FULLMESH);
        (0, pm.endpoints().expect("dump"))
    });
    let _ = rows;
    assert_eq!(
        our_rows(ns, &ours),
        ip_rows(ns),
        "mptcp::pm and ip mptcp agree"
    );
    // The other way round: ip adds, we read.
    ns.ip(&[
        "mptcp",
        "endpoint",
        "add",
        "203.0.113.1",
        "id",
        "20",
        "signal",
        "backup",
    ]);
    ns.ip(&["mptcp", "endpoint", "change", "id", "1", "nobackup"]);
    let ours = ns.run(|| PathManager::new().expect("pm").endpoints().expect("dump"));
    assert_eq!(our_rows(ns, &ours), ip_rows(ns));
    assert!(ours
        .iter()
        .any(|e| e.id == 20 && e.flags == EndpointFlags::SIGNAL | EndpointFlags::BACKUP));
    // Flags changed through us, seen by ip.
    ns.run(|| {
        let mut pm = PathManager::new().expect("pm");
        pm.set_endpoint_flags(1, EndpointFlags::BACKUP)
            .expect("backup");
        pm.set_endpoint_flags(9, EndpointFlags::empty())
            .expect("nofullmesh");
    });
    let rows = ip_rows(ns);
    assert!(rows.iter().any(|r| r.2 == 1 && r.3.contains("backup")));
    assert!(rows.iter().any(|r| r.2 == 9 && !r.3.contains("fullmesh")));
    // Delete by id, then flush.
    ns.run(|| {
        PathManager::new()
            .expect("pm")
            .delete_endpoint(20)
            .expect("delete")
    });
    assert!(!ip_rows(ns).iter().any(|r| r.2 == 20));
    ns.run(|| {
        PathManager::new()
            .expect("pm")
            .flush_endpoints()
            .expect("flush")
    });
    assert!(ip_rows(ns).is_empty());
    // Limits both ways.
    ns.run(|| {
        PathManager::new()
            .expect("pm")
            .set_limits(Limits {
                subflows: Some(5),
                add_addr_accepted: Some(3),
            })
            .expect("set limits")
    });
    assert_eq!(
        ns.ip(&["mptcp", "limits", "show"]).trim(),
        "add_addr_accepted 3 subflows 5"
    );
    ns.ip(&[
        "mptcp",
        "limits",
        "set",
        "subflows",
        "7",
        "add_addr_accepted",
        "1",
    ]);
    let l = ns.run(|| PathManager::new().expect("pm").limits().expect("limits"));
    assert_eq!(
        l,
        Limits {
            subflows: Some(7),
            add_addr_accepted: Some(1)
        }
    );
    // Bad input: a duplicate id gives the kernel's error with its text.
    let e = ns.run(|| {
        let mut pm = PathManager::new().expect("pm");
        pm.add_endpoint(
            &Endpoint::new(
                "192.0.2.77".parse().expect("address"),
                EndpointFlags::SIGNAL,
            )
            .with_id(40),
        )
        .expect("add");
        pm.add_endpoint(
            &Endpoint::new(
                "192.0.2.78".parse().expect("address"),
                EndpointFlags::SIGNAL,
            )
            .with_id(40),
        )
        .expect_err("duplicate id")
    });
    assert!(matches!(e, Error::Netlink { .. }), "{e}");
}

#[test]
fn laminar_and_unknown_flags_round_trip() {
    require_netns!();
    pm_or_unsupported!();
    let ns = Netns::new("flags");
    let flags = ns.run(|| {
        let mut pm = PathManager::new().expect("pm");
        let id = pm
            .add_endpoint(&Endpoint::new(
                "192.0.2.9".parse().expect("address"),
                EndpointFlags::SIGNAL | EndpointFlags::LAMINAR,
            ))
            .expect("add");
        pm.endpoint(id).expect("get").flags
    });
    // Linux 6.18+ keeps the laminar bit; older kernels silently drop bits they do not
    // know. Either way the known bit survives and nothing else appears.
    assert!(flags.contains(EndpointFlags::SIGNAL), "{flags:?}");
    assert!(
        (EndpointFlags::SIGNAL | EndpointFlags::LAMINAR).contains(flags),
        "{flags:?}"
    );
    eprintln!(
        "laminar endpoint flag kept by this kernel: {}",
        flags.contains(EndpointFlags::LAMINAR)
    );
}

/// Exchanges one byte each way: MPTCP is fully established only after data was
/// acknowledged at the MPTCP level, and no subflow is added before that.
fn exchange(c: &std::net::TcpStream, s: &std::net::TcpStream) {
    let mut b = [0u8; 1];
    (&*c).write_all(b"x").expect("write");
    (&*s).read_exact(&mut b).expect("read");
    (&*s).write_all(b"y").expect("write");
    (&*c).read_exact(&mut b).expect("read");
}

/// Waits (bounded) for an event matching `pred`.
fn expect_event(
    ev: &mut Events,
    what: &str,
    pred: impl Fn(&mptcp::pm::Event) -> bool,
) -> mptcp::pm::Event {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        match ev.next() {
            Some(Ok(EventItem::Event(e))) if pred(&e) => return e,
            Some(Err(Error::TimedOut(_))) | Some(Ok(_)) => {}
            other => panic!("event stream: {other:?}"),
        }
    }
    panic!("no {what} event within 10 s");
}

fn events_in(ns: &Netns) -> Events {
    ns.run(|| {
        let ev = PathManager::new().expect("pm").events().expect("subscribe");
        ev.set_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        ev
    })
}

#[test]
fn kernel_pm_subflow_endpoint_adds_a_subflow() {
    require_netns!();
    pm_or_unsupported!();
    let t = Topology::new(2);
    let mut ev = events_in(&t.client);
    t.client.run(|| {
        PathManager::new()
            .expect("pm")
            .add_endpoint(&Endpoint::new(
                PATHS[1].client4.parse().expect("address"),
                EndpointFlags::SUBFLOW,
            ))
            .expect("endpoint")
    });
    let sa: SocketAddr = format!("{}:4400", PATHS[0].server4)
        .parse()
        .expect("address");
    let (c, _s, _l) = connected(&t, 4400);
    let token = mptcp::token(&c).expect("token");
    let e = expect_event(&mut ev, "SUB_ESTABLISHED", |e| {
        e.kind() == EventKind::SubEstablished
    });
    assert_eq!(e.token(), Some(token));
    assert_eq!(
        e.local().map(|a| a.ip().to_string()),
        Some(PATHS[1].client4.to_string())
    );
    assert_eq!(
        e.remote(),
        Some(sa),
        "remote address and port in host order"
    );
    let subs = wait_for(Duration::from_secs(5), || {
        let s = mptcp::subflows(&c).expect("subflows");
        (s.len() == 2).then_some(s)
    })
    .expect("two subflows");
    assert!(subs
        .iter()
        .any(|s| Some(s.local) == e.local() && Some(s.remote) == e.remote()));
}

type Connected = (
    std::net::TcpStream,
    std::net::TcpStream,
    std::net::TcpListener,
);

/// A connection from the client to a wildcard listener of the server on the first path,
/// with one byte exchanged each way: (client, accepted, listener).
fn connected(t: &Topology, port: u16) -> Connected {
    let sa: SocketAddr = format!("{}:{port}", PATHS[0].server4)
        .parse()
        .expect("address");
    let wild: SocketAddr = format!("0.0.0.0:{port}").parse().expect("address");
    let l = t
        .server
        .run(move || mptcp::listen_with(wild, Mode::Require))
        .expect("listen");
    let c = t
        .client
        .run(move || mptcp::connect_with(sa, Mode::Require))
        .expect("connect");
    let (s, _) = l.accept().expect("accept");
    exchange(&c, &s);
    (c, s, l)
}

/// A connection from the client (userspace PM) to the server (in-kernel PM).
fn userspace_connection(t: &Topology, port: u16) -> Connected {
    t.client
        .run(|| mptcp::pm::set_kind(PmKind::Userspace).expect("select userspace PM"));
    assert_eq!(
        t.client.run(|| mptcp::pm::kind().expect("kind")),
        PmKind::Userspace
    );
    connected(t, port)
}

#[test]
fn userspace_pm_on_a_live_connection() {
    require_netns!();
    pm_or_unsupported!();
    let t = Topology::new(2);
    let mut client_ev = events_in(&t.client);
    let mut server_ev = events_in(&t.server);
    let (mut c, mut s, _l) = userspace_connection(&t, 4401);
    let token = mptcp::token(&c).expect("token");
    let local: SocketAddr = format!("{}:0", PATHS[1].client4).parse().expect("address");
    let remote: SocketAddr = format!("{}:4401", PATHS[1].server4)
        .parse()
        .expect("address");

    // A bad token: the kernel's extended-ack text, and no event.
    let e = t.client.run(move || {
        PathManager::new()
            .expect("pm")
            .create_subflow(
                mptcp::Token::new(token.get() ^ 0xffff_ffff),
                7,
                local,
                remote,
            )
            .expect_err("bad token")
    });
    match &e {
        Error::Netlink {
            message: Some(m), ..
        } => assert!(m.contains("invalid token"), "{m}"),
        other => panic!("expected the extended-ack error, got {other}"),
    }
    assert_eq!(e.errno(), Some(libc::EINVAL));

    // Create a subflow over the second path.
    t.client.run(move || {
        PathManager::new()
            .expect("pm")
            .create_subflow(token, 7, local, remote)
            .expect("create")
    });
    let est = expect_event(&mut client_ev, "SUB_ESTABLISHED", |e| {
        e.kind() == EventKind::SubEstablished
    });
    assert_eq!(
        est.token(),
        Some(token),
        "the first event is the good request's, not the bad one's"
    );
    assert_eq!(est.subflow().map(|s| s.local_id), Some(7));
    assert_eq!(est.remote(), Some(remote));
    let new_local = est.local().expect("local address");
    let subs = mptcp::subflows(&c).expect("subflows");
    let sf = subs
        .iter()
        .find(|s| s.local == new_local)
        .expect("the new subflow is listed");
    let before = sf.tcp_info.bytes_acked();

    // Data moves on it.
    let payload = data(4 * 1024 * 1024);
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 4 * 1024 * 1024];
        s.read_exact(&mut buf).expect("read");
        (s, buf)
    });
    c.write_all(&payload).expect("write");
    let (mut s, got) = reader.join().expect("reader");
    assert_eq!(sha256(&got), sha256(&payload));
    let after = mptcp::subflows(&c).expect("subflows");
    let sf = after
        .iter()
        .find(|s| s.local == new_local)
        .expect("still listed");
    assert!(
        sf.tcp_info.bytes_acked() > before,
        "data went over the new subflow"
    );

    // Backup: MP_PRIO reaches the peer.
    t.client.run(move || {
        PathManager::new()
            .expect("pm")
            .set_subflow_backup(token, new_local, remote, true)
            .expect("backup")
    });
    let prio = expect_event(&mut server_ev, "SUB_PRIORITY", |e| {
        e.kind() == EventKind::SubPriority
    });
    assert_eq!(prio.subflow().map(|s| s.backup), Some(true));

    // Destroy it: SUB_CLOSED, one subflow left, data still intact.
    t.client.run(move || {
        PathManager::new()
            .expect("pm")
            .destroy_subflow(token, new_local, remote)
            .expect("destroy")
    });
    let closed = expect_event(&mut client_ev, "SUB_CLOSED", |e| {
        e.kind() == EventKind::SubClosed
    });
    assert_eq!(closed.local(), Some(new_local));
    wait_for(Duration::from_secs(5), || {
        (mptcp::subflows(&c).expect("subflows").len() == 1).then_some(())
    })
    .expect("back to one subflow");
    // Announce / remove reach the peer (the address keeps the id it was used with).
    let ann: SocketAddr = format!("{}:0", PATHS[1].client4).parse().expect("address");
    t.client.run(move || {
        PathManager::new()
            .expect("pm")
            .announce_address(token, 7, ann)
            .expect("announce")
    });
    let a = expect_event(&mut server_ev, "ANNOUNCED", |e| {
        e.kind() == EventKind::Announced
    });
    assert!(
        matches!(a, mptcp::pm::Event::Announced { remote_id: 7, addr, .. } if addr.ip() == ann.ip()),
        "{a:?}"
    );
    match t
        .client
        .run(move || PathManager::new().expect("pm").announced_addresses(token))
    {
        Ok(listed) => assert!(
            listed.iter().any(|e| e.id == 7 && e.addr == ann.ip()),
            "{listed:?}"
        ),
        // Older kernels (before 6.7; here: those without MPTCP_FULL_INFO) cannot list a
        // connection's addresses; the client says so.
        Err(Error::Unsupported { .. }) if !common::caps().full_info => {}
        Err(e) => panic!("announced: {e}"),
    }
    t.client.run(move || {
        PathManager::new()
            .expect("pm")
            .remove_address(token, 7)
            .expect("remove")
    });
    let r = expect_event(&mut server_ev, "REMOVED", |e| {
        e.kind() == EventKind::Removed
    });
    assert!(
        matches!(r, mptcp::pm::Event::Removed { remote_id: 7, .. }),
        "{r:?}"
    );

    c.write_all(b"after").expect("write");
    c.shutdown(Shutdown::Write).expect("shutdown");
    let mut tail = Vec::new();
    s.read_to_end(&mut tail).expect("read");
    assert_eq!(tail, b"after");
}

#[test]
fn userspace_commands_need_userspace_pm() {
    require_netns!();
    pm_or_unsupported!();
    let t = Topology::new(2);
    let (c, _s, _l) = connected(&t, 4402);
    let local: SocketAddr = format!("{}:0", PATHS[1].client4).parse().expect("address");
    let remote: SocketAddr = format!("{}:4402", PATHS[1].server4)
        .parse()
        .expect("address");
    let r = t.client.run(move || {
        let mut h = mptcp::pm::SubflowHandle::new(&c)?;
        h.open_subflow(local, remote, Duration::from_secs(2))
    });
    if common::caps().full_info {
        assert!(matches!(r, Err(Error::NeedsUserspacePm { .. })), "{r:?}");
    } else {
        // Before 6.5 there are no subflow ids to return: said before anything is sent.
        assert!(
            matches!(
                r,
                Err(Error::Unsupported {
                    since: Some("6.5"),
                    ..
                })
            ),
            "{r:?}"
        );
    }
}

#[test]
fn seed_operations_end_to_end() {
    require_netns!();
    pm_or_unsupported!();
    let t = Topology::new(2);
    let (c, mut s, _l) = userspace_connection(&t, 4403);
    let local: SocketAddr = format!("{}:0", PATHS[1].client4).parse().expect("address");
    let remote: SocketAddr = format!("{}:4403", PATHS[1].server4)
        .parse()
        .expect("address");
    let c = std::sync::Arc::new(c);
    let c2 = c.clone();
    if !common::caps().full_info {
        // Before 6.5 the kernel gives no subflow ids: every id-based call says so.
        let r = t.client.run(move || -> Result<(), Error> {
            let mut h = mptcp::pm::SubflowHandle::new(&*c2)?;
            for r in [
                h.subflow_ids().map(drop),
                h.subflow(1).map(drop),
                h.set_subflow_backup(1, true),
            ] {
                assert!(
                    matches!(
                        r,
                        Err(Error::Unsupported {
                            since: Some("6.5"),
                            ..
                        })
                    ),
                    "{r:?}"
                );
            }
            Ok(())
        });
        r.expect("typed errors");
        return;
    }
    let r = t.client.run(move || -> Result<(), Error> {
        let mut h = mptcp::pm::SubflowHandle::new(&*c2)?;
        assert_eq!(h.subflow_ids()?, vec![1], "GetSubIDS: the initial subflow");
        let first = h.subflow(1)?;
        assert_eq!(first.local, c2.local_addr().expect("local"));
        assert_eq!(first.remote, c2.peer_addr().expect("peer"));
        let id = h.open_subflow(local, remote, Duration::from_secs(10))?;
        assert_ne!(id, 1);
        let mut ids = h.subflow_ids()?;
        ids.sort();
        assert_eq!(ids, vec![1, id]);
        let tuple = h.subflow(id)?;
        assert_eq!(tuple.remote, remote);
        assert_eq!(tuple.local.ip(), local.ip());
        assert_eq!(tuple.backup, None);
        h.set_subflow_backup(id, true)?;
        assert_eq!(h.subflow(id)?.backup, Some(true));
        // Options: set through the MPTCP socket, read back.
        h.set_subflow_sockopt_int(id, libc::SOL_TCP, libc::TCP_NODELAY, 1)?;
        assert_eq!(
            h.subflow_sockopt_int(id, libc::SOL_TCP, libc::TCP_NODELAY)?,
            1
        );
        h.set_subflow_sockopt_int(id, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
        assert_eq!(
            h.subflow_sockopt_int(1, libc::SOL_SOCKET, libc::SO_KEEPALIVE)?,
            1
        );
        assert!(matches!(h.subflow(999), Err(Error::NoSuchSubflow(999))));
        assert!(matches!(
            h.close_subflow(id, Shutdown::Write),
            Err(Error::Unsupported { .. })
        ));
        h.close_subflow(id, Shutdown::Both)?;
        let end = Instant::now() + Duration::from_secs(5);
        while h.subflow_ids()?.len() != 1 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(h.subflow_ids()?, vec![1]);
        Ok(())
    });
    r.expect("seed operations");
    (&*c).write_all(b"still works").expect("write");
    c.shutdown(Shutdown::Write).expect("shutdown");
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("read");
    assert_eq!(got, b"still works");
}

/// The async form of the seed's operations: open (waiting for the kernel's event on
/// tokio), prioritise and close a subflow.
#[cfg(feature = "tokio")]
#[test]
fn async_seed_operations_end_to_end() {
    require_netns!();
    pm_or_unsupported!();
    if !common::caps().full_info {
        println!("SKIP: subflow ids need MPTCP_FULL_INFO (Linux 6.5)");
        return;
    }
    let t = Topology::new(2);
    let (c, _s, _l) = userspace_connection(&t, 4404);
    let local: SocketAddr = format!("{}:0", PATHS[1].client4).parse().expect("address");
    let remote: SocketAddr = format!("{}:4404", PATHS[1].server4)
        .parse()
        .expect("address");
    let r = t.client.run(move || -> Result<(), Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let mut h = mptcp::pm::AsyncSubflowHandle::new_async(&c).await?;
            let id = h
                .open_subflow(local, remote, Duration::from_secs(10))
                .await?;
            let mut ids = h.subflow_ids()?;
            ids.sort();
            assert_eq!(ids, vec![1, id]);
            h.set_subflow_backup(id, true).await?;
            assert_eq!(h.subflow(id)?.backup, Some(true));
            h.close_subflow(id, Shutdown::Both).await?;
            let end = Instant::now() + Duration::from_secs(5);
            while h.subflow_ids()?.len() != 1 && Instant::now() < end {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(h.subflow_ids()?, vec![1]);
            // A subflow to a closed port fails with the subflow's error, not a timeout.
            let dead: SocketAddr = format!("{}:9", PATHS[1].server4).parse().expect("address");
            let r = h.open_subflow(local, dead, Duration::from_secs(10)).await;
            assert!(matches!(r, Err(Error::Os { .. })), "{r:?}");
            Ok(())
        })
    });
    r.expect("async seed operations");
}

/// Many requests in flight at once on one async client (and its clones), on a
/// single-threaded runtime: each gets its own reply, matched by sequence number.
#[cfg(feature = "tokio")]
#[test]
fn async_requests_run_concurrently_and_get_their_own_replies() {
    require_netns!();
    pm_or_unsupported!();
    let ns = Netns::new("apm");
    let (ids, listed, limits) = ns.run(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let pm = mptcp::pm::AsyncPathManager::new().await.expect("pm");
            pm.set_limits(Limits {
                subflows: Some(3),
                add_addr_accepted: Some(5),
            })
            .await
            .expect("limits");
            // 8 adds (the kernel's most endpoints) and 32 limit reads, all started
            // before any completes.
            let adds = (1..=8u8).map(|i| {
                let pm = pm.clone();
                async move {
                    let ep = Endpoint::new(IpAddr::from([198, 51, 100, i]), EndpointFlags::SIGNAL);
                    (i, pm.add_endpoint(&ep).await.expect("add"))
                }
            });
            let reads = (0..32).map(|_| pm.limits());
            let (ids, limits) = tokio::join!(join_all(adds), join_all(reads));
            let listed = pm.endpoints().await.expect("endpoints");
            (ids, listed, limits)
        })
    });
    for limit in limits {
        assert_eq!(
            limit.expect("limits"),
            Limits {
                subflows: Some(3),
                add_addr_accepted: Some(5)
            }
        );
    }
    assert_eq!(listed.len(), 8);
    for (i, id) in ids {
        let ep = listed.iter().find(|e| e.id == id).expect("listed");
        assert_eq!(ep.addr, IpAddr::from([198, 51, 100, i]), "id {id}");
    }
}

/// Runs futures concurrently on the current task and collects their outputs in order.
#[cfg(feature = "tokio")]
async fn join_all<F: std::future::Future>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in set.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *o = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// A root caller gets the buffer it asks for, beyond `net.core.rmem_max`
/// (`SO_RCVBUFFORCE`), and the size granted is reported.
#[test]
fn event_buffer_beyond_rmem_max_is_granted_and_reported() {
    require_netns!();
    pm_or_unsupported!();
    let ns = Netns::new("rcvbuf");
    let rmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .expect("rmem_max")
        .trim()
        .parse()
        .expect("number");
    let want = rmem_max * 4;
    let (got, read_back) = ns.run(move || {
        let ev = PathManager::new().expect("pm").events().expect("subscribe");
        let got = ev.set_receive_buffer(want).expect("set");
        (got, ev.receive_buffer().expect("get"))
    });
    assert_eq!(got, read_back);
    assert!(
        got >= want,
        "asked {want}, granted {got} (rmem_max {rmem_max})"
    );
}

/// How many events a default buffer holds while nobody reads, beside a large one that
/// loses nothing (the figures the `Events::set_receive_buffer` docs give).
#[test]
fn default_event_buffer_holds_a_burst_and_a_large_one_holds_more() {
    require_netns!();
    pm_or_unsupported!();
    if !common::caps().tcp_is_mptcp {
        // Listener events (the cheap burst used here) exist since 6.2.
        println!("skipped: listener events need Linux 6.2 (probed via 6.10's TCP_IS_MPTCP)");
        return;
    }
    let ns = Netns::new("burst");
    const EVENTS: usize = 4000;
    let (default_size, default_kept, big_kept) = ns.run(|| {
        let pm = PathManager::new().expect("pm");
        let mut small = pm.events().expect("subscribe");
        let mut big = pm.events().expect("subscribe");
        big.set_receive_buffer(32 << 20).expect("buffer");
        let default_size = small.receive_buffer().expect("size");
        for ev in [&small, &big] {
            ev.set_timeout(Some(Duration::from_millis(200)))
                .expect("timeout");
        }
        // A burst nobody reads: listeners opened and closed (two events each).
        for _ in 0..EVENTS / 2 {
            drop(mptcp::listen_with("127.0.0.1:0", Mode::Require).expect("listen"));
        }
        let count = |ev: &mut mptcp::pm::Events| {
            let (mut kept, mut lost) = (0, false);
            for _ in 0..EVENTS + 10 {
                match ev.next() {
                    Some(Ok(EventItem::Event(_))) => kept += 1,
                    Some(Ok(EventItem::Lost)) => lost = true,
                    Some(Err(Error::TimedOut(_))) => break,
                    other => panic!("{other:?}"),
                }
            }
            (kept, lost)
        };
        (default_size, count(&mut small), count(&mut big))
    });
    println!(
        "a default event buffer ({default_size} bytes) kept {} of a {EVENTS}-event burst \
         (lost reported: {}); a 32 MiB one kept {}",
        default_kept.0, default_kept.1, big_kept.0
    );
    assert_eq!(big_kept, (EVENTS, false), "the large buffer loses nothing");
    assert!(default_kept.1, "the default buffer overflows and says so");
    assert!(default_kept.0 > 0 && default_kept.0 < EVENTS);
}

#[test]
fn full_socket_buffer_reports_lost_events_and_goes_on() {
    require_netns!();
    pm_or_unsupported!();
    let ns = Netns::new("enobufs");
    let mut ev = ns.run(|| {
        let ev = PathManager::new().expect("pm").events().expect("subscribe");
        ev.set_receive_buffer(1).expect("tiny buffer"); // the kernel's minimum
        ev.set_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        ev
    });
    // Many events while nobody reads: loopback connections opened and closed (each
    // gives CREATED, ESTABLISHED and CLOSED on both ends; events exist since 5.12).
    ns.run(|| {
        let l = mptcp::listen_with("127.0.0.1:0", Mode::Require).expect("listen");
        let a = l.local_addr().expect("addr");
        for _ in 0..100 {
            let c = mptcp::connect_with(a, Mode::Require).expect("connect");
            let (s, _) = l.accept().expect("accept");
            drop((c, s));
        }
    });
    let mut lost = false;
    for _ in 0..1000 {
        match ev.next() {
            Some(Ok(EventItem::Lost)) => lost = true,
            Some(Ok(_)) => {}
            Some(Err(Error::TimedOut(_))) => break,
            other => panic!("{other:?}"),
        }
    }
    assert!(lost, "a full buffer is reported as lost events");
    // The stream goes on: a new event arrives after the loss.
    let token = ns.run(|| {
        let l = mptcp::listen_with("127.0.0.1:0", Mode::Require).expect("listen");
        let c = mptcp::connect_with(l.local_addr().expect("addr"), Mode::Require).expect("connect");
        let t = mptcp::token(&c).expect("token");
        let _ = l.accept();
        t
    });
    let e = expect_event(&mut ev, "CREATED", |e| {
        e.kind() == EventKind::Created && e.token() == Some(token)
    });
    assert_eq!(e.token(), Some(token));
}

#[cfg(feature = "tokio")]
#[test]
fn tokio_event_stream_and_async_requests() {
    require_netns!();
    pm_or_unsupported!();
    let t = Topology::new(1);
    let sa: SocketAddr = format!("{}:4700", PATHS[0].server4)
        .parse()
        .expect("address");
    let l = t
        .server
        .run(|| mptcp::listen_with("0.0.0.0:4700", Mode::Require))
        .expect("listen");
    let (token, kinds, eps) = t.client.run(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let pm = mptcp::pm::AsyncPathManager::new().await.expect("pm");
            let id = pm
                .add_endpoint(&Endpoint::new(
                    "192.0.2.50".parse().expect("address"),
                    EndpointFlags::SIGNAL,
                ))
                .await
                .expect("add");
            let eps = pm.endpoints().await.expect("endpoints");
            pm.delete_endpoint(id).await.expect("delete");
            let mut stream = pm.events().expect("subscribe");
            let c = mptcp::tokio::connect_with(sa, Mode::Require)
                .await
                .expect("connect");
            let token = mptcp::token(&c).expect("token");
            let mut kinds = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while !kinds.contains(&EventKind::Established) && tokio::time::Instant::now() < deadline
            {
                // The stream's own next(): no futures-util needed.
                match tokio::time::timeout(Duration::from_millis(500), stream.next()).await {
                    Ok(Some(Ok(EventItem::Event(e)))) if e.token() == Some(token) => {
                        kinds.push(e.kind())
                    }
                    Ok(Some(Ok(_))) | Err(_) => {}
                    other => panic!("{other:?}"),
                }
                // The client becomes fully established once data is acknowledged.
                let _ = c.try_write(b"x");
            }
            (token, kinds, eps)
        })
    });
    let _s = l.accept().expect("accept");
    assert_ne!(token.get(), 0);
    assert_eq!(kinds.first(), Some(&EventKind::Created), "{kinds:?}");
    assert!(kinds.contains(&EventKind::Established), "{kinds:?}");
    assert!(eps.iter().any(|e| e.addr.to_string() == "192.0.2.50"));
}

/// Regression: an endpoint with port 0 was added, then reported as "not listed" because
/// the lookup compared `Some(0)` with the kernel's "no port".
#[test]
fn endpoint_with_port_zero_is_added_and_found() {
    require_netns!();
    pm_or_unsupported!();
    let t = Topology::new(1);
    t.client.run(|| {
        let mut pm = PathManager::new().expect("pm");
        pm.flush_endpoints().expect("flush");
        let addr: IpAddr = "198.51.100.2".parse().expect("address");
        let id = pm
            .add_endpoint(&Endpoint::new(addr, EndpointFlags::SIGNAL).with_port(0))
            .expect("add with port 0");
        let listed = pm.endpoint(id).expect("get");
        assert_eq!((listed.addr, listed.port), (addr, None));
    });
}

/// Regression: deleting by id with another endpoint's address deleted the endpoint of
/// that id anyway (`ip mptcp` refuses such an address).
#[test]
fn delete_with_an_address_not_the_ids_is_refused() {
    require_netns!();
    pm_or_unsupported!();
    let t = Topology::new(1);
    t.client.run(|| {
        let mut pm = PathManager::new().expect("pm");
        pm.flush_endpoints().expect("flush");
        let addr: IpAddr = "198.51.100.2".parse().expect("address");
        let id = pm
            .add_endpoint(&Endpoint::new(addr, EndpointFlags::SIGNAL).with_id(4))
            .expect("add");
        let wrong: IpAddr = "203.0.113.99".parse().expect("address");
        let r = pm.delete_endpoint_addr(id, wrong);
        match &r {
            Err(e @ Error::InvalidArgument { reason, .. }) => {
                assert!(reason.contains("198.51.100.2") && reason.contains("203.0.113.99"));
                assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
            }
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
        assert_eq!(pm.endpoint(4).expect("still there").addr, addr);
        pm.delete_endpoint_addr(4, addr)
            .expect("the right address deletes");
        assert!(pm.endpoints().expect("dump").is_empty());
    });
}

/// Regression: `delete_endpoint(0)` answered Ok and deleted nothing.
#[test]
fn delete_endpoint_zero_is_refused() {
    require_netns!();
    pm_or_unsupported!();
    let t = Topology::new(1);
    t.client.run(|| {
        let mut pm = PathManager::new().expect("pm");
        pm.flush_endpoints().expect("flush");
        pm.add_endpoint(&Endpoint::new(
            "198.51.100.2".parse().expect("address"),
            EndpointFlags::SIGNAL,
        ))
        .expect("add");
        let r = pm.delete_endpoint(0);
        assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{r:?}");
        assert_eq!(pm.endpoints().expect("dump").len(), 1, "nothing deleted");
    });
}

/// Regression: the kernel's extended-ack text was replaced by a guess ("not supported by
/// this kernel (added in Linux 5.12)") when it answered EOPNOTSUPP to a known command.
#[test]
fn kernel_text_is_kept_for_a_known_command() {
    require_netns!();
    pm_or_unsupported!();
    let t = Topology::new(1);
    t.client.run(|| {
        let mut pm = PathManager::new().expect("pm");
        let r = pm.set_endpoint_flags(0, EndpointFlags::BACKUP);
        match &r {
            Err(Error::Netlink {
                message: Some(m),
                error,
                ..
            }) => {
                assert!(!m.is_empty());
                assert!(error.raw_os_error().is_some());
            }
            // Kernels without extended-ack text for it: the errno alone, still no guess.
            Err(Error::Netlink { message: None, .. }) => {}
            other => panic!("expected the kernel's own error, got {other:?}"),
        }
        let e = r.expect_err("error");
        let (errno, shown) = (e.errno(), e.to_string());
        let io = std::io::Error::from(e);
        assert_eq!(io.to_string(), shown, "the message kept through io::Error");
        let inner = io.get_ref().and_then(|i| i.downcast_ref::<Error>());
        assert_eq!(inner.and_then(Error::errno), errno, "and the errno");
        assert!(errno.is_some());
    });
}

/// Regression: a zero event timeout (or one under 1 µs) made `next()` block forever,
/// because the kernel reads `timeval{0,0}` as "no timeout".
#[test]
fn event_timeout_zero_is_refused_and_tiny_ones_round_up() {
    require_netns!();
    pm_or_unsupported!();
    let t = Topology::new(1);
    let (tx, rx) = std::sync::mpsc::channel();
    let _worker = t.client.spawn(move || {
        let pm = PathManager::new().expect("pm");
        let mut events = pm.events().expect("subscribe");
        let zero = events.set_timeout(Some(Duration::ZERO));
        let _ = tx.send(format!(
            "zero: {}",
            matches!(zero, Err(Error::InvalidArgument { .. }))
        ));
        events
            .set_timeout(Some(Duration::from_nanos(1)))
            .expect("1 ns is accepted");
        let started = Instant::now();
        let r = events.next();
        let _ = tx.send(format!(
            "next: {} after {:?}",
            matches!(r, Some(Err(_))),
            started.elapsed()
        ));
    });
    let first = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("first answer");
    assert_eq!(first, "zero: true");
    let second = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("next() returned instead of blocking");
    assert!(second.starts_with("next: true"), "{second}");
}

/// Regression: `set_kind` by an unprivileged user gave a bare EACCES, not the
/// `PermissionDenied` naming CAP_NET_ADMIN of every other path-manager write. The test
/// runs itself again under `setpriv` as an unprivileged user.
#[test]
fn set_kind_without_privilege_names_cap_net_admin() {
    if std::env::var_os("MPTCP_TEST_UNPRIVILEGED_CHILD").is_some() {
        let r = mptcp::pm::set_kind(PmKind::Userspace);
        match &r {
            Err(e @ Error::PermissionDenied { .. }) => {
                assert!(e.to_string().contains("CAP_NET_ADMIN"), "{e}");
                assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
            }
            other => panic!("expected PermissionDenied, got {other:?}"),
        }
        return;
    }
    require_netns!();
    if !std::path::Path::new("/proc/sys/net/mptcp").exists() {
        eprintln!("skipped: no net.mptcp sysctls in this kernel");
        return;
    }
    let Some(unprivileged) = common::unprivileged() else {
        return;
    };
    common::rerun_as_child(
        "set_kind_without_privilege_names_cap_net_admin",
        &unprivileged,
        &[("MPTCP_TEST_UNPRIVILEGED_CHILD", "1")],
    );
}

/// Regression: `into_stream()` outside a tokio runtime panicked (tokio's reactor is
/// missing); it is an error.
#[cfg(feature = "tokio")]
#[test]
fn into_stream_outside_a_runtime_is_an_error() {
    require_netns!();
    pm_or_unsupported!();
    let t = Topology::new(1);
    t.client.run(|| {
        let pm = PathManager::new().expect("pm");
        let events = pm.events().expect("subscribe");
        let r = events.into_stream();
        assert!(
            matches!(r, Err(Error::InvalidArgument { .. })),
            "{:?}",
            r.err()
        );
    });
}
