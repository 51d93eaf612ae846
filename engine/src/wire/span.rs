//! [`Span`]: a run of frame bytes whose length is known and whose first bytes are contiguous,
//! so that a frame held in several buffers (a multi-segment mbuf) parses exactly as the same
//! frame in one buffer.
//!
//! The parser reads headers only from the contiguous part, the *head*, and takes lengths from
//! the whole span; checksums are summed over every byte, head and rest. Which bytes form the
//! head is fixed by [`HEADER_SPAN`], never by how the frame happens to be split: a frame's
//! head is its first `min(len, HEADER_SPAN)` bytes ([`Span::frame`]). So a frame gets the same
//! verdict whether `ctfw replay` reads it from one buffer or the data plane receives it in
//! segments of any size, as long as the caller keeps the contract of [`Span::frame`] (the
//! data plane copies the first bytes into a buffer of its own when the first segment holds
//! fewer).
//!
//! The parser is written once, over [`Bytes`], and compiled for three forms of a frame:
//! [`Short`] (at most [`HEADER_SPAN`] bytes in one buffer, all head: a plain slice, as cheap as
//! parsing can be), [`Contiguous`] (longer, in one buffer) and [`Span`] (in several buffers).
//! They give the same head, lengths and sums for the same bytes (tested below).
//!
//! A header that lies beyond the first [`HEADER_SPAN`] bytes is seen as cut short, and the
//! packet gets that header's truncation reason (`ipv6_bad_ext_header`, `tcp_truncated`, ...).
//! Only IPv6 packets with close to a kilobyte of extension headers (or ICMPv6 errors quoting
//! such) come near it; Linux reads headers wherever they are (`docs/linux-differences.md`).

use super::checksum;

/// Bytes at the start of a frame that the parser reads headers from: Ethernet, VLAN tags, the
/// IP header and its extension headers, the transport header and, in an ICMP error, the
/// quoted headers must all lie within them. Beyond them only lengths and checksums count.
pub const HEADER_SPAN: usize = 1024;

/// Frame bytes as the parser reads them: a known length, the first bytes contiguous (the
/// head), all of them summable. A sub-range outside the bytes is empty, never out of bounds.
pub trait Bytes<'a>: Copy {
    /// The length in bytes.
    fn len(&self) -> usize;
    /// Whether there are no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The contiguous bytes at the start: all of them, or the part within the frame's first
    /// [`HEADER_SPAN`] bytes.
    fn head(&self) -> &'a [u8];
    /// Bytes `start..end`; none when that is not a range within these (callers check
    /// lengths first).
    fn sub(&self, start: usize, end: usize) -> Self;
    /// Bytes `start..`; none when `start` lies beyond these.
    #[inline]
    fn from(&self, start: usize) -> Self {
        self.sub(start, self.len())
    }
    /// One's-complement sum of every byte, folded to 16 bits and not complemented, as
    /// [`checksum::data`] of the same bytes in one buffer.
    fn sum(&self) -> u16;
}

/// A frame of at most [`HEADER_SPAN`] bytes in one buffer: all head (the common case, and
/// the cheapest: it is a slice).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Short<'a>(&'a [u8]);

impl<'a> Short<'a> {
    /// `bytes` as a whole frame, if it is no longer than [`HEADER_SPAN`].
    #[inline]
    pub fn frame(bytes: &'a [u8]) -> Option<Short<'a>> {
        (bytes.len() <= HEADER_SPAN).then_some(Short(bytes))
    }
}

impl<'a> Bytes<'a> for Short<'a> {
    #[inline]
    fn len(&self) -> usize {
        self.0.len()
    }

    #[inline]
    fn head(&self) -> &'a [u8] {
        self.0
    }

    #[inline]
    fn sub(&self, start: usize, end: usize) -> Short<'a> {
        Short(self.0.get(start..end).unwrap_or(&[]))
    }

    #[inline]
    fn sum(&self) -> u16 {
        checksum::data(self.0)
    }
}

/// Bytes of a frame held in one buffer: `bytes`, of which the first `head` are the head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contiguous<'a> {
    bytes: &'a [u8],
    head: usize,
}

