//! Large rule sets for the rule-evaluation benchmarks (`rules/*` in `benches/engine.rs`,
//! `profile_rules`): N rules of which exactly one, or none, decides the benchmark's
//! established traffic, placed first or last.
//!
//! The other rules ("fillers") are shaped like a real large policy: per-server allow rules
//! (protocol, destination host, destination port), blocked source networks, IPv6 services,
//! UDP port ranges from one port, NEW-only rules towards the very servers the traffic talks
//! to, and SYN filters on client port ranges. Several of them agree with the traffic on some
//! field (the servers' addresses, port 443, the client port range, TCP), so neither a scan nor
//! a classifier can reject them on one field alone; none of them matches it, which the
//! benchmarks check through the rule hit counters.
//!
//! Everything is a pure function of the rule count and position: runs are reproducible.

use ctfw_engine::rules::{
    Action, CtStateSet, PortRange, PortSet, Prefix, Rule, RuleSet, TcpFlagsMatch,
};
use ctfw_engine::track::CtState;
use ctfw_engine::wire::{Family, proto};

use crate::{INSIDE, OUTSIDE};

/// Where the rule that decides the traffic sits in the set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// Rule 0 is `ct_state: [established, related] accept`; the fillers follow.
    First,
    /// The fillers, then `ct_state: [established, related] accept` as the last rule.
    Last,
    /// Only fillers, and the default policy (accept) decides.
    None,
}

impl Position {
    /// Every position, with its benchmark name.
    pub const ALL: [(&'static str, Position); 3] = [
        ("first", Position::First),
        ("last", Position::Last),
        ("none", Position::None),
    ];

    /// Index of the deciding rule in a set of `rules` rules, or `None` for the default policy.
    pub fn deciding(self, rules: usize) -> Option<usize> {
        match self {
            Position::First => Some(0),
            Position::Last => Some(rules - 1),
            Position::None => None,
        }
    }
}

/// `rules` rules (at least 1) with the deciding rule at `position`; see the module
/// documentation.
pub fn rule_set(rules: usize, position: Position) -> RuleSet {
    assert!(
        rules >= 1,
        "a rule set for the benchmark has at least one rule"
    );
    let fillers = match position {
        Position::None => rules,
        _ => rules - 1,
    };
    let mut list: Vec<Rule> = (0..fillers as u32).map(filler).collect();
    let estrel = Rule {
        ct: Some(CtStateSet::of(&[CtState::Established, CtState::Related])),
        ..Rule::new(Action::Accept)
    };
    let policy = match position {
        Position::First => {
            list.insert(0, estrel);
            Action::Drop
        }
        Position::Last => {
            list.push(estrel);
            Action::Drop
        }
        Position::None => Action::Accept,
    };
    let names = (0..list.len()).map(|i| format!("r{i}")).collect();
    RuleSet::new(list, policy, names).expect("at most MAX_RULES rules")
}

fn v4(a: u32, len: u8) -> Prefix {
    Prefix::new(Family::V4, u128::from(a), len).expect("the generator writes no host bits")
}

fn ports(p: ctfw_engine::rules::PortId) -> PortSet {
    PortSet::EMPTY.with(p).expect("port below 64")
}

/// Filler `i`: one of six kinds, in rotation; none matches the benchmark's traffic (clients
/// 10.1.0.0/16 on `INSIDE`, servers 172.16.0.1-172.16.3.232 port 443 on `OUTSIDE`, every
/// packet ESTABLISHED with ACK set).
fn filler(i: u32) -> Rule {
    let n = i / 6;
    match i % 6 {
        // Allow a service on one host of 198.18.0.0/15 (the port may be 443).
        0 => Rule {
            proto: Some(proto::TCP),
            dst: Box::new([v4(0xc612_0000 + n, 32)]),
            dport: Box::new([PortRange::single(1 + (n * 7 % 1000) as u16)]),
            ..Rule::new(Action::Accept)
        },
        // Block a /24 of 100.64.0.0/10.
        1 => Rule {
            src: Box::new([v4(0x6440_0000 + (n << 8), 24)]),
            ..Rule::new(Action::Drop)
        },
        // Allow SSH to a /48 of 2001:db8::/32.
        2 => Rule {
            proto: Some(proto::TCP),
            dst: Box::new([Prefix::new(
                Family::V6,
                (0x2001_0db8_u128 << 96) | (u128::from(n) << 80),
                48,
            )
            .expect("no host bits")]),
            dport: Box::new([PortRange::single(22)]),
            ..Rule::new(Action::Accept)
        },
        // UDP port ranges from inside.
        3 => {
            let lo = 1024 + (n * 13) % 60_000;
            Rule {
                in_port: Some(ports(INSIDE)),
                proto: Some(proto::UDP),
                dport: Box::new([PortRange::new(lo as u16, lo as u16 + 50).expect("lo < hi")]),
                ..Rule::new(Action::Accept)
            }
        }
        // NEW connections from outside to one of the traffic's own servers, on another port.
        4 => {
            let server = 1 + n % 1000;
            Rule {
                ct: Some(CtStateSet::of(&[CtState::New])),
                in_port: Some(ports(OUTSIDE)),
                dst: Box::new([v4(0xac10_0000 + server, 32)]),
                dport: Box::new([PortRange::single(8000 + (n % 1000) as u16)]),
                ..Rule::new(Action::Accept)
            }
        }
        // Drop SYNs from the client port range towards a host of 203.0.113.0/24.
        _ => Rule {
            tcp_flags: Some(TcpFlagsMatch::SYN),
            sport: Box::new([PortRange::new(1024, 65535).expect("lo < hi")]),
            dst: Box::new([v4(0xcb00_7100 + n % 256, 32)]),
            ..Rule::new(Action::Drop)
        },
    }
}
