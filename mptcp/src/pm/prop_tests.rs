//! Property tests of the path manager's decoders: arbitrary datagrams give events or
//! error items, never a panic; endpoints round-trip through their attributes.

use super::event::decode_datagram;
use super::netlink::{ext_ack_message, messages, nla_nested, nlas, Reply};
use super::{Endpoint, EndpointFlags};
use mptcp_sys as sys;
use netlink_packet_core::Emitable;
use proptest::prelude::*;
use std::net::IpAddr;

proptest! {
    #![proptest_config(crate::prop_tests::config())]

    #[test]
    fn datagrams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut items = std::collections::VecDeque::new();
        decode_datagram(&bytes, &mut items);
        // Something is reported for every non-empty datagram.
        prop_assert_eq!(items.is_empty(), bytes.is_empty());
    }

    /// A valid header in front of arbitrary attributes: still no panic.
    #[test]
    fn event_attributes_never_panic(
        cmd in any::<u8>(),
        attrs in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let len = 20 + attrs.len();
        let mut m = Vec::new();
        m.extend((len as u32).to_ne_bytes());
        m.extend(0x1du16.to_ne_bytes());
        m.extend([0u8; 10]);
        m.extend([cmd, 1, 0, 0]);
        m.extend(&attrs);
        let mut items = std::collections::VecDeque::new();
        decode_datagram(&m, &mut items);
        prop_assert_eq!(items.len(), 1);
    }

    #[test]
    fn attributes_and_ext_ack_never_panic(
        flags in any::<u16>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let _ = nlas(&bytes).count();
        let _ = ext_ack_message(flags, &bytes);
        let _ = Endpoint::decode(&bytes);
        let _ = messages(&bytes).count();
        let _ = Reply::parse(&bytes).map(|r| r.nlas().count());
    }

    /// An endpoint's attributes, as the kernel echoes them, decode to the same endpoint.
    #[test]
    fn endpoints_round_trip(
        v4 in any::<bool>(),
        raw in any::<[u8; 16]>(),
        id in any::<u8>(),
        port in proptest::option::of(1u16..),
        flags in any::<u32>(),
        ifindex in proptest::option::of(1i32..),
    ) {
        let addr = if v4 {
            IpAddr::from([raw[0], raw[1], raw[2], raw[3]])
        } else {
            IpAddr::from(raw)
        };
        let mut ep = Endpoint::new(addr, EndpointFlags::from_bits_retain(flags)).with_id(id);
        ep.port = port;
        ep.ifindex = ifindex;
        let nested = nla_nested(sys::MPTCP_PM_ATTR_ADDR, &ep.attrs());
        let mut bytes = vec![0u8; nested.buffer_len()];
        nested.emit(&mut bytes);
        let value = nlas(&bytes).next().expect("one attribute").expect("well formed").value;
        prop_assert_eq!(Endpoint::decode(value).expect("decode"), ep);
    }
}
