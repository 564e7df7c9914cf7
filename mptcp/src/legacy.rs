//! The out-of-tree MPTCP socket API (draft-hesmans-mptcp-socket), as the go-mptcp-api
//! seed uses it: the same six functions, same semantics, over the `IPPROTO_TCP` options
//! 66-72 and the `mptcp_sub_*` structs of [`mptcp_sys::legacy`].
//!
//! Only a fork of the multipath-tcp.org kernel offers this API; on upstream kernels every
//! call fails with [`Error::Unsupported`] naming it. Descriptors are borrowed, never
//! duplicated (unlike the seed's `File()` trick). On upstream kernels use
//! [`pm::SubflowHandle`](crate::pm::SubflowHandle) instead.
//!
//! ```no_run
//! let stream = std::net::TcpStream::connect("192.0.2.2:80")?;
//! match mptcp::legacy::get_sub_ids(&stream) {
//!     Ok(subs) => println!("{subs:?}"),
//!     Err(e) => println!("{e}"), // upstream: the out-of-tree API is not offered
//! }
//! # Ok::<(), std::io::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::sys::{self, OotCall};
use crate::wire::sockaddr::{SIN6_LEN, SIN_LEN};
use crate::wire::subflow::SubflowTuple;
use mptcp_sys::legacy as oot;
use std::mem::size_of;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};

/// The state of one subflow (`struct mptcp_sub_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubStatus {
    /// Subflow id.
    pub id: u8,
    /// The subflow is not the master (initial) subflow.
    pub slave_sk: bool,
    /// Fully established.
    pub fully_established: bool,
    /// Attached to the connection.
    pub attached: bool,
    /// Low priority (backup): the seed's `Prio = 1`.
    pub low_prio: bool,
    /// Pre-established.
    pub pre_established: bool,
}

fn missing() -> Error {
    Error::Unsupported {
        feature: "the out-of-tree MPTCP socket API (draft-hesmans, MPTCP_GET_SUB_IDS ...; \
                  only kernels of the multipath-tcp.org fork have it)",
        since: None,
    }
}

/// Maps the errors of an upstream kernel (which does not know options 66-72) to
/// [`Error::Unsupported`].
fn map_err(fd: BorrowedFd<'_>, op: &'static str, e: std::io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOTSOCK) => Error::NotMptcp(crate::error::NotMptcp::NotASocket),
        Some(libc::EOPNOTSUPP) | Some(libc::ENOPROTOOPT) => {
            match crate::kernel::stream_protocol(fd) {
                Err(err) => err,
                Ok(_) => missing(),
            }
        }
        _ => Error::os(op, e),
    }
}

/// Request buffer of `MPTCP_GET_SUB_IDS` for up to `cap` subflows: `sub_count`, padding,
/// then `cap` two-byte `mptcp_sub_status` slots (the array starts at offset 2).
pub(crate) fn sub_ids_buffer(cap: usize) -> Vec<u8> {
    vec![
        0u8;
        std::mem::offset_of!(oot::mptcp_sub_ids, sub_status)
            + cap * size_of::<oot::mptcp_sub_status>()
    ]
}

/// Decodes a `MPTCP_GET_SUB_IDS` reply.
pub(crate) fn decode_sub_ids(buf: &[u8]) -> Result<Vec<SubStatus>> {
    let count = usize::from(*buf.first().ok_or_else(|| short("mptcp_sub_ids"))?);
    let base = std::mem::offset_of!(oot::mptcp_sub_ids, sub_status);
    let step = size_of::<oot::mptcp_sub_status>();
    (0..count)
        .map(|i| {
            let b = buf
                .get(base + i * step..base + (i + 1) * step)
                .ok_or_else(|| short("mptcp_sub_status"))?;
            let s: oot::mptcp_sub_status = sys::read_prefix(b);
            Ok(SubStatus {
                id: s.id,
                slave_sk: s.slave_sk() != 0,
                fully_established: s.fully_established() != 0,
                attached: s.attached() != 0,
                low_prio: s.low_prio() != 0,
                pre_established: s.pre_established() != 0,
            })
        })
        .collect()
}

fn short(what: &str) -> Error {
    Error::decode("out-of-tree API reply", format!("short {what}"))
}

/// Request of `MPTCP_OPEN_SUB_TUPLE`: id 0, then local and remote address: exactly 33
/// bytes for IPv4, 57 for IPv6.
pub(crate) fn open_sub_buffer(local: &SocketAddr, remote: &SocketAddr) -> Result<Vec<u8>> {
    if local.is_ipv4() != remote.is_ipv4() {
        return Err(Error::os(
            "open subflow",
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "local and remote families differ",
            ),
        ));
    }
    let mut b = vec![0u8];
    b.extend(crate::wire::sockaddr::encode(local));
    b.extend(crate::wire::sockaddr::encode(remote));
    Ok(b)
}

