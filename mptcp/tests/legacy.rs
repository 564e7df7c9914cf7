//! The out-of-tree API on the real (upstream) kernel: every call must say the kernel does
//! not offer it, never return garbage.

#[macro_use]
extern crate mptcp_testnet;
use mptcp_testnet as common;

use common::{Topology, PATHS};
use mptcp::legacy;
use mptcp::{Error, Mode};
use std::net::{SocketAddr, TcpStream};

fn assert_missing<T: std::fmt::Debug>(what: &str, r: mptcp::Result<T>) {
    match r {
        Err(Error::Unsupported { feature, .. }) => {
            assert!(feature.contains("out-of-tree"), "{what}: {feature}")
        }
        other => panic!("{what}: expected the out-of-tree API to be missing, got {other:?}"),
    }
}

fn all_six(s: &TcpStream) {
    let l: SocketAddr = format!("{}:0", PATHS[1].client4).parse().expect("address");
    let r: SocketAddr = format!("{}:1", PATHS[1].server4).parse().expect("address");
    assert_missing("GetSubIDS", legacy::get_sub_ids(s));
    assert_missing("GetSubTuple", legacy::get_sub_tuple(s, 1));
    assert_missing("OpenSub", legacy::open_sub(s, l, r));
    assert_missing("CloseSub", legacy::close_sub(s, 1));
    assert_missing(
        "GetSubSockoptInt",
        legacy::get_sub_sockopt_int(s, 1, libc::SOL_TCP, libc::TCP_NODELAY),
    );
    assert_missing(
        "SetSubSockoptInt",
        legacy::set_sub_sockopt_int(s, 1, libc::SOL_TCP, libc::TCP_NODELAY, 1),
    );
}

#[test]
fn upstream_kernel_reports_the_api_missing() {
    require_netns!();
    let t = Topology::new(1);
    let sa: SocketAddr = format!("{}:4500", PATHS[0].server4)
        .parse()
        .expect("address");
    // Prefer: on a kernel without MPTCP these are TCP sockets, which must answer the same.
    let l = t
        .server
        .run(move || mptcp::listen_with(sa, Mode::Prefer))
        .expect("listen");
    let mptcp_conn = t
        .client
        .run(move || mptcp::connect_with(sa, Mode::Prefer))
        .expect("connect");
    let (accepted, _) = l.accept().expect("accept");
    all_six(&mptcp_conn);
    all_six(&accepted);
    let tcp = t
        .client
        .run(move || mptcp::connect_with(sa, Mode::Off))
        .expect("tcp connect");
    all_six(&tcp);
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    assert!(matches!(
        legacy::get_sub_ids(&udp),
        Err(Error::NotMptcp(mptcp::NotMptcp::NotStream))
    ));
    let file = std::fs::File::open("/proc/self/stat").expect("file");
    assert!(matches!(
        legacy::close_sub(&file, 1),
        Err(Error::NotMptcp(mptcp::NotMptcp::NotASocket))
    ));
}
