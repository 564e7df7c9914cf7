//! The `versioned!` macro: owned copies of kernel structs whose replies grow with the
//! kernel version, read lazily by accessor.

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
                    $crate::wire::versioned::FromBits::from_bits(self.raw.$xraw())
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
