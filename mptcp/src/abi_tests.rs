//! Decoding kernel replies from the bytes that this architecture's kernel writes: its
//! own layout (offsets from the bindings, which the layout tests check against the C
//! compiler), host byte order for host-order fields, network order for ports and
//! addresses. `cargo xtask cross` runs these on 32-bit and big-endian targets under
//! qemu-user, where a byte-order or word-size mistake in a decoder shows.

use crate::wire::info::MptcpInfo;
use crate::wire::subflow::{addrs, decode_full_info, TcpInfo};
use mptcp_sys::{mptcp_full_info, mptcp_info, mptcp_subflow_addrs, mptcp_subflow_info, tcp_info};
use std::mem::{align_of, offset_of, size_of};
use std::net::SocketAddr;

/// Writes `v` at `off`.
fn put(buf: &mut [u8], off: usize, v: &[u8]) {
    buf[off..off + v.len()].copy_from_slice(v);
}

/// A `struct sockaddr_in`/`sockaddr_in6` as the kernel stores it: family in host order,
/// port, address (and flow label) in network order, scope id in host order.
fn sockaddr_bytes(a: &SocketAddr) -> Vec<u8> {
    match a {
        SocketAddr::V4(v4) => {
            let mut b = vec![0u8; size_of::<libc::sockaddr_in>()];
            put(&mut b, 0, &(libc::AF_INET as u16).to_ne_bytes());
            put(&mut b, 2, &v4.port().to_be_bytes());
            put(&mut b, 4, &v4.ip().octets());
            b
        }
        SocketAddr::V6(v6) => {
            let mut b = vec![0u8; size_of::<libc::sockaddr_in6>()];
            put(&mut b, 0, &(libc::AF_INET6 as u16).to_ne_bytes());
            put(&mut b, 2, &v6.port().to_be_bytes());
            // std keeps `sin6_flowinfo` as it is in memory; so does the kernel's copy.
            put(&mut b, 4, &v6.flowinfo().to_ne_bytes());
            put(&mut b, 8, &v6.ip().octets());
            put(&mut b, 24, &v6.scope_id().to_ne_bytes());
            b
        }
    }
}

/// A `struct mptcp_subflow_addrs`: local address in the first half, remote in the second.
fn subflow_addrs_bytes(local: &SocketAddr, remote: &SocketAddr) -> Vec<u8> {
    let size = size_of::<mptcp_subflow_addrs>();
    let mut b = vec![0u8; size];
    put(&mut b, 0, &sockaddr_bytes(local));
    put(&mut b, size / 2, &sockaddr_bytes(remote));
    b
}

/// A 96-byte `mptcp_info` with distinct values in multi-byte fields.
fn info_bytes() -> Vec<u8> {
    let mut b = vec![0u8; size_of::<mptcp_info>()];
    put(&mut b, offset_of!(mptcp_info, mptcpi_subflows), &[3]);
    put(
        &mut b,
        offset_of!(mptcp_info, mptcpi_flags),
        &0x0000_0102u32.to_ne_bytes(),
    );
    put(
        &mut b,
        offset_of!(mptcp_info, mptcpi_token),
        &0x1234_5678u32.to_ne_bytes(),
    );
    put(
        &mut b,
        offset_of!(mptcp_info, mptcpi_write_seq),
        &0x0102_0304_0506_0708u64.to_ne_bytes(),
    );
    put(
        &mut b,
        offset_of!(mptcp_info, mptcpi_retransmits),
        &0x0a0b_0c0du32.to_ne_bytes(),
    );
    put(
        &mut b,
        offset_of!(mptcp_info, mptcpi_bytes_sent),
        &(5u64 << 40 | 7).to_ne_bytes(),
    );
    put(
        &mut b,
        offset_of!(mptcp_info, mptcpi_last_ack_recv),
        &70_000u32.to_ne_bytes(),
    );
    b
}

