//! The classifier decides as the ordered scan does: property tests over random rule sets
//! (overlapping prefixes of both families, port ranges, lists, every matcher present or not)
//! and random packets aimed at the rules' boundaries; and edge cases one by one. The same
//! generators check [`RuleSet::established`], what an ESTABLISHED packet's decision depends
//! on (at the end).

use proptest::prelude::*;

use super::*;
use crate::rules::{
    Action, CtStateSet, Decision, Dependence, PortRange, PortSet, Prefix, RuleSet, TcpFlagsMatch,
};
use crate::wire::{TcpFlags, proto};

/// The reference: index of the first rule of `rules` that `p` matches.
fn scan(rules: &[Rule], p: &RuleInput) -> Option<u16> {
    rules.iter().position(|r| r.matches(p)).map(|i| i as u16)
}

// ---- Generators -------------------------------------------------------------------------

/// IPv4 network addresses that nest and overlap (10/8 > 10.1/16 > 10.1.2/24, ...), plus the
/// ends of the space.
const V4_BASES: [u32; 7] = [
    0x0a00_0000,
    0x0a01_0000,
    0x0a01_0200,
    0x0a01_0280,
    0xc0a8_0100,
    0,
    0xffff_ffff,
];
const V6_BASES: [u128; 5] = [
    0x2001_0db8 << 96,
    (0x2001_0db8 << 96) | (1 << 80),
    (0x2001_0db8 << 96) | (1 << 80) | 5,
    0,
    u128::MAX,
];
/// Port-range ends around the usual services and the ends of the space.
const PORTS: [u16; 13] = [
    0, 1, 21, 22, 79, 80, 81, 443, 1023, 1024, 8080, 65534, 65535,
];
const PROTOS: [u8; 7] = [
    proto::TCP,
    proto::UDP,
    proto::ICMP,
    proto::ICMPV6,
    47,
    0,
    255,
];
/// Firewall ports rules name and packets carry: a few, the last a set can hold, and past it.
const FW_PORTS: [u16; 7] = [0, 1, 2, 3, 63, 64, 65535];

fn masked(family: Family, addr: u128, len: u8) -> Prefix {
    let bits = if family == Family::V4 { 32 } else { 128 };
    let mask = if len == 0 {
        0
    } else {
        (u128::MAX << (bits - len)) & if bits == 32 { 0xffff_ffff } else { u128::MAX }
    };
    Prefix::new(family, addr & mask, len).expect("masked, in range")
}

fn prefix() -> impl Strategy<Value = Prefix> {
    prop_oneof![
        (0..V4_BASES.len(), 0u8..=32).prop_map(|(i, l)| masked(
            Family::V4,
            u128::from(V4_BASES[i]),
            l
        )),
        (any::<u32>(), 0u8..=32).prop_map(|(a, l)| masked(Family::V4, u128::from(a), l)),
        (0..V6_BASES.len(), 0u8..=128).prop_map(|(i, l)| masked(Family::V6, V6_BASES[i], l)),
        (any::<u128>(), 0u8..=128).prop_map(|(a, l)| masked(Family::V6, a, l)),
    ]
}

fn port() -> impl Strategy<Value = u16> {
    prop_oneof![3 => (0..PORTS.len()).prop_map(|i| PORTS[i]), 1 => any::<u16>()]
}

fn port_range() -> impl Strategy<Value = PortRange> {
    (port(), port()).prop_map(|(a, b)| PortRange::new(a.min(b), a.max(b)).expect("ordered"))
}

fn port_set() -> impl Strategy<Value = PortSet> {
    proptest::collection::vec(0..FW_PORTS.len() - 2, 0..3).prop_map(|ids| {
        ids.into_iter().fold(PortSet::EMPTY, |s, i| {
            s.with(PortId(FW_PORTS[i])).expect("below 64")
        })
    })
}

