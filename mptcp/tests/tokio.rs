//! The core socket cases through tokio, in network namespaces.

#[macro_use]
extern crate mptcp_testnet;
use mptcp_testnet as common;

use common::{data, sha256, Topology, PATHS};
use mptcp::{Error, Mode, Unavailable};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn assert_send<T: Send>(t: T) -> T {
    t
}

/// Server (listener made in the server namespace, as tokio's) and client (connected
/// from the client namespace through `mptcp::tokio`), one transfer; returns what each
/// side reported.
fn run_case(
    t: &Topology,
    server_ip: &str,
    server_mode: Mode,
    client_mode: Mode,
) -> (
    mptcp::Status,
    mptcp::Status,
    Result<mptcp::Connection, Error>,
) {
    let sa: SocketAddr = if server_ip.contains(':') {
        format!("[{server_ip}]:4200")
    } else {
        format!("{server_ip}:4200")
    }
    .parse()
    .expect("addr");
    let std_listener = t
        .server
        .run(move || mptcp::listen_with(sa, server_mode))
        .expect("listen");
    std_listener.set_nonblocking(true).expect("nonblocking");
    t.client.run(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
            let payload = data(256 * 1024);
            let expect = sha256(&payload);
            let server = tokio::spawn(async move {
                let (mut conn, _) = listener.accept().await.expect("accept");
                let st = mptcp::status(&conn).expect("server status");
                let mut buf = Vec::new();
                conn.read_to_end(&mut buf).await.expect("read");
                assert_eq!(sha256(&buf), expect, "data intact");
                st
            });
            let mut client = assert_send(mptcp::tokio::connect_with(sa, client_mode))
                .await
                .expect("connect");
            client.write_all(&payload).await.expect("write");
            let conn = mptcp::connection(&client);
            let st = mptcp::status(&client).expect("client status");
            client.shutdown().await.expect("shutdown");
            let server_st = server.await.expect("server task");
            (st, server_st, conn)
        })
    })
}

#[test]
fn tokio_mptcp_to_mptcp() {
    require_netns!();
    mptcp_or_fallback!();
    let t = Topology::new(1);
    let (c, s, conn) = run_case(&t, PATHS[0].server4, Mode::Require, Mode::Require);
    assert!(c.using_mptcp && s.using_mptcp);
    let conn = conn.expect("connection info");
    assert_eq!(conn.subflows.len(), 1);
    assert_ne!(conn.info.token().get(), 0);
}

#[test]
fn tokio_mptcp_to_mptcp_v6() {
    require_netns!();
    mptcp_or_fallback!();
    let t = Topology::new(1);
    let (c, s, conn) = run_case(&t, PATHS[0].server6, Mode::Require, Mode::Require);
    assert!(c.using_mptcp && s.using_mptcp);
    assert!(conn.expect("connection").subflows[0].local.is_ipv6());
}

#[test]
fn tokio_fallback_to_tcp_server() {
    require_netns!();
    mptcp_or_fallback!();
    let t = Topology::new(1);
    let (c, s, conn) = run_case(&t, PATHS[0].server4, Mode::Off, Mode::Require);
    assert!(c.created_as_mptcp && !c.using_mptcp);
    assert!(!s.using_mptcp);
    assert!(matches!(conn, Err(Error::FellBack)));
}

#[test]
fn tokio_disabled_namespace() {
    require_netns!();
    mptcp_or_fallback!();
    let t = Topology::new(1);
    t.client.sysctl("net.mptcp.enabled", "0");
    let (c, s, conn) = run_case(&t, PATHS[0].server4, Mode::Require, Mode::Prefer);
    assert!(!c.created_as_mptcp && !s.using_mptcp);
    assert!(matches!(conn, Err(Error::NotMptcp(_))));
    let sa: SocketAddr = format!("{}:4201", PATHS[0].server4).parse().expect("addr");
    let r = t.client.run(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(mptcp::tokio::connect_with(sa, Mode::Require))
    });
    assert!(
        matches!(r, Err(Error::Unavailable(Unavailable::Disabled))),
        "{r:?}"
    );
}

