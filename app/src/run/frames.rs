//! Received packets as the engine reads them: a frame in one buffer, or a chain of segments
//! (a jumbo frame received with scatter RX, or one a PMD chains on its own, as `net_pcap`
//! does for frames longer than its mbufs).
//!
//! The engine reads headers from a frame's first [`HEADER_SPAN`] bytes and needs them in one
//! buffer; lengths and checksums it takes from every segment (`ctfw_engine::wire::span`). So:
//! - a frame in one segment, or whose first segment holds its first `HEADER_SPAN` bytes (the
//!   usual case: NICs fill 2 KiB segments), is read where it lies, nothing copied;
//! - otherwise its first `min(len, HEADER_SPAN)` bytes are copied into a per-worker buffer
//!   ([`Heads`], one slot per packet of a group) and the rest is read from the segments,
//!   starting where the copy stopped.
//!
//! Either way the engine sees the same frame as `ctfw replay` does from a capture, so `run`
//! and `replay` agree on every frame, however it was split.
//!
//! The segment lists of a group live in one array of [`TAIL_SLOTS`] slices on the caller's
//! stack; a group ends early when the next packet's segments do not fit. A packet with more
//! segments than the array holds (never seen: 9 KiB in 2 KiB segments is 5) is handed over
//! without the segments beyond it: the engine then sees a frame shorter than its IP length
//! says, and drops it as such (`ipv4_bad_total_length`, `ipv6_bad_payload_length`).

use ctfw_engine::pipeline::BURST;
use ctfw_engine::wire::HEADER_SPAN;

/// Segment slices one group of packets can use beyond their first buffers.
pub const TAIL_SLOTS: usize = BURST * 8;

/// A received packet: its segments, first to last.
pub trait Segmented {
    /// The bytes of each segment, in order.
    fn segments(&self) -> impl Iterator<Item = &[u8]>;
}

impl Segmented for rte::Mbuf {
    #[inline]
    fn segments(&self) -> impl Iterator<Item = &[u8]> {
        rte::Mbuf::segments(self)
    }
}

/// A worker's buffers for the first bytes of frames whose first segment is shorter than
/// [`HEADER_SPAN`]: one per packet of a group.
pub struct Heads(Box<[[u8; HEADER_SPAN]; BURST]>);

impl Heads {
    /// Buffers for one group.
    pub fn new() -> Heads {
        Heads(Box::new([[0; HEADER_SPAN]; BURST]))
    }
}

impl Default for Heads {
    fn default() -> Self {
        Heads::new()
    }
}

impl std::fmt::Debug for Heads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heads").finish_non_exhaustive()
    }
}

/// Where one packet's frame is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Place {
    /// All in its first segment.
    #[default]
    Whole,
    /// Its first segment, then `tails[start..end]`.
    Chain { start: u16, end: u16 },
    /// The first `len` bytes in its [`Heads`] slot, then `tails[start..end]`.
    Copied { len: u16, start: u16, end: u16 },
}

/// Where the frames of a group are: filled by [`Layout::fill`], read by [`Layout::frame`].
#[derive(Debug)]
pub struct Layout {
    places: [Place; BURST],
}

impl Layout {
    /// Lays out the frames of the first packets of `pkts` (at most [`BURST`]): their other
    /// segments go into `tails`, and the first bytes of those whose first segment is short
    /// into `heads`. Returns how many packets were laid out: all of them, up to `BURST`, or
    /// fewer when `tails` would overflow (at least one, unless `pkts` is empty).
    pub fn fill<'m, P: Segmented>(
        pkts: &'m [P],
        heads: &mut Heads,
        tails: &mut [&'m [u8]; TAIL_SLOTS],
    ) -> (Layout, usize) {
        let mut layout = Layout {
            places: [Place::Whole; BURST],
        };
        let mut used = 0usize;
        let mut n = 0;
        for (i, p) in pkts.iter().take(BURST).enumerate() {
            let mut segs = p.segments();
            let first = segs.next().unwrap_or(&[]);
            let start = used;
            let mut len = first.len();
            let mut overflow = false;
            for s in segs {
                if used == TAIL_SLOTS {
                    overflow = true;
                    break;
                }
                tails[used] = s;
                used += 1;
                len += s.len();
            }
            if overflow && i > 0 {
                // This packet's segments do not fit after the others': it opens the next
                // group. (The first packet of a group keeps what fits, see the module docs.)
                return (layout, n);
            }
            let end = used;
            let want = len.min(HEADER_SPAN);
            layout.places[i] = if end == start {
                Place::Whole
            } else if first.len() >= want {
                Place::Chain {
                    start: start as u16,
                    end: end as u16,
                }
            } else {
                // Copy the first `want` bytes: all of the first segment (it is shorter), then
                // from the tail; the tail then starts where the copy stopped, inside the
                // segment it stopped in if need be.
                let slot = &mut heads.0[i];
                slot[..first.len()].copy_from_slice(first);
                let mut at = first.len();
                let mut next = start;
                while at < want && next < end {
                    let seg = tails[next];
                    let take = seg.len().min(want - at);
                    slot[at..at + take].copy_from_slice(&seg[..take]);
                    at += take;
                    if take < seg.len() {
                        tails[next] = &seg[take..];
                    } else {
                        next += 1;
                    }
                }
                Place::Copied {
                    len: at as u16,
                    start: next as u16,
                    end: end as u16,
                }
            };
            n = i + 1;
        }
        (layout, n)
    }

