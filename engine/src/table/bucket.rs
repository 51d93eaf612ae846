//! One bucket of the table's index: a 64-byte cache line of [`SLOTS`] slots.
//!
//! The 16 one-byte tags come first, together, so that finding the slots whose tag matches a
//! key's is one 16-byte compare (SSE2 on x86_64, a SWAR compare of two `u64` words elsewhere:
//! [`ctfw_cpu::eq_mask_16`]) rather than a test per slot. The 16 pool indices follow, 24
//! bits each, little-endian.
//! A slot is empty iff its tag is 0; tags from [`super::Table::hash`] are never 0, so a
//! lookup's compare never matches an empty slot, and the same compare against 0 finds the
//! free slots.

/// Slots per bucket.
pub(super) const SLOTS: usize = 16;

#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub(super) struct Bucket {
    /// Each slot's tag, 0 where the slot is empty.
    tags: [u8; SLOTS],
    /// Each slot's pool index, 3 bytes little-endian (meaningless where the slot is empty).
    idx: [u8; 3 * SLOTS],
}

const _: () = assert!(core::mem::size_of::<Bucket>() == 64);

impl Bucket {
    pub(super) const EMPTY: Bucket = Bucket {
        tags: [0; SLOTS],
        idx: [0; 3 * SLOTS],
    };

    /// Bit mask of the slots whose tag is `tag` (bit `i` for slot `i`). With `tag` 0: the
    /// empty slots. One 16-byte compare ([`ctfw_cpu::eq_mask_16`]).
    #[inline]
    pub(super) fn tag_hits(&self, tag: u8) -> u32 {
        ctfw_cpu::eq_mask_16(self.tags, tag)
    }

    /// The first empty slot, if any.
    #[inline]
    pub(super) fn free_slot(&self) -> Option<usize> {
        let m = self.tag_hits(0);
        (m != 0).then(|| m.trailing_zeros() as usize)
    }

    /// The tag of slot `i` (0: empty).
    #[inline]
    pub(super) fn tag(&self, i: usize) -> u8 {
        self.tags[i]
    }

    /// The pool index in slot `i` (which must not be empty).
    #[inline]
    pub(super) fn idx(&self, i: usize) -> u32 {
        let b = &self.idx[3 * i..3 * i + 3];
        u32::from_le_bytes([b[0], b[1], b[2], 0])
    }

    /// The pool index in slot `i`, or `None` if it is empty.
    #[inline]
    pub(super) fn get(&self, i: usize) -> Option<u32> {
        (self.tags[i] != 0).then(|| self.idx(i))
    }

    /// Slot `i` refers to pool index `idx` (below 2^24) under `tag` (not 0).
    #[inline]
    pub(super) fn set(&mut self, i: usize, tag: u8, idx: u32) {
        debug_assert!(tag != 0 && idx < 1 << 24);
        self.tags[i] = tag;
        let [a, b, c, _] = idx.to_le_bytes();
        self.idx[3 * i..3 * i + 3].copy_from_slice(&[a, b, c]);
    }

    /// Empty slot `i`.
    #[inline]
    pub(super) fn clear(&mut self, i: usize) {
        self.tags[i] = 0;
    }

    /// Move slot `from` of `self` into slot `to` of `dst`, emptying `from`.
    #[inline]
    pub(super) fn copy_slot(&self, from: usize, dst: &mut Bucket, to: usize) {
        dst.tags[to] = self.tags[from];
        dst.idx[3 * to..3 * to + 3].copy_from_slice(&self.idx[3 * from..3 * from + 3]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The obvious definition, one slot at a time.
    fn simple_hits(b: &Bucket, tag: u8) -> u32 {
        (0..SLOTS).fold(0, |m, i| m | u32::from(b.tag(i) == tag) << i)
    }

    fn bucket(slots: &[(u8, u32)]) -> Bucket {
        let mut b = Bucket::EMPTY;
        for (i, &(tag, idx)) in slots.iter().enumerate() {
            if tag != 0 {
                b.set(i, tag, idx);
            }
        }
        b
    }

    #[test]
    fn edge_tags_match_exactly() {
        // Tags 1, 255 and 0x80 beside empty slots and their neighbours 0x7f / 0x81 / 0xfe.
        let b = bucket(&[
            (1, 5),
            (0, 0),
            (255, 7),
            (0x80, 1),
            (0x7f, 2),
            (0x81, 3),
            (0xfe, 4),
            (1, 0xff_ffff),
            (0, 0),
            (2, 9),
            (255, 0),
            (0, 0),
            (1, 1),
            (0x80, 8),
            (0, 0),
            (255, 3),
        ]);
        for tag in 0..=255u8 {
            assert_eq!(b.tag_hits(tag), simple_hits(&b, tag), "tag {tag}");
        }
        assert_eq!(b.tag_hits(255), 1 << 2 | 1 << 10 | 1 << 15);
        assert_eq!(b.tag_hits(0), 1 << 1 | 1 << 8 | 1 << 11 | 1 << 14);
        assert_eq!(b.free_slot(), Some(1));
        assert_eq!(b.idx(7), 0xff_ffff);
        assert_eq!(Bucket::EMPTY.tag_hits(0), 0xffff);
        assert_eq!(bucket(&[(3, 1); SLOTS]).free_slot(), None);
    }

    #[test]
    fn slots_keep_their_index_and_move() {
        let mut a = Bucket::EMPTY;
        let mut b = Bucket::EMPTY;
        a.set(3, 9, 0x12_3456);
        a.set(4, 9, 1);
        assert_eq!(
            (a.get(3), a.get(4), a.get(5)),
            (Some(0x12_3456), Some(1), None)
        );
        a.copy_slot(3, &mut b, 15);
        a.clear(3);
        assert_eq!((a.get(3), b.get(15), b.tag(15)), (None, Some(0x12_3456), 9));
        assert_eq!(a.get(4), Some(1), "a neighbour's bytes are untouched");
    }

    proptest! {
        #[test]
        fn tag_hits_equals_the_simple_loop(
            slots in prop::collection::vec(
                // Tags biased towards the edges and towards repeats.
                (prop_oneof![Just(0u8), Just(1u8), Just(255u8), Just(0x80u8), any::<u8>()],
                 0u32..1 << 24),
                SLOTS),
            probe in prop_oneof![Just(0u8), Just(1u8), Just(255u8), any::<u8>()],
        ) {
            let b = bucket(&slots);
            let want = simple_hits(&b, probe);
            prop_assert_eq!(b.tag_hits(probe), want);
            // And every present tag's own mask.
            for &(tag, _) in &slots {
                prop_assert_eq!(b.tag_hits(tag), simple_hits(&b, tag));
            }
            for (i, &(tag, idx)) in slots.iter().enumerate() {
                prop_assert_eq!(b.get(i), (tag != 0).then_some(idx));
            }
        }
    }
}
