//! Prefetch hints for the pipeline's fetch stages: ask the CPU to bring a cache line in
//! without waiting for it. Unlike a plain load, a prefetch retires at once, so the misses of
//! a whole burst overlap however the code around them is arranged.
//!
//! The instruction itself (`prefetcht0` on x86_64, nothing elsewhere) is [`ctfw_cpu::prefetch`],
//! which holds the one `unsafe` block it needs; here only addresses are made, from references.

/// Prefetch the cache line holding the start of `r`.
#[inline(always)]
pub(super) fn first_line<T>(r: &T) {
    ctfw_cpu::prefetch(core::ptr::from_ref(r).cast::<u8>());
}

/// Prefetch the cache lines holding the first and the last byte of `r`: all of it, for a
/// value that spans at most two lines.
#[inline(always)]
pub(super) fn both_lines<T>(r: &T) {
    let p = core::ptr::from_ref(r).cast::<u8>();
    ctfw_cpu::prefetch(p);
    // `wrapping_add` only computes an address: safe, whatever the address.
    ctfw_cpu::prefetch(p.wrapping_add(core::mem::size_of::<T>() - 1));
}
