//! What the running kernel offers, seen through the library, printed as
//! `VMTEST FEATURE name=value` lines (the VM runner turns them into the README's kernel
//! support table), with the consistency checks that must hold on every kernel.
#![cfg(all(feature = "pm", feature = "diag"))]

#[macro_use]
extern crate mptcp_testnet;
use mptcp_testnet as common;

use mptcp::pm::{Endpoint, EndpointFlags, EventItem, EventKind, PathManager};
use mptcp::{Detection, Mode};
use std::time::{Duration, Instant};

fn feature(name: &str, value: impl std::fmt::Display) {
    println!("VMTEST FEATURE {name}={value}");
}

#[test]
fn kernel_features() {
    require_netns!();
    let ns = common::Netns::new("features");
    ns.run(|| {
        let sock =
            mptcp::MptcpSocket::for_addr("127.0.0.1:0".parse().expect("addr"), Mode::Require);
        feature("MPTCP sockets", if sock.is_ok() { "yes" } else { "no" });
        if let Err(e) = sock {
            assert!(matches!(e, mptcp::Error::Unavailable(_)), "{e}");
            assert!(matches!(
                PathManager::new(),
                Err(mptcp::Error::Unsupported { .. })
            ));
            for f in [
                "MPTCP_INFO bytes",
                "fallback detection",
                "subflow ids",
                "path manager",
                "userspace PM",
                "listener events",
                "addresses by token",
                "laminar endpoints",
                "diag: connections",
                "diag: listeners",
                "diag: subflows (root)",
            ] {
                feature(f, "-");
            }
            return;
        }
        let l = mptcp::listen_with("127.0.0.1:0", Mode::Require).expect("listen");
        let mut events = PathManager::new().expect("pm").events().expect("events");
        events
            .set_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let c = mptcp::connect_with(l.local_addr().expect("addr"), Mode::Require).expect("connect");
        let (_s, _) = l.accept().expect("accept");
        let info = mptcp::info(&c).expect("info");
        let bytes = if info.last_ack_recv().is_some() {
            96
        } else if info.subflows_total().is_some() {
            88
        } else if info.bytes_acked().is_some() {
            80
        } else {
            48
        };
        feature("MPTCP_INFO bytes", bytes);
        let st = mptcp::status(&c).expect("status");
        assert!(st.using_mptcp);
        feature(
            "fallback detection",
            match st.detection {
                Detection::TcpIsMptcp => "TCP_IS_MPTCP",
                Detection::SolMptcp => "SOL_MPTCP errno",
                _ => "SO_PROTOCOL only",
            },
        );
        let ids = mptcp::subflows(&c).expect("subflows")[0].id.is_some();
        feature("subflow ids", if ids { "yes" } else { "no" });
        // Facts that hold together: ids came with the 80-byte info (6.5), TCP_IS_MPTCP
        // with the 96-byte one (6.10).
        assert_eq!(ids, bytes >= 80);
        assert_eq!(st.detection == Detection::TcpIsMptcp, bytes >= 96);
        let mut pm = PathManager::new().expect("pm");
        feature("path manager", "yes");
        let selectable = std::path::Path::new("/proc/sys/net/mptcp/path_manager").exists()
            || std::path::Path::new("/proc/sys/net/mptcp/pm_type").exists();
        feature("userspace PM", if selectable { "yes" } else { "no" });
        let token = mptcp::token(&c).expect("token");
        feature(
            "addresses by token",
            match pm.announced_addresses(token) {
                Ok(_) | Err(mptcp::Error::NeedsUserspacePm { .. }) => "yes",
                Err(mptcp::Error::Unsupported { .. }) => "no",
                Err(e) => panic!("announced: {e}"),
            },
        );
        drop(mptcp::listen_with("127.0.0.1:0", Mode::Require).expect("listen"));
        let end = Instant::now() + Duration::from_secs(3);
        let mut listener_events = false;
        while Instant::now() < end && !listener_events {
            if let Some(Ok(EventItem::Event(e))) = events.next() {
                listener_events |= e.kind() == EventKind::ListenerCreated;
            }
        }
        feature(
            "listener events",
            if listener_events { "yes" } else { "no" },
        );
        let id = pm
            .add_endpoint(&Endpoint::new(
                "192.0.2.99".parse().expect("addr"),
                EndpointFlags::SIGNAL | EndpointFlags::LAMINAR,
            ))
            .expect("endpoint");
        let laminar = pm
            .endpoint(id)
            .expect("get")
            .flags
            .contains(EndpointFlags::LAMINAR);
        feature("laminar endpoints", if laminar { "yes" } else { "no" });
        // Socket diagnostics: connections (mptcp_diag), listeners, and subflows with
        // their MPTCP attributes (the test runs as root).
        match mptcp::diag::connections() {
            Err(mptcp::Error::MissingModule { .. }) => {
                for f in [
                    "diag: connections",
                    "diag: listeners",
                    "diag: subflows (root)",
                ] {
                    feature(f, "no");
                }
            }
            r => {
                let conns = r.expect("diag");
                let ours = conns
                    .iter()
                    .find(|x| x.token == Some(token))
                    .expect("the connection is listed");
                feature("diag: connections", "yes");
                let listeners = conns
                    .iter()
                    .any(|x| x.state == mptcp::diag::SocketState::Listen);
                feature("diag: listeners", if listeners { "yes" } else { "no" });
                feature(
                    "diag: subflows (root)",
                    if ours.subflows.is_empty() {
                        "no"
                    } else {
                        "yes"
                    },
                );
            }
        }
    });
}