/// Decodes a `MPTCP_GET_SUB_TUPLE` reply of `len` bytes.
pub(crate) fn decode_sub_tuple(buf: &[u8]) -> Result<SubflowTuple> {
    let id = *buf.first().ok_or_else(|| short("mptcp_sub_tuple"))?;
    let step = match buf.len() {
        n if n == 1 + 2 * SIN_LEN => SIN_LEN,
        n if n == 1 + 2 * SIN6_LEN => SIN6_LEN,
        _ => return Err(short("mptcp_sub_tuple")),
    };
    let local =
        crate::wire::sockaddr::decode(&buf[1..1 + step]).ok_or_else(|| short("local address"))?;
    let remote =
        crate::wire::sockaddr::decode(&buf[1 + step..]).ok_or_else(|| short("remote address"))?;
    Ok(SubflowTuple {
        id: u32::from(id),
        local,
        remote,
        backup: None,
    })
}

/// The ids and states of the connection's subflows. Grows its buffer while the kernel
/// answers `EINVAL` (too small for all subflows), like the seed.
#[doc(alias = "GetSubIDS")]
#[doc(alias = "MPTCP_GET_SUB_IDS")]
pub fn get_sub_ids(fd: impl AsFd) -> Result<Vec<SubStatus>> {
    let fd = fd.as_fd();
    let mut cap = 8;
    loop {
        let mut buf = sub_ids_buffer(cap);
        match sys::oot_getsockopt(fd, OotCall::GetSubIds, &mut buf) {
            Ok(len) => return decode_sub_ids(&buf[..len]),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && cap < 256 => cap *= 4,
            Err(e) => return Err(map_err(fd, "getsockopt(MPTCP_GET_SUB_IDS)", e)),
        }
    }
}

/// The addresses of the subflow with this id.
#[doc(alias = "GetSubTuple")]
#[doc(alias = "MPTCP_GET_SUB_TUPLE")]
pub fn get_sub_tuple(fd: impl AsFd, id: u8) -> Result<SubflowTuple> {
    let fd = fd.as_fd();
    let mut buf = vec![0u8; 1 + 2 * SIN6_LEN];
    buf[0] = id;
    let len = sys::oot_getsockopt(fd, OotCall::GetSubTuple, &mut buf)
        .map_err(|e| map_err(fd, "getsockopt(MPTCP_GET_SUB_TUPLE)", e))?;
    decode_sub_tuple(&buf[..len])
}

/// Opens a subflow between two addresses; returns the new subflow's id.
#[doc(alias = "OpenSub")]
#[doc(alias = "MPTCP_OPEN_SUB_TUPLE")]
pub fn open_sub(fd: impl AsFd, local: SocketAddr, remote: SocketAddr) -> Result<u8> {
    let fd = fd.as_fd();
    let mut buf = open_sub_buffer(&local, &remote)?;
    sys::oot_getsockopt(fd, OotCall::OpenSubTuple, &mut buf)
        .map_err(|e| map_err(fd, "getsockopt(MPTCP_OPEN_SUB_TUPLE)", e))?;
    Ok(buf[0])
}

/// Force-closes the subflow with this id. (The out-of-tree API has no `how`: the seed's
/// argument had no effect on the kernel either.)
#[doc(alias = "CloseSub")]
#[doc(alias = "MPTCP_CLOSE_SUB_ID")]
pub fn close_sub(fd: impl AsFd, id: u8) -> Result<()> {
    let fd = fd.as_fd();
    let mut buf = [id];
    sys::oot_getsockopt(fd, OotCall::CloseSubId, &mut buf)
        .map_err(|e| map_err(fd, "getsockopt(MPTCP_CLOSE_SUB_ID)", e))?;
    Ok(())
}

/// Reads an `int` socket option of one subflow.
#[doc(alias = "GetSubSockoptInt")]
#[doc(alias = "MPTCP_SUB_GETSOCKOPT")]
pub fn get_sub_sockopt_int(fd: impl AsFd, id: u8, level: i32, name: i32) -> Result<i32> {
    let fd = fd.as_fd();
    sys::sub_getsockopt_int(fd, id, level, name)
        .map_err(|e| map_err(fd, "getsockopt(MPTCP_SUB_GETSOCKOPT)", e))
}

