//! The `established` benchmark as a plain program, for profilers (perf, callgrind) that want
//! one process with a clearly separated timed part.
//!
//! `profile_established [FLOWS] [PACKETS] [nic|sw]` sets up FLOWS connections (default 1000),
//! then sends PACKETS packets (default 10 million) of the rotation traffic in bursts, frames
//! written beforehand in chunks as the benchmark does, and prints ns per packet. Only
//! `timed_bursts` processes packets, so `valgrind --tool=callgrind --toggle-collect=*timed_bursts*`
//! counts instructions of the pipeline alone (divide by PACKETS).

#![forbid(unsafe_code)]

use std::time::{Duration, Instant as WallClock};

use ctfw_benches::{FlowFactory, Frames, Rotation, START, engine, establish, timed_bursts};
use ctfw_engine::pipeline::BURST;
use ctfw_engine::wire::ChecksumHint;

const CHUNK_BURSTS: usize = 16;

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> T {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flows: u64 = arg(&args, 1, 1_000);
    let packets: u64 = arg(&args, 2, 10_000_000);
    let csum = match args.get(3).map(String::as_str) {
        Some("sw") => ChecksumHint::Unknown,
        _ => ChecksumHint::Good,
    };
    let factory = FlowFactory::new(false);
    let mut e = engine(flows as u32);
    let mut now = START;
    let t0 = WallClock::now();
    let setup = establish(&mut e, &factory, 0..flows, &mut now);
    eprintln!("{flows} flows set up in {:.1?}: {setup:?}", t0.elapsed());
    let mut rot = Rotation::new(flows, 2, 0x5eed_c7f3);
    let mut frames = Frames::new(CHUNK_BURSTS * BURST, factory.max_len());
    let mut total = Duration::ZERO;
    let mut left = packets / BURST as u64;
    while left > 0 {
        let n = left.min(CHUNK_BURSTS as u64) as usize;
        rot.fill(&factory, &mut frames, n * BURST);
        total += timed_bursts(&mut e, &frames, n, &mut now, csum);
        left -= n as u64;
    }
    let sent = packets / BURST as u64 * BURST as u64;
    let k = e.counters();
    println!(
        "{sent} packets over {flows} flows ({csum:?}): {:.1} ns/packet, {:.2} Mpps; \
         dropped {}",
        total.as_nanos() as f64 / sent as f64,
        sent as f64 / total.as_secs_f64() / 1e6,
        k.dropped,
    );
}