#[test]
fn mptcp_info_from_kernel_bytes() {
    let info = MptcpInfo::decode(&info_bytes()).expect("decode");
    assert_eq!(info.extra_subflows(), 3);
    assert_eq!(info.flags().bits(), 0x102);
    assert!(info.flags().contains(crate::InfoFlags::REMOTE_KEY_RECEIVED));
    assert_eq!(info.token(), crate::Token::new(0x1234_5678));
    assert_eq!(info.write_seq(), 0x0102_0304_0506_0708);
    assert_eq!(info.retransmits(), Some(0x0a0b_0c0d));
    assert_eq!(info.bytes_sent(), Some(5u64 << 40 | 7));
    assert_eq!(info.last_ack_recv(), Some(70_000));
    // A 6.1 kernel's reply (48 bytes; 44 where 64-bit integers are 4-byte aligned, as
    // on 32-bit x86): the 6.5 fields are absent, not zero.
    let base = MptcpInfo::BASE_LEN;
    assert_eq!(base, if align_of::<u64>() == 8 { 48 } else { 44 });
    let old = MptcpInfo::decode(&info_bytes()[..base]).expect("decode");
    assert_eq!(old.token().get(), 0x1234_5678);
    assert_eq!(old.csum_enabled(), info.csum_enabled());
    assert_eq!(old.retransmits(), None);
    // Shorter than any kernel's reply: a decode error, not zeros.
    assert!(matches!(
        MptcpInfo::decode(&info_bytes()[..base - 1]),
        Err(crate::Error::Decode { .. })
    ));
    // A 6.8/6.9 reply ends after `subflows_total` plus padding (88 bytes, 84 on 32-bit
    // x86): the count is there, the 6.10 fields are not.
    let v68 = (offset_of!(mptcp_info, mptcpi_subflows_total) + 1)
        .next_multiple_of(align_of::<mptcp_info>());
    let mid = MptcpInfo::decode(&info_bytes()[..v68]).expect("decode");
    assert_eq!(mid.subflows_total(), info.subflows_total());
    assert!(mid.subflows_total().is_some());
    assert_eq!(mid.last_data_sent(), None);
}

#[test]
fn tcp_info_from_kernel_bytes() {
    let mut b = vec![0u8; size_of::<tcp_info>()];
    put(&mut b, offset_of!(tcp_info, tcpi_state), &[1]);
    put(
        &mut b,
        offset_of!(tcp_info, tcpi_rto),
        &204_000u32.to_ne_bytes(),
    );
    put(
        &mut b,
        offset_of!(tcp_info, tcpi_snd_mss),
        &1448u32.to_ne_bytes(),
    );
    let t = TcpInfo::decode(&b).expect("decode");
    assert_eq!(t.state(), 1);
    assert_eq!(t.rto(), 204_000);
    assert_eq!(t.snd_mss(), 1448);
    assert_eq!(t.rcv_wnd(), Some(0));
    // A 5.16 kernel's 232 bytes: the 6.2 fields are absent.
    let old = TcpInfo::decode(&b[..TcpInfo::BASE_LEN]).expect("decode");
    assert_eq!((old.snd_mss(), old.rcv_wnd()), (1448, None));
}

/// `tcpi_snd_wscale:4, tcpi_rcv_wscale:4` fill byte 6 and
/// `tcpi_delivery_rate_app_limited:1, tcpi_fastopen_client_fail:2` start byte 7; C puts
/// the first field of a byte in its low bits on little-endian targets and in its high
/// bits on big-endian ones.
#[test]
fn tcp_info_bit_fields_from_kernel_bytes() {
    let mut b = vec![0u8; size_of::<tcp_info>()];
    let (wscales, flags) = if cfg!(target_endian = "little") {
        (0x97, 0b101)
    } else {
        (0x79, 0b1100_0000)
    };
    put(&mut b, 6, &[wscales, flags]);
    let t = TcpInfo::decode(&b).expect("decode");
    assert_eq!((t.snd_wscale(), t.rcv_wscale()), (7, 9));
    assert!(t.delivery_rate_app_limited());
    assert_eq!(t.fastopen_client_fail(), 2);
    // The neighbours are untouched.
    assert_eq!((t.options(), t.rto()), (0, 0));
}

#[test]
fn subflow_addrs_from_kernel_bytes() {
    let l: SocketAddr = "192.0.2.1:40001".parse().expect("address");
    let r: SocketAddr = "198.51.100.2:443".parse().expect("address");
    assert_eq!(addrs(&subflow_addrs_bytes(&l, &r)).expect("decode"), (l, r));
    let l6: SocketAddr = "[2001:db8::1%7]:5000".parse().expect("address");
    let r6: SocketAddr = "[2001:db8:1::2]:80".parse().expect("address");
    assert_eq!(
        addrs(&subflow_addrs_bytes(&l6, &r6)).expect("decode"),
        (l6, r6)
    );
}