/// Sets an `int` socket option of one subflow.
#[doc(alias = "SetSubSockoptInt")]
#[doc(alias = "MPTCP_SUB_SETSOCKOPT")]
pub fn set_sub_sockopt_int(fd: impl AsFd, id: u8, level: i32, name: i32, value: i32) -> Result<()> {
    let fd = fd.as_fd();
    sys::sub_setsockopt_int(fd, id, level, name, value)
        .map_err(|e| map_err(fd, "setsockopt(MPTCP_SUB_SETSOCKOPT)", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_ids_request_and_reply_bytes() {
        // 2-byte header (count + padding), then 2 bytes per subflow.
        assert_eq!(sub_ids_buffer(3).len(), 2 + 3 * 2);
        // Two subflows: id 1 (fully established, attached), id 2 (slave, low prio).
        // The five one-bit flags follow `id` in its 16-bit unit: byte 1, allocated from
        // the least significant bit on little-endian targets and from the most
        // significant bit on big-endian ones (the C compiler's rule, which the layout
        // test checks).
        let flags = |bits: [bool; 5]| -> u8 {
            bits.iter().enumerate().fold(0u8, |acc, (i, &on)| {
                let bit = if cfg!(target_endian = "big") {
                    7 - i
                } else {
                    i
                };
                acc | (u8::from(on) << bit)
            })
        };
        let reply = [
            2u8,
            0,
            1,
            flags([false, true, true, false, false]),
            2,
            flags([true, false, false, true, false]),
        ];
        let subs = decode_sub_ids(&reply).expect("decode");
        assert_eq!(
            subs,
            vec![
                SubStatus {
                    id: 1,
                    slave_sk: false,
                    fully_established: true,
                    attached: true,
                    low_prio: false,
                    pre_established: false
                },
                SubStatus {
                    id: 2,
                    slave_sk: true,
                    fully_established: false,
                    attached: false,
                    low_prio: true,
                    pre_established: false
                },
            ]
        );
        assert!(
            decode_sub_ids(&[3u8, 0, 1, 0]).is_err(),
            "count beyond the reply"
        );
    }

    #[test]
    fn open_sub_request_bytes() {
        let l: SocketAddr = "192.0.2.1:1234".parse().expect("address");
        let r: SocketAddr = "192.0.2.2:80".parse().expect("address");
        let b = open_sub_buffer(&l, &r).expect("encode");
        assert_eq!(b.len(), 33, "IPv4: exactly 33 bytes");
        // The family in host order, port and address in network order.
        let af = (libc::AF_INET as u16).to_ne_bytes();
        let mut want = vec![0u8];
        want.extend([
            af[0], af[1], 0x04, 0xd2, 192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0,
        ]);
        want.extend([af[0], af[1], 0, 80, 192, 0, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(b, want);
        let l6: SocketAddr = "[2001:db8::1]:1".parse().expect("address");
        let r6: SocketAddr = "[2001:db8::2]:2".parse().expect("address");
        let b6 = open_sub_buffer(&l6, &r6).expect("encode");
        assert_eq!(b6.len(), 57, "IPv6: exactly 57 bytes");
        let af6 = (libc::AF_INET6 as u16).to_ne_bytes();
        assert_eq!(
            &b6[1..5],
            &[af6[0], af6[1], 0, 1],
            "AF_INET6 in host order, port 1 in network order"
        );
        assert_eq!(&b6[9..11], &[0x20, 0x01]);
        assert!(open_sub_buffer(&l, &r6).is_err());
    }

    #[test]
    fn sub_tuple_reply_bytes() {
        let l: SocketAddr = "198.51.100.1:40000".parse().expect("address");
        let r: SocketAddr = "198.51.100.2:443".parse().expect("address");
        let mut reply = vec![5u8];
        reply.extend(crate::wire::sockaddr::encode(&l));
        reply.extend(crate::wire::sockaddr::encode(&r));
        assert_eq!(
            decode_sub_tuple(&reply).expect("decode"),
            SubflowTuple {
                id: 5,
                local: l,
                remote: r,
                backup: None,
            }
        );
        let l6: SocketAddr = "[2001:db8:2::1]:5".parse().expect("address");
        let r6: SocketAddr = "[2001:db8:2::2]:6".parse().expect("address");
        let mut reply6 = vec![7u8];
        reply6.extend(crate::wire::sockaddr::encode(&l6));
        reply6.extend(crate::wire::sockaddr::encode(&r6));
        assert_eq!(reply6.len(), 57);
        assert_eq!(decode_sub_tuple(&reply6).expect("decode").remote, r6);
        assert!(decode_sub_tuple(&reply6[..40]).is_err());
    }

    /// The argument structs sit where C puts them: id, two ints, then pointers at
    /// pointer alignment (16/24 of 32 bytes on 64-bit targets, 12/16 of 20 on 32-bit
    /// ones); `sys` writes each field at these offsets.
    #[test]
    fn sub_sockopt_argument_layout() {
        use std::mem::offset_of;
        let p = size_of::<usize>();
        let optval = 12usize.next_multiple_of(p);
        let optlen = optval + p;
        type G = oot::mptcp_sub_getsockopt;
        type S = oot::mptcp_sub_setsockopt;
        assert_eq!(offset_of!(G, id), 0);
        assert_eq!(offset_of!(G, level), 4);
        assert_eq!(offset_of!(G, optname), 8);
        assert_eq!(offset_of!(G, optval), optval);
        assert_eq!(offset_of!(G, optlen), optlen);
        assert_eq!(size_of::<G>(), optlen + p);
        assert_eq!(offset_of!(S, optval), optval);
        assert_eq!(offset_of!(S, optlen), optlen);
        assert_eq!(size_of::<S>(), (optlen + 4).next_multiple_of(p));
    }
}