impl<'a> Contiguous<'a> {
    /// A whole frame in one buffer; its head is its first `min(len, HEADER_SPAN)` bytes.
    #[inline]
    pub fn frame(bytes: &'a [u8]) -> Contiguous<'a> {
        Contiguous {
            bytes,
            head: bytes.len().min(HEADER_SPAN),
        }
    }
}

impl<'a> Bytes<'a> for Contiguous<'a> {
    #[inline]
    fn len(&self) -> usize {
        self.bytes.len()
    }

    #[inline]
    fn head(&self) -> &'a [u8] {
        let bytes: &'a [u8] = self.bytes;
        &bytes[..self.head]
    }

    #[inline]
    fn sub(&self, start: usize, end: usize) -> Contiguous<'a> {
        match self.bytes.get(start..end) {
            Some(bytes) => Contiguous {
                bytes,
                head: self.head.saturating_sub(start).min(bytes.len()),
            },
            None => Contiguous {
                bytes: &[],
                head: 0,
            },
        }
    }

    #[inline]
    fn sum(&self) -> u16 {
        checksum::data(self.bytes)
    }
}

/// The bytes of a frame after a contiguous part: a piece of a buffer, then whole buffers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Rest<'a> {
    first: &'a [u8],
    segs: &'a [&'a [u8]],
}

impl<'a> Rest<'a> {
    /// The pieces in order.
    fn pieces(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        core::iter::once(self.first).chain(self.segs.iter().copied())
    }
}

/// `len` bytes of a frame: the first `head.len()` of them contiguous in `head`, the rest
/// starting `skip` bytes into `rest`. Built only by [`Span::frame`] and narrowed by
/// [`Span::sub`], so `rest` always holds the bytes the span claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span<'a> {
    head: &'a [u8],
    len: usize,
    rest: Rest<'a>,
    skip: usize,
}

impl<'a> Span<'a> {
    /// A whole frame: `data`, then the buffers of `tail` in order. Its head is the first
    /// `min(len, HEADER_SPAN)` bytes, which `data` must hold (all of `data` when it is shorter
    /// and `tail` is empty). Were `data` shorter than that with `tail` not empty, the headers
    /// beyond it would read as cut short: a defined outcome, but one that a single buffer
    /// holding the same frame would not give.
    #[inline]
    pub fn frame(data: &'a [u8], tail: &'a [&'a [u8]]) -> Span<'a> {
        let len = if tail.is_empty() {
            data.len()
        } else {
            data.len() + tail.iter().map(|s| s.len()).sum::<usize>()
        };
        let (head, first) = data.split_at(data.len().min(HEADER_SPAN));
        Span {
            head,
            len,
            rest: Rest { first, segs: tail },
            skip: 0,
        }
    }

    /// A frame held in one buffer (as [`Contiguous::frame`], in a `Span`).
    #[inline]
    pub fn contiguous(data: &'a [u8]) -> Span<'a> {
        Span::frame(data, &[])
    }
}

impl<'a> Bytes<'a> for Span<'a> {
    #[inline]
    fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn head(&self) -> &'a [u8] {
        self.head
    }

    #[inline]
    fn sub(&self, start: usize, end: usize) -> Span<'a> {
        if start > end || end > self.len {
            return Span {
                head: &[],
                len: 0,
                rest: Rest::default(),
                skip: 0,
            };
        }
        let h = self.head.len();
        Span {
            head: &self.head[start.min(h)..end.min(h)],
            len: end - start,
            rest: self.rest,
            skip: self.skip + start.saturating_sub(h),
        }
    }

