//! Two CPU instructions that `ctfw-engine` (`#![forbid(unsafe_code)]`) cannot reach from safe
//! code on stable Rust, each behind one audited `unsafe` block:
//! - [`prefetch`]: a cache prefetch hint (`prefetcht0`);
//! - [`eq_mask_16`]: which of 16 bytes equal a given byte, in one 16-byte compare (SSE2).
//!
//! Why a crate of its own: `core::arch::x86_64::_mm_prefetch` and the SSE2 intrinsics are
//! safe functions, but they carry `#[target_feature(enable = ...)]`, and Rust (1.95) lets safe
//! code call such a function only from a function that itself enables the feature by
//! attribute: the feature being on for the whole build (SSE and SSE2 are in the x86_64
//! baseline) is not enough, and a caller with the attribute is in turn only callable from
//! `unsafe`. `core::hint::prefetch_read` is not stable yet. So somewhere an `unsafe` block
//! must state that the feature is there; it lives here, checked by `cfg` at compile time,
//! rather than in the engine.
//!
//! Neither function changes what a program computes, only how fast: [`prefetch`] is a hint
//! that never faults, and [`eq_mask_16`] equals its portable form (tested). Off x86_64 (or
//! without SSE/SSE2), [`prefetch`] does nothing and [`eq_mask_16`] is a SWAR compare.

#![no_std]

/// Ask the CPU to bring the cache line holding `p` into all cache levels, without waiting
/// for it. Any address is allowed, dangling or null included: a prefetch never faults and
/// never reads memory architecturally. Make `p` from a reference with
/// `core::ptr::from_ref(r).cast()`, or from another address with `wrapping_add`.
#[inline(always)]
pub fn prefetch(p: *const u8) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse"))]
    {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: `_mm_prefetch` requires the `sse` target feature, which the `cfg` above
        // proves is enabled for this whole build. It has no other requirement: `prefetcht0`
        // is a hint that does not fault on any address and changes no architectural state.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse")))]
    let _ = p;
}

/// Bit `i` (of bits 0..16) set iff `bytes[i] == b`.
#[inline(always)]
pub fn eq_mask_16(bytes: [u8; 16], b: u8) -> u32 {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        use core::arch::x86_64::{
            _mm_cmpeq_epi8, _mm_movemask_epi8, _mm_set_epi64x, _mm_set1_epi8,
        };
        let v = u128::from_le_bytes(bytes);
        // SAFETY: these four intrinsics require the `sse2` target feature, which the `cfg`
        // above proves is enabled for this whole build; they take and return values only (no
        // pointer), so there is nothing else to uphold. (The bytes are passed as two `u64`
        // rather than loaded with `_mm_loadu_si128`, which would take a pointer.)
        let m = unsafe {
            let v = _mm_set_epi64x((v >> 64) as u64 as i64, v as u64 as i64);
            _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b as i8)))
        };
        // movemask sets bits 0..16 only.
        m as u32
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    eq_mask_16_swar(bytes, b)
}

/// [`eq_mask_16`]'s portable form: a SWAR compare of the bytes as two `u64` words.
#[inline]
pub fn eq_mask_16_swar(bytes: [u8; 16], b: u8) -> u32 {
    let v = u128::from_le_bytes(bytes);
    eq_mask_8(v as u64, b) | eq_mask_8((v >> 64) as u64, b) << 8
}

/// Bit `i` (of bits 0..8) set iff byte `i` (little-endian) of `w` equals `b`, exactly: no
/// false positive, as the classic "has a zero byte" test gives when the byte above a match
/// is 0x01.
#[inline]
fn eq_mask_8(w: u64, b: u8) -> u32 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let x = w ^ (u64::from(b) * 0x0101_0101_0101_0101);
    // The high bit of each byte of `nonzero` is set iff that byte of `x` is not 0: the low
    // seven bits plus 0x7f carry into it (never out of the byte), or it was set already.
    let nonzero = ((x & LOW7) + LOW7) | x;
    let zero = !nonzero & !LOW7;
    // Gather the eight high bits into the top byte: byte i's bit (at 8i after the shift)
    // lands at 56 + i; no two partial products overlap, so nothing carries.
    ((zero >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn simple(bytes: [u8; 16], b: u8) -> u32 {
        (0..16).fold(0, |m, i| m | u32::from(bytes[i] == b) << i)
    }

    #[test]
    fn edge_bytes() {
        let bytes = [
            0, 1, 0x7f, 0x80, 0x81, 0xfe, 0xff, 0, 1, 1, 0xff, 0x80, 0, 2, 0xff, 1,
        ];
        for b in 0..=255u8 {
            assert_eq!(eq_mask_16(bytes, b), simple(bytes, b), "byte {b}");
            assert_eq!(eq_mask_16_swar(bytes, b), simple(bytes, b), "byte {b}");
        }
        assert_eq!(eq_mask_16(bytes, 1), 1 << 1 | 1 << 8 | 1 << 9 | 1 << 15);
        assert_eq!(eq_mask_16([7; 16], 7), 0xffff);
        assert_eq!(eq_mask_16([7; 16], 8), 0);
    }

    #[test]
    fn prefetch_takes_any_address() {
        let x = [1u8; 64];
        prefetch(x.as_ptr());
        prefetch(x.as_ptr().wrapping_add(1 << 40));
        prefetch(core::ptr::null());
        assert_eq!(x, [1u8; 64]);
    }

    proptest! {
        #[test]
        fn both_forms_equal_the_simple_loop(
            bytes in prop::array::uniform16(prop_oneof![Just(0u8), Just(1u8), Just(0x80u8), Just(255u8), any::<u8>()]),
            b in prop_oneof![Just(0u8), Just(1u8), Just(255u8), any::<u8>()],
        ) {
            prop_assert_eq!(eq_mask_16(bytes, b), simple(bytes, b));
            prop_assert_eq!(eq_mask_16_swar(bytes, b), simple(bytes, b));
            for &x in &bytes {
                prop_assert_eq!(eq_mask_16(bytes, x), simple(bytes, x));
            }
        }
    }
}
