//! The decoders fed replies built the way this architecture's kernel builds them, the
//! bytecode checked against the kernel's rules, and arbitrary bytes (never a panic).

use super::reply::{connection, subflow};
use super::request::bytecode;
use super::{Filter, SocketState, States, SubflowFlags};
use mptcp_sys as sys;
use proptest::prelude::*;
use std::mem::{offset_of, size_of};

fn nla(kind: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(((4 + payload.len()) as u16).to_ne_bytes());
    b.extend((kind as u16).to_ne_bytes());
    b.extend(payload);
    b.resize(b.len().next_multiple_of(4), 0);
    b
}

/// `inet_diag_msg` of an IPv4 socket: ports and addresses in network order, the rest
/// in host order.
fn msg(state: u8, src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    type M = sys::inet_diag_msg;
    type I = sys::inet_diag_sockid;
    let mut b = vec![0u8; size_of::<M>()];
    let id = offset_of!(M, id);
    b[offset_of!(M, idiag_family)] = libc::AF_INET as u8;
    b[offset_of!(M, idiag_state)] = state;
    b[id + offset_of!(I, idiag_sport)..][..2].copy_from_slice(&sport.to_be_bytes());
    b[id + offset_of!(I, idiag_dport)..][..2].copy_from_slice(&dport.to_be_bytes());
    b[id + offset_of!(I, idiag_src)..][..4].copy_from_slice(&src);
    b[id + offset_of!(I, idiag_dst)..][..4].copy_from_slice(&dst);
    b[id + offset_of!(I, idiag_cookie)..][..4].copy_from_slice(&0x1122_3344u32.to_ne_bytes());
    b[id + offset_of!(I, idiag_cookie) + 4..][..4].copy_from_slice(&0x55u32.to_ne_bytes());
    b[offset_of!(M, idiag_uid)..][..4].copy_from_slice(&1000u32.to_ne_bytes());
    b[offset_of!(M, idiag_inode)..][..4].copy_from_slice(&4242u32.to_ne_bytes());
    b
}

#[test]
fn connection_from_kernel_bytes() {
    let mut info = vec![0u8; 96];
    let at = offset_of!(sys::mptcp_info, mptcpi_token);
    info[at..at + 4].copy_from_slice(&0xe870_c84eu32.to_ne_bytes());
    info[0] = 1; // mptcpi_subflows
    let mut b = msg(1, [192, 0, 2, 1], 40000, [192, 0, 2, 2], 443);
    b.extend(nla(sys::INET_DIAG_SHUTDOWN, &[0]));
    b.extend(nla(sys::INET_DIAG_INFO, &info));
    let c = connection(&b).expect("decode");
    assert_eq!(c.state, SocketState::Established);
    assert_eq!(c.token, Some(crate::Token::new(0xe870_c84e)));
    assert_eq!(c.local, "192.0.2.1:40000".parse().expect("address"));
    assert_eq!(c.remote, "192.0.2.2:443".parse().expect("address"));
    assert_eq!(c.uid, 1000);
    assert_eq!(c.inode, 4242);
    assert_eq!(c.cookie, 0x55_1122_3344);
    assert_eq!(c.info.as_ref().map(|i| i.extra_subflows()), Some(1));
    // A 40-byte mptcp_info (kernels before 5.16): the token, no info.
    let mut b = msg(1, [192, 0, 2, 1], 40000, [192, 0, 2, 2], 443);
    b.extend(nla(sys::INET_DIAG_INFO, &info[..40]));
    let c = connection(&b).expect("decode");
    assert_eq!(c.token, Some(crate::Token::new(0xe870_c84e)));
    assert_eq!(c.info, None);
    // A listener: token 0 is no token.
    let mut b = msg(10, [0, 0, 0, 0], 443, [0, 0, 0, 0], 0);
    b.extend(nla(sys::INET_DIAG_INFO, &[0u8; 96]));
    let c = connection(&b).expect("decode");
    assert_eq!((c.state, c.token), (SocketState::Listen, None));
}

