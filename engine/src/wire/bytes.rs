//! Big-endian reads of header fields: the one copy every protocol view (and `rss`) uses.
//!
//! Each reads the first bytes of `b`, which its caller has sliced with a `field` range after a
//! length check; a slice that is too short is a bug in the view, and panics.

/// The 16-bit big-endian value in `b[0..2]`.
#[inline]
pub(crate) fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// The 32-bit big-endian value in `b[0..4]`.
#[inline]
pub(crate) fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The 128-bit big-endian value in `b[0..16]` (an IPv6 address).
#[inline]
pub(crate) fn be128(b: &[u8]) -> u128 {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    u128::from_be_bytes(a)
}