/// An `MPTCP_FULL_INFO` reply as the kernel writes it (header, subflow array,
/// `tcp_info` array) for subflows with these addresses; subflow `i` gets id `0x0102 +
/// ids[i]` and `snd_mss` `1400 + ids[i]`.
fn full_info_reply(pairs: &[(SocketAddr, SocketAddr)], ids: &[u32]) -> [Vec<u8>; 3] {
    let sf_size = size_of::<mptcp_subflow_info>();
    let tcp_size = size_of::<tcp_info>();
    let mut full = vec![0u8; size_of::<mptcp_full_info>()];
    let f = |field: usize, v: u32, b: &mut Vec<u8>| put(b, field, &v.to_ne_bytes());
    f(
        offset_of!(mptcp_full_info, size_tcpinfo_user),
        tcp_size as u32,
        &mut full,
    );
    f(
        offset_of!(mptcp_full_info, size_sfinfo_user),
        sf_size as u32,
        &mut full,
    );
    f(
        offset_of!(mptcp_full_info, num_subflows),
        pairs.len() as u32,
        &mut full,
    );
    f(offset_of!(mptcp_full_info, size_arrays_user), 4, &mut full);
    put(
        &mut full,
        offset_of!(mptcp_full_info, mptcp_info),
        &info_bytes(),
    );
    let mut sf = vec![0u8; 4 * sf_size];
    let mut tcp = vec![0u8; 4 * tcp_size];
    for (i, ((l, r), id)) in pairs.iter().zip(ids).enumerate() {
        let e = i * sf_size;
        // Ids are host-order u32s; 0x0102 catches a byte swap even in the low bytes.
        put(&mut sf, e, &(0x0102u32 + id).to_ne_bytes());
        put(
            &mut sf,
            e + offset_of!(mptcp_subflow_info, addrs),
            &subflow_addrs_bytes(l, r),
        );
        put(
            &mut tcp,
            i * tcp_size + offset_of!(tcp_info, tcpi_snd_mss),
            &(1400u32 + id).to_ne_bytes(),
        );
    }
    [full, sf, tcp]
}

/// A 32-bit process on a 64-bit kernel: the kernel's `mptcp_subflow_info` has its
/// addresses at 8 (and says it is 264 bytes) where this build's has them at 4, and it
/// writes elements of the size asked for. (On 64-bit builds both layouts are the same.)
#[test]
fn full_info_from_a_64_bit_kernel() {
    let pairs = &four_pairs()[..2];
    let sf_size = size_of::<mptcp_subflow_info>();
    let [mut full, _, tcp] = full_info_reply(pairs, &[0, 1]);
    let wide = 8 + size_of::<mptcp_subflow_addrs>();
    put(
        &mut full,
        offset_of!(mptcp_full_info, size_sfinfo_kernel),
        &(wide as u32).to_ne_bytes(),
    );
    // The kernel copies min(asked, its own) bytes of each element, at the asked stride.
    let copied = sf_size.min(wide);
    let mut sf = vec![0u8; 4 * sf_size];
    for (i, (l, r)) in pairs.iter().enumerate() {
        let mut kernel = vec![0u8; wide];
        put(&mut kernel, 0, &(0x0102u32 + i as u32).to_ne_bytes());
        put(
            &mut kernel,
            8,
            &subflow_addrs_bytes(l, r)[..size_of::<mptcp_subflow_addrs>()],
        );
        put(&mut sf, i * sf_size, &kernel[..copied]);
    }
    let c = decode_full_info(&full, &sf, &tcp).expect("decode");
    let got: Vec<_> = c
        .subflows
        .iter()
        .map(|s| (s.local, s.remote, s.id))
        .collect();
    assert_eq!(
        got,
        [
            (pairs[0].0, pairs[0].1, Some(0x0102)),
            (pairs[1].0, pairs[1].1, Some(0x0103))
        ]
    );
}