    /// Packet `i`'s frame: its first buffer and the others, for the engine's `Pkt`.
    #[inline]
    pub fn frame<'a, P: Segmented>(
        &self,
        i: usize,
        pkt: &'a P,
        heads: &'a Heads,
        tails: &'a [&'a [u8]],
    ) -> (&'a [u8], &'a [&'a [u8]]) {
        match self.places[i] {
            Place::Whole => (pkt.segments().next().unwrap_or(&[]), &[]),
            Place::Chain { start, end } => (
                pkt.segments().next().unwrap_or(&[]),
                &tails[usize::from(start)..usize::from(end)],
            ),
            Place::Copied { len, start, end } => (
                &heads.0[i][..usize::from(len)],
                &tails[usize::from(start)..usize::from(end)],
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet in the segments given.
    struct Chain(Vec<Vec<u8>>);

    impl Segmented for Chain {
        fn segments(&self) -> impl Iterator<Item = &[u8]> {
            self.0.iter().map(Vec::as_slice)
        }
    }

    fn bytes(n: usize, seed: usize) -> Vec<u8> {
        (0..n)
            .map(|i| (i * 31 + seed * 7 + i / 253) as u8)
            .collect()
    }

    /// `frame` cut at `cuts` (sorted, within the frame).
    fn chain(frame: &[u8], cuts: &[usize]) -> Chain {
        let mut segs = Vec::new();
        let mut at = 0;
        for &c in cuts.iter().chain([&frame.len()]) {
            segs.push(frame[at..c].to_vec());
            at = c;
        }
        Chain(segs)
    }

    /// Lays out `pkts` group by group and checks each frame against `frames`: the whole
    /// frame, in order, with the engine's head in its first buffer. Returns the group sizes.
    fn check(pkts: &[Chain], frames: &[Vec<u8>]) -> Vec<usize> {
        let mut heads = Heads::new();
        let mut groups = Vec::new();
        let mut done = 0;
        while done < pkts.len() {
            let mut tails = [&[][..]; TAIL_SLOTS];
            let (layout, k) = Layout::fill(&pkts[done..], &mut heads, &mut tails);
            assert!(k >= 1, "no progress");
            for i in 0..k {
                let want = &frames[done + i];
                let (data, tail) = layout.frame(i, &pkts[done + i], &heads, &tails);
                assert!(
                    data.len() >= want.len().min(HEADER_SPAN),
                    "head of {} bytes for a {}-byte frame",
                    data.len(),
                    want.len()
                );
                let mut got = data.to_vec();
                for t in tail {
                    got.extend_from_slice(t);
                }
                assert!(got == *want, "frame {} laid out wrong", done + i);
            }
            groups.push(k);
            done += k;
        }
        groups
    }

    #[test]
    fn frames_come_out_whole_however_they_are_cut() {
        // Every first-segment length around the head and segment boundaries, for frames
        // shorter and longer than the head.
        for len in [60, 1023, 1024, 1025, 1514, 2048, 2049, 4000, 9018] {
            let f = bytes(len, len);
            for first in [1, 13, 14, 54, 100, 1000, 1023, 1024, 1025, 2048, len] {
                if first > len {
                    continue;
                }
                for step in [1, 7, 512, 2048] {
                    let mut cuts = vec![first];
                    while cuts.last().is_some_and(|&c| c + step < len) && cuts.len() < 40 {
                        cuts.push(cuts.last().unwrap() + step);
                    }
                    cuts.retain(|&c| c < len);
                    check(&[chain(&f, &cuts)], std::slice::from_ref(&f));
                }
            }
        }
    }

    #[test]
    fn a_group_ends_where_the_segment_slots_run_out() {
        // 40 frames of 9000 bytes in 100-byte segments (89 each beyond the first): three fit
        // in the slots of a group.
        let frames: Vec<Vec<u8>> = (0..40).map(|i| bytes(9000, i)).collect();
        let cuts: Vec<usize> = (1..90).map(|k| k * 100).collect();
        let pkts: Vec<Chain> = frames.iter().map(|f| chain(f, &cuts)).collect();
        let groups = check(&pkts, &frames);
        assert!(groups.iter().all(|&k| k * 89 <= TAIL_SLOTS), "{groups:?}");
        assert_eq!(groups.iter().sum::<usize>(), 40);
        // Contiguous and chained frames mixed: groups of BURST as long as the slots last.
        let mixed: Vec<Vec<u8>> = (0..70).map(|i| bytes(60 + i * 100, i)).collect();
        let pkts: Vec<Chain> = mixed
            .iter()
            .enumerate()
            .map(|(i, f)| {
                if i % 3 == 0 {
                    chain(f, &[f.len() / 2])
                } else {
                    chain(f, &[])
                }
            })
            .collect();
        assert_eq!(check(&pkts, &mixed), [BURST, BURST, 70 - 2 * BURST]);
    }

    #[test]
    fn a_packet_with_more_segments_than_the_slots_keeps_what_fits() {
        let f = bytes(TAIL_SLOTS + 100, 1);
        let cuts: Vec<usize> = (1..TAIL_SLOTS + 100).collect();
        let pkts = [chain(&f, &cuts)];
        let mut heads = Heads::new();
        let mut tails = [&[][..]; TAIL_SLOTS];
        let (layout, k) = Layout::fill(&pkts, &mut heads, &mut tails);
        assert_eq!(k, 1);
        let (data, tail) = layout.frame(0, &pkts[0], &heads, &tails);
        let seen = data.len() + tail.iter().map(|t| t.len()).sum::<usize>();
        assert!(
            seen < f.len(),
            "the engine sees a shorter frame, and drops it for that"
        );
        assert_eq!(data, &f[..data.len()]);
    }
}
