//! The per-entry rule memo: when the rules decide an ESTABLISHED packet, or a NEW packet of a
//! known connection, by what one direction of its connection keeps for life (addresses,
//! ports, protocol), the decision is remembered in the entry, stamped with the rule set's
//! generation and the state. A reload must make every memo stale, a new connection must never
//! inherit the memo of the entry that held its pool index, a decision remembered for NEW must
//! not answer for ESTABLISHED, and a packet entering by another port, or with other flags
//! under the rules' flag tests, must be evaluated.

use ctfw_engine::Reason;
use ctfw_engine::rules::{
    Action, CtStateSet, Dependence, PortId, PortSet, Prefix, Rule, RuleSet, TcpFlagsMatch,
};
use ctfw_engine::track::CtState;
use ctfw_engine::wire::Family;
use ctfw_engine::wire::TcpFlags;
use ctfw_tracegen::TcpSim;
use ctfw_tracegen::frame::Frame;

use crate::common::*;

const CLIENT: &str = "10.0.1.66:41000";
const SERVER: &str = "10.0.2.2:80";

/// `drop` for packets from `client` in the states `states` (all states: `None`), ahead of
/// the classic rules: a rule set whose ESTABLISHED decisions depend on the addresses.
fn block_ahead(client: u32, states: Option<&[CtState]>) -> RuleSet {
    let mut list = vec![("block".to_owned(), block_rule(client, states))];
    list.extend(classic_rule_list());
    rule_set(list)
}

/// `drop` for packets from `client` in the states `states` (all states: `None`).
fn block_rule(client: u32, states: Option<&[CtState]>) -> Rule {
    Rule {
        ct: states.map(CtStateSet::of),
        src: Box::new([Prefix::host(Family::V4, u128::from(client)).expect("host")]),
        ..Rule::new(Action::Drop)
    }
}

/// A rule set of the same shape that blocks nobody the tests use.
fn block_nobody() -> RuleSet {
    block_ahead(0xc000_0201, None)
}

fn v4(addr: &str) -> u32 {
    let a: std::net::SocketAddr = addr.parse().expect("address");
    match a.ip() {
        std::net::IpAddr::V4(ip) => u32::from(ip),
        std::net::IpAddr::V6(_) => unreachable!("an IPv4 address"),
    }
}

/// The pool index of the frame's entry.
fn pool_index(fw: &Fw, frame: &[u8]) -> Option<u32> {
    let key = key_of(frame)?;
    let table = fw.eng.table();
    table.peek(&key, &table.hash(&key))
}

fn sim() -> TcpSim {
    TcpSim::new(
        CLIENT.parse().expect("address"),
        SERVER.parse().expect("address"),
    )
}

#[test]
fn a_reload_makes_every_remembered_decision_stale() {
    let mut fw = Fw::new(linux_defaults(1024), block_nobody());
    assert_eq!(
        fw.eng.rules().established(),
        Dependence::PerFlow { flags_mask: 0 }
    );
    let mut sim = sim();
    sim.handshake().exchange(10, 10).exchange(10, 10);
    for p in sim.take_packets() {
        assert!(fw.pkt(&p).forward.is_some(), "{:?}", p.side);
    }
    // Both directions' decisions are remembered now. The client is blocked from here on.
    let cfg = linux_defaults(1024);
    fw.eng
        .reload(block_ahead(v4(CLIENT), None), &cfg)
        .expect("reload");
    sim.exchange(10, 10);
    let ps = sim.take_packets();
    let vs = fw.pkts(&ps);
    for (p, v) in ps.iter().zip(&vs) {
        if port_of(p.side) == INSIDE {
            assert_dropped(v, Reason::RuleDrop);
            assert_eq!(v.rule, Some(0), "the new rule decides");
        } else {
            assert_fwd_pkt(v, CtState::Established, p);
            assert_eq!(v.rule, Some(1), "estrel_accept, one place down");
        }
    }
    // And back: the same connection's packets pass again.
    fw.eng.reload(block_nobody(), &cfg).expect("reload");
    sim.data_c2s(10);
    let p = sim.take_packets().remove(0);
    let v = fw.pkt(&p);
    assert_fwd_pkt(&v, CtState::Established, &p);
    assert_eq!(v.rule, Some(1));
}

