//! Property tests: every decoder of kernel data, fed arbitrary bytes, returns a value or
//! a typed error and never panics; encoders and decoders round-trip. The case count is
//! bounded (256 per property), so `cargo test` stays fast.

use crate::wire::info::MptcpInfo;
use crate::wire::sockaddr;
use crate::wire::subflow::{addrs, decode_full_info, TcpInfo};
use proptest::prelude::*;
#[cfg(feature = "legacy")]
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// 256 cases, or `PROPTEST_CASES` when set (Miri runs a few).
pub(crate) fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    ProptestConfig::with_cases(cases)
}

/// Any IPv4 or IPv6 socket address (scope and flow label included).
#[cfg(feature = "legacy")]
pub(crate) fn any_socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port))),
        (any::<[u8; 16]>(), any::<u16>(), any::<u32>(), any::<u32>()).prop_map(
            |(ip, port, flow, scope)| SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                flow,
                scope
            ))
        ),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mptcp_info_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
        match MptcpInfo::decode(&bytes) {
            Ok(info) => {
                prop_assert!(bytes.len() >= MptcpInfo::BASE_LEN);
                // A field is present exactly when the reply covers its version.
                prop_assert_eq!(info.bytes_acked().is_some(), bytes.len() >= 80);
                let total_end =
                    std::mem::offset_of!(mptcp_sys::mptcp_info, mptcpi_subflows_total) + 1;
                prop_assert_eq!(info.subflows_total().is_some(), bytes.len() >= total_end);
                prop_assert_eq!(info.last_ack_recv().is_some(), bytes.len() >= 96);
            }
            Err(e) => {
                prop_assert!(bytes.len() < MptcpInfo::BASE_LEN);
                let is_decode = matches!(e, crate::Error::Decode { .. });
                prop_assert!(is_decode, "{}", e);
            }
        }
    }

    #[test]
    fn tcp_info_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        prop_assert_eq!(TcpInfo::decode(&bytes).is_ok(), bytes.len() >= TcpInfo::BASE_LEN);
    }

    #[test]
    fn sockaddr_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = sockaddr::decode(&bytes);
        let _ = addrs(&bytes);
    }

    #[test]
    fn full_info_never_panics(
        full in proptest::collection::vec(any::<u8>(), 0..200),
        sf in proptest::collection::vec(any::<u8>(), 0..2000),
        tcp in proptest::collection::vec(any::<u8>(), 0..2000),
    ) {
        let _ = decode_full_info(&full, &sf, &tcp);
    }
}

#[cfg(feature = "legacy")]
proptest! {
    #![proptest_config(config())]

    #[test]
    fn legacy_replies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let _ = crate::legacy::decode_sub_ids(&bytes);
        let _ = crate::legacy::decode_sub_tuple(&bytes);
    }

    /// What the out-of-tree API is given decodes back to the same addresses.
    #[test]
    fn legacy_tuple_round_trips(id in any::<u8>(), a in any_socket_addr(), b in any_socket_addr()) {
        let b = match (a, b) {
            (SocketAddr::V4(_), SocketAddr::V6(v6)) => SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), v6.port()),
            (SocketAddr::V6(_), SocketAddr::V4(v4)) => SocketAddr::new(std::net::IpAddr::V6(Ipv6Addr::LOCALHOST), v4.port()),
            _ => b,
        };
        let mut buf = crate::legacy::open_sub_buffer(&a, &b).expect("same family");
        buf[0] = id;
        let t = crate::legacy::decode_sub_tuple(&buf).expect("decode");
        prop_assert_eq!((t.id, t.local, t.remote), (u32::from(id), a, b));
    }
}
