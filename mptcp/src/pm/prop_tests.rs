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

    /// The attribute walk reads what netlink-packet-core's `NlasIterator` reads from the
    /// same bytes: the same attributes (type without flags, value) and an error at the
    /// same place, for well-formed attributes followed by arbitrary bytes.
    #[test]
    fn attribute_walk_agrees_with_netlink_packet_core(
        attrs in proptest::collection::vec(
            (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..12)),
            0..6,
        ),
        tail in proptest::collection::vec(any::<u8>(), 0..12),
    ) {
        let bytes = attribute_bytes(&attrs, &tail);
        let ours: Vec<_> = nlas(&bytes)
            .map(|r| r.map(|a| (a.kind, a.value.to_vec())).map_err(|_| ()))
            .collect();
        let theirs: Vec<_> = netlink_packet_core::NlasIterator::new(&bytes[..])
            .map(|r| {
                r.map(|b| {
                    let len = usize::from(b.length());
                    (b.kind(), b.into_inner()[4..len].to_vec())
                })
                .map_err(|_| ())
            })
            .collect();
        prop_assert_eq!(ours, theirs);
    }

    /// The message framing reads what netlink-packet-core's `NetlinkBuffer` reads: the
    /// same headers and payloads, and an error at the same place.
    #[test]
    fn message_framing_agrees_with_netlink_packet_core(
        msgs in proptest::collection::vec(
            (any::<u16>(), any::<u16>(), any::<u32>(), proptest::collection::vec(any::<u8>(), 0..24)),
            0..4,
        ),
        tail in proptest::collection::vec(any::<u8>(), 0..24),
    ) {
        let mut bytes = Vec::new();
        for (kind, flags, seq, payload) in &msgs {
            bytes.extend(((16 + payload.len()) as u32).to_ne_bytes());
            bytes.extend(kind.to_ne_bytes());
            bytes.extend(flags.to_ne_bytes());
            bytes.extend(seq.to_ne_bytes());
            bytes.extend(0u32.to_ne_bytes());
            bytes.extend(payload);
            bytes.resize(bytes.len().next_multiple_of(4), 0);
        }
        bytes.extend(&tail);
        let ours: Vec<_> = messages(&bytes)
            .map(|r| {
                r.map(|m| (m.message_type(), m.flags(), m.sequence_number(), m.payload().to_vec()))
                    .map_err(|_| ())
            })
            .collect();
        let mut theirs = Vec::new();
        let mut off = 0;
        while off < bytes.len() {
            match netlink_packet_core::NetlinkBuffer::new_checked(&bytes[off..]) {
                Ok(m) => {
                    let len = m.length() as usize;
                    let m = netlink_packet_core::NetlinkBuffer::new(&bytes[off..off + len]);
                    theirs.push(Ok((
                        m.message_type(),
                        m.flags(),
                        m.sequence_number(),
                        m.payload().to_vec(),
                    )));
                    off += len.next_multiple_of(4);
                }
                Err(_) => {
                    theirs.push(Err(()));
                    break;
                }
            }
        }
        prop_assert_eq!(ours, theirs);
    }
}

/// Attributes as the kernel lays them out (header, value, padding to 4 bytes), then
/// `tail` as it is.
fn attribute_bytes(attrs: &[(u16, Vec<u8>)], tail: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (kind, value) in attrs {
        bytes.extend(((4 + value.len()) as u16).to_ne_bytes());
        bytes.extend(kind.to_ne_bytes());
        bytes.extend(value);
        bytes.resize(bytes.len().next_multiple_of(4), 0);
    }
    bytes.extend(tail);
    bytes
}
