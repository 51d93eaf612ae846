//! The drop log: packets decided by a rule with `log` (iptables `-j LOG` before the verdict,
//! nftables `log` in the rule) or by a default policy that logs, rate-limited by a token
//! bucket of `log_burst` records refilled at `log_rate` per second of packet time.

use std::net::Ipv4Addr;

use ctfw_engine::Reason;
use ctfw_engine::observe::LogRecord;
use ctfw_engine::pipeline::EngineConfig;
use ctfw_engine::rules::{Action, Rule, RuleSet};
use ctfw_engine::track::CtState;
use ctfw_engine::wire::{Family, proto};
use ctfw_tracegen::TcpFlags;
use ctfw_tracegen::TcpSim;
use ctfw_tracegen::frame::Frame;

use crate::common::*;
use crate::traces::{C4, S4};

/// The classic policy with `invalid_drop` logging, and the default policy logging when
/// `default_log`.
fn logging_rules(default_log: bool) -> RuleSet {
    let mut list = classic_rule_list();
    list[usize::from(R_INVALID)].1.log = true;
    rule_set(list).with_default_log(default_log)
}

fn logs(fw: &mut Fw) -> Vec<LogRecord> {
    let mut out = Vec::new();
    fw.eng.drain_logs(|r| out.push(*r));
    out
}

fn syn_fin() -> Vec<u8> {
    Frame::ipv4(C4, S4)
        .tcp(40123, 443)
        .flags(TcpFlags::SYN | TcpFlags::FIN)
        .seq_ack(1000, 0)
        .window(1000)
        .build()
}

/// A SYN from outside to the inside client: NEW, no rule accepts it, default policy.
fn syn_from_outside(sport: u16) -> Vec<u8> {
    Frame::ipv4(S4, C4)
        .tcp(sport, 22)
        .flags(TcpFlags::SYN)
        .seq_ack(77, 0)
        .window(1000)
        .build()
}

#[test]
fn records_carry_the_packet_and_the_decision() {
    let mut fw = Fw::new(linux_defaults(1024), logging_rules(true));
    // Accepted traffic through a rule that does not log: nothing.
    let mut sim = TcpSim::default_v4();
    sim.handshake().exchange(10, 10);
    for p in sim.take_packets() {
        assert!(fw.pkt(&p).forward.is_some());
    }
    assert!(logs(&mut fw).is_empty());

    let frame = syn_fin();
    let v = fw.send(&frame, INSIDE);
    assert_invalid(&v, Reason::TcpBadFlags);
    let recs = logs(&mut fw);
    assert_eq!(
        recs,
        [LogRecord {
            at: fw.now(),
            rule: Some(R_INVALID),
            action: Action::Drop,
            in_port: INSIDE,
            out_port: OUTSIDE,
            ct: Some(CtState::Invalid),
            invalid: Some(Reason::TcpBadFlags),
            family: Family::V4,
            proto: proto::TCP,
            src: u128::from(u32::from(C4)),
            dst: u128::from(u32::from(S4)),
            sport: Some(40123),
            dport: Some(443),
            tcp_flags: Some(0x03),
            icmp: None,
            len: (frame.len() - 14) as u32,
        }]
    );

    fw.advance(SEC);
    let v = fw.send(&syn_from_outside(5555), OUTSIDE);
    assert_eq!(v.dropped, Some(Reason::DefaultPolicy));
    let echo = Frame::ipv4(S4, C4).echo_request(0x77, 1).build();
    fw.send(&echo, OUTSIDE);
    let recs = logs(&mut fw);
    assert_eq!(recs.len(), 2);
    let (tcp, icmp) = (recs[0], recs[1]);
    assert_eq!(
        (tcp.rule, tcp.action, tcp.ct, tcp.in_port, tcp.out_port),
        (None, Action::Drop, Some(CtState::New), OUTSIDE, INSIDE)
    );
    assert_eq!(
        (tcp.sport, tcp.dport, tcp.tcp_flags),
        (Some(5555), Some(22), Some(0x02))
    );
    assert_eq!(tcp.at, fw.now());
    assert_eq!(
        (icmp.proto, icmp.icmp, icmp.sport),
        (proto::ICMP, Some((8, 0)), None)
    );
    assert_eq!(icmp.len, (echo.len() - 14) as u32);
    assert_eq!(fw.counters().logged, 3);
    assert_eq!(fw.counters().log_suppressed, 0);
}