fn tcp_flags() -> impl Strategy<Value = TcpFlagsMatch> {
    prop_oneof![
        Just(TcpFlagsMatch::SYN),
        Just(TcpFlagsMatch::SYN.negated()),
        (any::<u8>(), any::<u8>(), any::<bool>()).prop_map(|(m, c, n)| TcpFlagsMatch::new(
            m,
            c & m,
            n
        )
        .expect("comp inside mask")),
    ]
}

/// `Some(value)` with probability `p` (a matcher present), else `None`.
fn maybe<T: core::fmt::Debug>(
    p: f64,
    s: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    proptest::option::weighted(p, s)
}

/// A rule constraining exactly the fields whose bits are set in `shape` (in
/// [`Field::ALL`] order).
fn rule_with(shape: u16) -> impl Strategy<Value = Rule> {
    let on = move |f: Field| shape & 1 << Field::ALL.iter().position(|&g| g == f).unwrap_or(0) != 0;
    (
        (
            any::<bool>(),
            any::<u8>().prop_map(|b| CtStateSet::of(&state_bits(b))),
            port_set(),
            port_set(),
            prop_oneof![Just(Family::V4), Just(Family::V6)],
            (0..PROTOS.len()).prop_map(|i| PROTOS[i]),
        ),
        (
            proptest::collection::vec(prefix(), 1..4).prop_map(Vec::into_boxed_slice),
            proptest::collection::vec(prefix(), 1..4).prop_map(Vec::into_boxed_slice),
            proptest::collection::vec(port_range(), 1..4).prop_map(Vec::into_boxed_slice),
            proptest::collection::vec(port_range(), 1..4).prop_map(Vec::into_boxed_slice),
            tcp_flags(),
            any::<bool>(),
        ),
    )
        .prop_map(
            move |(
                (accept, ct, in_port, out_port, family, proto),
                (src, dst, sport, dport, flags, log),
            )| {
                Rule {
                    action: if accept { Action::Accept } else { Action::Drop },
                    ct: on(Field::Ct).then_some(ct),
                    in_port: on(Field::InPort).then_some(in_port),
                    out_port: on(Field::OutPort).then_some(out_port),
                    family: on(Field::Family).then_some(family),
                    proto: on(Field::Proto).then_some(proto),
                    src: keep(on(Field::Src), src),
                    dst: keep(on(Field::Dst), dst),
                    sport: keep(on(Field::Sport), sport),
                    dport: keep(on(Field::Dport), dport),
                    tcp_flags: on(Field::TcpFlags).then_some(flags),
                    log,
                }
            },
        )
}

/// `list` if `on`, else the empty list (no constraint).
fn keep<T>(on: bool, list: Box<[T]>) -> Box<[T]> {
    if on { list } else { Box::new([]) }
}

/// A shape with each field constrained at probability 0.3.
fn shape_bits() -> impl Strategy<Value = u16> {
    proptest::array::uniform10(proptest::bool::weighted(0.3)).prop_map(|on| {
        on.iter()
            .enumerate()
            .fold(0, |s, (i, &b)| s | u16::from(b) << i)
    })
}

/// The states of the low five bits of `b` (possibly none: a set that matches nothing).
fn state_bits(b: u8) -> Vec<CtState> {
    CtState::ALL
        .into_iter()
        .filter(|s| b & s.bit() != 0)
        .collect()
}

/// Rule sets of every size class, around the scan threshold and up to a few hundred rules:
/// each rule of its own random shape (many small groups), or a few shapes shared by all
/// (groups of hundreds of rules, whose sets span several 64-rule blocks).
fn rules() -> impl Strategy<Value = Vec<Rule>> {
    let mixed = |n: proptest::collection::SizeRange| {
        proptest::collection::vec(shape_bits().prop_flat_map(rule_with), n)
    };
    let few_shapes = proptest::collection::vec(shape_bits(), 1..4).prop_flat_map(|shapes| {
        proptest::collection::vec(
            proptest::sample::select(shapes).prop_flat_map(rule_with),
            13..300,
        )
    });
    prop_oneof![
        1 => mixed((0..=12).into()),
        1 => mixed((13..300).into()),
        2 => few_shapes,
    ]
}