#[test]
fn subflow_from_kernel_bytes() {
    // The nests as tcp_diag builds them (no NLA_F_NESTED flag).
    let mut mp = Vec::new();
    mp.extend(nla(
        sys::MPTCP_SUBFLOW_ATTR_TOKEN_REM,
        &0x5750_7610u32.to_ne_bytes(),
    ));
    mp.extend(nla(
        sys::MPTCP_SUBFLOW_ATTR_TOKEN_LOC,
        &0xe870_c84eu32.to_ne_bytes(),
    ));
    mp.extend(nla(sys::MPTCP_SUBFLOW_ATTR_FLAGS, &0xccu32.to_ne_bytes()));
    mp.extend(nla(sys::MPTCP_SUBFLOW_ATTR_ID_REM, &[0]));
    mp.extend(nla(sys::MPTCP_SUBFLOW_ATTR_ID_LOC, &[1]));
    mp.extend(nla(sys::MPTCP_SUBFLOW_ATTR_PAD, &[]));
    mp.extend(nla(
        sys::MPTCP_SUBFLOW_ATTR_MAP_SEQ,
        &0x0102_0304_0506_0708u64.to_ne_bytes(),
    ));
    mp.extend(nla(
        sys::MPTCP_SUBFLOW_ATTR_MAP_DATALEN,
        &1400u16.to_ne_bytes(),
    ));
    let mut ulp = nla(sys::INET_ULP_INFO_NAME, b"mptcp\0");
    ulp.extend(nla(sys::INET_ULP_INFO_MPTCP, &mp));
    let mut b = msg(1, [198, 51, 100, 1], 40001, [198, 51, 100, 2], 443);
    b.extend(nla(sys::INET_DIAG_INFO, &[0u8; 280]));
    b.extend(nla(sys::INET_DIAG_ULP_INFO, &ulp));
    let sf = subflow(&b).expect("decode").expect("an MPTCP subflow");
    assert_eq!(sf.token, Some(crate::Token::new(0xe870_c84e)));
    assert_eq!(sf.remote_token, Some(crate::Token::new(0x5750_7610)));
    assert_eq!((sf.local_id, sf.remote_id), (Some(1), Some(0)));
    assert_eq!(
        sf.flags,
        Some(
            SubflowFlags::JOIN_REM
                | SubflowFlags::JOIN_LOC
                | SubflowFlags::FULLY_ESTABLISHED
                | SubflowFlags::CONNECTED
        )
    );
    assert_eq!(sf.map_seq, Some(0x0102_0304_0506_0708));
    assert_eq!(sf.map_data_len, Some(1400));
    assert_eq!(sf.ssn_offset, None, "not sent: absent, not zero");
    assert!(sf.tcp_info.is_some());
    // Another ULP (kTLS), and plain TCP: not subflows.
    let mut b = msg(1, [198, 51, 100, 1], 1, [198, 51, 100, 2], 2);
    b.extend(nla(
        sys::INET_DIAG_ULP_INFO,
        &nla(sys::INET_ULP_INFO_NAME, b"tls\0"),
    ));
    assert_eq!(subflow(&b).expect("decode"), None);
    let b = msg(1, [198, 51, 100, 1], 1, [198, 51, 100, 2], 2);
    assert_eq!(subflow(&b).expect("decode"), None);
}

/// The kernel's bytecode rules (`inet_diag_bc_audit`, `inet_diag_bc_run`): each
/// condition's "yes" continues with the next one, its "no" jumps 4 bytes past the end.
#[test]
fn bytecode_conditions_chain_and_reject_past_the_end() {
    let f = Filter::new()
        .local_port(443)
        .remote_port(8080)
        .local_addr("192.0.2.1".parse().expect("address"));
    let bc = bytecode(&f, libc::AF_INET as u8);
    assert_eq!(bc.len(), 8 + 8 + 4 + 8 + 4);
    let mut at = 0;
    while at < bc.len() {
        let yes = usize::from(bc[at + 1]);
        let no = usize::from(u16::from_ne_bytes([bc[at + 2], bc[at + 3]]));
        assert_eq!(no, bc.len() - at + 4, "no jumps past the end at {at}");
        assert!(yes >= 4 && yes % 4 == 0);
        at += yes;
    }
    assert_eq!(at, bc.len());
    assert_eq!(u16::from_ne_bytes([bc[6], bc[7]]), 443);
    assert_eq!(u16::from_ne_bytes([bc[14], bc[15]]), 8080);
    // An address of the other family is no condition for this dump.
    assert_eq!(
        bytecode(
            &Filter::new().local_addr("2001:db8::1".parse().expect("a")),
            libc::AF_INET as u8
        ),
        Vec::<u8>::new()
    );
}

