//! A sequence of frames (with ports and time steps) through a small engine: no panic, and the
//! table's invariants hold after every burst.
//!
//! The engine runs the classic conformance configuration, read from its one definition
//! (`config/conformance/classic-loose1-liberal0.yaml`) by the real loader, with a 64-entry
//! table so that it fills, and fragments and non-IP frames let through to the rules instead of
//! dropped, so that those paths are reached too.
#![no_main]

use ctfw_engine::pipeline::{Engine, EngineConfig, FragmentPolicy, NonIpPolicy, Pkt, Verdict};
use ctfw_engine::rules::PortId;
use ctfw_engine::time::Instant;
use ctfw_engine::wire::ChecksumHint;
use libfuzzer_sys::fuzz_target;

fn engine() -> Engine {
    let yaml = include_str!("../../config/conformance/classic-loose1-liberal0.yaml");
    let cfg = ctfw_config::Config::from_str(yaml, "classic-loose1-liberal0.yaml").expect("config");
    let engine_cfg = EngineConfig {
        capacity: 64,
        fragments: FragmentPolicy::Untracked,
        non_ip: NonIpPolicy::Forward,
        ..cfg.engine
    };
    Engine::new(engine_cfg, cfg.rules, [1, 2, 3, 4])
}

fuzz_target!(|data: &[u8]| {
    let mut eng = engine();
    let mut now = 0u64;
    // Records: [len: u8][port: u8][dt: u8][frame: len bytes]
    let mut rest = data;
    let mut frames: Vec<(&[u8], PortId)> = Vec::new();
    while let [len, port, dt, tail @ ..] = rest {
        let n = (*len as usize).min(tail.len());
        frames.push((&tail[..n], PortId(u16::from(*port & 1))));
        now += u64::from(*dt) * 250_000_000;
        rest = &tail[n..];
        if frames.len() == 8 || rest.len() < 3 {
            let pkts: Vec<Pkt<'_>> = frames
                .iter()
                .map(|&(d, p)| Pkt {
                    data: d,
                    tail: &[],
                    port: p,
                    csum: ChecksumHint::Unknown,
                })
                .collect();
            let mut v = vec![Verdict::default(); pkts.len()];
            eng.process_burst(Instant(now), &pkts, &mut v);
            frames.clear();
            assert!(eng.table().check_invariants().is_ok());
            let c = eng.counters();
            assert_eq!(c.packets, c.accepted + c.dropped);
        }
    }
});
