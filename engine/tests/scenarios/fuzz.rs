//! Random input through the burst pipeline: whatever arrives, the engine never panics, its
//! table keeps its invariants, every packet is counted exactly once as accepted or dropped,
//! and the number of entries never exceeds the capacity.
//!
//! The input mixes valid frames from a small pool of flows (so that entries are created,
//! advanced, closed, evicted and expired), mutations of them (a flipped byte; with the NIC
//! checksum hint set, so that broken headers reach the trackers instead of failing the
//! checksum), truncations, random bytes behind a valid Ethernet/IP prefix, pure noise,
//! frames on the wrong port or on ports without a peer, SYNs and whole connections from many
//! other clients, and time jumps between bursts of random sizes (also above the pipeline's
//! group of 32). The table is tiny, so it is full most of the time.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::OnceLock;

use ctfw_engine::pipeline::{EngineConfig, FragmentPolicy, NonIpPolicy, Pkt, Verdict};
use ctfw_engine::rules::{
    Action, CtStateSet, Dependence, PortId, PortSet, Prefix, Rule, RuleSet, TcpFlagsMatch,
};
use ctfw_engine::track::CtState;
use ctfw_engine::wire::{ChecksumHint, Family, TcpFlags};
use ctfw_tracegen::frame::{Frame, VlanTag};
use ctfw_tracegen::{Dir, TcpSim};
use proptest::prelude::*;

use crate::common::*;
use crate::traces::{C4, C6, S4, S6};

/// A flow's frames, each with its ingress port.
type Flow = Vec<(Vec<u8>, PortId)>;

fn sim_frames(mut sim: TcpSim, f: impl FnOnce(&mut TcpSim)) -> Flow {
    f(&mut sim);
    sim.take_packets()
        .into_iter()
        .map(|p| (p.data, port_of(p.side)))
        .collect()
}

/// The pool, built once.
fn pool() -> &'static [Flow] {
    static POOL: OnceLock<Vec<Flow>> = OnceLock::new();
    POOL.get_or_init(|| {
        let v4 = |c: u8, port: u16| {
            TcpSim::new(
                SocketAddr::new(Ipv4Addr::new(10, 0, 1, c).into(), port),
                SocketAddr::new(S4.into(), 80),
            )
        };
        let mut flows = vec![
            sim_frames(v4(2, 40_000), |s| {
                s.handshake().exchange(100, 500).close();
            }),
            sim_frames(TcpSim::default_v6(), |s| {
                s.handshake().data_c2s(300).rst_c2s();
            }),
            sim_frames(v4(3, 40_001).wscale(Some(2), Some(14)), |s| {
                s.handshake()
                    .data_c2s(1000)
                    .lose_next(Dir::C2s)
                    .data_c2s(1000)
                    .data_c2s(1000)
                    .ack_s2c()
                    .retransmit(Dir::C2s)
                    .ack_s2c()
                    .fin_s2c()
                    .fin_c2s()
                    .ack_s2c();
            }),
            sim_frames(v4(4, 40_002).vlans(vec![VlanTag::dot1q(7)]), |s| {
                s.syn().syn().synack().ack().data_s2c(10).rst_s2c();
            }),
            sim_frames(v4(5, 40_003).established(), |s| {
                s.data_c2s(10).ack_s2c().data_s2c(20).ack_c2s();
            }),
            // A flow whose tuple is its own inverse (a "LAND" packet's): every packet after
            // the first is a reply.
            sim_frames(
                TcpSim::new(
                    SocketAddr::new(S4.into(), 80),
                    SocketAddr::new(S4.into(), 80),
                ),
                |s| {
                    s.handshake().exchange(10, 10);
                },
            ),
        ];
        let udp_req = Frame::ipv4(C4, S4).udp(5000, 53).payload(b"q");
        let udp_rep = Frame::ipv4(S4, C4).udp(53, 5000).payload(b"a");
        let err = Frame::ipv4(S4, C4).icmp_error(3, 3, &udp_req);
        flows.push(vec![
            (udp_req.build(), INSIDE),
            (udp_rep.build(), OUTSIDE),
            (err.build(), OUTSIDE),
        ]);
        let ping6 = Frame::ipv6(C6, S6).echo_request(3, 1);
        let pong6 = Frame::ipv6(S6, C6).echo_reply(3, 1);
        let ping = Frame::ipv4(C4, S4).echo_request(3, 1);
        let pong = Frame::ipv4(S4, C4).echo_reply(3, 1);
        let ll: Ipv6Addr = "fe80::1".parse().expect("address");
        let mut ns = Frame::ipv6(ll, "ff02::1:ff00:2".parse().expect("address")).ttl(255);
        ns.l4 = ctfw_tracegen::frame::L4::Icmpv6(ctfw_tracegen::frame::Icmp {
            ty: 135,
            code: 0,
            rest: [0; 4],
            checksum: Default::default(),
        });
        ns.payload = vec![0; 16];
        flows.push(vec![
            (ping.build(), INSIDE),
            (pong.build(), OUTSIDE),
            (ping6.build(), INSIDE),
            (pong6.build(), OUTSIDE),
            (ns.build(), OUTSIDE),
        ]);
        let big = Frame::ipv4(C4, S4).udp(7, 7).payload(&[9; 2000]);
        let mut frags: Flow = big
            .fragments(800, 1)
            .into_iter()
            .map(|f| (f, INSIDE))
            .collect();
        frags.push((Frame::other(0x0806, vec![0; 28]).build(), INSIDE));
        frags.push((Frame::ipv4(C4, S4).raw(47).payload(&[0; 8]).build(), INSIDE));
        flows.push(frags);
        flows
    })
}