/// A packet, as choices that [`packet`] resolves against a rule set: most fields aim at a
/// rule's boundaries (a prefix's first or last address, or just outside; a range's ends), so
/// that the classes next to every boundary are tried.
#[derive(Clone, Debug)]
struct Aim {
    ct: Option<CtState>,
    in_port: u16,
    out_port: u16,
    v6: bool,
    proto: u8,
    /// Whether the packet has ports, and whether it has a TCP header.
    ports: bool,
    tcp: Option<u8>,
    /// Per address and port field: which rule to aim at, which of its alternatives, which
    /// point (0 first, 1 last, 2 before, 3 after, else random `noise`).
    aims: [(u16, u8, u8, u128); 4],
    /// Set bits above an IPv4 address's 32 (the pipeline never does; the rules must ignore
    /// them as `Prefix::contains` does).
    high_bits: bool,
    /// Aim every field at the rule of `aims[0]`, taking a value its scalar matchers accept:
    /// packets that match rules with many fields.
    same: bool,
}

fn aim() -> impl Strategy<Value = Aim> {
    (
        (
            maybe(0.85, (0..CtState::ALL.len()).prop_map(|i| CtState::ALL[i])),
            (0..FW_PORTS.len()).prop_map(|i| FW_PORTS[i]),
            (0..FW_PORTS.len()).prop_map(|i| FW_PORTS[i]),
            any::<bool>(),
            (0..PROTOS.len()).prop_map(|i| PROTOS[i]),
        ),
        (
            proptest::bool::weighted(0.85),
            maybe(0.8, any::<u8>()),
            proptest::array::uniform4((any::<u16>(), any::<u8>(), 0u8..6, any::<u128>())),
            proptest::bool::weighted(0.05),
            any::<bool>(),
        ),
    )
        .prop_map(
            |((ct, in_port, out_port, v6, proto), (ports, tcp, aims, high_bits, same))| Aim {
                ct,
                in_port,
                out_port,
                v6,
                proto,
                ports,
                tcp,
                aims,
                high_bits,
                same,
            },
        )
}

/// Point `which` around `(lo, hi)`: first, last, just before, just after, or `noise`.
fn around(lo: u128, hi: u128, which: u8, noise: u128, max: u128) -> u128 {
    match which {
        0 => lo,
        1 => hi,
        2 => lo.wrapping_sub(1) & max,
        3 => hi.wrapping_add(1) & max,
        _ => noise & max,
    }
}