/// Both builders have the same constructors, options (set and read back from the
/// kernel) and conversions; options survive a conversion either way and into tokio's
/// own `TcpSocket`. Loopback: no namespace needed.
#[test]
fn both_builders_take_the_same_options_and_convert_both_ways() {
    use std::time::Duration;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // The same calls on each builder, read back from the kernel.
        macro_rules! configure_and_check {
            ($s:expr) => {{
                let s = $s;
                s.set_nodelay(true).expect("nodelay");
                assert!(s.nodelay().expect("nodelay"));
                s.set_reuseaddr(true).expect("reuseaddr");
                assert!(s.reuseaddr().expect("reuseaddr"));
                s.set_reuseport(true).expect("reuseport");
                assert!(s.reuseport().expect("reuseport"));
                s.set_keepalive(true).expect("keepalive");
                assert!(s.keepalive().expect("keepalive"));
                s.set_send_buffer_size(64 * 1024).expect("sndbuf");
                assert!(s.send_buffer_size().expect("sndbuf") >= 64 * 1024);
                s.set_recv_buffer_size(64 * 1024).expect("rcvbuf");
                assert!(s.recv_buffer_size().expect("rcvbuf") >= 64 * 1024);
                s.set_linger(Some(Duration::from_secs(3))).expect("linger");
                assert_eq!(s.linger().expect("linger"), Some(Duration::from_secs(3)));
                s.set_tos(0x10).expect("tos");
                assert_eq!(s.tos().expect("tos"), 0x10);
                assert!(s.take_error().expect("SO_ERROR").is_none());
                s.bind("127.0.0.1:0".parse().expect("address"))
                    .expect("bind");
                assert_eq!(s.local_addr().expect("local").ip().to_string(), "127.0.0.1");
                s
            }};
        }
        let blocking = configure_and_check!(mptcp::MptcpSocket::new_v4(Mode::Prefer).expect("std"));
        let tokio_side =
            configure_and_check!(
                mptcp::tokio::MptcpSocket::new(mptcp::Domain::Ipv4, Mode::Prefer).expect("tokio")
            );
        assert_eq!(blocking.created_as_mptcp(), tokio_side.created_as_mptcp());
        assert_eq!(blocking.unavailable(), tokio_side.unavailable());
        let v6 = mptcp::tokio::MptcpSocket::new_v6(Mode::Prefer).expect("v6");
        assert_eq!(
            mptcp::MptcpSocket::for_addr("[::1]:1".parse().expect("a"), Mode::Prefer)
                .expect("for_addr v6")
                .created_as_mptcp(),
            v6.created_as_mptcp()
        );

        // std -> tokio keeps the socket and its options; tokio -> std too.
        let bound = blocking.local_addr().expect("local");
        let t = mptcp::tokio::MptcpSocket::try_from(blocking).expect("to tokio");
        assert_eq!(t.local_addr().expect("local"), bound);
        assert!(t.nodelay().expect("nodelay"));
        let back = mptcp::MptcpSocket::try_from(t).expect("to std");
        assert_eq!(back.local_addr().expect("local"), bound);
        assert!(back.keepalive().expect("keepalive"));
        // Into tokio's own socket, and through a descriptor.
        let tcp: tokio::net::TcpSocket = tokio_side.into();
        assert!(tcp.nodelay().expect("nodelay"));
        let fd = std::os::fd::OwnedFd::from(back);
        let adopted = mptcp::tokio::MptcpSocket::try_from(fd).expect("adopt");
        assert_eq!(adopted.local_addr().expect("local"), bound);

        // The backlog is the same type on both; the listener works.
        let listener = adopted.listen(8).expect("listen");
        let client = mptcp::tokio::connect(bound).await.expect("connect");
        let (_accepted, peer) = listener.accept().await.expect("accept");
        assert_eq!(peer, client.local_addr().expect("client"));
    });
    // Outside a runtime the tokio builder says why instead of panicking later.
    match mptcp::tokio::MptcpSocket::new_v4(Mode::Prefer) {
        Err(Error::InvalidArgument { reason, .. }) => assert!(reason.contains("tokio"), "{reason}"),
        other => panic!("{other:?}"),
    }
}
