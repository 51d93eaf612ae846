//! A sequence of frames (with ports and time steps) through a small engine: no panic, and the
//! table's invariants hold after every burst.
#![no_main]

use ctfw_engine::pipeline::{Engine, EngineConfig, FragmentPolicy, NonIpPolicy, Pkt, Verdict};
use ctfw_engine::rules::{Action, CtStateSet, PortId, Rule, RuleSet};
use ctfw_engine::time::Instant;
use ctfw_engine::track::{CtState, TrackConfig};
use ctfw_engine::wire::{ChecksumHint, ParseConfig};
use libfuzzer_sys::fuzz_target;

fn engine() -> Engine {
    let mut estrel = Rule::new(Action::Accept);
    estrel.ct = Some(CtStateSet::of(&[CtState::Established, CtState::Related]));
    let mut new = Rule::new(Action::Accept);
    new.ct = Some(CtStateSet::of(&[CtState::New]));
    let names = vec!["estrel".to_owned(), "new".to_owned()];
    let rules = RuleSet::new(vec![estrel, new], Action::Drop, names).expect("rules");
    let cfg = EngineConfig {
        capacity: 64,
        track: TrackConfig::default(),
        parse: ParseConfig::default(),
        fragments: FragmentPolicy::Untracked,
        non_ip: NonIpPolicy::Forward,
        peers: vec![PortId(1), PortId(0)],
    };
    Engine::new(cfg, rules, [1, 2, 3, 4])
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