fn packet(rules: &[Rule], a: &Aim) -> RuleInput {
    let mut a = a.clone();
    let target = rules.get(usize::from(a.aims[0].0) % rules.len().max(1));
    if let (true, Some(r)) = (a.same, target) {
        let aimed = a.aims[0].0;
        for aim in &mut a.aims {
            aim.0 = aimed;
        }
        if let Some(set) = r.ct {
            a.ct = set.iter().next().or(a.ct);
        }
        if let Some(p) = r.in_port.and_then(|s| s.iter().next()) {
            a.in_port = p.0;
        }
        if let Some(p) = r.out_port.and_then(|s| s.iter().next()) {
            a.out_port = p.0;
        }
        if let Some(f) = r.family {
            a.v6 = f == Family::V6;
        }
        if let Some(n) = r.proto {
            a.proto = n;
        }
        if let Some(t) = r.tcp_flags {
            a.tcp = (0..=255).find(|&b| t.matches(b)).or(a.tcp);
        }
        if let Some(p) = r.src.first().or(r.dst.first()) {
            a.v6 = p.family() == Family::V6;
        }
        a.ports |= !r.sport.is_empty() || !r.dport.is_empty();
    }
    let a = &a;
    let family = if a.v6 { Family::V6 } else { Family::V4 };
    let max = if a.v6 { u128::MAX } else { 0xffff_ffff };
    let addr = |(r, alt, which, noise): (u16, u8, u8, u128), pick: fn(&Rule) -> &[Prefix]| {
        // A prefix of the packet's family from the aimed rule, if it has one.
        let prefixes: Vec<&Prefix> = rules
            .get(usize::from(r) % rules.len().max(1))
            .map(|rule| pick(rule).iter().filter(|p| p.family() == family).collect())
            .unwrap_or_default();
        let (lo, hi) = prefixes
            .get(usize::from(alt) % prefixes.len().max(1))
            .map_or((0, max), |p| p.bounds());
        around(lo, hi, which, noise, max)
    };
    let port = |(r, alt, which, noise): (u16, u8, u8, u128), pick: fn(&Rule) -> &[PortRange]| {
        let ranges: &[PortRange] = rules
            .get(usize::from(r) % rules.len().max(1))
            .map_or(&[], pick);
        let (lo, hi) = ranges
            .get(usize::from(alt) % ranges.len().max(1))
            .map_or((0, 65535), |r| r.bounds());
        around(u128::from(lo), u128::from(hi), which, noise, 0xffff) as u16
    };
    let high = if a.high_bits && !a.v6 {
        0xdead << 64
    } else {
        0
    };
    RuleInput {
        ct: a.ct,
        in_port: PortId(a.in_port),
        out_port: PortId(a.out_port),
        family,
        proto: a.proto,
        src: addr(a.aims[0], |r| &r.src) | high,
        dst: addr(a.aims[1], |r| &r.dst) | high,
        ports: a
            .ports
            .then(|| (port(a.aims[2], |r| &r.sport), port(a.aims[3], |r| &r.dport))),
        tcp_flags: a.tcp,
    }
}

/// Small limits force groups to split, down to single rules.
const LIMITS: [usize; 3] = [GROUP_ENTRIES, 16, 1];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The classifier finds the rule the scan finds, for every packet, with groups whole or
    /// split; and `RuleSet::evaluate` (classifier or scan, by size) decides as
    /// `evaluate_scan`, action and rule alike.
    #[test]
    fn classifier_decides_as_the_ordered_scan(
        rules in rules(),
        aims in proptest::collection::vec(aim(), 64),
        default_accept in any::<bool>(),
    ) {
        let classifiers = LIMITS.map(|l| Classifier::with_limit(&rules, l));
        let names = (0..rules.len()).map(|i| format!("r{i}")).collect();
        let default = if default_accept { Action::Accept } else { Action::Drop };
        let set = RuleSet::new(rules.clone(), default, names).expect("a valid set");
        prop_assert_eq!(set.is_classified(), rules.len() > RuleSet::SCAN_MAX);
        for a in &aims {
            let p = packet(&rules, a);
            let want = scan(&rules, &p);
            for (c, limit) in classifiers.iter().zip(LIMITS) {
                prop_assert_eq!(c.first_match(&p), want, "limit {}, packet {:?}", limit, p);
            }
            let d = set.evaluate(&p);
            prop_assert_eq!(d, set.evaluate_scan(&p), "packet {:?}", p);
            prop_assert_eq!(d.rule, want);
            prop_assert_eq!(set.logs(d.rule), want.is_some_and(|i| rules[usize::from(i)].log));
        }
    }
}

// ---- Edge cases ---------------------------------------------------------------------------

fn input() -> RuleInput {
    RuleInput {
        ct: Some(CtState::New),
        in_port: PortId(0),
        out_port: PortId(1),
        family: Family::V4,
        proto: proto::TCP,
        src: 0x0a00_0102,
        dst: 0xc000_0201,
        ports: Some((40000, 80)),
        tcp_flags: Some(TcpFlags::SYN),
    }
}

fn accept() -> Rule {
    Rule::new(Action::Accept)
}

/// Check `c` against the scan on `p`, and return its answer.
fn both(rules: &[Rule], p: &RuleInput) -> Option<u16> {
    let got = Classifier::new(rules).first_match(p);
    assert_eq!(got, scan(rules, p), "{p:?}");
    got
}

