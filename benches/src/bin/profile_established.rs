//! The `established` benchmark as a plain program, for profilers (perf, callgrind) that want
//! one process with a clearly separated timed part.
//!
//! `profile_established [FLOWS] [PACKETS] [nic|sw] [off|acct|events|both] [4k|thp]
//! [rotation|pickup]` sets up FLOWS connections (default 1000), with accounting and/or
//! connection events on if asked, then sends PACKETS packets (default 10 million) in bursts,
//! frames written beforehand in chunks as the benchmark does, and prints ns per packet. `thp`
//! advises the table onto transparent huge pages before it is first written, as `ctfw run`
//! does when it runs on hugepages (`4k`, the default, leaves it to the kernel's default), and
//! prints how much of the process's memory they back.
//!
//! The traffic:
//! - `rotation` (the default): handshakes, then the benchmark's rotation traffic (data and
//!   ACKs both ways, in window, flows drawn at random);
//! - `pickup`: what `benches/dataplane.sh` replays (`ctfw-tracegen established --data-only
//!   --order rr`, looped): one client data segment per flow, no handshake, the same segment
//!   again and again, flows in turn, nothing ever coming back. Each connection is picked up
//!   mid-stream by its first segment and stays unreplied; every later segment fails the ACK
//!   bounds of `tcp_in_window` (the receiver was never seen) and is accepted because loose
//!   pickup made the sender liberal.
//!
//! Only `timed_bursts` processes packets, so `valgrind --tool=callgrind
//! --toggle-collect=*timed_bursts*` counts instructions of the pipeline alone (divide by
//! PACKETS).

#![forbid(unsafe_code)]

use std::time::{Duration, Instant as WallClock};

use ctfw_benches::{
    FlowFactory, Frames, Rotation, SEEDS, START, Seg, arg, classic, drive, establish, timed_bursts,
};
use ctfw_engine::pipeline::{BURST, Engine, EngineConfig};
use ctfw_engine::wire::ChecksumHint;

const CHUNK_BURSTS: usize = 16;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flows: u64 = arg(&args, 1, 1_000);
    let packets: u64 = arg(&args, 2, 10_000_000);
    let csum = match args.get(3).map(String::as_str) {
        Some("sw") => ChecksumHint::Unknown,
        _ => ChecksumHint::Good,
    };
    let mode = args.get(4).map_or("off", String::as_str);
    let factory = FlowFactory::new(false);
    let cfg = classic();
    let engine_cfg = EngineConfig {
        capacity: flows as u32,
        accounting: matches!(mode, "acct" | "both"),
        ..cfg.engine
    };
    let thp = args.get(5).is_some_and(|a| a == "thp");
    let advise = |r: ctfw_engine::table::Region| {
        if thp {
            if let Err(e) = rte::os::advise_huge_pages(r.addr, r.len) {
                eprintln!("cannot advise transparent huge pages: {e}");
            }
        }
    };
    let Ok(mut e) = Engine::try_new(engine_cfg, cfg.rules, SEEDS, advise) else {
        eprintln!("cannot allocate the engine for {flows} flows");
        std::process::exit(1);
    };
    e.set_events(matches!(mode, "events" | "both"));
    let pickup = args.get(6).is_some_and(|a| a == "pickup");
    let mut now = START;
    let t0 = WallClock::now();
    let setup = if pickup {
        // The first loop of the capture: every flow picked up by its data segment.
        drive(
            &mut e,
            &factory,
            0..flows,
            &[Seg::ClientData],
            &mut now,
            csum,
        )
    } else {
        establish(&mut e, &factory, 0..flows, &mut now)
    };
    eprintln!("{flows} flows set up in {:.1?}: {setup:?}", t0.elapsed());
    if let Some(l) = std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("AnonHugePages"))
                .map(str::to_owned)
        })
    {
        eprintln!("{} (table {} bytes)", l, e.memory_bytes());
    }
    let mut rot = Rotation::new(flows, 2, 0x5eed_c7f3);
    // `pickup`: the flow whose segment is next in the looped capture.
    let mut next_flow = 0;
    let mut frames = Frames::new(CHUNK_BURSTS * BURST, factory.max_len());
    let mut total = Duration::ZERO;
    let mut left = packets / BURST as u64;
    while left > 0 {
        let n = left.min(CHUNK_BURSTS as u64) as usize;
        if pickup {
            frames.clear();
            for _ in 0..n * BURST {
                frames.push_seg(&factory, next_flow, Seg::ClientData);
                next_flow = (next_flow + 1) % flows;
            }
        } else {
            rot.fill(&factory, &mut frames, n * BURST);
        }
        total += timed_bursts(&mut e, &frames, n, &mut now, csum);
        e.drain_events(|ev| {
            std::hint::black_box(ev);
        });
        left -= n as u64;
    }
    let sent = packets / BURST as u64 * BURST as u64;
    let k = e.counters();
    println!(
        "{sent} packets over {flows} flows ({csum:?}): {:.1} ns/packet, {:.2} Mpps; \
         dropped {}; mode {mode}, events lost {}, traffic {}",
        total.as_nanos() as f64 / sent as f64,
        sent as f64 / total.as_secs_f64() / 1e6,
        k.dropped,
        k.events_lost,
        if pickup { "pickup" } else { "rotation" },
    );
}