    fn sum(&self) -> u16 {
        let mut acc = checksum::data(self.head);
        // Bytes still to sum after the head, the span offset the next piece starts at, and
        // how much of the rest lies before the span.
        let mut left = self.len - self.head.len();
        let mut at = self.head.len();
        let mut skip = self.skip;
        for piece in self.rest.pieces() {
            if left == 0 {
                break;
            }
            if skip >= piece.len() {
                skip -= piece.len();
                continue;
            }
            let piece = &piece[skip..];
            skip = 0;
            let piece = &piece[..piece.len().min(left)];
            let s = checksum::data(piece);
            // A piece starting at an odd offset has its bytes in the other halves of their
            // 16-bit words: its sum, byte-swapped (RFC 1071 §2(B)).
            let s = if at % 2 == 1 { s.swap_bytes() } else { s };
            acc = checksum::combine(&[acc, s]);
            left -= piece.len();
            at += piece.len();
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bytes(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| (i.wrapping_mul(151) ^ (i >> 3)) as u8)
            .collect()
    }

    /// `frame` cut at `cuts` (offsets, sorted): the first piece and the others.
    fn split<'a>(frame: &'a [u8], cuts: &[usize]) -> (&'a [u8], Vec<&'a [u8]>) {
        let mut pieces = Vec::new();
        let mut at = 0;
        for &c in cuts {
            pieces.push(&frame[at..c]);
            at = c;
        }
        pieces.push(&frame[at..]);
        let first = pieces.remove(0);
        (first, pieces)
    }

    #[test]
    fn a_frame_in_one_buffer_has_a_bounded_head() {
        let f = bytes(3000);
        let s = Span::contiguous(&f);
        assert_eq!(s.len(), 3000);
        assert_eq!(s.head(), &f[..HEADER_SPAN]);
        let short = Span::contiguous(&f[..100]);
        assert_eq!(short.head(), &f[..100]);
        assert_eq!(short.sum(), checksum::data(&f[..100]));
    }

    #[test]
    fn sub_spans_keep_head_and_length() {
        let f = bytes(3000);
        let s = Span::contiguous(&f);
        let a = s.sub(14, 2014);
        assert_eq!((a.len(), a.head()), (2000, &f[14..HEADER_SPAN]));
        let b = a.from(1500);
        assert_eq!((b.len(), b.head().len()), (500, 0));
        assert_eq!(b.sum(), checksum::data(&f[1514..2014]));
        // Outside the bytes: empty, never out of bounds.
        assert_eq!(s.sub(2990, 3000).len(), 10);
        assert_eq!(s.sub(2990, 5000).len(), 0);
        assert_eq!(s.sub(20, 10).len(), 0);
        assert_eq!(s.from(4000).len(), 0);
    }

    proptest! {
        /// Any split of a frame into buffers, and any sub-span of it, sums and heads exactly
        /// as the same bytes in one buffer.
        #[test]
        fn any_split_sums_and_heads_as_one_buffer(
            len in 0usize..5000,
            cuts in prop::collection::vec(0usize..5000, 0..8),
            start in 0usize..5000,
            take in 0usize..5000,
        ) {
            let f = bytes(len);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(len)).collect();
            cuts.sort_unstable();
            // The contract: the first buffer holds the head.
            let first_cut = cuts.first().copied().unwrap_or(len);
            prop_assume!(first_cut >= len.min(HEADER_SPAN));
            let (data, tail) = split(&f, &cuts);
            let seg = Span::frame(data, &tail);
            let one = Span::contiguous(&f);
            prop_assert_eq!(seg.len(), one.len());
            prop_assert_eq!(seg.head(), one.head());
            prop_assert_eq!(seg.sum(), one.sum());
            let (a, b) = (seg.sub(start, start + take), one.sub(start, start + take));
            prop_assert_eq!(a.len(), b.len());
            prop_assert_eq!(a.head(), b.head());
            prop_assert_eq!(a.sum(), b.sum());
            let want = f.get(start..start + take).unwrap_or(&[]);
            prop_assert_eq!(a.sum(), checksum::data(want));
            // The one-buffer forms agree with the span of the same bytes.
            if let Some(short) = Short::frame(&f) {
                let c = short.sub(start, start + take);
                prop_assert_eq!((c.len(), c.head(), c.sum()), (b.len(), b.head(), b.sum()));
            }
            let c = Contiguous::frame(&f).sub(start, start + take);
            prop_assert_eq!((c.len(), c.head(), c.sum()), (b.len(), b.head(), b.sum()));
            let (c2, b2) = (c.from(take / 3), b.from(take / 3));
            prop_assert_eq!((c2.len(), c2.head(), c2.sum()), (b2.len(), b2.head(), b2.sum()));
        }
    }
}