#[test]
fn a_new_connection_does_not_inherit_the_memo_of_its_pool_slot() {
    // Established packets from CLIENT are dropped; its new connections are not.
    let blocked = block_ahead(v4(CLIENT), Some(&[CtState::Established]));
    assert_eq!(blocked.established(), Dependence::PerFlow { flags_mask: 0 });
    let mut fw = Fw::new(linux_defaults(16), blocked);
    // Another client's connection: accepted both ways, remembered, then reset and reclaimed.
    let mut other = TcpSim::new(
        "10.0.1.7:41000".parse().expect("address"),
        SERVER.parse().expect("address"),
    );
    other.handshake().exchange(10, 10);
    for p in other.take_packets() {
        assert!(fw.pkt(&p).forward.is_some());
    }
    other.rst_c2s();
    let rst = other.take_packets();
    let slot = pool_index(&fw, &rst[0].data).expect("the entry before the RST");
    for p in &rst {
        fw.pkt(p);
    }
    // CLOSE for 10 s, then reclaimed.
    fw.advance(11 * SEC);
    let now = fw.now();
    fw.eng.sweep(now, 64);
    assert!(fw.eng.table().is_empty(), "the closed entry was reclaimed");
    // CLIENT's connection takes the freed slot: its SYN is NEW and accepted, the server's
    // answer is ESTABLISHED from the server (accepted), and the client's ACK is ESTABLISHED
    // from CLIENT: dropped, whatever the slot's previous tenant was allowed.
    let mut sim = sim();
    sim.handshake();
    let ps = sim.take_packets();
    let vs = fw.pkts(&ps);
    assert_eq!(
        pool_index(&fw, &ps[0].data),
        Some(slot),
        "the same pool slot"
    );
    assert_fwd_pkt(&vs[0], CtState::New, &ps[0]);
    assert_fwd_pkt(&vs[1], CtState::Established, &ps[1]);
    assert_dropped(&vs[2], Reason::RuleDrop);
    assert_eq!(vs[2].rule, Some(0));
}

#[test]
fn a_generation_that_comes_round_again_does_not_revive_old_memos() {
    let mut fw = Fw::new(linux_defaults(1024), block_nobody());
    let mut sim = sim();
    sim.handshake().exchange(10, 10);
    for p in sim.take_packets() {
        assert!(fw.pkt(&p).forward.is_some());
    }
    // 255 reloads bring the 8-bit generation back to the one the memos were stamped with;
    // the last installs a set that blocks the client.
    let cfg = linux_defaults(1024);
    let (nobody, client) = (block_nobody(), block_ahead(v4(CLIENT), None));
    for i in 0..u8::MAX {
        let set = if i + 1 == u8::MAX { &client } else { &nobody };
        fw.eng.reload(set.clone(), &cfg).expect("reload");
    }
    sim.data_c2s(10);
    let p = sim.take_packets().remove(0);
    let v = fw.pkt(&p);
    assert_dropped(&v, Reason::RuleDrop);
    assert_eq!(v.rule, Some(0));
    // No memo is used until the sweeper has cleared them all (one step in a table this
    // small); then decisions are remembered and used again, still the right ones.
    let now = fw.now();
    fw.eng.sweep(now, 1);
    for _ in 0..2 {
        let v = fw.pkt(&p);
        assert_dropped(&v, Reason::RuleDrop);
        assert_eq!(v.rule, Some(0));
    }
}