/// Four subflows' addresses, IPv4 and IPv6.
fn four_pairs() -> [(SocketAddr, SocketAddr); 4] {
    let p = |l: &str, r: &str| (l.parse().expect("address"), r.parse().expect("address"));
    [
        p("192.0.2.1:40001", "192.0.2.2:80"),
        p("198.51.100.1:40002", "203.0.113.2:80"),
        p("[2001:db8::1]:40003", "[2001:db8:1::2]:80"),
        p("198.51.100.1:40004", "203.0.113.2:80"),
    ]
}

#[test]
fn full_info_from_kernel_bytes() {
    let pairs = &four_pairs()[..2];
    let [full, sf, tcp] = full_info_reply(pairs, &[0, 1]);
    let c = decode_full_info(&full, &sf, &tcp).expect("decode");
    assert_eq!(c.info.token().get(), 0x1234_5678);
    assert_eq!(c.subflows.len(), 2);
    for (i, s) in c.subflows.iter().enumerate() {
        assert_eq!(s.id, Some(0x0102 + i as u32));
        assert_eq!((s.local, s.remote), pairs[i]);
        assert_eq!(s.tcp_info.snd_mss(), 1400 + i as u32);
    }
    // Arrays shorter than the header claims are an error, not a panic.
    let sf_size = size_of::<mptcp_subflow_info>();
    assert!(decode_full_info(&full, &sf[..sf_size], &tcp).is_err());
}

/// What a reused [`SubflowQuery`](crate::SubflowQuery) does: each reply is decoded over
/// the previous result, and a subflow whose address bytes equal the previous reply's in
/// the same place keeps its decoded addresses. Across replies where subflows come, go
/// and change places, the result must equal a fresh decode every time.
#[test]
fn decoding_in_place_equals_decoding_afresh() {
    use crate::wire::subflow::{decode_full_info_into, Connection, Previous};
    let pairs = four_pairs();
    let steps: [&[usize]; 8] = [
        &[0, 1],
        &[0, 1],
        &[1, 0],
        &[1, 2],
        &[2],
        &[0, 1, 2, 3],
        &[3, 1],
        &[],
    ];
    let mut conn = Connection::empty();
    let mut prev_sf = Vec::new();
    let mut cached = 0;
    for which in steps {
        let chosen: Vec<_> = which.iter().map(|&i| pairs[i]).collect();
        let ids: Vec<u32> = which.iter().map(|&i| i as u32).collect();
        let [full, sf, tcp] = full_info_reply(&chosen, &ids);
        let head = crate::sys::FullInfoHead::from_bytes(&full);
        let prev = Previous {
            sf: &prev_sf,
            count: cached,
        };
        decode_full_info_into(&head, &sf, &tcp, &mut conn, prev).expect("decode");
        let fresh = decode_full_info(&full, &sf, &tcp).expect("decode");
        assert_eq!(conn, fresh, "after {which:?}");
        let got: Vec<_> = conn.subflows.iter().map(|s| (s.local, s.remote)).collect();
        assert_eq!(got, chosen, "after {which:?}");
        cached = conn.subflows.len();
        prev_sf = sf;
    }
}

/// Regression: IPv6 addresses decoded from kernel buffers must equal std's for the same
/// bytes; `sin6_flowinfo` used to be byte-swapped where std passes it through.
#[test]
fn ipv6_sockaddr_equals_std() {
    use std::net::{Ipv6Addr, SocketAddrV6};
    let a = SocketAddr::V6(SocketAddrV6::new(
        "2001:db8::7".parse::<Ipv6Addr>().expect("address"),
        4242,
        0x000a_bcde,
        3,
    ));
    // std's (socket2's) own conversion to a `sockaddr_in6`, as bytes.
    let sa = socket2::SockAddr::from(a);
    // SAFETY: `as_ptr` points at `len()` initialised bytes of the socket address.
    let raw = unsafe { std::slice::from_raw_parts(sa.as_ptr().cast::<u8>(), sa.len() as usize) };
    assert_eq!(crate::wire::sockaddr::decode(raw), Some(a));
    assert_eq!(crate::wire::sockaddr::decode(&sockaddr_bytes(&a)), Some(a));
    #[cfg(feature = "legacy")]
    assert_eq!(crate::wire::sockaddr::encode(&a), raw.to_vec());
}
