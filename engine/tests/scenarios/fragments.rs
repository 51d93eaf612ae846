//! Fragments, IPv4 and IPv6, first and non-first.
//!
//! Linux reassembles before conntrack (`nf_defrag_ipv4` / `nf_defrag_ipv6` at PREROUTING
//! priority -400). ctfw does not reassemble; `EngineConfig::fragments` decides instead:
//! `Drop` (the default) drops every fragment and counts `Reason::Fragment` before tracking
//! and before the rules; `Untracked` gives them the state UNTRACKED and lets the rules decide
//! (the classic policy has no rule for UNTRACKED, so its drop policy applies). Either way no
//! fragment creates or touches an entry.

use ctfw_engine::Reason;
use ctfw_engine::pipeline::FragmentPolicy;
use ctfw_engine::rules::{Action, CtStateSet, Rule};
use ctfw_engine::track::CtState;
use ctfw_tracegen::frame::Frame;

use crate::common::*;
use crate::traces::{C4, C6, S4, S6};

/// A 3000-byte UDP datagram and an ICMP echo, both families, cut into 1200-byte fragments:
/// three per datagram, the first with the transport header.
fn fragments() -> Vec<(bool, Vec<u8>)> {
    let body = vec![0x5a; 3000];
    let mut out = Vec::new();
    for (i, f) in [
        Frame::ipv4(C4, S4).udp(5000, 6000).payload(&body),
        Frame::ipv6(C6, S6).udp(5000, 6000).payload(&body),
        Frame::ipv4(C4, S4).echo_request(9, 1).payload(&body),
        Frame::ipv6(C6, S6).echo_request(9, 1).payload(&body),
    ]
    .iter()
    .enumerate()
    {
        let frags = f.fragments(1200, 77 + i as u32);
        assert_eq!(frags.len(), 3);
        for (k, frag) in frags.into_iter().enumerate() {
            out.push((k == 0, frag));
        }
    }
    out
}

#[test]
fn fragments_are_dropped_and_counted_by_default() {
    let mut fw = Fw::classic(64);
    let frags = fragments();
    for (first, data) in &frags {
        let v = fw.send(data, INSIDE);
        assert_dropped(&v, Reason::Fragment);
        // Dropped before tracking: no conntrack state, no rule consulted.
        assert_eq!(
            (v.ct, v.rule, v.invalid),
            (None, None, None),
            "first={first}"
        );
    }
    let c = fw.counters();
    let n = frags.len() as u64;
    assert_eq!(c.get(Reason::Fragment), n);
    assert_eq!((c.packets, c.dropped, c.accepted, c.created), (n, n, 0, 0));
    assert!(fw.eng.table().is_empty());
    // Nothing reached the rules: every hit counter is zero.
    assert!(fw.eng.rule_hits().iter().all(|&h| h == 0));
}

fn untracked_config() -> ctfw_engine::pipeline::EngineConfig {
    let mut cfg = linux_defaults(64);
    cfg.fragments = FragmentPolicy::Untracked;
    cfg
}

#[test]
fn untracked_fragments_meet_the_rules() {
    // The classic policy: no rule matches UNTRACKED, the default policy drops.
    let mut fw = Fw::new(untracked_config(), classic_rules());
    for (_, data) in fragments() {
        let v = fw.send(&data, INSIDE);
        assert_eq!(v.ct, Some(CtState::Untracked));
        assert_eq!(v.rule, None);
        assert_dropped(&v, Reason::DefaultPolicy);
    }
    assert_eq!(fw.counters().get(Reason::Fragment), 0);
    assert!(fw.eng.table().is_empty());

    // With `ct state untracked accept` first, the rules let them through, both ways.
    let mut rules = classic_rule_list();
    rules.insert(
        0,
        (
            "untracked_accept".into(),
            Rule {
                ct: Some(CtStateSet::of(&[CtState::Untracked])),
                ..Rule::new(Action::Accept)
            },
        ),
    );
    let mut fw = Fw::new(untracked_config(), rule_set(rules));
    for (i, (_, data)) in fragments().iter().enumerate() {
        let port = if i % 2 == 0 { INSIDE } else { OUTSIDE };
        let v = fw.send(data, port);
        assert_eq!(v.ct, Some(CtState::Untracked));
        assert_eq!(v.rule, Some(0));
        assert_eq!(
            v.forward,
            Some(if port == INSIDE { OUTSIDE } else { INSIDE })
        );
    }
    // Untracked: no entry was created.
    assert_eq!(fw.counters().created, 0);
    assert!(fw.eng.table().is_empty());
}

#[test]
fn a_fragment_does_not_disturb_its_flows_entry() {
    // A tracked UDP flow, then a fragment of the same 5-tuple: the entry keeps its deadline.
    let mut fw = Fw::new(untracked_config(), classic_rules());
    let whole = Frame::ipv4(C4, S4).udp(5000, 6000).payload(b"hello");
    let v = fw.send(&whole.build(), INSIDE);
    assert_fwd(&v, CtState::New, OUTSIDE);
    fw.advance(10 * SEC);
    let frag = &Frame::ipv4(C4, S4)
        .udp(5000, 6000)
        .payload(&[1; 3000])
        .fragments(1200, 5)[0];
    assert_eq!(fw.send(frag, INSIDE).ct, Some(CtState::Untracked));
    let view = fw.view(&whole.build()).expect("entry");
    assert_eq!(view.timeout, 20, "not refreshed by the fragment");
}