#[test]
fn states_and_names() {
    assert_eq!("estab".parse::<SocketState>(), Ok(SocketState::Established));
    assert_eq!("LISTEN".parse::<SocketState>(), Ok(SocketState::Listen));
    assert_eq!("syn_sent".parse::<SocketState>(), Ok(SocketState::SynSent));
    assert!("bogus".parse::<SocketState>().is_err());
    assert_eq!(States::of(SocketState::Listen), States::LISTEN);
    assert_eq!(SocketState::Established.to_string(), "ESTAB");
}

proptest! {
    #![proptest_config(crate::prop_tests::config())]

    #[test]
    fn replies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = connection(&bytes);
        let _ = subflow(&bytes);
    }

    /// A valid header before arbitrary attributes: a value or a typed error.
    #[test]
    fn attributes_never_panic(attrs in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut b = msg(1, [192, 0, 2, 1], 1, [192, 0, 2, 2], 2);
        b.extend(&attrs);
        let _ = connection(&b);
        let _ = subflow(&b);
    }
}

/// The listing's rules, without a socket: what it asks next after each outcome.
mod listing {
    use super::super::{Listing, MODULE};
    use super::*;
    use crate::Error;

    fn missing() -> Error {
        Error::MissingModule {
            module: MODULE,
            feature: "test",
            errno: libc::ENOENT,
        }
    }

    /// The request's `sdiag_protocol` byte and whether it carries
    /// `INET_DIAG_REQ_PROTOCOL` = 262.
    fn protocol_of(req: &super::super::request::DiagRequest) -> (u8, bool) {
        let b = req.serialize(1);
        let body = &b[16..];
        let proto = body[offset_of!(sys::inet_diag_req_v2, sdiag_protocol)];
        let attrs = &body[size_of::<sys::inet_diag_req_v2>()..];
        let attr = nla(sys::INET_DIAG_REQ_PROTOCOL, &262u32.to_ne_bytes());
        (proto, attrs.windows(attr.len()).any(|w| w == attr))
    }

    /// No MPTCP handler: a TCP dump carrying the protocol attribute decides between a
    /// missing module (5.9+, which read the attribute) and a kernel before 5.9 (which
    /// ignores it and answers the TCP dump). No kernel release is read.
    #[test]
    fn no_handler_is_told_apart_by_a_probe() {
        for (probe_answer, want_unsupported) in [(Ok(()), true), (Err(missing()), false)] {
            let f = Filter::new();
            let mut l = Listing::new(&f);
            let first = l.next_request().expect("a connection dump");
            assert_eq!(protocol_of(&first), (0, true));
            l.on_done(Err(missing())).expect("the probe decides");
            let probe = l.next_request().expect("the protocol probe");
            assert_eq!(protocol_of(&probe), (libc::IPPROTO_TCP as u8, true));
            let r = l.on_done(probe_answer);
            match r {
                Err(Error::Unsupported { since, .. }) => {
                    assert!(want_unsupported);
                    assert_eq!(since, Some("5.9"));
                }
                Err(Error::MissingModule { module, .. }) => {
                    assert!(!want_unsupported);
                    assert_eq!(module, MODULE);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    /// A token's lookup: a probe first, then the lookup, whose ENOENT is "no such
    /// connection" (an empty listing), not a missing module.
    #[test]
    fn an_unknown_token_is_an_empty_listing() {
        let f = Filter::new().token(crate::Token::new(7));
        let mut l = Listing::new(&f);
        let probe = l.next_request().expect("probe");
        assert!(probe.is_dump());
        l.on_done(Ok(())).expect("probe ok");
        let lookup = l.next_request().expect("lookup");
        assert!(!lookup.is_dump());
        l.on_done(Err(missing())).expect("ENOENT of a lookup");
        assert!(
            l.next_request().is_none(),
            "no subflow dumps without connections"
        );
        assert!(l.finish().0.is_empty());
    }
}