#[test]
fn a_rule_without_matchers_matches_between_others() {
    let rules = [
        Rule {
            proto: Some(proto::UDP),
            ..accept()
        },
        accept(),
        Rule {
            proto: Some(proto::TCP),
            ..accept()
        },
    ];
    assert_eq!(both(&rules, &input()), Some(1));
    assert_eq!(Classifier::new(&rules).groups(), 2);
}

#[test]
fn an_empty_state_set_matches_nothing_and_untracked_packets_no_state_test() {
    let rules = [
        Rule {
            ct: Some(CtStateSet::EMPTY),
            ..accept()
        },
        Rule {
            ct: Some(CtStateSet::of(&CtState::ALL)),
            ..accept()
        },
    ];
    assert_eq!(both(&rules, &input()), Some(1));
    let untracked = RuleInput {
        ct: None,
        ..input()
    };
    assert_eq!(both(&rules, &untracked), None);
}

#[test]
fn ports_past_the_last_a_set_names_match_no_port_set() {
    let all = (0..64).fold(PortSet::EMPTY, |s, p| s.with(PortId(p)).expect("below 64"));
    let rules = [Rule {
        in_port: Some(all),
        ..accept()
    }];
    assert_eq!(both(&rules, &input()), Some(0));
    for far in [64, 1000, u16::MAX] {
        let p = RuleInput {
            in_port: PortId(far),
            ..input()
        };
        assert_eq!(both(&rules, &p), None);
    }
}

#[test]
fn port_ranges_at_the_ends_of_the_space_and_packets_without_ports() {
    let rules = [
        Rule {
            sport: Box::new([PortRange::new(65535, 65535).expect("range")]),
            ..accept()
        },
        Rule {
            sport: Box::new([PortRange::new(0, 0).expect("range")]),
            ..accept()
        },
        Rule {
            sport: Box::new([PortRange::new(0, 65535).expect("range")]),
            ..accept()
        },
    ];
    let with = |s| RuleInput {
        ports: Some((s, 80)),
        ..input()
    };
    assert_eq!(both(&rules, &with(65535)), Some(0));
    assert_eq!(both(&rules, &with(0)), Some(1));
    assert_eq!(both(&rules, &with(1)), Some(2));
    let none = RuleInput {
        ports: None,
        ..input()
    };
    assert_eq!(
        both(&rules, &none),
        None,
        "a packet without ports matches no range"
    );
}

#[test]
fn whole_space_prefixes_of_each_family_and_the_last_address() {
    let any4 = Prefix::new(Family::V4, 0, 0).expect("prefix");
    let any6 = Prefix::new(Family::V6, 0, 0).expect("prefix");
    let last6 = Prefix::host(Family::V6, u128::MAX).expect("prefix");
    let rules = [
        Rule {
            dst: Box::new([last6]),
            ..accept()
        },
        Rule {
            dst: Box::new([any4]),
            ..accept()
        },
        Rule {
            dst: Box::new([any6]),
            ..accept()
        },
    ];
    assert_eq!(both(&rules, &input()), Some(1));
    let v6 = |dst| RuleInput {
        family: Family::V6,
        dst,
        ..input()
    };
    assert_eq!(both(&rules, &v6(u128::MAX)), Some(0));
    assert_eq!(
        both(&rules, &v6(0xc000_0201)),
        Some(2),
        "a v4-looking v6 address"
    );
    // An IPv4 packet with bits set past 32: prefixes look at the low 32 only.
    let high = RuleInput {
        dst: 0xc000_0201 | 1 << 100,
        ..input()
    };
    assert_eq!(both(&rules, &high), Some(1));
}

#[test]
fn tcp_flag_tests_and_packets_without_a_tcp_header() {
    let rules = [
        Rule {
            tcp_flags: Some(TcpFlagsMatch::SYN.negated()),
            ..Rule::new(Action::Drop)
        },
        Rule {
            tcp_flags: Some(TcpFlagsMatch::SYN),
            ..accept()
        },
    ];
    assert_eq!(both(&rules, &input()), Some(1));
    let ack = RuleInput {
        tcp_flags: Some(TcpFlags::ACK),
        ..input()
    };
    assert_eq!(both(&rules, &ack), Some(0));
    let udp = RuleInput {
        tcp_flags: None,
        ..input()
    };
    assert_eq!(both(&rules, &udp), None);
}