#[test]
fn another_port_or_other_tested_flags_are_evaluated_not_remembered() {
    // A third port, whose peer is the outside: established packets entering by it are
    // dropped; and established packets from inside carrying PSH are dropped.
    let by_port = Rule {
        ct: Some(CtStateSet::of(&[CtState::Established])),
        in_port: PortSet::default().with(PortId(2)),
        ..Rule::new(Action::Drop)
    };
    let push = Rule {
        ct: Some(CtStateSet::of(&[CtState::Established])),
        in_port: PortSet::default().with(INSIDE),
        tcp_flags: TcpFlagsMatch::new(TcpFlags::PSH, TcpFlags::PSH, false),
        ..Rule::new(Action::Drop)
    };
    let mut list = vec![("by_port".to_owned(), by_port), ("push".to_owned(), push)];
    list.extend(classic_rule_list());
    let rules = rule_set(list);
    assert_eq!(
        rules.established(),
        Dependence::PerFlow {
            flags_mask: TcpFlags::PSH
        }
    );
    let mut cfg = linux_defaults(1024);
    cfg.peers.push(OUTSIDE);
    let mut fw = Fw::new(cfg, rules);
    let mut sim = sim();
    sim.handshake().ack_c2s();
    let ps = sim.take_packets();
    for p in &ps {
        assert!(fw.pkt(p).forward.is_some());
    }
    // The client's pure ACK was remembered (accepted, entering inside). The same ACK again
    // by port 2, then a data segment (PSH) by the inside port: each has its own decision.
    let ack = ps.last().expect("the ACK");
    let v = fw.send(&ack.data, PortId(2));
    assert_dropped(&v, Reason::RuleDrop);
    assert_eq!(v.rule, Some(0));
    sim.data_c2s(10);
    let data = sim.take_packets().remove(0);
    let v = fw.pkt(&data);
    assert_dropped(&v, Reason::RuleDrop);
    assert_eq!(v.rule, Some(1));
    // And the remembered decision still holds for what it was remembered for.
    let v = fw.pkt(ack);
    assert_fwd_pkt(&v, CtState::Established, ack);
    assert_eq!(v.rule, Some(2));
}

#[test]
fn memos_survive_a_detour_through_a_set_that_does_not_use_them() {
    // PerFlow (memos written), then the classic set (Fixed: memos off, inserts leave them
    // alone), then a PerFlow set that blocks the client: nothing remembered before may
    // answer for it.
    let cfg = linux_defaults(16);
    let mut fw = Fw::new(cfg.clone(), block_nobody());
    let mut sim = sim();
    sim.handshake().exchange(10, 10);
    for p in sim.take_packets() {
        assert!(fw.pkt(&p).forward.is_some());
    }
    fw.eng.reload(classic_rules(), &cfg).expect("reload");
    assert!(matches!(fw.eng.rules().established(), Dependence::Fixed(_)));
    sim.exchange(10, 10);
    for p in sim.take_packets() {
        assert!(fw.pkt(&p).forward.is_some());
    }
    fw.eng
        .reload(block_ahead(v4(CLIENT), None), &cfg)
        .expect("reload");
    sim.data_c2s(10);
    let p = sim.take_packets().remove(0);
    let v = fw.pkt(&p);
    assert_dropped(&v, Reason::RuleDrop);
    assert_eq!(v.rule, Some(0));
}

#[test]
fn a_port_past_the_memo_s_width_is_evaluated_every_time() {
    // 257 ports; established IPv4 packets are accepted entering by ports 0 and 1 and
    // dropped by any other. The memo holds ports below 128 only: ports 128 and 256 must not
    // pass for port 0 (256 is port 0 in the low eight bits). (The family test makes the
    // decision depend on more than the ports, so it is remembered per entry rather than
    // worked out per port.)
    let by_port = Rule {
        ct: Some(CtStateSet::of(&[CtState::Established])),
        in_port: PortSet::default()
            .with(INSIDE)
            .and_then(|s| s.with(OUTSIDE)),
        family: Some(Family::V4),
        ..Rule::new(Action::Accept)
    };
    let drop_established = Rule {
        ct: Some(CtStateSet::of(&[CtState::Established])),
        ..Rule::new(Action::Drop)
    };
    let mut list = vec![
        ("inside_outside".to_owned(), by_port),
        ("drop_established".to_owned(), drop_established),
    ];
    list.extend(classic_rule_list());
    let rules = rule_set(list);
    assert_eq!(rules.established(), Dependence::PerFlow { flags_mask: 0 });
    let mut cfg = linux_defaults(1024);
    cfg.peers = (0..257u16)
        .map(|p| if p == 0 { OUTSIDE } else { INSIDE })
        .collect();
    let mut fw = Fw::new(cfg, rules);
    let mut sim = sim();
    sim.handshake();
    let ps = sim.take_packets();
    for p in &ps {
        assert!(fw.pkt(p).forward.is_some());
    }
    // The client's ACK, again: ESTABLISHED from inside, remembered by port 0.
    let ack = ps.last().expect("the ACK");
    for _ in 0..3 {
        let v = fw.send(&ack.data, INSIDE);
        assert_fwd(&v, CtState::Established, OUTSIDE);
        assert_eq!(v.rule, Some(0));
        for port in [128, 256] {
            let v = fw.send(&ack.data, PortId(port));
            assert_dropped(&v, Reason::RuleDrop);
            assert_eq!(v.rule, Some(1), "by port {port}");
        }
    }
}

