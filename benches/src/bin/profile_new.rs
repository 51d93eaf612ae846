//! New connections as a plain program, for profilers: the `new_conns/empty_table` case of
//! the criterion benchmarks without criterion.
//!
//! `profile_new [SYNS] [CAPACITY] [nic|sw] [plain|linux]` sends SYNS client SYNs (default
//! 256K) of distinct flows, in bursts, into an empty table of CAPACITY entries (default 1M),
//! so every packet is a lookup miss, a new TCP connection accepted by the classic policy, and
//! an insert; it prints ns per packet. `linux`: the SYNs carry Linux's option layout (MSS,
//! SACK-permitted, timestamps, NOP, window scale; [`FlowFactory::with_timestamps`]) instead
//! of tracegen's default without timestamps (MSS, NOP, window scale, SACK-permitted, NOP,
//! NOP). Only `timed_bursts` processes packets, so
//! `valgrind --tool=callgrind --toggle-collect=*timed_bursts*` counts the instructions of
//! the pipeline alone (divide by SYNS).

#![forbid(unsafe_code)]

use std::time::Duration;

use ctfw_benches::{FlowFactory, Frames, START, Seg, arg, engine, timed_bursts};
use ctfw_engine::pipeline::BURST;
use ctfw_engine::wire::ChecksumHint;

const CHUNK_BURSTS: usize = 16;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let syns: u64 = arg(&args, 1, 1 << 18);
    let capacity: u32 = arg(&args, 2, 1 << 20);
    let csum = match args.get(3).map(String::as_str) {
        Some("sw") => ChecksumHint::Unknown,
        _ => ChecksumHint::Good,
    };
    let factory = match args.get(4).map(String::as_str) {
        Some("linux") => FlowFactory::with_timestamps(false),
        _ => FlowFactory::new(false),
    };
    let mut e = engine(capacity);
    let mut now = START;
    let mut frames = Frames::new(CHUNK_BURSTS * BURST, factory.max_len());
    let mut total = Duration::ZERO;
    let mut flow = 0u64;
    let mut left = syns / BURST as u64;
    while left > 0 {
        let n = left.min(CHUNK_BURSTS as u64) as usize;
        frames.clear();
        for _ in 0..n * BURST {
            frames.push_seg(&factory, flow, Seg::Syn);
            flow += 1;
        }
        total += timed_bursts(&mut e, &frames, n, &mut now, csum);
        left -= n as u64;
    }
    let k = e.counters();
    let sent = syns / BURST as u64 * BURST as u64;
    assert_eq!(
        (k.created, k.dropped),
        (sent, 0),
        "every SYN creates a connection: {k:?}"
    );
    println!(
        "{:.1} ns/packet over {sent} SYNs ({} entries)",
        total.as_nanos() as f64 / sent as f64,
        e.table().len()
    );
}