#[derive(Clone, Debug)]
enum Op {
    Valid(usize, usize),
    Mutate(usize, usize, usize, u8),
    Truncate(usize, usize, usize),
    /// A valid frame's first `keep` bytes, then random bytes.
    Tail(usize, usize, usize, Vec<u8>),
    Noise(Vec<u8>),
    /// A valid frame on port `p` (2 and 3 have no peer).
    Port(usize, usize, u16),
    /// A SYN from one of 64 clients outside the pool: enough new connections to fill the
    /// table, so that inserts evict.
    Syn(u8),
    /// The handshake and a data segment each way of a connection from one of 64 other
    /// clients: enough ASSURED connections to fill the table, so that inserts fail.
    Conn(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let f = 0..pool().len();
    let k = any::<usize>();
    prop_oneof![
        8 => (f.clone(), k).prop_map(|(f, k)| Op::Valid(f, k)),
        3 => (f.clone(), k, any::<usize>(), 1..=255u8)
            .prop_map(|(f, k, at, x)| Op::Mutate(f, k, at, x)),
        1 => (f.clone(), k, 0..120usize).prop_map(|(f, k, n)| Op::Truncate(f, k, n)),
        2 => (f.clone(), k, 12..60usize, prop::collection::vec(any::<u8>(), 0..80))
            .prop_map(|(f, k, keep, t)| Op::Tail(f, k, keep, t)),
        1 => prop::collection::vec(any::<u8>(), 0..100).prop_map(Op::Noise),
        1 => (f, k, 0..4u16).prop_map(|(f, k, p)| Op::Port(f, k, p)),
        2 => (0..64u8).prop_map(Op::Syn),
        1 => (0..64u8).prop_map(Op::Conn),
    ]
}

/// The frames and ports an op sends.
fn materialise(op: &Op) -> Flow {
    let pick = |f: usize, k: usize| {
        let flow = &pool()[f];
        flow[k % flow.len()].clone()
    };
    let one = match op {
        Op::Valid(f, k) => pick(*f, *k),
        Op::Mutate(f, k, at, x) => {
            let (mut d, p) = pick(*f, *k);
            let i = at % d.len();
            d[i] ^= x;
            (d, p)
        }
        Op::Truncate(f, k, n) => {
            let (mut d, p) = pick(*f, *k);
            d.truncate(*n);
            (d, p)
        }
        Op::Tail(f, k, keep, tail) => {
            let (mut d, p) = pick(*f, *k);
            d.truncate(*keep);
            d.extend_from_slice(tail);
            (d, p)
        }
        Op::Noise(d) => (d.clone(), INSIDE),
        Op::Port(f, k, port) => (pick(*f, *k).0, PortId(*port)),
        Op::Syn(c) => {
            let client = Ipv4Addr::new(10, 0, 9, *c);
            let syn = Frame::ipv4(client, S4)
                .tcp(50_000, 80)
                .flags(ctfw_tracegen::frame::TcpFlags::SYN);
            (syn.build(), INSIDE)
        }
        Op::Conn(c) => {
            let client = SocketAddr::new(Ipv4Addr::new(10, 0, 8, *c).into(), 40_000);
            return sim_frames(TcpSim::new(client, SocketAddr::new(S4.into(), 80)), |s| {
                s.handshake().exchange(10, 10);
            });
        }
    };
    vec![one]
}

/// The packets of a burst's frames, sent with the NIC's checksum hint when `nic_checked`.
fn packets(frames: &Flow, nic_checked: bool) -> Vec<Pkt<'_>> {
    let csum = if nic_checked {
        ChecksumHint::Good
    } else {
        ChecksumHint::Unknown
    };
    frames
        .iter()
        .map(|(d, port)| Pkt {
            data: d,
            tail: &[],
            port: *port,
            csum,
        })
        .collect()
}

