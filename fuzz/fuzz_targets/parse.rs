//! Any bytes through the wire parser: it must return a packet or a reason, never panic; its
//! fast path for common frames must agree with the general parser, and so must its read of a
//! common TCP frame's addresses and segment alone; and the same bytes in two buffers (cut
//! anywhere past the head the parser reads headers from) must parse exactly as in one.
#![no_main]

use ctfw_engine::wire::{self, ChecksumHint, HEADER_SPAN, Packet, ParseConfig, Span};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for hint in [ChecksumHint::Unknown, ChecksumHint::Good, ChecksumHint::L4Good] {
        let one = wire::parse(data, &ParseConfig::default(), hint);
        assert_eq!(one, wire::parse_general(data, &ParseConfig::default(), hint));
        if let Some((addrs, seg)) = wire::parse_tcp(data, &ParseConfig::default(), hint) {
            assert_eq!(one, Ok(Packet::tcp(addrs, seg)));
        }
        // The last byte chooses where the frame is cut, at or past its head.
        let head = data.len().min(HEADER_SPAN);
        let extra = data.last().map_or(0, |&b| usize::from(b) * 7);
        let cut = (head + extra).min(data.len());
        let (a, b) = data.split_at(cut);
        let tail = [b];
        let split = wire::parse_span(Span::frame(a, &tail), &ParseConfig::default(), hint);
        assert_eq!(one, split);
    }
});