#[test]
fn accounting_and_events_take_the_same_decisions() {
    let mut cfg = linux_defaults(1024);
    cfg.accounting = true;
    let mut fw = Fw::new(cfg.clone(), block_nobody());
    fw.eng.set_events(true);
    let mut sim = sim();
    sim.handshake().exchange(10, 10);
    for p in sim.take_packets() {
        assert!(fw.pkt(&p).forward.is_some());
    }
    fw.eng
        .reload(block_ahead(v4(CLIENT), None), &cfg)
        .expect("reload");
    sim.exchange(10, 10);
    let ps = sim.take_packets();
    for (p, v) in ps.iter().zip(fw.pkts(&ps)) {
        if port_of(p.side) == INSIDE {
            assert_dropped(&v, Reason::RuleDrop);
        } else {
            assert_fwd_pkt(&v, CtState::Established, p);
        }
    }
}

/// A one-way UDP stream from the client to the server's port 53, and the server's answer.
fn udp_stream() -> (Vec<u8>, Vec<u8>) {
    let (client, server) = (v4(CLIENT).into(), v4(SERVER).into());
    (
        Frame::ipv4(client, server)
            .udp(41000, 53)
            .payload(b"q")
            .build(),
        Frame::ipv4(server, client)
            .udp(53, 41000)
            .payload(b"a")
            .build(),
    )
}

#[test]
fn new_packets_of_a_known_connection_are_remembered_until_a_reload() {
    // Classic rules after the block: NEW packets are decided by the ports they cross.
    let mut fw = Fw::new(linux_defaults(1024), block_nobody());
    assert_eq!(
        fw.eng.rules().dependence(CtState::New),
        Some(Dependence::PerFlow { flags_mask: 0 })
    );
    let (query, _) = udp_stream();
    // The stream stays NEW: the first packet creates the entry, the second writes the memo,
    // the rest read it.
    for _ in 0..4 {
        let v = fw.send(&query, INSIDE);
        assert_fwd(&v, CtState::New, OUTSIDE);
        assert_eq!(v.rule, Some(2), "new_c2s_accept, one place down");
    }
    let idx = pool_index(&fw, &query).expect("the stream's entry");
    assert_ne!(fw.eng.table().memo(idx), 0, "the decision is remembered");
    // From outside, NEW is dropped by the default policy, remembered or not.
    for _ in 0..3 {
        let v = fw.send(&query, OUTSIDE);
        assert_dropped(&v, Reason::DefaultPolicy);
        assert_eq!(v.rule, None);
    }
    // A reload that blocks the client's NEW packets: stale at once.
    let cfg = linux_defaults(1024);
    fw.eng
        .reload(block_ahead(v4(CLIENT), Some(&[CtState::New])), &cfg)
        .expect("reload");
    for _ in 0..3 {
        let v = fw.send(&query, INSIDE);
        assert_dropped(&v, Reason::RuleDrop);
        assert_eq!(v.rule, Some(0));
    }
    fw.eng.reload(block_nobody(), &cfg).expect("reload");
    let v = fw.send(&query, INSIDE);
    assert_fwd(&v, CtState::New, OUTSIDE);
    assert_eq!(v.rule, Some(2));
}

