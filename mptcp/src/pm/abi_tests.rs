//! Netlink messages of the `mptcp_pm` family built the way this architecture's kernel
//! builds them: netlink and attribute headers and integer attributes in host byte order,
//! addresses and event ports (`MPTCP_ATTR_SPORT`/`DPORT`) in network order, the endpoint
//! port (`MPTCP_PM_ADDR_ATTR_PORT`) in host order.

use super::event::{decode_datagram, Event, EventItem, EventKind};
use super::{Endpoint, EndpointFlags};
use mptcp_sys as sys;
use std::net::{IpAddr, SocketAddr};

/// The items of one datagram.
fn decoded(dgram: &[u8]) -> Vec<crate::Result<EventItem>> {
    let mut out = std::collections::VecDeque::new();
    decode_datagram(dgram, &mut out);
    out.into()
}

/// One attribute: length and type in host order, the payload padded to 4 bytes.
fn nla(kind: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(((4 + payload.len()) as u16).to_ne_bytes());
    b.extend((kind as u16).to_ne_bytes());
    b.extend(payload);
    b.resize(b.len().next_multiple_of(4), 0);
    b
}

/// A Generic Netlink message: `nlmsghdr`, `genlmsghdr`, attributes.
fn genl_message(family: u16, cmd: u8, attrs: &[u8]) -> Vec<u8> {
    let len = 16 + 4 + attrs.len();
    let mut b = Vec::new();
    b.extend((len as u32).to_ne_bytes());
    b.extend(family.to_ne_bytes());
    b.extend(0u16.to_ne_bytes()); // flags
    b.extend(0u32.to_ne_bytes()); // sequence (events: 0)
    b.extend(0u32.to_ne_bytes()); // port id (the kernel: 0)
    b.extend([cmd, sys::MPTCP_PM_VER as u8, 0, 0]);
    b.extend(attrs);
    b
}

#[test]
fn sub_established_event_from_kernel_bytes() {
    let mut attrs = Vec::new();
    attrs.extend(nla(sys::MPTCP_ATTR_TOKEN, &0x8899_aabbu32.to_ne_bytes()));
    attrs.extend(nla(
        sys::MPTCP_ATTR_FAMILY,
        &(libc::AF_INET as u16).to_ne_bytes(),
    ));
    attrs.extend(nla(sys::MPTCP_ATTR_LOC_ID, &[2]));
    attrs.extend(nla(sys::MPTCP_ATTR_REM_ID, &[0]));
    attrs.extend(nla(sys::MPTCP_ATTR_SADDR4, &[198, 51, 100, 1]));
    attrs.extend(nla(sys::MPTCP_ATTR_DADDR4, &[192, 0, 2, 2]));
    attrs.extend(nla(sys::MPTCP_ATTR_SPORT, &40_001u16.to_be_bytes()));
    attrs.extend(nla(sys::MPTCP_ATTR_DPORT, &443u16.to_be_bytes()));
    attrs.extend(nla(sys::MPTCP_ATTR_BACKUP, &[1]));
    attrs.extend(nla(sys::MPTCP_ATTR_IF_IDX, &0x0102_0304i32.to_ne_bytes()));
    // Two events in one datagram, as the kernel may batch them.
    let mut dgram = genl_message(0x1d, sys::MPTCP_EVENT_SUB_ESTABLISHED as u8, &attrs);
    let closed = nla(sys::MPTCP_ATTR_TOKEN, &7u32.to_ne_bytes());
    dgram.extend(genl_message(0x1d, sys::MPTCP_EVENT_CLOSED as u8, &closed));

    let items = decoded(&dgram);
    assert_eq!(items.len(), 2);
    let Ok(EventItem::Event(Event::SubEstablished(sf))) = &items[0] else {
        panic!("not a subflow event: {:?}", items[0]);
    };
    assert_eq!(sf.token, crate::Token::new(0x8899_aabb));
    assert_eq!(sf.local_id, 2);
    assert_eq!(sf.remote_id, 0);
    let local: SocketAddr = "198.51.100.1:40001".parse().expect("address");
    let remote: SocketAddr = "192.0.2.2:443".parse().expect("address");
    assert_eq!(sf.local, local);
    assert_eq!(sf.remote, remote);
    assert!(sf.backup);
    assert_eq!(sf.ifindex, Some(0x0102_0304));
    assert_eq!(sf.error, None);
    let Ok(EventItem::Event(closed)) = &items[1] else {
        panic!("not an event: {:?}", items[1]);
    };
    assert_eq!(closed.kind(), EventKind::Closed);
    assert_eq!(closed.token(), Some(crate::Token::new(7)));
}