#[test]
fn an_accepting_rule_may_log_too() {
    let mut list = classic_rule_list();
    list[usize::from(R_NEW_C2S)].1.log = true;
    let mut fw = Fw::new(linux_defaults(1024), rule_set(list));
    let mut sim = TcpSim::default_v4();
    sim.handshake();
    for p in sim.take_packets() {
        fw.pkt(&p);
    }
    let recs = logs(&mut fw);
    assert_eq!(recs.len(), 1, "only the SYN is decided by new_c2s_accept");
    assert_eq!(
        (recs[0].rule, recs[0].action, recs[0].ct),
        (Some(R_NEW_C2S), Action::Accept, Some(CtState::New))
    );
}

#[test]
fn the_token_bucket_admits_the_burst_then_the_rate() {
    let cfg = EngineConfig {
        log_rate: 2,
        log_burst: 3,
        ..linux_defaults(1024)
    };
    let mut fw = Fw::new(cfg, logging_rules(true));
    let send10 = |fw: &mut Fw| {
        for i in 0..10 {
            fw.send(&syn_from_outside(1000 + i), OUTSIDE);
        }
        logs(fw).len()
    };
    assert_eq!(send10(&mut fw), 3, "the burst");
    // 2 per second: one token every half second.
    fw.advance(SEC / 2 - 1);
    assert_eq!(send10(&mut fw), 0);
    fw.advance(1);
    assert_eq!(send10(&mut fw), 1);
    fw.advance(SEC);
    assert_eq!(send10(&mut fw), 2);
    // Idle for a minute: back to the burst, no more.
    fw.advance(60 * SEC);
    assert_eq!(send10(&mut fw), 3);
    let c = fw.counters();
    assert_eq!((c.logged, c.log_suppressed), (9, 41));
}

#[test]
fn a_full_buffer_suppresses_and_counts() {
    let cfg = EngineConfig {
        log_capacity: 2,
        log_burst: 10,
        ..linux_defaults(1024)
    };
    let mut fw = Fw::new(cfg, logging_rules(true));
    for i in 0..5 {
        fw.send(&syn_from_outside(2000 + i), OUTSIDE);
    }
    assert_eq!((fw.counters().logged, fw.counters().log_suppressed), (2, 3));
    assert_eq!(logs(&mut fw).len(), 2);
    // Drained, with tokens left: the next are recorded.
    fw.send(&syn_from_outside(3000), OUTSIDE);
    assert_eq!(logs(&mut fw).len(), 1);
}

#[test]
fn nothing_is_logged_without_a_logging_rule() {
    let mut fw = Fw::new(linux_defaults(1024), logging_rules(false));
    // The default policy does not log here; only invalid_drop does.
    fw.send(&syn_from_outside(4000), OUTSIDE);
    assert!(logs(&mut fw).is_empty());
    let mut quiet = Fw::classic(1024);
    quiet.send(&syn_from_outside(4000), OUTSIDE);
    quiet.send(&syn_fin(), INSIDE);
    assert!(logs(&mut quiet).is_empty());
    assert_eq!(
        (quiet.counters().logged, quiet.counters().log_suppressed),
        (0, 0)
    );
    // A rule list where the only logging rule is unreachable: still nothing.
    let never = Rule {
        log: true,
        src: Box::new([ctfw_engine::rules::Prefix::host(
            Family::V4,
            u128::from(u32::from(Ipv4Addr::new(192, 0, 2, 99))),
        )
        .expect("host")]),
        ..Rule::new(Action::Drop)
    };
    let mut list = classic_rule_list();
    list.push(("never".to_owned(), never));
    let mut fw = Fw::new(linux_defaults(1024), rule_set(list));
    fw.send(&syn_from_outside(4001), OUTSIDE);
    assert!(logs(&mut fw).is_empty());
}