#[test]
fn a_decision_remembered_for_new_does_not_answer_for_established() {
    // NEW from the client is accepted by `new_c2s_accept`; once the server answered, the
    // client's packets are ESTABLISHED and decided by the block (dropped), then, after a
    // reload, by `estrel_accept`: never by what was remembered while the stream was NEW.
    // `new_c2s_accept` for IPv4 only: a NEW decision that depends on more than the ports,
    // so it is remembered per entry rather than worked out per port.
    let mut list = vec![(
        "block".to_owned(),
        block_rule(v4(CLIENT), Some(&[CtState::Established])),
    )];
    for (name, mut rule) in classic_rule_list() {
        if name == "new_c2s_accept" {
            rule.family = Some(Family::V4);
        }
        list.push((name, rule));
    }
    let blocked = rule_set(list);
    assert_eq!(
        blocked.dependence(CtState::New),
        Some(Dependence::PerFlow { flags_mask: 0 })
    );
    // Port 128 (past the memo's seven bits of port) leads outside too.
    let mut cfg = linux_defaults(1024);
    cfg.peers = (0..=128u16)
        .map(|p| if p == 0 { OUTSIDE } else { INSIDE })
        .collect();
    let mut fw = Fw::new(cfg, blocked);
    let (query, answer) = udp_stream();
    for _ in 0..3 {
        let v = fw.send(&query, INSIDE);
        assert_fwd(&v, CtState::New, OUTSIDE);
        assert_eq!(v.rule, Some(2));
    }
    let v = fw.send(&answer, OUTSIDE);
    assert_fwd(&v, CtState::Established, INSIDE);
    assert_eq!(
        v.rule,
        Some(1),
        "estrel_accept: the block tests the client's address"
    );
    // Not by way of a port whose number would reach the memo's NEW bit either (the memo
    // still holds the NEW decision of port 0).
    let v = fw.send(&query, PortId(128));
    assert_dropped(&v, Reason::RuleDrop);
    assert_eq!(v.rule, Some(0), "by port 128");
    for _ in 0..3 {
        let v = fw.send(&query, INSIDE);
        assert_dropped(&v, Reason::RuleDrop);
        assert_eq!(
            v.rule,
            Some(0),
            "the block, not the remembered NEW decision"
        );
    }
}

/// A decision that depends on the ports alone is worked out per port when the rules are
/// loaded: each port gets its own, and a reload works them out again.
#[test]
fn a_decision_by_the_ports_alone_is_the_ports_and_follows_a_reload() {
    let rules = rule_set(zone_rules(INSIDE, false));
    assert_eq!(rules.dependence(CtState::New), Some(Dependence::Ports));
    let mut fw = Fw::new(linux_defaults(1024), rules);
    let syn = |client: &str| {
        let mut s = TcpSim::new(
            client.parse().expect("address"),
            SERVER.parse().expect("address"),
        );
        s.syn();
        s.take_packets().remove(0).data
    };
    // NEW from inside: the zone rule; NEW from outside: the default policy.
    let v = fw.send(&syn("10.0.1.10:40000"), INSIDE);
    assert_fwd(&v, CtState::New, OUTSIDE);
    assert_eq!(v.rule, Some(1));
    let v = fw.send(&syn("10.0.1.11:40000"), OUTSIDE);
    assert_dropped(&v, Reason::DefaultPolicy);
    assert_eq!(v.rule, None);
    // The zones swapped: the other way round.
    let cfg = linux_defaults(1024);
    fw.eng
        .reload(rule_set(zone_rules(OUTSIDE, false)), &cfg)
        .expect("reload");
    let v = fw.send(&syn("10.0.1.12:40000"), INSIDE);
    assert_dropped(&v, Reason::DefaultPolicy);
    let v = fw.send(&syn("10.0.1.13:40000"), OUTSIDE);
    assert_fwd(&v, CtState::New, INSIDE);
    assert_eq!(v.rule, Some(1));
    assert_eq!(fw.eng.rule_hits(), [0, 1, 0, 1]);

    // ESTABLISHED by the ports too: a connection accepted under the classic rules, then
    // its packets entering by OUTSIDE dropped and those entering by INSIDE accepted.
    fw.eng
        .reload(rule_set(zone_rules(INSIDE, false)), &cfg)
        .expect("reload");
    let mut sim = sim();
    sim.handshake().exchange(10, 10);
    for p in sim.take_packets() {
        assert!(fw.pkt(&p).forward.is_some(), "{:?}", p.side);
    }
    let blocking = rule_set(zone_rules(INSIDE, true));
    assert_eq!(blocking.established(), Dependence::Ports);
    fw.eng.reload(blocking, &cfg).expect("reload");
    sim.exchange(10, 10);
    let ps = sim.take_packets();
    for (p, v) in ps.iter().zip(fw.pkts(&ps)) {
        if port_of(p.side) == INSIDE {
            assert_fwd_pkt(&v, CtState::Established, p);
            assert_eq!(v.rule, Some(1), "estrel_accept");
        } else {
            assert_dropped(&v, Reason::RuleDrop);
            assert_eq!(v.rule, Some(0), "block_outside");
        }
    }
}