#[test]
fn a_later_group_can_hold_the_earlier_match() {
    // Group {proto} starts at rule 0 but matches at rule 3; group {dport} starts at rule 1
    // and matches at rule 2, which wins.
    let tcp = |action| Rule {
        proto: Some(proto::TCP),
        ..Rule::new(action)
    };
    let udp = Rule {
        proto: Some(proto::UDP),
        ..accept()
    };
    let port = |n| Rule {
        dport: Box::new([PortRange::single(n)]),
        ..Rule::new(Action::Drop)
    };
    let rules = [udp, port(81), port(80), tcp(Action::Accept)];
    assert_eq!(both(&rules, &input()), Some(2));
}

/// Rules that would make one group's sets grow as a product (thousands sharing a wide prefix,
/// thousands of hosts carving it) are split, so memory stays bounded, and decide as before.
#[test]
fn a_group_too_big_for_its_limit_is_split_and_decides_the_same() {
    let wide = Prefix::new(Family::V4, 0x0a00_0000, 8).expect("prefix");
    let rules: Vec<Rule> = (0..4000u32)
        .map(|i| {
            let dst = if i % 2 == 0 {
                wide
            } else {
                Prefix::host(Family::V4, 0x0a00_0000 + u128::from(i)).expect("host")
            };
            Rule {
                dst: Box::new([dst]),
                dport: Box::new([PortRange::single(i as u16)]),
                ..accept()
            }
        })
        .collect();
    let c = Classifier::new(&rules);
    assert!(c.groups() > 1, "split");
    // Each group holds at most GROUP_ENTRIES words of 12 bytes, plus lookups and offsets.
    assert!(
        c.memory_bytes() < c.groups() * GROUP_ENTRIES * 20,
        "{} bytes in {} groups",
        c.memory_bytes(),
        c.groups()
    );
    for i in [0u32, 1, 2, 3, 1999, 3998, 3999, 4000] {
        for dst in [0x0a00_0000 + i, 0x0a00_0000, 0x0b00_0000] {
            let p = RuleInput {
                dst: u128::from(dst),
                ports: Some((1000, i as u16)),
                ..input()
            };
            both(&rules, &p);
        }
    }
}

// ---- What an ESTABLISHED or a NEW packet's decision depends on ---------------------------

/// Zone rules: each tests at most the state and the firewall ports (the classic policy's
/// shape), scanned or classified.
fn zone_rules() -> impl Strategy<Value = Vec<Rule>> {
    let zone = Field::ALL
        .iter()
        .take_while(|&&f| matches!(f, Field::Ct | Field::InPort | Field::OutPort))
        .count();
    let rule = shape_bits().prop_flat_map(move |shape| rule_with(shape & ((1 << zone) - 1)));
    proptest::collection::vec(rule, 0..40)
}

/// Random rule sets (a quarter of them zone rules), with a catch-all rule for `state` (a
/// state test that admits it and nothing else, which decides every packet in that state)
/// inserted at a random place half of the time.
fn rules_with_catch_all(state: CtState) -> impl Strategy<Value = Vec<Rule>> {
    (
        prop_oneof![3 => rules(), 1 => zone_rules()],
        proptest::option::of((any::<usize>(), any::<bool>(), any::<u8>())),
    )
        .prop_map(move |(mut rules, catch_all)| {
            if let Some((at, accept, states)) = catch_all {
                let mut set = CtStateSet::of(&state_bits(states));
                if states & 1 == 0 {
                    set = set.with(state);
                }
                let r = Rule {
                    ct: Some(set),
                    ..Rule::new(if accept { Action::Accept } else { Action::Drop })
                };
                rules.insert(at % (rules.len() + 1), r);
            }
            rules
        })
}