/// CREATED and ESTABLISHED carry the initial subflow's address ids as the subflow
/// events do; an event without them decodes with `None`.
#[test]
fn connection_events_keep_their_address_ids() {
    let mut attrs = Vec::new();
    attrs.extend(nla(sys::MPTCP_ATTR_TOKEN, &0x0102_0304u32.to_ne_bytes()));
    attrs.extend(nla(sys::MPTCP_ATTR_SADDR4, &[192, 0, 2, 1]));
    attrs.extend(nla(sys::MPTCP_ATTR_DADDR4, &[192, 0, 2, 2]));
    attrs.extend(nla(sys::MPTCP_ATTR_SPORT, &40_000u16.to_be_bytes()));
    attrs.extend(nla(sys::MPTCP_ATTR_DPORT, &80u16.to_be_bytes()));
    let bare = genl_message(0x1d, sys::MPTCP_EVENT_CREATED as u8, &attrs);
    attrs.extend(nla(sys::MPTCP_ATTR_LOC_ID, &[3]));
    attrs.extend(nla(sys::MPTCP_ATTR_REM_ID, &[5]));
    let mut dgram = genl_message(0x1d, sys::MPTCP_EVENT_ESTABLISHED as u8, &attrs);
    dgram.extend(bare);
    let items = decoded(&dgram);
    let Ok(EventItem::Event(Event::Established(c))) = &items[0] else {
        panic!("not ESTABLISHED: {:?}", items[0]);
    };
    assert_eq!((c.local_id, c.remote_id), (Some(3), Some(5)));
    let Ok(EventItem::Event(Event::Created(c))) = &items[1] else {
        panic!("not CREATED: {:?}", items[1]);
    };
    assert_eq!((c.local_id, c.remote_id), (None, None));
}

/// An event missing an attribute its type always carries, a truncated message and an
/// unknown event type: an error item, an error item, and a raw event, never dropped.
#[test]
fn bad_and_unknown_events_are_reported() {
    // SUB_ESTABLISHED with a token only.
    let token = nla(sys::MPTCP_ATTR_TOKEN, &5u32.to_ne_bytes());
    let mut dgram = genl_message(0x1d, sys::MPTCP_EVENT_SUB_ESTABLISHED as u8, &token);
    dgram.extend(genl_message(0x1d, 99, &token));
    let items = decoded(&dgram);
    assert_eq!(items.len(), 2);
    assert!(
        matches!(&items[0], Err(crate::Error::Decode { detail, .. }) if detail.contains("SF_ESTABLISHED")),
        "{:?}",
        items[0]
    );
    match &items[1] {
        Ok(EventItem::Event(Event::Unknown(raw))) => {
            assert_eq!(raw.kind, 99);
            assert_eq!(raw.attrs.len(), 1);
            assert_eq!(raw.attrs[0].1, 5u32.to_ne_bytes().to_vec());
        }
        other => panic!("expected a raw event, got {other:?}"),
    }
    // A message whose length runs past the datagram.
    let mut cut = genl_message(0x1d, sys::MPTCP_EVENT_CLOSED as u8, &token);
    cut.truncate(cut.len() - 2);
    let items = decoded(&cut);
    assert_eq!(items.len(), 1);
    assert!(matches!(items[0], Err(crate::Error::Decode { .. })));
}

#[test]
fn endpoint_from_kernel_bytes() {
    let mut children = Vec::new();
    children.extend(nla(
        sys::MPTCP_PM_ADDR_ATTR_FAMILY,
        &(libc::AF_INET6 as u16).to_ne_bytes(),
    ));
    children.extend(nla(sys::MPTCP_PM_ADDR_ATTR_ID, &[9]));
    let ip: std::net::Ipv6Addr = "2001:db8::9".parse().expect("address");
    children.extend(nla(sys::MPTCP_PM_ADDR_ATTR_ADDR6, &ip.octets()));
    children.extend(nla(sys::MPTCP_PM_ADDR_ATTR_PORT, &0x1f90u16.to_ne_bytes()));
    children.extend(nla(
        sys::MPTCP_PM_ADDR_ATTR_FLAGS,
        &(sys::MPTCP_PM_ADDR_FLAG_SIGNAL | sys::MPTCP_PM_ADDR_FLAG_BACKUP).to_ne_bytes(),
    ));
    children.extend(nla(
        sys::MPTCP_PM_ADDR_ATTR_IF_IDX,
        &0x0201i32.to_ne_bytes(),
    ));
    let ep = Endpoint::decode(&children).expect("decode");
    assert_eq!(ep.id, 9);
    assert_eq!(ep.addr, IpAddr::V6(ip));
    assert_eq!(ep.port, Some(0x1f90));
    assert_eq!(ep.flags, EndpointFlags::SIGNAL | EndpointFlags::BACKUP);
    assert_eq!(ep.ifindex, Some(0x0201));
}
