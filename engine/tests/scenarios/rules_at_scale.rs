//! A large rule set, loaded by the real configuration loader and compiled into the classifier,
//! decides a mixed trace packet for packet as the classic three rules do when it is those
//! three rules behind 2,000 that never match the trace: same verdicts, same conntrack states,
//! the same rule (shifted by 2,000) and the same hit counts; and a reload that swaps the large
//! set in between bursts keeps deciding the same.
//!
//! The fillers are shaped like a real policy and agree with the trace on some fields (ports,
//! protocols, the firewall's ports, the address families), so the classifier must reject
//! them on the others; which of them could match is worked out below against the trace's
//! addresses.

use std::fmt::Write as _;

use ctfw_engine::pipeline::{Pkt, Verdict};
use ctfw_engine::rules::RuleSet;
use ctfw_engine::wire::ChecksumHint;
use ctfw_tracegen::Packet;
use ctfw_tracegen::generate::{self, MixedOpts};

use crate::common::*;
use crate::traces::mixed;

const FILLERS: usize = 2_000;

/// The configuration: the classic ports and policy, `FILLERS` rules that match nothing in
/// [`trace`], then the classic rules.
///
/// The trace's addresses: clients 10.0.1.2, fd00:1::2 and 10.1.0.0/16, fd00:1::/32 on
/// `inside`; servers 10.0.2.2, fd00:2::2 and 172.16.0.0/16, fd00:2::/32 on `outside`. So no
/// packet comes from 198.18.0.0/15, 100.64.0.0/10, 192.0.2.0/24 or 203.0.113.0/24, none
/// goes to them or to 2001:db8::/32, a packet arriving `inside` never comes from a server's
/// network, and one arriving `outside` never goes to one.
fn yaml() -> String {
    let mut y = String::from(
        "ports:\n  - {name: inside, device: net_null0, peer: outside}\n  \
         - {name: outside, device: net_null1, peer: inside}\npolicy: drop\nrules:\n",
    );
    for i in 0..FILLERS {
        let n = i / 7;
        let rule = match i % 7 {
            0 => format!(
                "{{proto: tcp, dst: 198.18.{}.{}, dport: {}, action: accept}}",
                n / 256,
                n % 256,
                1 + n % 1000
            ),
            1 => format!("{{src: 100.64.{}.0/24, action: drop}}", n % 256),
            2 => "{in_port: inside, src: [172.16.0.0/16, \"fd00:2::/32\"], proto: tcp, \
                  sport: \"1024-65535\", action: accept}"
                .to_owned(),
            3 => format!(
                "{{in_port: outside, dst: 10.0.2.{}, ct_state: [new, established], \
                 action: accept}}",
                n % 256
            ),
            4 => format!(
                "{{proto: udp, src: 192.0.2.{}, dport: \"{}-{}\", action: accept}}",
                n % 256,
                1000 + n,
                1010 + n
            ),
            5 => format!(
                "{{syn: true, dst: 203.0.113.{}, log: true, action: drop}}",
                n % 256
            ),
            _ => format!(
                "{{dst: \"2001:db8:{:x}::/48\", proto: tcp, dport: [22, 443], action: accept}}",
                n
            ),
        };
        writeln!(y, "  - {rule}").expect("writing to a String");
    }
    y.push_str(
        "  - {name: estrel_accept, ct_state: [established, related], action: accept}\n  \
         - {name: new_c2s_accept, ct_state: [new], in_port: inside, out_port: outside, \
         action: accept}\n  \
         - {name: invalid_drop, ct_state: [invalid], action: drop}\n",
    );
    y
}

fn large_rules() -> RuleSet {
    let cfg = ctfw_config::Config::from_str(&yaml(), "rules_at_scale.yaml")
        .unwrap_or_else(|e| panic!("{e}"));
    let rules = cfg.rules;
    assert_eq!(rules.len(), FILLERS + 3);
    assert!(rules.is_classified(), "a set this large is compiled");
    assert_eq!(rules.name(FILLERS as u16), "estrel_accept");
    rules
}