/// A rule set for a random one of the two states the set works dependences out for.
fn state_and_rules() -> impl Strategy<Value = (CtState, Vec<Rule>)> {
    prop_oneof![Just(CtState::Established), Just(CtState::New)]
        .prop_flat_map(|state| (Just(state), rules_with_catch_all(state)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// `Dependence::Fixed` is the decision of every packet in the state; under
    /// `Dependence::Ports`, two packets in the state that cross the same ports; under
    /// `Dependence::PerFlow`, two packets in the state that differ only in their TCP flags
    /// outside the mask get the same decision.
    #[test]
    fn decisions_depend_on_what_the_set_says(
        (state, rules) in state_and_rules(),
        aims in proptest::collection::vec(aim(), 32),
        others in proptest::collection::vec((0..FW_PORTS.len(), 0..FW_PORTS.len(), any::<u8>()), 32),
        default_accept in any::<bool>(),
    ) {
        let names = (0..rules.len()).map(|i| format!("r{i}")).collect();
        let default = if default_accept { Action::Accept } else { Action::Drop };
        let set = RuleSet::new(rules.clone(), default, names).expect("a valid set");
        let dependence = set.dependence(state).expect("worked out for ESTABLISHED and NEW");
        if state == CtState::Established {
            prop_assert_eq!(set.established(), dependence);
        }
        for (j, (a, &(i, o, flags))) in aims.iter().zip(&others).enumerate() {
            let p = RuleInput { ct: Some(state), ..packet(&rules, a) };
            let d = set.evaluate(&p);
            match dependence {
                Dependence::Fixed(fixed) => {
                    let q = RuleInput {
                        in_port: PortId(FW_PORTS[i]),
                        out_port: PortId(FW_PORTS[o]),
                        tcp_flags: p.tcp_flags.map(|_| flags),
                        ..p
                    };
                    prop_assert_eq!(d, fixed, "packet {:?}", p);
                    prop_assert_eq!(set.evaluate(&q), fixed, "packet {:?}", q);
                }
                Dependence::Ports => {
                    // Every field but the state and the ports from another packet.
                    let other = &aims[(j + 1) % aims.len()];
                    let q = RuleInput {
                        ct: p.ct,
                        in_port: p.in_port,
                        out_port: p.out_port,
                        ..packet(&rules, other)
                    };
                    prop_assert_eq!(set.evaluate(&q), d, "{:?} against {:?}", q, p);
                }
                Dependence::PerFlow { flags_mask } => {
                    let q = RuleInput {
                        tcp_flags: p.tcp_flags.map(|f| f & flags_mask | flags & !flags_mask),
                        ..p
                    };
                    prop_assert_eq!(set.evaluate(&q), d, "{:?} against {:?}", q, p);
                }
            }
        }
    }
}

#[test]
fn the_other_states_have_no_dependence() {
    let set = RuleSet::new(Vec::new(), Action::Drop, Vec::new()).expect("a valid set");
    for ct in CtState::ALL {
        let worked_out = matches!(ct, CtState::Established | CtState::New);
        assert_eq!(set.dependence(ct).is_some(), worked_out, "{ct:?}");
    }
}

/// What the decision of a packet in `state` depends on under `rules` (default drop).
fn dependence_of(state: CtState, rules: Vec<Rule>) -> Dependence {
    let names = (0..rules.len()).map(|i| format!("r{i}")).collect();
    RuleSet::new(rules, Action::Drop, names)
        .expect("a valid set")
        .dependence(state)
        .expect("worked out for ESTABLISHED and NEW")
}

fn established_of(rules: Vec<Rule>) -> Dependence {
    dependence_of(CtState::Established, rules)
}

/// The classic policy's first rule: accept ESTABLISHED and RELATED.
fn accept_established_rule() -> Rule {
    Rule {
        ct: Some(CtStateSet::of(&[CtState::Established, CtState::Related])),
        ..accept()
    }
}

/// The classic policy's second rule: accept NEW entering by port 0.
fn new_from_inside_rule() -> Rule {
    Rule {
        ct: Some(CtStateSet::of(&[CtState::New])),
        in_port: PortSet::default().with(PortId(0)),
        ..accept()
    }
}

#[test]
fn established_is_read_off_the_rules_in_order() {
    let accept_established = accept_established_rule();
    let new_from_inside = new_from_inside_rule();
    let block_host = Rule {
        src: Box::new([Prefix::host(Family::V4, 0x0a00_0001).expect("host")]),
        ..Rule::new(Action::Drop)
    };
    let from_port_1 = Rule {
        in_port: PortSet::default().with(PortId(1)),
        ..Rule::new(Action::Drop)
    };
    let syn_only = Rule {
        tcp_flags: Some(TcpFlagsMatch::SYN),
        ..Rule::new(Action::Drop)
    };
    // The classic policy: the first rule decides every ESTABLISHED packet.
    assert_eq!(
        established_of(vec![accept_established.clone(), new_from_inside.clone()]),
        Dependence::Fixed(Decision {
            action: Action::Accept,
            rule: Some(0)
        })
    );
    // Rules that exclude ESTABLISHED are skipped; with nothing else, the default decides.
    assert_eq!(
        established_of(vec![new_from_inside.clone()]),
        Dependence::Fixed(Decision {
            action: Action::Drop,
            rule: None
        })
    );
    assert_eq!(
        established_of(vec![new_from_inside.clone(), accept_established.clone()]),
        Dependence::Fixed(Decision {
            action: Action::Accept,
            rule: Some(1)
        })
    );
    // A host blocked above it: the decision depends on the addresses.
    assert_eq!(
        established_of(vec![block_host.clone(), accept_established.clone()]),
        Dependence::PerFlow { flags_mask: 0 }
    );
    // ... but not below it.
    assert_eq!(
        established_of(vec![accept_established.clone(), block_host.clone()]),
        Dependence::Fixed(Decision {
            action: Action::Accept,
            rule: Some(0)
        })
    );
    // Ports of the firewall alone, with more, and the flags a test looks at.
    assert_eq!(
        established_of(vec![from_port_1.clone(), accept_established.clone()]),
        Dependence::Ports
    );
    assert_eq!(
        established_of(vec![
            from_port_1.clone(),
            block_host.clone(),
            accept_established.clone()
        ]),
        Dependence::PerFlow { flags_mask: 0 }
    );
    assert_eq!(
        established_of(vec![block_host, from_port_1, accept_established.clone()]),
        Dependence::PerFlow { flags_mask: 0 }
    );
    assert_eq!(
        established_of(vec![syn_only, accept_established]),
        Dependence::PerFlow {
            flags_mask: TcpFlags::SYN | TcpFlags::ACK | TcpFlags::FIN | TcpFlags::RST
        }
    );
}

#[test]
fn the_new_dependence_is_read_off_the_rules_in_order() {
    let new_of = |rules| dependence_of(CtState::New, rules);
    let accept_established = accept_established_rule();
    let new_from_inside = new_from_inside_rule();
    let accept_new = Rule {
        ct: Some(CtStateSet::of(&[CtState::New])),
        ..accept()
    };
    // The classic policy: NEW packets are told apart by the port they enter by, and by
    // nothing else.
    assert_eq!(
        new_of(vec![accept_established.clone(), new_from_inside.clone()]),
        Dependence::Ports
    );
    // Rules that exclude NEW are skipped; a rule that admits every NEW packet decides.
    assert_eq!(
        new_of(vec![
            accept_established.clone(),
            accept_new.clone(),
            new_from_inside
        ]),
        Dependence::Fixed(Decision {
            action: Action::Accept,
            rule: Some(1)
        })
    );
    assert_eq!(
        new_of(vec![accept_established]),
        Dependence::Fixed(Decision {
            action: Action::Drop,
            rule: None
        })
    );
}