/// A burst: a time jump (ticks) before it, its ops, and the checksum hint it is sent with.
fn bursts() -> impl Strategy<Value = Vec<(u64, Vec<Op>, bool)>> {
    let jump = prop_oneof![
        4 => 0..(2 * SEC),
        1 => 0..(700 * SEC),
    ];
    prop::collection::vec(
        (jump, prop::collection::vec(op(), 1..70), any::<bool>()),
        1..12,
    )
}

fn config() -> impl Strategy<Value = EngineConfig> {
    (
        prop_oneof![Just(16u32), Just(40)],
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(cap, frag, nonip, loose, liberal)| {
            let mut cfg = linux_defaults(cap);
            cfg.fragments = if frag {
                FragmentPolicy::Untracked
            } else {
                FragmentPolicy::Drop
            };
            cfg.non_ip = if nonip {
                NonIpPolicy::Forward
            } else {
                NonIpPolicy::Drop
            };
            cfg.track.tcp.loose = loose;
            cfg.track.tcp.be_liberal = liberal;
            cfg
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn random_traffic_keeps_every_invariant(cfg in config(), bursts in bursts()) {
        let capacity = cfg.capacity as usize;
        let mut fw = Fw::new(cfg, classic_rules());
        let mut sent = 0u64;
        for (jump, ops, nic_checked) in &bursts {
            fw.advance(*jump);
            let frames: Flow = ops.iter().flat_map(materialise).collect();
            let pkts = packets(&frames, *nic_checked);
            let mut out = vec![Verdict::default(); pkts.len()];
            fw.eng.process_burst(fw.now(), &pkts, &mut out);
            sent += pkts.len() as u64;
            for v in &out {
                // Forwarded or dropped, never both, never neither.
                prop_assert!(v.forward.is_some() != v.dropped.is_some(), "{:?}", v);
                if v.invalid.is_some() {
                    prop_assert_eq!(v.ct, Some(CtState::Invalid));
                }
            }
            prop_assert!(fw.eng.table().check_invariants().is_ok(),
                "{:?}", fw.eng.table().check_invariants());
            let c = fw.counters();
            prop_assert_eq!(c.packets, sent);
            prop_assert_eq!(c.packets, c.accepted + c.dropped);
            prop_assert!(fw.eng.table().len() <= capacity);
            if fw.tick % 3 == 0 {
                fw.eng.sweep(fw.now(), 7);
                prop_assert!(fw.eng.table().check_invariants().is_ok());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The burst equivalence of `burst.rs`, on random input: one call per burst and one call
    /// per packet (at the burst's instant) give the same verdicts, counters and table.
    #[test]
    fn random_traffic_is_burst_size_independent(cfg in config(), bursts in bursts()) {
        let mut whole = Fw::new(cfg.clone(), classic_rules());
        let mut single = Fw::new(cfg, classic_rules());
        for (jump, ops, nic_checked) in &bursts {
            whole.advance(*jump);
            single.advance(*jump);
            let frames: Flow = ops.iter().flat_map(materialise).collect();
            let pkts = packets(&frames, *nic_checked);
            let mut a = vec![Verdict::default(); pkts.len()];
            whole.eng.process_burst(whole.now(), &pkts, &mut a);
            let b: Vec<Verdict> = pkts.iter().map(|p| single.eng.process(single.now(), *p)).collect();
            prop_assert_eq!(a, b);
        }
        prop_assert_eq!(whole.counters(), single.counters());
        prop_assert_eq!(all_views(&whole), all_views(&single));
    }
}

/// The rule sets the lanes' test runs under, by number: the classic policy (every ESTABLISHED
/// decision fixed), one that drops a pool client's packets in every state ahead of it
/// (ESTABLISHED decisions remembered per entry), and one that drops ESTABLISHED segments
/// with PSH coming in from inside (the flag makes data segments evaluated every time). The
/// rule ahead logs what it drops.
fn lane_rules(which: u8) -> RuleSet {
    let rule = match which {
        0 => return classic_rules(),
        1 => Rule {
            src: Box::new([Prefix::host(Family::V4, u128::from(0x0a00_0103u32)).expect("host")]),
            log: true,
            ..Rule::new(Action::Drop)
        },
        _ => Rule {
            ct: Some(CtStateSet::of(&[CtState::Established])),
            in_port: PortSet::default().with(INSIDE),
            tcp_flags: TcpFlagsMatch::new(TcpFlags::PSH, TcpFlags::PSH, false),
            log: true,
            ..Rule::new(Action::Drop)
        },
    };
    let mut list = vec![("ahead".to_owned(), rule)];
    list.extend(classic_rule_list());
    rule_set(list)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The pipeline's lanes for TCP segments (`Engine::established`, `Engine::opened`)
    /// decide as the general way does. They run only while accounting and events are off:
    /// an engine recording events takes the general way for every packet, and must give the
    /// same verdicts, counters (drop-log counts included), rule hits and table.
    #[test]
    fn the_lanes_decide_as_the_general_way(
        cfg in config(),
        which in 0..3u8,
        bursts in bursts(),
    ) {
        let mut lane = Fw::new(cfg.clone(), lane_rules(which));
        let mut full = Fw::new(cfg, lane_rules(which));
        full.eng.set_events(true);
        side_by_side(&mut lane, &mut full, &bursts)?;
        let (a, mut b) = (lane.counters().clone(), full.counters().clone());
        b.events_lost = a.events_lost;
        prop_assert_eq!(a, b);
        prop_assert_eq!(all_views(&lane), all_views(&full));
        prop_assert_eq!(lane.eng.rule_hits(), full.eng.rule_hits());
    }
}

/// Send `bursts` through two engines side by side: the same verdicts and drop-log records,
/// burst by burst (their events drained, both swept alike).
fn side_by_side(
    a: &mut Fw,
    b: &mut Fw,
    bursts: &[(u64, Vec<Op>, bool)],
) -> Result<(), TestCaseError> {
    for (jump, ops, nic_checked) in bursts {
        a.advance(*jump);
        b.advance(*jump);
        let frames: Flow = ops.iter().flat_map(materialise).collect();
        let pkts = packets(&frames, *nic_checked);
        let mut va = vec![Verdict::default(); pkts.len()];
        let mut vb = vec![Verdict::default(); pkts.len()];
        a.eng.process_burst(a.now(), &pkts, &mut va);
        b.eng.process_burst(b.now(), &pkts, &mut vb);
        prop_assert_eq!(va, vb);
        let (mut logs_a, mut logs_b) = (Vec::new(), Vec::new());
        a.eng.drain_logs(|r| logs_a.push(*r));
        b.eng.drain_logs(|r| logs_b.push(*r));
        prop_assert_eq!(logs_a, logs_b);
        a.eng.drain_events(|_| {});
        b.eng.drain_events(|_| {});
        if a.tick % 3 == 0 {
            a.eng.sweep(a.now(), 7);
            b.eng.sweep(b.now(), 7);
        }
    }
    Ok(())
}

/// The same rules, each rule that tests the ports also testing the source address against
/// every address of both families: the same decisions, which the set no longer knows to
/// depend on the ports alone.
fn widened(list: Vec<(String, Rule)>) -> Vec<(String, Rule)> {
    let any = [
        Prefix::new(Family::V4, 0, 0).expect("any IPv4"),
        Prefix::new(Family::V6, 0, 0).expect("any IPv6"),
    ];
    list.into_iter()
        .map(|(name, mut rule)| {
            if rule.in_port.is_some() || rule.out_port.is_some() {
                rule.src = Box::new(any);
            }
            (name, rule)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A decision the engine works out per ingress port when the rules are loaded
    /// (`Dependence::Ports`) is the decision the rules give: random traffic through an
    /// engine whose zone rules depend on the ports alone and through one whose same rules,
    /// widened, must be remembered or evaluated, gives the same verdicts (rules included),
    /// drop logs, counters, rule hits and table, with events on or off.
    #[test]
    fn decisions_by_port_are_the_rules_decisions(
        cfg in config(),
        block in any::<bool>(),
        events in any::<bool>(),
        bursts in bursts(),
    ) {
        let zones = rule_set(zone_rules(INSIDE, block));
        prop_assert_eq!(zones.dependence(CtState::New), Some(Dependence::Ports));
        if block {
            prop_assert_eq!(zones.established(), Dependence::Ports);
        }
        let wide = rule_set(widened(zone_rules(INSIDE, block)));
        prop_assert_eq!(
            wide.dependence(CtState::New),
            Some(Dependence::PerFlow { flags_mask: 0 })
        );
        let mut by_port = Fw::new(cfg.clone(), zones);
        let mut reference = Fw::new(cfg, wide);
        by_port.eng.set_events(events);
        reference.eng.set_events(events);
        side_by_side(&mut by_port, &mut reference, &bursts)?;
        prop_assert_eq!(by_port.counters(), reference.counters());
        prop_assert_eq!(all_views(&by_port), all_views(&reference));
        prop_assert_eq!(by_port.eng.rule_hits(), reference.eng.rule_hits());
    }
}