/// The scenarios' mixed trace (both families, VLAN-free), then tracegen's generated mix
/// (handshakes, data, closes, RSTs, UDP, ICMP, invalid packets, IPv6).
fn trace() -> Vec<Packet> {
    let mut out = mixed(&[]);
    let opts = MixedOpts {
        flows: 300,
        packets: 20_000,
        ..MixedOpts::default()
    };
    generate::mixed(&opts, &mut out).expect("writing to a Vec cannot fail");
    out
}

/// Run `trace` through `fw` in bursts of 32, the clock one tick further for each.
fn run(fw: &mut Fw, trace: &[Packet]) -> Vec<Verdict> {
    let mut verdicts = vec![Verdict::default(); trace.len()];
    for (chunk, out) in trace.chunks(32).zip(verdicts.chunks_mut(32)) {
        let pkts: Vec<Pkt<'_>> = chunk
            .iter()
            .map(|p| Pkt {
                data: &p.data,
                tail: &[],
                port: port_of(p.side),
                csum: ChecksumHint::Unknown,
            })
            .collect();
        let now = fw.now();
        fw.eng.process_burst(now, &pkts, out);
        fw.advance(1);
    }
    verdicts
}

/// The verdicts agree, the large set's rule being the classic one shifted by `FILLERS`.
fn assert_same(classic: &[Verdict], large: &[Verdict]) {
    assert_eq!(classic.len(), large.len());
    for (i, (c, l)) in classic.iter().zip(large).enumerate() {
        let shifted = Verdict {
            rule: l.rule.map(|r| r - FILLERS as u16),
            ..*l
        };
        assert!(
            l.rule.is_none_or(|r| usize::from(r) >= FILLERS),
            "packet {i}: filler rule {:?} matched",
            l.rule
        );
        assert_eq!(*c, shifted, "packet {i}");
    }
}

#[test]
fn a_large_compiled_set_decides_as_the_rules_that_match() {
    let trace = trace();
    let mut classic = Fw::classic(1 << 14);
    let mut large = Fw::new(linux_defaults(1 << 14), large_rules());
    let c = run(&mut classic, &trace);
    let l = run(&mut large, &trace);
    assert_same(&c, &l);
    assert_eq!(classic.counters(), large.counters());
    let hits = large.eng.rule_hits();
    assert!(hits[..FILLERS].iter().all(|&h| h == 0));
    assert_eq!(&hits[FILLERS..], classic.eng.rule_hits());
    // The trace exercised every classic rule and the default policy.
    assert!(
        classic.eng.rule_hits().iter().all(|&h| h > 0),
        "{:?}",
        classic.eng.rule_hits()
    );
}

#[test]
fn a_reload_swaps_in_a_large_set_between_bursts() {
    let trace = trace();
    let half = trace.len() / 64 * 32;
    let mut classic = Fw::classic(1 << 14);
    let mut fw = Fw::classic(1 << 14);
    let mut c = run(&mut classic, &trace[..half]);
    let mut l = run(&mut fw, &trace[..half]);
    assert_eq!(c, l);
    let before = classic.eng.rule_hits().to_vec();
    fw.eng
        .reload(large_rules(), &linux_defaults(1 << 14))
        .expect("only the rules change");
    assert!(
        fw.eng.rule_hits().iter().all(|&h| h == 0),
        "hit counters restart"
    );
    c.extend(run(&mut classic, &trace[half..]));
    let after: Vec<Verdict> = run(&mut fw, &trace[half..]);
    // Before the reload both ran the classic set: no shift.
    let shifted_before: Vec<Verdict> = l
        .drain(..)
        .map(|v| Verdict {
            rule: v.rule.map(|r| r + FILLERS as u16),
            ..v
        })
        .collect();
    let mut all = shifted_before;
    all.extend(after);
    assert_same(&c, &all);
    let since: Vec<u64> = classic
        .eng
        .rule_hits()
        .iter()
        .zip(&before)
        .map(|(a, b)| a - b)
        .collect();
    assert_eq!(&fw.eng.rule_hits()[FILLERS..], since.as_slice());
    assert_eq!(classic.counters(), fw.counters());
}
