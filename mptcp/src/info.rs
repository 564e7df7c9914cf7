//! Connection-level information: `getsockopt(SOL_MPTCP, MPTCP_INFO)`.

use crate::error::{Error, Result};
use crate::kernel::{classify, no_connection};
use crate::sys;
use crate::token::Token;
use std::mem::offset_of;
use std::os::fd::AsFd;

/// Defines an owned copy of a kernel struct whose replies grow with the kernel version,
/// read lazily: the value holds the kernel's struct as returned (zero past the reply)
/// and its length, and each field is an accessor that reads it when asked, so that a
/// reply costs a copy, not a decode of every field. The fields every kernel with the
/// call returns (the first `base` bytes) are plain values; later fields are `Option`s,
/// `None` when the reply was too short to contain them. A later field may name the
/// reply length that first carries it (`@ 80`), for fields that an older, padded struct
/// covered with padding. A reply shorter than `base` is [`Error::Decode`]. An optional
/// `bits` section lists C bit fields, read through bindgen's getters (which know each
/// architecture's bit order) and converted by [`FromBits`]; they must lie within `base`
/// (offset_of! cannot check a bit field: each entry's doc says where it is).
/// `Debug`, `PartialEq` and `serde::Serialize` see the fields, as a plain struct's would.
macro_rules! versioned {
    (
        $(#[$meta:meta])*
        pub struct $name:ident from $raw:ty, base $base:literal {
            $( $(#[$bmeta:meta])* $bfield:ident : $bty:ty = $braw:ident, )*
        }
        $( bits {
            $( $(#[$xmeta:meta])* $xfield:ident : $xty:ty = $xraw:ident, )*
        } )?
        later {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty = $rawf:ident $(@ $since:literal)?, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy)]
        pub struct $name {
            raw: $raw,
            len: usize,
        }

        impl $name {
            /// The length of the shortest reply: what the first kernel with the call
            /// returns, and the fields that are plain values. It depends on the
            /// architecture's alignment: the end of the last plain field rounded up to
            /// the struct's alignment (`base` in the definition is the 64-bit value;
            /// 32-bit x86 aligns 64-bit integers to 4 bytes, and its kernels return
            /// less).
            pub const BASE_LEN: usize = {
                let mut end = 0;
                $(
                    let e = std::mem::offset_of!($raw, $braw) + std::mem::size_of::<$bty>();
                    if e > end {
                        end = e;
                    }
                )*
                end.next_multiple_of(std::mem::align_of::<$raw>())
            };

            /// A zeroed value for the kernel to fill (through [`raw_mut`](Self::raw_mut),
            /// then [`set_reply_len`](Self::set_reply_len)); never handed out as is.
            pub(crate) const fn empty() -> Self {
                Self { raw: $crate::sys::zeroed(), len: 0 }
            }

            /// The struct, for the kernel to write into.
            #[allow(dead_code)] // not every struct is read straight from a getsockopt
            pub(crate) fn raw_mut(&mut self) -> &mut $raw {
                &mut self.raw
            }

            /// Records how many bytes the kernel wrote: a reply shorter than every
            /// kernel's is an error.
            pub(crate) fn set_reply_len(&mut self, len: usize) -> $crate::error::Result<()> {
                if len < Self::BASE_LEN {
                    return Err($crate::error::Error::decode(
                        stringify!($raw),
                        format!(
                            "{len} bytes, fewer than the {} every kernel returns",
                            Self::BASE_LEN
                        ),
                    ));
                }
                self.len = len.min(std::mem::size_of::<$raw>());
                Ok(())
            }

            /// Keeps a struct the kernel wrote `len` bytes of (the rest zero).
            #[allow(dead_code)] // not every struct comes inside another
            pub(crate) fn set_raw(&mut self, raw: &$raw, len: usize) -> $crate::error::Result<()> {
                self.set_reply_len(len)?;
                self.raw = *raw;
                Ok(())
            }

            /// Keeps the bytes the kernel returned (their length tells the version).
            #[allow(dead_code)] // each struct is read one way or another, per feature
            pub(crate) fn decode(bytes: &[u8]) -> $crate::error::Result<Self> {
                let mut v = Self::empty();
                v.decode_into(bytes)?;
                Ok(v)
            }

            /// [`decode`](Self::decode) in place, over an earlier value (one copy).
            #[allow(dead_code)] // each struct is read one way or another, per feature
            pub(crate) fn decode_into(&mut self, bytes: &[u8]) -> $crate::error::Result<()> {
                self.set_reply_len(bytes.len())?;
                self.raw = $crate::sys::read_prefix(bytes);
                Ok(())
            }

            /// How many bytes of the struct the running kernel returned (at least
            /// [`BASE_LEN`](Self::BASE_LEN); newer kernels return more).
            pub fn reply_len(&self) -> usize {
                self.len
            }

            /// The kernel's struct as this crate's headers define it: the fields past
            /// [`reply_len`](Self::reply_len) are zero, not values the kernel gave.
            pub fn as_raw(&self) -> &$raw {
                &self.raw
            }

            $(
                $(#[$bmeta])*
                #[inline]
                pub fn $bfield(&self) -> $bty {
                    <$bty>::from(self.raw.$braw)
                }
            )*

            $($(
                $(#[$xmeta])*
                #[inline]
                pub fn $xfield(&self) -> $xty {
                    $crate::info::FromBits::from_bits(self.raw.$xraw())
                }
            )*)?

            $(
                $(#[$fmeta])*
                ///
                /// `None` when the running kernel's reply does not reach this field.
                #[inline]
                pub fn $field(&self) -> Option<$ty> {
                    const NEEDED: usize = {
                        let end = std::mem::offset_of!($raw, $rawf) + std::mem::size_of::<$ty>();
                        let since = [end $(, $since)?];
                        let last = since[since.len() - 1];
                        if last > end { last } else { end }
                    };
                    (NEEDED <= self.len).then(|| <$ty>::from(self.raw.$rawf))
                }
            )*
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    $( .field(stringify!($bfield), &self.$bfield()) )*
                    $($( .field(stringify!($xfield), &self.$xfield()) )*)?
                    $( .field(stringify!($field), &self.$field()) )*
                    .finish()
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.len == other.len
                    $( && self.$bfield() == other.$bfield() )*
                    $($( && self.$xfield() == other.$xfield() )*)?
                    $( && self.$field() == other.$field() )*
            }
        }

        impl Eq for $name {}

        #[cfg(feature = "serde")]
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                use serde::ser::SerializeStruct;
                const FIELDS: usize = [
                    $(stringify!($bfield),)* $($(stringify!($xfield),)*)? $(stringify!($field),)*
                ].len();
                let mut st = s.serialize_struct(stringify!($name), FIELDS)?;
                $( st.serialize_field(stringify!($bfield), &self.$bfield())?; )*
                $($( st.serialize_field(stringify!($xfield), &self.$xfield())?; )*)?
                $( st.serialize_field(stringify!($field), &self.$field())?; )*
                st.end()
            }
        }

        // Every plain field lies within the base length, which is the documented one
        // where 64-bit integers are 8-byte aligned.
        const _: () = {
            $( assert!(
                std::mem::offset_of!($raw, $braw) + std::mem::size_of::<$bty>() <= $name::BASE_LEN
            ); )*
            assert!(std::mem::align_of::<u64>() != 8 || $name::BASE_LEN == $base);
        };
    };
}
pub(crate) use versioned;

/// A C bit field's value (bindgen's getter returns the field's declared integer type) as
/// its accessor's type: the number itself, or a one-bit flag as `bool`.
pub(crate) trait FromBits<T> {
    fn from_bits(v: T) -> Self;
}

impl FromBits<u8> for u8 {
    fn from_bits(v: u8) -> u8 {
        v
    }
}

impl FromBits<u8> for bool {
    fn from_bits(v: u8) -> bool {
        v != 0
    }
}

bitflags::bitflags! {
    /// `MPTCP_INFO_FLAG_*`: the state bits of [`MptcpInfo::flags`].
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct InfoFlags: u32 {
        /// The connection fell back to TCP.
        const FALLBACK = mptcp_sys::MPTCP_INFO_FLAG_FALLBACK;
        /// The peer's key was received.
        const REMOTE_KEY_RECEIVED = mptcp_sys::MPTCP_INFO_FLAG_REMOTE_KEY_RECEIVED;
        // Bits a newer kernel may set are kept.
        const _ = !0;
    }
}

impl From<u32> for InfoFlags {
    fn from(v: u32) -> Self {
        InfoFlags::from_bits_retain(v)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for InfoFlags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_u32(self.bits())
    }
}

versioned! {
    /// `struct mptcp_info`: the state of an MPTCP connection, as the kernel returned it;
    /// each field is a method that reads it (nothing is decoded until asked).
    ///
    /// The kernel returns 48 bytes up to Linux 6.4, 80 on 6.5-6.7, 88 on 6.8-6.9 and 96
    /// from 6.10 (44 and 84 instead of 48 and 88 on 32-bit x86, which aligns 64-bit
    /// integers to 4 bytes: the lengths tell the version on each architecture). The 48-byte fields are plain values; the later ones are `None` when
    /// the reply is too short to hold them (a field inside it is what the kernel wrote,
    /// which may be 0 where the kernel does not fill it in that state). [`as_raw`](Self::as_raw)
    /// gives the C struct itself ([`sys_bindings`](crate::sys_bindings)`::mptcp_info`). The `*_max` limit fields are
    /// only filled under the in-kernel path manager.
    pub struct MptcpInfo from mptcp_sys::mptcp_info, base 48 {
        /// Extra subflows: those beyond the initial one that the path manager accounts
        /// for (`mptcpi_subflows`). A connection with two paths in use reads 1.
        extra_subflows: u8 = mptcpi_subflows,
        /// Addresses announced to the peer (ADD_ADDR sent).
        add_addr_signal: u8 = mptcpi_add_addr_signal,
        /// Addresses the peer announced that were accepted.
        add_addr_accepted: u8 = mptcpi_add_addr_accepted,
        /// Limit on extra subflows (in-kernel path manager).
        extra_subflows_max: u8 = mptcpi_subflows_max,
        /// Limit on addresses to announce (in-kernel path manager).
        add_addr_signal_max: u8 = mptcpi_add_addr_signal_max,
        /// Limit on accepted announced addresses (in-kernel path manager).
        add_addr_accepted_max: u8 = mptcpi_add_addr_accepted_max,
        /// State bits.
        flags: InfoFlags = mptcpi_flags,
        /// The local connection token (what the path manager's commands take).
        token: Token = mptcpi_token,
        /// Next data sequence number to send.
        write_seq: u64 = mptcpi_write_seq,
        /// Oldest unacknowledged data sequence number.
        snd_una: u64 = mptcpi_snd_una,
        /// Next data sequence number expected from the peer.
        rcv_nxt: u64 = mptcpi_rcv_nxt,
        /// Local endpoints used for subflows (Linux 5.12+).
        local_addr_used: u8 = mptcpi_local_addr_used,
        /// Limit on local endpoints for subflows (Linux 5.12+).
        local_addr_max: u8 = mptcpi_local_addr_max,
        /// 1 when DSS checksums are in use (Linux 5.14+).
        csum_enabled: u8 = mptcpi_csum_enabled,
    }
    later {
        /// Retransmitted data-level segments (Linux 6.5+).
        retransmits: u32 = mptcpi_retransmits @ 80,
        /// Retransmitted bytes at the data level (Linux 6.5+).
        bytes_retrans: u64 = mptcpi_bytes_retrans @ 80,
        /// Bytes sent, all subflows (Linux 6.5+).
        bytes_sent: u64 = mptcpi_bytes_sent @ 80,
        /// Bytes received, all subflows (Linux 6.5+).
        bytes_received: u64 = mptcpi_bytes_received @ 80,
        /// Bytes acknowledged at the data level (Linux 6.5+).
        bytes_acked: u64 = mptcpi_bytes_acked @ 80,
        /// The kernel's own count of the connection's subflows (Linux 6.8+): the extra
        /// subflows the path manager currently accounts for, plus one while the
        /// initial subflow is open. It is not a count of subflows ever created, and it
        /// can differ from the number [`subflows`](crate::subflows) lists while
        /// subflows are being set up or torn down (seen on 6.18: 4 while 5 were listed).
        subflows_total: u8 = mptcpi_subflows_total,
        /// Limit of laminar endpoints (Linux 6.18+). A reserved byte before: 0 on
        /// 6.10-6.17, which return 96 bytes too.
        endp_laminar_max: u8 = mptcpi_endp_laminar_max @ 96,
        /// Limit of fullmesh endpoints (Linux 6.19+). A reserved byte before: 0 on
        /// 6.10-6.18, which return 96 bytes too.
        endp_fullmesh_max: u8 = mptcpi_endp_fullmesh_max @ 96,
        /// Milliseconds since data was last sent (Linux 6.10+).
        last_data_sent: u32 = mptcpi_last_data_sent @ 96,
        /// Milliseconds since data was last received (Linux 6.10+).
        last_data_recv: u32 = mptcpi_last_data_recv,
        /// Milliseconds since an ack was last received (Linux 6.10+).
        last_ack_recv: u32 = mptcpi_last_ack_recv,
    }
}

/// Reads `MPTCP_INFO` (a token of 0 included: the callers decide what it means). The
/// kernel writes into the value returned: no buffer, no copy.
pub(crate) fn raw_info(fd: std::os::fd::BorrowedFd<'_>) -> Result<MptcpInfo> {
    let mut info = MptcpInfo::empty();
    let len = sys::mptcp_info(fd, info.raw_mut())
        .map_err(|e| classify(fd, e, "getsockopt(MPTCP_INFO)", "MPTCP_INFO", Some("5.16")))?;
    info.set_reply_len(len)?;
    Ok(info)
}

/// Reads the first `buf.len()` bytes of `MPTCP_INFO` (fewer if the kernel has fewer);
/// returns how many the kernel wrote.
fn read_info(fd: std::os::fd::BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize> {
    sys::mptcp_info_prefix(fd, buf)
        .map_err(|e| classify(fd, e, "getsockopt(MPTCP_INFO)", "MPTCP_INFO", Some("5.16")))
}

/// The [`MptcpInfo`] of a connected MPTCP socket, borrowed.
///
/// Errors: [`Error::NotMptcp`] for a non-socket, a UDP socket or a plain TCP socket;
/// [`Error::NoConnection`] for a listener or an unconnected socket;
/// [`Error::FellBack`] when the connection fell back to TCP; [`Error::Unsupported`]
/// before Linux 5.16.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = mptcp::listen("127.0.0.1:0")?; // loopback: no namespace needed
/// let stream = mptcp::connect(listener.local_addr()?)?;
/// # if !mptcp::is_mptcp(&stream)? { return Ok(()) } // this machine has no MPTCP
/// let info = mptcp::info(&stream)?;
/// assert_ne!(info.token().get(), 0);
/// println!("token {}, {} extra subflows", info.token(), info.extra_subflows());
/// # Ok(()) }
/// ```
#[doc(alias = "MPTCP_INFO")]
#[doc(alias = "mptcp_info")]
pub fn info(fd: impl AsFd) -> Result<MptcpInfo> {
    let fd = fd.as_fd();
    let info = raw_info(fd)?;
    if info.token().get() == 0 {
        return Err(no_connection(fd));
    }
    Ok(info)
}

/// The local connection token alone: what the path manager's netlink commands take.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = mptcp::listen("127.0.0.1:0")?; // loopback: no namespace needed
/// let stream = mptcp::connect(listener.local_addr()?)?;
/// # if !mptcp::is_mptcp(&stream)? { return Ok(()) } // this machine has no MPTCP
/// let token = mptcp::token(&stream)?;
/// assert_eq!(token, mptcp::info(&stream)?.token());
/// println!("token {token}"); // hex, as `ip mptcp monitor` prints it
/// # Ok(()) }
/// ```
#[doc(alias = "MPTCP_INFO")]
#[doc(alias = "mptcpi_token")]
pub fn token(fd: impl AsFd) -> Result<Token> {
    let fd = fd.as_fd();
    const AT: usize = offset_of!(mptcp_sys::mptcp_info, mptcpi_token);
    let mut buf = [0u8; AT + 4];
    let len = read_info(fd, &mut buf)?;
    let bytes: [u8; 4] = buf
        .get(AT..len)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::decode("MPTCP_INFO", format!("{len} bytes, no token")))?;
    match u32::from_ne_bytes(bytes) {
        0 => Err(no_connection(fd)),
        t => Ok(Token::new(t)),
    }
}
