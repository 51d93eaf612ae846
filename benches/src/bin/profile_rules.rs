//! The `rules/*` benchmark as a plain program, for callgrind: established traffic over 1,000
//! flows decided by a large rule set (`ctfw_benches::rules`).
//!
//! `profile_rules [RULES] [first|last|none] [PACKETS]` sets up 1,000 connections with the
//! classic policy, swaps in a set of RULES rules (default 10,000) whose deciding rule is first,
//! last (the default) or absent (the default policy decides), as a reload does, then sends
//! PACKETS packets (default 320,000) of the rotation traffic in bursts and prints ns per packet
//! and how long the set took to build. Only `timed_bursts` processes packets, so
//! `valgrind --tool=callgrind --toggle-collect=*timed_bursts*` counts instructions of the
//! pipeline alone (divide by PACKETS); `--toggle-collect=*rule_set*` counts the build.

#![forbid(unsafe_code)]

use std::time::{Duration, Instant as WallClock};

use ctfw_benches::rules::{Position, rule_set};
use ctfw_benches::{
    FlowFactory, Frames, Rotation, SEEDS, START, arg, classic, establish, timed_bursts,
};
use ctfw_engine::pipeline::{BURST, Engine, EngineConfig};
use ctfw_engine::wire::ChecksumHint;

const FLOWS: u64 = 1_000;
const CHUNK_BURSTS: usize = 16;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let count: usize = arg(&args, 1, 10_000);
    let pos_name = args.get(2).map_or("last", String::as_str);
    let Some(&(_, pos)) = Position::ALL.iter().find(|(n, _)| *n == pos_name) else {
        eprintln!("position must be first, last or none, not {pos_name}");
        std::process::exit(2);
    };
    let packets: u64 = arg(&args, 3, 320_000);
    let factory = FlowFactory::new(false);
    let cfg = classic();
    let engine_cfg = EngineConfig {
        capacity: FLOWS as u32,
        ..cfg.engine
    };
    let mut e = Engine::new(engine_cfg.clone(), cfg.rules, SEEDS);
    let mut now = START;
    let setup = establish(&mut e, &factory, 0..FLOWS, &mut now);
    assert_eq!(setup.dropped, 0, "setup: {setup:?}");

    let t0 = WallClock::now();
    let set = rule_set(count, pos);
    let build = t0.elapsed();
    let how = if set.is_classified() {
        format!("classifier, {} KiB", set.classifier_bytes() / 1024)
    } else {
        "scanned".to_owned()
    };
    e.reload(set, &engine_cfg).expect("only the rules change");

    let mut rot = Rotation::new(FLOWS, 2, 0x5eed_c7f3);
    let mut frames = Frames::new(CHUNK_BURSTS * BURST, factory.max_len());
    let mut total = Duration::ZERO;
    let mut left = packets / BURST as u64;
    while left > 0 {
        let n = left.min(CHUNK_BURSTS as u64) as usize;
        rot.fill(&factory, &mut frames, n * BURST);
        total += timed_bursts(&mut e, &frames, n, &mut now, ChecksumHint::Good);
        left -= n as u64;
    }
    let sent = packets / BURST as u64 * BURST as u64;
    let hits = e.rule_hits();
    let decided = pos.deciding(count).unwrap_or(hits.len() - 1);
    assert_eq!(
        (e.counters().dropped, hits[decided]),
        (0, sent),
        "the deciding rule decided every packet"
    );
    println!(
        "{sent} packets, {count} rules, deciding rule {pos_name}: {:.1} ns/packet, {:.3} Mpps; \
         rule set built in {build:.1?} ({how})",
        total.as_nanos() as f64 / sent as f64,
        sent as f64 / total.as_secs_f64() / 1e6,
    );
}
