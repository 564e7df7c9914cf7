//! The core socket cases through tokio, in network namespaces.

mod common;

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
